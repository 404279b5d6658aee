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
    let (id, name) = run_on(Command::new("docker"), prefix, docker_args, tool_args);
    Ctr { id, name }
}

/// `<docker> run -d --label kelpie-test=1 --name <unique> <docker_args> kelpie-test/tool <tool_args>` with the
/// given `docker` command (the shared engine's or a private daemon's); the container's id and name.
fn run_on(
    mut docker: Command,
    prefix: &str,
    docker_args: &[&str],
    tool_args: &[&str],
) -> (String, String) {
    let name = unique(prefix);
    let out = docker
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
    (id, name)
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

/// A Docker daemon of the test's own, beside the machine's engine (which is shared and must not be
/// restarted): its own socket, data root, exec root, pid file and managed containerd, all under one directory
/// in /tmp (kept short: containerd's sockets live under the exec root), and its own network namespace
/// (`unshare --net`): dockerd with `--bridge=none` deletes any interface named docker0 it sees, which took the
/// shared engine's bridge away when it ran in the host's namespace. No iptables rules; containers on it run
/// with `--network none`. `stop` and `launch` restart it on the same data root. On drop it removes its
/// containers, stops, and its directory goes.
pub struct PrivateDockerd {
    /// `unix://<dir>/docker.sock`, for `DOCKER_HOST` and `docker -H`.
    pub host: String,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

/// A container on a [`PrivateDockerd`] (removed with the daemon's other containers when it is dropped).
pub struct PrivCtr {
    pub id: String,
    pub name: String,
}

impl PrivateDockerd {
    /// Starts the daemon and loads the test image into it (from the shared engine, where `docker_ready` built
    /// it). An error says which step failed and ends with the daemon's log.
    pub fn start() -> Result<PrivateDockerd, String> {
        let dir = tempfile::Builder::new()
            .prefix("kdd")
            .tempdir_in("/tmp")
            .map_err(|e| format!("tempdir: {e}"))?;
        // An empty configuration file: dockerd refuses flags that /etc/docker/daemon.json also sets.
        std::fs::write(dir.path().join("daemon.json"), "{}").map_err(|e| e.to_string())?;
        let mut d = PrivateDockerd {
            host: format!("unix://{}/docker.sock", dir.path().display()),
            child: None,
            dir,
        };
        d.launch()?;
        let mut save = Command::new("docker")
            .args(["save", IMAGE])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("docker save: {e}"))?;
        let image = save.stdout.take().expect("piped");
        let load = d
            .docker()
            .arg("load")
            .stdin(image)
            .output()
            .map_err(|e| format!("docker load: {e}"))?;
        let _ = save.wait();
        if !load.status.success() {
            return Err(format!(
                "docker save {IMAGE} | docker -H {} load failed: {}\n{}",
                d.host,
                String::from_utf8_lossy(&load.stderr),
                d.log_tail()
            ));
        }
        Ok(d)
    }

    /// `docker -H <this daemon>`.
    pub fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.args(["-H", &self.host]);
        c
    }

    /// Starts dockerd on this directory and waits (at most 60 s) until it answers.
    pub fn launch(&mut self) -> Result<(), String> {
        let p = |name: &str| self.dir.path().join(name).display().to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p("dockerd.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .args(["--config-file", &p("daemon.json")])
            .args(["-H", &self.host])
            .args(["--data-root", &p("data")])
            .args(["--exec-root", &p("exec")])
            .args(["--pidfile", &p("dockerd.pid")])
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args(["--storage-driver", "vfs"])
            // Its managed containerd is its own (under the exec root); distinct namespaces besides.
            .args(["--containerd-namespace", "kelpie-test"])
            .args(["--containerd-plugins-namespace", "kelpie-test-plugins"])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run unshare --net dockerd: {e}"))?;
        self.child = Some(child);
        for _ in 0..240 {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!(
                    "dockerd exited at start ({st}):\n{}",
                    self.log_tail()
                ));
            }
            let ok = self
                .docker()
                .args(["version", "-f", "{{.Server.Version}}"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "dockerd did not answer within 60 s:\n{}",
            self.log_tail()
        ))
    }

    /// Sends dockerd SIGTERM (it stops its running containers, then exits); `exited` says when it has.
    pub fn begin_stop(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
    }

    /// True once dockerd has exited (or was not running).
    pub fn exited(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => false,
            _ => {
                self.child = None;
                true
            }
        }
    }

    /// SIGTERM, then waits for dockerd to exit (at most 60 s; then SIGKILL and an error). Returns how long
    /// it took.
    pub fn stop(&mut self) -> Result<Duration, String> {
        let t = Instant::now();
        self.begin_stop();
        for _ in 0..600 {
            if self.exited() {
                return Ok(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        Err(format!(
            "dockerd did not exit within 60 s of SIGTERM:\n{}",
            self.log_tail()
        ))
    }

    /// `docker run -d --network none --label kelpie-test=1 --name <unique> <docker_args> kelpie-test/tool
    /// <tool_args>` on this daemon.
    pub fn run(&self, prefix: &str, docker_args: &[&str], tool_args: &[&str]) -> PrivCtr {
        let args: Vec<&str> = ["--network", "none"]
            .iter()
            .chain(docker_args)
            .copied()
            .collect();
        let (id, name) = run_on(self.docker(), prefix, &args, tool_args);
        PrivCtr { id, name }
    }

    /// `docker inspect -f <format>` on this daemon.
    pub fn inspect(&self, id: &str, format: &str) -> String {
        let out = self
            .docker()
            .args(["inspect", "-f", format, id])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The last 40 lines of dockerd's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for PrivateDockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            if let Ok(o) = self.docker().args(["ps", "-aq"]).output() {
                let ids: Vec<String> = String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
                if !ids.is_empty() {
                    let _ = self.docker().args(["rm", "-f"]).args(&ids).output();
                }
            }
            let _ = self.stop();
        }
        // Its containerd exits with it; should it not have (dockerd killed), it goes too.
        let pidfile = self.dir.path().join("exec/containerd/containerd.pid");
        if let Ok(pid) = std::fs::read_to_string(pidfile) {
            let pid = pid.trim();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = self.dir.path().display().to_string();
            if String::from_utf8_lossy(&cmdline).contains(&ours) {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        // Nothing may stay mounted under the directory before it is removed (vfs mounts nothing; a network
        // namespace file would be).
        let ours = self.dir.path().display().to_string();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&ours))
            .collect();
        points.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in points {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
    }
}

/// The host's network interfaces other than containers' veth ends (which come and go with other tests'
/// containers), to check that a private daemon changed none of them.
pub fn host_interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with("veth"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
