//! The `kelpie monitors` command line: `validate`, `plan`, `sync`, `import`, `test`.
//! This file holds the flags and the dispatch; each command has its file.

mod import;
mod sync;
#[cfg(test)]
mod tests;
mod validate;

use import::import;
use sync::{plan_cmd, sync};
use validate::validate;

use crate::diag::Diag;
use crate::load::{load_dir, LoadOptions, Loaded};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Global flags of every `kelpie monitors` subcommand.
#[derive(clap::Args, Debug)]
pub struct MonitorsArgs {
    /// Directory of *.tf / *.hcl files.
    #[arg(long, global = true, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// Project name stamped on managed monitors (tag kelpie-project:<name>); default: the directory's name.
    #[arg(long, global = true, value_name = "NAME")]
    pub project: Option<String>,
    /// Set a variable, as Terraform's -var NAME=VALUE (repeatable; -var and --var both work).
    #[arg(long = "var", global = true, value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read variables from a file, as Terraform's -var-file (repeatable; -var-file and --var-file both work).
    #[arg(long = "var-file", global = true, value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
    #[command(subcommand)]
    pub cmd: MonitorsCommand,
}

/// How `plan` (and `sync`) print the plan.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    /// Like `terraform plan` (coloured on a terminal).
    #[default]
    Text,
    /// JSON, for CI bots (same as --json).
    Json,
    /// Markdown, ready to post as a pull-request comment.
    Markdown,
}

