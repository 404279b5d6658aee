//! Showing a plan: as text like `terraform plan` (colored on a terminal), and as Markdown for a
//! pull-request comment.

use super::{Create, Plan, Why};
use crate::model::{self, TAG_ADDRESS, TAG_MANAGED, TAG_PROJECT};
use crate::query;
use serde_json::Value;

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
        render_create(&mut s, &p, c);
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
    left_alone(&mut s, plan, show_unmanaged);
    s
}

/// A create: the main fields, thresholds, and the ownership tags and footer sync adds.
fn render_create(s: &mut String, p: &Paint, c: &Create) {
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

/// The line on the monitors the plan leaves alone, and with `--show-unmanaged` the list of them.
fn left_alone(s: &mut String, plan: &Plan, show_unmanaged: bool) {
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
        let rows = md_rows(plan);
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
        md_ownership(&mut s, plan);
        if !plan.warnings.is_empty() {
            s.push('\n');
            for w in &plan.warnings {
                s.push_str(&format!("- warning: {}\n", md_cell(w)));
            }
        }
        s.push_str(&md_details(plan));
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

/// The rows of the Markdown table of changes, in the order sync makes them.
fn md_rows(plan: &Plan) -> Vec<String> {
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
    rows
}

/// The ownership tags and the message footer sync writes (those of the first change shown).
fn md_ownership(s: &mut String, plan: &Plan) {
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
                s.push_str(" and its message ends with this footer (the first one's shown):\n\n");
                for l in f.lines() {
                    s.push_str(&format!("> {}\n", md_cell(l)));
                }
            }
            None => s.push_str(".\n"),
        }
    }
}

/// The text plan in a collapsed block, cut to fit a comment.
fn md_details(plan: &Plan) -> String {
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
    format!("\n<details><summary>Full plan</summary>\n\n```diff\n{text}\n```\n\n</details>\n")
}
