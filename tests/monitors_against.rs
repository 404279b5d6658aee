//! End-to-end test of `kelpie monitors test --against`: the real agent records a gauge going over a monitor's
//! critical threshold, down to its warning, and back; the monitor is evaluated over what it recorded, read
//! from the running agent and from a recorded file.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

const MONITORS: &str = r#"
resource "datadog_monitor" "temp" {
  name    = "Room too hot"
  type    = "metric alert"
  message = "Too hot @slack-facilities"
  query   = "min(last_1m):max:e2e.against.temp{*} by {room} > 50"
  monitor_thresholds {
    critical = 50
    warning  = 30
  }
}

resource "datadog_monitor" "both" {
  name    = "Both"
  type    = "composite"
  message = "Both @slack-facilities"
  query   = "${datadog_monitor.temp.id} && 12345"
}
"#;

fn kelpie(args: &[&str]) -> (i32, String, String) {
    outcome(
        Command::new(kelpie_bin())
            .arg("monitors")
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run kelpie"),
    )
}

fn recorded(agent: &AgentProc) -> (String, Vec<(i64, f64)>) {
    let (code, body) =
        http_get(agent.status, "/api/series?metric=e2e.against.temp").expect("GET /api/series");
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("json");
    let points = doc["series"][0]["points"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    (body, points)
}

fn hms(ts: i64) -> String {
    let s = ts.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The time of the first recorded point with value `v`.
fn first_at(points: &[(i64, f64)], v: f64) -> i64 {
    points.iter().find(|p| p.1 == v).expect("point").0
}

#[test]
fn alerts_and_recoveries_over_what_the_agent_recorded() {
    let agent = AgentProc::spawn(&[("KELPIE_FLUSH_INTERVAL", "1s")]);
    // Each value in its own flush: the next is sent once the agent has recorded the previous one.
    for v in [100.0, 40.0, 10.0] {
        agent.send(&format!("e2e.against.temp:{v}|g|#room:a"));
        wait_for(Duration::from_secs(20), || {
            recorded(&agent).1.iter().any(|p| p.1 == v).then_some(())
        })
        .unwrap_or_else(|| panic!("the agent did not record {v}"));
    }
    let (body, points) = recorded(&agent);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("monitors.tf"), MONITORS).unwrap();
    let dir_s = dir.path().to_str().unwrap();
    let url = format!("http://{}", agent.status);
    let expected = [
        format!(
            "  {}  room:a  ALERT      value 100 (critical > 50)\n",
            hms(first_at(&points, 100.0))
        ),
        format!(
            "  {}  room:a  WARN       value 40 (warning > 30)\n",
            hms(first_at(&points, 40.0))
        ),
        format!(
            "  {}  room:a  recovered  value 10\n",
            hms(first_at(&points, 10.0))
        ),
        "  alert 1 time, warn 1 time, now OK\n".to_string(),
        "datadog_monitor.both: skipped: `composite` monitors cannot be evaluated offline"
            .to_string(),
    ];

    let (code, out, err) = kelpie(&["test", "--dir", dir_s, "--against", &url]);
    assert_eq!(code, 0, "{out}{err}");
    for line in &expected {
        assert!(out.contains(line.as_str()), "missing {line:?} in:\n{out}");
    }

    // The same from a file recorded with curl (an array of answers works too).
    let file = dir.path().join("recorded.json");
    std::fs::write(&file, format!("[{body}]")).unwrap();
    let (code, out, err) = kelpie(&["test", "--dir", dir_s, "--against", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for line in &expected {
        assert!(out.contains(line.as_str()), "missing {line:?} in:\n{out}");
    }

    // An agent that does not answer: one sentence naming the URL, exit 1.
    let dead = format!("http://127.0.0.1:{}", free_tcp_port());
    let (code, out, err) = kelpie(&["test", "--dir", dir_s, "--against", &dead]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("error: cannot reach the agent at {dead} (")),
        "{err}"
    );
}

/// 12:00:00 UTC of a fixed day: the recorded files below start there.
const NOON: i64 = 1_699_963_200;

/// One recorded context of an `/api/series` answer.
struct Rec<'a> {
    kind: &'a str,
    stat: &'a str,
    interval: i64,
    tags: &'a [&'a str],
    /// A value per point, the points `step` seconds apart from 12:00:00.
    values: Vec<f64>,
    step: i64,
}

