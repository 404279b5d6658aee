//! Docker and ECS collection for kelpie, the way the Datadog Agent's docker check sees a host.
//!
//! - [`Containers::collect`]: `docker.*` metrics for every running container, numbers read from cgroup files
//!   under `HOST_SYS` (v1 and v2) and `$HOST_PROC/<pid>/net/dev`, never from Docker's per-container stats API;
//!   one `list` call per interval and one `inspect` per new container.
//! - An event watcher task (started by [`Containers::start`]) that follows Docker's event stream, turns failed
//!   `die`s and `oom`s into events, keeps the container table and origin tags current, and feeds the ECS
//!   [`deploy::DeployDetector`]. It reconnects with backoff and de-duplicates replayed events.
//! - [`OriginResolver`]: pid or container id → tags, for DogStatsD origin detection.
//!
//! This crate does not depend on the agent: it produces [`Point`]s and [`ContainerEvent`]s that the agent turns
//! into its own series and events.

pub mod cgroup;
pub mod deploy;
pub mod ecs;
pub mod filter;
pub mod origin;
pub mod procfs;
pub mod tags;
mod watcher;

pub use origin::{ContainerOrigin, OriginResolver, OriginTags};

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
use bollard::Docker;
use cgroup::{CgroupPaths, CgroupStats};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// How a [`Point`] is to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointKind {
    Gauge,
    /// A per-second value already computed from deltas.
    Rate,
    Count,
}

/// One metric value of one container (or of the container counts).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub name: &'static str,
    pub kind: PointKind,
    pub value: f64,
    pub tags: Vec<String>,
}

/// A Datadog event produced from Docker (failed `die`, `oom`) or by the deploy detector.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerEvent {
    pub title: String,
    pub text: String,
    /// `error`, `warning`, `info` or `success`.
    pub alert_type: &'static str,
    pub aggregation_key: Option<String>,
    /// Always `docker`.
    pub source_type_name: &'static str,
    /// Unix seconds.
    pub timestamp: i64,
    pub tags: Vec<String>,
    pub priority: Option<&'static str>,
}

/// Where to find Docker, the host's proc/sys and the ECS agent.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    /// `DOCKER_HOST` (`unix:///path` or `tcp://host:port`); `None` = `unix:///var/run/docker.sock`.
    pub docker_host: Option<String>,
    pub host_proc: PathBuf,
    pub host_sys: PathBuf,
    /// ECS agent introspection API base URL.
    pub ecs_agent_url: String,
    /// This host's name, used in deploy event titles.
    pub hostname: String,
    /// How long the deploy detector waits for the rest of a deploy's containers before emitting its event.
    pub deploy_debounce: Duration,
    /// Container tags up to this cardinality tag DogStatsD traffic (`dogstatsd_tag_cardinality`).
    pub origin_cardinality: tags::TagCardinality,
    /// Extra tags from labels and environment (`container_labels_as_tags`, `container_env_as_tags`).
    pub tag_rules: tags::TagRules,
    /// Containers whose metrics are not collected (`container_exclude`, `container_include`, …).
    pub metrics_filter: filter::ContainerFilter,
}

impl Default for ContainerConfig {
    /// From the environment: `DOCKER_HOST`, `HOST_PROC` (default `/proc`), `HOST_SYS` (default `/sys`),
    /// `DD_ECS_AGENT_URL` (default `http://localhost:51678`); hostname empty; 5 s debounce.
    fn default() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        ContainerConfig {
            docker_host: env("DOCKER_HOST"),
            host_proc: env("HOST_PROC")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/proc".into()),
            host_sys: env("HOST_SYS")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/sys".into()),
            ecs_agent_url: env("DD_ECS_AGENT_URL")
                .unwrap_or_else(|| "http://localhost:51678".into()),
            hostname: String::new(),
            deploy_debounce: Duration::from_secs(5),
            origin_cardinality: tags::TagCardinality::Low,
            tag_rules: tags::TagRules::default(),
            metrics_filter: filter::ContainerFilter::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("cannot connect to Docker at {at}: {reason}")]
    Connect { at: String, reason: String },
    #[error("Docker request failed: {0}")]
    Docker(String),
    #[error("ECS agent introspection API: {0}")]
    Ecs(String),
}

