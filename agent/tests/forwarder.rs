//! The forwarder against the intake stand-in: delivery, retries, drops, outages, disk spill and restarts.

use kelpie_agent::encode::{EncodeConfig, Payload, SeriesEncoder};
use kelpie_agent::forwarder::{Forwarder, ForwarderConfig};
use kelpie_agent::model::{Series, SeriesKind, TagSet};
use kelpie_agent::telemetry::Telemetry;
use kelpie_standin::intake::{Failure, Intake, IntakeHandle, Times};
use std::sync::Arc;
use std::time::Duration;

/// One payload carrying one series named `name`.
fn payload(name: &str) -> Payload {
    let cfg = EncodeConfig {
        hostname: "test-host".into(),
        host_tags: vec!["env:test".into()],
        use_protobuf: true,
    };
    let s = Series {
        name: name.into(),
        tags: TagSet::from(["k:v"]),
        host: "".into(),
        kind: SeriesKind::Gauge,
        interval: 0,
        points: vec![(1_700_000_000, 1.0)],
    };
    let mut enc = SeriesEncoder::new(&cfg);
    enc.push(s.as_ref());
    let mut p = enc.finish().expect("encodes").payloads;
    assert_eq!(p.len(), 1);
    p.remove(0)
}

fn payloads(prefix: &str, n: usize) -> Vec<Payload> {
    (0..n)
        .map(|i| payload(&format!("{prefix}.{i:03}")))
        .collect()
}

fn config(intake: &IntakeHandle) -> ForwarderConfig {
    ForwarderConfig {
        base_url: intake.url(),
        api_key: "test-key".into(),
        timeout: Duration::from_secs(2),
        max_memory_bytes: 1 << 20,
        storage_path: None,
        storage_max_bytes: 0,
        max_concurrent: 4,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
    }
}

/// Names of the series received, sorted.
fn received_names(intake: &IntakeHandle) -> Vec<String> {
    let mut v: Vec<String> = intake.series().into_iter().map(|s| s.name).collect();
    v.sort();
    v
}

fn expected_names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}.{i:03}")).collect()
}

async fn eventually(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn files_in(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".payload")
        })
        .count()
}

#[tokio::test]
async fn delivers_with_datadog_headers() {
    let intake = Intake::start().await;
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(config(&intake), tel.clone()).unwrap();
    fwd.submit(payloads("ok", 10));
    assert!(
        intake
            .wait_for(|r| r.series.len() >= 10, Duration::from_secs(10))
            .await
    );
    eventually("success counted", Duration::from_secs(5), || {
        tel.forwarder.success.get() == 10
    })
    .await;
    fwd.shutdown(Duration::from_secs(1)).await;
    assert_eq!(received_names(&intake), expected_names("ok", 10));
    for r in intake.requests() {
        assert_eq!(r.path, "/api/v2/series");
        assert_eq!(r.status, 202);
        assert_eq!(r.header("dd-api-key"), Some("test-key"));
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(r.header("content-encoding"), Some("zstd"));
        assert!(r.header("user-agent").unwrap().starts_with("kelpie/"));
        assert!(r.header("dd-agent-version").is_some());
    }
    assert_eq!(intake.requests().len(), 10);
    assert_eq!(tel.forwarder.retried.get(), 0);
    assert_eq!(tel.forwarder.dropped.total(), 0);
    assert_eq!(tel.forwarder.queued_transactions.get(), 0);
    assert_eq!(tel.forwarder.queued_bytes.get(), 0);
    assert!(tel.forwarder.bytes_sent.get() > 0);
    let s = &intake.series()[0];
    assert_eq!(s.host.as_deref(), Some("test-host"));
    assert_eq!(s.tags, vec!["k:v", "env:test"]);
}

