//! One module's load, step by step: its scope (`path.*`), variables, locals and module calls (in as many
//! passes as their references need), the monitor resources, `moved` and `import` blocks, and its outputs.
//! Errors that only matter if a monitor uses them (an unset variable, a failed local) are deferred.

use super::call::{is_external_call, load_module_call};
use super::instances::MAX_INSTANCES;
use super::parse::{attr, eval, label, parse_files, references, ParsedFile};
use super::resource::load_resource;
use super::vars::{bind_variables, Override};
use super::{ImportHint, Loaded, Moved};
use crate::diag::{Diag, Pos};
use crate::eval::{base_scope, Scope, EXTERNAL_MODULE};
use crate::model::{self, MONITOR_TYPES};
use hcl::edit::structure::{Block, Structure};
use hcl::edit::Span;
use hcl::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

pub(super) struct Module {
    pub(super) dir: PathBuf,
    /// `path.module`: the directory relative to the root module's (`.` for the root).
    pub(super) rel: String,
    /// The module call's name (empty for the root), for messages.
    pub(super) name: String,
    /// Address prefix, e.g. `module.api.` (empty for the root).
    pub(super) prefix: String,
    /// For a child module: the inputs given by the `module` block.
    pub(super) inputs: Option<Map<String, (Value, Pos)>>,
    /// For a child module: inputs whose expression failed, with why (reported only if a monitor uses them).
    pub(super) failed_inputs: HashMap<String, Diag>,
    /// For the root: values from -var, -var-file and TF_VAR_ (later wins).
    pub(super) overrides: Vec<(String, Override)>,
    pub(super) depth: usize,
    pub(super) call_pos: Option<Pos>,
    /// Errors of variables and locals that only matter if a monitor uses them (a directory of ordinary
    /// Terraform has variables set only in its CI and locals that reference other resources), keyed by
    /// `var.NAME` / `local.NAME`, with whether they were reported.
    pub(super) deferred: RefCell<HashMap<String, (Diag, bool)>>,
}

impl Module {
    /// The deferred error that `text` references, if any, else `generic`.
    pub(super) fn explain(&self, text: Option<&str>, generic: Diag) -> Diag {
        let d = self.deferred.borrow();
        let mut keys: Vec<&String> = d.keys().collect();
        keys.sort();
        keys.into_iter()
            .find(|k| text.is_some_and(|t| references(t, k)))
            .and_then(|k| d.get(k).map(|(diag, _)| diag.clone()))
            .unwrap_or(generic)
    }

    /// Reports an evaluation error of `text`: the deferred errors it references if any, else `generic`.
    pub(super) fn fail(&self, text: Option<&str>, generic: Diag, out: &mut Loaded) {
        let mut d = self.deferred.borrow_mut();
        let mut found = false;
        let mut keys: Vec<&String> = d.keys().collect();
        keys.sort();
        let hits: Vec<String> = keys
            .into_iter()
            .filter(|k| text.is_some_and(|t| references(t, k)))
            .cloned()
            .collect();
        for k in hits {
            if let Some((diag, reported)) = d.get_mut(&k) {
                found = true;
                // A root cause is reported once, however many references lead to it.
                if !*reported {
                    *reported = true;
                    if !out.errors.iter().any(|e| e == diag) {
                        out.errors.push(diag.clone());
                    }
                }
            }
        }
        if !found {
            out.errors.push(generic);
        }
    }
}

/// What a module gives its caller: its outputs, and why the ones that failed did (reported only if used).
#[derive(Default)]
pub(super) struct Outputs {
    pub(super) values: Map<String, Value>,
    pub(super) failed: Vec<(String, Diag)>,
}

/// Loads one module, its steps in the order their references need: variables, then locals and module
/// calls, then the blocks that use them; returns its outputs for the caller.
pub(super) fn load_module(m: &Module, out: &mut Loaded) -> Outputs {
    let files = parse_files(&m.dir, out);
    let mut ctx = module_scope(m);
    let vars = bind_variables(m, &files, &ctx, out);
    ctx.set("var", Value::Object(vars));
    declare_monitor_refs(m, &files, &mut ctx);
    let late = late_locals(&files);
    let resolved = locals_and_calls(m, &files, &late, &mut ctx, out);
    defer_failures(m, resolved.failed_outputs, resolved.failed_locals);
    ctx.set("local", Value::Object(resolved.locals));
    // Again, now that count and for_each may use locals and module outputs.
    declare_monitor_refs(m, &files, &mut ctx);
    load_blocks(m, &files, &late, &mut ctx, out);
    let _ = &m.call_pos;
    module_outputs(m, &files, &ctx)
}