/// `/api/series` answers (one per metric), as the agent serves them, in a file of `dir`.
fn record_file(dir: &std::path::Path, metrics: &[(&str, Vec<Rec<'_>>)]) -> String {
    let answers: Vec<Value> = metrics
        .iter()
        .map(|(metric, recs)| {
            let series: Vec<Value> = recs
                .iter()
                .map(|r| {
                    let points: Vec<Value> = r
                        .values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| serde_json::json!([NOON + i as i64 * r.step, v]))
                        .collect();
                    let mut s = serde_json::json!({
                        "metric": metric, "host": "h1", "kind": r.kind, "tags": r.tags, "points": points,
                    });
                    if !r.stat.is_empty() {
                        s["stat"] = r.stat.into();
                    }
                    if r.interval > 0 {
                        s["interval"] = r.interval.into();
                    }
                    s
                })
                .collect();
            serde_json::json!({ "metric": metric, "series": series })
        })
        .collect();
    let path = dir.join("recorded.json");
    std::fs::write(&path, Value::Array(answers).to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

/// `monitors test --against FILE` over `tf` (text report, or JSON with `json`).
fn against_file(tf: &str, dir: &tempfile::TempDir, file: &str, json: bool) -> String {
    std::fs::write(dir.path().join("monitors.tf"), tf).unwrap();
    let d = dir.path().to_str().unwrap();
    let mut args = vec!["test", "--dir", d, "--against", file];
    if json {
        args.push("--json");
    }
    let (code, out, err) = kelpie(&args);
    assert_eq!(code, 0, "{out}{err}");
    out
}

/// `(utc, group, from, to, value)` of each transition of the monitor `address` in a JSON report.
fn transitions(report: &str, address: &str) -> Vec<(String, String, String, String, Option<f64>)> {
    let doc: Value = serde_json::from_str(report).expect("JSON report");
    let mon = doc["monitors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["address"] == address)
        .unwrap_or_else(|| panic!("{address} not in {report}"));
    mon["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or("-").to_string();
            (
                s("utc"),
                s("group"),
                s("from"),
                s("to"),
                t["value"].as_f64(),
            )
        })
        .collect()
}

fn tr(
    utc: &str,
    from: &str,
    to: &str,
    value: f64,
) -> (String, String, String, String, Option<f64>) {
    (utc.into(), "*".into(), from.into(), to.into(), Some(value))
}

/// A counter recorded as a rate per second over 10-second flushes (0.5/s, 2/s for 30 s, then 0.5/s) and
/// a count recorded per flush (50, 200 for 30 s, then 50): `.as_count()` reads the rate as counts per
/// interval, `.as_rate()` the count as a rate per second.
#[test]
fn as_count_and_as_rate_read_counters_as_datadog_does() {
    let burst = |normal: f64, high: f64| -> Vec<f64> {
        (0..24)
            .map(|i| if (6..9).contains(&i) { high } else { normal })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let file = record_file(
        dir.path(),
        &[
            (
                "app.req",
                vec![Rec {
                    kind: "rate",
                    stat: "",
                    interval: 10,
                    tags: &[],
                    values: burst(0.5, 2.0),
                    step: 10,
                }],
            ),
            (
                "app.jobs",
                vec![Rec {
                    kind: "count",
                    stat: "",
                    interval: 10,
                    tags: &[],
                    values: burst(50.0, 200.0),
                    step: 10,
                }],
            ),
        ],
    );
    let tf = r#"
resource "datadog_monitor" "req_count" {
  name    = "Requests"
  type    = "metric alert"
  message = "m"
  query   = "sum(last_1m):sum:app.req{*}.as_count() > 60"
}
resource "datadog_monitor" "req_rate" {
  name    = "Request rate"
  type    = "metric alert"
  message = "m"
  query   = "sum(last_1m):sum:app.req{*}.as_rate() > 60"
}
resource "datadog_monitor" "jobs_rate" {
  name    = "Job rate"
  type    = "metric alert"
  message = "m"
  query   = "avg(last_1m):sum:app.jobs{*}.as_rate() > 10"
}
"#;
    let out = against_file(tf, &dir, &file, true);
    // Counts per 10 s: 5, and 20 from 12:01:00 to 12:01:20; the 1-minute sum passes 60 once all three
    // are in the window, and falls back to 60 when the first leaves it.
    assert_eq!(
        transitions(&out, "datadog_monitor.req_count"),
        vec![
            tr("12:00:00", "-", "ok", 5.0),
            tr("12:01:20", "ok", "alert", 75.0),
            tr("12:02:00", "alert", "ok", 60.0),
        ]
    );
    // As a rate the same points never reach 60.
    assert_eq!(
        transitions(&out, "datadog_monitor.req_rate"),
        vec![tr("12:00:00", "-", "ok", 0.5)]
    );
    // Counts of 50 (200) per 10 s are 5/s (20/s): the 1-minute average passes 10 at 12:01:20.
    assert_eq!(
        transitions(&out, "datadog_monitor.jobs_rate"),
        vec![
            tr("12:00:00", "-", "ok", 5.0),
            tr("12:01:20", "ok", "alert", 12.5),
            tr("12:02:00", "alert", "ok", 10.0),
        ]
    );
}

/// A distribution recorded with its percentiles: `p95:` reads the recorded p95, `percentile(last_1m)`
/// over it alerts while a high p95 is in the window; a percentile the agent does not keep is skipped.
#[test]
fn percentile_queries_read_the_recorded_percentiles_of_a_distribution() {
    let stat = |stat: &'static str, normal: f64, high: f64| Rec {
        kind: "distribution",
        stat,
        interval: 0,
        tags: &["service:api"],
        values: (0..24)
            .map(|i| if (6..9).contains(&i) { high } else { normal })
            .collect(),
        step: 10,
    };
    let dir = tempfile::tempdir().unwrap();
    let file = record_file(
        dir.path(),
        &[(
            "app.latency",
            vec![
                stat("p50", 40.0, 60.0),
                stat("p95", 100.0, 900.0),
                stat("p99", 150.0, 1500.0),
                stat("avg", 50.0, 120.0),
                stat("max", 200.0, 2000.0),
                stat("count", 100.0, 100.0),
            ],
        )],
    );
    let tf = r#"
resource "datadog_monitor" "p95" {
  name    = "p95 latency"
  type    = "query alert"
  message = "m"
  query   = "percentile(last_1m):p95:app.latency{service:api} > 500"
}
resource "datadog_monitor" "p99" {
  name    = "p99 latency"
  type    = "query alert"
  message = "m"
  query   = "avg(last_1m):p99:app.latency{*} by {service} > 1000"
}
resource "datadog_monitor" "p50" {
  name    = "median latency"
  type    = "query alert"
  message = "m"
  query   = "percentile(last_1m):p50:app.latency{*} > 500"
}
resource "datadog_monitor" "p75" {
  name    = "p75 latency"
  type    = "query alert"
  message = "m"
  query   = "percentile(last_1m):p75:app.latency{*} > 500"
}
"#;
    let out = against_file(tf, &dir, &file, false);
    for line in [
        "datadog_monitor.p95  percentile(last_1m):p95:app.latency{service:api} > 500\n",
        "  12:01:00  ALERT      value 900 (critical > 500)\n",
        // The last 900 (12:01:20) leaves the 1-minute window at 12:02:20.
        "  12:02:20  recovered  value 100\n",
        "datadog_monitor.p50  percentile(last_1m):p50:app.latency{*} > 500\n  evaluated 12:00:00–12:03:50 UTC (24 steps)\n  never triggered\n",
        "datadog_monitor.p75: skipped: `p75:` of the distribution app.latency: the agent records only its p50, p95, p99, avg, max and count\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let json = against_file(tf, &dir, &file, true);
    // p99 averaged over the minute: (3 × 1500 + 3 × 150) / 6 = 825 at most: never over 1000.
    assert_eq!(
        transitions(&json, "datadog_monitor.p99"),
        vec![(
            "12:00:00".to_string(),
            "service:api".to_string(),
            "-".to_string(),
            "ok".to_string(),
            Some(150.0)
        )]
    );
}

/// A gauge at 10 that steps to 50 at 12:05:00: `change(avg(last_5m),last_5m)` compares each point with
/// the one five minutes earlier (a difference of 40 from 12:05:00 to 12:09:50), averaged over the window;
/// `pct_change` the same in percent (400 %).
#[test]
fn change_and_pct_change_compare_with_the_time_shifted_series() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f64> = (0..=90).map(|i| if i < 30 { 10.0 } else { 50.0 }).collect();
    let file = record_file(
        dir.path(),
        &[(
            "app.queue",
            vec![Rec {
                kind: "gauge",
                stat: "",
                interval: 0,
                tags: &[],
                values,
                step: 10,
            }],
        )],
    );
    let tf = r#"
resource "datadog_monitor" "change" {
  name    = "Queue grows"
  type    = "query alert"
  message = "m"
  query   = "change(avg(last_5m),last_5m):avg:app.queue{*} > 20"
}
resource "datadog_monitor" "pct" {
  name    = "Queue grows fast"
  type    = "query alert"
  message = "m"
  query   = "pct_change(avg(last_5m),last_5m):avg:app.queue{*} > 300"
}
"#;
    let out = against_file(tf, &dir, &file, true);
    // At 12:05:00 only that point has one five minutes before it: 50 - 10 = 40. From 12:10:00 the
    // differences of 0 come in; the average of the window's 30 falls to 20 at 12:12:20.
    assert_eq!(
        transitions(&out, "datadog_monitor.change"),
        vec![
            tr("12:05:00", "-", "alert", 40.0),
            tr("12:12:20", "alert", "ok", 20.0),
        ]
    );
    // In percent: 400 % per point, the window's average under 300 % once 8 of 30 are 0: 12:11:10.
    let t = transitions(&out, "datadog_monitor.pct");
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[0], tr("12:05:00", "-", "alert", 400.0));
    assert_eq!((t[1].0.as_str(), t[1].3.as_str()), ("12:11:10", "ok"));
    assert!((t[1].4.unwrap() - 293.333).abs() < 0.01, "{t:?}");
}

/// One point a minute: 20, 90, 75, 65, 55, 45, 85, 60, 40. With recovery thresholds a group in ALERT stays
/// there until the value is at or below `critical_recovery` (70), one in WARN until it is at or below
/// `warning_recovery` (50); without them it leaves as soon as the threshold is no longer crossed.
#[test]
fn a_group_recovers_only_past_its_recovery_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let values = vec![20.0, 90.0, 75.0, 65.0, 55.0, 45.0, 85.0, 60.0, 40.0];
    let file = record_file(
        dir.path(),
        &[(
            "app.temp",
            vec![Rec {
                kind: "gauge",
                stat: "",
                interval: 0,
                tags: &["room:a"],
                values,
                step: 60,
            }],
        )],
    );
    let tf = r#"
resource "datadog_monitor" "hysteresis" {
  name    = "Room too hot"
  type    = "metric alert"
  message = "m"
  query   = "avg(last_1m):avg:app.temp{*} by {room} > 80"
  monitor_thresholds {
    critical          = 80
    critical_recovery = 70
    warning           = 60
    warning_recovery  = 50
  }
}
resource "datadog_monitor" "plain" {
  name    = "Room too hot (no recovery thresholds)"
  type    = "metric alert"
  message = "m"
  query   = "avg(last_1m):avg:app.temp{*} by {room} > 80"
  monitor_thresholds {
    critical = 80
    warning  = 60
  }
}
"#;
    let out = against_file(tf, &dir, &file, false);
    for line in [
        "  12:01:00  room:a  ALERT      value 90 (critical > 80)\n",
        "  12:03:00  room:a  WARN       value 65 (warning > 60)\n",
        "  12:05:00  room:a  recovered  value 45 (warning recovery <= 50)\n",
        "  12:06:00  room:a  ALERT      value 85 (critical > 80)\n",
        "  12:07:00  room:a  WARN       value 60 (warning > 60)\n",
        "  12:08:00  room:a  recovered  value 40 (warning recovery <= 50)\n",
        "  alert 2 times, warn 2 times, now OK\n",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    let json = against_file(tf, &dir, &file, true);
    let group = |t: &str, from: &str, to: &str, v: f64| {
        (
            t.to_string(),
            "room:a".to_string(),
            from.to_string(),
            to.to_string(),
            Some(v),
        )
    };
    assert_eq!(
        transitions(&json, "datadog_monitor.hysteresis"),
        vec![
            group("12:00:00", "-", "ok", 20.0),
            group("12:01:00", "ok", "alert", 90.0),
            // 75 is under the critical threshold but above its recovery threshold: still ALERT.
            group("12:03:00", "alert", "warn", 65.0),
            // 55 is under the warning threshold but above its recovery threshold: still WARN.
            group("12:05:00", "warn", "ok", 45.0),
            group("12:06:00", "ok", "alert", 85.0),
            // 60 passes the critical recovery threshold, not the warning one: WARN.
            group("12:07:00", "alert", "warn", 60.0),
            group("12:08:00", "warn", "ok", 40.0),
        ]
    );
    assert_eq!(
        transitions(&json, "datadog_monitor.plain"),
        vec![
            group("12:00:00", "-", "ok", 20.0),
            group("12:01:00", "ok", "alert", 90.0),
            group("12:02:00", "alert", "warn", 75.0),
            group("12:04:00", "warn", "ok", 55.0),
            group("12:06:00", "ok", "alert", 85.0),
            group("12:07:00", "alert", "ok", 60.0),
        ]
    );
}
