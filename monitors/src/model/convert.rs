//! Building the desired [`Monitor`] from a resource's arguments, for each resource form: the compact
//! `datadog_monitor_metric`, the provider's `datadog_monitor` and `datadog_monitor_json`.

use super::args::{Args, Conv};
use super::checks::{check_order, check_query_thresholds, level, pick};
use super::shape::to_json;
use super::{
    Monitor, DATADOG_TYPES, JSON_RESOURCE, METRIC_RESOURCE, TAG_ADDRESS, TAG_MANAGED, TAG_PROJECT,
};
use crate::diag::{Diag, Pos};
use crate::query::{self, fmt_num, Op};
use serde_json::{json, Map as JsonMap, Value as JsonValue};

const THRESHOLD_KEYS: &[&str] = &[
    "critical",
    "warning",
    "ok",
    "critical_recovery",
    "warning_recovery",
    "unknown",
    "critical_query",
    "critical_recovery_query",
];

/// Thresholds given as queries (dynamic thresholds) rather than numbers, with the static one each replaces.
const QUERY_THRESHOLDS: &[(&str, &str)] = &[
    ("critical_query", "critical"),
    ("critical_recovery_query", "critical_recovery"),
];

const MONITOR_ARGS: &[&str] = &[
    "name",
    "type",
    "query",
    "message",
    "tags",
    "priority",
    "restricted_roles",
    "monitor_thresholds",
    "thresholds",
    "validate",
    "force_delete",
    "draft_status",
    "assets",
];
const METRIC_ARGS: &[&str] = &[
    "name",
    "message",
    "metric",
    "metric_tags",
    "keys",
    "metric_key",
    "time_aggr",
    "time_window",
    "space_aggr",
    "operator",
    "warning",
    "critical",
    "tags",
    "priority",
    "restricted_roles",
    "validate",
    "force_delete",
];

/// The arguments a monitor resource type takes (what `datadog_monitor.a.<name>` may read).
pub fn argument_names(resource: &str) -> Vec<&'static str> {
    let own: &[&'static str] = match resource {
        METRIC_RESOURCE => METRIC_ARGS,
        JSON_RESOURCE => &["monitor", "url", "validate", "force_delete"],
        _ => MONITOR_ARGS,
    };
    let mut names: Vec<&'static str> = own.to_vec();
    if resource != JSON_RESOURCE {
        names.extend(super::args::OPTION_ARGS.iter().map(|(k, _)| *k));
    }
    names
}