/// What `kelpie status` shows for the docker collector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectorStatus {
    /// Running containers at the last collect (or as the event stream last saw them).
    pub running: usize,
    pub last_error: Option<String>,
    /// Whether the Docker event stream is connected.
    pub events_connected: bool,
    /// Events handed to the agent.
    pub events_sent: u64,
    /// Events dropped because the agent's channel was full or closed.
    pub events_dropped: u64,
    /// Times the event stream was (re)connected.
    pub event_stream_connects: u64,
    /// `Some(true)` when the ECS introspection API answered the last time it was asked.
    pub ecs_reachable: Option<bool>,
    /// Cluster reported by the ECS agent.
    pub ecs_cluster: Option<String>,
}

/// A running container as the collector knows it.
#[derive(Debug)]
pub(crate) struct Tracked {
    pub id: String,
    pub name: String,
    pub image: String,
    pub pid: Option<i32>,
    pub started_unix: Option<i64>,
    pub tags: Arc<[String]>,
    /// The configured extra tags among `tags`, with their cardinality.
    pub extra: Vec<(String, tags::TagCardinality)>,
    /// Left out of docker.* metrics by the configured filters.
    pub metrics_excluded: bool,
    pub labels: HashMap<String, String>,
    pub cgroup: Mutex<Option<CgroupPaths>>,
}

#[derive(Clone, Debug)]
struct Prev {
    at: Instant,
    stats: CgroupStats,
    net: Option<(u64, u64)>,
}

pub(crate) struct Inner {
    pub cfg: ContainerConfig,
    pub docker: Docker,
    pub origin: OriginResolver,
    pub tracked: RwLock<HashMap<String, Arc<Tracked>>>,
    prev: Mutex<HashMap<String, Prev>>,
    pub last_error: Mutex<Option<String>>,
    pub connected: AtomicBool,
    pub events_sent: AtomicU64,
    pub events_dropped: AtomicU64,
    pub connects: AtomicU64,
    pub ecs_reachable: Mutex<Option<bool>>,
    pub ecs_cluster: Mutex<Option<String>>,
}

/// Handle on the Docker collector; cheap to clone. The event watcher stops when the last handle is dropped.
#[derive(Clone)]
pub struct Containers {
    inner: Arc<Inner>,
    _stop: Arc<DropGuard>,
}

pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Connects to Docker as `DOCKER_HOST` says and negotiates the API version (the daemon may be older than
/// bollard's default).
pub async fn connect(docker_host: Option<&str>) -> Result<Docker, ContainerError> {
    let at = docker_host
        .unwrap_or("unix:///var/run/docker.sock")
        .to_string();
    let err = |reason: String| ContainerError::Connect {
        at: at.clone(),
        reason,
    };
    let docker = if let Some(path) = at.strip_prefix("unix://") {
        Docker::connect_with_unix(path, 120, bollard::API_DEFAULT_VERSION)
    } else if at.starts_with("tcp://") || at.starts_with("http://") {
        Docker::connect_with_http(&at, 120, bollard::API_DEFAULT_VERSION)
    } else if at.starts_with('/') {
        Docker::connect_with_unix(&at, 120, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(err("unsupported scheme (use unix:// or tcp://)".into()));
    }
    .map_err(|e| err(connect_reason(&e, &at)))?;
    let docker = tokio::time::timeout(Duration::from_secs(10), docker.negotiate_version())
        .await
        .map_err(|_| err("no answer within 10 s".into()))?
        .map_err(|e| err(connect_reason(&e, &at)))?;
    tokio::time::timeout(Duration::from_secs(10), docker.ping())
        .await
        .map_err(|_| err("ping got no answer within 10 s".into()))?
        .map_err(|e| err(connect_reason(&e, &at)))?;
    Ok(docker)
}

/// Why connecting to Docker failed, in words a person can act on: the whole error chain (bollard's own
/// message is only `client error (Connect)`), and for a socket the agent may not open, the fix.
fn connect_reason(e: &(dyn std::error::Error + 'static), at: &str) -> String {
    let mut parts = vec![e.to_string()];
    let mut io_kind = None;
    let mut cur = e.source();
    while let Some(inner) = cur {
        let text = inner.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        cur = inner.source();
    }
    let socket = at.strip_prefix("unix://").unwrap_or(at);
    match io_kind {
        Some(std::io::ErrorKind::PermissionDenied) => permission_hint(socket),
        Some(std::io::ErrorKind::NotFound) if socket.starts_with('/') => format!(
            "{socket} does not exist (mount the Docker socket: -v /var/run/docker.sock:/var/run/docker.sock:ro, or set \
             DOCKER_HOST; container_collection: false turns Docker collection off)"
        ),
        _ => parts.join(": "),
    }
}

/// `permission denied on <socket>` with the socket's group and how to join it.
pub fn permission_hint(socket: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is this process's user.
    let uid =
        std::fs::metadata("/proc/self").map_or_else(|_| "?".to_string(), |m| m.uid().to_string());
    match std::fs::metadata(socket) {
        Ok(m) => {
            let gid = m.gid();
            format!(
                "permission denied on {socket} (owned by uid {}, gid {gid}, mode {:o}; the agent runs as uid {uid}): \
                 give the agent the socket's group with `docker run --group-add {gid}`, or `\"user\": \"10001:{gid}\"` \
                 in an ECS task definition",
                m.uid(),
                m.mode() & 0o777
            )
        }
        Err(_) => format!(
            "permission denied on {socket} (the agent runs as uid {uid}): give the agent the socket's group with \
             `docker run --group-add <gid>`, or `\"user\": \"10001:<gid>\"` in an ECS task definition (the gid is \
             `stat -c %g {socket}` on the host)"
        ),
    }
}

impl Inner {
    /// Inspects a container; `Ok(None)` when it is gone or not running.
    pub(crate) async fn inspect(&self, id: &str) -> Result<Option<Arc<Tracked>>, ContainerError> {
        let resp = match self
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(r) => r,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(ContainerError::Docker(format!("inspect {id}: {e}"))),
        };
        let state = resp.state.unwrap_or_default();
        if state.running != Some(true) {
            return Ok(None);
        }
        let full_id = resp.id.unwrap_or_else(|| id.to_string());
        let name = resp
            .name
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        let config = resp.config.unwrap_or_default();
        let image = config.image.unwrap_or_default();
        let labels = config.labels.unwrap_or_default();
        let pid = state
            .pid
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| *p > 0);
        let started_unix = state.started_at.as_deref().and_then(procfs::parse_rfc3339);
        let mut tags = tags::container_tags(&full_id, &name, &image, &labels);
        let extra = self
            .cfg
            .tag_rules
            .extra_tags(&labels, config.env.as_deref().unwrap_or_default());
        tags.extend(extra.iter().map(|(t, _)| t.clone()));
        tags.sort();
        tags.dedup();
        let metrics_excluded = self.cfg.metrics_filter.excludes(&name, &image);
        Ok(Some(Arc::new(Tracked {
            id: full_id,
            name,
            image,
            pid,
            started_unix,
            tags: tags.into(),
            extra,
            metrics_excluded,
            labels,
            cgroup: Mutex::new(None),
        })))
    }

    /// Adds a running container to the table and the origin resolver.
    pub(crate) fn track(&self, t: Arc<Tracked>) {
        self.origin.insert_with(&t.id, &t.tags, &t.extra);
        // Its cgroup directory now (a few stat calls): the stats need it anyway, and its inode lets the
        // container's `|c:in-<inode>` lines resolve at once.
        {
            let mut g = t.cgroup.lock();
            if g.is_none() {
                *g = cgroup::resolve(&self.cfg.host_proc, &self.cfg.host_sys, t.pid, &t.id);
            }
            let dir = match &*g {
                Some(CgroupPaths::V2(dir)) => Some(dir),
                Some(CgroupPaths::V1 { memory, .. }) => memory.as_ref(),
                None => None,
            };
            if let Some(m) = dir.and_then(|d| std::fs::metadata(d).ok()) {
                use std::os::unix::fs::MetadataExt;
                self.origin.learn_cgroup_inode(m.ino(), &t.id);
            }
        }
        let mut map = self.tracked.write();
        map.insert(t.id.clone(), t);
    }

    /// Forgets a container (it died or was removed).
    pub(crate) fn untrack(&self, id: &str) -> Option<Arc<Tracked>> {
        self.origin.invalidate(id);
        self.prev.lock().remove(id);
        self.tracked.write().remove(id)
    }

    pub(crate) fn set_error(&self, e: &ContainerError) {
        *self.last_error.lock() = Some(e.to_string());
    }

    /// Lists running containers and inspects the ones not tracked yet; drops tracked ones that are gone.
    /// Returns the summaries (all states) for the counts.
    pub(crate) async fn refresh(
        &self,
    ) -> Result<Vec<bollard::models::ContainerSummary>, ContainerError> {
        let opts = ListContainersOptionsBuilder::new().all(true).build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| ContainerError::Docker(format!("list containers: {e}")))?;
        let running: Vec<&str> = list
            .iter()
            .filter(|c| {
                matches!(
                    c.state,
                    Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                )
            })
            .filter_map(|c| c.id.as_deref())
            .collect();
        let missing: Vec<&str> = {
            let map = self.tracked.read();
            running
                .iter()
                .copied()
                .filter(|id| !map.contains_key(*id))
                .collect()
        };
        for id in missing {
            match self.inspect(id).await {
                Ok(Some(t)) => self.track(t),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "inspect failed; will retry next interval"),
            }
        }
        let gone: Vec<String> = {
            let map = self.tracked.read();
            map.keys()
                .filter(|k| !running.contains(&k.as_str()))
                .cloned()
                .collect()
        };
        for id in gone {
            self.untrack(&id);
        }
        Ok(list)
    }
}

