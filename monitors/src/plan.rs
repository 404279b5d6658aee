//! Plan (what sync would do) and apply. Remote monitors are matched to files by their `kelpie-address` tag
//! within this project; `moved` blocks carry a match to a new address; `import` blocks and, failing that, an
//! unmanaged monitor with the same name, type and query adopt existing monitors instead of creating copies.

use crate::api::{ApiError, Client};
use crate::load::Loaded;
use crate::model::{self, address_tag, Change, Monitor, TAG_ADDRESS, TAG_MANAGED, TAG_PROJECT};
use crate::query;
use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

#[derive(Clone, Debug, Serialize)]
pub struct Create {
    pub address: String,
    pub body: Value,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    Drift,
    Moved { from: String },
    Adopt { by: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct Update {
    pub address: String,
    pub id: i64,
    pub why: Why,
    pub changes: Vec<Change>,
    pub body: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct Replace {
    pub address: String,
    pub id: i64,
    pub from_type: String,
    pub body: Value,
}

#[derive(Clone, Debug, Serialize)]
pub struct Delete {
    pub address: String,
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub force: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Other {
    pub id: i64,
    pub name: String,
    pub project: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub project: String,
    pub create: Vec<Create>,
    pub update: Vec<Update>,
    pub replace: Vec<Replace>,
    pub delete: Vec<Delete>,
    pub unchanged: usize,
    /// Monitors of this project in the account before the change.
    pub managed: usize,
    /// The monitors left alone; complete only when `listed_all` (else only those looked at).
    pub unmanaged: Vec<Other>,
    pub other_projects: Vec<Other>,
    /// How many monitors of the account are not managed by kelpie, and of other kelpie projects.
    pub unmanaged_count: usize,
    pub other_projects_count: usize,
    /// Whether the whole account was listed (else only this project's monitors and the candidates for adoption).
    pub listed_all: bool,
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl Plan {
    /// "Plan: 1 to create, 0 to update, 0 to replace, 0 to delete, 3 unchanged."
    pub fn summary(&self) -> String {
        format!(
            "Plan: {} to create, {} to update, {} to replace, {} to delete, {} unchanged.",
            self.create.len(),
            self.update.len(),
            self.replace.len(),
            self.delete.len(),
            self.unchanged
        )
    }

    pub fn has_changes(&self) -> bool {
        !(self.create.is_empty()
            && self.update.is_empty()
            && self.replace.is_empty()
            && self.delete.is_empty())
    }
}

fn id_of(m: &Value) -> i64 {
    m.get("id").and_then(Value::as_i64).unwrap_or(-1)
}

fn name_of(m: &Value) -> String {
    m.get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

fn canon_type(t: &str) -> &str {
    if t.trim() == "metric alert" {
        "query alert"
    } else {
        t.trim()
    }
}

/// The file of a monitor relative to the monitors directory, as the message footer names it.
pub fn rel_file(dir: &Path, file: &str) -> String {
    let p = Path::new(file);
    p.strip_prefix(dir).unwrap_or(p).display().to_string()
}

/// The body of an update: the desired fields, with options merged over the remote ones so that options the
/// files do not manage (set in the UI) are kept.
fn update_body(payload: &Value, remote: &Value) -> Value {
    let mut body = payload.clone();
    if let (Some(ro), Some(Value::Object(bo))) = (
        remote.get("options").and_then(Value::as_object),
        body.get_mut("options"),
    ) {
        for (k, v) in ro {
            if !bo.contains_key(k) && !v.is_null() {
                bo.insert(k.clone(), v.clone());
            }
        }
    }
    body
}

/// Computes the plan from the loaded files and the account's monitors.
pub fn compute(
    loaded: &Loaded,
    remote: &[Value],
    project: &str,
    dir: &Path,
    no_delete: bool,
) -> Plan {
    let mut plan = Plan {
        project: project.to_string(),
        listed_all: true,
        ..Plan::default()
    };
    let mut mine: HashMap<String, Vec<&Value>> = HashMap::new();
    let mut unmanaged: Vec<&Value> = Vec::new();
    for m in remote {
        let tags = model::remote_tags(m);
        if !tags.iter().any(|t| t == TAG_MANAGED) {
            unmanaged.push(m);
            continue;
        }
        let p = model::tag_value(&tags, TAG_PROJECT);
        if p.as_deref() != Some(project) {
            plan.other_projects.push(Other {
                id: id_of(m),
                name: name_of(m),
                project: p,
            });
            continue;
        }
        plan.managed += 1;
        let addr = model::tag_value(&tags, TAG_ADDRESS).unwrap_or_default();
        mine.entry(addr).or_default().push(m);
    }
    for v in mine.values_mut() {
        v.sort_by_key(|m| id_of(m));
    }
    // Ids of this project's monitors by address, for `datadog_monitor.x.id` in composite queries.
    let ids: HashMap<String, i64> = mine
        .iter()
        .filter_map(|(k, v)| v.first().map(|m| (k.clone(), id_of(m))))
        .collect();
    let moved_to: HashMap<String, String> = loaded
        .moved
        .iter()
        .map(|mv| (address_tag(&mv.to), mv.from.clone()))
        .collect();
    let imports: HashMap<String, i64> = loaded
        .imports
        .iter()
        .map(|i| (address_tag(&i.to), i.id))
        .collect();
    let by_id: HashMap<i64, &Value> = remote.iter().map(|m| (id_of(m), m)).collect();
    let mut adopted: HashSet<i64> = HashSet::new();
    let mut claimed_tags: HashSet<String> = HashSet::new();

    for d in &loaded.monitors {
        let resolved;
        let d = match model::resolve_refs(&d.query, &ids) {
            (q, _) if q != d.query => {
                resolved = Monitor {
                    query: q,
                    ..d.clone()
                };
                &resolved
            }
            _ => d,
        };
        let tag = address_tag(&d.address);
        let payload = d.payload(project, &rel_file(dir, &d.pos.file));
        let (remote_m, why) = if let Some(m) = mine
            .get_mut(&tag)
            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
        {
            claimed_tags.insert(tag.clone());
            (Some(m), Why::Drift)
        } else if let Some((from, m)) = moved_to.get(&tag).and_then(|from| {
            let ft = address_tag(from);
            mine.get_mut(&ft)
                .and_then(|v| (!v.is_empty()).then(|| (from.clone(), v.remove(0))))
        }) {
            (Some(m), Why::Moved { from })
        } else if let Some(id) = imports.get(&tag) {
            match by_id.get(id) {
                None => {
                    plan.errors.push(format!(
                        "{}: import: monitor {id} does not exist in the account",
                        d.address
                    ));
                    continue;
                }
                Some(m) => {
                    let tags = model::remote_tags(m);
                    let managed = tags.iter().any(|t| t == TAG_MANAGED);
                    let p = model::tag_value(&tags, TAG_PROJECT);
                    if managed && p.as_deref() != Some(project) {
                        plan.errors.push(format!(
                            "{}: import: monitor {id} is managed by kelpie project \"{}\"; remove it there first",
                            d.address,
                            p.unwrap_or_default()
                        ));
                        continue;
                    }
                    if managed {
                        // Already ours under another address: take it from the pool so it is not deleted.
                        let at = model::tag_value(&tags, TAG_ADDRESS).unwrap_or_default();
                        if let Some(v) = mine.get_mut(&at) {
                            v.retain(|x| id_of(x) != *id);
                        }
                    }
                    adopted.insert(*id);
                    (
                        Some(*m),
                        Why::Adopt {
                            by: format!("import block (id {id})"),
                        },
                    )
                }
            }
        } else {
            let want_q = query::normalize(&d.query);
            let cands: Vec<&&Value> = unmanaged
                .iter()
                .filter(|m| !adopted.contains(&id_of(m)))
                .filter(|m| name_of(m) == d.name.trim())
                .filter(|m| {
                    query::normalize(m.get("query").and_then(Value::as_str).unwrap_or("")) == want_q
                })
                .filter(|m| {
                    canon_type(m.get("type").and_then(Value::as_str).unwrap_or(""))
                        == canon_type(&d.mtype)
                })
                .collect();
            match cands.len() {
                1 => {
                    adopted.insert(id_of(cands[0]));
                    (
                        Some(*cands[0]),
                        Why::Adopt {
                            by: "same name and query".into(),
                        },
                    )
                }
                0 => (None, Why::Drift),
                n => {
                    plan.warnings.push(format!(
                        "{}: {n} unmanaged monitors have this name and query; creating a new one (add an import block to adopt one)",
                        d.address
                    ));
                    (None, Why::Drift)
                }
            }
        };
        match remote_m {
            None => plan.create.push(Create {
                address: d.address.clone(),
                body: payload,
            }),
            Some(m) => {
                let rtype = m.get("type").and_then(Value::as_str).unwrap_or("");
                if canon_type(rtype) != canon_type(&d.mtype) {
                    plan.replace.push(Replace {
                        address: d.address.clone(),
                        id: id_of(m),
                        from_type: rtype.to_string(),
                        body: payload,
                    });
                    continue;
                }
                let changes = model::diff(d, &payload, m);
                if changes.is_empty() && why == Why::Drift {
                    plan.unchanged += 1;
                } else {
                    plan.update.push(Update {
                        address: d.address.clone(),
                        id: id_of(m),
                        why,
                        changes,
                        body: update_body(&payload, m),
                    });
                }
            }
        }
    }
    plan.unmanaged = unmanaged
        .iter()
        .filter(|m| !adopted.contains(&id_of(m)))
        .map(|m| Other {
            id: id_of(m),
            name: name_of(m),
            project: None,
        })
        .collect();
    plan.unmanaged_count = plan.unmanaged.len();
    plan.other_projects_count = plan.other_projects.len();
    let desired_force: HashMap<String, bool> = loaded
        .monitors
        .iter()
        .map(|d: &Monitor| (address_tag(&d.address), d.force_delete))
        .collect();
    if !no_delete {
        let mut left: Vec<(&String, &Value)> = mine
            .iter()
            .flat_map(|(k, v)| v.iter().map(move |m| (k, *m)))
            .collect();
        left.sort_by_key(|(k, m)| ((*k).clone(), id_of(m)));
        for (addr, m) in left {
            if adopted.contains(&id_of(m)) {
                continue;
            }
            plan.delete.push(Delete {
                address: addr.clone(),
                id: id_of(m),
                name: name_of(m),
                force: desired_force.get(addr).copied().unwrap_or(false),
            });
        }
    }
    let _ = claimed_tags;
    plan
}

const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

struct Paint(bool);
impl Paint {
    fn c(&self, color: &str, s: &str) -> String {
        if self.0 {
            format!("{color}{s}{RESET}")
        } else {
            s.to_string()
        }
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map(query::fmt_num)
            .unwrap_or_else(|| n.to_string()),
        Value::Null => "(unset)".into(),
        Value::Object(o) => {
            let parts: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{k} = {}", show(v)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(show).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

fn is_own_tag(t: &Value) -> bool {
    t.as_str().is_some_and(|t| {
        t == TAG_MANAGED || t.starts_with(TAG_PROJECT) || t.starts_with(TAG_ADDRESS)
    })
}

/// kelpie's ownership tags and the message footer in a create or update body.
pub fn ownership(body: &Value) -> (Vec<String>, Option<String>) {
    let mut tags: Vec<String> = body
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|t| is_own_tag(t))
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    // managed-by, project, address: from the widest to the narrowest.
    tags.sort_by_key(|t| (t != TAG_MANAGED, t.starts_with(TAG_ADDRESS)));
    let footer = body
        .get("message")
        .and_then(Value::as_str)
        .and_then(|m| m.find(model::FOOTER_MARK).map(|i| m[i..].to_string()));
    (tags, footer)
}

/// Renders the plan like `terraform plan`.
pub fn render(plan: &Plan, color: bool, show_unmanaged: bool) -> String {
    let p = Paint(color);
    let mut s = String::new();
    if plan.has_changes() {
        s.push_str("kelpie will perform the following actions:\n\n");
    }
    for c in &plan.create {
        s.push_str(&format!(
            "  {} {}\n",
            p.c(GREEN, "+"),
            p.c(BOLD, &c.address)
        ));
        for k in ["name", "type", "query", "tags"] {
            if let Some(v) = c.body.get(k) {
                // kelpie's own tags are shown on their own line below.
                let v = match (k, v) {
                    ("tags", Value::Array(a)) => {
                        Value::Array(a.iter().filter(|t| !is_own_tag(t)).cloned().collect())
                    }
                    _ => v.clone(),
                };
                s.push_str(&format!("      {k:<10} {}\n", p.c(GREEN, &show(&v))));
            }
        }
        if let Some(t) = c.body.pointer("/options/thresholds") {
            s.push_str(&format!(
                "      {:<10} {}\n",
                "thresholds",
                p.c(GREEN, &show(t))
            ));
        }
        let (own, footer) = ownership(&c.body);
        s.push_str(&format!(
            "      {:<10} {}\n",
            "ownership",
            p.c(GREEN, &own.join(", "))
        ));
        if let Some(f) = footer {
            s.push_str(&format!(
                "      {:<10} {}\n",
                "footer",
                p.c(GREEN, &Value::from(f).to_string())
            ));
        }
    }
    for u in &plan.update {
        let note = match &u.why {
            Why::Drift => format!("id {}", u.id),
            Why::Moved { from } => format!("id {}, moved from {from}", u.id),
            Why::Adopt { by } => format!("id {}, adopting an existing monitor by {by}", u.id),
        };
        s.push_str(&format!(
            "  {} {} ({note})\n",
            p.c(YELLOW, "~"),
            p.c(BOLD, &u.address)
        ));
        for ch in &u.changes {
            s.push_str(&format!(
                "      {}: {} {} {}\n",
                ch.field,
                p.c(RED, &show(&ch.before)),
                p.c(YELLOW, "→"),
                p.c(GREEN, &show(&ch.after))
            ));
        }
    }
    for r in &plan.replace {
        s.push_str(&format!(
            "  {} {} (id {}, type changes from {} to {}: Datadog cannot change a monitor's type, so it is deleted and created again)\n",
            p.c(RED, "-/+"),
            p.c(BOLD, &r.address),
            r.id,
            r.from_type,
            show(r.body.get("type").unwrap_or(&Value::Null))
        ));
    }
    for d in &plan.delete {
        s.push_str(&format!(
            "  {} {} (id {}, \"{}\")\n",
            p.c(RED, "-"),
            p.c(BOLD, &d.address),
            d.id,
            d.name
        ));
    }
    for w in &plan.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    if plan.has_changes() {
        s.push_str(&format!("\n{}\n", plan.summary()));
    } else {
        s.push_str(&format!(
            "No changes. {} monitor(s) of project \"{}\" are up to date.\n",
            plan.unchanged, plan.project
        ));
    }
    let (u, o) = (plan.unmanaged_count, plan.other_projects_count);
    if u + o > 0 {
        s.push_str(&format!(
            "Left alone: {u} monitor(s) not managed by kelpie and {o} of other kelpie projects{}.\n",
            if show_unmanaged { "" } else { " (--show-unmanaged lists them)" }
        ));
        if show_unmanaged && plan.listed_all {
            for m in &plan.unmanaged {
                s.push_str(&format!("    unmanaged  {:>10}  {}\n", m.id, m.name));
            }
            for m in &plan.other_projects {
                s.push_str(&format!(
                    "    project {}  {:>10}  {}\n",
                    m.project.as_deref().unwrap_or("?"),
                    m.id,
                    m.name
                ));
            }
        }
    }
    s
}

/// Most rows of the markdown table, and most characters of its details (a GitHub comment holds 65,536).
const MD_MAX_ROWS: usize = 200;
const MD_MAX_DETAILS: usize = 40_000;

fn md_cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('`', "'")
        .replace('\n', " ")
}

/// Renders the plan as Markdown, ready to post as a pull-request comment: the summary, a table of the
/// changes, the ownership tags and footer that sync writes, and the full text plan in a collapsed block.
pub fn render_markdown(plan: &Plan, show_unmanaged: bool) -> String {
    let mut s = format!(
        "### kelpie monitors plan: project `{}`\n\n",
        md_cell(&plan.project)
    );
    if !plan.has_changes() {
        s.push_str(&format!(
            "**No changes.** {} monitor(s) of project `{}` are up to date.\n",
            plan.unchanged,
            md_cell(&plan.project)
        ));
    } else {
        s.push_str(&format!("**{}**\n\n", plan.summary()));
        s.push_str("| | monitor | id | change |\n|---|---|---|---|\n");
        let mut rows: Vec<String> = Vec::new();
        for c in &plan.create {
            let name = c.body.get("name").and_then(Value::as_str).unwrap_or("");
            rows.push(format!(
                "| + create | `{}` | | name \"{}\" |",
                md_cell(&c.address),
                md_cell(name)
            ));
        }
        for u in &plan.update {
            let mut what: Vec<String> = u.changes.iter().map(|c| c.field.clone()).collect();
            match &u.why {
                Why::Drift => {}
                Why::Moved { from } => what.insert(0, format!("moved from {from}")),
                Why::Adopt { by } => what.insert(0, format!("adopted by {by}")),
            }
            rows.push(format!(
                "| ~ update | `{}` | {} | {} |",
                md_cell(&u.address),
                u.id,
                md_cell(&what.join(", "))
            ));
        }
        for r in &plan.replace {
            rows.push(format!(
                "| -/+ replace | `{}` | {} | type {} → {} (deleted and created again) |",
                md_cell(&r.address),
                r.id,
                md_cell(&r.from_type),
                md_cell(r.body.get("type").and_then(Value::as_str).unwrap_or(""))
            ));
        }
        for d in &plan.delete {
            rows.push(format!(
                "| - delete | `{}` | {} | \"{}\" |",
                md_cell(&d.address),
                d.id,
                md_cell(&d.name)
            ));
        }
        let n = rows.len();
        for r in rows.into_iter().take(MD_MAX_ROWS) {
            s.push_str(&r);
            s.push('\n');
        }
        if n > MD_MAX_ROWS {
            s.push_str(&format!(
                "\n… and {} more (`kelpie monitors plan` lists them all).\n",
                n - MD_MAX_ROWS
            ));
        }
        if let Some(b) = plan
            .create
            .first()
            .map(|c| &c.body)
            .or_else(|| plan.update.first().map(|u| &u.body))
            .or_else(|| plan.replace.first().map(|r| &r.body))
        {
            let (own, footer) = ownership(b);
            let own: Vec<String> = own
                .iter()
                .map(|t| match t.strip_prefix(TAG_ADDRESS) {
                    Some(_) => format!("`{TAG_ADDRESS}<address>`"),
                    None => format!("`{}`", md_cell(t)),
                })
                .collect();
            s.push_str(&format!(
                "\nEvery monitor created or updated carries the ownership tags {}",
                own.join(", ")
            ));
            match footer {
                Some(f) => {
                    s.push_str(
                        " and its message ends with this footer (the first one's shown):\n\n",
                    );
                    for l in f.lines() {
                        s.push_str(&format!("> {}\n", md_cell(l)));
                    }
                }
                None => s.push_str(".\n"),
            }
        }
        if !plan.warnings.is_empty() {
            s.push('\n');
            for w in &plan.warnings {
                s.push_str(&format!("- warning: {}\n", md_cell(w)));
            }
        }
        let mut text = render(plan, false, false);
        if text.len() > MD_MAX_DETAILS {
            let mut cut = MD_MAX_DETAILS;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(text[..cut].rfind('\n').unwrap_or(cut));
            text.push_str("\n… (cut; `kelpie monitors plan` shows it all)\n");
        }
        // Lines start with their +/~/- marker so that GitHub colours them as a diff.
        let text: String = text
            .replace("```", "'''")
            .lines()
            .skip_while(|l| l.starts_with("kelpie will perform") || l.is_empty())
            .map(|l| l.strip_prefix("  ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        s.push_str(&format!(
            "\n<details><summary>Full plan</summary>\n\n```diff\n{text}\n```\n\n</details>\n"
        ));
    }
    let (u, o) = (plan.unmanaged_count, plan.other_projects_count);
    if u + o > 0 {
        s.push_str(&format!(
            "\nLeft alone: {u} monitor(s) not managed by kelpie and {o} of other kelpie projects.\n"
        ));
        if show_unmanaged && plan.listed_all {
            for m in plan.unmanaged.iter().take(MD_MAX_ROWS) {
                s.push_str(&format!("- unmanaged {}: {}\n", m.id, md_cell(&m.name)));
            }
            for m in plan.other_projects.iter().take(MD_MAX_ROWS) {
                s.push_str(&format!(
                    "- project `{}` {}: {}\n",
                    md_cell(m.project.as_deref().unwrap_or("?")),
                    m.id,
                    md_cell(&m.name)
                ));
            }
        }
    }
    s
}

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

/// Why a sync refuses to delete, if it does (SPEC §6.4: more than half of the project's monitors and more
/// than 3).
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
    drop(results);
    if plan.delete.is_empty() {
        return out;
    }
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
                return out;
            }
        }
    };
    let mut todo = Vec::new();
    for d in &plan.delete {
        if d.force || ok.contains(&d.id) {
            todo.push(d);
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
    out
}
