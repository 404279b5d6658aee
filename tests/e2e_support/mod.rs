//! Shared by tests/e2e_one_host.rs and tests/e2e_many_hosts.rs: the real images (scripts/build-image.sh) run on this
//! machine's Docker engine, with every container, network and volume removed on drop (also when a test fails).
//!
//! Skipped with a printed reason when there is no Docker engine; a failure instead under
//! `KELPIE_REQUIRE_DOCKER=1`. `IMAGE_TAG` (default `latest`) picks the images' tag, as for the build script.
#![allow(dead_code)]

use serde_json::Value;
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest single wait of these tests.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn tag() -> String {
    std::env::var("IMAGE_TAG")
        .ok()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "latest".to_string())
}

pub fn image(name: &str) -> String {
    format!("{name}:{}", tag())
}

fn docker_missing() -> Option<String> {
    match Command::new("docker")
        .args(["version", "-f", "{{.Server.Version}}"])
        .output()
    {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "`docker version` failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run the docker CLI: {e}")),
    }
}

static BUILT: Mutex<bool> = Mutex::new(false);

/// True when Docker is usable and the three images are built (scripts/build-image.sh, idempotent: seconds when
/// nothing changed, a few minutes the first time). Prints why the test is skipped otherwise, or panics under
/// `KELPIE_REQUIRE_DOCKER=1`.
pub fn ready() -> bool {
    // .ci/run runs these container tests on their own after the rest of the suite (with one retry of a known
    // intermittent miss of a just-started container's tags); inside that first pass they step aside.
    if std::env::var("KELPIE_E2E_SEPARATE").as_deref() == Ok("1") {
        eprintln!("deferred: KELPIE_E2E_SEPARATE=1, .ci/run runs the whole-host tests separately");
        return false;
    }
    if let Some(why) = docker_missing() {
        if std::env::var("KELPIE_REQUIRE_DOCKER").as_deref() == Ok("1") {
            panic!("KELPIE_REQUIRE_DOCKER=1 but no Docker engine: {why}");
        }
        eprintln!(
            "SKIPPED: no Docker engine ({why}); set KELPIE_REQUIRE_DOCKER=1 to make this a failure"
        );
        return false;
    }
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    // `KELPIE_E2E_NO_BUILD=1`: the images were just built by scripts/build-image.sh (as .ci/run does).
    if std::env::var("KELPIE_E2E_NO_BUILD").as_deref() == Ok("1") {
        *built = true;
    }
    if !*built {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-image.sh");
        eprintln!("e2e: running {script} (IMAGE_TAG={})", tag());
        let started = Instant::now();
        let mut cmd = Command::new("bash");
        cmd.arg(script).env("IMAGE_TAG", tag());
        // Run it as from a shell: the variables `cargo test` sets for test binaries (CARGO_PKG_*,
        // CARGO_MANIFEST_DIR, ...) would otherwise change the inner cargo's fingerprints and rebuild everything.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CARGO") && k != "CARGO_HOME" && k != "CARGO_TARGET_DIR" {
                cmd.env_remove(&k);
            }
        }
        let out = cmd.output().expect("run scripts/build-image.sh");
        eprintln!(
            "e2e: build-image.sh took {:.0?}:\n{}",
            started.elapsed(),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .filter(|l| l.starts_with("build-image:"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(
            out.status.success(),
            "scripts/build-image.sh failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        *built = true;
    }
    for name in ["kelpie", "kelpie-standin", "kelpie-example-service"] {
        let ok = docker(&["image", "inspect", "-f", "{{.Id}}", &image(name)]);
        assert!(
            ok.status.success(),
            "image {} missing after scripts/build-image.sh: {}",
            image(name),
            "run scripts/build-image.sh"
        );
    }
    true
}

pub fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI")
}

/// Runs a docker command that must succeed; returns its trimmed stdout.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Everything a test created; removed on drop in dependency order (containers, then volumes and networks).
#[derive(Default)]
pub struct Cleanup {
    containers: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

impl Cleanup {
    /// `kelpie-e2e-<pid>-<what>`: unique per test run.
    pub fn name(what: &str) -> String {
        format!("kelpie-e2e-{}-{what}", std::process::id())
    }

    pub fn network(&mut self, what: &str) -> String {
        let name = Self::name(what);
        self.networks.push(name.clone());
        docker_ok(&["network", "create", "--label", "kelpie-test=1", &name]);
        name
    }

    pub fn volume(&mut self, what: &str) -> String {
        let name = Self::name(what);
        self.volumes.push(name.clone());
        docker_ok(&["volume", "create", "--label", "kelpie-test=1", &name]);
        name
    }

    /// `docker run -d --name <name> --label kelpie-test=1 <args>`; the container is removed on drop.
    pub fn run(&mut self, what: &str, args: &[&str]) -> String {
        let name = Self::name(what);
        self.containers.push(name.clone());
        let mut all = vec!["run", "-d", "--name", &name, "--label", "kelpie-test=1"];
        all.extend_from_slice(args);
        docker_ok(&all);
        name
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for c in &self.containers {
                let logs = docker(&["logs", "--tail", "40", c]);
                eprintln!(
                    "--- last logs of {c} ---\n{}{}",
                    String::from_utf8_lossy(&logs.stdout),
                    String::from_utf8_lossy(&logs.stderr)
                );
            }
        }
        for c in self.containers.iter().rev() {
            let _ = docker(&["rm", "-f", "-v", c]);
        }
        for v in &self.volumes {
            let _ = docker(&["volume", "rm", "-f", v]);
        }
        for n in &self.networks {
            let _ = docker(&["network", "rm", n]);
        }
    }
}

pub fn inspect(name: &str, format: &str) -> String {
    docker_ok(&["inspect", "-f", format, name])
}

/// Polls `pred` every 250 ms for at most `timeout` (≤ [`WAIT`]); true as soon as it holds.
pub fn wait_for(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout.min(WAIT);
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits until the container's HEALTHCHECK (the image's `kelpie status --health`) reports `healthy`.
pub fn wait_healthy(name: &str) {
    let mut last = String::new();
    let ok = wait_for(WAIT, || {
        last = inspect(name, "{{.State.Status}} {{.State.Health.Status}}");
        last == "running healthy"
    });
    assert!(ok, "{name} never became healthy (last: {last})");
}

/// Waits for a container to exit; returns its exit code.
pub fn wait_exit(name: &str) -> i64 {
    let mut last = String::new();
    let ok = wait_for(WAIT, || {
        last = inspect(name, "{{.State.Status}}");
        last == "exited" || last == "dead"
    });
    assert!(ok, "{name} did not exit within {WAIT:?} (state {last})");
    inspect(name, "{{.State.ExitCode}}")
        .parse()
        .expect("State.ExitCode")
}

/// What the example service says it recorded (its last stdout line): `example.requests` increments.
pub fn requests_sent(name: &str) -> u64 {
    let logs = docker_ok(&["logs", name]);
    let line = logs
        .lines()
        .rev()
        .find(|l| l.starts_with("example-service: "))
        .unwrap_or_else(|| panic!("{name} printed no summary line; stdout:\n{logs}"));
    let field = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    assert_eq!(field("dropped_queue_full="), 0, "{name}: {line}");
    assert_eq!(field("send_errors="), 0, "{name}: {line}");
    field("example.requests=")
}

/// The Docker socket's group, for `--group-add` (the agent runs as uid 10001).
pub fn docker_socket_gid() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/var/run/docker.sock")
        .map(|m| m.gid().to_string())
        .expect("stat /var/run/docker.sock")
}