/// Builds the desired monitor from a resource's arguments; all errors found are returned together.
pub fn from_args(
    resource: &str,
    address: &str,
    pos: Pos,
    args: &Args,
) -> Result<Monitor, Vec<Diag>> {
    let mut c = Conv {
        args,
        address,
        pos: pos.clone(),
        errors: Vec::new(),
    };
    let mut mon = Monitor {
        address: address.to_string(),
        resource_type: resource.to_string(),
        pos,
        name: String::new(),
        mtype: String::new(),
        query: String::new(),
        message: String::new(),
        tags: Vec::new(),
        priority: None,
        restricted_roles: None,
        options: JsonMap::new(),
        extra: JsonMap::new(),
        validate_remote: true,
        force_delete: false,
    };
    if resource == JSON_RESOURCE {
        return from_json_resource(&mut c, mon);
    }
    mon.name = c.required("name");
    if mon.name.trim().is_empty() && c.present("name").is_some() {
        c.err(
            c.present("name").map(|(_, p)| p.clone()).as_ref(),
            "`name` must not be empty",
        );
    }
    mon.message = c.required("message");
    mon.tags = c.str_list("tags").unwrap_or_default();
    mon.restricted_roles = c.str_list("restricted_roles");
    mon.validate_remote = c.boolean("validate").unwrap_or(true);
    mon.force_delete = c.boolean("force_delete").unwrap_or(false);
    if let Some(p) = c.int("priority") {
        if !(1..=5).contains(&p) {
            let at = c.present("priority").map(|(_, p)| p.clone());
            c.err(
                at.as_ref(),
                format!("`priority` must be between 1 and 5, got {p}"),
            );
        }
        mon.priority = Some(p);
    }
    for t in &mon.tags {
        if t == TAG_MANAGED || t.starts_with(TAG_PROJECT) || t.starts_with(TAG_ADDRESS) {
            let at = c.present("tags").map(|(_, p)| p.clone());
            c.err(
                at.as_ref(),
                format!("the tag \"{t}\" is reserved: kelpie sets it itself"),
            );
        }
    }
    if let Some(d) = c.string("draft_status") {
        if d != "draft" && d != "published" {
            let at = c.present("draft_status").map(|(_, p)| p.clone());
            c.err(
                at.as_ref(),
                format!("`draft_status` is \"draft\" or \"published\", got \"{d}\""),
            );
        }
        mon.extra.insert("draft_status".into(), JsonValue::from(d));
    }
    if let Some((v, _)) = c.present("assets") {
        mon.extra.insert("assets".into(), to_json(v));
    }
    let mut opts = JsonMap::new();
    c.options(&mut opts);
    if resource == METRIC_RESOURCE {
        c.unsupported(resource, METRIC_ARGS);
        metric_form(&mut c, &mut mon, &mut opts);
    } else {
        c.unsupported(resource, MONITOR_ARGS);
        monitor_form(&mut c, &mut mon, &mut opts);
    }
    mon.options = opts;
    if c.errors.is_empty() {
        Ok(mon)
    } else {
        Err(c.errors)
    }
}

fn metric_form(c: &mut Conv<'_>, mon: &mut Monitor, opts: &mut JsonMap<String, JsonValue>) {
    mon.mtype = "metric alert".to_string();
    let metric = c.required("metric");
    if !metric.is_empty()
        && !metric
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.')
    {
        let at = c.present("metric").map(|(_, p)| p.clone());
        c.err(
            at.as_ref(),
            format!("`metric` \"{metric}\" is not a metric name (letters, digits, _ and .)"),
        );
    }
    let scope = c.string("metric_tags").unwrap_or_else(|| "*".to_string());
    let scope = if scope.trim().is_empty() {
        "*".to_string()
    } else {
        scope.trim().to_string()
    };
    let mut keys = c.str_list("keys").unwrap_or_default();
    if let Some(k) = c.string("metric_key") {
        keys.push(k);
    }
    let time_aggr = pick(c, "time_aggr", "avg", query::TIME_AGGRS);
    let window = c.string("time_window").unwrap_or_else(|| "last_5m".into());
    if !query::TIME_WINDOWS.contains(&window.as_str()) {
        let at = c.present("time_window").map(|(_, p)| p.clone());
        c.err(
            at.as_ref(),
            format!(
                "`time_window` is \"{window}\"; expected one of {}",
                query::TIME_WINDOWS.join(", ")
            ),
        );
    }
    let space_aggr = pick(c, "space_aggr", "avg", query::SPACE_AGGRS);
    let operator = pick(c, "operator", ">", query::OPERATORS);
    let warning = level(c, "warning");
    let critical = level(c, "critical");
    if c.present("critical").is_none() {
        c.err(
            None,
            "the required block `critical { threshold = ..., notify = ... }` is missing",
        );
    }
    let op = Op::parse(&operator).unwrap_or(Op::Gt);
    let by = if keys.is_empty() {
        String::new()
    } else {
        format!(" by {{{}}}", keys.join(","))
    };
    let crit = critical.as_ref().map(|(t, ..)| *t).unwrap_or(0.0);
    mon.query = format!(
        "{time_aggr}({window}):{space_aggr}:{metric}{{{scope}}}{by} {operator} {}",
        fmt_num(crit)
    );
    let mut th = JsonMap::new();
    th.insert("critical".into(), json!(crit));
    if let (Some((w, _, wp)), Some(_)) = (&warning, &critical) {
        th.insert("warning".into(), json!(*w));
        let wp = wp.clone();
        check_order(c, Some(&wp), op, *w, crit);
    }
    opts.insert("thresholds".into(), JsonValue::Object(th));
    opts.entry("notify_no_data")
        .or_insert(JsonValue::Bool(true));
    let mut message = mon.message.trim_end().to_string();
    if let Some((_, n, _)) = &warning {
        if !n.is_empty() {
            message.push_str(&format!("\n{{{{#is_warning}}}}{n}{{{{/is_warning}}}}"));
        }
    }
    if let Some((_, n, _)) = &critical {
        if !n.is_empty() {
            message.push_str(&format!("\n{{{{#is_alert}}}}{n}{{{{/is_alert}}}}"));
        }
    }
    mon.message = message;
}

