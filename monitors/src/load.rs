//! Loading a directory of Terraform-syntax files: variables, locals, modules with a local source,
//! `count`/`for_each`, `moved` and `import` blocks. Parsing is hcl-edit's (it keeps byte spans, so every error
//! names `file:line:col`); expressions are evaluated with hcl-rs's evaluator and the functions in [`crate::funcs`].

use crate::diag::{Diag, Pos, Source};
use crate::eval::{base_scope, Scope, EXTERNAL_MODULE};
use crate::model::{self, Monitor, MONITOR_TYPES};
use hcl::edit::structure::{Block, Body, Structure};
use hcl::edit::Span;
use hcl::{Map, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// How deep modules may nest (a module that includes itself stops here).
const MAX_MODULE_DEPTH: usize = 8;
/// Upper bound on instances of one `count`/`for_each`, so a typo cannot exhaust memory.
const MAX_INSTANCES: usize = 10_000;
/// Upper bound on monitors of one load (Datadog accounts hold far fewer).
const MAX_MONITORS: usize = 100_000;

/// Inputs of a load besides the directory.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `-var NAME=VALUE`, in command-line order.
    pub vars: Vec<String>,
    /// `-var-file FILE`, in command-line order.
    pub var_files: Vec<PathBuf>,
    /// `TF_VAR_*` environment variables (name without the prefix, value).
    pub env_vars: Vec<(String, String)>,
}

impl LoadOptions {
    /// Options with `TF_VAR_*` taken from the process environment.
    pub fn from_env(vars: Vec<String>, var_files: Vec<PathBuf>) -> LoadOptions {
        let env_vars = std::env::vars()
            .filter_map(|(k, v)| k.strip_prefix("TF_VAR_").map(|n| (n.to_string(), v)))
            .collect();
        LoadOptions {
            vars,
            var_files,
            env_vars,
        }
    }
}

/// A `moved { from, to }` block, addresses made absolute.
#[derive(Clone, Debug, PartialEq)]
pub struct Moved {
    pub from: String,
    pub to: String,
    pub pos: Pos,
}

/// An `import { to, id }` block: adopt monitor `id` as `to`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportHint {
    pub to: String,
    pub id: i64,
    pub pos: Pos,
}

/// Everything found in a directory.
#[derive(Debug, Default)]
pub struct Loaded {
    pub monitors: Vec<Monitor>,
    pub moved: Vec<Moved>,
    pub imports: Vec<ImportHint>,
    /// Resource types that are not monitors, with how many resources of each were skipped.
    pub ignored: BTreeMap<String, usize>,
    pub files: usize,
    /// Module calls with a registry or git source (not read).
    pub ignored_modules: Vec<String>,
    pub errors: Vec<Diag>,
}

impl Loaded {
    /// The one line saying what was ignored, if anything was.
    pub fn ignored_line(&self) -> Option<String> {
        let n: usize = self.ignored.values().sum();
        let mut parts = Vec::new();
        if n > 0 {
            let kinds: Vec<&str> = self.ignored.keys().map(String::as_str).collect();
            parts.push(format!(
                "{n} resource(s) of other types ({})",
                kinds.join(", ")
            ));
        }
        if !self.ignored_modules.is_empty() {
            parts.push(format!(
                "{} module(s) with a non-local source ({})",
                self.ignored_modules.len(),
                self.ignored_modules.join(", ")
            ));
        }
        (!parts.is_empty()).then(|| format!("ignored {}", parts.join(" and ")))
    }
}

/// Loads every `*.tf` and `*.hcl` file of `dir` (not `*.monitortest.hcl`).
pub fn load_dir(dir: &Path, opts: &LoadOptions) -> Loaded {
    let mut out = Loaded::default();
    let mut overrides: Vec<(String, Override)> = Vec::new();
    for (k, v) in &opts.env_vars {
        overrides.push((k.clone(), Override::Raw(v.clone(), None)));
    }
    // Terraform's order: terraform.tfvars, terraform.tfvars.json, *.auto.tfvars(.json) by name, then -var-file.
    let mut var_files: Vec<PathBuf> = Vec::new();
    for auto in ["terraform.tfvars", "terraform.tfvars.json"] {
        if dir.join(auto).is_file() {
            var_files.push(dir.join(auto));
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut autos: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p.to_string_lossy();
                p.is_file() && (n.ends_with(".auto.tfvars") || n.ends_with(".auto.tfvars.json"))
            })
            .collect();
        autos.sort();
        var_files.extend(autos);
    }
    var_files.extend(opts.var_files.iter().cloned());
    for f in &var_files {
        read_var_file(f, &mut overrides, &mut out.errors);
    }
    for v in &opts.vars {
        match v.split_once('=') {
            Some((k, val)) if !k.trim().is_empty() => overrides.push((
                k.trim().to_string(),
                Override::Raw(val.to_string(), Some("-var")),
            )),
            _ => out.errors.push(Diag::new(
                None,
                None,
                format!("-var \"{v}\" must look like NAME=VALUE"),
            )),
        }
    }
    let previous_root = crate::funcs::set_root(dir);
    let root = Module {
        dir: dir.to_path_buf(),
        rel: ".".to_string(),
        name: String::new(),
        prefix: String::new(),
        inputs: None,
        failed_inputs: HashMap::new(),
        overrides,
        depth: 0,
        call_pos: None,
        deferred: RefCell::new(HashMap::new()),
    };
    load_module(&root, &mut out);
    crate::funcs::set_root(&previous_root);
    check_duplicates(&mut out);
    dedup_errors(&mut out.errors);
    out
}

