//! The toolkit against real sockets bound by the test: what arrives is what a DogStatsD server would parse.

mod common;

use common::{parse_lines, tags, Line};
use kelpie_toolkit::{Builder, Target};
use std::net::UdpSocket;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Reads datagrams until `done` says so or 10 s pass.
fn collect(
    recv: impl Fn(&mut [u8]) -> std::io::Result<usize>,
    done: impl Fn(&[Line]) -> bool,
) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65536];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && !done(&lines) {
        match recv(&mut buf) {
            Ok(n) => lines.extend(parse_lines(&buf[..n])),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv failed: {e}"),
        }
    }
    lines
}

fn find<'a>(lines: &'a [Line], name: &str) -> Option<&'a Line> {
    lines.iter().find(|l| l.name == name)
}

fn emit_sample_metrics() {
    metrics::counter!("requests", "route" => "/users").increment(3);
    metrics::histogram!("latency").record(0.25);
    metrics::gauge!("inflight").set(7.0);
}

#[test]
fn udp_lines_carry_names_types_and_service_tags() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let (recorder, guard) = Builder::default()
        .target(Target::Udp {
            host: "127.0.0.1".into(),
            port,
        })
        .service("checkout")
        .env("staging")
        .version("1.4.2")
        .tag("team", "core")
        .runtime_metrics(None)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, emit_sample_metrics);
    guard.flush();
    let lines = collect(|b| server.recv(b), |l| l.len() >= 3);
    let base = [
        "service:checkout",
        "env:staging",
        "version:1.4.2",
        "team:core",
    ];

    let c = find(&lines, "requests").expect("counter arrived");
    assert_eq!((c.value.as_str(), c.kind.as_str()), ("3", "c"));
    let mut want = tags(&base);
    want.insert("route:/users".into());
    assert_eq!(c.tags, want);

    let h = find(&lines, "latency").expect("histogram arrived");
    assert_eq!((h.value.as_str(), h.kind.as_str()), ("0.25", "h"));
    assert_eq!(h.tags, tags(&base));

    let g = find(&lines, "inflight").expect("gauge arrived");
    assert_eq!((g.value.as_str(), g.kind.as_str()), ("7", "g"));
    assert_eq!(g.tags, tags(&base));
    assert_eq!(guard.stats().send_errors, 0);
}

#[test]
fn unix_datagram_lines_with_prefix_and_distributions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    let server = UnixDatagram::bind(&path).unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (recorder, guard) = Builder::default()
        .target(Target::Unix(path.clone()))
        .service("billing")
        .env("prod")
        .version("9")
        .prefix("app")
        .histograms_as_distributions(true)
        .runtime_metrics(None)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, emit_sample_metrics);
    guard.flush();
    let lines = collect(|b| server.recv(b), |l| l.len() >= 3);
    let base = tags(&["service:billing", "env:prod", "version:9"]);
    let c = find(&lines, "app.requests").expect("prefixed counter arrived");
    assert_eq!(c.kind, "c");
    assert!(
        c.tags.is_superset(&base) && c.tags.contains("route:/users"),
        "{:?}",
        c.tags
    );
    let d = find(&lines, "app.latency").expect("distribution arrived");
    assert_eq!((d.value.as_str(), d.kind.as_str()), ("0.25", "d"));
    assert_eq!(d.tags, base);
    assert_eq!(
        find(&lines, "app.inflight").map(|g| g.kind.as_str()),
        Some("g")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_metrics_arrive_with_tokio_numbers() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let (_recorder, guard) = Builder::default()
        .target(Target::Udp {
            host: "127.0.0.1".into(),
            port,
        })
        .service("rt")
        .env("test")
        .version("0.1")
        .runtime_metrics(Some(Duration::from_millis(100)))
        .build()
        .unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        collect(
            |b| server.recv(b),
            |l| {
                [
                    "runtime.rust.cpu.percent",
                    "runtime.rust.mem.rss",
                    "runtime.rust.tokio.workers",
                    "runtime.rust.fd_count",
                ]
                .iter()
                .all(|n| find(l, n).is_some())
            },
        )
    })
    .await
    .unwrap();
    drop(guard);
    let want_tags = tags(&["service:rt", "env:test", "version:0.1", "language:rust"]);
    for name in [
        "runtime.rust.cpu.percent",
        "runtime.rust.cpu.time.user",
        "runtime.rust.cpu.time.sys",
        "runtime.rust.mem.rss",
        "runtime.rust.mem.virtual",
        "runtime.rust.thread_count",
        "runtime.rust.fd_count",
        "runtime.rust.tokio.workers",
        "runtime.rust.tokio.alive_tasks",
        "runtime.rust.tokio.global_queue_depth",
    ] {
        let l = find(&lines, name).unwrap_or_else(|| panic!("{name} missing from {lines:?}"));
        assert_eq!(l.kind, "g", "{name}");
        assert_eq!(l.tags, want_tags, "{name}");
    }
    let rss: f64 = find(&lines, "runtime.rust.mem.rss")
        .unwrap()
        .value
        .parse()
        .unwrap();
    assert!(
        rss > 1_000_000.0,
        "a test process has more than 1 MB resident: {rss}"
    );
    assert_eq!(
        find(&lines, "runtime.rust.tokio.workers").unwrap().value,
        "2"
    );
}

#[test]
fn an_absent_agent_is_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let (recorder, guard) = Builder::default()
        .target(Target::Unix(dir.path().join("nobody-listens.socket")))
        .runtime_metrics(None)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        for i in 0..10 {
            metrics::counter!("c", "i" => i.to_string()).increment(1);
        }
    });
    guard.flush();
    assert!(guard.stats().send_errors >= 1, "{:?}", guard.stats());
}

#[test]
fn a_full_queue_drops_and_counts() {
    // A Unix socket nobody reads and a queue of one: the service's calls never block, and what does not fit
    // is counted.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slow.socket");
    let _server = UnixDatagram::bind(&path).unwrap();
    let (recorder, guard) = Builder::default()
        .target(Target::Unix(path))
        .queue_capacity(1)
        .runtime_metrics(None)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        for i in 0..20_000u64 {
            metrics::counter!("burst").increment(i);
        }
    });
    assert!(guard.stats().dropped_queue_full > 0, "{:?}", guard.stats());
}

#[test]
fn localhost_means_the_ipv4_loopback() {
    // The agent listens on 127.0.0.1 by default (bind_host localhost); "localhost" must reach it even where
    // the resolver lists ::1 first.
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let (recorder, guard) = Builder::default()
        .target(Target::Udp {
            host: "localhost".into(),
            port,
        })
        .runtime_metrics(None)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || metrics::gauge!("via.localhost").set(1.0));
    guard.flush();
    let lines = collect(|b| server.recv(b), |l| !l.is_empty());
    assert_eq!(
        find(&lines, "via.localhost").map(|l| l.kind.as_str()),
        Some("g")
    );
}
