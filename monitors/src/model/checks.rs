//! The offline checks of SPEC §6.5 that look at more than one argument: threshold order, recovery
//! thresholds, thresholds against the query's, and notification handles.

use super::args::Conv;
use super::Monitor;
use crate::diag::Pos;
use crate::funcs::type_name;
use crate::query::{self, fmt_num, Op};
use hcl::Value;
use serde_json::{json, Map as JsonMap, Value as JsonValue};

pub(super) fn check_order(c: &mut Conv<'_>, at: Option<&Pos>, op: Op, warning: f64, critical: f64) {
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

pub(super) fn check_handles(c: &mut Conv<'_>, at: Option<&Pos>, level: &str, notify: &str) {
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

pub(super) fn level(c: &mut Conv<'_>, key: &str) -> Option<(f64, String, Pos)> {
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

pub(super) fn pick(c: &mut Conv<'_>, key: &str, default: &str, allowed: &[&str]) -> String {
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

/// The provider form's thresholds against its query: the critical threshold must match the query's (and is
/// filled in from it when missing, as Datadog does), warning and recovery thresholds on the right side.
pub(super) fn check_query_thresholds(
    c: &mut Conv<'_>,
    mon: &Monitor,
    th: &mut JsonMap<String, JsonValue>,
    th_pos: Option<Pos>,
    query_pos: Option<Pos>,
) {
    let metric_like = matches!(mon.mtype.as_str(), "metric alert" | "query alert");
    if metric_like && !mon.query.is_empty() {
        match query::parse(&mon.query) {
            Err(e) => c.err(query_pos.as_ref(), format!("invalid query: {e}")),
            Ok(q) => {
                let at = th_pos.clone().or(query_pos.clone());
                match th.get("critical").and_then(JsonValue::as_f64) {
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
                    None if !th.contains_key("critical_query") => {
                        th.insert("critical".into(), json!(q.threshold));
                    }
                    _ => {}
                }
                if let Some(w) = th.get("warning").and_then(JsonValue::as_f64) {
                    check_order(c, at.as_ref(), q.op, w, q.threshold);
                }
                let warning = th.get("warning").and_then(JsonValue::as_f64);
                for (rkey, level, lname) in [
                    ("critical_recovery", Some(q.threshold), "critical"),
                    ("warning_recovery", warning, "warning"),
                ] {
                    let (Some(r), Some(level)) = (th.get(rkey).and_then(JsonValue::as_f64), level)
                    else {
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
                if let Some(crit) = th.get("critical").and_then(JsonValue::as_f64) {
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
                if let Some(w) = th.get("warning").and_then(JsonValue::as_f64) {
                    check_order(c, at.as_ref(), op, w, thr);
                }
            }
            Ok(None) => {}
        }
    }
}
