//! The DogStatsD listeners over real sockets: UDP, Unix datagram and Unix stream, with the parser behind them
//! and a real client (cadence).

use kelpie_agent::dogstatsd::{
    for_each_line, DatagramSink, LineArena, ListenError, ListenerConfig, Listeners, Received,
    Transport,
};
use kelpie_agent::model::{MetricKind, Parsed};
use kelpie_agent::telemetry::Telemetry;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// One payload as the sink saw it.
#[derive(Clone, Debug, PartialEq)]
struct Got {
    payload: Vec<u8>,
    transport: Transport,
    pid: Option<i32>,
}

/// Records every payload; optionally parses it like the agent's glue will, recording one string per item.
#[derive(Default)]
struct Collect {
    telemetry: Arc<Telemetry>,
    state: Mutex<(Vec<Got>, Vec<String>)>,
    cv: Condvar,
}

impl DatagramSink for Collect {
    fn receive(&self, batch: &[Received<'_>]) {
        assert!(
            !batch.is_empty() && batch.len() <= 32,
            "batch of {}",
            batch.len()
        );
        let mut state = self.state.lock().unwrap();
        for r in batch {
            state.0.push(Got {
                payload: r.payload.to_vec(),
                transport: r.transport,
                pid: r.pid,
            });
            for_each_line(r.payload, &LineArena::new(), &self.telemetry, |p| {
                state.1.push(describe(&p))
            });
        }
        self.cv.notify_all();
    }
}

fn describe(p: &Parsed<'_>) -> String {
    match p {
        Parsed::Metric(m) => {
            let kind = match m.kind {
                MetricKind::Counter => "c",
                MetricKind::Gauge => "g",
                MetricKind::Histogram => "h",
                MetricKind::Distribution => "d",
                MetricKind::Timer => "ms",
                MetricKind::Set => "s",
            };
            let mut s = format!("{}:{}|{}", m.name, m.values, kind);
            if m.sample_rate != 1.0 {
                s += &format!("|@{}", m.sample_rate);
            }
            if !m.tags.is_empty() {
                s += &format!("|#{}", m.tags);
            }
            s
        }
        Parsed::Event(e) => format!("event {}", e.title),
        Parsed::ServiceCheck(c) => format!("check {} {}", c.check, c.status),
    }
}

impl Collect {
    fn new(telemetry: &Arc<Telemetry>) -> Arc<Collect> {
        Arc::new(Collect {
            telemetry: telemetry.clone(),
            ..Collect::default()
        })
    }

    /// Waits until `pred` holds for (payloads, parsed items); panics after WAIT.
    fn wait(
        &self,
        what: &str,
        pred: impl Fn(&[Got], &[String]) -> bool,
    ) -> (Vec<Got>, Vec<String>) {
        let deadline = Instant::now() + WAIT;
        let mut state = self.state.lock().unwrap();
        while !pred(&state.0, &state.1) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; have {:?}",
                state
            );
            state = self.cv.wait_timeout(state, left).unwrap().0;
        }
        state.clone()
    }

    fn payloads(&self, n: usize) -> Vec<Got> {
        self.wait(&format!("{n} payloads"), |g, _| g.len() >= n).0
    }

    fn items(&self, n: usize) -> Vec<String> {
        self.wait(&format!("{n} parsed items"), |_, i| i.len() >= n)
            .1
    }
}

fn udp_only() -> ListenerConfig {
    ListenerConfig {
        udp_port: 0,
        bind_host: "127.0.0.1".into(),
        ..ListenerConfig::default()
    }
}

fn start(cfg: ListenerConfig) -> (Listeners, Arc<Telemetry>, Arc<Collect>) {
    let telemetry = Arc::new(Telemetry::default());
    let sink = Collect::new(&telemetry);
    let listeners =
        Listeners::start(cfg, telemetry.clone(), sink.clone()).expect("listeners start");
    (listeners, telemetry, sink)
}

