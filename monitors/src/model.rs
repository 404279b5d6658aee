//! The monitor model: turning a resource's evaluated arguments into a Datadog monitor (both resource forms),
//! the offline checks of SPEC §6.5, the ownership tags, and the normalized comparison with what the API returns.

use crate::diag::{Diag, Pos};
use crate::query::{self, fmt_num, Op};
use hcl::Value;
use serde_json::{json, Map as JMap, Value as J};
use std::collections::BTreeMap;
use std::collections::HashMap;

pub const METRIC_RESOURCE: &str = "datadog_monitor_metric";
pub const MONITOR_RESOURCE: &str = "datadog_monitor";
pub const JSON_RESOURCE: &str = "datadog_monitor_json";
pub const MONITOR_TYPES: &[&str] = &[METRIC_RESOURCE, MONITOR_RESOURCE, JSON_RESOURCE];
/// Blocks that may repeat; their values are a list.
pub const LIST_BLOCKS: &[&str] = &["assets"];

pub const TAG_MANAGED: &str = "managed-by:kelpie";
pub const TAG_PROJECT: &str = "kelpie-project:";
pub const TAG_ADDRESS: &str = "kelpie-address:";
/// The first line of the footer kelpie appends to every managed monitor's message.
pub const FOOTER_MARK: &str = "---\nManaged by kelpie";

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
];

const THRESHOLD_KEYS: &[&str] = &[
    "critical",
    "warning",
    "ok",
    "critical_recovery",
    "warning_recovery",
    "unknown",
];

#[derive(Clone, Copy)]
pub enum Kind {
    Bool,
    Int,
    Str,
    StrList,
    StrMap,
    /// A block passed on as JSON, shaped as the API wants it (scheduling_options, variables).
    Json,
}

/// Arguments that map one to one onto `options.<key>` in both resource forms.
pub const OPTION_ARGS: &[(&str, Kind)] = &[
    ("notify_no_data", Kind::Bool),
    ("no_data_timeframe", Kind::Int),
    ("renotify_interval", Kind::Int),
    ("renotify_occurrences", Kind::Int),
    ("renotify_statuses", Kind::StrList),
    ("evaluation_delay", Kind::Int),
    ("new_group_delay", Kind::Int),
    ("new_host_delay", Kind::Int),
    ("require_full_window", Kind::Bool),
    ("include_tags", Kind::Bool),
    ("notify_audit", Kind::Bool),
    ("timeout_h", Kind::Int),
    ("escalation_message", Kind::Str),
    ("locked", Kind::Bool),
    ("enable_logs_sample", Kind::Bool),
    ("groupby_simple_monitor", Kind::Bool),
    ("notify_by", Kind::StrList),
    ("on_missing_data", Kind::Str),
    ("threshold_windows", Kind::StrMap),
    // The provider's current name for threshold_windows.
    ("monitor_threshold_windows", Kind::StrMap),
    ("notification_preset_name", Kind::Str),
    ("enable_samples", Kind::Bool),
    ("group_retention_duration", Kind::Str),
    ("scheduling_options", Kind::Json),
    ("variables", Kind::Json),
    // Older providers: a map of scope to mute-until timestamp.
    ("silenced", Kind::Json),
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

/// One desired monitor, as the files declare it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
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
    pub options: JMap<String, J>,
    /// Other top-level fields the files set (`draft_status`, `assets`), compared like options.
    pub extra: JMap<String, J>,
    #[serde(skip)]
    pub validate_remote: bool,
    #[serde(skip)]
    pub force_delete: bool,
}

/// A resource's evaluated arguments and blocks, with positions.
#[derive(Default, Debug)]
pub struct Args {
    items: Vec<(String, Value, Pos, bool)>,
}

impl Args {
    pub fn insert(
        &mut self,
        key: &str,
        v: Value,
        pos: Pos,
        is_block: bool,
        address: &str,
        errors: &mut Vec<Diag>,
    ) {
        if let Some((_, _, first, _)) = self.items.iter().find(|(k, ..)| k == key) {
            errors.push(Diag::new(
                Some(pos),
                Some(address),
                format!("`{key}` is set more than once (first at {first})"),
            ));
            return;
        }
        self.items.push((key.to_string(), v, pos, is_block));
    }