fn monitor_form(c: &mut Conv<'_>, mon: &mut Monitor, opts: &mut JsonMap<String, JsonValue>) {
    mon.mtype = c.required("type");
    mon.query = c.required("query");
    let type_pos = c.present("type").map(|(_, p)| p.clone());
    let query_pos = c.present("query").map(|(_, p)| p.clone());
    if !mon.mtype.is_empty() && !DATADOG_TYPES.contains(&mon.mtype.as_str()) {
        c.err(
            type_pos.as_ref(),
            format!("`type` \"{}\" is not a Datadog monitor type", mon.mtype),
        );
    }
    if c.present("monitor_thresholds").is_some() && c.present("thresholds").is_some() {
        c.err(
            None,
            "set `monitor_thresholds` or the older `thresholds`, not both",
        );
    }
    let key = if c.present("thresholds").is_some() {
        "thresholds"
    } else {
        "monitor_thresholds"
    };
    let (mut th, th_pos) = thresholds(c, key);
    check_threshold_queries(c, mon, opts, &th, th_pos.as_ref());
    check_query_thresholds(c, mon, &mut th, th_pos, query_pos);
    if !th.is_empty() {
        opts.insert("thresholds".into(), JsonValue::Object(th));
    }
}

/// Dynamic thresholds (`critical_query`, `critical_recovery_query`), as Datadog takes them: only with a
/// formula query over a `variables` block, not with the static threshold they replace, and each a
/// `formula("…")…` query itself.
fn check_threshold_queries(
    c: &mut Conv<'_>,
    mon: &Monitor,
    opts: &JsonMap<String, JsonValue>,
    th: &JsonMap<String, JsonValue>,
    at: Option<&Pos>,
) {
    for (qkey, static_key) in QUERY_THRESHOLDS {
        let Some(q) = th.get(*qkey).and_then(JsonValue::as_str) else {
            continue;
        };
        if th.contains_key(*static_key) {
            c.err(
                at,
                format!("`{qkey}` cannot be combined with the static `{static_key}` threshold"),
            );
        }
        if !mon.query.trim_start().starts_with("formula(") || !opts.contains_key("variables") {
            c.err(
                at,
                format!("`{qkey}` needs a formula query (`formula(\"query1\")…`) and a `variables` block"),
            );
        }
        if !q.starts_with("formula(") || !q.ends_with(')') {
            c.err(
                at,
                format!("`{qkey}` must be a formula query, e.g. formula(\"2 * query1\").rollup(\"avg\").last(\"6mo\"), not {q:?}"),
            );
        }
    }
}

