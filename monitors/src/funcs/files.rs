//! File and path functions, reading relative paths against the root module's directory (Terraform runs
//! there), with a size cap on what they read.

use super::encoding::b64;
use super::{as_map, str_arg, string, want, MAX_LIST, R};
use crate::eval::{self, Scope};
use hcl::Value;
use std::cell::RefCell;
use std::path::{Path, PathBuf};

/// Largest file `file`, `templatefile`, ... read (monitor code has no business with bigger ones).
const MAX_FILE: u64 = 16 << 20;

thread_local! {
    static ROOT: RefCell<PathBuf> = RefCell::new(PathBuf::from("."));
}

/// Sets the directory relative paths are read against; returns the previous one.
pub fn set_root(dir: &Path) -> PathBuf {
    ROOT.with(|r| std::mem::replace(&mut *r.borrow_mut(), dir.to_path_buf()))
}

/// The directory relative paths are read against (the root module's).
pub fn root() -> PathBuf {
    ROOT.with(|r| r.borrow().clone())
}

fn resolve(p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        ROOT.with(|r| r.borrow().join(p))
    }
}

pub(super) fn read(path: &str, name: &str) -> Result<Vec<u8>, String> {
    let p = resolve(path);
    let meta = std::fs::metadata(&p).map_err(|e| format!("{name}(): cannot read {path}: {e}"))?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{name}(): {path} is larger than {} MiB",
            MAX_FILE >> 20
        ));
    }
    std::fs::read(&p).map_err(|e| format!("{name}(): cannot read {path}: {e}"))
}

pub(super) fn read_text(path: &str, name: &str) -> Result<String, String> {
    String::from_utf8(read(path, name)?)
        .map_err(|_| format!("{name}(): {path} is not UTF-8 text (use filebase64)"))
}

pub(super) fn file(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "file")?;
    string(read_text(&str_arg(a, 0, "file")?, "file")?)
}

pub(super) fn filebase64(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    want(a, 1, "filebase64")?;
    string(b64().encode(read(&str_arg(a, 0, "filebase64")?, "filebase64")?))
}

pub(super) fn fileexists(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "fileexists")?;
    Ok(Value::Bool(
        resolve(&str_arg(a, 0, "fileexists")?).is_file(),
    ))
}

pub(super) fn templatefile(a: &[Value], s: &Scope<'_>) -> R {
    want(a, 2, "templatefile")?;
    let path = str_arg(a, 0, "templatefile")?;
    let text = read_text(&path, "templatefile")?;
    eval::render_text(&text, as_map(&a[1], "templatefile")?, s)
        .map_err(|e| format!("templatefile({path}): {e}"))
}

pub(super) fn abspath(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "abspath")?;
    let p = resolve(&str_arg(a, 0, "abspath")?);
    let p = std::path::absolute(&p).unwrap_or(p);
    string(p.to_string_lossy().replace('\\', "/"))
}

pub(super) fn basename(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "basename")?;
    let s = str_arg(a, 0, "basename")?;
    let t = s.trim_end_matches('/');
    if t.is_empty() {
        return string(if s.is_empty() { "." } else { "/" });
    }
    string(t.rsplit('/').next().unwrap_or(t))
}

pub(super) fn dirname(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "dirname")?;
    let s = str_arg(a, 0, "dirname")?;
    let t = s.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) => string("/"),
        Some(i) => string(t[..i].trim_end_matches('/')),
        None if s.starts_with('/') => string("/"),
        None => string("."),
    }
}

pub(super) fn pathexpand(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "pathexpand")?;
    let s = str_arg(a, 0, "pathexpand")?;
    match (s.strip_prefix('~'), std::env::var("HOME")) {
        (Some(rest), Ok(home)) if rest.is_empty() || rest.starts_with('/') => {
            string(format!("{home}{rest}"))
        }
        _ => string(s),
    }
}

/// Whether `name` matches the glob `pat` (`*`, `?`, `[abc]`, `{a,b}`; `*` does not cross `/`, `**` does).
pub(super) fn glob_match(pat: &[char], name: &[char]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some('*') if pat.get(1) == Some(&'*') => {
            let rest = &pat[2..];
            let rest_nosep = rest.strip_prefix(&['/']).unwrap_or(rest);
            (0..=name.len()).any(|i| {
                glob_match(rest, &name[i..])
                    || ((i == 0 || name[i - 1] == '/') && glob_match(rest_nosep, &name[i..]))
            })
        }
        Some('*') => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != '/')
            .any(|i| glob_match(&pat[1..], &name[i..])),
        Some('?') => name.first().is_some_and(|c| *c != '/') && glob_match(&pat[1..], &name[1..]),
        Some('[') => {
            let Some(end) = pat.iter().position(|c| *c == ']') else {
                return name.first() == Some(&'[') && glob_match(&pat[1..], &name[1..]);
            };
            let Some(c) = name.first() else { return false };
            let class = &pat[1..end];
            let (neg, class) = match class.first() {
                Some('^') | Some('!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != neg && glob_match(&pat[end + 1..], &name[1..])
        }
        Some('{') => {
            let Some(end) = pat.iter().position(|c| *c == '}') else {
                return name.first() == Some(&'{') && glob_match(&pat[1..], &name[1..]);
            };
            pat[1..end].split(|c| *c == ',').any(|alt| {
                let mut p = alt.to_vec();
                p.extend_from_slice(&pat[end + 1..]);
                glob_match(&p, name)
            })
        }
        Some('\\') if pat.len() > 1 => {
            name.first() == Some(&pat[1]) && glob_match(&pat[2..], &name[1..])
        }
        Some(c) => name.first() == Some(c) && glob_match(&pat[1..], &name[1..]),
    }
}

pub(super) fn fileset(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "fileset")?;
    let base = str_arg(a, 0, "fileset")?;
    // Terraform globs path/pattern joined and cleaned, so "./x/*.yaml" matches "x/a.yaml".
    let raw = str_arg(a, 1, "fileset")?;
    let mut clean = raw.as_str();
    while let Some(rest) = clean.strip_prefix("./") {
        clean = rest.trim_start_matches('/');
    }
    let pat: Vec<char> = clean.chars().collect();
    let root = resolve(&base);
    let mut found = Vec::new();
    let mut stack = vec![(root.clone(), String::new())];
    let mut seen = 0usize;
    while let Some((dir, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            seen += 1;
            if seen > MAX_LIST {
                return Err(format!(
                    "fileset(): more than {MAX_LIST} files under {base}"
                ));
            }
            let name = e.file_name().to_string_lossy().to_string();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push((e.path(), r));
            } else if ft.is_file() {
                let chars: Vec<char> = r.chars().collect();
                if glob_match(&pat, &chars) {
                    found.push(r);
                }
            }
        }
    }
    found.sort();
    Ok(Value::Array(found.into_iter().map(Value::String).collect()))
}