fn udp_addr(l: &Listeners) -> SocketAddr {
    l.udp_local_addr().expect("UDP is on")
}

/// `udp_port: 0` means "UDP off" (as `dogstatsd_port: 0` does for the Datadog Agent), so tests ask the
/// kernel for a free port first.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn udp_cfg() -> ListenerConfig {
    ListenerConfig {
        udp_port: free_udp_port(),
        ..udp_only()
    }
}

#[test]
fn udp_datagrams_reach_the_sink_through_every_reuseport_socket() {
    let (listeners, telemetry, sink) = start(ListenerConfig {
        udp_sockets: 3,
        ..udp_cfg()
    });
    let addr = udp_addr(&listeners);
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    // Several client sockets (the kernel spreads them over the REUSEPORT sockets by source port).
    let mut sent = Vec::new();
    for i in 0..12 {
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let payload = format!("m{i}:{i}|c|#client:{i}\n");
        client.send_to(payload.as_bytes(), addr).unwrap();
        sent.push(payload.into_bytes());
    }
    let got = sink.payloads(12);
    let mut got_payloads: Vec<Vec<u8>> = got.iter().map(|g| g.payload.clone()).collect();
    got_payloads.sort();
    sent.sort();
    assert_eq!(got_payloads, sent);
    assert!(got
        .iter()
        .all(|g| g.transport == Transport::Udp && g.pid.is_none()));
    let d = &telemetry.dogstatsd;
    assert_eq!(d.packets_udp.get(), 12);
    assert_eq!(
        d.bytes.get(),
        sent.iter().map(|p| p.len() as u64).sum::<u64>()
    );
    assert_eq!(d.metric_samples.get(), 12);
    listeners.shutdown();
}

