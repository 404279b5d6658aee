//! The status document and its text.

use super::*;
use crate::telemetry::DropReason;
use serde_json::json;

#[test]
fn colour_only_when_asked_and_problems_stand_out() {
    let doc = json!({
        "version": "1", "hostname": "h", "mode": "forwarding", "dd_url": "http://127.0.0.1:9",
        "healthy": false,
        "forwarder": {"last_error": "connection refused"},
        "collectors": {"docker": {"status": "error", "error": "permission denied on /var/run/docker.sock"}},
        "recent_events": [], "recent_service_checks": [
            {"timestamp": 0, "check": "db", "status_text": "critical", "message": ""}],
    });
    let plain = render(&doc, false);
    assert!(!plain.contains('\x1b'), "{plain}");
    assert!(plain.contains("Intake: http://127.0.0.1:9"), "{plain}");
    assert!(
        plain.contains("1970-01-01T00:00:00Z db critical"),
        "{plain}"
    );
    let coloured = render(&doc, true);
    assert!(
        coloured.contains("Healthy: \x1b[1;31mfalse\x1b[0m"),
        "{coloured}"
    );
    assert!(
        coloured.contains("docker: \x1b[1;31merror\x1b[0m"),
        "{coloured}"
    );
    assert_eq!(render_text(&doc), plain);
}

fn state(telemetry: Arc<Telemetry>) -> StatusState {
    StatusState {
        version: "test",
        pprof: false,
        hostname: "h".into(),
        mode: "forwarding",
        site: "datadoghq.com".into(),
        intake_url: String::new(),
        started: Instant::now(),
        flush_interval: Duration::from_secs(10),
        telemetry,
        history: Arc::new(Mutex::new(History::new(0))),
        recent: Mutex::new(Default::default()),
        top: Mutex::new(Default::default()),
        collectors: Mutex::new(Default::default()),
        origin_settings: OriginSettings {
            uds: false,
            client_field: false,
            cardinality: TagCardinality::Low,
        },
        origin: Arc::new(RwLock::new(None)),
    }
}

#[test]
fn every_drop_reason_shows_in_the_json_and_the_text_under_its_section() {
    let telemetry = Arc::new(Telemetry::default());
    for (i, &r) in DropReason::ALL.iter().enumerate() {
        telemetry.count_drop(r, 1000 + i as u64);
    }
    let doc = state(telemetry).to_json();
    let text = render_text(&doc);
    for (i, &r) in DropReason::ALL.iter().enumerate() {
        let section = match r.section() {
            DropSection::Dogstatsd => &doc["dogstatsd"]["dropped"],
            DropSection::Encode => &doc["encode"]["dropped"],
            DropSection::Forwarder => &doc["forwarder"]["transactions"]["dropped"],
        };
        assert_eq!(section[r.key()], 1000 + i as u64, "{r}: {doc}");
        let shown = format!("{}: {}", r.key(), 1000 + i);
        assert!(text.contains(&shown), "{shown} not in\n{text}");
    }
}

#[test]
fn the_drops_looked_for_first_show_at_zero_and_no_others() {
    let doc = state(Arc::new(Telemetry::default())).to_json();
    assert_eq!(
        doc["dogstatsd"]["dropped"],
        json!({"kernel": 0, "queue_full": 0})
    );
    assert_eq!(doc["forwarder"]["transactions"]["dropped"], json!({}));
    assert_eq!(doc["encode"]["dropped"], json!({}));
}

#[test]
fn every_stat_shows_in_the_json_at_its_path_and_in_the_text() {
    let telemetry = Arc::new(Telemetry::default());
    let t = &telemetry;
    t.flush.flushes.add(11);
    t.dogstatsd.packets_udp.add(12);
    t.dogstatsd.packets_uds_dgram.add(13);
    t.dogstatsd.packets_uds_stream.add(14);
    t.dogstatsd.bytes.add(15);
    t.dogstatsd.metric_samples.add(16);
    t.dogstatsd.context_limit.set(17);
    t.dogstatsd.queue_max_bytes.set(18);
    t.forwarder.retried.add(19);
    t.forwarder.queued_on_disk_bytes.set(20);
    let doc = state(telemetry.clone()).to_json();
    let text = render_text(&doc);
    for s in stats::STATS {
        let v = (s.read)(&telemetry);
        assert_eq!(stats::value_at(&doc, s.path), v, "{:?}", s.path);
        if let Some(t) = s.text {
            assert!(
                text.contains(&format!("{}: ", t.title)),
                "{:?} in\n{text}",
                s.path
            );
        }
    }
    for line in [
        "Flushes: 11",
        "Udp Packets: 12",
        "Uds Datagram Packets: 13",
        "Uds Stream Packets: 14",
        "Received: 15 bytes",
        "Metric Samples: 16",
        "Contexts: 0, limit 17",
        "Queue: 0 bytes held, max 18 bytes, 0 workers",
        "Transactions: Success 0, Retried 19",
        "Queued: 0 transactions, 0 bytes in memory, 20 bytes on disk",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
}
