//! Helpers for tests against the real Docker engine: skip (or fail under `KELPIE_REQUIRE_DOCKER=1`) when there
//! is none, build the local test images on demand, and remove every container a test starts.
#![allow(dead_code)]

use kelpie_container::{ContainerConfig, ContainerEvent, Point};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const IMAGE: &str = "kelpie-test/tool:latest";

/// `Some(reason)` when no Docker engine is usable here.
fn docker_missing() -> Option<String> {
    let sock = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string());
    if std::env::var("DOCKER_HOST")
        .map(|h| h.starts_with("unix://"))
        .unwrap_or(true)
        && !std::path::Path::new(&sock).exists()
    {
        return Some(format!("{sock} does not exist"));
    }
    match Command::new("docker")
        .args(["version", "-f", "{{.Server.Version}}"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "docker version failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run the docker CLI: {e}")),
    }
}

/// True when the test may use Docker. Prints why it is skipped otherwise; panics instead when
/// `KELPIE_REQUIRE_DOCKER=1`.
pub fn docker_ready() -> bool {
    if let Some(why) = docker_missing() {
        if std::env::var("KELPIE_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("KELPIE_REQUIRE_DOCKER=1 but no Docker engine: {why}");
        }
        eprintln!(
            "SKIPPED: no Docker engine ({why}); set KELPIE_REQUIRE_DOCKER=1 to make this a failure"
        );
        return false;
    }
    build_images();
    true
}

static BUILD: Mutex<bool> = Mutex::new(false);

/// Runs testimages/build.sh once per test binary (it is a no-op when the image is current).
pub fn build_images() {
    let mut done = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    // Included from container/tests and from the workspace root's tests.
    let base = env!("CARGO_MANIFEST_DIR");
    let script = [
        format!("{base}/../testimages/build.sh"),
        format!("{base}/testimages/build.sh"),
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .expect("testimages/build.sh");
    let out = Command::new("sh")
        .arg(&script)
        .output()
        .expect("run testimages/build.sh");
    assert!(
        out.status.success(),
        "testimages/build.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    *done = true;
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A name unique across tests and runs.
pub fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{}", std::process::id(), t % 1_000_000_000)
}

/// A container this test started; removed (forced) on drop.
pub struct Ctr {
    pub id: String,
    pub name: String,
}

impl Drop for Ctr {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
    }
}

/// `docker run -d --label kelpie-test=1 --name <unique> <docker_args> kelpie-test/tool <tool_args>`.
pub fn run(prefix: &str, docker_args: &[&str], tool_args: &[&str]) -> Ctr {
    let name = unique(prefix);
    let out = Command::new("docker")
        .args(["run", "-d", "--label", "kelpie-test=1", "--name", &name])
        .args(docker_args)
        .arg(IMAGE)
        .args(tool_args)
        .output()
        .expect("docker run");
    assert!(
        out.status.success(),
        "docker run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ctr { id, name }
}

pub fn inspect(id: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "-f", format, id])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn pid_of(id: &str) -> i32 {
    inspect(id, "{{.State.Pid}}").parse().expect("State.Pid")
}

/// Waits until `docker logs` of the container contains `needle`.
pub fn wait_logs(id: &str, needle: &str, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        let out = Command::new("docker")
            .args(["logs", id])
            .output()
            .expect("docker logs");
        if String::from_utf8_lossy(&out.stdout).contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("container {id} never printed {needle:?}");
}

pub fn config(hostname: &str) -> ContainerConfig {
    ContainerConfig {
        hostname: hostname.to_string(),
        // Nothing listens on port 9 of 127.0.0.1: the ECS API is absent unless a test sets it.
        ecs_agent_url: "http://127.0.0.1:9".to_string(),
        // The tests tell containers apart by name and id in their origin tags.
        origin_cardinality: kelpie_container::tags::TagCardinality::High,
        ..ContainerConfig::default()
    }
}

pub fn find<'a>(points: &'a [Point], name: &str, tag: &str) -> Option<&'a Point> {
    points
        .iter()
        .find(|p| p.name == name && p.tags.iter().any(|t| t == tag))
}

pub fn has_tag(ev: &ContainerEvent, tag: &str) -> bool {
    ev.tags.iter().any(|t| t == tag)
}

/// Receives events until one matches or the timeout passes.
pub async fn wait_event(
    rx: &mut tokio::sync::mpsc::Receiver<ContainerEvent>,
    timeout: Duration,
    pred: impl Fn(&ContainerEvent) -> bool,
) -> Option<ContainerEvent> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if pred(&ev) => return Some(ev),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

/// All events matching `pred` received within `window`.
pub async fn collect_events(
    rx: &mut tokio::sync::mpsc::Receiver<ContainerEvent>,
    window: Duration,
    pred: impl Fn(&ContainerEvent) -> bool,
) -> Vec<ContainerEvent> {
    let deadline = tokio::time::Instant::now() + window;
    let mut out = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        if pred(&ev) {
            out.push(ev);
        }
    }
    out
}

/// Forwards connections from `path` to the Docker socket; `cut()` closes all of them (as a daemon restart
/// does: the engine itself is shared, so it is not restarted).
pub struct Relay {
    conns: std::sync::Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::AbortHandle,
}

impl Relay {
    pub fn start(path: &std::path::Path) -> Relay {
        use tokio::net::{UnixListener, UnixStream};
        let listener = UnixListener::bind(path).unwrap();
        let conns: std::sync::Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Default::default();
        let c2 = conns.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let h = tokio::spawn(async move {
                    if let Ok(mut upstream) = UnixStream::connect("/var/run/docker.sock").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                c2.lock().unwrap().push(h.abort_handle());
            }
        });
        Relay {
            conns,
            accept: accept.abort_handle(),
        }
    }

    pub fn cut(&self) {
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