#[test]
fn udp_many_datagrams_from_one_client_arrive_in_batches() {
    let (listeners, telemetry, sink) = start(ListenerConfig {
        udp_sockets: 1,
        so_rcvbuf: 1 << 20,
        ..udp_cfg()
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.connect(udp_addr(&listeners)).unwrap();
    for i in 0..200 {
        client.send(format!("burst:{i}|h").as_bytes()).unwrap();
    }
    let items = sink.items(200);
    let mut values: Vec<u32> = items
        .iter()
        .map(|s| {
            s.trim_start_matches("burst:")
                .trim_end_matches("|h")
                .parse()
                .unwrap()
        })
        .collect();
    values.sort();
    assert_eq!(values, (0..200).collect::<Vec<_>>());
    assert_eq!(telemetry.dogstatsd.packets_udp.get(), 200);
}

#[test]
fn udp_rcvbuf_requested_and_granted_are_reported() {
    let (_l, telemetry, _) = start(ListenerConfig {
        so_rcvbuf: 262_144,
        udp_sockets: 1,
        ..udp_cfg()
    });
    let d = &telemetry.dogstatsd;
    assert_eq!(d.udp_rcvbuf_requested.get(), 262_144);
    // Linux reports twice the requested size (bookkeeping overhead), capped by rmem_max without
    // CAP_NET_ADMIN; either way something was granted.
    assert!(d.udp_rcvbuf_granted.get() > 0);

    let (_l, telemetry, _) = start(ListenerConfig {
        udp_sockets: 1,
        ..udp_cfg()
    });
    let d = &telemetry.dogstatsd;
    assert_eq!(
        d.udp_rcvbuf_requested.get(),
        kelpie_agent::dogstatsd::listen::DEFAULT_UDP_RCVBUF as i64,
        "unset, a larger buffer than the kernel's default is asked for"
    );
    let rmem_max: i64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let granted = d.udp_rcvbuf_granted.get();
    assert!(
        granted >= rmem_max.min(kelpie_agent::dogstatsd::listen::DEFAULT_UDP_RCVBUF as i64),
        "granted {granted}: at least rmem_max ({rmem_max}) or what was asked"
    );
}

/// One port, one agent: a second set of listeners on a port the first one holds (with SO_REUSEPORT, which
/// would let it join and take half of the traffic) is refused with a clear error, and the first keeps all
/// the traffic.
#[test]
fn a_second_listener_on_a_port_in_use_is_refused() {
    let port = free_udp_port();
    let (first, _, sink) = start(ListenerConfig {
        udp_port: port,
        ..udp_only()
    });
    let err = Listeners::start(
        ListenerConfig {
            udp_port: port,
            ..udp_only()
        },
        Arc::new(Telemetry::default()),
        Collect::new(&Arc::new(Telemetry::default())),
    )
    .err()
    .expect("the port is in use");
    assert!(matches!(err, ListenError::PortInUse { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("127.0.0.1:{port}")) && text.contains("already in use"),
        "{text}"
    );
    assert!(!text.contains('\n'));
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..20 {
        client
            .send_to(format!("m:{i}|c").as_bytes(), udp_addr(&first))
            .unwrap();
    }
    assert_eq!(sink.payloads(20).len(), 20);
}

/// Records nothing for a while on its first batch, so the socket's receive buffer overflows.
struct Stall {
    inner: Arc<Collect>,
    stalled: std::sync::atomic::AtomicBool,
}

impl DatagramSink for Stall {
    fn receive(&self, batch: &[Received<'_>]) {
        if !self.stalled.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(300));
        }
        self.inner.receive(batch);
    }
}

/// The kernel's drops on a UDP socket are counted as `kernel`: every datagram sent is either received or
/// counted, exactly.
#[test]
fn kernel_drops_are_counted_exactly() {
    let telemetry = Arc::new(Telemetry::default());
    let inner = Collect::new(&telemetry);
    let sink = Arc::new(Stall {
        inner: inner.clone(),
        stalled: false.into(),
    });
    let listeners = Listeners::start(
        ListenerConfig {
            // The smallest buffer the kernel allows: a couple of datagrams.
            so_rcvbuf: 1,
            udp_sockets: 1,
            ..udp_cfg()
        },
        telemetry.clone(),
        sink,
    )
    .unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let payload = vec![b'x'; 4000];
    let sent = 200;
    for _ in 0..sent {
        client.send_to(&payload, udp_addr(&listeners)).unwrap();
    }
    // The reader stalls on the first datagram while the rest arrive; then one more carries the counter.
    std::thread::sleep(Duration::from_millis(500));
    client.send_to(b"last:1|c", udp_addr(&listeners)).unwrap();
    let got = inner.wait("the last datagram", |g, _| {
        g.last().is_some_and(|g| g.payload == b"last:1|c")
    });
    let received = got.0.len() as u64 - 1;
    let kernel = telemetry.dogstatsd.dropped.snapshot()["kernel"];
    assert!(kernel > 0, "nothing was dropped: received {received}");
    assert_eq!(
        received + kernel,
        sent,
        "received {received}, kernel drops {kernel}"
    );
    assert_eq!(telemetry.dogstatsd.packets_udp.get(), received + 1);
}

#[test]
fn udp_port_zero_turns_udp_off() {
    let (listeners, _, _) = start(ListenerConfig {
        udp_port: 0,
        ..ListenerConfig::default()
    });
    assert_eq!(listeners.udp_local_addr(), None);
}

#[test]
fn malformed_line_in_the_middle_of_a_datagram_is_counted_and_the_rest_delivered() {
    let (listeners, telemetry, sink) = start(ListenerConfig {
        udp_sockets: 1,
        ..udp_cfg()
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .send_to(
            b"first:1|c\nsecond:oops|c\nthird:1:2:3|h|#a:b\r\n",
            udp_addr(&listeners),
        )
        .unwrap();
    let items = sink.items(2);
    assert_eq!(items, ["first:1|c", "third:1:2:3|h|#a:b"]);
    let d = &telemetry.dogstatsd;
    assert_eq!(d.parse_errors.get(), 1);
    assert_eq!(d.metric_samples.get(), 4);
}

#[test]
fn udp_datagram_larger_than_the_buffer_keeps_its_complete_lines() {
    let (listeners, telemetry, sink) = start(ListenerConfig {
        udp_sockets: 1,
        buffer_size: 16,
        ..udp_cfg()
    });
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .send_to(b"a:1|c\nb:2|c\nc:123456789|c\n", udp_addr(&listeners))
        .unwrap();
    let got = sink.payloads(1);
    assert_eq!(got[0].payload, b"a:1|c\nb:2|c");
    assert_eq!(
        telemetry
            .dogstatsd
            .dropped
            .snapshot()
            .get("datagram_truncated"),
        Some(&1)
    );
}

#[test]
fn udp_bind_error_names_the_address() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let err = Listeners::start(
        ListenerConfig {
            udp_port: port,
            ..udp_only()
        },
        Arc::new(Telemetry::default()),
        Collect::new(&Arc::new(Telemetry::default())),
    )
    .err()
    .expect("the port is taken");
    assert!(matches!(err, ListenError::PortInUse { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains('\n'));
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn uds_dgram_delivers_payloads_with_the_sender_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    let (listeners, telemetry, sink) = start(ListenerConfig {
        udp_port: 0,
        socket_path: Some(path.clone()),
        origin_detection: true,
        ..ListenerConfig::default()
    });
    assert_eq!(mode(&path), 0o722);
    let client = UnixDatagram::unbound().unwrap();
    client.send_to(b"uds:1|c|#a", &path).unwrap();
    client.send_to(b"uds:2|g\n_sc|db|0\n", &path).unwrap();
    let got = sink.payloads(2);
    let me = std::process::id() as i32;
    assert_eq!(
        got,
        [
            Got {
                payload: b"uds:1|c|#a".to_vec(),
                transport: Transport::UdsDgram,
                pid: Some(me)
            },
            Got {
                payload: b"uds:2|g\n_sc|db|0\n".to_vec(),
                transport: Transport::UdsDgram,
                pid: Some(me)
            },
        ]
    );
    assert_eq!(sink.items(3), ["uds:1|c|#a", "uds:2|g", "check db 0"]);
    assert_eq!(telemetry.dogstatsd.packets_uds_dgram.get(), 2);
    assert_eq!(telemetry.dogstatsd.service_checks.get(), 1);
    listeners.shutdown();
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[test]
fn uds_dgram_without_origin_detection_has_no_pid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    let (_l, _, sink) = start(ListenerConfig {
        udp_port: 0,
        socket_path: Some(path.clone()),
        ..ListenerConfig::default()
    });
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"x:1|c", &path)
        .unwrap();
    assert_eq!(sink.payloads(1)[0].pid, None);
}

#[test]
fn uds_stale_socket_is_replaced_but_a_live_one_is_not_stolen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd.socket");
    // A live socket: someone is bound to it.
    let live = UnixDatagram::bind(&path).unwrap();
    let cfg = ListenerConfig {
        udp_port: 0,
        socket_path: Some(path.clone()),
        ..ListenerConfig::default()
    };
    let err = Listeners::start(
        cfg.clone(),
        Arc::new(Telemetry::default()),
        Collect::new(&Arc::new(Telemetry::default())),
    )
    .err()
    .expect("in use");
    assert!(matches!(err, ListenError::InUse { .. }), "{err}");
    // Once its owner is gone the file is stale and gets replaced.
    drop(live);
    assert!(path.exists());
    let (_l, _, sink) = start(cfg);
    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"x:1|c", &path)
        .unwrap();
    sink.payloads(1);
}

#[test]
fn uds_path_errors_are_one_sentence_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope").join("dsd.socket");
    let regular = dir.path().join("file");
    std::fs::write(&regular, b"keep me").unwrap();
    for (cfg, want) in [
        (
            ListenerConfig {
                udp_port: 0,
                socket_path: Some(missing.clone()),
                ..ListenerConfig::default()
            },
            "its directory does not exist",
        ),
        (
            ListenerConfig {
                udp_port: 0,
                stream_socket_path: Some(regular.clone()),
                ..ListenerConfig::default()
            },
            "not a socket",
        ),
    ] {
        let err = Listeners::start(
            cfg,
            Arc::new(Telemetry::default()),
            Collect::new(&Arc::new(Telemetry::default())),
        )
        .err()
        .expect("start fails");
        let text = err.to_string();
        assert!(text.contains(want), "{text}");
        assert!(text.contains(dir.path().to_str().unwrap()), "{text}");
    }
    assert_eq!(
        std::fs::read(&regular).unwrap(),
        b"keep me",
        "a regular file is never deleted"
    );
}

#[test]
fn failed_start_cleans_up_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let dgram = dir.path().join("dsd.socket");
    let err = Listeners::start(
        ListenerConfig {
            udp_port: free_udp_port(),
            bind_host: "127.0.0.1".into(),
            socket_path: Some(dgram.clone()),
            stream_socket_path: Some(dir.path().join("missing-dir").join("s")),
            ..ListenerConfig::default()
        },
        Arc::new(Telemetry::default()),
        Collect::new(&Arc::new(Telemetry::default())),
    );
    assert!(matches!(err, Err(ListenError::MissingDirectory { .. })));
    assert!(
        !dgram.exists(),
        "the datagram socket file was removed again"
    );
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_le_bytes().to_vec();
    f.extend_from_slice(payload);
    f
}

