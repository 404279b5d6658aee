//! The `kelpie monitors` command line: `validate`, `plan`, `sync`, `import`, `test`.

use crate::api::Client;
use crate::diag::Diag;
use crate::load::{load_dir, LoadOptions, Loaded};
use crate::plan::{self, Plan};
use futures::StreamExt;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

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
    /// Run monitor unit tests (*.monitortest.hcl) offline.
    Test,
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
        MonitorsCommand::Test => test(&args),
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

async fn validate(args: &MonitorsArgs, remote: bool) -> anyhow::Result<i32> {
    let Some(loaded) = load(args) else {
        return Ok(1);
    };
    if remote {
        let client = match Client::from_env() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(1);
            }
        };
        let project = project_name(args);
        let client = &client;
        let project = &project;
        let dir = &args.dir;
        let results: Vec<Option<Diag>> =
            futures::stream::iter(loaded.monitors.iter().filter(|m| m.validate_remote).map(
                |m| async move {
                    let body = m.payload(project, &plan::rel_file(dir, &m.pos.file));
                    match client.validate(&body).await {
                        Ok(Ok(())) => None,
                        Ok(Err(msg)) => Some(Diag::new(
                            Some(m.pos.clone()),
                            Some(&m.address),
                            format!("the Datadog API rejects it: {msg}"),
                        )),
                        Err(e) => Some(Diag::new(
                            Some(m.pos.clone()),
                            Some(&m.address),
                            format!("cannot validate remotely: {e}"),
                        )),
                    }
                },
            ))
            .buffer_unordered(crate::api::MAX_IN_FLIGHT)
            .collect()
            .await;
        let mut errors: Vec<Diag> = results.into_iter().flatten().collect();
        if !errors.is_empty() {
            errors.sort_by_key(|a| a.to_string());
            print_errors(&errors);
            return Ok(1);
        }
    }
    println!(
        "{} monitor(s) in {} file(s) are valid{}.",
        loaded.monitors.len(),
        loaded.files,
        if remote {
            " (checked by the API too)"
        } else {
            ""
        }
    );
    Ok(0)
}

/// With more monitors to create than this, plan lists the whole account (to find monitors to adopt) instead of
/// searching by name for each.
const NAME_SEARCHES_MAX: usize = 20;

/// The account's monitors that a plan needs. The project's own (`monitor_tags=kelpie-project:<name>`), the
/// monitors of import blocks, and the unmanaged monitors that share a name with one to create (one search per
/// name, or the whole account when there are many, or with `--show-unmanaged`). Returns them and whether the
/// whole account was listed.
async fn fetch_remote(
    client: &Client,
    loaded: &Loaded,
    project: &str,
    dir: &Path,
    list_all: bool,
) -> Result<(Vec<serde_json::Value>, bool), crate::api::ApiError> {
    if list_all {
        return Ok((client.list(None, None).await?, true));
    }
    let mut remote = client
        .list(
            Some(&format!("{}{project}", crate::model::TAG_PROJECT)),
            None,
        )
        .await?;
    let id_of = |m: &serde_json::Value| m.get("id").and_then(|i| i.as_i64());
    let mut seen: std::collections::HashSet<i64> = remote.iter().filter_map(id_of).collect();
    for i in &loaded.imports {
        if seen.contains(&i.id) {
            continue;
        }
        match client.get(i.id).await {
            Ok(m) => {
                seen.insert(i.id);
                remote.push(m);
            }
            // Missing: the plan says so, naming the import block.
            Err(crate::api::ApiError::Http { status: 404, .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let pre = plan::compute(loaded, &remote, project, dir, true);
    if pre.create.len() > NAME_SEARCHES_MAX {
        return Ok((client.list(None, None).await?, true));
    }
    let mut names: Vec<&str> = pre
        .create
        .iter()
        .filter_map(|c| c.body.get("name").and_then(|n| n.as_str()))
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        for m in client.list(None, Some(name)).await? {
            if id_of(&m).is_some_and(|id| seen.insert(id)) {
                remote.push(m);
            }
        }
    }
    Ok((remote, false))
}

async fn make_plan(
    args: &MonitorsArgs,
    no_delete: bool,
    show_unmanaged: bool,
) -> Option<(Plan, Client)> {
    let loaded = load(args)?;
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    let project = project_name(args);
    let (remote, listed_all) =
        match fetch_remote(&client, &loaded, &project, &args.dir, show_unmanaged).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot list the account's monitors: {e}");
                return None;
            }
        };
    let mut plan = plan::compute(&loaded, &remote, &project, &args.dir, no_delete);
    if !plan.errors.is_empty() {
        for e in &plan.errors {
            eprintln!("error: {e}");
        }
        return None;
    }
    if !listed_all {
        plan.listed_all = false;
        // The rest of the account is counted, not listed: two searches.
        let counts = async {
            let all = client.search_count("").await?;
            let kelpie = client
                .search_count(&format!("tag:\"{}\"", crate::model::TAG_MANAGED))
                .await?;
            Ok::<_, crate::api::ApiError>((all, kelpie))
        };
        match counts.await {
            Ok((all, kelpie)) => {
                // Unmanaged monitors this plan adopts are not left alone.
                let seen_unmanaged = remote
                    .iter()
                    .filter(|m| {
                        !crate::model::remote_tags(m)
                            .iter()
                            .any(|t| t == crate::model::TAG_MANAGED)
                    })
                    .count();
                let adopted = seen_unmanaged.saturating_sub(plan.unmanaged.len());
                plan.unmanaged_count = all.saturating_sub(kelpie).saturating_sub(adopted);
                plan.other_projects_count = kelpie.saturating_sub(plan.managed);
            }
            Err(e) => tracing::warn!(error = %e, "cannot count the monitors outside the project"),
        }
    }
    Some((plan, client))
}

async fn plan_cmd(
    args: &MonitorsArgs,
    format: Format,
    show_unmanaged: bool,
    no_delete: bool,
) -> anyhow::Result<i32> {
    let Some((plan, _)) = make_plan(args, no_delete, show_unmanaged).await else {
        return Ok(1);
    };
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        Format::Markdown => print!("{}", plan::render_markdown(&plan, show_unmanaged)),
        Format::Text => print!("{}", plan::render(&plan, color_stdout(), show_unmanaged)),
    }
    Ok(if plan.has_changes() { 2 } else { 0 })
}