/// The scope a module's expressions start from: the base scope and `path.module`, `path.root`, `path.cwd`.
fn module_scope(m: &Module) -> Scope<'static> {
    let mut ctx = base_scope();
    let mut pathv = Map::new();
    pathv.insert("module".to_string(), Value::from(m.rel.clone()));
    pathv.insert("root".to_string(), Value::from("."));
    pathv.insert("cwd".to_string(), Value::from("."));
    ctx.set("path", Value::Object(pathv));
    ctx
}

/// A local whose expression failed for good: (name, expression text, error).
type FailedLocal<'f> = (&'f str, String, Diag);

/// A local not evaluated yet: (name, expression, where, expression text).
type PendingLocal<'f> = (&'f str, &'f hcl::edit::expr::Expression, Pos, String);

/// Every local of the files.
fn all_locals(files: &[ParsedFile]) -> Vec<PendingLocal<'_>> {
    let mut out = Vec::new();
    for f in files {
        for b in f
            .body
            .iter()
            .filter_map(Structure::as_block)
            .filter(|b| b.ident.as_str() == "locals")
        {
            for a in b.body.iter().filter_map(Structure::as_attribute) {
                out.push((
                    a.key.as_str(),
                    &a.value,
                    f.src.span_pos(a.span()),
                    f.src.slice(a.value.span()).unwrap_or("").to_string(),
                ));
            }
        }
    }
    out
}

/// The `<type>.<name>` of every monitor resource of the files.
fn monitor_keys(files: &[ParsedFile]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| f.body.iter().filter_map(Structure::as_block))
        .filter(|b| b.ident.as_str() == "resource")
        .filter_map(|b| match (label(b, 0), label(b, 1)) {
            (Some(t), Some(n)) if MONITOR_TYPES.contains(&t) => Some(format!("{t}.{n}")),
            _ => None,
        })
        .collect()
}

/// The locals that Terraform can only evaluate once monitors are known: those that read a monitor's
/// arguments (`datadog_monitor.a.name`, not only its `.id`), and those that use such a local. They are
/// evaluated among the monitors ([`load_blocks`]), each once what it reads is loaded.
fn late_locals(files: &[ParsedFile]) -> Vec<String> {
    let keys = monitor_keys(files);
    let locals = all_locals(files);
    let mut late: Vec<String> = locals
        .iter()
        .filter(|(_, _, _, text)| keys.iter().any(|k| reads_arguments(text, k)))
        .map(|(n, ..)| n.to_string())
        .collect();
    loop {
        let more: Vec<String> = locals
            .iter()
            .filter(|(n, ..)| !late.iter().any(|l| l == n))
            .filter(|(_, _, _, text)| late.iter().any(|l| references(text, &format!("local.{l}"))))
            .map(|(n, ..)| n.to_string())
            .collect();
        if more.is_empty() {
            return late;
        }
        late.extend(more);
    }
}

/// What the passes over locals and module calls leave besides `module.*`.
struct Resolved<'f> {
    locals: Map<String, Value>,
    failed_locals: Vec<FailedLocal<'f>>,
    /// Outputs of the modules called that failed, keyed `module.<name>.<output>`.
    failed_outputs: Vec<(String, Diag)>,
}

