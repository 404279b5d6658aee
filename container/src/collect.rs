//! Collection: the [`Containers`] handle (start, collect, status) and the `docker.*` metrics read from each
//! container's cgroup files and network namespace, with rates from the deltas between two collects.

use crate::cgroup::{self, CgroupStats};
use crate::table::{Inner, Tracked};
use crate::{
    connect, procfs, tags, unix_now, watcher, CollectorStatus, ContainerConfig, ContainerError,
    ContainerEvent, OriginResolver, Point, PointKind,
};
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Handle on the Docker collector; cheap to clone. The event watcher stops when the last handle is dropped.
#[derive(Clone)]
pub struct Containers {
    inner: Arc<Inner>,
    _stop: Arc<DropGuard>,
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

#[derive(Clone, Debug)]
pub(crate) struct Prev {
    at: Instant,
    stats: CgroupStats,
    net: Option<(u64, u64)>,
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
            gauges(&mut points, &s, t.started_unix, now_unix, &t.tags);
            if let Some(pr) = prev_map.get(&t.id) {
                let secs = now.duration_since(pr.at).as_secs_f64();
                rates(&mut points, pr, &s, net, secs, &t.tags);
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

/// A container's gauges: memory, CPU shares and uptime.
fn gauges(
    p: &mut Vec<Point>,
    s: &CgroupStats,
    started_unix: Option<i64>,
    now_unix: i64,
    tags: &[String],
) {
    let bytes = |v: Option<u64>| v.map(|v| v as f64);
    let in_use = match (s.mem_usage, s.mem_limit) {
        (Some(u), Some(l)) if l > 0 => Some(u as f64 / l as f64),
        _ => None,
    };
    let uptime = started_unix.map(|st| (now_unix - st).max(0) as f64);
    for (name, value) in [
        ("docker.mem.rss", bytes(s.mem_rss)),
        ("docker.mem.cache", bytes(s.mem_cache)),
        ("docker.mem.swap", bytes(s.mem_swap)),
        ("docker.mem.limit", bytes(s.mem_limit)),
        ("docker.mem.working_set", bytes(s.mem_working_set)),
        ("docker.mem.in_use", in_use),
        ("docker.cpu.shares", bytes(s.cpu_shares)),
        ("docker.uptime", uptime),
    ] {
        push(p, name, PointKind::Gauge, value, tags);
    }
}

/// A container's rates since the previous collect `pr`, `secs` ago: CPU (as a percentage of one core), I/O
/// and network.
fn rates(
    p: &mut Vec<Point>,
    pr: &Prev,
    s: &CgroupStats,
    net: Option<(u64, u64)>,
    secs: f64,
    tags: &[String],
) {
    let pct = |a: Option<u64>, b: Option<u64>| rate(a, b, secs).map(|ns_per_s| ns_per_s / 1e7);
    let ps = &pr.stats;
    let (prx, ptx) = (pr.net.map(|n| n.0), pr.net.map(|n| n.1));
    for (name, value) in [
        ("docker.cpu.usage", pct(ps.cpu_total_ns, s.cpu_total_ns)),
        ("docker.cpu.user", pct(ps.cpu_user_ns, s.cpu_user_ns)),
        ("docker.cpu.system", pct(ps.cpu_system_ns, s.cpu_system_ns)),
        (
            "docker.cpu.throttled",
            rate(ps.throttled_periods, s.throttled_periods, secs),
        ),
        (
            "docker.cpu.throttled.time",
            pct(ps.throttled_ns, s.throttled_ns),
        ),
        (
            "docker.io.read_bytes",
            rate(ps.io_read_bytes, s.io_read_bytes, secs),
        ),
        (
            "docker.io.write_bytes",
            rate(ps.io_write_bytes, s.io_write_bytes, secs),
        ),
        ("docker.net.bytes_rcvd", rate(prx, net.map(|n| n.0), secs)),
        ("docker.net.bytes_sent", rate(ptx, net.map(|n| n.1), secs)),
    ] {
        push(p, name, PointKind::Rate, value, tags);
    }
}