async fn sync(
    args: &MonitorsArgs,
    no_delete: bool,
    allow_mass: bool,
    json: bool,
    show_unmanaged: bool,
) -> anyhow::Result<i32> {
    let Some((mut plan, client)) = make_plan(args, no_delete, show_unmanaged).await else {
        return Ok(1);
    };
    if let Some(why) = plan::mass_delete_refusal(&plan, allow_mass) {
        eprintln!("error: {why}");
        return Ok(1);
    }
    if !json {
        print!("{}", plan::render(&plan, color_stdout(), show_unmanaged));
    }
    if !plan.has_changes() {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&plan::Applied::default())?
            );
        }
        return Ok(0);
    }
    if !json {
        println!();
    }
    // Progress: a bar on a terminal, numbered lines in CI; nothing but the result with --json.
    let progress = std::sync::Mutex::new(
        (!json).then(|| crate::progress::Progress::new(plan::change_count(&plan), color_stdout())),
    );
    let with = |f: &mut dyn FnMut(&mut crate::progress::Progress)| {
        if let Some(p) = progress.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            f(p)
        }
    };
    // Composite monitors that name monitors this sync creates: create those first, then plan again with
    // their real ids and apply the rest.
    let two_step = plan::has_pending_refs(&plan);
    let mut step_plan = two_step.then(|| plan::without_pending_refs(&plan));
    let mut applied = plan::Applied::default();
    loop {
        let current = step_plan.as_ref().unwrap_or(&plan);
        let a = {
            let apply = plan::apply(current, &client, |line| with(&mut |p| p.line(line)));
            tokio::pin!(apply);
            let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
            loop {
                tokio::select! {
                    a = &mut apply => break a,
                    _ = tick.tick() => {
                        let wait = client.rate_wait();
                        with(&mut |p| p.tick(wait.clone()));
                    }
                }
            }
        };
        applied.created += a.created;
        applied.updated += a.updated;
        applied.replaced += a.replaced;
        applied.deleted += a.deleted;
        applied.failures.extend(a.failures);
        applied.lines.extend(a.lines);
        if !two_step || step_plan.is_none() || !applied.failures.is_empty() {
            break;
        }
        let Some((second, _)) = make_plan(args, no_delete, show_unmanaged).await else {
            return Ok(1);
        };
        plan = second;
        step_plan = None;
    }
    with(&mut |p| p.finish());
    if json {
        println!("{}", serde_json::to_string_pretty(&applied)?);
    } else {
        println!(
            "\nSync: {} created, {} updated, {} replaced, {} deleted, {} failed.",
            applied.created,
            applied.updated,
            applied.replaced,
            applied.deleted,
            applied.failures.len()
        );
    }
    if !applied.failures.is_empty() {
        eprintln!(
            "error: {} change(s) failed; run sync again once the cause is fixed:",
            applied.failures.len()
        );
        for f in &applied.failures {
            eprintln!("  {f}");
        }
        return Ok(1);
    }
    Ok(0)
}