/// Evaluates locals and loads module calls, in as many passes as their references need: a local may use a
/// module's output and a module's inputs may use locals. A module call waits while its text names a local
/// or a module that is not known yet; one that never can be is loaded last, with those inputs failed.
/// Leaves `module.*` set in `ctx`.
fn locals_and_calls<'f>(
    m: &Module,
    files: &'f [ParsedFile],
    late: &[String],
    ctx: &mut Scope<'_>,
    out: &mut Loaded,
) -> Resolved<'f> {
    let mut pending: Vec<PendingLocal<'f>> = all_locals(files)
        .into_iter()
        .filter(|(n, ..)| !late.iter().any(|l| l == n))
        .collect();
    let mut calls: Vec<(&ParsedFile, &Block, String)> = Vec::new();
    let mut modules = Map::new();
    for f in files {
        for b in f
            .body
            .iter()
            .filter_map(Structure::as_block)
            .filter(|b| b.ident.as_str() == "module")
        {
            let name = label(b, 0).unwrap_or("").to_string();
            if is_external_call(b) {
                modules.insert(name, Value::from(EXTERNAL_MODULE));
            }
            calls.push((f, b, f.src.slice(b.span()).unwrap_or("").to_string()))
        }
    }
    let mut locals = Map::new();
    let mut failed_outputs: Vec<(String, Diag)> = Vec::new();
    let mut failed: Vec<FailedLocal<'f>> = Vec::new();
    let mut stuck = false;
    while !pending.is_empty() || !calls.is_empty() {
        ctx.set("local", Value::Object(locals.clone()));
        ctx.set("module", Value::Object(modules.clone()));
        // What is not known yet: an expression naming one of these waits (try() and can() would
        // otherwise turn "not known yet" into a wrong answer).
        let waiting: Vec<String> = pending
            .iter()
            .map(|(n, ..)| format!("local.{n}"))
            .chain(
                calls
                    .iter()
                    .map(|(_, b, _)| format!("module.{}", label(b, 0).unwrap_or(""))),
            )
            .collect();
        let waits = |text: &str, own: &str| {
            waiting
                .iter()
                .any(|w| w.as_str() != own && references(text, w))
        };
        let mut progressed = false;
        let mut still = Vec::new();
        for (name, expr, pos, text) in pending {
            if !stuck && waits(&text, &format!("local.{name}")) {
                still.push((name, expr, pos, text));
                continue;
            }
            progressed = true;
            match eval(expr, ctx) {
                Ok(v) => drop(locals.insert(name.to_string(), v)),
                Err(msg) => {
                    let diag = Diag::new(Some(pos), None, format!("local.{name}: {msg}"));
                    // Known at once, so that a module call loaded next whose input uses this local
                    // names the cause (not "there is no local value"); settled in defer_failures.
                    let cause = m.explain(Some(&text), diag.clone());
                    m.deferred
                        .borrow_mut()
                        .insert(format!("local.{name}"), (cause, false));
                    failed.push((name, text, diag))
                }
            }
        }
        pending = still;
        let (ready, blocked): (Vec<_>, Vec<_>) = calls
            .into_iter()
            .partition(|(_, _, text)| stuck || !waits(text, ""));
        calls = blocked;
        for (f, b, _) in ready {
            progressed = true;
            if let Some((name, v, failed)) = load_module_call(m, &f.src, b, ctx, out) {
                modules.insert(name, v);
                // Known at once, so that locals and module calls evaluated next name the cause of a
                // failed output (not "has no output").
                let mut d = m.deferred.borrow_mut();
                for (key, diag) in &failed {
                    d.entry(key.clone()).or_insert((diag.clone(), false));
                }
                drop(d);
                failed_outputs.extend(failed);
            }
        }
        stuck = !progressed;
    }
    ctx.set("module", Value::Object(modules));
    Resolved {
        locals,
        failed_locals: failed,
        failed_outputs,
    }
}

/// Defers the errors of failed module outputs and locals (reported only if a monitor uses them). A local
/// that failed because of another failed reference reports that one's cause: resolved in as many rounds as
/// the chain is long.
fn defer_failures(m: &Module, failed_outputs: Vec<(String, Diag)>, failed: Vec<FailedLocal<'_>>) {
    let mut d = m.deferred.borrow_mut();
    for (key, diag) in failed_outputs {
        d.entry(key).or_insert((diag, false));
    }
    // A local that failed because of another failed reference reports that one's cause: resolve
    // in as many rounds as the chain is long.
    let mut left = failed;
    while !left.is_empty() {
        let before = left.len();
        let names: Vec<String> = left.iter().map(|(n, ..)| format!("local.{n}")).collect();
        let mut again = Vec::new();
        for (name, text, diag) in left {
            let own = format!("local.{name}");
            let cause = d
                .iter()
                .filter(|(k, _)| **k != own && references(&text, k))
                .map(|(_, (vd, _))| vd.clone())
                .next();
            let blocked = names.iter().any(|n| *n != own && references(&text, n));
            match cause {
                Some(c) => drop(d.insert(own, (c, false))),
                None if blocked => again.push((name, text, diag)),
                None => drop(d.insert(own, (diag, false))),
            }
        }
        if again.len() == before {
            for (name, _, diag) in again {
                d.insert(format!("local.{name}"), (diag, false));
            }
            break;
        }
        left = again;
    }
}