async fn retried_then_delivered_once(status: u16) {
    let intake = Intake::start().await;
    intake.set_failure(Failure::Status(status), Times::Next(3));
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(config(&intake), tel.clone()).unwrap();
    fwd.submit(vec![payload("retry.me")]);
    assert!(
        intake
            .wait_for(|r| !r.series.is_empty(), Duration::from_secs(10))
            .await
    );
    eventually("success counted", Duration::from_secs(5), || {
        tel.forwarder.success.get() == 1
    })
    .await;
    fwd.shutdown(Duration::from_secs(1)).await;
    assert_eq!(received_names(&intake), vec!["retry.me"]);
    assert_eq!(tel.forwarder.retried.get(), 3);
    assert_eq!(tel.forwarder.dropped.total(), 0);
    let statuses: Vec<u16> = intake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![status, status, status, 202]);
    assert!(tel
        .forwarder
        .last_error
        .lock()
        .as_deref()
        .unwrap_or("")
        .contains(&status.to_string()));
}

#[tokio::test]
async fn http_500_is_retried_and_delivered_once() {
    retried_then_delivered_once(500).await;
}

#[tokio::test]
async fn http_429_is_retried() {
    retried_then_delivered_once(429).await;
}

#[tokio::test]
async fn http_404_and_408_are_retried() {
    retried_then_delivered_once(404).await;
    retried_then_delivered_once(408).await;
}

#[tokio::test]
async fn http_400_403_413_are_dropped_and_counted() {
    for (status, reason) in [(400u16, "http_400"), (403, "http_403"), (413, "http_413")] {
        let intake = Intake::start().await;
        intake.set_failure(Failure::Status(status), Times::Next(1));
        let tel = Arc::new(Telemetry::default());
        let fwd = Forwarder::start(config(&intake), tel.clone()).unwrap();
        fwd.submit(vec![payload("dropped")]);
        eventually("drop counted", Duration::from_secs(5), || {
            tel.forwarder.dropped.total() == 1
        })
        .await;
        assert_eq!(
            tel.forwarder.dropped.snapshot().get(reason),
            Some(&1),
            "status {status}"
        );
        // Nothing else is sent for it: the next payload goes through, the dropped one never does.
        fwd.submit(vec![payload("after")]);
        assert!(
            intake
                .wait_for(|r| !r.series.is_empty(), Duration::from_secs(5))
                .await
        );
        fwd.shutdown(Duration::from_secs(1)).await;
        assert_eq!(received_names(&intake), vec!["after"]);
        assert_eq!(intake.requests().len(), 2);
        assert_eq!(tel.forwarder.retried.get(), 0);
        assert_eq!(tel.forwarder.queued_transactions.get(), 0);
    }
}

