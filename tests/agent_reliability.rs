//! Issue 13 against the real binary: long outages of every kind (shortened, with count-based checks), floods
//! of new contexts, and what the agent says about them.

mod common;

use common::*;
use kelpie_standin::intake::{Failure, Intake, IntakeHandle, Times};
use std::time::Duration;

fn agent_for(intake: &IntakeHandle, extra: &[(&str, &str)]) -> AgentProc {
    let url = intake.url();
    let mut envs: Vec<(&str, &str)> = vec![
        ("DD_API_KEY", "e2e-key"),
        ("DD_DD_URL", url.as_str()),
        ("DD_FORWARDER_BACKOFF_BASE", "0.2"),
        ("DD_FORWARDER_BACKOFF_MAX", "2"),
        ("DD_FORWARDER_TIMEOUT", "1"),
    ];
    envs.extend_from_slice(extra);
    AgentProc::spawn(&envs)
}

/// The intake fails in four ways in a row (503, stalls past the timeout, resets, refused connections), 5 s
/// each; the agent keeps probing at a low rate, says so once, and after recovery every increment arrives
/// exactly once with nothing dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_every_kind_is_probed_gently_and_loses_nothing() {
    let intake = Intake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let agent = agent_for(
        &intake,
        &[
            ("DD_FORWARDER_STORAGE_PATH", storage.as_str()),
            ("DD_FORWARDER_STORAGE_MAX_SIZE_IN_BYTES", "50000000"),
        ],
    );
    let phases = [
        Failure::Status(503),
        Failure::Stall(Duration::from_secs(3)),
        Failure::Reset,
        Failure::Down,
    ];
    let mut sent = 0u64;
    let mut flushes_during = 0u64;
    let before = intake.requests().len();
    for failure in phases {
        intake.set_failure(failure, Times::Always);
        let f0 = agent.flushes();
        for _ in 0..10 {
            agent.send(&"e2e.outage.count:1|c\n".repeat(10));
            sent += 10;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        flushes_during += agent.flushes() - f0;
    }
    agent.wait_samples(sent, Duration::from_secs(10));
    // Requests the intake saw while it failed (the refused connections of the last phase never reach it).
    let requests = intake.requests().len() - before;
    intake.clear_failure();
    let ok = wait_until(&intake, 60, |i| {
        counted(&i.series(), "e2e.outage.count") >= sent as f64
    })
    .await;
    assert!(
        ok,
        "only {} of {sent} arrived",
        counted(&intake.series(), "e2e.outage.count")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counted(&intake.series(), "e2e.outage.count"), sent as f64);
    // Each flush makes at least one payload; without backoff every one of them would have been tried at least
    // once during the 15 s the intake answered. With it, probes are spaced by up to 2 s.
    eprintln!("{requests} requests during the outage, {flushes_during} flushes");
    assert!(
        requests >= 3,
        "the agent stopped probing: {requests} requests"
    );
    assert!(
        (requests as u64) < flushes_during,
        "{requests} requests for {flushes_during} flushes: no backoff"
    );
    let doc = agent.status_json();
    assert_eq!(
        doc["forwarder"]["transactions"]["dropped"],
        serde_json::json!({}),
        "{doc}"
    );
    assert_eq!(doc["forwarder"]["delivering"], true);
    let log = agent.log_text();
    assert_eq!(
        log.matches("cannot deliver to the intake").count(),
        1,
        "one outage, one first-failure line: {log}"
    );
    assert!(log.contains("is accepting data again after"), "{log}");
}