/// The monitor resources, `moved` and `import` blocks of a module (other resources are counted as ignored).
/// A monitor that reads another's arguments (`datadog_monitor.a.name`, not only `.id`) is loaded after it;
/// each monitor loaded sets its arguments in `ctx` for the monitors and outputs that read them. The `late`
/// locals (see [`late_locals`]) are evaluated in the same order: each once the monitors and late locals it
/// reads are known, and the monitors that use it after it.
fn load_blocks(
    m: &Module,
    files: &[ParsedFile],
    late: &[String],
    ctx: &mut Scope<'_>,
    out: &mut Loaded,
) {
    let mut late_pending: Vec<PendingLocal<'_>> = all_locals(files)
        .into_iter()
        .filter(|(n, ..)| late.iter().any(|l| l == n))
        .collect();
    let mut monitors: Vec<(&ParsedFile, &Block, &str, &str)> = Vec::new();
    for f in files {
        for s in f.body.iter() {
            let Some(b) = s.as_block() else { continue };
            let pos = f.src.span_pos(b.span());
            match b.ident.as_str() {
                "resource" => {
                    let (Some(rtype), Some(rname)) = (label(b, 0), label(b, 1)) else {
                        out.errors.push(Diag::new(
                            Some(pos),
                            None,
                            "a resource block needs a type and a name",
                        ));
                        continue;
                    };
                    if MONITOR_TYPES.contains(&rtype) {
                        monitors.push((f, b, rtype, rname));
                    } else {
                        *out.ignored.entry(rtype.to_string()).or_default() += 1;
                    }
                }
                "moved" => {
                    let from = attr(b, "from").and_then(|a| f.src.slice(a.value.span()));
                    let to = attr(b, "to").and_then(|a| f.src.slice(a.value.span()));
                    match (from, to) {
                        (Some(from), Some(to)) => out.moved.push(Moved {
                            from: format!("{}{}", m.prefix, from),
                            to: format!("{}{}", m.prefix, to),
                            pos,
                        }),
                        _ => out.errors.push(Diag::new(
                            Some(pos),
                            None,
                            "a moved block needs `from` and `to`",
                        )),
                    }
                }
                "import" => load_import(m, f, b, pos, ctx, out),
                _ => {}
            }
        }
    }
    let mut stuck = false;
    while !monitors.is_empty() || !late_pending.is_empty() {
        let keys: Vec<String> = monitors
            .iter()
            .map(|(_, _, t, n)| format!("{t}.{n}"))
            .collect();
        let waiting_locals: Vec<String> = late_pending
            .iter()
            .map(|(n, ..)| format!("local.{n}"))
            .collect();
        let waits = |text: &str, own: &str| {
            keys.iter()
                .any(|k| k.as_str() != own && reads_arguments(text, k))
                || waiting_locals
                    .iter()
                    .any(|l| l.as_str() != own && references(text, l))
        };
        let mut still = Vec::new();
        let mut progressed = false;
        for (name, expr, pos, text) in std::mem::take(&mut late_pending) {
            if !stuck && waits(&text, &format!("local.{name}")) {
                still.push((name, expr, pos, text));
                continue;
            }
            progressed = true;
            let mut locals = match ctx.get("local") {
                Some(Value::Object(o)) => o.clone(),
                _ => Map::new(),
            };
            match eval(expr, ctx) {
                Ok(v) => drop(locals.insert(name.to_string(), v)),
                Err(msg) => {
                    // Reported only if a monitor uses it, as for the other locals.
                    let diag = Diag::new(Some(pos), None, format!("local.{name}: {msg}"));
                    let cause = m.explain(Some(&text), diag);
                    m.deferred
                        .borrow_mut()
                        .insert(format!("local.{name}"), (cause, false));
                }
            }
            ctx.set("local", Value::Object(locals));
        }
        late_pending = still;
        let mut still = Vec::new();
        for (f, b, rtype, rname) in std::mem::take(&mut monitors) {
            let own = format!("{rtype}.{rname}");
            let text = f.src.slice(b.span()).unwrap_or("");
            if !stuck && waits(text, &own) {
                still.push((f, b, rtype, rname));
                continue;
            }
            progressed = true;
            let loaded = load_resource(m, &f.src, b, rtype, rname, ctx, out);
            if !loaded.is_empty() {
                let base = format!("{}{}", m.prefix, own);
                set_monitor_value(ctx, rtype, rname, &base, loaded);
            }
        }
        monitors = still;
        // A cycle (Terraform refuses one): the rest is loaded as it is.
        stuck = !progressed;
    }
}

