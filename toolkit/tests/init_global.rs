//! `init()` reads the environment and installs the global recorder, once. (Its own test binary: it sets
//! environment variables and the process-wide recorder.)

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[test]
fn init_from_env_installs_once() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    // The only test in this binary, so no other thread reads the environment meanwhile.
    std::env::set_var("DD_DOGSTATSD_URL", format!("udp://127.0.0.1:{port}"));
    std::env::set_var("DD_SERVICE", "orders");
    std::env::set_var("DD_ENV", "qa");
    std::env::set_var("DD_VERSION", "2024.1");
    std::env::set_var("DD_RUNTIME_METRICS_ENABLED", "false");

    let guard = kelpie_toolkit::init().expect("first init");
    metrics::counter!("orders.placed").increment(2);
    guard.flush();

    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = None;
    while Instant::now() < deadline && seen.is_none() {
        if let Ok(n) = server.recv(&mut buf) {
            seen = common::parse_lines(&buf[..n])
                .into_iter()
                .find(|l| l.name == "orders.placed");
        }
    }
    let line = seen.expect("the counter arrived");
    assert_eq!(line.value, "2");
    assert_eq!(
        line.tags,
        common::tags(&["service:orders", "env:qa", "version:2024.1"])
    );

    let again = kelpie_toolkit::init().expect_err("a second init must fail");
    assert!(
        matches!(again, kelpie_toolkit::Error::RecorderAlreadySet),
        "{again}"
    );
}
