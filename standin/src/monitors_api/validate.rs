//! Validation of a monitor as Datadog's API does it, with Datadog's error texts (queries, thresholds,
//! types, options).

use serde_json::Value;

/// Python's float repr, which Datadog's error texts use (`50.0`, `0.25`).
fn py_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Checks a metric query's shape; returns the comparator and threshold.
fn check_metric_query(q: &str) -> Option<(String, f64)> {
    let q = q.trim();
    let open = q.find('(')?;
    let aggr = &q[..open];
    if ![
        "avg",
        "sum",
        "min",
        "max",
        "change",
        "pct_change",
        "percentile",
    ]
    .iter()
    .any(|a| aggr.starts_with(a))
    {
        return None;
    }
    // The head's parentheses may nest: change(max(last_5m),last_5m).
    let mut depth = 0;
    let close = open
        + q[open..].find(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            depth == 0
        })?;
    let args = &q[open + 1..close];
    let window = match args.split_once('(') {
        Some((_, inner)) => inner.split(')').next()?,
        None => args,
    };
    // A cumulative window from the start of the hour, day, week or month (scheduling_options).
    let cumulative = ["current_1h", "current_1d", "current_1w", "current_1mo"].contains(&window);
    if !cumulative {
        let w = window
            .strip_prefix("last_")
            .or_else(|| window.strip_prefix("next_"))?;
        let (n, unit) = match w.strip_suffix("mo") {
            Some(n) => (n, "mo"),
            None => {
                let unit_len = w.chars().next_back()?.len_utf8();
                w.split_at(w.len() - unit_len)
            }
        };
        n.parse::<u32>().ok().filter(|n| *n > 0)?;
        if !["m", "h", "d", "w", "mo"].contains(&unit) {
            return None;
        }
    }
    let rest = q[close + 1..].strip_prefix(':')?;
    if !rest.contains('{') || rest.matches('{').count() != rest.matches('}').count() {
        return None;
    }
    for op in [">=", "<=", ">", "<", "==", "!="] {
        if let Some(i) = rest.rfind(op) {
            if rest[..i].matches('{').count() != rest[..i].matches('}').count() {
                continue;
            }
            let thr = rest[i + op.len()..].trim().parse::<f64>().ok()?;
            let expr = rest[..i].trim();
            if expr.is_empty() || !expr.contains(':') {
                return None;
            }
            return Some((op.to_string(), thr));
        }
    }
    None
}

pub(super) fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

// Over 100 lines on purpose: Datadog's checks of a monitor body in the order its API applies them, one
// `if` per rule with its error text.
/// Datadog's validation of a create/update body, with its error texts.
pub(super) fn validate(m: &Value) -> Result<(), String> {
    let s = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("")
    };
    let t = s("type");
    const TYPES: &[&str] = &[
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
    if !TYPES.contains(&t) {
        return Err("The value provided for parameter 'type' is invalid".into());
    }
    if s("query").is_empty() {
        return Err("The value provided for parameter 'query' is invalid".into());
    }
    if m.get("name").is_some_and(|n| !n.is_string()) {
        return Err("The value provided for parameter 'name' is invalid".into());
    }
    if let Some(p) = m.get("priority").filter(|p| !p.is_null()) {
        if !num(p).is_some_and(|p| (1.0..=5.0).contains(&p) && p.fract() == 0.0) {
            return Err("The value provided for parameter 'priority' is invalid".into());
        }
    }
    let th = m.pointer("/options/thresholds").filter(|t| !t.is_null());
    if let Some(th) = th {
        let Some(o) = th.as_object() else {
            return Err("The value provided for parameter 'thresholds' is invalid".into());
        };
        // Dynamic thresholds (`critical_query`, `critical_recovery_query`) are formula queries, as strings.
        let bad = |(k, v): (&String, &Value)| match k.as_str() {
            "critical_query" | "critical_recovery_query" => !v.is_null() && !v.is_string(),
            _ => !v.is_null() && num(v).is_none(),
        };
        if o.iter().any(bad) {
            return Err("The value provided for parameter 'thresholds' is invalid".into());
        }
    }
    if t == "metric alert" || t == "query alert" {
        let Some((op, qthr)) = check_metric_query(s("query")) else {
            return Err("The value provided for parameter 'query' is invalid".into());
        };
        let get = |k: &str| th.and_then(|t| t.get(k)).and_then(num);
        let crit = get("critical");
        if crit.is_none()
            && th
                .and_then(Value::as_object)
                .is_some_and(|o| o.values().any(|v| !v.is_null()))
        {
            return Err("Alert status is required.".into());
        }
        if let Some(c) = crit {
            if c != qthr {
                return Err(format!(
                    "Alert threshold ({}) does not match that used in the query ({}).",
                    py_float(c),
                    py_float(qthr)
                ));
            }
            if let Some(w) = get("warning") {
                let up = op.starts_with('>');
                if up && w >= c {
                    return Err(format!(
                        "Warning threshold ({}) must be less than the alert threshold ({}).",
                        py_float(w),
                        py_float(c)
                    ));
                }
                if !up && w <= c {
                    return Err(format!(
                        "Warning threshold ({}) must be greater than the alert threshold ({}).",
                        py_float(w),
                        py_float(c)
                    ));
                }
            }
        }
    }
    Ok(())
}