#[tokio::test]
async fn intake_down_then_up_delivers_everything_once() {
    let intake = Intake::start().await;
    intake.set_failure(Failure::Down, Times::For(Duration::from_secs(2)));
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(config(&intake), tel.clone()).unwrap();
    for i in 0..4 {
        fwd.submit(payloads(&format!("down.{i}"), 5));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually("retries while down", Duration::from_secs(5), || {
        tel.forwarder.retried.get() > 0
    })
    .await;
    assert!(tel.forwarder.queued_transactions.get() > 0);
    assert!(tel.forwarder.last_error.lock().is_some());
    assert!(
        intake
            .wait_for(|r| r.series.len() >= 20, Duration::from_secs(15))
            .await
    );
    eventually("all acknowledged", Duration::from_secs(5), || {
        tel.forwarder.success.get() == 20
    })
    .await;
    fwd.shutdown(Duration::from_secs(1)).await;
    let mut want: Vec<String> = (0..4)
        .flat_map(|i| expected_names(&format!("down.{i}"), 5))
        .collect();
    want.sort();
    assert_eq!(received_names(&intake), want);
    assert_eq!(tel.forwarder.dropped.total(), 0);
    assert_eq!(tel.forwarder.queued_transactions.get(), 0);
}

#[tokio::test]
async fn connection_reset_is_retried() {
    let intake = Intake::start().await;
    intake.set_failure(Failure::Reset, Times::Next(2));
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(config(&intake), tel.clone()).unwrap();
    fwd.submit(vec![payload("reset")]);
    assert!(
        intake
            .wait_for(|r| !r.series.is_empty(), Duration::from_secs(10))
            .await
    );
    fwd.shutdown(Duration::from_secs(1)).await;
    assert_eq!(received_names(&intake), vec!["reset"]);
    assert_eq!(tel.forwarder.retried.get(), 2);
}

#[tokio::test]
async fn stall_beyond_timeout_is_retried() {
    let intake = Intake::start().await;
    intake.set_failure(Failure::Stall(Duration::from_secs(5)), Times::Next(1));
    let tel = Arc::new(Telemetry::default());
    let cfg = ForwarderConfig {
        timeout: Duration::from_millis(400),
        ..config(&intake)
    };
    let fwd = Forwarder::start(cfg, tel.clone()).unwrap();
    fwd.submit(vec![payload("slow")]);
    assert!(
        intake
            .wait_for(|r| !r.series.is_empty(), Duration::from_secs(10))
            .await
    );
    eventually("success counted", Duration::from_secs(5), || {
        tel.forwarder.success.get() == 1
    })
    .await;
    fwd.shutdown(Duration::from_secs(1)).await;
    assert_eq!(received_names(&intake), vec!["slow"]);
    assert_eq!(tel.forwarder.retried.get(), 1);
    assert!(tel
        .forwarder
        .last_error
        .lock()
        .as_deref()
        .unwrap_or("")
        .contains("timeout"));
}

#[tokio::test]
async fn newer_payloads_flow_while_an_older_one_backs_off() {
    let intake = Intake::start().await;
    let tel = Arc::new(Telemetry::default());
    let cfg = ForwarderConfig {
        backoff_base: Duration::from_millis(1500),
        backoff_max: Duration::from_millis(1500),
        ..config(&intake)
    };
    let fwd = Forwarder::start(cfg, tel.clone()).unwrap();
    intake.set_failure(Failure::Status(503), Times::Next(1));
    fwd.submit(vec![payload("first")]);
    eventually("first retried", Duration::from_secs(5), || {
        tel.forwarder.retried.get() == 1
    })
    .await;
    // The first payload now waits 0.75-1.5 s; a new one is sent meanwhile (after the probe succeeds).
    fwd.submit(vec![payload("second")]);
    assert!(
        intake
            .wait_for(
                |r| r.series.iter().any(|s| s.name == "second"),
                Duration::from_secs(5)
            )
            .await
    );
    assert!(
        intake
            .wait_for(|r| r.series.len() == 2, Duration::from_secs(5))
            .await
    );
    fwd.shutdown(Duration::from_secs(1)).await;
    // Arrival order proves the new payload did not wait behind the one backing off.
    let order: Vec<String> = intake.series().into_iter().map(|s| s.name).collect();
    assert_eq!(order, vec!["second", "first"]);
}

#[tokio::test]
async fn failed_payloads_are_written_ahead_and_next_start_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let intake = Intake::start().await;
    intake.set_failure(Failure::Down, Times::Always);
    let cfg = ForwarderConfig {
        storage_path: Some(dir.path().to_path_buf()),
        storage_max_bytes: 10 << 20,
        ..config(&intake)
    };
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(cfg.clone(), tel.clone()).unwrap();
    fwd.submit(payloads("persist", 6));
    eventually("retries while down", Duration::from_secs(5), || {
        tel.forwarder.retried.get() > 0
    })
    .await;
    // Write-ahead: once an attempt failed, every payload is on disk (the memory cap is far away), so a crash
    // now would lose nothing.
    eventually("all six on disk", Duration::from_secs(2), || {
        files_in(dir.path()) == 6
    })
    .await;
    assert_eq!(tel.forwarder.queued_bytes.get(), 0);
    assert!(tel.forwarder.not_delivering_since.get() > 0);
    // A payload queued while the intake fails goes to disk at once.
    fwd.submit(vec![payload("persist.006")]);
    eventually("the seventh on disk", Duration::from_secs(2), || {
        files_in(dir.path()) == 7
    })
    .await;
    fwd.shutdown(Duration::from_millis(300)).await;
    assert_eq!(files_in(dir.path()), 7);
    assert!(tel.forwarder.queued_on_disk_bytes.get() > 0);
    assert_eq!(tel.forwarder.queued_bytes.get(), 0);
    assert_eq!(tel.forwarder.dropped.total(), 0);
    assert!(intake.series().is_empty());

    intake.clear_failure();
    let tel2 = Arc::new(Telemetry::default());
    let fwd2 = Forwarder::start(cfg, tel2.clone()).unwrap();
    assert!(
        intake
            .wait_for(|r| r.series.len() >= 7, Duration::from_secs(10))
            .await
    );
    eventually("all acknowledged", Duration::from_secs(5), || {
        tel2.forwarder.success.get() == 7
    })
    .await;
    fwd2.shutdown(Duration::from_secs(1)).await;
    assert_eq!(received_names(&intake), expected_names("persist", 7));
    assert_eq!(files_in(dir.path()), 0);
    assert_eq!(tel2.forwarder.queued_on_disk_bytes.get(), 0);
}