/// Keeps the first of errors with the same place and message (the instances of a `count` module share
/// one line of code), saying how many more there were.
fn dedup_errors(errors: &mut Vec<Diag>) {
    let mut seen: HashMap<(Option<Pos>, String), usize> = HashMap::new();
    let mut kept: Vec<(Diag, usize)> = Vec::new();
    for d in errors.drain(..) {
        let key = (d.pos.clone(), d.message.clone());
        match seen.get(&key) {
            Some(&i) => kept[i].1 += 1,
            None => {
                seen.insert(key, kept.len());
                kept.push((d, 0));
            }
        }
    }
    for (mut d, more) in kept {
        if more > 0 {
            d.message
                .push_str(&format!(" (and {more} more instance(s) of this line)"));
        }
        errors.push(d);
    }
}

#[derive(Clone, Debug)]
enum Override {
    /// A value given as text (from `-var` or `TF_VAR_`), typed by the variable's declared type.
    Raw(String, Option<&'static str>),
    /// A value from a var file, already evaluated.
    Value(Value),
}

fn read_var_file(path: &Path, overrides: &mut Vec<(String, Override)>, errors: &mut Vec<Diag>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(Diag::new(
                None,
                None,
                format!("cannot read var file {}: {e}", path.display()),
            ));
            return;
        }
    };
    if path.to_string_lossy().ends_with(".json") {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(o)) => {
                for (k, v) in o {
                    overrides.push((k, Override::Value(crate::funcs::from_json(v))));
                }
            }
            Ok(_) => errors.push(Diag::new(
                None,
                None,
                format!("var file {}: must be a JSON object", path.display()),
            )),
            Err(e) => errors.push(Diag::new(
                Some(Pos {
                    file: path.display().to_string(),
                    line: e.line(),
                    col: e.column(),
                }),
                None,
                format!("invalid JSON: {e}"),
            )),
        }
        return;
    }
    let src = Source::new(path.display().to_string(), text);
    let body = match hcl::edit::parser::parse_body(&src.text) {
        Ok(b) => b,
        Err(e) => {
            errors.push(parse_diag(&src, &e));
            return;
        }
    };
    let scope = base_scope();
    for s in body.iter() {
        if let Structure::Attribute(a) = s {
            let pos = src.span_pos(a.span());
            match eval(&a.value, &scope) {
                Ok(v) => overrides.push((a.key.as_str().to_string(), Override::Value(v))),
                Err(msg) => errors.push(Diag::new(Some(pos), None, msg)),
            }
        }
    }
}

pub(crate) fn parse_diag(src: &Source, e: &hcl::edit::parser::Error) -> Diag {
    let loc = e.location();
    let pos = Pos {
        file: src.name.clone(),
        line: loc.line(),
        col: loc.column(),
    };
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

struct Module {
    dir: PathBuf,
    /// `path.module`: the directory relative to the root module's (`.` for the root).
    rel: String,
    /// The module call's name (empty for the root), for messages.
    name: String,
    /// Address prefix, e.g. `module.api.` (empty for the root).
    prefix: String,
    /// For a child module: the inputs given by the `module` block.
    inputs: Option<Map<String, (Value, Pos)>>,
    /// For a child module: inputs whose expression failed, with why (reported only if a monitor uses them).
    failed_inputs: HashMap<String, Diag>,
    /// For the root: values from -var, -var-file and TF_VAR_ (later wins).
    overrides: Vec<(String, Override)>,
    depth: usize,
    call_pos: Option<Pos>,
    /// Errors of variables and locals that only matter if a monitor uses them (a directory of ordinary
    /// Terraform has variables set only in its CI and locals that reference other resources), keyed by
    /// `var.NAME` / `local.NAME`, with whether they were reported.
    deferred: RefCell<HashMap<String, (Diag, bool)>>,
}

/// Whether `text` references `key` (e.g. `var.env`) as a whole traversal step.
fn references(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + key.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
    })
}

impl Module {
    /// The deferred error that `text` references, if any, else `generic`.
    fn explain(&self, text: Option<&str>, generic: Diag) -> Diag {
        let d = self.deferred.borrow();
        let mut keys: Vec<&String> = d.keys().collect();
        keys.sort();
        keys.into_iter()
            .find(|k| text.is_some_and(|t| references(t, k)))
            .and_then(|k| d.get(k).map(|(diag, _)| diag.clone()))
            .unwrap_or(generic)
    }

    /// Reports an evaluation error of `text`: the deferred errors it references if any, else `generic`.
    fn fail(&self, text: Option<&str>, generic: Diag, out: &mut Loaded) {
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
                if !*reported {
                    *reported = true;
                    out.errors.push(diag.clone());
                }
            }
        }
        if !found {
            out.errors.push(generic);
        }
    }
}

/// Evaluates an hcl-edit expression; the error is one sentence.
pub(crate) fn eval(expr: &hcl::edit::expr::Expression, scope: &Scope<'_>) -> Result<Value, String> {
    let mut expr = expr.clone();
    let templates = crate::eval::lift_templates(&mut expr);
    let e: hcl::Expression = expr.into();
    crate::eval::with_templates(templates, || crate::eval::eval(&e, scope))
}

struct ParsedFile {
    src: Source,
    body: Body,
}

fn parse_files(dir: &Path, out: &mut Loaded) -> Vec<ParsedFile> {
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                p.is_file()
                    && (n.ends_with(".tf") || n.ends_with(".hcl"))
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
        let src = Source::new(p.display().to_string(), text);
        out.files += 1;
        match hcl::edit::parser::parse_body(&src.text) {
            Ok(body) => files.push(ParsedFile { src, body }),
            Err(e) => out.errors.push(parse_diag(&src, &e)),
        }
    }
    files
}

