//! Applying a plan through the API: creates, updates and replacements, then the deletions the API allows;
//! and the two-step sync that monitors referencing other monitors by address need.

use super::{id_of, Create, Plan, Replace, Update};
use crate::api::{ApiError, Client};
use crate::model::{self, address_tag, TAG_ADDRESS, TAG_PROJECT};
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// What an apply did.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    pub created: usize,
    pub updated: usize,
    pub replaced: usize,
    pub deleted: usize,
    pub failures: Vec<String>,
    pub lines: Vec<String>,
}

enum Op<'a> {
    Create(&'a Create),
    Update(&'a Update),
    Replace(&'a Replace),
}

/// Whether a change still names a monitor by reference (`${<address>.id}`): one whose id sync learns only
/// when it creates that monitor.
fn has_ref(body: &Value) -> bool {
    body.get("query")
        .and_then(Value::as_str)
        .is_some_and(|q| model::resolve_refs(q, &HashMap::new()).1)
}

/// Whether sync must run in two steps (children first, then what references them).
pub fn has_pending_refs(plan: &Plan) -> bool {
    plan.create.iter().any(|c| has_ref(&c.body))
        || plan.update.iter().any(|u| has_ref(&u.body))
        || plan.replace.iter().any(|r| has_ref(&r.body))
}

/// The first step of such a sync: the changes that reference no monitor by address, and no deletions.
pub fn without_pending_refs(plan: &Plan) -> Plan {
    Plan {
        create: plan
            .create
            .iter()
            .filter(|c| !has_ref(&c.body))
            .cloned()
            .collect(),
        update: plan
            .update
            .iter()
            .filter(|u| !has_ref(&u.body))
            .cloned()
            .collect(),
        replace: plan
            .replace
            .iter()
            .filter(|r| !has_ref(&r.body))
            .cloned()
            .collect(),
        delete: Vec::new(),
        ..plan.clone()
    }
}

/// Why a sync refuses to delete, if it does (SPEC §6.4: more than half of the project's monitors and more
/// than 3).
pub fn mass_delete_refusal(plan: &Plan, allow: bool) -> Option<String> {
    let n = plan.delete.len();
    if !allow && n > 3 && n * 2 > plan.managed {
        return Some(format!(
            "refusing to delete {n} of the {} monitors of project \"{}\" (more than half); check --dir and --project, or pass --allow-mass-delete",
            plan.managed, plan.project
        ));
    }
    None
}

/// The tags that find the monitor of `address` in `project` (the list API's `monitor_tags`).
pub fn search_tags(project: &str, address: &str) -> String {
    format!(
        "{TAG_PROJECT}{project},{TAG_ADDRESS}{}",
        address_tag(address)
    )
}

/// How many changes [`apply`] makes (and reports a line for).
pub fn change_count(plan: &Plan) -> usize {
    plan.create.len() + plan.update.len() + plan.replace.len() + plan.delete.len()
}

/// Applies a plan: creates, updates and replacements first (so a rename never leaves a gap), then deletions
/// of what `can_delete` allows. Every failure is reported and the rest still applied. A create whose answer
/// is lost is looked for by its ownership tags before it is sent again (see [`Client::create_tagged`]).
pub async fn apply(plan: &Plan, client: &Client, mut progress: impl FnMut(&str)) -> Applied {
    let mut out = Applied::default();
    apply_changes(plan, client, &mut progress, &mut out).await;
    if !plan.delete.is_empty() {
        apply_deletes(plan, client, &mut progress, &mut out).await;
    }
    out
}

/// Creates, updates and replacements, as many in flight as the API allows.
async fn apply_changes(
    plan: &Plan,
    client: &Client,
    progress: &mut impl FnMut(&str),
    out: &mut Applied,
) {
    let project = plan.project.as_str();
    let ops: Vec<Op<'_>> = plan
        .create
        .iter()
        .map(Op::Create)
        .chain(plan.update.iter().map(Op::Update))
        .chain(plan.replace.iter().map(Op::Replace))
        .collect();
    let mut results = futures::stream::iter(ops.into_iter().map(|op| async move {
        match op {
            Op::Create(c) => match client
                .create_tagged(&c.body, &search_tags(project, &c.address))
                .await
            {
                Ok(r) => Ok(format!("created {} (id {})", c.address, id_of(&r))),
                Err(e) => Err(format!(
                    "failed to create {}: {}",
                    c.address,
                    e.api_message()
                )),
            },
            Op::Update(u) => match client.update(u.id, &u.body).await {
                Ok(_) => Ok(format!("updated {} (id {})", u.address, u.id)),
                // As Terraform's provider: the update fails, and the next plan (which no longer finds the
                // monitor) creates it.
                Err(ApiError::Http { status: 404, .. }) => Err(format!(
                    "failed to update {} (id {}): it was deleted outside kelpie after this sync read it (HTTP 404); the next sync creates it again",
                    u.address, u.id
                )),
                Err(e) => Err(format!(
                    "failed to update {} (id {}): {}",
                    u.address,
                    u.id,
                    e.api_message()
                )),
            },
            Op::Replace(r) => match client.delete(r.id, false).await {
                Err(e) => Err(format!(
                    "failed to replace {} (id {}): {}",
                    r.address,
                    r.id,
                    e.api_message()
                )),
                Ok(()) => match client
                    .create_tagged(&r.body, &search_tags(project, &r.address))
                    .await
                {
                    Ok(n) => Ok(format!(
                        "replaced {} (id {} → {})",
                        r.address,
                        r.id,
                        id_of(&n)
                    )),
                    Err(e) => Err(format!(
                        "failed to re-create {} after deleting id {}: {}",
                        r.address,
                        r.id,
                        e.api_message()
                    )),
                },
            },
        }
    }))
    .buffer_unordered(crate::api::MAX_IN_FLIGHT);
    while let Some(r) = results.next().await {
        match r {
            Ok(line) => {
                if line.starts_with("created") {
                    out.created += 1;
                } else if line.starts_with("updated") {
                    out.updated += 1;
                } else {
                    out.replaced += 1;
                }
                progress(&line);
                out.lines.push(line);
            }
            Err(line) => {
                progress(&line);
                out.failures.push(line);
            }
        }
    }
}

/// Deletions: those the API's `can_delete` allows (or forced), each refusal reported with its reason.
async fn apply_deletes(
    plan: &Plan,
    client: &Client,
    progress: &mut impl FnMut(&str),
    out: &mut Applied,
) {
    let checked: Vec<i64> = plan
        .delete
        .iter()
        .filter(|d| !d.force)
        .map(|d| d.id)
        .collect();
    let (ok, refused): (HashSet<i64>, BTreeMap<i64, String>) = if checked.is_empty() {
        (HashSet::new(), BTreeMap::new())
    } else {
        match client.can_delete(&checked).await {
            Ok((ok, refused)) => (ok.into_iter().collect(), refused),
            Err(e) => {
                let line = format!(
                    "cannot check which monitors can be deleted, deleting none: {}",
                    e.api_message()
                );
                progress(&line);
                out.failures.push(line);
                return;
            }
        }
    };
    let mut todo = Vec::new();
    for d in &plan.delete {
        if d.force || ok.contains(&d.id) {
            todo.push(d);
        } else if gone(client, d.id).await {
            // Deleted by someone else since the plan read it: what the sync wanted.
            let line = format!("deleted {} (id {}, already gone)", d.address, d.id);
            out.deleted += 1;
            progress(&line);
            out.lines.push(line);
        } else {
            let why = refused
                .get(&d.id)
                .cloned()
                .unwrap_or_else(|| "the API did not allow it".into());
            let line = format!("not deleting {} (id {}): {why}", d.address, d.id);
            progress(&line);
            out.failures.push(line);
        }
    }
    let mut results = futures::stream::iter(todo.into_iter().map(|d| async move {
        match client.delete(d.id, d.force).await {
            Ok(()) => Ok(format!("deleted {} (id {})", d.address, d.id)),
            Err(ApiError::Http { status: 404, .. }) => {
                Ok(format!("deleted {} (id {}, already gone)", d.address, d.id))
            }
            Err(e) => Err(format!(
                "failed to delete {} (id {}): {}",
                d.address,
                d.id,
                e.api_message()
            )),
        }
    }))
    .buffer_unordered(crate::api::MAX_IN_FLIGHT);
    while let Some(r) = results.next().await {
        match r {
            Ok(line) => {
                out.deleted += 1;
                progress(&line);
                out.lines.push(line);
            }
            Err(line) => {
                progress(&line);
                out.failures.push(line);
            }
        }
    }
}

/// Whether monitor `id` no longer exists (the API answers 404 for it): `can_delete` refuses a monitor that is
/// gone as it refuses one still in use.
async fn gone(client: &Client, id: i64) -> bool {
    matches!(
        client.get(id).await,
        Err(ApiError::Http { status: 404, .. })
    )
}