#[tokio::test]
async fn memory_cap_spills_to_disk_and_disk_cap_drops_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let intake = Intake::start().await;
    intake.set_failure(Failure::Down, Times::Always);
    let batch = payloads("spill", 10);
    let size = batch[0].body.len();
    assert!(
        batch.iter().all(|p| p.body.len() == size),
        "payloads of one size make the counts exact"
    );
    let cfg = ForwarderConfig {
        max_memory_bytes: 1, // everything goes to disk
        storage_path: Some(dir.path().to_path_buf()),
        storage_max_bytes: (3 * size) as u64,
        ..config(&intake)
    };
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(cfg, tel.clone()).unwrap();
    fwd.submit(batch);
    // Only the 3 newest fit on disk; the 7 oldest were dropped as disk_full.
    assert_eq!(tel.forwarder.dropped.snapshot().get("disk_full"), Some(&7));
    assert_eq!(tel.forwarder.queued_on_disk_bytes.get(), (3 * size) as i64);
    assert_eq!(tel.forwarder.queued_transactions.get(), 3);
    assert_eq!(files_in(dir.path()), 3);
    intake.clear_failure();
    assert!(
        intake
            .wait_for(|r| r.series.len() >= 3, Duration::from_secs(10))
            .await
    );
    eventually("all acknowledged", Duration::from_secs(5), || {
        tel.forwarder.success.get() == 3
    })
    .await;
    fwd.shutdown(Duration::from_secs(1)).await;
    assert_eq!(
        received_names(&intake),
        vec!["spill.007", "spill.008", "spill.009"]
    );
    assert_eq!(files_in(dir.path()), 0);
}

#[tokio::test]
async fn without_storage_memory_cap_drops_oldest() {
    let intake = Intake::start().await;
    intake.set_failure(Failure::Down, Times::Always);
    let batch = payloads("mem", 10);
    let size = batch[0].body.len();
    assert!(batch.iter().all(|p| p.body.len() == size));
    let cfg = ForwarderConfig {
        max_memory_bytes: 2 * size + size / 2,
        ..config(&intake)
    };
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(cfg, tel.clone()).unwrap();
    fwd.submit(batch);
    assert_eq!(
        tel.forwarder.dropped.snapshot().get("retry_queue_full"),
        Some(&8)
    );
    assert_eq!(tel.forwarder.queued_bytes.get(), (2 * size) as i64);
    intake.clear_failure();
    assert!(
        intake
            .wait_for(|r| r.series.len() >= 2, Duration::from_secs(10))
            .await
    );
    eventually("all acknowledged", Duration::from_secs(5), || {
        tel.forwarder.success.get() == 2
    })
    .await;
    // Without storage, what is left at shutdown is counted as dropped.
    intake.set_failure(Failure::Down, Times::Always);
    fwd.submit(vec![payload("late")]);
    fwd.shutdown(Duration::from_millis(200)).await;
    assert_eq!(tel.forwarder.dropped.snapshot().get("shutdown"), Some(&1));
    assert_eq!(received_names(&intake), vec!["mem.008", "mem.009"]);
}

