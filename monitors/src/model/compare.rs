//! The normalized comparison of a desired monitor with what the API returns: the API rewrites types,
//! numbers, lists and defaults, and none of those rewrites is a change.

use super::Monitor;
use crate::query;
use serde_json::{json, Value as JsonValue};
use std::collections::BTreeMap;

/// Server-side defaults of monitor options: a missing or null option is compared as its default.
pub fn option_default(key: &str) -> JsonValue {
    match key {
        "notify_audit"
        | "notify_no_data"
        | "locked"
        | "enable_logs_sample"
        | "groupby_simple_monitor" => JsonValue::Bool(false),
        "include_tags" | "require_full_window" => JsonValue::Bool(true),
        "new_host_delay" => json!(300.0),
        "renotify_interval" | "timeout_h" | "evaluation_delay" | "renotify_occurrences" => {
            json!(0.0)
        }
        "escalation_message" => JsonValue::from(""),
        _ => JsonValue::Null,
    }
}

/// Canonical form of a JSON value: numbers as floats, strings trimmed, arrays of strings sorted.
fn canon(v: &JsonValue) -> JsonValue {
    match v {
        JsonValue::Number(n) => n.as_f64().map(|f| json!(f)).unwrap_or(JsonValue::Null),
        JsonValue::String(s) => JsonValue::from(s.trim()),
        JsonValue::Array(a) => {
            let mut items: Vec<JsonValue> = a.iter().map(canon).collect();
            if items.iter().all(JsonValue::is_string) {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                items.dedup();
            }
            JsonValue::Array(items)
        }
        JsonValue::Object(o) => JsonValue::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), canon(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The API returns null for an empty list or map (and a file may write `[]`): compare them as equal.
fn empty_is_null(v: JsonValue) -> JsonValue {
    match &v {
        JsonValue::Array(a) if a.is_empty() => JsonValue::Null,
        JsonValue::Object(o) if o.is_empty() => JsonValue::Null,
        _ => v,
    }
}

/// A monitor type as the API stores it (`metric alert` is read back as `query alert`).
pub fn canon_type(t: &str) -> &str {
    if t.trim() == "metric alert" {
        "query alert"
    } else {
        t.trim()
    }
}

/// The managed fields of a monitor body (desired payload or API response), normalized the way the API does.
/// `keys` are the option keys the file sets.
pub fn managed_fields(
    body: &JsonValue,
    option_keys: &[String],
    with_priority: bool,
    with_roles: bool,
) -> BTreeMap<String, JsonValue> {
    let mut f = BTreeMap::new();
    let get = |k: &str| body.get(k).cloned().unwrap_or(JsonValue::Null);
    f.insert("name".into(), canon(&get("name")));
    f.insert(
        "type".into(),
        JsonValue::from(canon_type(
            body.get("type").and_then(JsonValue::as_str).unwrap_or(""),
        )),
    );
    f.insert(
        "query".into(),
        JsonValue::from(query::normalize(
            body.get("query").and_then(JsonValue::as_str).unwrap_or(""),
        )),
    );
    f.insert("message".into(), canon(&get("message")));
    f.insert("tags".into(), canon(&get("tags")));
    if with_priority {
        let p = get("priority");
        // The API stores priority as a number; the provider sends it as a string.
        let p = match p {
            JsonValue::String(s) => s
                .trim()
                .parse::<f64>()
                .map(|f| json!(f))
                .unwrap_or(JsonValue::Null),
            other => canon(&other),
        };
        f.insert("priority".into(), p);
    }
    if with_roles {
        f.insert(
            "restricted_roles".into(),
            empty_is_null(canon(&get("restricted_roles"))),
        );
    }
    let opts = body.get("options").cloned().unwrap_or(JsonValue::Null);
    for k in option_keys {
        let v = opts.get(k).cloned().unwrap_or(JsonValue::Null);
        let v = empty_is_null(canon(&v));
        let v = if v.is_null() { option_default(k) } else { v };
        f.insert(format!("options.{k}"), v);
    }
    f
}

/// Field-level differences between what the account has and what the files want.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Change {
    pub field: String,
    pub before: JsonValue,
    pub after: JsonValue,
}

/// Compares a desired payload with a monitor read back from the API.
pub fn diff(desired: &Monitor, payload: &JsonValue, remote: &JsonValue) -> Vec<Change> {
    let keys: Vec<String> = desired.options.keys().cloned().collect();
    let want = managed_fields(
        payload,
        &keys,
        desired.priority.is_some(),
        desired.restricted_roles.is_some(),
    );
    let have = managed_fields(
        remote,
        &keys,
        desired.priority.is_some(),
        desired.restricted_roles.is_some(),
    );
    let mut out = Vec::new();
    for k in desired.extra.keys() {
        let get = |b: &JsonValue| match (k.as_str(), b.get(k)) {
            ("draft_status", None | Some(JsonValue::Null)) => JsonValue::from("published"),
            (_, v) => canon(v.unwrap_or(&JsonValue::Null)),
        };
        let (before, after) = (get(remote), get(payload));
        if before != after {
            out.push(Change {
                field: k.clone(),
                before,
                after,
            });
        }
    }
    for (k, after) in want {
        let before = have.get(&k).cloned().unwrap_or(JsonValue::Null);
        let same_query = k == "query"
            && matches!((&before, &after), (JsonValue::String(b), JsonValue::String(a)) if query::canonical(b) == query::canonical(a));
        if before != after && !same_query {
            out.push(Change {
                field: k,
                before,
                after,
            });
        }
    }
    out
}
