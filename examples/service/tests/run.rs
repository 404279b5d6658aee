//! The example binary end to end: its points reach a DogStatsD socket with the service's tags, its CPU profile
//! reaches the profile endpoint, and SIGTERM stops it cleanly (exit 0). Every wait is bounded, so a slow machine
//! makes it fail with a message, never hang.

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// Kills the child if the test fails half-way.
struct Reaper(Child);
impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Accepts connections until one carries a whole HTTP request; answers 202 and sends the request text.
fn profile_endpoint(listener: TcpListener, tx: mpsc::Sender<String>) {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + LIMIT;
    while Instant::now() < deadline {
        let mut conn = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(_) => return,
        };
        conn.set_nonblocking(false).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 65536];
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&req);
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .and_then(|v| v.trim().parse().ok())
                    })
                    .unwrap_or(0);
                if req.len() >= end + 4 + len {
                    break;
                }
            }
        }
        let _ = conn
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = tx.send(String::from_utf8_lossy(&req).into_owned());
        return;
    }
}

#[test]
fn example_service_reports_metrics_and_a_profile_and_stops_on_sigterm() {
    let dsd = UdpSocket::bind("127.0.0.1:0").unwrap();
    dsd.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let agent = TcpListener::bind("127.0.0.1:0").unwrap();
    let agent_addr = agent.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || profile_endpoint(agent, tx));

    let child = Command::new(env!("CARGO_BIN_EXE_example-service"))
        .args(["--requests", "0", "--rate", "100", "--work", "50000"])
        .env(
            "DD_DOGSTATSD_URL",
            format!("udp://{}", dsd.local_addr().unwrap()),
        )
        .env("DD_TRACE_AGENT_URL", format!("http://{agent_addr}"))
        .env("DD_SERVICE", "example")
        .env("DD_ENV", "ci")
        .env("DD_VERSION", "7")
        .env("KELPIE_PROFILING_DURATION", "1s")
        .env_remove("DD_PROFILING_ENABLED")
        .spawn()
        .unwrap();
    let mut child = Reaper(child);

    let mut names = std::collections::BTreeSet::new();
    let mut tagged = false;
    let mut profile: Option<String> = None;
    let wanted = [
        "example.requests",
        "example.request.duration",
        "example.inflight",
        "runtime.rust.mem.rss",
    ];
    let deadline = Instant::now() + LIMIT;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        if let Ok(n) = dsd.recv(&mut buf) {
            for line in String::from_utf8_lossy(&buf[..n]).lines() {
                let name = line.split(':').next().unwrap_or("").to_string();
                if name == "example.requests" {
                    tagged |= line.contains("service:example")
                        && line.contains("env:ci")
                        && line.contains("version:7")
                        && line.contains("route:");
                }
                names.insert(name);
            }
        }
        if profile.is_none() {
            profile = rx.try_recv().ok();
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("example-service exited early: {status}");
        }
        if profile.is_some() && tagged && wanted.iter().all(|w| names.contains(*w)) {
            break;
        }
    }
    for want in wanted {
        assert!(names.contains(want), "{want} not in {names:?}");
    }
    assert!(tagged, "example.requests carries the service tags");
    let request = profile.expect("a profile upload within the time limit");
    assert!(
        request.starts_with("POST /profiling/v1/input HTTP/1.1"),
        "{}",
        &request[..request.len().min(200)]
    );
    assert!(
        request.contains("filename=\"event.json\"") && request.contains("filename=\"cpu.pprof\"")
    );

    // SIGTERM: the service stops, flushes and exits 0.
    let pid = child.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "example-service did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
