//! End-to-end tests of `kelpie agent` in local mode (no API key): the real binary, real sockets, the status
//! server and the `kelpie status` command.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

fn series_points(agent: &AgentProc, query: &str) -> Vec<Value> {
    let (code, body) =
        http_get(agent.status, &format!("/api/series?{query}")).expect("GET /api/series");
    assert_eq!(code, 200, "{body}");
    let doc: Value = serde_json::from_str(&body).expect("json");
    doc["series"].as_array().cloned().unwrap_or_default()
}

/// Sum over every point of every returned context of value × interval (rates back into counts).
fn total_count(series: &[Value], interval: f64) -> f64 {
    series
        .iter()
        .flat_map(|s| s["points"].as_array().cloned().unwrap_or_default())
        .map(|p| p[1].as_f64().unwrap_or(0.0) * interval)
        .sum()
}

#[test]
fn local_mode_counts_exactly_and_serves_history() {
    let agent = AgentProc::spawn(&[]);
    assert_eq!(agent.status_json()["mode"], "local");
    // 500 increments in 50 datagrams of 10 lines, half of them sampled at 0.5 (each counts 2).
    for _ in 0..25 {
        agent.send(&"e2e.local.requests:1|c|#service:api,env:test\n".repeat(10));
        agent.send(&"e2e.local.requests:1|c|@0.5|#env:test,service:api\n".repeat(10));
    }
    agent.send("e2e.local.temp:20|g|#room:a\ne2e.local.temp:21.5|g|#room:a");
    agent.wait_samples(502, Duration::from_secs(10));
    let found = wait_for(Duration::from_secs(10), || {
        let s = series_points(&agent, "metric=e2e.local.requests");
        let total = total_count(&s, 1.0);
        (total >= 750.0).then_some((s, total))
    });
    let (series, total) = found.expect("counter history within 10 s");
    // One context whatever the tag order; 250 + 250×2 increments.
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!(
        series[0]["tags"],
        serde_json::json!(["env:test", "service:api"])
    );
    assert_eq!(series[0]["kind"], "rate");
    assert_eq!(series[0]["host"], "e2e-host");
    assert!((total - 750.0).abs() < 1e-9, "total {total}");
    let gauge = wait_for(Duration::from_secs(5), || {
        let s = series_points(&agent, "metric=e2e.local.temp&tags=room:a");
        s.first()
            .and_then(|c| c["points"].as_array().and_then(|p| p.last().cloned()))
    })
    .expect("gauge point");
    assert_eq!(gauge[1].as_f64(), Some(21.5));
    // Host metrics and self telemetry are in the history too.
    let (_, names) = http_get(agent.status, "/api/metrics").unwrap();
    assert!(names.contains("datadog.agent.running"), "{names}");
    assert!(names.contains("kelpie.dogstatsd.metric_samples"), "{names}");
    assert!(names.contains("system.load.1"), "{names}");
    // Missing metric parameter is a clear 400.
    let (code, body) = http_get(agent.status, "/api/series").unwrap();
    assert_eq!(code, 400);
    assert!(
        body.contains("metric query parameter is required"),
        "{body}"
    );
}

#[test]
fn parse_errors_are_counted_and_the_rest_of_the_datagram_used() {
    let agent = AgentProc::spawn(&[]);
    agent.send("e2e.ok:1|c\nthis is not statsd\ne2e.ok:2|c\ne2e.bad:abc|g\ne2e.ok:3|c");
    agent.wait_samples(3, Duration::from_secs(10));
    let doc = wait_for(Duration::from_secs(5), || {
        let d = agent.status_json();
        (d["dogstatsd"]["parse_errors"].as_u64() == Some(2)).then_some(d)
    })
    .expect("two parse errors counted");
    assert_eq!(doc["dogstatsd"]["metric_samples"].as_u64(), Some(3));
    assert!(doc["dogstatsd"]["packets"]["udp"].as_u64().unwrap() >= 1);
}