/// Issue 13 item 3: new contexts past the cap are refused and counted in status and self metrics and said in
/// the log; contexts already held keep flowing; idle ones expire and new contexts are accepted again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_new_contexts_is_refused_counted_and_survived() {
    let intake = Intake::start().await;
    // The history's budget (KELPIE_HISTORY_MEMORY) leaves nothing for contexts: the cap is its floor, 1000.
    let agent = agent_for(
        &intake,
        &[
            ("KELPIE_HISTORY_MEMORY", "1GiB"),
            ("DD_DOGSTATSD_EXPIRY_SECONDS", "2"),
        ],
    );
    agent.send("e2e.kept:1|c");
    agent.wait_samples(1, Duration::from_secs(10));
    // 2000 new gauges, 50 per datagram.
    for chunk in 0..40 {
        let lines: String = (0..50)
            .map(|i| format!("e2e.flood.{}:1|g\n", chunk * 50 + i))
            .collect();
        agent.send(&lines);
        agent.send("e2e.kept:1|c");
    }
    agent.wait_samples(2041, Duration::from_secs(20));
    // Samples are counted when parsed, and a worker inserts a batch's lines after parsing all of it: wait until
    // every flood line has made or been refused a context.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let doc = loop {
        let doc = agent.status_json();
        let d = &doc["dogstatsd"];
        let settled = d["contexts"].as_u64().unwrap_or(0)
            + d["dropped"]["context_limit"].as_u64().unwrap_or(0);
        if settled >= 2001 || std::time::Instant::now() > deadline {
            break doc;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let d = &doc["dogstatsd"];
    assert_eq!(d["context_limit"], 1000, "{doc}");
    assert_eq!(d["context_limit_reason"], "memory_limit", "{doc}");
    // One context was held before the flood: 999 of the 2000 got in (1000 when two sharded workers create
    // their contexts at the same moment: the cap holds to within one context per worker).
    let refused = d["dropped"]["context_limit"].as_u64().unwrap_or(0);
    assert!((1000..=1001).contains(&refused), "{doc}");
    // The kept counter flowed all along: 41 increments.
    let ok = wait_until(&intake, 20, |i| counted(&i.series(), "e2e.kept") >= 41.0).await;
    assert!(ok, "kept: {}", counted(&intake.series(), "e2e.kept"));
    // Self metrics carry the refusals and the cap.
    let ok = wait_until(&intake, 20, |i| {
        let s = i.series();
        counted(&s, "kelpie.dogstatsd.dropped") >= refused as f64
            && s.iter().any(|x| x.name == "kelpie.dogstatsd.context_limit")
    })
    .await;
    assert!(ok, "self metrics");
    let s = intake.series();
    let tagged = s.iter().any(|x| {
        x.name == "kelpie.dogstatsd.dropped" && x.tags.iter().any(|t| t == "reason:context_limit")
    });
    assert!(
        tagged,
        "no kelpie.dogstatsd.dropped{{reason:context_limit}}"
    );
    let log = agent.log_text();
    assert!(
        log.contains("new DogStatsD contexts: ") && log.contains("the limit is 1000"),
        "{log}"
    );
    // Idle gauges expire; then new contexts are accepted again, nothing more refused.
    let ok = wait_for(Duration::from_secs(30), || {
        (agent.status_json()["dogstatsd"]["contexts"]
            .as_i64()
            .unwrap_or(i64::MAX)
            < 100)
            .then_some(())
    });
    assert!(
        ok.is_some(),
        "contexts did not expire: {}",
        agent.status_json()
    );
    intake.clear();
    let lines: String = (0..50).map(|i| format!("e2e.after.{i}:1|c\n")).collect();
    agent.send(&lines);
    let ok = wait_until(&intake, 20, |i| {
        (0..50).all(|n| counted(&i.series(), &format!("e2e.after.{n}")) == 1.0)
    })
    .await;
    assert!(ok, "new contexts after the flood did not arrive");
    assert_eq!(
        agent.status_json()["dogstatsd"]["dropped"]["context_limit"],
        refused
    );
}

