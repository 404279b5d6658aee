//! Reading and parsing a module's files, and the small helpers every step uses: evaluating an hcl-edit
//! expression, a block's labels and attributes, and whether a text references a name.

use super::Loaded;
use crate::diag::{Diag, Source};
use crate::eval::Scope;
use hcl::edit::structure::{Block, Body};
use hcl::Value;
use std::path::{Path, PathBuf};

pub(crate) fn parse_diag(src: &Source, e: &hcl::edit::parser::Error) -> Diag {
    let loc = e.location();
    let pos = src.at(loc.line(), loc.column());
    let msg = e
        .message()
        .lines()
        .next()
        .unwrap_or("invalid syntax")
        .trim()
        .to_string();
    let msg = if msg.is_empty() {
        "invalid syntax".to_string()
    } else {
        msg
    };
    Diag::new(Some(pos), None, format!("syntax error: {msg}"))
}

/// Evaluates an hcl-edit expression; the error is one sentence.
pub(crate) fn eval(expr: &hcl::edit::expr::Expression, scope: &Scope<'_>) -> Result<Value, String> {
    let mut expr = expr.clone();
    let templates = crate::eval::lift_templates(&mut expr);
    let e: hcl::Expression = expr.into();
    crate::eval::with_templates(templates, || crate::eval::eval(&e, scope))
}

pub(super) struct ParsedFile {
    pub(super) src: Source,
    pub(super) body: Body,
}

pub(super) fn parse_files(dir: &Path, out: &mut Loaded) -> Vec<ParsedFile> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                p.is_file()
                    && (n.ends_with(".tf") || n.ends_with(".tf.json") || n.ends_with(".hcl"))
                    && !n.ends_with(".monitortest.hcl")
            })
            .collect(),
        Err(e) => {
            out.errors.push(Diag::new(
                None,
                None,
                format!("cannot read directory {}: {e}", dir.display()),
            ));
            return Vec::new();
        }
    };
    paths.sort();
    let mut files = Vec::new();
    for p in paths {
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) => {
                out.errors.push(Diag::new(
                    None,
                    None,
                    format!("cannot read {}: {e}", p.display()),
                ));
                continue;
            }
        };
        let mut src = Source::new(p.display().to_string(), text);
        out.files += 1;
        if src.name.ends_with(".tf.json") {
            match super::json::to_native(&src) {
                Ok(native) => src = native,
                Err(d) => {
                    out.errors.push(d);
                    continue;
                }
            }
        }
        match hcl::edit::parser::parse_body(&src.text) {
            Ok(body) => files.push(ParsedFile { src, body }),
            Err(e) => {
                // A line break inside an object `for`, which Terraform accepts (see newlines.rs).
                let joined = super::newlines::join_object_for_lines(&src.text).and_then(|t| {
                    let body = hcl::edit::parser::parse_body(&t).ok()?;
                    Some(ParsedFile {
                        src: Source::new(src.name.clone(), t),
                        body,
                    })
                });
                match joined {
                    Some(f) => files.push(f),
                    None => out.errors.push(parse_diag(&src, &e)),
                }
            }
        }
    }
    files
}

pub(super) fn label(b: &Block, i: usize) -> Option<&str> {
    b.labels.get(i).map(|l| l.as_str())
}

pub(super) fn attr<'a>(b: &'a Block, key: &str) -> Option<&'a hcl::edit::structure::Attribute> {
    b.body
        .iter()
        .find_map(|s| s.as_attribute().filter(|a| a.key.as_str() == key))
}

/// Whether `text` references `key` (e.g. `var.env`) as a whole traversal step.
pub(super) fn references(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + key.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
    })
}
