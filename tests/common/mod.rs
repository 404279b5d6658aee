//! Helpers for end-to-end tests: run the real `kelpie` binary with an environment, talk to it, stop it.
//! Submodules for one subject each: `monitors` (`kelpie monitors` against the Monitors API stand-in) and
//! `tfcompat` (loading the Terraform corpus). Each test target includes all of it and uses a part: hence
//! `dead_code` is allowed here.
#![allow(dead_code)]

pub mod monitors;
pub mod tfcompat;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn kelpie_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kelpie")
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind udp 127.0.0.1:0")
}

/// A running agent process.
pub struct AgentProc {
    pub child: Child,
    pub status: SocketAddr,
    pub udp: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl AgentProc {
    /// Starts `kelpie agent` with a 1 s flush interval, container collection off, free ports, hostname
    /// `e2e-host`, and `envs` on top (which may override any of those). Waits until /health answers.
    pub fn spawn(envs: &[(&str, &str)]) -> AgentProc {
        Self::spawn_with_config(envs, None)
    }

    pub fn spawn_with_config(envs: &[(&str, &str)], config: Option<&std::path::Path>) -> AgentProc {
        let status_port = free_tcp_port();
        let udp_port = free_udp_port();
        let mut cmd = Command::new(kelpie_bin());
        cmd.arg("agent");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        } else {
            cmd.arg("--config").arg("/dev/null");
        }
        // Never inherit a real key or site from the developer's environment.
        for (k, _) in std::env::vars() {
            if k.starts_with("DD_") || k.starts_with("KELPIE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("KELPIE_FLUSH_INTERVAL", "1s")
            .env("KELPIE_STATUS_ADDR", format!("127.0.0.1:{status_port}"))
            .env("KELPIE_PROFILES_ADDR", "off")
            .env("DD_DOGSTATSD_PORT", udp_port.to_string())
            .env("DD_HOSTNAME", "e2e-host")
            .env("DD_CONTAINER_COLLECTION", "false")
            // Tests burst hundreds of tiny datagrams at a debug build on a busy 2-core machine: a 4 MiB
            // receive buffer (the usual net.core.rmem_max) keeps the kernel from dropping them.
            .env("DD_DOGSTATSD_SO_RCVBUF", "4194304")
            .env("RUST_LOG", "info");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn kelpie agent");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[agent] {line}");
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
            }
        });
        let status: SocketAddr = format!("127.0.0.1:{status_port}").parse().unwrap();
        let status_port_env = envs
            .iter()
            .find(|(k, _)| *k == "KELPIE_STATUS_ADDR")
            .map(|(_, v)| v.parse().expect("KELPIE_STATUS_ADDR"))
            .unwrap_or(status);
        let udp_port = envs
            .iter()
            .find(|(k, _)| *k == "DD_DOGSTATSD_PORT")
            .map(|(_, v)| v.parse().expect("port"))
            .unwrap_or(udp_port);
        let mut agent = AgentProc {
            child,
            status: status_port_env,
            udp: format!("127.0.0.1:{udp_port}").parse().unwrap(),
            log,
        };
        agent.wait_healthy(Duration::from_secs(30));
        agent
    }

    fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "agent exited early with {st}; log:\n{}",
                    self.log.lock().unwrap()
                );
            }
            if http_get(self.status, "/health").is_some_and(|(code, _)| code == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("agent not healthy within {timeout:?}");
    }

    pub fn status_json(&self) -> Value {
        let (_, body) = http_get(self.status, "/status").expect("GET /status");
        serde_json::from_str(&body).expect("status is JSON")
    }

    /// Sends one UDP datagram to the agent's DogStatsD port.
    pub fn send(&self, payload: &str) {
        self.send_in_order(&[payload]);
    }

    /// Sends each payload as its own datagram, in order, from one client socket: the order the agent keeps
    /// (datagrams from different sockets may be read by different reader threads, so they have none).
    pub fn send_in_order(&self, payloads: &[&str]) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        for p in payloads {
            s.send_to(p.as_bytes(), self.udp).unwrap();
        }
    }

    /// Waits until the agent has counted at least `n` metric samples (so a later flush includes them).
    pub fn wait_samples(&self, n: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.status_json()["dogstatsd"]["metric_samples"]
                .as_u64()
                .unwrap_or(0);
            if got >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "agent counted {got} metric samples, expected {n}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the exit (at most `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        // SAFETY: kill(2) with a pid we own.
        unsafe {
            libc_kill(self.child.id() as i32, 15);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Flushes the aggregator has made (`aggregator.flushes` in the status).
    pub fn flushes(&self) -> u64 {
        self.status_json()["aggregator"]["flushes"]
            .as_u64()
            .unwrap_or(0)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal blocking HTTP GET (status code, body) so tests need no client runtime.
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let code: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((code, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `f` until it returns Some or the timeout passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether python3 with the `datadog` package is available; CI (KELPIE_REQUIRE_TOOLS=1) requires it.
pub fn python_datadog() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import datadog"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var("KELPIE_REQUIRE_TOOLS").is_err(),
            "python3 with the datadog package is required (KELPIE_REQUIRE_TOOLS is set); run scripts/test.sh"
        );
        eprintln!("skipped: python3 with the `datadog` package is not installed (scripts/test.sh installs it)");
    }
    ok
}

/// Polls the intake stand-in until `pred` holds or `secs` pass; returns whether it held.
pub async fn wait_until(
    intake: &kelpie_standin::intake::IntakeHandle,
    secs: u64,
    pred: impl Fn(&kelpie_standin::intake::IntakeHandle) -> bool,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if pred(intake) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pred(intake)
}

/// Exit code (-1 when killed by a signal), stdout and stderr of a finished command.
pub fn outcome(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Total count carried by a counter's series: every rate point × its interval.
pub fn counted(series: &[kelpie_standin::intake::ReceivedSeries], name: &str) -> f64 {
    series
        .iter()
        .filter(|s| s.name == name)
        .flat_map(|s| s.points.iter().map(move |p| p.1 * s.interval.max(1) as f64))
        .sum()
}

/// The series named `name` that carry `tag`.
pub fn with_tag<'a>(
    series: &'a [kelpie_standin::intake::ReceivedSeries],
    name: &str,
    tag: &str,
) -> Vec<&'a kelpie_standin::intake::ReceivedSeries> {
    series
        .iter()
        .filter(|s| s.name == name && s.tags.iter().any(|t| t == tag))
        .collect()
}

/// `docker run` arguments that label a container as ECS labels the container `app` of revision `rev` of the
/// task definition `family`.
pub fn ecs_task_labels(family: &str, rev: &str) -> Vec<String> {
    [
        format!("com.amazonaws.ecs.task-definition-family={family}"),
        format!("com.amazonaws.ecs.task-definition-version={rev}"),
        "com.amazonaws.ecs.container-name=app".to_string(),
    ]
    .into_iter()
    .flat_map(|label| ["--label".to_string(), label])
    .collect()
}
