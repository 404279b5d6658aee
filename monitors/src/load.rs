//! Loading a directory of Terraform-syntax files: variables, locals, modules with a local source,
//! `count`/`for_each`, `moved` and `import` blocks. Parsing is hcl-edit's (it keeps byte spans, so every error
//! names `file:line:col`); expressions are evaluated with hcl-rs's evaluator and the functions in [`crate::funcs`].

use crate::diag::{Diag, Pos, Source};
use crate::model::{self, Monitor, MONITOR_TYPES};
use hcl::edit::structure::{Block, Body, Structure};
use hcl::edit::Span;
use hcl::eval::{Context, Evaluate};
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
    let mut var_files: Vec<PathBuf> = Vec::new();
    let auto = dir.join("terraform.tfvars");
    if auto.is_file() {
        var_files.push(auto);
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut autos: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with(".auto.tfvars"))
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
    let root = Module {
        dir: dir.to_path_buf(),
        prefix: String::new(),
        inputs: None,
        failed_inputs: HashMap::new(),
        overrides,
        depth: 0,
        call_pos: None,
        deferred: RefCell::new(HashMap::new()),
    };
    load_module(&root, &mut out);
    check_duplicates(&mut out);
    out
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
    let src = Source::new(path.display().to_string(), text);
    let body = match hcl::edit::parser::parse_body(&src.text) {
        Ok(b) => b,
        Err(e) => {
            errors.push(parse_diag(&src, &e));
            return;
        }
    };
    let ctx = base_context();
    for s in body.iter() {
        if let Structure::Attribute(a) = s {
            let pos = src.span_pos(a.span());
            match eval(&a.value, &ctx) {
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

/// A context with the functions and `terraform.workspace`.
pub(crate) fn base_context() -> Context<'static> {
    let mut ctx = Context::new();
    crate::funcs::declare_all(&mut ctx);
    let mut tf = Map::new();
    tf.insert("workspace".to_string(), Value::from("default"));
    ctx.declare_var("terraform", Value::Object(tf));
    ctx
}

/// Evaluates an hcl-edit expression; the error is one sentence.
pub(crate) fn eval(expr: &hcl::edit::expr::Expression, ctx: &Context<'_>) -> Result<Value, String> {
    let e: hcl::Expression = expr.clone().into();
    e.evaluate(ctx).map_err(|err| eval_message(&err))
}

fn eval_message(err: &hcl::eval::Error) -> String {
    use hcl::eval::ErrorKind;
    match err.kind() {
        ErrorKind::UndefinedFunc(name) => format!(
            "unknown function `{name}` (kelpie supports {})",
            crate::funcs::NAMES.join(", ")
        ),
        ErrorKind::UndefinedVar(name) => {
            format!("unknown name `{name}` (use var.<name>, local.<name>, each.key, each.value or count.index)")
        }
        ErrorKind::NoSuchKey(key) => match err.expr() {
            Some(e) => format!(
                "`{e}` has no attribute or key `{key}` (is the variable or local declared?)"
            ),
            None => format!("no attribute or key `{key}`"),
        },
        other => other.to_string(),
    }
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

fn load_module(m: &Module, out: &mut Loaded) {
    let files = parse_files(&m.dir, out);
    let mut ctx = base_context();
    let mut pathv = Map::new();
    pathv.insert(
        "module".to_string(),
        Value::from(m.dir.display().to_string()),
    );
    ctx.declare_var("path", Value::Object(pathv));

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
    ctx.declare_var("var", Value::Object(vars));

    // Locals, evaluated in as many passes as their references need.
    let mut pending: Vec<(&str, &hcl::edit::expr::Expression, Pos)> = Vec::new();
    for f in &files {
        for b in f
            .body
            .iter()
            .filter_map(Structure::as_block)
            .filter(|b| b.ident.as_str() == "locals")
        {
            for a in b.body.iter().filter_map(Structure::as_attribute) {
                pending.push((a.key.as_str(), &a.value, f.src.span_pos(a.span())));
            }
        }
    }
    let mut locals = Map::new();
    loop {
        ctx.declare_var("local", Value::Object(locals.clone()));
        let mut progressed = false;
        let mut still = Vec::new();
        let mut last_errors = Vec::new();
        for (name, expr, pos) in pending {
            match eval(expr, &ctx) {
                Ok(v) => {
                    locals.insert(name.to_string(), v);
                    progressed = true;
                }
                Err(msg) => {
                    last_errors.push((
                        name,
                        expr,
                        Diag::new(Some(pos.clone()), None, format!("local.{name}: {msg}")),
                    ));
                    still.push((name, expr, pos));
                }
            }
        }
        pending = still;
        if pending.is_empty() || !progressed {
            let mut d = m.deferred.borrow_mut();
            for (name, expr, diag) in last_errors {
                let text = expr.to_string();
                let via_var = d
                    .iter()
                    .filter(|(k, _)| k.starts_with("var.") && references(&text, k))
                    .map(|(_, (vd, _))| vd.clone())
                    .next();
                d.insert(format!("local.{name}"), (via_var.unwrap_or(diag), false));
            }
            break;
        }
    }
    ctx.declare_var("local", Value::Object(locals));

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
                "module" => load_module_call(m, &f.src, b, &ctx, out),
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
    eval(&expr, &base_context())
}

/// The instances of a block with `count`/`for_each`: (address suffix, each, count) per instance.
type Instance = (String, Option<(Value, Value)>, Option<i64>);

fn instances(
    m: &Module,
    src: &Source,
    b: &Block,
    ctx: &Context<'_>,
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
    ctx: &Context<'a>,
    each: &Option<(Value, Value)>,
    count: Option<i64>,
) -> Context<'a> {
    let mut c = ctx.clone();
    if let Some((k, v)) = each {
        let mut o = Map::new();
        o.insert("key".to_string(), k.clone());
        o.insert("value".to_string(), v.clone());
        c.declare_var("each", Value::Object(o));
    }
    if let Some(i) = count {
        let mut o = Map::new();
        o.insert("index".to_string(), Value::from(i));
        c.declare_var("count", Value::Object(o));
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
    ctx: &Context<'_>,
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
    for (suffix, each, count) in insts {
        let address = format!("{base}{suffix}");
        let ictx = instance_ctx(ctx, &each, count);
        let mut args = model::Args::default();
        let mut ok = true;
        for s in b.body.iter() {
            match s {
                Structure::Attribute(a) => {
                    let key = a.key.as_str();
                    if META_ARGS.contains(&key) {
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
                    if key == "dynamic" {
                        out.errors.push(Diag::new(
                            Some(pos),
                            Some(&address),
                            "dynamic blocks are not supported; write the block out",
                        ));
                        ok = false;
                        continue;
                    }
                    let mut obj = Map::new();
                    for a in inner.body.iter().filter_map(Structure::as_attribute) {
                        match eval(&a.value, &ictx) {
                            Ok(v) => {
                                obj.insert(a.key.as_str().to_string(), v);
                            }
                            Err(msg) => {
                                ok = false;
                                let d = Diag::new(
                                    Some(src.span_pos(a.span())),
                                    Some(&address),
                                    format!("{key}.{}: {msg}", a.key.as_str()),
                                );
                                m.fail(src.slice(a.span()), d, out);
                            }
                        }
                    }
                    if let Some(nested) = inner.body.iter().find_map(Structure::as_block) {
                        out.errors.push(Diag::new(
                            Some(src.span_pos(nested.span())),
                            Some(&address),
                            format!(
                                "unsupported block `{}` inside `{key}`",
                                nested.ident.as_str()
                            ),
                        ));
                    }
                    args.insert(
                        key,
                        Value::Object(obj),
                        pos,
                        true,
                        &address,
                        &mut out.errors,
                    );
                }
            }
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

fn load_module_call(m: &Module, src: &Source, b: &Block, ctx: &Context<'_>, out: &mut Loaded) {
    let pos = src.span_pos(b.span());
    let Some(name) = label(b, 0) else {
        out.errors
            .push(Diag::new(Some(pos), None, "a module block needs a name"));
        return;
    };
    let base = format!("{}module.{}", m.prefix, name);
    let source = match attr(b, "source").map(|a| eval(&a.value, ctx)) {
        Some(Ok(Value::String(s))) => s,
        Some(Err(msg)) => {
            out.errors
                .push(Diag::new(Some(pos), Some(&base), format!("source: {msg}")));
            return;
        }
        _ => {
            out.errors.push(Diag::new(
                Some(pos),
                Some(&base),
                "a module block needs a `source` string",
            ));
            return;
        }
    };
    if !(source.starts_with("./") || source.starts_with("../")) {
        // A registry or git module is ordinary infrastructure: kelpie reads local modules only.
        out.ignored_modules.push(base);
        return;
    }
    if m.depth + 1 > MAX_MODULE_DEPTH {
        out.errors.push(Diag::new(
            Some(pos),
            Some(&base),
            format!("modules nest deeper than {MAX_MODULE_DEPTH} levels"),
        ));
        return;
    }
    let dir = lexical_join(&m.dir, &source);
    if !dir.is_dir() {
        out.errors.push(Diag::new(
            Some(pos),
            Some(&base),
            format!("module source {} is not a directory", dir.display()),
        ));
        return;
    }
    let Some(insts) = instances(m, src, b, ctx, &base, out) else {
        return;
    };
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
            prefix: format!("{base}{suffix}."),
            inputs: Some(inputs),
            failed_inputs,
            overrides: Vec::new(),
            depth: m.depth + 1,
            call_pos: Some(pos.clone()),
            deferred: RefCell::new(HashMap::new()),
        };
        load_module(&child, out);
    }
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
                "resource \"datadog_monitor\" \"m\" {\n  name = sha256(\"x\")\n  type = \"query alert\"\n  query = \"avg(last_5m):avg:a{*} > 1\"\n  message = \"m\"\n}\nmodule \"x\" {\n  source = \"./x\"\n  nope = 1\n}\n",
            ),
            ("x/main.tf", "# nothing\n"),
        ]);
        let l = load_dir(t.path(), &LoadOptions::default());
        let msgs: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].ends_with("datadog_monitor.m: name: unknown function `sha256` (kelpie supports format, join, lower, upper, replace, concat, merge, lookup, length, tostring, tonumber, coalesce, contains, keys, values, jsonencode, trimspace, split, title, min, max, element, flatten, distinct, toset, tolist, tomap, abs, floor, ceil)"), "{}", msgs[0]);
        assert!(msgs[0].contains("main.tf:2:3: "), "{}", msgs[0]);
        assert!(msgs[1].contains("main.tf:9:3: module "), "{}", msgs[1]);
        assert!(
            msgs[1].ends_with("has no variable named \"nope\""),
            "{}",
            msgs[1]
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
