//! String functions, `format` with Go's verbs, and the regex functions (RE2 syntax, as Terraform's).

use super::encoding::jsonencode_value;
use super::types::f64_to_string;
use super::{as_int, as_list, as_map, str_arg, string, to_num, to_str, want, want_min, R};
use crate::eval::{self, to_bool, Scope};
use hcl::{Map, Value};

/// One `%` verb of `format`: flags, width, precision and the verb letter.
// Over 100 lines: one match arm per Go verb, kept in one place so the verb table reads whole.
pub(super) fn format_one(
    out: &mut String,
    flags: &str,
    width: Option<usize>,
    prec: Option<usize>,
    verb: char,
    arg: &Value,
) -> Result<(), String> {
    let text = match verb {
        'v' if flags.contains('#') => jsonencode_value(arg),
        's' | 'v' => match arg {
            Value::Array(_) | Value::Object(_) if verb == 'v' => jsonencode_value(arg),
            Value::Null => "null".to_string(),
            other => {
                let s = to_str(other).map_err(|e| format!("format(): %{verb}: {e}"))?;
                match prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
        },
        'q' => serde_json::to_string(&to_str(arg)?).map_err(|e| e.to_string())?,
        't' => to_bool(arg)
            .map_err(|e| format!("format(): %t: {e}"))?
            .to_string(),
        'd' | 'b' | 'o' | 'x' | 'X' | 'c' => {
            let f = to_num(arg).map_err(|e| format!("format(): %{verb}: {e}"))?;
            if f.fract() != 0.0 && verb != 'x' && verb != 'X' {
                return Err(format!("format(): %{verb} needs a whole number, got {f}"));
            }
            let i = f as i64;
            let sign = if flags.contains('+') && i >= 0 {
                "+"
            } else {
                ""
            };
            match verb {
                'd' => format!("{sign}{i}"),
                'b' => format!("{sign}{i:b}"),
                'o' => format!("{sign}{i:o}"),
                'x' => format!("{sign}{i:x}"),
                'X' => format!("{sign}{i:X}"),
                _ => char::from_u32(i as u32)
                    .map(String::from)
                    .unwrap_or_default(),
            }
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let f = to_num(arg).map_err(|e| format!("format(): %{verb}: {e}"))?;
            let sign = if flags.contains('+') && f >= 0.0 {
                "+"
            } else {
                ""
            };
            let body = match verb {
                'f' | 'F' => format!("{f:.p$}", p = prec.unwrap_or(6).min(30)),
                'e' | 'E' => {
                    let s = format!("{f:.p$e}", p = prec.unwrap_or(6).min(30));
                    let s = go_exponent(&s);
                    if verb == 'E' {
                        s.to_uppercase()
                    } else {
                        s
                    }
                }
                _ => match prec {
                    Some(p) => {
                        let p = p.clamp(1, 30);
                        let s = format!("{f:.p$e}", p = p - 1);
                        let back: f64 = s.parse().unwrap_or(f);
                        back.to_string()
                    }
                    None => f64_to_string(f),
                },
            };
            format!("{sign}{body}")
        }
        other => return Err(format!("format(): the verb %{other} is not supported")),
    };
    let len = text.chars().count();
    match width {
        Some(w) if w > len => {
            let pad = w - len;
            if flags.contains('-') {
                out.push_str(&text);
                out.extend(std::iter::repeat_n(' ', pad));
            } else if flags.contains('0') && "dbxXofFeEgG".contains(verb) {
                let (sign, digits) = match text.strip_prefix('-') {
                    Some(d) => ("-", d),
                    None => ("", text.as_str()),
                };
                out.push_str(sign);
                out.extend(std::iter::repeat_n('0', pad));
                out.push_str(digits);
            } else {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(&text);
            }
        }
        _ => out.push_str(&text),
    }
    Ok(())
}

/// Rust writes `1.5e3`, Go `1.5e+03`.
pub(super) fn go_exponent(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s.to_string(),
    }
}