/// The stand-in, read through its published port.
pub struct Standin {
    pub url: String,
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Standin {
    /// Starts `kelpie-standin` on `network` with its port published on 127.0.0.1.
    pub fn start(c: &mut Cleanup, network: &str) -> (String, Standin) {
        let img = image("kelpie-standin");
        let name = c.run(
            "standin",
            &["--network", network, "-p", "127.0.0.1::8080", &img],
        );
        let port = docker_ok(&["port", &name, "8080/tcp"]);
        let addr = port
            .lines()
            .find(|l| l.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("no 127.0.0.1 port in `docker port`: {port}"))
            .to_string();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let s = Standin {
            url: format!("http://{addr}"),
            rt,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("reqwest client"),
        };
        assert!(
            wait_for(WAIT, || s.try_received().is_some()),
            "stand-in {name} never answered at {}",
            s.url
        );
        (name, s)
    }

    fn try_received(&self) -> Option<Received> {
        let url = format!("{}/_standin/received", self.url);
        self.rt.block_on(async {
            let r = self.client.get(&url).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.json::<Value>().await.ok().map(Received)
        })
    }

    pub fn received(&self) -> Received {
        self.try_received()
            .unwrap_or_else(|| panic!("GET {}/_standin/received failed", self.url))
    }

    /// Polls until `pred` holds on what was received; panics with `what` after [`WAIT`].
    pub fn wait(&self, what: &str, pred: impl Fn(&Received) -> bool) -> Received {
        let mut last = None;
        let ok = wait_for(WAIT, || {
            let r = self.try_received();
            let hit = r.as_ref().is_some_and(&pred);
            last = r;
            hit
        });
        let r = last.unwrap_or_else(|| self.received());
        assert!(
            ok,
            "stand-in: timed out waiting for {what}; {}",
            r.summary()
        );
        r
    }
}

/// `GET /_standin/received` (standin/src/intake.rs `Received`), read as JSON.
pub struct Received(pub Value);

/// One series as received.
pub struct Series<'a>(pub &'a Value);