fn stream_cfg(path: &Path) -> ListenerConfig {
    ListenerConfig {
        udp_port: 0,
        stream_socket_path: Some(path.to_owned()),
        origin_detection: true,
        ..ListenerConfig::default()
    }
}

#[test]
fn uds_stream_multi_frame_write_and_frame_split_across_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd-stream.socket");
    let (listeners, telemetry, sink) = start(stream_cfg(&path));
    assert_eq!(mode(&path), 0o722);
    let mut conn = UnixStream::connect(&path).unwrap();
    // Three frames in one write.
    let mut bytes = frame(b"s1:1|c");
    bytes.extend(frame(b"s2:2|g\ns3:3|h"));
    bytes.extend(frame(b"_e{2,2}:ev|tx"));
    conn.write_all(&bytes).unwrap();
    sink.payloads(3);
    // One frame split inside its length header and inside its payload.
    let split = frame(b"s4:4:5|d|#k:v");
    for part in [&split[..2], &split[2..7], &split[7..]] {
        conn.write_all(part).unwrap();
        conn.flush().unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    let got = sink.payloads(4);
    let me = std::process::id() as i32;
    let payloads: Vec<&[u8]> = got.iter().map(|g| g.payload.as_slice()).collect();
    assert_eq!(
        payloads,
        [
            &b"s1:1|c"[..],
            b"s2:2|g\ns3:3|h",
            b"_e{2,2}:ev|tx",
            b"s4:4:5|d|#k:v"
        ]
    );
    assert!(got
        .iter()
        .all(|g| g.transport == Transport::UdsStream && g.pid == Some(me)));
    assert_eq!(
        sink.items(5),
        ["s1:1|c", "s2:2|g", "s3:3|h", "event ev", "s4:4:5|d|#k:v"]
    );
    assert_eq!(telemetry.dogstatsd.packets_uds_stream.get(), 4);
    assert_eq!(telemetry.dogstatsd.metric_samples.get(), 5);
    drop(conn);
    listeners.shutdown();
    assert!(!path.exists());
}

