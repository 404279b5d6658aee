//! End-to-end tests of `kelpie agent` forwarding to the in-process Datadog API stand-in: real DogStatsD clients
//! nobody here wrote (Python `datadog`, the `cadence` crate), exact semantics checked at the intake, failures
//! of the intake, SIGTERM and restarts with a disk queue.

mod common;

use common::*;
use kelpie_standin::intake::{Failure, Intake, IntakeHandle, ReceivedSeries, Times};
use std::process::Command;
use std::time::Duration;

fn agent_for(intake: &IntakeHandle, extra: &[(&str, &str)]) -> AgentProc {
    let url = intake.url();
    let mut envs: Vec<(&str, &str)> = vec![
        ("DD_API_KEY", "e2e-key"),
        ("DD_DD_URL", url.as_str()),
        ("DD_FORWARDER_BACKOFF_BASE", "0.2"),
        ("DD_FORWARDER_BACKOFF_MAX", "2"),
    ];
    envs.extend_from_slice(extra);
    AgentProc::spawn(&envs)
}

fn named(series: &[ReceivedSeries], name: &str) -> Vec<ReceivedSeries> {
    series.iter().filter(|s| s.name == name).cloned().collect()
}

/// Total count carried by a counter's series: every rate point × its interval.
fn counted(series: &[ReceivedSeries], name: &str) -> f64 {
    named(series, name)
        .iter()
        .flat_map(|s| s.points.iter().map(move |p| p.1 * s.interval.max(1) as f64))
        .sum()
}