/// Issue 13 item 7: the API key shows nowhere a person or another process can read (logs at debug level,
/// status JSON and text, the page, `--help`, `kelpie config`), a world-readable config file holding it is warned about by
/// name, and the CPU profiler endpoint can be turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_never_shows_and_pprof_can_be_turned_off() {
    use std::os::unix::fs::PermissionsExt;
    const KEY: &str = "kelpie-secret-key-0123456789abcdef";
    let intake = Intake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("kelpie.yaml");
    std::fs::write(&cfg, format!("api_key: {KEY}\n")).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let url = intake.url();
    let agent = AgentProc::spawn_with_config(
        &[
            ("DD_DD_URL", url.as_str()),
            ("KELPIE_PPROF", "false"),
            ("RUST_LOG", "debug"),
        ],
        Some(&cfg),
    );
    agent.send("e2e.secret:1|c");
    let ok = wait_until(&intake, 20, |i| counted(&i.series(), "e2e.secret") >= 1.0).await;
    assert!(ok, "nothing forwarded");
    // The intake got the key: it is in use.
    assert!(intake
        .requests()
        .iter()
        .any(|r| r.header("dd-api-key") == Some(KEY)));
    let status = http_get(agent.status, "/status").unwrap().1;
    let page = http_get(agent.status, "/").unwrap().1;
    let text = std::process::Command::new(kelpie_bin())
        .args(["status", "--addr", &agent.status.to_string()])
        .output()
        .unwrap();
    let help = std::process::Command::new(kelpie_bin())
        .args(["agent", "--help"])
        .env("DD_API_KEY", KEY)
        .output()
        .unwrap();
    let shown_config = |env_key: bool| {
        let mut c = std::process::Command::new(kelpie_bin());
        c.arg("config").arg("--config").arg(&cfg);
        if env_key {
            c.env("DD_API_KEY", KEY);
        }
        let out = c.output().unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let config_file = shown_config(false);
    let config_env = shown_config(true);
    assert!(config_file.contains("api_key"), "{config_file}");
    let (code, body) = http_get(agent.status, "/debug/pprof/profile?seconds=1").unwrap();
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("KELPIE_PPROF"), "{body}");
    let log = agent.log_text();
    for (what, out) in [
        ("status JSON", status),
        ("page", page),
        (
            "kelpie status",
            String::from_utf8_lossy(&text.stdout).into_owned(),
        ),
        ("--help", String::from_utf8_lossy(&help.stdout).into_owned()),
        ("kelpie config (file)", config_file),
        ("kelpie config (DD_API_KEY)", config_env),
        ("log", log.clone()),
    ] {
        assert!(!out.contains(KEY), "the API key is in the {what}:\n{out}");
        assert!(
            !out.contains("0123456789abcdef"),
            "part of the key in the {what}"
        );
    }
    let warning = format!(
        "the configuration file {} holds the API key and every user of this host can read it",
        cfg.display()
    );
    assert!(log.contains(&warning), "{log}");
}

/// A TLS handshake that fails (an `https` URL answered by a server that does not speak TLS) is an outage like
/// the others: logged with the URL and the reason, retried with backoff, written ahead to storage; a restart
/// pointed at the working intake delivers every sample exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tls_handshake_is_retried_and_nothing_is_lost() {
    let intake = Intake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let https = format!("https://{}", intake.addr());
    let store = [
        ("DD_FORWARDER_STORAGE_PATH", storage.as_str()),
        ("DD_FORWARDER_STORAGE_MAX_SIZE_IN_BYTES", "50000000"),
    ];
    let mut envs = vec![
        ("DD_API_KEY", "e2e-key"),
        ("DD_DD_URL", https.as_str()),
        ("DD_FORWARDER_BACKOFF_BASE", "0.2"),
        ("DD_FORWARDER_BACKOFF_MAX", "2"),
    ];
    envs.extend_from_slice(&store);
    let mut first = AgentProc::spawn(&envs);
    first.send(&"e2e.tls.count:1|c\n".repeat(30));
    first.wait_samples(30, Duration::from_secs(10));
    let doc = wait_for(Duration::from_secs(20), || {
        let d = first.status_json();
        (d["forwarder"]["delivering"] == false
            && d["forwarder"]["queued_bytes"].as_i64() == Some(0)
            && d["forwarder"]["queued_on_disk_bytes"].as_i64().unwrap_or(0) > 0
            && d["dogstatsd"]["metric_samples"].as_u64() == Some(30)
            && d["aggregator"]["flushes"].as_u64().unwrap_or(0) >= 2)
            .then_some(d)
    });
    assert!(doc.is_some(), "{}", first.status_json());
    let log = first.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(&format!("cannot deliver to the intake {https}")))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.to_lowercase().contains("error sending request"),
        "{line}"
    );
    // No request got through the handshake.
    assert!(intake.requests().is_empty());
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let url = intake.url();
    let mut envs = vec![("DD_API_KEY", "e2e-key"), ("DD_DD_URL", url.as_str())];
    envs.extend_from_slice(&store);
    let _second = AgentProc::spawn(&envs);
    let ok = wait_until(&intake, 30, |i| {
        counted(&i.series(), "e2e.tls.count") >= 30.0
    })
    .await;
    assert!(
        ok,
        "only {} of 30",
        counted(&intake.series(), "e2e.tls.count")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counted(&intake.series(), "e2e.tls.count"), 30.0);
}

