//! What the API stores: a monitor normalized the way Datadog does it (types, floats, trimmed strings,
//! sorted tags, option defaults) and the server-side fields (`id`, `created`, `modified`, `creator`, ...).

use super::validate::num;
use serde_json::{json, Map, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn canon_type(t: &str) -> &str {
    match t.trim() {
        "metric alert" => "query alert",
        other => other,
    }
}

/// Datadog's normalization of a stored monitor.
pub(super) fn normalize(m: &mut Value) {
    let Some(o) = m.as_object_mut() else { return };
    for k in ["name", "message", "query"] {
        if let Some(Value::String(s)) = o.get_mut(k) {
            *s = s.trim().to_string();
        }
    }
    if o.get("type").and_then(Value::as_str) == Some("metric alert") {
        o.insert("type".into(), Value::from("query alert"));
    }
    let mut tags: Vec<String> = o
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags.dedup();
    o.insert("tags".into(), Value::from(tags));
    if let Some(Value::String(p)) = o.get("priority") {
        let p = p.trim().parse::<i64>().ok();
        o.insert("priority".into(), p.map(Value::from).unwrap_or(Value::Null));
    }
    let mut opts = match o.remove("options") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in [
        ("notify_audit", Value::Bool(false)),
        ("include_tags", Value::Bool(true)),
        ("new_host_delay", json!(300)),
        ("notify_no_data", Value::Bool(false)),
        ("require_full_window", Value::Bool(true)),
        ("renotify_interval", Value::Null),
        ("timeout_h", Value::Null),
        ("no_data_timeframe", Value::Null),
        ("escalation_message", Value::from("")),
        ("locked", Value::Bool(false)),
        ("silenced", json!({})),
    ] {
        match opts.get(k) {
            None | Some(Value::Null) => {
                opts.insert(k.to_string(), v);
            }
            _ => {}
        }
    }
    if let Some(Value::String(s)) = opts.get_mut("escalation_message") {
        *s = s.trim().to_string();
    }
    if let Some(Value::Object(th)) = opts.get_mut("thresholds") {
        for v in th.values_mut() {
            if let Some(f) = num(v) {
                *v = json!(f);
            }
        }
    }
    o.insert("options".into(), Value::Object(opts));
}

pub(super) fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

pub(super) fn server_fields(m: &mut Value, id: i64, created: Option<Value>) {
    let Some(o) = m.as_object_mut() else { return };
    let now = Value::from(rfc3339(SystemTime::now()));
    o.insert("id".into(), Value::from(id));
    o.insert("org_id".into(), Value::from(2));
    o.insert("created".into(), created.unwrap_or_else(|| now.clone()));
    o.insert("modified".into(), now);
    o.insert("deleted".into(), Value::Null);
    o.insert(
        "creator".into(),
        json!({"email": "ci@example.com", "handle": "ci@example.com", "name": "CI", "id": 1}),
    );
    o.entry("overall_state").or_insert(Value::from("No Data"));
    o.insert("overall_state_modified".into(), Value::Null);
    o.entry("priority").or_insert(Value::Null);
    o.entry("restricted_roles").or_insert(Value::Null);
    o.entry("message").or_insert(Value::from(""));
    o.entry("name").or_insert(Value::from(""));
    let multi = o
        .get("query")
        .and_then(Value::as_str)
        .is_some_and(|q| q.contains(" by "));
    o.insert("multi".into(), Value::Bool(multi));
    // Datadog keeps a draft a draft; "published" is only the default.
    o.entry("draft_status").or_insert(Value::from("published"));
}
