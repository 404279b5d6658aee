//! End-to-end tests of `kelpie monitors` (the real binary) against the Monitors API stand-in: the API client's
//! retries. Failed and retried requests, the rate limit's budget (alone on the account and shared with another
//! client), creates applied but not answered, and an interrupted sync: each converges without duplicates.

mod common;

use common::monitors::*;
use kelpie_standin::monitors_api::{MonitorsApi, MonitorsApiHandle};
use std::process::Command;
use std::time::Duration;

#[test]
fn failures_are_reported_and_the_next_sync_converges() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(5));
    // Two 503s are retried; one 400 fails one create.
    api.fail_next("POST /api/v1/monitor", 503, 2);
    let (code, out, _) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(api.monitors().len(), 5);
    write(tmp.path(), "main.tf", &many(8));
    api.fail_next("POST /api/v1/monitor", 400, 1);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("failed to create datadog_monitor.m["), "{err}");
    assert!(
        out.contains("Sync: 2 created, 0 updated, 0 replaced, 0 deleted, 1 failed."),
        "{out}"
    );
    assert_eq!(api.monitors().len(), 7);
    let (code, out, _) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Sync: 1 created"), "{out}");
    assert_eq!(api.monitors().len(), 8);
}

/// Monitors per `kelpie-address` tag: more than one is a duplicate.
fn duplicates(api: &MonitorsApiHandle) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for m in api.monitors() {
        for t in m["tags"].as_array().unwrap() {
            if let Some(a) = t.as_str().and_then(|t| t.strip_prefix("kelpie-address:")) {
                *seen.entry(a.to_string()).or_default() += 1;
            }
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(a, n)| format!("{a} x{n}"))
        .collect()
}

#[test]
fn rate_limits_are_honoured() {
    // 40 creates, then 40 updates, under 15 requests per 2 s: several windows each, with the Reset header
    // rounded down as Datadog sends it. The client spends each window's budget and waits until the window has
    // surely reset, so (alone on the account) no request is answered 429.
    let api = MonitorsApi::start();
    api.set_rate_limit(15, Duration::from_secs(2));
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(40));
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(api.monitors().len(), 40);
    assert!(out.contains("Sync: 40 created"), "{out}");
    // Plain progress lines when stdout is not a terminal: numbered, and the waits for the rate limit.
    assert!(out.contains("[1/40] created datadog_monitor.m["), "{out}");
    assert!(out.contains("[40/40] created datadog_monitor.m["), "{out}");
    assert!(
        out.contains("waiting for the rate limit until ")
            && out.contains("monitors: 15 requests per 2 s"),
        "{out}"
    );
    write(
        tmp.path(),
        "main.tf",
        &many(40).replace("message = \"m\"", "message = \"changed\""),
    );
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sync: 0 created, 40 updated"), "{out}");
    let log = api.request_log();
    let limited = log.iter().filter(|e| e.status == 429).count();
    assert!(log.len() >= 82, "{}", log.len());
    assert_eq!(
        limited,
        0,
        "{limited} of {} requests were answered 429",
        log.len()
    );
    assert_eq!(kelpie(&api, &["plan", "--dir", d, "--project", "p"]).0, 0);
}

#[test]
fn a_create_applied_but_not_answered_is_found_not_duplicated() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(6));
    // Datadog applies two creates but the answers are lost: one connection dropped, one 504 from a proxy.
    api.fail_after_apply("POST /api/v1/monitor", 0, 1);
    api.fail_after_apply("POST /api/v1/monitor", 504, 1);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sync: 6 created"), "{out}");
    let log = api.request_log();
    assert_eq!(
        log.iter()
            .filter(|e| e.status == 0 || e.status == 504)
            .count(),
        2,
        "{log:?}"
    );
    // Each lost answer was followed by a search by the ownership tags, which found the monitor.
    let searches: Vec<_> = log
        .iter()
        .filter(|e| e.method == "GET" && e.query.contains("kelpie-address"))
        .collect();
    assert_eq!(searches.len(), 2, "{log:?}");
    assert_eq!(api.monitors().len(), 6);
    assert!(duplicates(&api).is_empty(), "{:?}", duplicates(&api));
    assert_eq!(
        log.iter()
            .filter(|e| e.method == "POST" && e.path == "/api/v1/monitor")
            .count(),
        6,
        "no create was sent twice"
    );
    // A create that Datadog did not apply (a 503 before it) is searched for, not found, and sent again.
    write(tmp.path(), "main.tf", &many(7));
    api.fail_next("POST /api/v1/monitor", 503, 1);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(api.monitors().len(), 7);
    assert!(duplicates(&api).is_empty());
    assert_eq!(kelpie(&api, &["plan", "--dir", d, "--project", "p"]).0, 0);
}