/// A self-signed certificate (made with `openssl`) as DER: (certificate, PKCS#8 key). None without openssl.
fn self_signed(dir: &std::path::Path) -> Option<(Vec<u8>, Vec<u8>)> {
    let key = dir.join("key.pem");
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext"])
        .arg("subjectAltName=IP:127.0.0.1")
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .args(["-outform", "DER", "-out"])
        .arg(dir.join("cert.der"))
        .output()
        .ok()?
        .status
        .success();
    let ok = ok
        && std::process::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(dir.join("key.der"))
            .status()
            .ok()?
            .success();
    ok.then(|| {
        (
            std::fs::read(dir.join("cert.der")).unwrap(),
            std::fs::read(dir.join("key.der")).unwrap(),
        )
    })
}

/// Issue 13 item 7: TLS certificates are always verified. An intake on 127.0.0.1 with a self-signed certificate
/// gets handshakes that the agent aborts, never a request: the failure is logged as a certificate problem and
/// the data is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_intake_certificate_is_refused() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let Some((cert, key)) = self_signed(dir.path()) else {
        assert!(
            std::env::var("KELPIE_REQUIRE_TOOLS").is_err(),
            "openssl is required (KELPIE_REQUIRE_TOOLS is set)"
        );
        eprintln!("skipped: no openssl to make a certificate");
        return;
    };
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.into()],
            tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer::from(key).into(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (attempts, completed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, c) = (attempts.clone(), completed.clone());
    let server = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let (acceptor, c) = (acceptor.clone(), c.clone());
            tokio::spawn(async move {
                if acceptor.accept(tcp).await.is_ok() {
                    c.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let url = format!("https://127.0.0.1:{}", addr.port());
    let agent = AgentProc::spawn(&[
        ("DD_API_KEY", "e2e-key"),
        ("DD_DD_URL", url.as_str()),
        ("DD_FORWARDER_BACKOFF_BASE", "0.2"),
        ("DD_FORWARDER_BACKOFF_MAX", "1"),
    ]);
    agent.send("e2e.tls.selfsigned:1|c");
    let line = wait_for(Duration::from_secs(20), || {
        agent
            .log_text()
            .lines()
            .find(|l| l.contains(&format!("cannot deliver to the intake {url}")))
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no failure logged: {}", agent.log_text()));
    assert!(
        line.contains("invalid peer certificate: UnknownIssuer"),
        "{line}"
    );
    assert!(attempts.load(Ordering::SeqCst) >= 1);
    assert_eq!(completed.load(Ordering::SeqCst), 0, "a handshake completed");
    let doc = agent.status_json();
    assert_eq!(doc["forwarder"]["delivering"], false, "{doc}");
    assert_eq!(doc["forwarder"]["transactions"]["success"], 0, "{doc}");
    server.abort();
}

/// A host name the resolver rejects without asking anyone: under the reserved `.invalid` TLD (RFC 6761), with a
/// 64-character label (DNS allows 63), so glibc's `getaddrinfo` fails while building the query and no packet
/// leaves the machine (checked with `strace`: no `connect` to port 53).
fn unresolvable_host() -> String {
    format!("intake-{}.invalid", "x".repeat(57))
}

/// Issue 13 item 2, DNS failure: the intake's host name does not resolve. The agent says so once with the URL
/// and the reason, counts its attempts and backs off, writes the data ahead to storage, shuts down within
/// Docker's 10 s, and a restart pointed at the working intake delivers every sample exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_failure_is_said_once_backed_off_and_loses_nothing() {
    let intake = Intake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().to_str().unwrap().to_string();
    let bad = format!("http://{}:1", unresolvable_host());
    let store = [
        ("DD_FORWARDER_STORAGE_PATH", storage.as_str()),
        ("DD_FORWARDER_STORAGE_MAX_SIZE_IN_BYTES", "50000000"),
    ];
    let mut envs = vec![
        ("DD_API_KEY", "e2e-key"),
        ("DD_DD_URL", bad.as_str()),
        ("DD_FORWARDER_BACKOFF_BASE", "0.5"),
        ("DD_FORWARDER_BACKOFF_MAX", "4"),
        ("DD_FORWARDER_TIMEOUT", "1"),
    ];
    envs.extend_from_slice(&store);
    let mut first = AgentProc::spawn(&envs);
    let stat = |a: &AgentProc, path: &[&str]| {
        let mut v = a.status_json();
        for p in path {
            v = v[*p].take();
        }
        v.as_u64().unwrap_or(0)
    };
    let flushes0 = stat(&first, &["aggregator", "flushes"]);
    let mut sent = 0u64;
    for _ in 0..40 {
        first.send(&"e2e.dns.count:1|c\n".repeat(10));
        sent += 10;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    first.wait_samples(sent, Duration::from_secs(10));
    let doc = wait_for(Duration::from_secs(20), || {
        let d = first.status_json();
        (d["forwarder"]["delivering"] == false
            && d["forwarder"]["queued_bytes"].as_i64() == Some(0)
            && d["forwarder"]["queued_on_disk_bytes"].as_i64().unwrap_or(0) > 0)
            .then_some(d)
    });
    assert!(doc.is_some(), "{}", first.status_json());
    let flushes = stat(&first, &["aggregator", "flushes"]) - flushes0;
    let attempts = stat(&first, &["forwarder", "transactions", "retried"]);
    eprintln!("DNS failure: {sent} samples sent, {flushes} flushes, {attempts} failed attempts");
    assert!(attempts >= 3, "the agent stopped probing: {attempts}");
    assert!(
        attempts < flushes,
        "{attempts} attempts for {flushes} flushes: no backoff"
    );
    let doc = first.status_json();
    assert_eq!(
        doc["forwarder"]["transactions"]["dropped"],
        serde_json::json!({}),
        "{doc}"
    );
    let log = first.log_text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot deliver to the intake"))
        .collect();
    assert_eq!(lines.len(), 1, "one outage, one first-failure line: {log}");
    eprintln!("first-failure line: {}", lines[0]);
    assert!(lines[0].contains(&bad), "{}", lines[0]);
    assert!(lines[0].contains("dns error"), "{}", lines[0]);
    let t0 = std::time::Instant::now();
    let st = first.terminate(Duration::from_secs(10));
    eprintln!("exited in {:?} with {st}", t0.elapsed());
    assert!(st.success(), "{st}");
    assert!(intake.requests().is_empty());
    let url = intake.url();
    let mut envs = vec![("DD_API_KEY", "e2e-key"), ("DD_DD_URL", url.as_str())];
    envs.extend_from_slice(&store);
    let _second = AgentProc::spawn(&envs);
    let t1 = std::time::Instant::now();
    let ok = wait_until(&intake, 30, |i| {
        counted(&i.series(), "e2e.dns.count") >= sent as f64
    })
    .await;
    assert!(
        ok,
        "only {} of {sent}",
        counted(&intake.series(), "e2e.dns.count")
    );
    eprintln!("all {sent} delivered {:?} after the restart", t1.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(counted(&intake.series(), "e2e.dns.count"), sent as f64);
}
