//! `kelpie monitors test --against <URL|FILE>`: each metric monitor evaluated over the last hour a local
//! agent recorded (its status server, or a file recorded from `GET /api/series`), printing per monitor and
//! group when it would have warned, alerted and recovered. The evaluation is the unit tests' own
//! ([`crate::alerting`]); [`walk`] steps through the hour, [`record`] reads what was recorded.

pub mod record;
pub mod walk;

use crate::alerting::{Rule, State};
use crate::model::Monitor;
use crate::query::fmt_num;
use record::{Entry, Source};
use std::collections::BTreeMap;
use walk::{Change, Walk};

/// What became of one monitor.
#[derive(Debug)]
pub enum Outcome {
    /// Not evaluated, and why (one line).
    Skipped { address: String, reason: String },
    /// Evaluated; None when nothing of its metric was recorded in the hour.
    Walked {
        address: String,
        query: String,
        rule: Box<Rule>,
        walk: Option<Walk>,
    },
}

/// Whether the monitor notifies on no data (the compact form's default is true, the provider's false).
fn notifies_no_data(mon: &Monitor) -> bool {
    mon.options
        .get("notify_no_data")
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
}

/// Evaluates every monitor over `entries` (what was recorded of their metrics), the hour ending at `end`
/// (the newest recorded point when None).
pub fn evaluate(monitors: &[Monitor], entries: &[Entry], end: Option<i64>) -> Vec<Outcome> {
    let end = end.or_else(|| {
        entries
            .iter()
            .filter_map(|e| e.points.iter().map(|p| p.0).max())
            .max()
    });
    monitors
        .iter()
        .map(|mon| {
            let skipped = |reason: String| Outcome::Skipped {
                address: mon.address.clone(),
                reason,
            };
            let rule = match Rule::of(mon) {
                Ok(r) => r,
                Err(reason) => return skipped(reason),
            };
            let points = match record::points_for(&rule, entries) {
                Ok(p) => p,
                Err(reason) => return skipped(reason),
            };
            let walk = walk::walk(&rule, &points, end, notifies_no_data(mon));
            Outcome::Walked {
                address: mon.address.clone(),
                query: crate::query::normalize(&mon.query),
                rule: Box::new(rule),
                walk,
            }
        })
        .collect()
}

/// `HH:MM:SS` of a unix time, in UTC.
pub fn hms(ts: i64) -> String {
    let s = ts.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn times(n: usize) -> String {
    format!("{n} time{}", if n == 1 { "" } else { "s" })
}

fn upper(s: State) -> &'static str {
    match s {
        State::Ok => "OK",
        State::Warn => "WARN",
        State::Alert => "ALERT",
        State::NoData => "NO DATA",
    }
}

/// One change as a line (None for a group's first state when it is OK or no data: nothing happened).
fn change_line(rule: &Rule, c: &Change, groups: bool) -> Option<String> {
    let value = c
        .value
        .map(|v| fmt_num((v * 1000.0).round() / 1000.0))
        .unwrap_or_default();
    let op = rule.op.as_str();
    let what = match (c.from, c.to) {
        (None, State::Ok | State::NoData) => return None,
        (_, State::Alert) => format!(
            "ALERT      value {value} (critical {op} {})",
            fmt_num(rule.critical)
        ),
        (_, State::Warn) => format!(
            "WARN       value {value} (warning {op} {})",
            rule.warning.map(fmt_num).unwrap_or_default()
        ),
        (Some(before @ (State::Alert | State::Warn)), State::Ok) => {
            let recovery = match before {
                State::Alert => rule.critical_recovery.map(|r| ("critical", r)),
                _ => rule.warning_recovery.map(|r| ("warning", r)),
            };
            match recovery {
                Some((which, r)) => format!(
                    "recovered  value {value} ({which} recovery {} {})",
                    recovery_op(rule.op),
                    fmt_num(r)
                ),
                None => format!("recovered  value {value}"),
            }
        }
        (_, State::Ok) => format!("OK         value {value} (data again)"),
        (_, State::NoData) => format!("NO DATA    no point in the last {}m", rule.window_minutes),
    };
    let group = if groups {
        format!("{}  ", c.group)
    } else {
        String::new()
    };
    Some(format!("  {}  {group}{what}", hms(c.time)))
}