/// The `monitor_thresholds` (or older `thresholds`) block as JSON numbers (query thresholds as strings),
/// with where it is.
fn thresholds(c: &mut Conv<'_>, key: &str) -> (JsonMap<String, JsonValue>, Option<Pos>) {
    let mut th = JsonMap::new();
    let mut th_pos = None;
    if let Some((obj, p)) = c.object(key) {
        th_pos = Some(p.clone());
        for (k, v) in obj {
            if !THRESHOLD_KEYS.contains(&k.as_str()) {
                c.err(
                    Some(p),
                    format!(
                        "unsupported argument `{k}` in `{key}` (expected {}){}",
                        THRESHOLD_KEYS.join(", "),
                        crate::diag::did_you_mean(k, THRESHOLD_KEYS.iter().copied())
                    ),
                );
                continue;
            }
            if v.is_null() {
                continue;
            }
            if QUERY_THRESHOLDS.iter().any(|(q, _)| q == k) {
                match v {
                    hcl::Value::String(q) if !q.trim().is_empty() => {
                        th.insert(k.clone(), json!(q.trim()));
                    }
                    _ => c.err(
                        Some(p),
                        format!("`{key}.{k}` must be a non-empty query string"),
                    ),
                }
                continue;
            }
            if let Some(f) = c.number_of(v, p, &format!("{key}.{k}")) {
                th.insert(k.clone(), json!(f));
            }
        }
    }
    (th, th_pos)
}

/// A `datadog_monitor_json` resource: `monitor` is the monitor's JSON as the API takes it.
fn from_json_resource(c: &mut Conv<'_>, mut mon: Monitor) -> Result<Monitor, Vec<Diag>> {
    c.unsupported(
        JSON_RESOURCE,
        &["monitor", "url", "validate", "force_delete"],
    );
    mon.validate_remote = c.boolean("validate").unwrap_or(true);
    mon.force_delete = c.boolean("force_delete").unwrap_or(false);
    let text = c.required("monitor");
    let at = c.present("monitor").map(|(_, p)| p.clone());
    match serde_json::from_str::<JsonValue>(&text) {
        Ok(JsonValue::Object(o)) => {
            let s = |k: &str| {
                o.get(k)
                    .and_then(JsonValue::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let strs = |k: &str| {
                o.get(k).and_then(JsonValue::as_array).map(|a| {
                    a.iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                })
            };
            mon.name = s("name");
            mon.mtype = s("type");
            mon.query = s("query");
            mon.message = s("message");
            mon.tags = strs("tags").unwrap_or_default();
            mon.restricted_roles = strs("restricted_roles");
            mon.priority = o.get("priority").and_then(|p| match p {
                JsonValue::String(s) => s.trim().parse().ok(),
                other => other.as_i64(),
            });
            mon.options = o
                .get("options")
                .and_then(JsonValue::as_object)
                .cloned()
                .unwrap_or_default();
            for k in ["draft_status", "assets"] {
                if let Some(v) = o.get(k) {
                    mon.extra.insert(k.into(), v.clone());
                }
            }
            for k in ["name", "type", "query"] {
                if s(k).trim().is_empty() {
                    c.err(
                        at.as_ref(),
                        format!("the monitor JSON needs a non-empty \"{k}\""),
                    );
                }
            }
            if !mon.mtype.is_empty() && !DATADOG_TYPES.contains(&mon.mtype.as_str()) {
                c.err(
                    at.as_ref(),
                    format!("unknown monitor type \"{}\"", mon.mtype),
                );
            } else if !mon.query.is_empty() {
                let check = if matches!(mon.mtype.as_str(), "metric alert" | "query alert") {
                    query::parse(&mon.query).map(|_| ())
                } else {
                    query::check_typed(&mon.mtype, &mon.query).map(|_| ())
                };
                if let Err(e) = check {
                    c.err(at.as_ref(), format!("invalid query: {e}"));
                }
            }
        }
        Ok(_) => c.err(
            at.as_ref(),
            "`monitor` must be a JSON object (use jsonencode({ … }))",
        ),
        Err(e) => c.err(at.as_ref(), format!("`monitor` is not valid JSON: {e}")),
    }
    if c.errors.is_empty() {
        Ok(mon)
    } else {
        Err(std::mem::take(&mut c.errors))
    }
}