fn label(b: &Block, i: usize) -> Option<&str> {
    b.labels.get(i).map(|l| l.as_str())
}

fn attr<'a>(b: &'a Block, key: &str) -> Option<&'a hcl::edit::structure::Attribute> {
    b.body
        .iter()
        .find_map(|s| s.as_attribute().filter(|a| a.key.as_str() == key))
}

/// What a module gives its caller: its outputs, and why the ones that failed did (reported only if used).
#[derive(Default)]
struct Outputs {
    values: Map<String, Value>,
    failed: Vec<(String, Diag)>,
}

fn load_module(m: &Module, out: &mut Loaded) -> Outputs {
    let files = parse_files(&m.dir, out);
    let mut ctx = base_scope();
    let mut pathv = Map::new();
    pathv.insert("module".to_string(), Value::from(m.rel.clone()));
    pathv.insert("root".to_string(), Value::from("."));
    pathv.insert("cwd".to_string(), Value::from("."));
    ctx.set("path", Value::Object(pathv));

    // Variables.
    let mut vars = Map::new();
    let mut declared: Vec<String> = Vec::new();
    for f in &files {
        for b in f
            .body
            .iter()
            .filter_map(Structure::as_block)
            .filter(|b| b.ident.as_str() == "variable")
        {
            let Some(name) = label(b, 0) else {
                out.errors.push(Diag::new(
                    Some(f.src.span_pos(b.span())),
                    None,
                    "a variable block needs a name",
                ));
                continue;
            };
            declared.push(name.to_string());
            let pos = f.src.span_pos(b.span());
            let ty = attr(b, "type")
                .and_then(|a| f.src.slice(a.value.span()))
                .unwrap_or("")
                .to_string();
            let mut value = None;
            if let Some(d) = attr(b, "default") {
                match eval(&d.value, &ctx) {
                    Ok(v) => value = Some(v),
                    Err(msg) => out.errors.push(Diag::new(
                        Some(pos.clone()),
                        None,
                        format!("variable \"{name}\": {msg}"),
                    )),
                }
            }
            if let Some(inputs) = &m.inputs {
                if let Some((v, _)) = inputs.get(name) {
                    value = Some(v.clone());
                }
            } else {
                for (k, o) in &m.overrides {
                    if k != name {
                        continue;
                    }
                    match o {
                        Override::Value(v) => value = Some(v.clone()),
                        Override::Raw(text, _) => match typed_raw(text, &ty) {
                            Ok(v) => value = Some(v),
                            Err(msg) => out.errors.push(Diag::new(
                                Some(pos.clone()),
                                None,
                                format!("variable \"{name}\": the value given ({text}) is invalid: {msg}"),
                            )),
                        },
                    }
                }
            }
            // Terraform converts the value to the declared type: "5" to 5 for number, missing optional()
            // attributes of an object filled in with their default or null.
            let value = match (value, attr(b, "type")) {
                (Some(v), Some(t)) => {
                    let t: hcl::Expression = t.value.clone().into();
                    match convert_type(v, &t) {
                        Ok(v) => Some(v),
                        Err(msg) => {
                            out.errors.push(Diag::new(
                                Some(pos.clone()),
                                None,
                                format!(
                                    "variable \"{name}\": the value does not match its type: {msg}"
                                ),
                            ));
                            None
                        }
                    }
                }
                (v, _) => v,
            };
            match value {
                Some(v) => {
                    vars.insert(name.to_string(), v);
                }
                None if m.failed_inputs.contains_key(name) => {
                    let d = m.failed_inputs.get(name).cloned();
                    if let Some(d) = d {
                        m.deferred.borrow_mut().insert(format!("var.{name}"), (d, false));
                    }
                }
                None => drop(m.deferred.borrow_mut().insert(format!("var.{name}"), (Diag::new(
                    Some(pos),
                    None,
                    if m.inputs.is_some() {
                        format!("variable \"{name}\" has no default and the module block does not set it")
                    } else {
                        format!("variable \"{name}\" is not set: give it a default, -var {name}=..., -var-file or TF_VAR_{name}")
                    },
                ), false))),
            }
        }
    }
    if let Some(inputs) = &m.inputs {
        for (k, (_, pos)) in inputs {
            if !declared.contains(k) {
                out.errors.push(Diag::new(
                    Some(pos.clone()),
                    None,
                    format!("module {} has no variable named \"{k}\"", m.dir.display()),
                ));
            }
        }
    } else {
        for (k, o) in &m.overrides {
            if let Override::Raw(_, Some(flag)) = o {
                if !declared.contains(k) {
                    out.errors.push(Diag::new(
                        None,
                        None,
                        format!("{flag} sets \"{k}\", but no variable \"{k}\" is declared"),
                    ));
                }
            }
        }
    }
    ctx.set("var", Value::Object(vars));
    declare_monitor_refs(m, &files, &mut ctx);

    // Locals and module calls, in as many passes as their references need: a local may use a module's
    // output and a module's inputs may use locals. A module call waits while its text names a local or a
    // module that is not known yet; one that never can be is loaded last, with those inputs failed.
    let mut pending: Vec<(&str, &hcl::edit::expr::Expression, Pos, String)> = Vec::new();
    let mut calls: Vec<(&ParsedFile, &Block, String)> = Vec::new();
    let mut modules = Map::new();
    for f in &files {
        for b in f.body.iter().filter_map(Structure::as_block) {
            match b.ident.as_str() {
                "locals" => {
                    for a in b.body.iter().filter_map(Structure::as_attribute) {
                        pending.push((
                            a.key.as_str(),
                            &a.value,
                            f.src.span_pos(a.span()),
                            f.src.slice(a.value.span()).unwrap_or("").to_string(),
                        ));
                    }
                }
                "module" => {
                    let name = label(b, 0).unwrap_or("").to_string();
                    if is_external_call(b) {
                        modules.insert(name, Value::from(EXTERNAL_MODULE));
                    }
                    calls.push((f, b, f.src.slice(b.span()).unwrap_or("").to_string()))
                }
                _ => {}
            }
        }
    }
    let mut locals = Map::new();
    let mut failed_outputs: Vec<(String, Diag)> = Vec::new();
    // Locals that failed for good: (name, expression text, error).
    let mut failed: Vec<(&str, String, Diag)> = Vec::new();
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
            match eval(expr, &ctx) {
                Ok(v) => drop(locals.insert(name.to_string(), v)),
                Err(msg) => failed.push((
                    name,
                    text,
                    Diag::new(Some(pos), None, format!("local.{name}: {msg}")),
                )),
            }
        }
        pending = still;
        let (ready, blocked): (Vec<_>, Vec<_>) = calls
            .into_iter()
            .partition(|(_, _, text)| stuck || !waits(text, ""));
        calls = blocked;
        for (f, b, _) in ready {
            progressed = true;
            if let Some((name, v, failed)) = load_module_call(m, &f.src, b, &ctx, out) {
                modules.insert(name, v);
                failed_outputs.extend(failed);
            }
        }
        stuck = !progressed;
    }
    ctx.set("module", Value::Object(modules));
    {
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
    ctx.set("local", Value::Object(locals));
    // Again, now that count and for_each may use locals and module outputs.
    declare_monitor_refs(m, &files, &mut ctx);

    for f in &files {
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
                        load_resource(m, &f.src, b, rtype, rname, &ctx, out);
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
                "import" => {
                    let to = attr(b, "to").and_then(|a| f.src.slice(a.value.span()));
                    let id = attr(b, "id").map(|a| eval(&a.value, &ctx));
                    match (to, id) {
                        (Some(to), Some(Ok(id))) => match value_to_i64(&id) {
                            Some(id) => out.imports.push(ImportHint {
                                to: format!("{}{}", m.prefix, to),
                                id,
                                pos,
                            }),
                            None => out.errors.push(Diag::new(
                                Some(pos),
                                Some(to),
                                "import: `id` must be a monitor id (a number)",
                            )),
                        },
                        (_, Some(Err(msg))) => {
                            out.errors
                                .push(Diag::new(Some(pos), None, format!("import: {msg}")))
                        }
                        _ => out.errors.push(Diag::new(
                            Some(pos),
                            None,
                            "an import block needs `to` and `id`",
                        )),
                    }
                }
                _ => {}
            }
        }
    }
    let _ = &m.call_pos;

    // Outputs, for the caller; one that fails is reported only if the caller uses it.
    let mut outputs = Outputs::default();
    for f in &files {
        for b in f
            .body
            .iter()
            .filter_map(Structure::as_block)
            .filter(|b| b.ident.as_str() == "output")
        {
            let Some(name) = label(b, 0) else { continue };
            let Some(a) = attr(b, "value") else { continue };
            match eval(&a.value, &ctx) {
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
fn is_external_call(b: &Block) -> bool {
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

fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Types `-var`/`TF_VAR_` text by the variable's declared type, as Terraform does: strings stay text,
/// other types are parsed as HCL expressions.
fn typed_raw(text: &str, ty: &str) -> Result<Value, String> {
    if ty.is_empty() || ty == "string" {
        return Ok(Value::from(text));
    }
    let expr = hcl::edit::parser::parse_expr(text).map_err(|e| e.message().to_string())?;
    eval(&expr, &base_scope())
}

/// Converts `v` to the Terraform type constraint `ty` as Terraform does for variables.
fn convert_type(v: Value, ty: &hcl::Expression) -> Result<Value, String> {
    use hcl::Expression as E;
    if v.is_null() {
        return Ok(v);
    }
    let call = |name: &str| match ty {
        E::FuncCall(f) if f.name.name.as_str() == name => Some(&f.args),
        _ => None,
    };
    match ty {
        E::Variable(t) => match t.as_str() {
            "string" => match v {
                Value::String(_) => Ok(v),
                Value::Number(_) | Value::Bool(_) => crate::funcs::to_str(&v).map(Value::from),
                other => Err(format!(
                    "expected a string, got {}",
                    crate::funcs::type_name(&other)
                )),
            },
            "number" => crate::funcs::to_num(&v).map(crate::funcs::num),
            "bool" => crate::eval::to_bool(&v).map(Value::Bool),
            _ => Ok(v),
        },
        _ => {
            if let Some(args) = call("optional") {
                return match args.first() {
                    Some(t) => convert_type(v, t),
                    None => Ok(v),
                };
            }
            if let Some(args) = call("list").or_else(|| call("set")) {
                let Value::Array(items) = v else {
                    return Err(format!(
                        "expected a list, got {}",
                        crate::funcs::type_name(&v)
                    ));
                };
                let t = args
                    .first()
                    .cloned()
                    .unwrap_or(E::Variable(hcl::Variable::unchecked("any")));
                let items: Vec<Value> = items
                    .into_iter()
                    .map(|x| convert_type(x, &t))
                    .collect::<Result<_, _>>()?;
                return Ok(Value::Array(items));
            }
            if let Some(args) = call("map") {
                let Value::Object(o) = v else {
                    return Err(format!(
                        "expected a map, got {}",
                        crate::funcs::type_name(&v)
                    ));
                };
                let t = args
                    .first()
                    .cloned()
                    .unwrap_or(E::Variable(hcl::Variable::unchecked("any")));
                let mut out = Map::new();
                for (k, x) in o {
                    out.insert(k, convert_type(x, &t)?);
                }
                return Ok(Value::Object(out));
            }
            if let Some(args) = call("object") {
                let Value::Object(mut o) = v else {
                    return Err(format!(
                        "expected an object, got {}",
                        crate::funcs::type_name(&v)
                    ));
                };
                let Some(E::Object(attrs)) = args.first() else {
                    return Ok(Value::Object(o));
                };
                let mut out = Map::new();
                for (k, t) in attrs {
                    let key = match k {
                        hcl::ObjectKey::Identifier(i) => i.to_string(),
                        hcl::ObjectKey::Expression(E::String(s)) => s.clone(),
                        other => other.to_string(),
                    };
                    let optional =
                        matches!(t, E::FuncCall(f) if f.name.name.as_str() == "optional");
                    match o.swap_remove(&key) {
                        Some(x) if !x.is_null() => {
                            out.insert(key, convert_type(x, t)?);
                        }
                        _ if optional => {
                            let default = match t {
                                E::FuncCall(f) => match f.args.get(1) {
                                    Some(d) => crate::eval::eval(d, &base_scope())?,
                                    None => Value::Null,
                                },
                                _ => Value::Null,
                            };
                            let inner = match t {
                                E::FuncCall(f) => f.args.first().cloned(),
                                _ => None,
                            };
                            let default = match inner {
                                Some(it) if !default.is_null() => convert_type(default, &it)?,
                                _ => default,
                            };
                            out.insert(key, default);
                        }
                        Some(x) => drop(out.insert(key, x)),
                        None => return Err(format!("attribute \"{key}\" is required")),
                    }
                }
                return Ok(Value::Object(out));
            }
            Ok(v)
        }
    }
}

/// The instances of a block with `count`/`for_each`: (address suffix, each, count) per instance.
type Instance = (String, Option<(Value, Value)>, Option<i64>);

fn instances(
    m: &Module,
    src: &Source,
    b: &Block,
    ctx: &Scope<'_>,
    what: &str,
    out: &mut Loaded,
) -> Option<Vec<Instance>> {
    let pos = src.span_pos(b.span());
    if let Some(c) = attr(b, "count") {
        let n = match eval(&c.value, ctx) {
            Ok(Value::Number(n)) => n.as_f64().unwrap_or(-1.0),
            Ok(Value::String(s)) => s.trim().parse::<f64>().unwrap_or(-1.0),
            Ok(_) => -1.0,
            Err(msg) => {
                let d = Diag::new(
                    Some(src.span_pos(c.span())),
                    Some(what),
                    format!("count: {msg}"),
                );
                m.fail(src.slice(c.span()), d, out);
                return None;
            }
        };
        if n < 0.0 || n.fract() != 0.0 || n as usize > MAX_INSTANCES {
            out.errors.push(Diag::new(
                Some(src.span_pos(c.span())),
                Some(what),
                format!("count must be a whole number between 0 and {MAX_INSTANCES}"),
            ));
            return None;
        }
        return Some(
            (0..n as i64)
                .map(|i| (format!("[{i}]"), None, Some(i)))
                .collect(),
        );
    }
    if let Some(fe) = attr(b, "for_each") {
        let v = match eval(&fe.value, ctx) {
            Ok(v) => v,
            Err(msg) => {
                let d = Diag::new(
                    Some(src.span_pos(fe.span())),
                    Some(what),
                    format!("for_each: {msg}"),
                );
                m.fail(src.slice(fe.span()), d, out);
                return None;
            }
        };
        let items: Vec<(String, Value)> = match v {
            Value::Object(o) => o.into_iter().collect(),
            Value::Array(a) => {
                let mut items = Vec::new();
                for x in a {
                    match x {
                        Value::String(s) => items.push((s.clone(), Value::String(s))),
                        _ => {
                            out.errors.push(Diag::new(
                                Some(src.span_pos(fe.span())),
                                Some(what),
                                "for_each over a list needs strings (use toset([...]) of strings, or a map)",
                            ));
                            return None;
                        }
                    }
                }
                items.sort_by(|a, b| a.0.cmp(&b.0));
                items.dedup_by(|a, b| a.0 == b.0);
                items
            }
            _ => {
                out.errors.push(Diag::new(
                    Some(src.span_pos(fe.span())),
                    Some(what),
                    "for_each needs a map or a set of strings",
                ));
                return None;
            }
        };
        if items.len() > MAX_INSTANCES {
            out.errors.push(Diag::new(
                Some(pos),
                Some(what),
                format!("for_each has more than {MAX_INSTANCES} items"),
            ));
            return None;
        }
        return Some(
            items
                .into_iter()
                .map(|(k, v)| {
                    (
                        format!("[{}]", serde_json::Value::String(k.clone())),
                        Some((Value::from(k), v)),
                        None,
                    )
                })
                .collect(),
        );
    }
    Some(vec![(String::new(), None, None)])
}

fn instance_ctx<'a>(
    ctx: &'a Scope<'a>,
    each: &Option<(Value, Value)>,
    count: Option<i64>,
) -> Scope<'a> {
    let mut c = ctx.child();
    if let Some((k, v)) = each {
        let mut o = Map::new();
        o.insert("key".to_string(), k.clone());
        o.insert("value".to_string(), v.clone());
        c.set("each", Value::Object(o));
    }
    if let Some(i) = count {
        let mut o = Map::new();
        o.insert("index".to_string(), Value::from(i));
        c.set("count", Value::Object(o));
    }
    c
}

const META_ARGS: &[&str] = &["count", "for_each", "depends_on", "provider", "lifecycle"];

fn load_resource(
    m: &Module,
    src: &Source,
    b: &Block,
    rtype: &str,
    rname: &str,
    ctx: &Scope<'_>,
    out: &mut Loaded,
) {
    let base = format!("{}{}.{}", m.prefix, rtype, rname);
    let Some(insts) = instances(m, src, b, ctx, &base, out) else {
        return;
    };
    if out.monitors.len() + insts.len() > MAX_MONITORS {
        out.errors.push(Diag::new(
            Some(src.span_pos(b.span())),
            Some(&base),
            format!("more than {MAX_MONITORS} monitors in one directory; check count, for_each and module nesting"),
        ));
        return;
    }
    // lifecycle { ignore_changes = [silenced, tags] }: those arguments are left to whoever changes them.
    let ignored: Vec<String> = b
        .body
        .iter()
        .filter_map(Structure::as_block)
        .filter(|l| l.ident.as_str() == "lifecycle")
        .filter_map(|l| attr(l, "ignore_changes"))
        .filter_map(|a| src.slice(a.value.span()))
        .flat_map(|t| {
            t.trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|x| x.trim().trim_matches('"').to_string())
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
        })
        .collect();
    for (suffix, each, count) in insts {
        let address = format!("{base}{suffix}");
        let ictx = instance_ctx(ctx, &each, count);
        let mut args = model::Args::default();
        let mut list_blocks: BTreeMap<String, (Pos, Vec<Value>)> = BTreeMap::new();
        let mut ok = true;
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    if META_ARGS.contains(&key) || ignored.iter().any(|i| i == key) {
                        continue;
                    }
                    let pos = src.span_pos(a.span());
                    match eval(&a.value, &ictx) {
                        Ok(v) => args.insert(key, v, pos, false, &address, &mut out.errors),
                        Err(msg) => {
                            ok = false;
                            let d = Diag::new(Some(pos), Some(&address), format!("{key}: {msg}"));
                            m.fail(src.slice(a.span()), d, out);
                        }
                    }
                }
                Structure::Block(inner) => {
                    let key = inner.ident.as_str();
                    if META_ARGS.contains(&key) {
                        continue;
                    }
                    let pos = src.span_pos(inner.span());
                    let blocks = if key == "dynamic" {
                        dynamic_blocks(m, src, inner, &ictx, &address, out)
                    } else {
                        block_object(m, src, inner, key, &ictx, &address, out)
                            .map(|o| vec![(key.to_string(), o)])
                    };
                    match blocks {
                        Some(blocks) => {
                            for (k, o) in blocks {
                                if model::LIST_BLOCKS.contains(&k.as_str()) {
                                    list_blocks
                                        .entry(k)
                                        .or_insert_with(|| (pos.clone(), Vec::new()))
                                        .1
                                        .push(Value::Object(o));
                                    continue;
                                }
                                args.insert(
                                    &k,
                                    Value::Object(o),
                                    pos.clone(),
                                    true,
                                    &address,
                                    &mut out.errors,
                                );
                            }
                        }
                        None => ok = false,
                    }
                }
            }
        }
        for (k, (p, items)) in list_blocks {
            args.insert(&k, Value::Array(items), p, true, &address, &mut out.errors);
        }
        if !ok {
            continue;
        }
        let pos = src.span_pos(b.span());
        match model::from_args(rtype, &address, pos, &args) {
            Ok(mon) => out.monitors.push(mon),
            Err(diags) => out.errors.extend(diags),
        }
    }
}

