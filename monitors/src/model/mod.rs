//! The monitor model: turning a resource's evaluated arguments into a Datadog monitor (both resource forms),
//! the offline checks of SPEC §6.5, the ownership tags, and the normalized comparison with what the API returns.
//! This file holds the types and the request body; each step has its own file.

mod args;
mod checks;
mod compare;
mod convert;
mod shape;
mod tags;
#[cfg(test)]
mod tests;

pub use args::{Args, Kind, OPTION_ARGS};
pub use compare::{canon_type, diff, managed_fields, option_default, Change};
pub use convert::{argument_names, from_args};
pub use tags::{
    address_tag, ref_token, remote_tags, resolve_refs, tag_value, FOOTER_MARK, TAG_ADDRESS,
    TAG_MANAGED, TAG_PROJECT,
};

use crate::diag::Pos;
use serde_json::{Map as JsonMap, Value as JsonValue};

pub const METRIC_RESOURCE: &str = "datadog_monitor_metric";
pub const MONITOR_RESOURCE: &str = "datadog_monitor";
pub const JSON_RESOURCE: &str = "datadog_monitor_json";
pub const MONITOR_TYPES: &[&str] = &[METRIC_RESOURCE, MONITOR_RESOURCE, JSON_RESOURCE];
/// Blocks that may repeat; their values are a list.
pub const LIST_BLOCKS: &[&str] = &["assets"];

/// Datadog monitor types accepted by the API (`type`).
pub const DATADOG_TYPES: &[&str] = &[
    "metric alert",
    "query alert",
    "service check",
    "event alert",
    "event-v2 alert",
    "log alert",
    "process alert",
    "rum alert",
    "trace-analytics alert",
    "slo alert",
    "composite",
    "audit alert",
    "ci-pipelines alert",
    "ci-tests alert",
    "error-tracking alert",
    "database-monitoring alert",
    "network-performance alert",
    "synthetics alert",
    "cost alert",
    "data-quality alert",
    "network-path alert",
];

/// One desired monitor, as the files declare it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Monitor {
    pub address: String,
    pub resource_type: String,
    #[serde(skip)]
    pub pos: Pos,
    pub name: String,
    #[serde(rename = "type")]
    pub mtype: String,
    pub query: String,
    /// The message as written (without kelpie's footer).
    pub message: String,
    /// The user's tags (without kelpie's ownership tags).
    pub tags: Vec<String>,
    pub priority: Option<i64>,
    pub restricted_roles: Option<Vec<String>>,
    /// The options the file sets (only these are compared).
    pub options: JsonMap<String, JsonValue>,
    /// Other top-level fields the files set (`draft_status`, `assets`), compared like options.
    pub extra: JsonMap<String, JsonValue>,
    #[serde(skip)]
    pub validate_remote: bool,
    #[serde(skip)]
    pub force_delete: bool,
}

impl Monitor {
    /// The kelpie tags plus the user's, sorted.
    pub fn all_tags(&self, project: &str) -> Vec<String> {
        let mut t: Vec<String> = self.tags.iter().map(|t| t.trim().to_string()).collect();
        t.push(TAG_MANAGED.to_string());
        t.push(format!("{TAG_PROJECT}{project}"));
        t.push(format!("{TAG_ADDRESS}{}", address_tag(&self.address)));
        t.sort();
        t.dedup();
        t
    }

    /// The message with kelpie's footer (`file` is relative to the monitors directory).
    pub fn full_message(&self, file: &str) -> String {
        format!(
            "{}\n\n{FOOTER_MARK} from {file} ({}). Edits made in the Datadog UI will be overwritten by the next sync.",
            self.message.trim_end(),
            self.address
        )
    }

    /// The body of a create (or update) request.
    pub fn payload(&self, project: &str, file: &str) -> JsonValue {
        let mut o = JsonMap::new();
        o.insert("name".into(), JsonValue::from(self.name.trim()));
        o.insert("type".into(), JsonValue::from(self.mtype.as_str()));
        o.insert("query".into(), JsonValue::from(self.query.trim()));
        o.insert("message".into(), JsonValue::from(self.full_message(file)));
        o.insert("tags".into(), JsonValue::from(self.all_tags(project)));
        if let Some(p) = self.priority {
            o.insert("priority".into(), JsonValue::from(p));
        }
        if let Some(r) = &self.restricted_roles {
            o.insert("restricted_roles".into(), JsonValue::from(r.clone()));
        }
        o.insert("options".into(), JsonValue::Object(self.options.clone()));
        for (k, v) in &self.extra {
            o.insert(k.clone(), v.clone());
        }
        JsonValue::Object(o)
    }
}