/// Waits up to `secs` for the counter `name` to total `n` at the intake, then a little longer to see that
/// nothing arrives twice.
async fn arrives_exactly_once(intake: &IntakeHandle, name: &str, n: f64, secs: u64) {
    let ok = wait_until(intake, secs, |i| counted(&i.series(), name) >= n).await;
    assert!(
        ok,
        "only {} of {n} arrived",
        counted(&intake.series(), name)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counted(&intake.series(), name), n, "exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_datadog_client_every_type_arrives_with_datadog_semantics() {
    if !python_datadog() {
        return;
    }
    let intake = Intake::start().await;
    let agent = agent_for(
        &intake,
        &[
            ("DD_TAGS", "team:infra region:eu"),
            ("DD_ENV", "e2e"),
            ("DD_DOGSTATSD_TAGS", "via:dogstatsd"),
            ("KELPIE_FLUSH_INTERVAL", "2s"),
        ],
    );
    let script = format!(
        r#"
from datadog.dogstatsd import DogStatsd
s = DogStatsd(host="127.0.0.1", port={port}, disable_telemetry=True, constant_tags=["client:python"])
for i in range(1000):
    s.increment("e2e.py.requests", tags=["route:/a"])
for v in [1, 2, 3]:
    s.gauge("e2e.py.queue", v)
s.gauge("e2e.py.hostless", 7, tags=["host:"])
s.gauge("e2e.py.elsewhere", 8, tags=["host:db-1"])
for u in ["a", "b", "c", "a"]:
    s.set("e2e.py.users", u)
for v in range(1, 101):
    s.histogram("e2e.py.latency", v)
for v in range(1, 1001):
    s.distribution("e2e.py.dist", v)
s.event("Deploy done", "it worked", alert_type="success", tags=["team:x"])
s.service_check("e2e.py.check", 1, message="slow")
s.flush()
s.close_socket()
"#,
        port = agent.udp.port()
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.wait_samples(1000 + 3 + 2 + 4 + 100 + 1000, Duration::from_secs(15));

    let ok = wait_until(&intake, 20, |i| {
        let s = i.series();
        counted(&s, "e2e.py.requests") >= 1000.0
            && !named(&s, "e2e.py.latency.max").is_empty()
            && i.sketches().iter().any(|k| k.name == "e2e.py.dist")
            && !i.events().is_empty()
            && !i.service_checks().is_empty()
    })
    .await;
    assert!(ok, "not everything arrived: {:?}", intake.received());
    // Let one more flush pass so nothing is in flight, then check exact values.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let series = intake.series();

    // Counter: exact total, sent as a rate with the interval, host + host tags + env + dogstatsd tags.
    assert_eq!(counted(&series, "e2e.py.requests"), 1000.0);
    let req = &named(&series, "e2e.py.requests")[0];
    assert_eq!(req.kind, 2, "counters are rates");
    assert_eq!(req.interval, 2);
    assert_eq!(req.host.as_deref(), Some("e2e-host"));
    // `host:` sets a series' host; an empty one leaves it without a host, as with the Datadog Agent.
    let hostless = &named(&series, "e2e.py.hostless")[0];
    assert_eq!(
        (hostless.host.as_deref(), hostless.resources.len()),
        (None, 0)
    );
    assert!(!hostless.tags.iter().any(|t| t.starts_with("host:")));
    assert_eq!(
        named(&series, "e2e.py.elsewhere")[0].host.as_deref(),
        Some("db-1")
    );
    for t in [
        "route:/a",
        "client:python",
        "team:infra",
        "region:eu",
        "env:e2e",
        "via:dogstatsd",
    ] {
        assert!(
            req.tags.iter().any(|x| x == t),
            "missing tag {t} in {:?}",
            req.tags
        );
    }
    // Gauge: last value.
    let queue = named(&series, "e2e.py.queue");
    assert_eq!(
        queue.last().and_then(|s| s.points.last()).map(|p| p.1),
        Some(3.0)
    );
    assert_eq!(queue[0].kind, 3);
    // Set: unique count as a gauge.
    let users = named(&series, "e2e.py.users");
    assert_eq!(
        users
            .iter()
            .map(|s| s.points.iter().map(|p| p.1).sum::<f64>())
            .sum::<f64>(),
        3.0
    );
    // Histogram aggregates (max, median, avg, count, 95percentile by default).
    let max = named(&series, "e2e.py.latency.max");
    assert_eq!(
        max.iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
        100.0
    );
    assert_eq!(counted(&series, "e2e.py.latency.count"), 100.0);
    let avg = named(&series, "e2e.py.latency.avg");
    if avg.len() == 1 {
        assert_eq!(avg[0].points[0].1, 50.5);
        let p95 = named(&series, "e2e.py.latency.95percentile");
        let v = p95[0].points[0].1;
        assert!((94.0..=96.0).contains(&v), "p95 {v}");
        let med = named(&series, "e2e.py.latency.median")[0].points[0].1;
        assert!((50.0..=51.0).contains(&med), "median {med}");
    }
    // Distribution: a sketch with exact count/sum/min/max.
    let sk: Vec<_> = intake
        .sketches()
        .into_iter()
        .filter(|k| k.name == "e2e.py.dist")
        .flat_map(|k| k.points)
        .collect();
    assert_eq!(sk.iter().map(|p| p.cnt).sum::<i64>(), 1000);
    assert_eq!(sk.iter().map(|p| p.sum).sum::<f64>(), 500500.0);
    assert_eq!(sk.iter().map(|p| p.min).fold(f64::MAX, f64::min), 1.0);
    assert_eq!(sk.iter().map(|p| p.max).fold(0.0, f64::max), 1000.0);
    let nsum: u64 = sk.iter().flat_map(|p| p.n.iter().map(|n| *n as u64)).sum();
    assert_eq!(nsum, 1000, "bin counts add up to the count");
    // Event and service check, with host tags.
    let ev = &intake.events()[0];
    assert_eq!(ev["title"], "Deploy done");
    assert_eq!(ev["text"], "it worked");
    assert_eq!(ev["alert_type"], "success");
    assert_eq!(ev["host"], "e2e-host");
    let evtags: Vec<String> = serde_json::from_value(ev["tags"].clone()).unwrap();
    assert!(
        evtags.contains(&"team:x".into()) && evtags.contains(&"env:e2e".into()),
        "{evtags:?}"
    );
    let sc = &intake.service_checks()[0];
    assert_eq!(sc["check"], "e2e.py.check");
    assert_eq!(sc["status"], 1);
    assert_eq!(sc["message"], "slow");
    assert_eq!(sc["host_name"], "e2e-host");
    // Datadog's headers and compression.
    let reqs = intake.requests();
    let series_req = reqs
        .iter()
        .find(|r| r.path == "/api/v2/series")
        .expect("a series request");
    assert_eq!(series_req.header("dd-api-key"), Some("e2e-key"));
    assert_eq!(series_req.header("content-encoding"), Some("zstd"));
    assert_eq!(
        series_req.header("content-type"),
        Some("application/x-protobuf")
    );
    // The agent's own heartbeat and telemetry.
    assert!(!named(&series, "datadog.agent.running").is_empty());
    assert!(counted(&series, "kelpie.dogstatsd.metric_samples") >= 2107.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cadence_client_counters_and_timers_arrive() {
    use cadence::prelude::*;
    use cadence::{StatsdClient, UdpMetricSink};
    let intake = Intake::start().await;
    let agent = agent_for(&intake, &[]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let sink = UdpMetricSink::from(agent.udp, sock).unwrap();
    let client = StatsdClient::from_sink("svc", sink);
    for _ in 0..300 {
        client
            .count_with_tags("jobs", 2)
            .with_tag("queue", "q1")
            .send();
    }
    for ms in 1..=50u64 {
        client
            .time_with_tags("handle", ms)
            .with_tag("queue", "q1")
            .send();
    }
    client.gauge("depth", 7).unwrap();
    agent.wait_samples(351, Duration::from_secs(10));
    let ok = wait_until(&intake, 15, |i| {
        let s = i.series();
        counted(&s, "svc.jobs") >= 600.0 && counted(&s, "svc.handle.count") >= 50.0
    })
    .await;
    assert!(ok, "{:?}", intake.series());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = intake.series();
    assert_eq!(counted(&s, "svc.jobs"), 600.0);
    assert_eq!(counted(&s, "svc.handle.count"), 50.0);
    assert!(named(&s, "svc.jobs")[0]
        .tags
        .contains(&"queue:q1".to_string()));
    assert_eq!(named(&s, "svc.depth")[0].points[0].1, 7.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_the_open_bucket() {
    let intake = Intake::start().await;
    // A long interval: without the shutdown flush nothing would be sent.
    let mut agent = agent_for(&intake, &[("KELPIE_FLUSH_INTERVAL", "60s")]);
    agent.send(&"e2e.term.count:1|c\n".repeat(40));
    agent.wait_samples(40, Duration::from_secs(10));
    let st = agent.terminate(Duration::from_secs(30));
    assert!(st.success(), "{st}");
    assert_eq!(counted(&intake.series(), "e2e.term.count"), 40.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_down_for_a_minute_then_every_increment_arrives_exactly_once() {
    let intake = Intake::start().await;
    let agent = agent_for(&intake, &[]);
    intake.set_failure(Failure::Down, Times::For(Duration::from_secs(60)));
    // 60 s of traffic while the intake is down: 10 increments every 500 ms.
    let mut sent = 0u64;
    for _ in 0..120 {
        agent.send(&"e2e.down.count:1|c\n".repeat(10));
        sent += 10;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    agent.wait_samples(sent, Duration::from_secs(10));
    let status = agent.status_json();
    assert!(
        status["forwarder"]["transactions"]["retried"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{status}"
    );
    arrives_exactly_once(&intake, "e2e.down.count", sent as f64, 60).await;
    let status = agent.status_json();
    assert_eq!(
        status["forwarder"]["transactions"]["dropped"],
        serde_json::json!({})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_queue_survives_an_agent_restart() {
    let intake = Intake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let extra = [
        ("DD_FORWARDER_STORAGE_PATH", storage.as_str()),
        ("DD_FORWARDER_STORAGE_MAX_SIZE_IN_BYTES", "50000000"),
    ];
    intake.set_failure(Failure::Down, Times::Always);
    let mut first = agent_for(&intake, &extra);
    first.send(&"e2e.disk.count:1|c\n".repeat(25));
    first.wait_samples(25, Duration::from_secs(10));
    // Let a flush or two fail, then stop: what could not be sent goes to disk.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(first.terminate(Duration::from_secs(40)).success());
    let on_disk = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(on_disk > 0, "nothing persisted in {storage}");
    assert_eq!(counted(&intake.series(), "e2e.disk.count"), 0.0);
    intake.clear_failure();
    let _second = agent_for(&intake, &extra);
    let ok = wait_until(&intake, 30, |i| {
        counted(&i.series(), "e2e.disk.count") >= 25.0
    })
    .await;
    assert!(ok, "persisted payloads were not sent after restart");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counted(&intake.series(), "e2e.disk.count"), 25.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_payloads_are_dropped_and_counted() {
    let intake = Intake::start().await;
    intake.set_failure(Failure::Status(403), Times::Always);
    let agent = agent_for(&intake, &[]);
    agent.send("e2e.rejected:1|c");
    let doc = wait_for(Duration::from_secs(15), || {
        let d = agent.status_json();
        (d["forwarder"]["transactions"]["dropped"]["http_403"]
            .as_u64()
            .unwrap_or(0)
            > 0)
        .then_some(d)
    });
    assert!(
        doc.is_some(),
        "403 drops not counted: {}",
        agent.status_json()
    );
    // Still healthy: an intake problem is not a health failure.
    assert_eq!(http_get(agent.status, "/health").map(|r| r.0), Some(200));
}

/// Counts the `.payload` files in the forwarder's storage.
fn payload_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".payload"))
        })
        .count()
}

/// Issue 13 item 1: with `forwarder_storage_path` set and the intake answering 503, every flushed payload is on
/// disk; `kill -9` and a restart with the intake back deliver every sample exactly once, and files that are
/// not whole payloads are skipped with a warning and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_the_intake_fails_loses_no_flushed_sample() {
    let intake = Intake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let extra = [
        ("DD_FORWARDER_STORAGE_PATH", storage.as_str()),
        ("DD_FORWARDER_STORAGE_MAX_SIZE_IN_BYTES", "50000000"),
    ];
    intake.set_failure(Failure::Status(503), Times::Always);
    let mut first = agent_for(&intake, &extra);
    // 500 increments spread over several flushes.
    for _ in 0..5 {
        first.send(&"e2e.kill.count:1|c\n".repeat(100));
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    first.wait_samples(500, Duration::from_secs(10));
    let flushes = |a: &AgentProc| {
        a.status_json()["aggregator"]["flushes"]
            .as_u64()
            .unwrap_or(0)
    };
    let after = flushes(&first) + 2;
    // Two flushes after the last sample was counted, nothing held only in memory: all of it is on disk.
    let doc = wait_for(Duration::from_secs(20), || {
        let d = first.status_json();
        (flushes(&first) >= after
            && d["forwarder"]["queued_bytes"].as_i64() == Some(0)
            && d["forwarder"]["queued_on_disk_bytes"].as_i64().unwrap_or(0) > 0)
            .then_some(d)
    });
    let doc = doc.unwrap_or_else(|| panic!("payloads not on disk: {}", first.status_json()));
    assert_eq!(doc["forwarder"]["delivering"], false, "{doc}");
    assert!(
        doc["forwarder"]["not_delivering_since"]
            .as_i64()
            .unwrap_or(0)
            > 0,
        "{doc}"
    );
    assert_eq!(doc["dd_url"], intake.url().as_str());
    // `kelpie status` says it in words.
    let out = Command::new(kelpie_bin())
        .args(["status", "--addr", &first.status.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("Not delivering to {} since ", intake.url()))
            && text.contains(" payloads ("),
        "{text}"
    );
    // The first failure was logged at once, with the URL and the reason, and only once within the minute.
    let log = first.log_text();
    let first_failure = format!("cannot deliver to the intake {}", intake.url());
    assert_eq!(log.matches(&first_failure).count(), 1, "{log}");
    assert!(log.contains("HTTP 503"), "{log}");
    assert!(intake.requests().iter().all(|r| r.status == 503));
    assert_eq!(counted(&intake.series(), "e2e.kill.count"), 0.0);

    // SIGKILL: no shutdown path runs.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    assert!(payload_files(dir.path()) > 0);
    // A file cut short (a valid header, half the body) and one that is not a payload at all.
    let cut = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "payload"))
        .unwrap();
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(
        dir.path().join("00000000000000000001-1-00000000.payload"),
        &bytes[..bytes.len() - 3],
    )
    .unwrap();
    std::fs::write(
        dir.path().join("00000000000000000002-1-00000000.payload"),
        b"\x00\xffnot a payload",
    )
    .unwrap();

    intake.clear_failure();
    let second = agent_for(&intake, &extra);
    arrives_exactly_once(&intake, "e2e.kill.count", 500.0, 30).await;
    let doc = second.status_json();
    assert_eq!(
        doc["forwarder"]["transactions"]["dropped"]["disk_corrupt"], 2,
        "{doc}"
    );
    assert_eq!(doc["forwarder"]["delivering"], true, "{doc}");
    let log = second.log_text();
    assert_eq!(
        log.matches("skipping and removing the unreadable forwarder file")
            .count(),
        2,
        "{log}"
    );
}

/// Issue 12 item 5: SIGTERM with the intake down and no storage finishes within Docker's default 10 s stop
/// timeout and logs exactly what it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_the_intake_down_exits_in_time_and_says_what_it_dropped() {
    let intake = Intake::start().await;
    intake.set_failure(Failure::Down, Times::Always);
    let mut agent = agent_for(&intake, &[]);
    agent.send(&"e2e.lost.count:1|c\n".repeat(10));
    agent.wait_samples(10, Duration::from_secs(10));
    let log_has = |a: &AgentProc, s: &str| a.log_text().contains(s);
    assert!(
        wait_for(Duration::from_secs(15), || log_has(
            &agent,
            "cannot deliver to the intake"
        )
        .then_some(()))
        .is_some(),
        "the first failure was not logged: {}",
        agent.log_text()
    );
    // Docker sends SIGKILL 10 s after SIGTERM.
    let st = agent.terminate(Duration::from_secs(10));
    assert!(st.success(), "{st}");
    let log = agent.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("unsent and no forwarder_storage_path: dropping them"))
        .unwrap_or_else(|| panic!("no drop line: {log}"));
    assert!(line.contains("series: "), "{line}");
    assert!(line.contains(" items, "), "{line}");
}