#[test]
fn uds_stream_frame_larger_than_the_buffer_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dsd-stream.socket");
    let (_l, telemetry, sink) = start(ListenerConfig {
        buffer_size: 64,
        ..stream_cfg(&path)
    });
    let mut conn = UnixStream::connect(&path).unwrap();
    let mut bytes = frame(b"ok:1|c");
    bytes.extend(frame(&[b'x'; 65]));
    bytes.extend(frame(b"lost:1|c"));
    conn.write_all(&bytes).unwrap();
    assert_eq!(sink.payloads(1)[0].payload, b"ok:1|c");
    // The agent closed its end: reading gives EOF.
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 1];
    assert_eq!(std::io::Read::read(&mut conn, &mut buf).unwrap(), 0);
    assert_eq!(
        telemetry
            .dogstatsd
            .dropped
            .snapshot()
            .get("uds_stream_frame_too_large"),
        Some(&1)
    );
    // Other connections still work; the frame after the bad one was not delivered.
    let mut other = UnixStream::connect(&path).unwrap();
    other.write_all(&frame(b"next:1|c")).unwrap();
    let got = sink.payloads(2);
    assert_eq!(got[1].payload, b"next:1|c");
    assert_eq!(got.len(), 2);
}

#[test]
fn shutdown_stops_every_reader_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let dgram = dir.path().join("d.socket");
    let stream = dir.path().join("s.socket");
    let (listeners, _, _) = start(ListenerConfig {
        udp_port: free_udp_port(),
        bind_host: "127.0.0.1".into(),
        udp_sockets: 2,
        socket_path: Some(dgram.clone()),
        stream_socket_path: Some(stream.clone()),
        ..ListenerConfig::default()
    });
    // An idle open connection must not hold shutdown up.
    let _idle = UnixStream::connect(&stream).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    listeners.shutdown();
    // Generous bound: readers wake every 200 ms; this checks they do, not how fast the machine is.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!dgram.exists() && !stream.exists());
}