/// The comparator a value must meet to pass a recovery threshold (Datadog's recovery condition).
fn recovery_op(op: crate::query::Op) -> &'static str {
    use crate::query::Op;
    match op {
        Op::Gt => "<=",
        Op::Ge => "<",
        Op::Lt => ">=",
        Op::Le => ">",
        Op::Eq => "!=",
        Op::Ne => "==",
    }
}

/// The one-line summary: `never triggered`, or `alert 2 times, warn 1 time, now OK`.
pub fn summary(w: &Walk) -> String {
    let count = |s: State| w.changes.iter().filter(|c| c.to == s).count();
    let (alerts, warns) = (count(State::Alert), count(State::Warn));
    let no_data = w
        .changes
        .iter()
        .filter(|c| c.to == State::NoData && c.from.is_some())
        .count();
    let mut parts = Vec::new();
    for (n, what) in [(alerts, "alert"), (warns, "warn"), (no_data, "no data")] {
        if n > 0 {
            parts.push(format!("{what} {}", times(n)));
        }
    }
    if parts.is_empty() {
        return "never triggered".into();
    }
    let now = w.last.values().copied().max().unwrap_or(State::NoData);
    format!("{}, now {}", parts.join(", "), upper(now))
}

/// The report of every outcome, as printed.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        match o {
            Outcome::Skipped { address, reason } => {
                out.push_str(&format!("{address}: skipped: {reason}\n"));
            }
            Outcome::Walked {
                address,
                query,
                rule,
                walk,
            } => {
                out.push_str(&format!("{address}  {query}\n"));
                let Some(w) = walk else {
                    out.push_str(&format!(
                        "  nothing recorded of {} in the last hour\n  never triggered\n",
                        rule.simple.metric
                    ));
                    continue;
                };
                out.push_str(&format!(
                    "  evaluated {}–{} UTC ({} steps)\n",
                    hms(w.from),
                    hms(w.to),
                    w.steps
                ));
                let groups = !rule.simple.by.is_empty();
                for c in &w.changes {
                    if let Some(line) = change_line(rule, c, groups) {
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                out.push_str(&format!("  {}\n", summary(w)));
            }
        }
    }
    out
}

/// The report as JSON: per monitor its address and query, and either why it was skipped or the hour walked
/// (`from`/`to` unix seconds), every transition (`time` unix seconds, `utc` `HH:MM:SS`, `group`, `from`
/// — null for a group's first state —, `to`, `value`), each group's final state and the summary line.
pub fn render_json(outcomes: &[Outcome]) -> serde_json::Value {
    use serde_json::json;
    let items: Vec<serde_json::Value> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Skipped { address, reason } => json!({ "address": address, "skipped": reason }),
            Outcome::Walked {
                address,
                query,
                rule,
                walk,
            } => {
                let Some(w) = walk else {
                    return json!({
                        "address": address, "query": query, "metric": rule.simple.metric,
                        "recorded": false, "transitions": [], "summary": "never triggered",
                    });
                };
                let transitions: Vec<serde_json::Value> = w
                    .changes
                    .iter()
                    .map(|c| {
                        json!({
                            "time": c.time, "utc": hms(c.time), "group": c.group,
                            "from": c.from.map(State::as_str), "to": c.to.as_str(), "value": c.value,
                        })
                    })
                    .collect();
                let last: BTreeMap<&str, &str> =
                    w.last.iter().map(|(g, s)| (g.as_str(), s.as_str())).collect();
                json!({
                    "address": address, "query": query, "metric": rule.simple.metric,
                    "recorded": true, "from": w.from, "to": w.to, "steps": w.steps,
                    "transitions": transitions, "final": last, "summary": summary(w),
                })
            }
        })
        .collect();
    json!({ "monitors": items })
}

