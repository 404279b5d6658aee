//! `plan` and `sync`: the account's monitors that matter fetched, the plan computed and shown, and with
//! `sync` applied (in two steps when monitors reference others by address).

use super::{color_stdout, load, project_name, Format, MonitorsArgs};
use crate::api::Client;
use crate::load::Loaded;
use crate::plan::{self, Plan};
use std::path::Path;

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

pub(super) async fn plan_cmd(
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

pub(super) async fn sync(
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