impl Containers {
    /// Connects (ping), lists containers, starts the event watcher task that feeds `events` (bounded; a full
    /// channel is a counted drop).
    pub async fn start(
        cfg: ContainerConfig,
        events: mpsc::Sender<ContainerEvent>,
    ) -> Result<Containers, ContainerError> {
        let docker = connect(cfg.docker_host.as_deref()).await?;
        let (wanted_tx, wanted_rx) = mpsc::channel(256);
        let inner = Arc::new(Inner {
            origin: OriginResolver::new(cfg.host_proc.clone(), Some(wanted_tx))
                .with_cgroup_mount(&cgroup::cgroup_root(&cfg.host_sys))
                .with_cardinality(cfg.origin_cardinality),
            cfg,
            docker,
            tracked: RwLock::new(HashMap::new()),
            prev: Mutex::new(HashMap::new()),
            last_error: Mutex::new(None),
            connected: AtomicBool::new(false),
            events_sent: AtomicU64::new(0),
            events_dropped: AtomicU64::new(0),
            connects: AtomicU64::new(0),
            ecs_reachable: Mutex::new(None),
            ecs_cluster: Mutex::new(None),
        });
        let listed_at = unix_now();
        inner.refresh().await?;
        let token = CancellationToken::new();
        let w = watcher::Watcher::new(inner.clone(), events, wanted_rx, token.clone(), listed_at);
        tokio::spawn(w.run());
        Ok(Containers {
            inner,
            _stop: Arc::new(token.drop_guard()),
        })
    }

    /// Metrics for all running containers + `docker.containers.*` counts; rates from deltas since the previous
    /// call (a container's first call has no rates).
    pub async fn collect(&self) -> Result<Vec<Point>, ContainerError> {
        let list = match self.inner.refresh().await {
            Ok(l) => l,
            Err(e) => {
                self.inner.set_error(&e);
                return Err(e);
            }
        };
        let mut counts: BTreeMap<Vec<String>, (u64, u64)> = BTreeMap::new();
        let (mut running, mut stopped) = (0u64, 0u64);
        for c in &list {
            let is_running = matches!(
                c.state,
                Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
            );
            let empty = HashMap::new();
            let labels = c.labels.as_ref().unwrap_or(&empty);
            let t = tags::count_tags(c.image.as_deref().unwrap_or(""), labels);
            let e = counts.entry(t).or_default();
            if is_running {
                e.0 += 1;
                running += 1;
            } else {
                e.1 += 1;
                stopped += 1;
            }
        }
        let inner = self.inner.clone();
        let mut points = tokio::task::spawn_blocking(move || inner.read_all())
            .await
            .map_err(|e| ContainerError::Docker(format!("cgroup reader task failed: {e}")))?;
        for (t, (r, s)) in counts {
            points.push(Point {
                name: "docker.containers.running",
                kind: PointKind::Gauge,
                value: r as f64,
                tags: t.clone(),
            });
            points.push(Point {
                name: "docker.containers.stopped",
                kind: PointKind::Gauge,
                value: s as f64,
                tags: t,
            });
        }
        for (name, v) in [
            ("docker.containers.running.total", running),
            ("docker.containers.stopped.total", stopped),
        ] {
            points.push(Point {
                name,
                kind: PointKind::Gauge,
                value: v as f64,
                tags: Vec::new(),
            });
        }
        *self.inner.last_error.lock() = None;
        Ok(points)
    }