/// A module call's name, its value for `module.<name>` (the outputs; a list of them with `count`, a map
/// with `for_each`) and the outputs that failed, keyed `module.<name>.<output>`.
type Called = (String, Value, Vec<(String, Diag)>);

/// The attributes of a block as an object; `None` (errors reported) if one fails.
fn block_object(
    m: &Module,
    src: &Source,
    inner: &Block,
    key: &str,
    scope: &Scope<'_>,
    address: &str,
    out: &mut Loaded,
) -> Option<Map<String, Value>> {
    let mut obj = Map::new();
    let mut ok = true;
    for a in inner.body.iter().filter_map(Structure::as_attribute) {
        match eval(&a.value, scope) {
            Ok(v) => {
                obj.insert(a.key.as_str().to_string(), v);
            }
            Err(msg) => {
                ok = false;
                let d = Diag::new(
                    Some(src.span_pos(a.span())),
                    Some(address),
                    format!("{key}.{}: {msg}", a.key.as_str()),
                );
                m.fail(src.slice(a.span()), d, out);
            }
        }
    }
    // Nested blocks (scheduling_options { evaluation_window { … } }, variables { event_query { … } }) are
    // lists of objects under their name; the model shapes them as the API wants.
    for nested in inner.body.iter().filter_map(Structure::as_block) {
        let nkey = nested.ident.as_str();
        let made = if nkey == "dynamic" {
            dynamic_blocks(m, src, nested, scope, address, out)
        } else {
            block_object(m, src, nested, nkey, scope, address, out)
                .map(|o| vec![(nkey.to_string(), o)])
        };
        match made {
            Some(blocks) => {
                for (k, o) in blocks {
                    if let Value::Array(a) =
                        obj.entry(k).or_insert_with(|| Value::Array(Vec::new()))
                    {
                        a.push(Value::Object(o));
                    }
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(obj)
}

/// The blocks a `dynamic "<name>" { for_each = ... iterator = ... content { ... } }` makes: one per item,
/// with `<iterator>.key` and `<iterator>.value` (the iterator defaults to the block's name).
fn dynamic_blocks(
    m: &Module,
    src: &Source,
    d: &Block,
    scope: &Scope<'_>,
    address: &str,
    out: &mut Loaded,
) -> Option<Vec<(String, Map<String, Value>)>> {
    let pos = src.span_pos(d.span());
    let Some(name) = label(d, 0) else {
        out.errors.push(Diag::new(
            Some(pos),
            Some(address),
            "a dynamic block needs the name of the block it makes: dynamic \"monitor_thresholds\" { ... }",
        ));
        return None;
    };
    let iterator = match attr(d, "iterator") {
        Some(a) => src.slice(a.value.span()).unwrap_or(name).to_string(),
        None => name.to_string(),
    };
    let Some(content) = d
        .body
        .iter()
        .filter_map(Structure::as_block)
        .find(|b| b.ident.as_str() == "content")
    else {
        out.errors.push(Diag::new(
            Some(pos),
            Some(address),
            format!("dynamic \"{name}\" needs a `content {{ ... }}` block"),
        ));
        return None;
    };
    let Some(fe) = attr(d, "for_each") else {
        out.errors.push(Diag::new(
            Some(pos),
            Some(address),
            format!("dynamic \"{name}\" needs `for_each`"),
        ));
        return None;
    };
    let coll = match eval(&fe.value, scope) {
        Ok(v) => v,
        Err(msg) => {
            let diag = Diag::new(
                Some(src.span_pos(fe.value.span())),
                Some(address),
                format!("dynamic \"{name}\" for_each: {msg}"),
            );
            m.fail(src.slice(fe.span()), diag, out);
            return None;
        }
    };
    let items: Vec<(Value, Value)> = match coll {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i as u64), v))
            .collect(),
        Value::Object(o) => {
            let mut v: Vec<(String, Value)> = o.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
        }
        other => {
            out.errors.push(Diag::new(
                Some(src.span_pos(fe.value.span())),
                Some(address),
                format!(
                    "dynamic \"{name}\" for_each needs a list, set or map, got {}",
                    crate::funcs::type_name(&other)
                ),
            ));
            return None;
        }
    };
    let mut blocks = Vec::new();
    for (k, v) in items {
        let mut inner = scope.child();
        let mut it = Map::new();
        it.insert("key".to_string(), k);
        it.insert("value".to_string(), v);
        inner.set(&iterator, Value::Object(it));
        blocks.push((
            name.to_string(),
            block_object(m, src, content, name, &inner, address, out)?,
        ));
    }
    Some(blocks)
}

fn load_module_call(
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
            match eval(&a.value, &ictx) {
                Ok(v) => {
                    inputs.insert(key.to_string(), (v, apos));
                }
                Err(msg) => {
                    // Reported only if a monitor of the module uses this input.
                    let d = Diag::new(
                        Some(apos),
                        Some(&format!("{base}{suffix}")),
                        format!("{key}: {msg}"),
                    );
                    failed_inputs.insert(key.to_string(), m.explain(src.slice(a.span()), d));
                }
            }
        }
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
    let value = if keyed {
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
    };
    Some((name.to_string(), value, failed))
}

