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