    pub fn status(&self) -> CollectorStatus {
        let i = &self.inner;
        CollectorStatus {
            running: i.tracked.read().len(),
            last_error: i.last_error.lock().clone(),
            events_connected: i.connected.load(Relaxed),
            events_sent: i.events_sent.load(Relaxed),
            events_dropped: i.events_dropped.load(Relaxed),
            event_stream_connects: i.connects.load(Relaxed),
            ecs_reachable: *i.ecs_reachable.lock(),
            ecs_cluster: i.ecs_cluster.lock().clone(),
        }
    }

    pub fn origin(&self) -> OriginResolver {
        self.inner.origin.clone()
    }
}

fn push(
    points: &mut Vec<Point>,
    name: &'static str,
    kind: PointKind,
    value: Option<f64>,
    tags: &[String],
) {
    if let Some(v) = value.filter(|v| v.is_finite()) {
        points.push(Point {
            name,
            kind,
            value: v,
            tags: tags.to_vec(),
        });
    }
}

/// Per-second rate of a cumulative counter; `None` on the first sample or a reset.
fn rate(prev: Option<u64>, cur: Option<u64>, secs: f64) -> Option<f64> {
    let (p, c) = (prev?, cur?);
    (c >= p && secs > 0.0).then(|| (c - p) as f64 / secs)
}

/// Sum of received and sent bytes over a network namespace's interfaces, loopback excluded.
pub fn net_totals(host_proc: &Path, pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(host_proc.join(pid.to_string()).join("net/dev")).ok()?;
    let devs = procfs::parse_net_dev(&text);
    let mut any = false;
    let (mut rx, mut tx) = (0u64, 0u64);
    for d in devs.iter().filter(|d| d.iface != "lo") {
        any = true;
        rx = rx.saturating_add(d.rx_bytes);
        tx = tx.saturating_add(d.tx_bytes);
    }
    any.then_some((rx, tx))
}