async fn import(
    tags: Option<String>,
    name: Option<String>,
    mut ids: Vec<i64>,
    query: Option<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<i32> {
    let mut tag_list: Vec<String> = tags
        .map(|t| {
            t.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut name = name;
    if let Some(q) = &query {
        for term in q.split_whitespace() {
            let term = term.trim_matches('"');
            if let Some(t) = term.strip_prefix("tag:") {
                tag_list.push(t.trim_matches('"').to_string());
            } else if let Some(i) = term.strip_prefix("id:") {
                match i.parse() {
                    Ok(i) => ids.push(i),
                    Err(_) => {
                        eprintln!("error: --query: \"{term}\" is not id:<number>");
                        return Ok(1);
                    }
                }
            } else {
                let n = term.strip_prefix("name:").unwrap_or(term);
                name = Some(match name {
                    Some(prev) => format!("{prev} {n}"),
                    None => n.to_string(),
                });
            }
        }
    }
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    let mut monitors = Vec::new();
    if !ids.is_empty() {
        for id in &ids {
            match client.get(*id).await {
                Ok(m) => monitors.push(m),
                Err(e) => {
                    eprintln!("error: cannot read monitor {id}: {}", e.api_message());
                    return Ok(1);
                }
            }
        }
    } else {
        let tags = tag_list.join(",");
        match client.list(Some(&tags), name.as_deref()).await {
            Ok(m) => monitors = m,
            Err(e) => {
                eprintln!("error: cannot list monitors: {e}");
                return Ok(1);
            }
        }
    }
    monitors.sort_by_key(|m| m.get("id").and_then(|i| i.as_i64()).unwrap_or(0));
    let text = crate::import::render(&monitors);
    match &out {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &text) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return Ok(1);
            }
            eprintln!(
                "wrote {} monitor(s) to {}; `kelpie monitors plan` shows them being adopted.",
                monitors.len(),
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(0)
}

fn test(args: &MonitorsArgs) -> anyhow::Result<i32> {
    let Some(loaded) = load(args) else {
        return Ok(1);
    };
    let results = crate::monitor_test::run(Path::new(&args.dir), &loaded.monitors);
    let color = color_stdout();
    let (mut pass, mut fail) = (0, 0);
    for r in &results {
        match &r.failure {
            None => {
                pass += 1;
                let tag = if color { "\x1b[32mPASS\x1b[0m" } else { "PASS" };
                println!("  {tag}  {}", r.name);
            }
            Some(f) => {
                fail += 1;
                let tag = if color { "\x1b[31mFAIL\x1b[0m" } else { "FAIL" };
                println!("  {tag}  {}: {f}", r.name);
            }
        }
    }
    if results.is_empty() {
        println!("no *.monitortest.hcl files in {}", args.dir.display());
    }
    println!("{pass} passed, {fail} failed");
    Ok(if fail > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(subcommand)]
        cmd: Sub,
    }
    #[derive(clap::Subcommand)]
    enum Sub {
        Monitors(MonitorsArgs),
    }

    #[test]
    fn terraform_style_var_flags() {
        let argv = [
            "kelpie",
            "monitors",
            "-var",
            "a=1",
            "plan",
            "-var=b=2",
            "-var-file",
            "x.tfvars",
            "--json",
        ];
        let args = preprocess_args(argv.iter().map(OsString::from));
        let Sub::Monitors(m) = Top::try_parse_from(args).unwrap().cmd;
        assert_eq!(m.vars, vec!["a=1", "b=2"]);
        assert_eq!(m.var_files, vec![PathBuf::from("x.tfvars")]);
        assert!(matches!(m.cmd, MonitorsCommand::Plan { json: true, .. }));
        let args = preprocess_args(
            ["kelpie", "monitors", "plan", "--format", "markdown"]
                .iter()
                .map(OsString::from),
        );
        let Sub::Monitors(m) = Top::try_parse_from(args).unwrap().cmd;
        assert!(matches!(
            m.cmd,
            MonitorsCommand::Plan {
                format: Some(Format::Markdown),
                ..
            }
        ));
        assert_eq!(pick_format(true, None), Some(Format::Json));
        assert_eq!(pick_format(true, Some(Format::Markdown)), None);
    }
}
