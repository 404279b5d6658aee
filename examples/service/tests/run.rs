//! The example binary end to end: its points reach a DogStatsD socket with the service's tags, its profile
//! reaches the profile endpoint, and it exits 0 after `--requests`.

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn example_service_reports_metrics_and_a_profile() {
    let dsd = UdpSocket::bind("127.0.0.1:0").unwrap();
    dsd.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let agent = TcpListener::bind("127.0.0.1:0").unwrap();
    let agent_addr = agent.local_addr().unwrap();
    // A minimal profile endpoint: read one request, answer 202.
    let profile_server = std::thread::spawn(move || {
        let (mut conn, _) = agent.accept().unwrap();
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
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if req.len() >= end + 4 + len {
                    break;
                }
            }
        }
        let _ = conn
            .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        String::from_utf8_lossy(&req).into_owned()
    });

    let mut child = Command::new(env!("CARGO_BIN_EXE_example-service"))
        .args(["--requests", "300", "--rate", "100", "--work", "50000"])
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

    let mut names = std::collections::BTreeSet::new();
    let mut tagged = false;
    let deadline = Instant::now() + Duration::from_secs(30);
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
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    for want in [
        "example.requests",
        "example.request.duration",
        "example.inflight",
        "runtime.rust.mem.rss",
    ] {
        assert!(names.contains(want), "{want} not in {names:?}");
    }
    assert!(tagged, "example.requests carries the service tags");
    let request = profile_server.join().unwrap();
    assert!(
        request.starts_with("POST /profiling/v1/input HTTP/1.1"),
        "{}",
        &request[..request.len().min(200)]
    );
    assert!(
        request.contains("filename=\"event.json\"") && request.contains("filename=\"cpu.pprof\"")
    );
}
