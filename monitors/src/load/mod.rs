//! Loading a directory of Terraform-syntax files: variables, locals, modules with a local source,
//! `count`/`for_each`, `moved` and `import` blocks. Parsing is hcl-edit's (it keeps byte spans, so every error
//! names `file:line:col`); expressions are evaluated with hcl-rs's evaluator and the functions in [`crate::funcs`].
//! This file holds what a load returns and its entry point; each step has its own file.

mod call;
mod import_block;
mod instances;
mod json;
mod module;
mod monitor_refs;
mod newlines;
mod parse;
mod resource;
#[cfg(test)]
mod tests;
mod vars;

pub(crate) use parse::{eval, parse_diag};

use crate::diag::{Diag, Pos};
use crate::model::{self, Monitor};
use module::{load_module, Module};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use vars::{read_var_file, Override};

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
    /// What Terraform and Datadog accept but is likely a mistake (two monitors with one name).
    pub warnings: Vec<Diag>,
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

/// Loads every `*.tf`, `*.tf.json` and `*.hcl` file of `dir` (not `*.monitortest.hcl`).
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

fn check_duplicates(out: &mut Loaded) {
    let mut by_addr: BTreeMap<String, Pos> = BTreeMap::new();
    let mut by_name: BTreeMap<String, (String, Pos)> = BTreeMap::new();
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
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
        // Datadog and Terraform accept two monitors with one name (ownership goes by address), so this is a
        // warning: usually a copy-paste, but not ours to refuse.
        let name = mon.name.trim().to_string();
        if let Some((addr, first)) = by_name.get(&name) {
            warnings.push(Diag::new(
                Some(mon.pos.clone()),
                Some(&mon.address),
                format!("duplicate name \"{name}\": {addr} at {first} has the same name"),
            ));
        } else {
            by_name.insert(name, (mon.address.clone(), mon.pos.clone()));
        }
    }
    out.errors.extend(errors);
    out.warnings.extend(warnings);
}