#[test]
fn status_command_prints_sections_and_health() {
    let agent = AgentProc::spawn(&[]);
    agent.send("e2e.status:1|c");
    agent.wait_samples(1, Duration::from_secs(10));
    let addr = agent.status.to_string();
    let out = Command::new(kelpie_bin())
        .args(["status", "--addr", &addr])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for section in [
        "DogStatsD",
        "Forwarder",
        "Udp Packets:",
        "Metric Samples: 1",
        "Mode: local",
        "Parse Errors: 0",
        "Origin Detection: sockets off, |c: field off, tag cardinality low; 0 containers known",
    ] {
        assert!(text.contains(section), "missing {section:?} in:\n{text}");
    }
    let out = Command::new(kelpie_bin())
        .args(["status", "--json", "--addr", &addr])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).expect("status --json");
    for key in [
        "version",
        "hostname",
        "uptime_seconds",
        "mode",
        "site",
        "dogstatsd",
        "forwarder",
        "collectors",
    ] {
        assert!(doc.get(key).is_some(), "missing {key}");
    }
    assert_eq!(doc["hostname"], "e2e-host");
    // SPEC §7: every field is present, zero, null or "off" when not in use (container collection is off here).
    let docker = &doc["collectors"]["docker"];
    assert_eq!(docker["status"], "off", "{doc}");
    assert_eq!(docker["containers"], 0, "{doc}");
    assert!(docker.get("error").is_some_and(Value::is_null), "{doc}");
    assert_eq!(doc["collectors"]["host"]["status"], "ok", "{doc}");
    assert_eq!(doc["collectors"]["ecs"]["status"], "off", "{doc}");
    assert_eq!(
        doc["dogstatsd"]["histogram_samples_approximated"], 0,
        "{doc}"
    );
    let health = Command::new(kelpie_bin())
        .args(["status", "--health", "--addr", &addr])
        .status()
        .unwrap();
    assert!(health.success());
    // Nothing listens on a fresh port: unhealthy, exit 1, one sentence.
    let dead = format!("127.0.0.1:{}", free_tcp_port());
    let out = Command::new(kelpie_bin())
        .args(["status", "--health", "--addr", &dead])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no agent answers"));
}