    fn get(&self, key: &str) -> Option<(&Value, &Pos)> {
        self.items
            .iter()
            .find(|(k, ..)| k == key)
            .map(|(_, v, p, _)| (v, p))
    }
}

struct Conv<'a> {
    args: &'a Args,
    address: &'a str,
    pos: Pos,
    errors: Vec<Diag>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

impl<'a> Conv<'a> {
    fn err(&mut self, pos: Option<&Pos>, msg: impl Into<String>) {
        let pos = pos.cloned().unwrap_or_else(|| self.pos.clone());
        self.errors
            .push(Diag::new(Some(pos), Some(self.address), msg));
    }

    fn present(&self, key: &str) -> Option<(&'a Value, &'a Pos)> {
        self.args.get(key).filter(|(v, _)| !v.is_null())
    }

    fn string(&mut self, key: &str) -> Option<String> {
        let (v, p) = self.present(key)?;
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.err(
                    Some(p),
                    format!("`{key}` must be a string, got {}", type_name(other)),
                );
                None
            }
        }
    }

    fn required(&mut self, key: &str) -> String {
        match self.string(key) {
            Some(s) => s,
            None => {
                if self.present(key).is_none() {
                    self.err(None, format!("the required argument `{key}` is missing"));
                }
                String::new()
            }
        }
    }

    fn number_of(&mut self, v: &Value, p: &Pos, what: &str) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Some(f),
                _ => {
                    self.err(Some(p), format!("`{what}` must be a number, got \"{s}\""));
                    None
                }
            },
            other => {
                self.err(
                    Some(p),
                    format!("`{what}` must be a number, got {}", type_name(other)),
                );
                None
            }
        }
    }

    fn int(&mut self, key: &str) -> Option<i64> {
        let (v, p) = self.present(key)?;
        let f = self.number_of(v, p, key)?;
        if f.fract() != 0.0 {
            self.err(Some(p), format!("`{key}` must be a whole number, got {f}"));
            return None;
        }
        Some(f as i64)
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        let (v, p) = self.present(key)?;
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            other => {
                self.err(
                    Some(p),
                    format!("`{key}` must be true or false, got {}", type_name(other)),
                );
                None
            }
        }
    }

    fn str_list(&mut self, key: &str) -> Option<Vec<String>> {
        let (v, p) = self.present(key)?;
        match v {
            Value::Array(a) => {
                let mut out = Vec::new();
                for x in a {
                    match x {
                        Value::String(s) => out.push(s.clone()),
                        Value::Number(n) => out.push(n.to_string()),
                        other => {
                            self.err(
                                Some(p),
                                format!(
                                    "`{key}` must be a list of strings, found {}",
                                    type_name(other)
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            // Terraform 0.6 style: `tags { team = "infra" }` means ["team:infra"].
            Value::Object(o) => Some(
                o.iter()
                    .map(|(k, v)| match v {
                        Value::String(s) if s.is_empty() => k.clone(),
                        Value::String(s) => format!("{k}:{s}"),
                        other => format!("{k}:{other}"),
                    })
                    .collect(),
            ),
            Value::String(s) => Some(
                s.split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect(),
            ),
            other => {
                self.err(
                    Some(p),
                    format!(
                        "`{key}` must be a list of strings, got {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    fn object(&mut self, key: &str) -> Option<(&'a hcl::Map<String, Value>, &'a Pos)> {
        let (v, p) = self.present(key)?;
        match v {
            Value::Object(o) => Some((o, p)),
            other => {
                self.err(
                    Some(p),
                    format!("`{key}` must be a block or a map, got {}", type_name(other)),
                );
                None
            }
        }
    }

    fn options(&mut self, opts: &mut JMap<String, J>) {
        for (key, kind) in OPTION_ARGS {
            let v = match kind {
                Kind::Bool => self.boolean(key).map(J::from),
                Kind::Int => self.int(key).map(J::from),
                Kind::Str => self.string(key).map(J::from),
                Kind::StrList => self.str_list(key).map(J::from),
                Kind::Json => self.object(key).map(|(o, _)| shape_block(key, o)),
                Kind::StrMap => self.object(key).map(|(o, _)| {
                    J::Object(
                        o.iter()
                            .map(|(k, v)| (k.clone(), J::from(v.as_str().unwrap_or_default())))
                            .collect(),
                    )
                }),
            };
            if let Some(v) = v {
                let option = if *key == "monitor_threshold_windows" {
                    "threshold_windows"
                } else {
                    key
                };
                if opts.contains_key(option) {
                    let at = self.present(key).map(|(_, p)| p.clone());
                    self.err(
                        at.as_ref(),
                        format!("`{key}` sets the same option as another argument"),
                    );
                }
                opts.insert(option.to_string(), v);
            }
        }
    }

    fn unsupported(&mut self, resource: &str, allowed: &[&str]) {
        let items: Vec<(String, Pos)> = self
            .args
            .items
            .iter()
            .map(|(k, _, p, _)| (k.clone(), p.clone()))
            .collect();
        for (k, p) in items {
            if !allowed.contains(&k.as_str()) && !OPTION_ARGS.iter().any(|(o, _)| *o == k) {
                let hint = crate::diag::did_you_mean(
                    &k,
                    allowed
                        .iter()
                        .copied()
                        .chain(OPTION_ARGS.iter().map(|(o, _)| *o)),
                );
                self.err(
                    Some(&p),
                    format!("unsupported argument `{k}` for {resource}{hint}"),
                );
            }
        }
    }
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
        options: JMap::new(),
        extra: JMap::new(),
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
        mon.extra.insert("draft_status".into(), J::from(d));
    }
    if let Some((v, _)) = c.present("assets") {
        mon.extra.insert("assets".into(), to_json(v));
    }
    let mut opts = JMap::new();
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

fn check_order(c: &mut Conv<'_>, at: Option<&Pos>, op: Op, warning: f64, critical: f64) {
    if op.is_upward() && warning >= critical {
        c.err(
            at,
            format!(
                "warning threshold ({}) must be below the critical threshold ({}) for `{}`",
                fmt_num(warning),
                fmt_num(critical),
                op.as_str()
            ),
        );
    } else if matches!(op, Op::Lt | Op::Le) && warning <= critical {
        c.err(
            at,
            format!(
                "warning threshold ({}) must be above the critical threshold ({}) for `{}`",
                fmt_num(warning),
                fmt_num(critical),
                op.as_str()
            ),
        );
    }
}

fn check_handles(c: &mut Conv<'_>, at: Option<&Pos>, level: &str, notify: &str) {
    for word in notify.split_whitespace() {
        let ok = word.len() > 1
            && word.starts_with('@')
            && word[1..]
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.+@/:".contains(ch));
        if !ok {
            c.err(at, format!("{level}.notify: \"{word}\" is not a notification handle like @slack-channel or @user@example.com"));
        }
    }
}

fn level(c: &mut Conv<'_>, key: &str) -> Option<(f64, String, Pos)> {
    let (obj, p) = c.object(key)?;
    let p = p.clone();
    for k in obj.keys() {
        if k != "threshold" && k != "notify" {
            c.err(
                Some(&p),
                format!("unsupported argument `{k}` in `{key}` (expected threshold and notify)"),
            );
        }
    }
    let threshold = match obj.get("threshold") {
        Some(v) => c.number_of(v, &p, &format!("{key}.threshold"))?,
        None => {
            c.err(Some(&p), format!("`{key}` needs a `threshold`"));
            return None;
        }
    };
    let notify = match obj.get("notify") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            c.err(
                Some(&p),
                format!("`{key}.notify` must be a string, got {}", type_name(other)),
            );
            String::new()
        }
    };
    check_handles(c, Some(&p), key, &notify);
    Some((threshold, notify, p))
}

fn pick(c: &mut Conv<'_>, key: &str, default: &str, allowed: &[&str]) -> String {
    let v = c.string(key).unwrap_or_else(|| default.to_string());
    if !allowed.contains(&v.as_str()) {
        let at = c.present(key).map(|(_, p)| p.clone());
        c.err(
            at.as_ref(),
            format!("`{key}` is \"{v}\"; expected one of {}", allowed.join(", ")),
        );
    }
    v
}

fn metric_form(c: &mut Conv<'_>, mon: &mut Monitor, opts: &mut JMap<String, J>) {
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
    let mut th = JMap::new();
    th.insert("critical".into(), json!(crit));
    if let (Some((w, _, wp)), Some(_)) = (&warning, &critical) {
        th.insert("warning".into(), json!(*w));
        let wp = wp.clone();
        check_order(c, Some(&wp), op, *w, crit);
    }
    opts.insert("thresholds".into(), J::Object(th));
    opts.entry("notify_no_data").or_insert(J::Bool(true));
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

fn monitor_form(c: &mut Conv<'_>, mon: &mut Monitor, opts: &mut JMap<String, J>) {
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
    let mut th = JMap::new();
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
            if let Some(f) = c.number_of(v, p, &format!("{key}.{k}")) {
                th.insert(k.clone(), json!(f));
            }
        }
    }
    let metric_like = matches!(mon.mtype.as_str(), "metric alert" | "query alert");
    if metric_like && !mon.query.is_empty() {
        match query::parse(&mon.query) {
            Err(e) => c.err(query_pos.as_ref(), format!("invalid query: {e}")),
            Ok(q) => {
                let at = th_pos.clone().or(query_pos.clone());
                match th.get("critical").and_then(J::as_f64) {
                    Some(crit) if crit != q.threshold => c.err(
                        at.as_ref(),
                        format!(
                            "critical threshold ({}) does not match the threshold in the query ({})",
                            fmt_num(crit),
                            fmt_num(q.threshold)
                        ),
                    ),
                    // Datadog copies the query's threshold into thresholds.critical; declaring it avoids a
                    // perpetual diff.
                    None => {
                        th.insert("critical".into(), json!(q.threshold));
                    }
                    _ => {}
                }
                if let Some(w) = th.get("warning").and_then(J::as_f64) {
                    check_order(c, at.as_ref(), q.op, w, q.threshold);
                }
                let warning = th.get("warning").and_then(J::as_f64);
                for (rkey, level, lname) in [
                    ("critical_recovery", Some(q.threshold), "critical"),
                    ("warning_recovery", warning, "warning"),
                ] {
                    let (Some(r), Some(level)) = (th.get(rkey).and_then(J::as_f64), level) else {
                        continue;
                    };
                    let bad = if q.op.is_upward() {
                        r >= level
                    } else {
                        r <= level
                    };
                    if bad {
                        c.err(
                            at.as_ref(),
                            format!(
                                "{rkey} ({}) must be on the recovery side of the {lname} threshold ({}) for `{}`",
                                fmt_num(r),
                                fmt_num(level),
                                q.op.as_str()
                            ),
                        );
                    }
                }
            }
        }
    }
    if !metric_like && !mon.query.trim().is_empty() {
        match query::check_typed(&mon.mtype, &mon.query) {
            Err(e) => c.err(query_pos.as_ref(), format!("invalid query: {e}")),
            Ok(Some((op, thr))) => {
                let at = th_pos.clone().or(query_pos.clone());
                if let Some(crit) = th.get("critical").and_then(J::as_f64) {
                    if crit != thr {
                        c.err(
                            at.as_ref(),
                            format!(
                                "critical threshold ({}) does not match the threshold in the query ({})",
                                fmt_num(crit),
                                fmt_num(thr)
                            ),
                        );
                    }
                }
                if let Some(w) = th.get("warning").and_then(J::as_f64) {
                    check_order(c, at.as_ref(), op, w, thr);
                }
            }
            Ok(None) => {}
        }
    }
    if !th.is_empty() {
        opts.insert("thresholds".into(), J::Object(th));
    }
}

/// What `datadog_monitor.<name>.id` evaluates to before the monitor exists: `${<address tag>.id}`, replaced
/// with the real id by plan and sync.
pub fn ref_token(address: &str) -> String {
    format!("${{{}.id}}", address_tag(address))
}

/// `text` with every [`ref_token`] whose address has an id in `ids` (keyed by address tag) replaced by it;
/// also says whether a reference is left.
pub fn resolve_refs(text: &str, ids: &HashMap<String, i64>) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut left = false;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(".id}") {
            Some(j) if !after[..j].contains(['{', '}', ' ']) => {
                let tag = &after[..j];
                match ids.get(tag) {
                    Some(id) => out.push_str(&id.to_string()),
                    None => {
                        left = true;
                        out.push_str(&rest[i..i + 2 + j + 4]);
                    }
                }
                rest = &after[j + 4..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, left)
}

/// The address as a tag value: index keys become dotted parts, characters Datadog does not allow in tags
/// become `_`, lower case (Datadog lower-cases tags).
pub fn address_tag(address: &str) -> String {
    let mut s = String::with_capacity(address.len());
    let mut chars = address.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '[' {
            s.push('.');
            let mut key = String::new();
            for k in chars.by_ref() {
                if k == ']' {
                    break;
                }
                key.push(k);
            }
            s.push_str(key.trim().trim_matches('"'));
        } else {
            s.push(ch);
        }
    }
    s.chars()
        .map(|ch| {
            if ch.is_alphanumeric() || "_-:./".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect::<String>()
        .to_lowercase()
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
    pub fn payload(&self, project: &str, file: &str) -> J {
        let mut o = JMap::new();
        o.insert("name".into(), J::from(self.name.trim()));
        o.insert("type".into(), J::from(self.mtype.as_str()));
        o.insert("query".into(), J::from(self.query.trim()));
        o.insert("message".into(), J::from(self.full_message(file)));
        o.insert("tags".into(), J::from(self.all_tags(project)));
        if let Some(p) = self.priority {
            o.insert("priority".into(), J::from(p));
        }
        if let Some(r) = &self.restricted_roles {
            o.insert("restricted_roles".into(), J::from(r.clone()));
        }
        o.insert("options".into(), J::Object(self.options.clone()));
        for (k, v) in &self.extra {
            o.insert(k.clone(), v.clone());
        }
        J::Object(o)
    }
}

/// An evaluated HCL value as JSON (whole numbers stay integers).
fn to_json(v: &Value) -> J {
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => J::from(i),
            None => n.as_f64().map(|f| json!(f)).unwrap_or(J::Null),
        },
        Value::String(s) => J::from(s.as_str()),
        Value::Array(a) => J::Array(a.iter().map(to_json).collect()),
        Value::Object(o) => J::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

/// The one object of a block that may appear once (nested blocks arrive as lists of one).
fn single(v: Option<&Value>) -> Option<&hcl::Map<String, Value>> {
    match v? {
        Value::Array(a) => a.first().and_then(Value::as_object),
        Value::Object(o) => Some(o),
        _ => None,
    }
}

/// An object whose nested blocks named in `singles` become objects; other fields as they are.
fn shaped(m: &hcl::Map<String, Value>, singles: &[&str]) -> JMap<String, J> {
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match single(Some(v)) {
            Some(o) if singles.contains(&k.as_str()) => (k.clone(), J::Object(shaped(o, singles))),
            _ => match v {
                Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => (
                    k.clone(),
                    J::Array(
                        a.iter()
                            .filter_map(Value::as_object)
                            .map(|o| J::Object(shaped(o, singles)))
                            .collect(),
                    ),
                ),
                other => (k.clone(), to_json(other)),
            },
        })
        .collect()
}

/// The provider's block layout of `scheduling_options` and `variables` turned into the API's JSON.
fn shape_block(key: &str, o: &hcl::Map<String, Value>) -> J {
    match key {
        "variables" => {
            // variables { event_query { … } cloud_cost_query { … } } → one list of queries, in which
            // compute, search and sort are objects and group_by a list.
            let mut list = Vec::new();
            for kind in ["event_query", "cloud_cost_query", "data_quality_query"] {
                if let Some(Value::Array(a)) = o.get(kind) {
                    for q in a.iter().filter_map(Value::as_object) {
                        list.push(J::Object(shaped(q, &["compute", "search", "sort"])));
                    }
                }
            }
            J::Array(list)
        }
        _ => {
            // scheduling_options { evaluation_window { … } custom_schedule { recurrence { … } } }
            let mut out = shaped(o, &["evaluation_window"]);
            if let Some(cs) = single(o.get("custom_schedule")) {
                let recs = match cs.get("recurrence") {
                    Some(Value::Array(a)) => a.iter().map(to_json).collect(),
                    _ => Vec::new(),
                };
                out.insert("custom_schedule".into(), json!({ "recurrences": recs }));
            }
            J::Object(out)
        }
    }
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
    match serde_json::from_str::<J>(&text) {
        Ok(J::Object(o)) => {
            let s = |k: &str| o.get(k).and_then(J::as_str).unwrap_or("").to_string();
            let strs = |k: &str| {
                o.get(k).and_then(J::as_array).map(|a| {
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
                J::String(s) => s.trim().parse().ok(),
                other => other.as_i64(),
            });
            mon.options = o
                .get("options")
                .and_then(J::as_object)
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

/// Server-side defaults of monitor options: a missing or null option is compared as its default.
pub fn option_default(key: &str) -> J {
    match key {
        "notify_audit"
        | "notify_no_data"
        | "locked"
        | "enable_logs_sample"
        | "groupby_simple_monitor" => J::Bool(false),
        "include_tags" | "require_full_window" => J::Bool(true),
        "new_host_delay" => json!(300.0),
        "renotify_interval" | "timeout_h" | "evaluation_delay" | "renotify_occurrences" => {
            json!(0.0)
        }
        "escalation_message" => J::from(""),
        _ => J::Null,
    }
}

/// Canonical form of a JSON value: numbers as floats, strings trimmed, arrays of strings sorted.
fn canon(v: &J) -> J {
    match v {
        J::Number(n) => n.as_f64().map(|f| json!(f)).unwrap_or(J::Null),
        J::String(s) => J::from(s.trim()),
        J::Array(a) => {
            let mut items: Vec<J> = a.iter().map(canon).collect();
            if items.iter().all(J::is_string) {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                items.dedup();
            }
            J::Array(items)
        }
        J::Object(o) => J::Object(
            o.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), canon(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The API returns null for an empty list or map (and a file may write `[]`): compare them as equal.
fn empty_is_null(v: J) -> J {
    match &v {
        J::Array(a) if a.is_empty() => J::Null,
        J::Object(o) if o.is_empty() => J::Null,
        _ => v,
    }
}

fn canon_type(t: &str) -> &str {
    if t.trim() == "metric alert" {
        "query alert"
    } else {
        t.trim()
    }
}

/// The managed fields of a monitor body (desired payload or API response), normalized the way the API does.
/// `keys` are the option keys the file sets.
pub fn managed_fields(
    body: &J,
    option_keys: &[String],
    with_priority: bool,
    with_roles: bool,
) -> BTreeMap<String, J> {
    let mut f = BTreeMap::new();
    let get = |k: &str| body.get(k).cloned().unwrap_or(J::Null);
    f.insert("name".into(), canon(&get("name")));
    f.insert(
        "type".into(),
        J::from(canon_type(
            body.get("type").and_then(J::as_str).unwrap_or(""),
        )),
    );
    f.insert(
        "query".into(),
        J::from(query::normalize(
            body.get("query").and_then(J::as_str).unwrap_or(""),
        )),
    );
    f.insert("message".into(), canon(&get("message")));
    f.insert("tags".into(), canon(&get("tags")));
    if with_priority {
        let p = get("priority");
        // The API stores priority as a number; the provider sends it as a string.
        let p = match p {
            J::String(s) => s.trim().parse::<f64>().map(|f| json!(f)).unwrap_or(J::Null),
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
    let opts = body.get("options").cloned().unwrap_or(J::Null);
    for k in option_keys {
        let v = opts.get(k).cloned().unwrap_or(J::Null);
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
    pub before: J,
    pub after: J,
}

/// Compares a desired payload with a monitor read back from the API.
pub fn diff(desired: &Monitor, payload: &J, remote: &J) -> Vec<Change> {
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
        let get = |b: &J| match (k.as_str(), b.get(k)) {
            ("draft_status", None | Some(J::Null)) => J::from("published"),
            (_, v) => canon(v.unwrap_or(&J::Null)),
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
        let before = have.get(&k).cloned().unwrap_or(J::Null);
        let same_query = k == "query"
            && matches!((&before, &after), (J::String(b), J::String(a)) if query::canonical(b) == query::canonical(a));
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

/// Tags of a monitor returned by the API.
pub fn remote_tags(m: &J) -> Vec<String> {
    m.get("tags")
        .and_then(J::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(|s| s.trim().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of the first tag with `prefix`.
pub fn tag_value(tags: &[String], prefix: &str) -> Option<String> {
    tags.iter()
        .find_map(|t| t.strip_prefix(prefix).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_tags_use_dotted_keys() {
        assert_eq!(
            address_tag(r#"module.api.datadog_monitor.errors["p95"]"#),
            "module.api.datadog_monitor.errors.p95"
        );
        assert_eq!(
            address_tag("datadog_monitor_metric.x[3]"),
            "datadog_monitor_metric.x.3"
        );
        assert_eq!(
            address_tag(r#"module.s["a b"].datadog_monitor.E"#),
            "module.s.a_b.datadog_monitor.e"
        );
        assert_eq!(
            address_tag("datadog_monitor_metric.app.internal_errors"),
            "datadog_monitor_metric.app.internal_errors"
        );
    }

    #[test]
    fn normalization_hides_api_rewrites() {
        let want = json!({"name": "A ", "type": "metric alert", "query": "avg(last_5m):avg:a{*}  > 5",
            "message": "m\n", "tags": ["b", "a"], "options": {"thresholds": {"critical": 5}, "include_tags": true}});
        let have = json!({"name": "A", "type": "query alert", "query": "avg(last_5m):avg:a{*} > 5",
            "message": "m", "tags": ["a", "b"], "options": {"thresholds": {"critical": 5.0, "warning": null}}});
        let keys = vec!["thresholds".to_string(), "include_tags".to_string()];
        assert_eq!(
            managed_fields(&want, &keys, false, false),
            managed_fields(&have, &keys, false, false)
        );
        let changed = json!({"name": "A", "type": "query alert", "query": "avg(last_5m):avg:a{*} > 5",
            "message": "m", "tags": ["a", "b"], "options": {"thresholds": {"critical": 6.0}}});
        assert_ne!(
            managed_fields(&want, &keys, false, false),
            managed_fields(&changed, &keys, false, false)
        );
        let keys = vec!["notify_by".to_string(), "renotify_interval".to_string()];
        let a =
            json!({"restricted_roles": [], "options": {"notify_by": [], "renotify_interval": 0}});
        let b = json!({"restricted_roles": null, "options": {"renotify_interval": null}});
        assert_eq!(
            managed_fields(&a, &keys, false, true),
            managed_fields(&b, &keys, false, true)
        );
    }

    fn args(items: Vec<(&str, Value)>) -> Args {
        let mut a = Args::default();
        let mut errs = Vec::new();
        for (i, (k, v)) in items.into_iter().enumerate() {
            let pos = Pos {
                file: "t.tf".into(),
                line: i + 1,
                col: 3,
            };
            a.insert(k, v, pos, false, "x", &mut errs);
        }
        a
    }

    fn thresholds(pairs: &[(&str, f64)]) -> Value {
        Value::Object(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect(),
        )
    }

    #[test]
    fn provider_form_checks_thresholds() {
        let base = |th: Value| {
            args(vec![
                ("name", Value::from("n")),
                ("type", Value::from("metric alert")),
                ("query", Value::from("avg(last_5m):avg:a{*} < 10")),
                ("message", Value::from("m")),
                ("monitor_thresholds", th),
                ("priority", Value::from("2")),
            ])
        };
        let ok = from_args(
            MONITOR_RESOURCE,
            "x",
            Pos::default(),
            &base(thresholds(&[("warning", 20.0), ("warning_recovery", 25.0)])),
        )
        .unwrap();
        assert_eq!(
            ok.options["thresholds"],
            json!({"warning": 20.0, "warning_recovery": 25.0, "critical": 10.0})
        );
        assert_eq!(ok.priority, Some(2));
        let errs = from_args(
            MONITOR_RESOURCE,
            "x",
            Pos::default(),
            &base(thresholds(&[("warning", 5.0), ("critical_recovery", 9.0)])),
        )
        .unwrap_err();
        let msgs: Vec<String> = errs.iter().map(|d| d.message.clone()).collect();
        assert_eq!(
            msgs,
            vec![
                "warning threshold (5) must be above the critical threshold (10) for `<`".to_string(),
                "critical_recovery (9) must be on the recovery side of the critical threshold (10) for `<`".to_string(),
            ]
        );
        assert_eq!(
            errs[0].to_string(),
            "t.tf:5:3: x: warning threshold (5) must be above the critical threshold (10) for `<`"
        );
    }
}