#[test]
fn cadence_clients_lines_parse_as_sent() {
    use cadence::prelude::*;
    use cadence::{BufferedUdpMetricSink, StatsdClient, UdpMetricSink};

    let (listeners, telemetry, sink) = start(ListenerConfig {
        udp_sockets: 1,
        ..udp_cfg()
    });
    let addr = udp_addr(&listeners);

    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = StatsdClient::from_sink("app", UdpMetricSink::from(addr, socket).unwrap());
    client
        .count_with_tags("requests", 3i64)
        .with_tag("env", "prod")
        .with_tag_value("canary")
        .send();
    client.gauge("queue.depth", 17u64).unwrap();
    client.time("db.query", 42u64).unwrap();
    client.histogram("payload.bytes", 512u64).unwrap();
    client.distribution("latency", 1.5f64).unwrap();
    client.set("users", 99i64).unwrap();
    let items = sink.items(6);
    assert_eq!(
        items,
        [
            "app.requests:3|c|#env:prod,canary",
            "app.queue.depth:17|g",
            "app.db.query:42|ms",
            "app.payload.bytes:512|h",
            "app.latency:1.5|d",
            "app.users:99|s",
        ]
    );

    // The buffered sink packs several lines per datagram, newline-separated.
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let buffered = BufferedUdpMetricSink::from(addr, socket).unwrap();
    let client = StatsdClient::from_sink("buf", buffered);
    for i in 0..5i64 {
        client
            .count_with_tags("hits", i)
            .with_tag("n", &i.to_string())
            .send();
    }
    client.flush().unwrap();
    let items = sink.items(11);
    assert_eq!(
        &items[6..],
        [
            "buf.hits:0|c|#n:0",
            "buf.hits:1|c|#n:1",
            "buf.hits:2|c|#n:2",
            "buf.hits:3|c|#n:3",
            "buf.hits:4|c|#n:4",
        ]
    );
    assert!(
        telemetry.dogstatsd.packets_udp.get() < 11,
        "buffered lines shared datagrams"
    );
    assert_eq!(telemetry.dogstatsd.parse_errors.get(), 0);
}