pub(super) fn format_str(fmt: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&p) = chars.peek() {
            if "+-# 0".contains(p) {
                flags.push(p);
                chars.next();
            } else {
                break;
            }
        }
        let digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut d = String::new();
            while let Some(&p) = chars.peek() {
                if p.is_ascii_digit() {
                    d.push(p);
                    chars.next();
                } else {
                    break;
                }
            }
            d.parse::<usize>().ok()
        };
        let width = digits(&mut chars);
        let prec = if chars.peek() == Some(&'.') {
            chars.next();
            Some(digits(&mut chars).unwrap_or(0))
        } else {
            None
        };
        let verb = chars
            .next()
            .ok_or("format(): the format string ends with a lone %")?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args.get(next).ok_or_else(|| {
            format!(
                "format(): the format string needs more arguments than the {} given",
                args.len()
            )
        })?;
        next += 1;
        format_one(&mut out, &flags, width, prec, verb, arg)?;
    }
    if next < args.len() {
        return Err(format!(
            "format(): {} argument(s) given but the format string uses {next}",
            args.len()
        ));
    }
    Ok(out)
}

pub(super) fn format(a: &[Value], _: &Scope<'_>) -> R {
    want_min(a, 1, "format")?;
    string(format_str(&str_arg(a, 0, "format")?, &a[1..])?)
}

pub(super) fn formatlist(a: &[Value], _: &Scope<'_>) -> R {
    want_min(a, 1, "formatlist")?;
    let fmt = str_arg(a, 0, "formatlist")?;
    let mut n: Option<usize> = None;
    for v in &a[1..] {
        if let Value::Array(l) = v {
            match n {
                Some(m) if m != l.len() => {
                    return Err("formatlist(): all list arguments must have the same length".into())
                }
                _ => n = Some(l.len()),
            }
        }
    }
    let n = n.unwrap_or(1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let row: Vec<Value> = a[1..]
            .iter()
            .map(|v| match v {
                Value::Array(l) => l[i].clone(),
                other => other.clone(),
            })
            .collect();
        out.push(Value::String(format_str(&fmt, &row)?));
    }
    Ok(Value::Array(out))
}

pub(super) fn chomp(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "chomp")?;
    string(str_arg(a, 0, "chomp")?.trim_end_matches(['\n', '\r']))
}

pub(super) fn endswith(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "endswith")?;
    Ok(Value::Bool(
        str_arg(a, 0, "endswith")?.ends_with(&str_arg(a, 1, "endswith")?),
    ))
}

pub(super) fn startswith(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "startswith")?;
    Ok(Value::Bool(
        str_arg(a, 0, "startswith")?.starts_with(&str_arg(a, 1, "startswith")?),
    ))
}

pub(super) fn strcontains(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "strcontains")?;
    Ok(Value::Bool(
        str_arg(a, 0, "strcontains")?.contains(&str_arg(a, 1, "strcontains")?),
    ))
}

pub(super) fn indent(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "indent")?;
    let n = as_int(&a[0], "indent")?.clamp(0, 1000) as usize;
    let s = str_arg(a, 1, "indent")?;
    let pad = " ".repeat(n);
    string(s.replace('\n', &format!("\n{pad}")))
}

pub(super) fn join(a: &[Value], _: &Scope<'_>) -> R {
    want_min(a, 2, "join")?;
    let sep = str_arg(a, 0, "join")?;
    let mut parts = Vec::new();
    for list in &a[1..] {
        for v in as_list(list, "join")? {
            parts.push(to_str(v).map_err(|e| format!("join(): {e}"))?);
        }
    }
    string(parts.join(&sep))
}

pub(super) fn lower(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "lower")?;
    string(str_arg(a, 0, "lower")?.to_lowercase())
}

pub(super) fn upper(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "upper")?;
    string(str_arg(a, 0, "upper")?.to_uppercase())
}

pub(super) fn title(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "title")?;
    let s = str_arg(a, 0, "title")?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    string(out)
}

pub(super) fn strrev(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "strrev")?;
    string(str_arg(a, 0, "strrev")?.chars().rev().collect::<String>())
}

