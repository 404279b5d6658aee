//! Plan (what sync would do) and apply. Remote monitors are matched to files by their `kelpie-address` tag
//! within this project; `moved` blocks carry a match to a new address; `import` blocks and, failing that, an
//! unmanaged monitor with the same name, type and query adopt existing monitors instead of creating copies.
//! This file holds the plan's types; computing, rendering and applying it have their own files.

mod apply;
mod compute;
mod render;

pub use apply::{
    apply, change_count, has_pending_refs, mass_delete_refusal, search_tags, without_pending_refs,
    Applied,
};
pub use compute::compute;
pub use render::{ownership, render, render_markdown};

use crate::model::Change;
use serde::Serialize;
use serde_json::Value;
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

/// A remote monitor's id (-1 if it has none).
pub(super) fn id_of(m: &Value) -> i64 {
    m.get("id").and_then(Value::as_i64).unwrap_or(-1)
}

/// A remote monitor's name, trimmed.
pub(super) fn name_of(m: &Value) -> String {
    m.get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_string()
}

/// The file of a monitor relative to the monitors directory, as the message footer names it.
pub fn rel_file(dir: &Path, file: &str) -> String {
    let p = Path::new(file);
    p.strip_prefix(dir).unwrap_or(p).display().to_string()
}