#[test]
fn an_interrupted_sync_converges_without_duplicates() {
    let api = MonitorsApi::start();
    api.set_rate_limit(10, Duration::from_secs(2));
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(30));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kelpie"))
        .args(["monitors", "sync", "--dir", d, "--project", "p"])
        .env("DD_HOST", api.url())
        .env("DD_API_KEY", "k")
        .env("DD_APP_KEY", "a")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt it once some monitors exist: SIGTERM, as a CI runner's cancel sends (SIGINT, Ctrl-C's, would do
    // the same, but a shell starts background jobs with SIGINT ignored, and children inherit that).
    let t = std::time::Instant::now();
    while api.monitors().len() < 8 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "interrupted before the end");
    let made = api.monitors().len();
    assert!((8..30).contains(&made), "{made}");
    // A create may also have been applied with its answer lost at the interruption: the next run finds them
    // all by their tags.
    api.fail_after_apply("POST /api/v1/monitor", 0, 1);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("Sync: {} created, 0 updated", 30 - made)),
        "{out}"
    );
    assert_eq!(api.monitors().len(), 30);
    assert!(duplicates(&api).is_empty(), "{:?}", duplicates(&api));
    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No changes. 30 monitor(s)"), "{out}");
}

#[test]
fn a_budget_shared_with_another_client_still_converges() {
    // Someone else spends part of every window (3 requests per second against 20 per 2 s): kelpie's count of
    // what remains is then sometimes too high, the API answers 429, and kelpie waits for the reset and retries.
    let api = MonitorsApi::start();
    api.set_rate_limit(20, Duration::from_secs(2));
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(40));
    let other_get = |addr: std::net::SocketAddr| {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /api/v1/monitor/1 HTTP/1.1\r\nHost: x\r\nDD-API-KEY: k\r\nDD-APPLICATION-KEY: a\r\nConnection: close\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
    };
    // The window kelpie starts in is already spent: its first request is answered 429. Windows are aligned to
    // multiples of 2 s since the epoch; start just after a boundary so that kelpie starts in the same window.
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 2000;
        if (20..300).contains(&now) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..25 {
        other_get(api.addr);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (addr, stop) = (api.addr, stop.clone());
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                other_get(addr);
                sent += 1;
                std::thread::sleep(Duration::from_millis(333));
            }
            sent
        })
    };
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let others = other.join().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(others > 0);
    assert!(out.contains("Sync: 40 created"), "{out}");
    assert_eq!(api.monitors().len(), 40);
    assert!(duplicates(&api).is_empty());
    let log = api.request_log();
    let mine: Vec<_> = log
        .iter()
        .filter(|e| e.path != "/api/v1/monitor/1")
        .collect();
    let limited = mine.iter().filter(|e| e.status == 429).count();
    eprintln!(
        "{limited} of {} kelpie requests answered 429; the other client sent {others}",
        mine.len()
    );
    // Far from one 429 per request in flight per window.
    assert!(limited >= 1, "the spent window was noticed");
    assert!(
        limited * 4 <= mine.len(),
        "{limited} of {} answered 429",
        mine.len()
    );
    assert_eq!(kelpie(&api, &["plan", "--dir", d, "--project", "p"]).0, 0);
}