impl Series<'_> {
    pub fn name(&self) -> &str {
        self.0["name"].as_str().unwrap_or("")
    }
    pub fn host(&self) -> Option<&str> {
        self.0["host"].as_str()
    }
    pub fn tags(&self) -> Vec<&str> {
        self.0["tags"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags().contains(&tag)
    }
    /// Σ value × interval: a counter's total (counters arrive as rates over their interval).
    pub fn count_total(&self) -> f64 {
        let interval = self.0["interval"].as_f64().unwrap_or(0.0);
        let interval = if interval > 0.0 { interval } else { 1.0 };
        self.0["points"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| p.get(1).and_then(Value::as_f64))
                    .map(|v| v * interval)
                    .sum()
            })
            .unwrap_or(0.0)
    }
}

impl Received {
    pub fn series(&self) -> impl Iterator<Item = Series<'_>> {
        self.0["series"]
            .as_array()
            .into_iter()
            .flatten()
            .map(Series)
    }

    /// Series named `name` carrying every tag of `tags`.
    pub fn find(&self, name: &str, tags: &[&str]) -> Vec<Series<'_>> {
        self.series()
            .filter(|s| s.name() == name && tags.iter().all(|t| s.has_tag(t)))
            .collect()
    }

    /// Series whose name starts with `prefix`, carrying `tag`.
    pub fn with_prefix(&self, prefix: &str, tag: &str) -> Vec<Series<'_>> {
        self.series()
            .filter(|s| s.name().starts_with(prefix) && s.has_tag(tag))
            .collect()
    }

    pub fn events(&self) -> Vec<&Value> {
        self.0["events"].as_array().into_iter().flatten().collect()
    }

    pub fn event_titles(&self) -> Vec<&str> {
        self.events()
            .into_iter()
            .filter_map(|e| e["title"].as_str())
            .collect()
    }

    pub fn profiles(&self) -> Vec<&Value> {
        self.0["profiles"]
            .as_array()
            .into_iter()
            .flatten()
            .collect()
    }

    pub fn summary(&self) -> String {
        let mut names: Vec<String> = self
            .series()
            .map(|s| format!("{}@{}", s.name(), s.host().unwrap_or("-")))
            .collect();
        names.sort();
        names.dedup();
        let shown: Vec<&String> = names.iter().take(60).collect();
        format!(
            "{} series ({} distinct name@host, first: {:?}), events {:?}, {} profiles, not_kept {}",
            self.0["series"].as_array().map_or(0, Vec::len),
            names.len(),
            shown,
            self.event_titles(),
            self.profiles().len(),
            self.0["not_kept"]
        )
    }
}