fn check_duplicates(out: &mut Loaded) {
    let mut by_addr: BTreeMap<String, Pos> = BTreeMap::new();
    let mut by_name: BTreeMap<String, (String, Pos)> = BTreeMap::new();
    let mut errors = Vec::new();
    for mon in &out.monitors {
        let tag = model::address_tag(&mon.address);
        if model::TAG_ADDRESS.len() + tag.len() > 200 {
            errors.push(Diag::new(
                Some(mon.pos.clone()),
                Some(&mon.address),
                "the address is too long for a Datadog tag (200 characters with `kelpie-address:`); use shorter names or keys",
            ));
        }
        if let Some(first) = by_addr.get(&tag) {
            errors.push(Diag::new(
                Some(mon.pos.clone()),
                Some(&mon.address),
                format!(
                    "duplicate address: another monitor has the same address (first at {first})"
                ),
            ));
        } else {
            by_addr.insert(tag, mon.pos.clone());
        }
        let name = mon.name.trim().to_string();
        if let Some((addr, first)) = by_name.get(&name) {
            errors.push(Diag::new(
                Some(mon.pos.clone()),
                Some(&mon.address),
                format!("duplicate name \"{name}\": {addr} at {first} has the same name"),
            ));
        } else {
            by_name.insert(name, (mon.address.clone(), mon.pos.clone()));
        }
    }
    out.errors.extend(errors);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = t.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        t
    }

    const MON: &str = r#"