impl Inner {
    /// Reads cgroup and net files of every tracked container (blocking file I/O).
    fn read_all(&self) -> Vec<Point> {
        let tracked: Vec<Arc<Tracked>> = self.tracked.read().values().cloned().collect();
        let now = Instant::now();
        let now_unix = unix_now();
        let mut points = Vec::with_capacity(tracked.len() * 16);
        let mut next_prev = HashMap::with_capacity(tracked.len());
        let prev_map = std::mem::take(&mut *self.prev.lock());
        for t in tracked.iter().filter(|t| !t.metrics_excluded) {
            let paths = {
                let mut g = t.cgroup.lock();
                if g.is_none() {
                    *g = cgroup::resolve(&self.cfg.host_proc, &self.cfg.host_sys, t.pid, &t.id);
                }
                g.clone()
            };
            let Some(paths) = paths else {
                tracing::debug!(id = %t.id, "no cgroup found for container");
                continue;
            };
            let s = cgroup::read_stats(&paths);
            if s == CgroupStats::default() {
                // The cgroup vanished: the container is stopping. Forget the cached path.
                *t.cgroup.lock() = None;
                continue;
            }
            let net = t.pid.and_then(|p| net_totals(&self.cfg.host_proc, p));
            let tags = &t.tags;
            let p = &mut points;
            use PointKind::*;
            push(
                p,
                "docker.mem.rss",
                Gauge,
                s.mem_rss.map(|v| v as f64),
                tags,
            );
            push(
                p,
                "docker.mem.cache",
                Gauge,
                s.mem_cache.map(|v| v as f64),
                tags,
            );
            push(
                p,
                "docker.mem.swap",
                Gauge,
                s.mem_swap.map(|v| v as f64),
                tags,
            );
            push(
                p,
                "docker.mem.limit",
                Gauge,
                s.mem_limit.map(|v| v as f64),
                tags,
            );
            push(
                p,
                "docker.mem.working_set",
                Gauge,
                s.mem_working_set.map(|v| v as f64),
                tags,
            );
            let in_use = match (s.mem_usage, s.mem_limit) {
                (Some(u), Some(l)) if l > 0 => Some(u as f64 / l as f64),
                _ => None,
            };
            push(p, "docker.mem.in_use", Gauge, in_use, tags);
            push(
                p,
                "docker.cpu.shares",
                Gauge,
                s.cpu_shares.map(|v| v as f64),
                tags,
            );
            if let Some(st) = t.started_unix {
                push(
                    p,
                    "docker.uptime",
                    Gauge,
                    Some((now_unix - st).max(0) as f64),
                    tags,
                );
            }
            if let Some(pr) = prev_map.get(&t.id) {
                let secs = now.duration_since(pr.at).as_secs_f64();
                let pct = |a: Option<u64>, b: Option<u64>| {
                    rate(a, b, secs).map(|ns_per_s| ns_per_s / 1e7)
                };
                let ps = &pr.stats;
                push(
                    p,
                    "docker.cpu.usage",
                    Rate,
                    pct(ps.cpu_total_ns, s.cpu_total_ns),
                    tags,
                );
                push(
                    p,
                    "docker.cpu.user",
                    Rate,
                    pct(ps.cpu_user_ns, s.cpu_user_ns),
                    tags,
                );
                push(
                    p,
                    "docker.cpu.system",
                    Rate,
                    pct(ps.cpu_system_ns, s.cpu_system_ns),
                    tags,
                );
                push(
                    p,
                    "docker.cpu.throttled",
                    Rate,
                    rate(ps.throttled_periods, s.throttled_periods, secs),
                    tags,
                );
                push(
                    p,
                    "docker.cpu.throttled.time",
                    Rate,
                    pct(ps.throttled_ns, s.throttled_ns),
                    tags,
                );
                push(
                    p,
                    "docker.io.read_bytes",
                    Rate,
                    rate(ps.io_read_bytes, s.io_read_bytes, secs),
                    tags,
                );
                push(
                    p,
                    "docker.io.write_bytes",
                    Rate,
                    rate(ps.io_write_bytes, s.io_write_bytes, secs),
                    tags,
                );
                let (prx, ptx) = (pr.net.map(|n| n.0), pr.net.map(|n| n.1));
                push(
                    p,
                    "docker.net.bytes_rcvd",
                    Rate,
                    rate(prx, net.map(|n| n.0), secs),
                    tags,
                );
                push(
                    p,
                    "docker.net.bytes_sent",
                    Rate,
                    rate(ptx, net.map(|n| n.1), secs),
                    tags,
                );
            }
            next_prev.insert(
                t.id.clone(),
                Prev {
                    at: now,
                    stats: s,
                    net,
                },
            );
        }
        *self.prev.lock() = next_prev;
        points
    }
}

#[cfg(test)]
mod connect_tests {
    use super::*;

    /// An error whose source is `inner`, like hyper's `client error (Connect)` around the io error.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("client error (Connect)")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn permission_denied_names_the_socket_group_and_the_fix() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("docker.sock");
        std::fs::write(&sock, "").unwrap();
        let gid = std::fs::metadata(&sock).unwrap().gid();
        let e = Wrapped(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        let at = format!("unix://{}", sock.display());
        let text = connect_reason(&e, &at);
        assert!(text.starts_with("permission denied on "), "{text}");
        assert!(text.contains(&format!("--group-add {gid}")), "{text}");
        assert!(
            text.contains(&format!("\"user\": \"10001:{gid}\"")),
            "{text}"
        );
        // Other errors keep their whole chain instead of bollard's bare `client error (Connect)`.
        let e = Wrapped(std::io::Error::other("connection reset"));
        assert_eq!(
            connect_reason(&e, &at),
            "client error (Connect): connection reset"
        );
        let e = Wrapped(std::io::Error::from(std::io::ErrorKind::NotFound));
        assert!(connect_reason(&e, "unix:///nope/docker.sock").contains("does not exist"));
    }
}
