//! Module calls: where the module's files are (a local source, or where `terraform init` installed a
//! registry or git one), each instance's inputs, and the value `module.<name>` takes from its outputs.

use super::instances::{instance_ctx, instances};
use super::module::{load_module, Module};
use super::parse::{attr, eval, label};
use super::Loaded;
use crate::diag::{Diag, Pos, Source};
use crate::eval::{Scope, EXTERNAL_MODULE};
use hcl::edit::structure::{Block, Structure};
use hcl::edit::Span;
use hcl::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How deep modules may nest (a module that includes itself stops here).
const MAX_MODULE_DEPTH: usize = 8;

/// A module call's name, its value for `module.<name>` (the outputs; a list of them with `count`, a map
/// with `for_each`) and the outputs that failed, keyed `module.<name>.<output>`.
type Called = (String, Value, Vec<(String, Diag)>);

pub(super) fn load_module_call(
    m: &Module,
    src: &Source,
    b: &Block,
    ctx: &Scope<'_>,
    out: &mut Loaded,
) -> Option<Called> {
    let pos = src.span_pos(b.span());
    let Some(name) = label(b, 0) else {
        out.errors
            .push(Diag::new(Some(pos), None, "a module block needs a name"));
        return None;
    };
    let base = format!("{}module.{}", m.prefix, name);
    let source = match attr(b, "source").map(|a| eval(&a.value, ctx)) {
        Some(Ok(Value::String(s))) => s,
        Some(Err(msg)) => {
            out.errors
                .push(Diag::new(Some(pos), Some(&base), format!("source: {msg}")));
            return None;
        }
        _ => {
            out.errors.push(Diag::new(
                Some(pos),
                Some(&base),
                "a module block needs a `source` string",
            ));
            return None;
        }
    };
    // A registry or git module is read where `terraform init` put it, if it did; else it is ignored.
    let installed = (!is_local_source(&source))
        .then(|| installed_module(&base))
        .flatten();
    if !is_local_source(&source) && installed.is_none() {
        out.ignored_modules.push(base);
        return Some((name.to_string(), Value::from(EXTERNAL_MODULE), Vec::new()));
    }
    if m.depth + 1 > MAX_MODULE_DEPTH {
        out.errors.push(Diag::new(
            Some(pos),
            Some(&base),
            format!("modules nest deeper than {MAX_MODULE_DEPTH} levels"),
        ));
        return None;
    }
    let (dir, rel) = match &installed {
        Some(d) => (lexical_join(&crate::funcs::root(), d), d.clone()),
        None => (
            lexical_join(&m.dir, &source),
            lexical_join(Path::new(&m.rel), &source)
                .to_string_lossy()
                .replace('\\', "/"),
        ),
    };
    if !dir.is_dir() {
        out.errors.push(Diag::new(
            Some(pos),
            Some(&base),
            format!("module source {} is not a directory", dir.display()),
        ));
        return None;
    }
    let insts = instances(m, src, b, ctx, &base, out)?;
    let keyed = attr(b, "for_each").is_some();
    let counted = attr(b, "count").is_some();
    let mut values = Vec::new();
    let mut failed = Vec::new();
    for (suffix, each, count) in insts {
        let ictx = instance_ctx(ctx, &each, count);
        let (inputs, failed_inputs) = call_inputs(m, src, b, &ictx, &format!("{base}{suffix}"));
        let child = Module {
            dir: dir.clone(),
            rel: rel.clone(),
            name: format!("{base}{suffix}"),
            prefix: format!("{base}{suffix}."),
            inputs: Some(inputs),
            failed_inputs,
            overrides: Vec::new(),
            depth: m.depth + 1,
            call_pos: Some(pos.clone()),
            deferred: RefCell::new(HashMap::new()),
        };
        let outputs = load_module(&child, out);
        for (o, d) in outputs.failed {
            failed.push((format!("module.{name}.{o}"), d));
        }
        let key = each.map(|(k, _)| k);
        values.push((key, Value::Object(outputs.values)));
    }
    let value = module_value(values, keyed, counted);
    Some((name.to_string(), value, failed))
}

/// A module call instance's inputs: the values of its arguments (other than the meta-arguments), and
/// why the ones that failed did (reported only if a monitor of the module uses them).
fn call_inputs(
    m: &Module,
    src: &Source,
    b: &Block,
    ctx: &Scope<'_>,
    address: &str,
) -> (Map<String, (Value, Pos)>, HashMap<String, Diag>) {
    let mut inputs = Map::new();
    let mut failed_inputs = HashMap::new();
    for a in b.body.iter().filter_map(Structure::as_attribute) {
        let key = a.key.as_str();
        if [
            "source",
            "version",
            "count",
            "for_each",
            "providers",
            "depends_on",
        ]
        .contains(&key)
        {
            continue;
        }
        let apos = src.span_pos(a.span());
        match eval(&a.value, ctx) {
            Ok(v) => {
                inputs.insert(key.to_string(), (v, apos));
            }
            Err(msg) => {
                // Reported only if a monitor of the module uses this input.
                let d = Diag::new(Some(apos), Some(address), format!("{key}: {msg}"));
                failed_inputs.insert(key.to_string(), m.explain(src.slice(a.span()), d));
            }
        }
    }
    (inputs, failed_inputs)
}

/// `module.<name>`: the outputs of the one instance, a list of them with `count`, a map with `for_each`.
fn module_value(mut values: Vec<(Option<Value>, Value)>, keyed: bool, counted: bool) -> Value {
    if keyed {
        Value::Object(
            values
                .into_iter()
                .filter_map(|(k, v)| Some((crate::funcs::to_str(&k?).ok()?, v)))
                .collect(),
        )
    } else if counted {
        Value::Array(values.into_iter().map(|(_, v)| v).collect())
    } else {
        values.pop().map(|(_, v)| v).unwrap_or(Value::Null)
    }
}

/// Where `terraform init` installed the module called at `address` (`module.a["k"].module.b` is key
/// `a.b` in `.terraform/modules/modules.json`), relative to the root directory.
fn installed_module(address: &str) -> Option<String> {
    let mut key = String::new();
    let mut depth = 0;
    for c in address.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => key.push(c),
            _ => {}
        }
    }
    let key: Vec<&str> = key
        .split('.')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, p)| p)
        .collect();
    let key = key.join(".");
    let path = crate::funcs::root().join(".terraform/modules/modules.json");
    let text = std::fs::read_to_string(path).ok()?;
    let j: serde_json::Value = serde_json::from_str(&text).ok()?;
    j.get("Modules")?
        .as_array()?
        .iter()
        .find(|m| m.get("Key").and_then(|k| k.as_str()) == Some(key.as_str()))
        .and_then(|m| m.get("Dir")?.as_str().map(str::to_string))
}

/// Whether a module call's source is a registry or git address (kelpie reads local sources only).
pub(super) fn is_external_call(b: &Block) -> bool {
    let Some(a) = attr(b, "source") else {
        return false;
    };
    let e: hcl::Expression = a.value.clone().into();
    match e {
        hcl::Expression::String(s) => !is_local_source(&s),
        _ => false,
    }
}

fn is_local_source(s: &str) -> bool {
    s.starts_with("./") || s.starts_with("../") || s == "." || s == ".."
}

/// `base/rel` with `.` and `..` resolved lexically, so paths in messages read `dir/modules/x/main.tf`.
fn lexical_join(base: &Path, rel: &str) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in base.join(rel).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