pub(super) fn substr(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 3, "substr")?;
    let chars: Vec<char> = str_arg(a, 0, "substr")?.chars().collect();
    let len = chars.len() as i64;
    let mut off = as_int(&a[1], "substr")?;
    let n = as_int(&a[2], "substr")?;
    if off < 0 {
        off += len;
    }
    if off < 0 || off > len {
        return Err("substr(): the offset is outside the string".into());
    }
    let end = if n < 0 { len } else { (off + n).min(len) };
    string(chars[off as usize..end as usize].iter().collect::<String>())
}

pub(super) fn trim(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "trim")?;
    let cut: Vec<char> = str_arg(a, 1, "trim")?.chars().collect();
    string(str_arg(a, 0, "trim")?.trim_matches(|c| cut.contains(&c)))
}

pub(super) fn trimprefix(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "trimprefix")?;
    let s = str_arg(a, 0, "trimprefix")?;
    let p = str_arg(a, 1, "trimprefix")?;
    string(s.strip_prefix(&p).unwrap_or(&s))
}

pub(super) fn trimsuffix(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "trimsuffix")?;
    let s = str_arg(a, 0, "trimsuffix")?;
    let p = str_arg(a, 1, "trimsuffix")?;
    string(s.strip_suffix(&p).unwrap_or(&s))
}

pub(super) fn trimspace(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "trimspace")?;
    string(str_arg(a, 0, "trimspace")?.trim())
}

pub(super) fn split(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "split")?;
    let sep = str_arg(a, 0, "split")?;
    let s = str_arg(a, 1, "split")?;
    if s.is_empty() {
        return Ok(Value::Array(vec![Value::from("")]));
    }
    if sep.is_empty() {
        return Ok(Value::Array(
            s.chars().map(|c| Value::String(c.to_string())).collect(),
        ));
    }
    Ok(Value::Array(
        s.split(&sep)
            .map(|p| Value::String(p.to_string()))
            .collect(),
    ))
}

pub(super) fn compile(pattern: &str, name: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            format!(
                "{name}(): invalid regular expression: {}",
                e.to_string().lines().last().unwrap_or("").trim()
            )
        })
}

/// What `regex` returns for one match: the match, a list of the groups, or an object of named groups.
pub(super) fn captures_value(re: &regex::Regex, c: &regex::Captures<'_>) -> Value {
    let text = |i: usize| Value::from(c.get(i).map(|m| m.as_str()).unwrap_or(""));
    let named: Vec<&str> = re.capture_names().flatten().collect();
    if !named.is_empty() {
        let mut o = Map::new();
        for n in named {
            o.insert(
                n.to_string(),
                Value::from(c.name(n).map(|m| m.as_str()).unwrap_or("")),
            );
        }
        Value::Object(o)
    } else if re.captures_len() > 1 {
        Value::Array((1..re.captures_len()).map(text).collect())
    } else {
        text(0)
    }
}

pub(super) fn regex(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "regex")?;
    let re = compile(&str_arg(a, 0, "regex")?, "regex")?;
    let s = str_arg(a, 1, "regex")?;
    match re.captures(&s) {
        Some(c) => Ok(captures_value(&re, &c)),
        None => Err("regex(): the pattern did not match (use regexall() or can() to test)".into()),
    }
}

pub(super) fn regexall(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "regexall")?;
    let re = compile(&str_arg(a, 0, "regexall")?, "regexall")?;
    let s = str_arg(a, 1, "regexall")?;
    Ok(Value::Array(
        re.captures_iter(&s)
            .map(|c| captures_value(&re, &c))
            .collect(),
    ))
}

pub(super) fn replace(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 3, "replace")?;
    let s = str_arg(a, 0, "replace")?;
    let from = str_arg(a, 1, "replace")?;
    let to = str_arg(a, 2, "replace")?;
    if from.len() > 1 && from.starts_with('/') && from.ends_with('/') {
        let re = compile(&from[1..from.len() - 1], "replace")?;
        return string(re.replace_all(&s, to.as_str()).into_owned());
    }
    if from.is_empty() {
        return string(s);
    }
    string(s.replace(&from, &to))
}

pub(super) fn templatestring(a: &[Value], s: &Scope<'_>) -> R {
    want(a, 2, "templatestring")?;
    let text = str_arg(a, 0, "templatestring")?;
    eval::render_text(&text, as_map(&a[1], "templatestring")?, s)
}