#[test]
fn bad_config_values_stop_the_agent_with_one_sentence() {
    let cases: &[(&str, &str, &str)] = &[
        ("DD_DOGSTATSD_PORT", "70000", "`dogstatsd_port`"),
        ("KELPIE_FLUSH_INTERVAL", "often", "KELPIE_FLUSH_INTERVAL"),
        (
            "DD_DOGSTATSD_SOCKET",
            "/nonexistent-dir/dsd.socket",
            "`dogstatsd_socket`",
        ),
        ("DD_LOG_LEVEL", "verbose", "`log_level`"),
    ];
    for (key, value, expect) in cases {
        let out = Command::new(kelpie_bin())
            .args(["agent", "--config", "/dev/null"])
            .env(key, value)
            .env(
                "KELPIE_STATUS_ADDR",
                format!("127.0.0.1:{}", free_tcp_port()),
            )
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{key}={value}");
        let err = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("kelpie:")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(
            lines[0].contains(expect) && lines[0].contains(value),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn sigterm_exits_zero_and_stops_listening() {
    let mut agent = AgentProc::spawn(&[]);
    agent.send("e2e.term:1|c");
    agent.wait_samples(1, Duration::from_secs(10));
    let st = agent.terminate(Duration::from_secs(30));
    assert!(st.success(), "exit status {st}");
    assert!(agent.log_text().contains("kelpie agent stopped"));
}

#[test]
fn pprof_profile_endpoint_returns_a_gzipped_profile() {
    let agent = AgentProc::spawn(&[]);
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(agent.status).unwrap();
    write!(
        s,
        "GET /debug/pprof/profile?seconds=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // gzip magic (the body is not chunked: axum sends a fixed-length Vec body).
    assert_eq!(&raw[head_end..head_end + 2], &[0x1f, 0x8b]);
}

/// Events and service checks in local mode: kept, served at /api/events and /api/service_checks (newest
/// first), and printed by `kelpie status`.
#[test]
fn events_and_service_checks_are_shown_in_local_mode() {
    let agent = AgentProc::spawn(&[]);
    // One client, three datagrams: shown newest first in the order they were sent.
    agent.send_in_order(&[
        "_e{14,21}:Deploy api v42|Rolled out by CI #981|t:info|#event_type:deploy,service:api",
        "_e{9,4}:Card fail|oops|t:error|#service:pay",
        "_sc|app.db.can_connect|2|#service:api|m:connection refused",
    ]);
    let events = wait_for(Duration::from_secs(10), || {
        let (_, body) = http_get(agent.status, "/api/events")?;
        let doc: Value = serde_json::from_str(&body).ok()?;
        let events = doc["events"].as_array()?.clone();
        (events.len() == 2).then_some(events)
    })
    .expect("two events within 10 s");
    assert_eq!(events[0]["title"], "Card fail");
    assert_eq!(events[0]["alert_type"], "error");
    assert_eq!(events[1]["title"], "Deploy api v42");
    assert_eq!(events[1]["deploy"], true);
    assert_eq!(
        events[1]["tags"],
        serde_json::json!(["event_type:deploy", "service:api"])
    );
    let (code, body) = http_get(agent.status, "/api/service_checks").unwrap();
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&body).unwrap();
    let c = &doc["service_checks"][0];
    assert_eq!(c["check"], "app.db.can_connect");
    assert_eq!(c["status_text"], "critical");
    assert_eq!(c["message"], "connection refused");
    let out = Command::new(kelpie_bin())
        .args(["status", "--addr", &agent.status.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("[info] Deploy api v42 (event_type:deploy, service:api)"),
        "{text}"
    );
    assert!(
        text.contains("app.db.can_connect critical: connection refused"),
        "{text}"
    );
    assert!(text.contains("Intake: none (local mode"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colour when not a terminal: {text}"
    );
}

/// The CLI helps with configuration: a missing file said once, `kelpie config` with sources and the key
/// redacted, `agent --help` listing the variables, "did you mean", and JSON logs whose first lines say what the
/// agent listens on, where it sends and which collectors run.
#[test]
fn config_help_and_first_log_lines() {
    let out = Command::new(kelpie_bin())
        .args(["agent", "--config", "/nonexistent/kelpie.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        "kelpie: cannot read config file /nonexistent/kelpie.yaml: No such file or directory (os error 2)"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kelpie.yaml");
    std::fs::write(
        &file,
        "dogstatsd_prot: 9000\nhistogram_percentiles: [0.5, 0.99]\n",
    )
    .unwrap();
    let out = Command::new(kelpie_bin())
        .args(["config", "--config"])
        .arg(&file)
        .env("DD_API_KEY", "0123456789abcdef0123")
        .env("DD_DOGSTATSD_PORT", "9125")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let line = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("{key} missing:\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("api_key"),
        "api_key ****************0123 environment variable DD_API_KEY"
    );
    assert!(!text.contains("0123456789abcdef"), "{text}");
    assert_eq!(
        line("dogstatsd_port"),
        "dogstatsd_port 9125 environment variable DD_DOGSTATSD_PORT"
    );
    assert!(
        line("histogram_percentiles").starts_with("histogram_percentiles [0.5,0.99] ")
            && line("histogram_percentiles").ends_with("kelpie.yaml"),
        "{text}"
    );
    assert_eq!(line("bind_host"), "bind_host localhost default");
    assert!(text.contains("did you mean `dogstatsd_port`?"), "{text}");

    let out = Command::new(kelpie_bin())
        .args(["agent", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "DD_API_KEY",
        "DD_DOGSTATSD_PORT",
        "[8125]",
        "DD_LOG_FORMAT_JSON",
        "KELPIE_STATUS_ADDR",
    ] {
        assert!(
            help.contains(var),
            "{var} missing from agent --help:\n{help}"
        );
    }

    let agent = AgentProc::spawn(&[("DD_LOG_FORMAT_JSON", "true")]);
    let lines: Vec<Value> = wait_for(Duration::from_secs(10), || {
        let log = agent.log_text();
        let lines: Vec<Value> = log
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        lines
            .iter()
            .any(|l| {
                l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("collectors:"))
            })
            .then_some(lines)
    })
    .expect("the startup summary within 10 s");
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    let has = |prefix: &str| messages.iter().any(|m| m.starts_with(prefix));
    assert!(
        has(&format!("listening: DogStatsD UDP {}", agent.udp)),
        "{messages:?}"
    );
    assert!(has("local mode: no api_key"), "{messages:?}");
    assert!(
        messages.contains(
            &"collectors: docker off (container_collection: false); ecs off; host on (/proc)"
        ),
        "{messages:?}"
    );
}

/// `kelpie status --top` names the metric with the most contexts and the tag that makes them.
#[test]
fn status_top_finds_the_high_cardinality_metric() {
    let agent = AgentProc::spawn(&[]);
    let hot: String = (0..60)
        .map(|i| format!("e2e.top.hot:1|c|#request_id:{i},service:api\n"))
        .collect();
    agent.send(&hot);
    agent.send("e2e.top.cold:1|c|#service:api\ne2e.top.cold:1|c|#service:web");
    agent.wait_samples(62, Duration::from_secs(10));
    let addr = agent.status.to_string();
    let text = wait_for(Duration::from_secs(10), || {
        let out = Command::new(kelpie_bin())
            .args(["status", "--top", "--limit", "3", "--addr", &addr])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.contains("e2e.top.hot").then_some(text)
    })
    .expect("e2e.top.hot in kelpie status --top within 10 s");
    let rows: Vec<&str> = text.lines().skip(3).collect();
    assert_eq!(rows.len(), 3, "{text}");
    let first: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        first,
        ["60", "e2e.top.hot", "request_id", "(60),", "service", "(1)"],
        "{text}"
    );
    assert!(!text.contains('\x1b'), "{text}");
}