#[tokio::test]
async fn events_checks_and_sketches_go_to_their_endpoints() {
    use kelpie_agent::encode::{encode_event, encode_service_checks, SketchEncoder};
    use kelpie_agent::model::{Event, ServiceCheck, SketchPoint, SketchSeries};
    let intake = Intake::start().await;
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(config(&intake), tel.clone()).unwrap();
    let cfg = EncodeConfig {
        hostname: "h".into(),
        host_tags: vec!["env:test".into()],
        use_protobuf: true,
    };
    let ev = Event {
        title: "deploy".into(),
        text: "rev 42".into(),
        ..Default::default()
    };
    let sc = ServiceCheck {
        check: "app.up".into(),
        status: 0,
        ..Default::default()
    };
    let sk = SketchSeries {
        name: "lat".into(),
        tags: TagSet::default(),
        host: "".into(),
        interval: 10,
        points: vec![SketchPoint {
            ts: 10,
            cnt: 2,
            min: 1.0,
            max: 2.0,
            avg: 1.5,
            sum: 3.0,
            k: vec![-3, 4],
            n: vec![1, 1],
        }],
    };
    let mut all = vec![encode_event(&cfg, &ev).unwrap()];
    all.extend(encode_service_checks(&cfg, &[sc]).unwrap());
    let mut sketches = SketchEncoder::new(&cfg);
    sketches.push(sk.as_ref());
    all.extend(sketches.finish().unwrap().payloads);
    fwd.submit(all);
    assert!(
        intake
            .wait_for(
                |r| r.events.len() == 1 && r.service_checks.len() == 1 && r.sketches.len() == 1,
                Duration::from_secs(10)
            )
            .await
    );
    fwd.shutdown(Duration::from_secs(1)).await;
    let ev = &intake.events()[0];
    assert_eq!(ev["title"], "deploy");
    assert_eq!(ev["host"], "h");
    assert_eq!(ev["tags"], serde_json::json!(["env:test"]));
    assert_eq!(intake.service_checks()[0]["host_name"], "h");
    let sk = &intake.sketches()[0];
    assert_eq!(sk.host, "h");
    assert_eq!(sk.points[0].k, vec![-3, 4]);
    assert_eq!(sk.points[0].n, vec![1, 1]);
    assert_eq!(tel.forwarder.success.get(), 3);
}

#[tokio::test]
async fn json_series_and_multipart_profiles_are_accepted() {
    use kelpie_agent::encode::Endpoint;
    let intake = Intake::start().await;
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(config(&intake), tel.clone()).unwrap();
    let cfg = EncodeConfig {
        hostname: "h".into(),
        host_tags: vec![],
        use_protobuf: false,
    };
    let s = Series {
        name: "json.metric".into(),
        tags: TagSet::default(),
        host: "".into(),
        kind: SeriesKind::Rate,
        interval: 10,
        points: vec![(1_700_000_000, 0.5)],
    };
    let mut enc = SeriesEncoder::new(&cfg);
    enc.push(s.as_ref());
    let mut all = enc.finish().unwrap().payloads;
    // A profile as the profiler hands it over: a multipart body built beforehand.
    const BOUNDARY: &str = "kelpie-test-boundary";
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"event\"; filename=\"event.json\"\r\n\
         Content-Type: application/json\r\n\r\n{{\"attachments\":[\"cpu.pprof\"],\"family\":\"rust\",\"version\":\"4\"}}\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"cpu.pprof\"; filename=\"cpu.pprof\"\r\n\
         Content-Type: application/octet-stream\r\n\r\nPPROF\r\n--{BOUNDARY}--\r\n"
    );
    all.push(Payload {
        endpoint: Endpoint::Profile,
        uncompressed_len: body.len(),
        body: body.into(),
        content_type: "multipart/form-data; boundary=kelpie-test-boundary".into(),
        content_encoding: None,
        items: 1,
    });
    fwd.submit(all);
    assert!(
        intake
            .wait_for(
                |r| r.series.len() == 1 && r.profiles.len() == 1,
                Duration::from_secs(10)
            )
            .await
    );
    fwd.shutdown(Duration::from_secs(1)).await;
    let s = &intake.series()[0];
    assert_eq!(s.format, "json");
    assert_eq!(s.name, "json.metric");
    assert_eq!(s.kind, 2);
    assert_eq!(s.points, vec![(1_700_000_000, 0.5)]);
    let p = &intake.profiles()[0];
    assert_eq!(p.event["family"], "rust");
    assert_eq!(p.parts[1].name, "cpu.pprof");
    assert_eq!(p.parts[1].len, 5);
    assert_eq!(tel.forwarder.success.get(), 2);
}

