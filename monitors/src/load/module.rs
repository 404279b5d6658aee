//! One module's load, step by step: its scope (`path.*`), variables, locals and module calls (in as many
//! passes as their references need), the monitor resources, `moved` and `import` blocks, and its outputs.
//! Errors that only matter if a monitor uses them (an unset variable, a failed local) are deferred.
//! How monitors are seen by expressions is in [`super::monitor_refs`]; import blocks in [`super::import_block`].

use super::call::{is_external_call, load_module_call};
use super::import_block::load_import;
use super::monitor_refs::{declare_monitor_refs, late_locals, reads_arguments, set_monitor_value};
use super::parse::{attr, eval, label, parse_files, references, ParsedFile};
use super::resource::load_resource;
use super::vars::{bind_variables, Override};
use super::{Loaded, Moved};
use crate::diag::{Diag, Pos};
use crate::eval::{base_scope, Scope, EXTERNAL_MODULE};
use crate::model::MONITOR_TYPES;
use hcl::edit::structure::{Block, Structure};
use hcl::edit::Span;
use hcl::{Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
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
pub(super) type PendingLocal<'f> = (&'f str, &'f hcl::edit::expr::Expression, Pos, String);

/// Every local of the files.
pub(super) fn all_locals(files: &[ParsedFile]) -> Vec<PendingLocal<'_>> {
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

/// What the passes over locals and module calls leave besides `module.*`.
struct Resolved<'f> {
    locals: Map<String, Value>,
    failed_locals: Vec<FailedLocal<'f>>,
    /// Outputs of the modules called that failed, keyed `module.<name>.<output>`.
    failed_outputs: Vec<(String, Diag)>,
}

/// A module call not loaded yet: (its file, the block, the block's text).
type PendingCall<'f> = (&'f ParsedFile, &'f Block, String);

/// Every module call of the files, and `module.*` with the external ones (whose outputs are unknown) set.
fn module_calls(files: &[ParsedFile]) -> (Vec<PendingCall<'_>>, Map<String, Value>) {
    let mut calls: Vec<PendingCall<'_>> = Vec::new();
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
    (calls, modules)
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
    let (mut calls, mut modules) = module_calls(files);
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

/// A monitor resource not loaded yet: (its file, the block, its type, its name).
type MonitorBlock<'f> = (&'f ParsedFile, &'f Block, &'f str, &'f str);

/// The monitor resources of the files, to load in [`load_blocks`]; on the way, records `moved` and `import`
/// blocks, counts other resources as ignored, and reports blocks without their labels or attributes.
fn monitor_blocks<'f>(
    m: &Module,
    files: &'f [ParsedFile],
    ctx: &Scope<'_>,
    out: &mut Loaded,
) -> Vec<MonitorBlock<'f>> {
    let mut monitors: Vec<MonitorBlock<'f>> = Vec::new();
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
    monitors
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
    let mut monitors = monitor_blocks(m, files, ctx, out);
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