/// Whether `text` reads arguments of resource `key` (`datadog_monitor.a.name`, `datadog_monitor.a[0].query`,
/// the whole `datadog_monitor.a`), not only its `.id`.
fn reads_arguments(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            return false;
        }
        let mut rest = &text[i + key.len()..];
        if rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return false;
        }
        // Step over index and splat steps: `[0]`, `["k"]`, `[*]`, `.*`.
        loop {
            if let Some(r) = rest.strip_prefix(".*") {
                rest = r;
            } else if rest.starts_with('[') {
                let mut depth = 0;
                let end = rest.char_indices().find_map(|(j, c)| {
                    match c {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(j + 1)
                });
                match end {
                    Some(e) => rest = &rest[e..],
                    None => return true,
                }
            } else {
                break;
            }
        }
        let only_id = rest.strip_prefix(".id").is_some_and(|r| {
            !r.chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
        });
        !only_id
    })
}

/// Sets `<rtype>.<rname>` in `ctx` to what the instances that loaded give other expressions: each one's
/// arguments (those not set are null, as in Terraform; set-typed ones sorted and without duplicates) and
/// its `id` reference; a list of them with `count`, a map with `for_each`.
fn set_monitor_value(
    ctx: &mut Scope<'_>,
    rtype: &str,
    rname: &str,
    base: &str,
    loaded: Vec<super::resource::LoadedInstance>,
) {
    let mut by_type = match ctx.get(rtype) {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    let mut current = by_type.get(rname).cloned();
    let names = model::argument_names(rtype);
    for (suffix, each, count, mut attrs) in loaded {
        for n in &names {
            attrs.entry(n.to_string()).or_insert(Value::Null);
        }
        for set in ["tags", "restricted_roles", "notify_by", "renotify_statuses"] {
            if let Some(Value::Array(a)) = attrs.get_mut(set) {
                if a.iter().all(Value::is_string) {
                    a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                    a.dedup();
                }
            }
        }
        attrs.insert(
            "id".to_string(),
            Value::from(model::ref_token(&format!("{base}{suffix}"))),
        );
        let obj = Value::Object(attrs);
        current = Some(match (count, each, current) {
            (Some(i), _, cur) => {
                let mut list = match cur {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                let i = i as usize;
                while list.len() <= i {
                    let id = model::ref_token(&format!("{base}[{}]", list.len()));
                    list.push(Value::Object(Map::from_iter([(
                        "id".to_string(),
                        Value::from(id),
                    )])));
                }
                list[i] = obj;
                Value::Array(list)
            }
            (None, Some((key, _)), cur) => {
                let mut map = match cur {
                    Some(Value::Object(o)) => o,
                    _ => Map::new(),
                };
                let key = match key {
                    Value::String(s) => s,
                    other => crate::funcs::to_str(&other).unwrap_or_default(),
                };
                map.insert(key, obj);
                Value::Object(map)
            }
            (None, None, _) => obj,
        });
    }
    if let Some(v) = current {
        by_type.insert(rname.to_string(), v);
    }
    ctx.set(rtype, Value::Object(by_type));
}

/// An `import` block: `to` and `id`, once per item with `for_each` (Terraform 1.7), where `to` names the
/// instance with an index expression such as `datadog_monitor.m[each.key]`.
fn load_import(m: &Module, f: &ParsedFile, b: &Block, pos: Pos, ctx: &Scope<'_>, out: &mut Loaded) {
    let (Some(to), Some(id_attr)) = (
        attr(b, "to").and_then(|a| f.src.slice(a.value.span())),
        attr(b, "id"),
    ) else {
        out.errors.push(Diag::new(
            Some(pos),
            None,
            "an import block needs `to` and `id`",
        ));
        return;
    };
    let Some(insts) = super::instances::instances(m, &f.src, b, ctx, "import", out) else {
        return;
    };
    for (_, each, count) in insts {
        let ictx = super::instances::instance_ctx(ctx, &each, count);
        let to = match import_address(to, &ictx) {
            Ok(t) => t,
            Err(msg) => {
                out.errors.push(Diag::new(
                    Some(pos.clone()),
                    None,
                    format!("import: to: {msg}"),
                ));
                continue;
            }
        };
        match eval(&id_attr.value, &ictx) {
            Ok(id) => match value_to_i64(&id) {
                Some(id) => out.imports.push(ImportHint {
                    to: format!("{}{}", m.prefix, to),
                    id,
                    pos: pos.clone(),
                }),
                None => out.errors.push(Diag::new(
                    Some(pos.clone()),
                    Some(&to),
                    "import: `id` must be a monitor id (a number)",
                )),
            },
            Err(msg) => {
                out.errors
                    .push(Diag::new(Some(pos.clone()), None, format!("import: {msg}")))
            }
        }
    }
}

/// An import block's `to` with each index expression evaluated: `datadog_monitor.m[each.key]` with
/// `each.key = "cpu"` is `datadog_monitor.m["cpu"]`; literal indexes are kept as written.
fn import_address(to: &str, ctx: &Scope<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = to.trim();
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let mut depth = 0;
        let close = rest[open..]
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(open + i)
            })
            .ok_or("an index `[` is never closed")?;
        let inner = rest[open + 1..close].trim();
        let literal = inner.parse::<i64>().is_ok()
            || (inner.len() >= 2
                && inner.starts_with('"')
                && inner.ends_with('"')
                && !inner.contains("${"));
        if literal {
            out.push_str(&rest[open..=close]);
        } else {
            let e = hcl::edit::parser::parse_expr(inner).map_err(|e| e.message().to_string())?;
            match eval(&e, ctx)? {
                Value::String(s) => out.push_str(&format!("[{}]", serde_json::Value::String(s))),
                Value::Number(n) => out.push_str(&format!("[{n}]")),
                other => {
                    return Err(format!(
                        "the index `{inner}` is {}, not a string or a number",
                        crate::funcs::type_name(&other)
                    ))
                }
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The module's outputs, for the caller; one that fails is reported only if the caller uses it.
fn module_outputs(m: &Module, files: &[ParsedFile], ctx: &Scope<'_>) -> Outputs {
    let mut outputs = Outputs::default();
    for f in files {
        for b in f
            .body
            .iter()
            .filter_map(Structure::as_block)
            .filter(|b| b.ident.as_str() == "output")
        {
            let Some(name) = label(b, 0) else { continue };
            let Some(a) = attr(b, "value") else { continue };
            match eval(&a.value, ctx) {
                Ok(v) => drop(outputs.values.insert(name.to_string(), v)),
                Err(msg) => {
                    let d = Diag::new(
                        Some(f.src.span_pos(a.span())),
                        None,
                        format!("output \"{name}\" of module {}: {msg}", m.name),
                    );
                    outputs
                        .failed
                        .push((name.to_string(), m.explain(f.src.slice(a.span()), d)));
                }
            }
        }
    }
    outputs
}

/// Declares `datadog_monitor.<name>.id` (and the same for the other monitor resources) as a reference that
/// plan and sync replace with the monitor's real id (composite monitors name their children this way). A
/// resource with `count` is a list of them and one with `for_each` a map, when those can be evaluated yet.
fn declare_monitor_refs(m: &Module, files: &[ParsedFile], ctx: &mut Scope<'_>) {
    let mut by_type: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for f in files {
        for b in f
            .body
            .iter()
            .filter_map(Structure::as_block)
            .filter(|b| b.ident.as_str() == "resource")
        {
            let (Some(rtype), Some(rname)) = (label(b, 0), label(b, 1)) else {
                continue;
            };
            if !MONITOR_TYPES.contains(&rtype) {
                continue;
            }
            let base = format!("{}{}.{}", m.prefix, rtype, rname);
            let one = |suffix: &str| {
                let mut o = Map::new();
                o.insert(
                    "id".to_string(),
                    Value::from(model::ref_token(&format!("{base}{suffix}"))),
                );
                Value::Object(o)
            };
            let v = if let Some(c) = attr(b, "count") {
                match eval(&c.value, ctx)
                    .ok()
                    .and_then(|v| crate::funcs::to_num(&v).ok())
                {
                    Some(n) if n >= 0.0 && (n as usize) <= MAX_INSTANCES => {
                        Value::Array((0..n as usize).map(|i| one(&format!("[{i}]"))).collect())
                    }
                    _ => continue,
                }
            } else if let Some(fe) = attr(b, "for_each") {
                let keys: Vec<String> = match eval(&fe.value, ctx) {
                    Ok(Value::Object(o)) => o.keys().cloned().collect(),
                    Ok(Value::Array(a)) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    _ => continue,
                };
                Value::Object(
                    keys.into_iter()
                        .map(|k| {
                            let suffix = format!("[{}]", serde_json::Value::String(k.clone()));
                            (k, one(&suffix))
                        })
                        .collect(),
                )
            } else {
                one("")
            };
            by_type
                .entry(rtype)
                .or_default()
                .insert(rname.to_string(), v);
        }
    }
    for (t, v) in by_type {
        ctx.set(t, Value::Object(v));
    }
}

fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