/// Reads what `source` recorded of the metrics the monitors read. Err: one sentence for the user.
pub async fn load(source: &Source, monitors: &[Monitor]) -> Result<Vec<Entry>, String> {
    match source {
        Source::File(path) => record::read_file(path),
        Source::Url(base) => {
            let metrics: BTreeMap<String, ()> = monitors
                .iter()
                .filter_map(|m| Rule::of(m).ok())
                .map(|r| (r.simple.metric, ()))
                .collect();
            let http = record::client()?;
            let mut entries = Vec::new();
            for metric in metrics.keys() {
                entries.extend(record::fetch(&http, base, metric).await?);
            }
            Ok(entries)
        }
    }
}

/// Runs the command: prints the report (as JSON with `json`) and returns the exit code (1 when the input
/// could not be read).
pub async fn run(against: &str, monitors: &[Monitor], json: bool) -> i32 {
    let source = Source::parse(against);
    let entries = match load(&source, monitors).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    // A running agent is read up to now (a metric that stopped has no data since); a file up to its newest point.
    let end = match source {
        Source::Url(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs() as i64),
        Source::File(_) => None,
    };
    let outcomes = evaluate(monitors, &entries, end);
    if json {
        match serde_json::to_string_pretty(&render_json(&outcomes)) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("error: cannot write the report as JSON: {e}");
                return 1;
            }
        }
    } else {
        print!("{}", render(&outcomes));
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monitor(address: &str, mtype: &str, query: &str) -> Monitor {
        Monitor {
            address: address.into(),
            mtype: mtype.into(),
            query: query.into(),
            ..Default::default()
        }
    }

    #[test]
    fn report_lists_alerts_recoveries_and_skips() {
        // 12:00:00 UTC onwards, every 10 s: 10, then 100 from 12:01:00 to 12:01:20, then 10.
        let base = 1_700_000_000 - 1_700_000_000 % 86_400 + 12 * 3600;
        let pts: Vec<String> = (0..20)
            .map(|i| {
                let v = if (6..9).contains(&i) { 100 } else { 10 };
                format!("[{},{v}]", base + i * 10)
            })
            .collect();
        let text = format!(
            r#"[{{"metric":"app.temp","series":[{{"host":"h1","kind":"gauge","points":[{}],"tags":["room:a"]}}]}},
               {{"metric":"app.other","series":[]}}]"#,
            pts.join(",")
        );
        let entries = record::parse_answers(&text).unwrap();
        let mons = [
            monitor(
                "datadog_monitor.temp",
                "metric alert",
                "max(last_1m):avg:app.temp{*} by {room} > 50",
            ),
            monitor(
                "datadog_monitor.other",
                "metric alert",
                "avg(last_5m):avg:app.other{*} > 1",
            ),
            monitor(
                "datadog_monitor.logs",
                "log alert",
                "logs(\"status:error\").index(\"*\").rollup(\"count\").last(\"5m\") > 1",
            ),
        ];
        let out = render(&evaluate(&mons, &entries, None));
        assert!(
            out.contains("  12:01:00  room:a  ALERT      value 100 (critical > 50)\n"),
            "{out}"
        );
        assert!(
            out.contains("  12:02:20  room:a  recovered  value 10\n"),
            "{out}"
        );
        assert!(out.contains("  alert 1 time, now OK\n"), "{out}");
        assert!(
            out.contains("nothing recorded of app.other in the last hour\n  never triggered"),
            "{out}"
        );
        assert!(
            out.contains(
                "datadog_monitor.logs: skipped: `log alert` monitors cannot be evaluated offline"
            ),
            "{out}"
        );
        assert_eq!(hms(base + 3661), "13:01:01");
    }
}