/// Starts an agent container as documented (SPEC.md §8, docs/deploy.md), pointed at the stand-in, with its
/// DogStatsD socket in `volume`, origin detection on, a 1 s flush and `DD_HOSTNAME=hostname`; the image's own
/// HEALTHCHECK is kept, only checked every second. Returns its name once it is healthy.
pub fn start_agent(
    c: &mut Cleanup,
    what: &str,
    network: &str,
    volume: &str,
    hostname: &str,
    standin: &str,
) -> String {
    let gid = docker_socket_gid();
    let sock_mount = format!("{volume}:/var/run/datadog/");
    let dd_url = format!("DD_DD_URL=http://{standin}:8080");
    let host = format!("DD_HOSTNAME={hostname}");
    let img = image("kelpie");
    let name = c.run(
        what,
        &[
            "--network",
            network,
            "--pid",
            "host",
            "--cgroupns",
            "host",
            "--read-only",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock:ro",
            "--group-add",
            &gid,
            "-v",
            "/proc/:/host/proc/:ro",
            "-v",
            "/sys/fs/cgroup/:/host/sys/fs/cgroup:ro",
            "-v",
            &sock_mount,
            "-e",
            "DD_API_KEY=e2e-test-key",
            "-e",
            &dd_url,
            "-e",
            &host,
            "-e",
            "DD_DOGSTATSD_ORIGIN_DETECTION=true",
            // Container name and id on DogStatsD metrics too (Datadog's default, low, leaves them out): the
            // tests tell the services' containers apart by them.
            "-e",
            "DD_DOGSTATSD_TAG_CARDINALITY=high",
            // No ECS agent here: a closed port on the agent's own loopback, nothing else is contacted.
            "-e",
            "DD_ECS_AGENT_URL=http://127.0.0.1:9",
            "-e",
            "KELPIE_FLUSH_INTERVAL=1s",
            "--health-interval",
            "1s",
            "--health-start-period",
            "30s",
            &img,
        ],
    );
    wait_healthy(&name);
    name
}

/// Where a service runs: its host's network, the agent's socket volume and the agent's container name.
#[derive(Clone, Copy)]
pub struct Host<'a> {
    pub network: &'a str,
    pub volume: &'a str,
    pub agent: &'a str,
}

/// Starts one example-service container sharing `volume` (the agent's socket directory), sending its profiles to
/// `agent` on `network`, with `DD_SERVICE=service DD_ENV=test` and extra `docker run` arguments (labels).
pub fn start_service(
    c: &mut Cleanup,
    what: &str,
    host: Host<'_>,
    service: &str,
    extra: &[&str],
    requests: u32,
) -> String {
    let Host {
        network,
        volume,
        agent,
    } = host;
    let sock_mount = format!("{volume}:/var/run/datadog/:ro");
    let trace = format!("DD_TRACE_AGENT_URL=http://{agent}:8126");
    let svc = format!("DD_SERVICE={service}");
    let img = image("kelpie-example-service");
    let requests = requests.to_string();
    let mut args = vec![
        "--network",
        network,
        "-v",
        &sock_mount,
        "-e",
        "DD_DOGSTATSD_URL=unix:///var/run/datadog/dsd.socket",
        "-e",
        &trace,
        "-e",
        &svc,
        "-e",
        "DD_ENV=test",
        "-e",
        "KELPIE_PROFILING_DURATION=2s",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[&img, "--requests", &requests, "--rate", "100"]);
    c.run(what, &args)
}

/// Profiles whose `event.json` names `service:<service>` in `tags_profiler`.
pub fn profiles_of<'a>(r: &'a Received, service: &str) -> Vec<&'a Value> {
    let want = format!("service:{service}");
    r.profiles()
        .into_iter()
        .filter(|p| {
            p["event"]["tags_profiler"]
                .as_str()
                .is_some_and(|t| t.split(',').any(|x| x == want))
        })
        .collect()
}