#[tokio::test]
async fn mixed_failures_deliver_everything_exactly_once() {
    let intake = Intake::start().await;
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(config(&intake), tel.clone()).unwrap();
    let phases = [
        (Failure::Status(500), Times::Next(3)),
        (Failure::Reset, Times::Next(2)),
        (Failure::Status(429), Times::Next(4)),
        (Failure::Stall(Duration::from_millis(300)), Times::Next(1)),
        (Failure::Down, Times::For(Duration::from_millis(300))),
        (Failure::Status(503), Times::Next(2)),
    ];
    for (i, (failure, times)) in phases.into_iter().enumerate() {
        intake.set_failure(failure, times);
        fwd.submit(payloads(&format!("mix.{i}"), 8));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        intake
            .wait_for(|r| r.series.len() >= 48, Duration::from_secs(15))
            .await
    );
    eventually("all acknowledged", Duration::from_secs(5), || {
        tel.forwarder.success.get() == 48
    })
    .await;
    fwd.shutdown(Duration::from_secs(1)).await;
    let mut want: Vec<String> = (0..6)
        .flat_map(|i| expected_names(&format!("mix.{i}"), 8))
        .collect();
    want.sort();
    assert_eq!(received_names(&intake), want);
    assert!(tel.forwarder.retried.get() > 0);
    assert_eq!(tel.forwarder.dropped.total(), 0);
    // Every request either failed (and was retried) or delivered one payload.
    let accepted = intake.requests().iter().filter(|r| r.status == 202).count();
    assert_eq!(accepted, 48);
}

#[tokio::test]
async fn a_failing_intake_gets_spaced_probes_not_a_storm() {
    let intake = Intake::start().await;
    intake.set_failure(Failure::Status(503), Times::Always);
    let tel = Arc::new(Telemetry::default());
    let cfg = ForwarderConfig {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        ..config(&intake)
    };
    let fwd = Forwarder::start(cfg, tel.clone()).unwrap();
    fwd.submit(payloads("storm", 50));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // 50 payloads with their own backoff would make well over 100 requests in 1.5 s; spaced probes make ~10.
    let during = intake.requests().len();
    assert!(
        during >= 3,
        "the intake should have been probed, got {during} requests"
    );
    assert!(
        during < 25,
        "expected spaced probes during the outage, got {during} requests"
    );
    intake.clear_failure();
    assert!(
        intake
            .wait_for(|r| r.series.len() >= 50, Duration::from_secs(10))
            .await
    );
    fwd.shutdown(Duration::from_secs(1)).await;
    assert_eq!(received_names(&intake), expected_names("storm", 50));
}

/// After an outage, the backlog drains oldest first, but every other request is the newest payload never
/// tried: a flush made during the drain does not wait behind the whole backlog.
#[tokio::test]
async fn a_draining_backlog_does_not_starve_the_current_flush() {
    let intake = Intake::start().await;
    intake.set_failure(Failure::Down, Times::Always);
    let tel = Arc::new(Telemetry::default());
    let fwd = Forwarder::start(config(&intake), tel.clone()).unwrap();
    fwd.submit(payloads("backlog", 30));
    eventually("retries while down", Duration::from_secs(5), || {
        tel.forwarder.retried.get() >= 2
    })
    .await;
    fwd.submit(vec![payload("current.000")]);
    intake.clear_failure();
    assert!(
        intake
            .wait_for(|r| r.series.len() >= 31, Duration::from_secs(10))
            .await
    );
    let order: Vec<String> = intake.series().into_iter().map(|s| s.name).collect();
    let at = order.iter().position(|n| n == "current.000").unwrap();
    // Oldest first alone would send it last (30th or so, 4 at a time).
    assert!(at < 4, "the current payload went out {at}th: {order:?}");
    fwd.shutdown(Duration::from_secs(1)).await;
    assert_eq!(tel.forwarder.dropped.total(), 0);
}