resource "datadog_monitor" "m" {
  name    = "M ${var.env}"
  type    = "metric alert"
  query   = "avg(last_5m):avg:a{env:${var.env}} > 1"
  message = "m"
}
"#;

    #[test]
    fn unrelated_terraform_is_ignored_without_errors() {
        let t = dir(&[
            (
                "infra.tf",
                r#"
variable "region" {}
variable "env" { default = "prod" }
locals {
  vpc = aws_vpc.main.id
  name = "x-${var.region}"
}
resource "aws_vpc" "main" { cidr_block = "10.0.0.0/16" }
module "vpc" {
  source = "terraform-aws-modules/vpc/aws"
  cidr   = local.vpc
}
module "alerts" {
  source = "./alerts"
  env    = var.env
  vpc    = aws_vpc.main.id
}
"#,
            ),
            ("main.tf", MON),
            ("alerts/main.tf", "variable \"env\" {}\nvariable \"vpc\" {}\nresource \"datadog_monitor_metric\" \"e\" {\n  name = \"E ${var.env}\"\n  message = \"m\"\n  metric = \"a.b\"\n  critical {\n    threshold = 1\n  }\n}\n"),
        ]);
        let l = load_dir(t.path(), &LoadOptions::default());
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let addrs: Vec<&str> = l.monitors.iter().map(|m| m.address.as_str()).collect();
        assert_eq!(
            addrs,
            vec![
                "module.alerts.datadog_monitor_metric.e",
                "datadog_monitor.m"
            ]
        );
        assert_eq!(
            l.ignored_line().unwrap(),
            "ignored 1 resource(s) of other types (aws_vpc) and 1 module(s) with a non-local source (module.vpc)"
        );
    }

    #[test]
    fn a_missing_variable_is_an_error_only_when_used() {
        let t = dir(&[("main.tf", &format!("variable \"env\" {{}}\n{MON}"))]);
        let l = load_dir(t.path(), &LoadOptions::default());
        let msgs: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            msgs,
            vec![format!(
                "{}:1:1: variable \"env\" is not set: give it a default, -var env=..., -var-file or TF_VAR_env",
                t.path().join("main.tf").display()
            )]
        );
        let opts = LoadOptions {
            env_vars: vec![("env".into(), "dev".into())],
            ..Default::default()
        };
        let l = load_dir(t.path(), &opts);
        assert!(l.errors.is_empty());
        assert_eq!(l.monitors[0].name, "M dev");
    }

    #[test]
    fn modules_with_for_each_and_typed_tf_vars() {
        let t = dir(&[
            (
                "main.tf",
                r#"
variable "services" { type = list(string) }
module "svc" {
  for_each = toset(var.services)
  source   = "./svc"
  name     = each.key
}
"#,
            ),
            ("svc/main.tf", "variable \"name\" {}\nresource \"datadog_monitor\" \"errors\" {\n  count = 2\n  name = format(\"%s errors %d\", upper(var.name), count.index)\n  type = \"query alert\"\n  query = \"avg(last_5m):avg:e{service:${var.name}} > ${10 * (count.index + 1)}\"\n  message = join(\" \", [\"a\", \"b\"])\n}\n"),
        ]);
        let opts = LoadOptions {
            env_vars: vec![("services".into(), r#"["web", "api"]"#.into())],
            ..Default::default()
        };
        let l = load_dir(t.path(), &opts);
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let addrs: Vec<&str> = l.monitors.iter().map(|m| m.address.as_str()).collect();
        assert_eq!(
            addrs,
            vec![
                r#"module.svc["api"].datadog_monitor.errors[0]"#,
                r#"module.svc["api"].datadog_monitor.errors[1]"#,
                r#"module.svc["web"].datadog_monitor.errors[0]"#,
                r#"module.svc["web"].datadog_monitor.errors[1]"#,
            ]
        );
        assert_eq!(l.monitors[1].name, "API errors 1");
        assert_eq!(l.monitors[1].query, "avg(last_5m):avg:e{service:api} > 20");
        assert_eq!(
            l.monitors[1].options["thresholds"]["critical"],
            serde_json::json!(20.0)
        );
    }

    #[test]
    fn unknown_functions_and_module_inputs_are_named() {
        let t = dir(&[
            (
                "main.tf",
                "resource \"datadog_monitor\" \"m\" {\n  name = sha1(\"x\")\n  type = \"query alert\"\n  query = \"avg(last_5m):avg:a{*} > 1\"\n  message = \"m\"\n}\nmodule \"x\" {\n  source = \"./x\"\n  nope = 1\n}\n",
            ),
            ("x/main.tf", "# nothing\n"),
        ]);
        let l = load_dir(t.path(), &LoadOptions::default());
        let msgs: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[1].ends_with("datadog_monitor.m: name: unknown function `sha1`"),
            "{}",
            msgs[1]
        );
        assert!(msgs[1].contains("main.tf:2:3: "), "{}", msgs[1]);
        assert!(msgs[0].contains("main.tf:9:3: module "), "{}", msgs[0]);
        assert!(
            msgs[0].ends_with("has no variable named \"nope\""),
            "{}",
            msgs[0]
        );
    }

    #[test]
    fn terraform_0_6_style() {
        let t = dir(&[(
            "old.tf",
            r#"
variable "team" { default = "infra" }
resource "datadog_monitor_metric" "app.internal_errors" {
  name = "App Internal Errors"
  message = "${var.team} errors"
  metric = "app.5xx"
  metric_key = "service"
  critical {
    threshold = "50"
    notify = "@slack-${var.team}"
  }
  tags {
    team = "${var.team}"
  }
}
"#,
        )]);
        let l = load_dir(t.path(), &LoadOptions::default());
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let m = &l.monitors[0];
        assert_eq!(m.address, "datadog_monitor_metric.app.internal_errors");
        assert_eq!(m.query, "avg(last_5m):avg:app.5xx{*} by {service} > 50");
        assert_eq!(m.tags, vec!["team:infra"]);
        assert_eq!(
            m.message,
            "infra errors\n{{#is_alert}}@slack-infra{{/is_alert}}"
        );
    }
}