#[derive(clap::Subcommand, Debug)]
pub enum MonitorsCommand {
    /// Parse and check the monitor files (offline); --remote also asks the API's validate endpoint.
    Validate {
        #[arg(long)]
        remote: bool,
    },
    /// Show the changes between the files and the account. Exit 0: no changes, 2: changes, 1: error.
    Plan {
        /// Print the plan as JSON (for CI bots); same as --format json.
        #[arg(long)]
        json: bool,
        /// text (default), json, or markdown (a pull-request comment).
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<Format>,
        /// List the monitors that are not managed by kelpie or belong to other projects.
        #[arg(long)]
        show_unmanaged: bool,
        /// Plan no deletions.
        #[arg(long)]
        no_delete: bool,
    },
    /// Apply the plan. Exit 0 on success, 1 on any failure.
    Sync {
        /// Only plan: behaves exactly like `plan`, exit codes included.
        #[arg(long)]
        dry_run: bool,
        /// Never delete monitors that are gone from the files.
        #[arg(long)]
        no_delete: bool,
        /// Allow deleting more than half of the project's monitors.
        #[arg(long)]
        allow_mass_delete: bool,
        /// Print the plan and the result as JSON; same as --format json.
        #[arg(long)]
        json: bool,
        /// text (default), json, or markdown (markdown: the plan only, with --dry-run).
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<Format>,
        #[arg(long)]
        show_unmanaged: bool,
    },
    /// Write HCL for existing monitors so they can be adopted.
    Import {
        /// Only monitors with all these tags (comma-separated, like the API's monitor_tags).
        #[arg(long, value_name = "T,..")]
        tags: Option<String>,
        /// Only monitors whose name contains this.
        #[arg(long, value_name = "SUBSTR")]
        name: Option<String>,
        /// Only these monitor ids.
        #[arg(long, value_delimiter = ',', value_name = "N,..")]
        id: Vec<i64>,
        /// A search like `tag:team:infra name:latency id:123` (terms combine).
        #[arg(long, value_name = "QUERY")]
        query: Option<String>,
        /// Write to FILE instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Run monitor unit tests (*.monitortest.hcl) offline; with --against, evaluate the metric monitors over
    /// the last hour a local agent recorded instead.
    Test {
        /// A running agent's status server (http://127.0.0.1:5002) or a file recorded from its
        /// GET /api/series (one answer or a JSON array of answers).
        #[arg(long, value_name = "URL|FILE")]
        against: Option<String>,
        /// With --against: print the transitions as JSON (times in unix seconds and UTC).
        #[arg(long, requires = "against")]
        json: bool,
    },
}

/// Rewrites Terraform's single-dash `-var`/`-var-file` into clap's `--var`/`--var-file`, and moves every
/// variable flag right after the `monitors` word (clap keeps only one level's values of a global argument,
/// so `kelpie monitors -var a=1 plan -var b=2` must reach it as one list).
pub fn preprocess_args<I: IntoIterator<Item = OsString>>(args: I) -> Vec<OsString> {
    let renamed: Vec<OsString> = args
        .into_iter()
        .map(|a| {
            let Some(s) = a.to_str() else { return a };
            for flag in ["-var-file", "-var"] {
                if s == flag || s.starts_with(&format!("{flag}=")) {
                    return OsString::from(format!("-{s}"));
                }
            }
            a
        })
        .collect();
    let Some(at) = renamed.iter().position(|a| a == "monitors") else {
        return renamed;
    };
    let mut vars = Vec::new();
    let mut rest = Vec::new();
    let mut it = renamed[at + 1..].iter().cloned();
    while let Some(a) = it.next() {
        if a == "--" {
            rest.push(a);
            rest.extend(it.by_ref());
            break;
        }
        match a.to_str() {
            Some("--var") | Some("--var-file") => {
                vars.push(a);
                if let Some(v) = it.next() {
                    vars.push(v);
                }
            }
            Some(s) if s.starts_with("--var=") || s.starts_with("--var-file=") => vars.push(a),
            _ => rest.push(a),
        }
    }
    let mut out: Vec<OsString> = renamed[..=at].to_vec();
    out.extend(vars);
    out.extend(rest);
    out
}

fn color_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// The project name: --project, else the directory's name, as a valid tag value.
fn project_name(args: &MonitorsArgs) -> String {
    let raw = match &args.project {
        Some(p) => p.clone(),
        None => std::fs::canonicalize(&args.dir)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| "default".into()),
    };
    raw.chars()
        .map(|c| {
            if c.is_alphanumeric() || "_-./".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .to_lowercase()
}

fn print_errors(errors: &[Diag]) {
    let mut e = std::io::stderr().lock();
    for d in errors {
        let _ = writeln!(e, "error: {d}");
    }
    let _ = writeln!(e, "{} error(s); nothing was sent to Datadog.", errors.len());
}

fn load(args: &MonitorsArgs) -> Option<Loaded> {
    let loaded = load_dir(
        &args.dir,
        &LoadOptions::from_env(args.vars.clone(), args.var_files.clone()),
    );
    if let Some(l) = loaded.ignored_line() {
        eprintln!("{l}");
    }
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    if !loaded.errors.is_empty() {
        print_errors(&loaded.errors);
        return None;
    }
    if loaded.files == 0 {
        eprintln!("error: no *.tf or *.hcl files in {}", args.dir.display());
        return None;
    }
    Some(loaded)
}

/// Runs a `kelpie monitors` subcommand and returns the process exit code.
pub async fn run(args: MonitorsArgs) -> anyhow::Result<i32> {
    match &args.cmd {
        MonitorsCommand::Validate { remote } => validate(&args, *remote).await,
        MonitorsCommand::Plan {
            json,
            format,
            show_unmanaged,
            no_delete,
        } => {
            let Some(format) = pick_format(*json, *format) else {
                return Ok(1);
            };
            plan_cmd(&args, format, *show_unmanaged, *no_delete).await
        }
        MonitorsCommand::Sync {
            dry_run,
            no_delete,
            allow_mass_delete,
            json,
            format,
            show_unmanaged,
        } => {
            let Some(format) = pick_format(*json, *format) else {
                return Ok(1);
            };
            if *dry_run {
                return plan_cmd(&args, format, *show_unmanaged, *no_delete).await;
            }
            if format == Format::Markdown {
                eprintln!(
                    "error: --format markdown prints a plan: use it with plan or sync --dry-run"
                );
                return Ok(1);
            }
            sync(
                &args,
                *no_delete,
                *allow_mass_delete,
                format == Format::Json,
                *show_unmanaged,
            )
            .await
        }
        MonitorsCommand::Import {
            tags,
            name,
            id,
            query,
            out,
        } => {
            import(
                tags.clone(),
                name.clone(),
                id.clone(),
                query.clone(),
                out.clone(),
            )
            .await
        }
        MonitorsCommand::Test { against: None, .. } => validate::test(&args),
        MonitorsCommand::Test {
            against: Some(src),
            json,
        } => validate::test_against(&args, src, *json).await,
    }
}

/// The output format from `--json` and `--format`; None (after saying why) when they disagree.
fn pick_format(json: bool, format: Option<Format>) -> Option<Format> {
    match (json, format) {
        (true, Some(f)) if f != Format::Json => {
            eprintln!("error: --json and --format {f:?} disagree; use one of them");
            None
        }
        (true, _) => Some(Format::Json),
        (false, f) => Some(f.unwrap_or_default()),
    }
}
