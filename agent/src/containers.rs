//! The Docker and ECS collectors as the flush sees them: connecting to Docker (at start, then retried every
//! minute while it is missing, so a host without Docker runs the rest), their points turned into series,
//! their events into DogStatsD-style events, and their state into the status's `docker` and `ecs` lines.
//! While collection fails (Docker went away after it connected), the first failure is a warning, then a
//! summary at most once a minute, then one info line when it works again ([`crate::outage`]).
//! The collectors themselves are the `kelpie-container` crate.

use crate::config::Config;
use crate::model::{Event, IStr, Series, SeriesKind};
use crate::outage::{secs, Episode};
use crate::status::{CollectorStatus, StatusState};
use kelpie_container::{
    ContainerConfig, ContainerEvent, Containers, OriginResolver, Point, PointKind,
};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// Room for Docker events between the event watcher and the flush.
const EVENT_QUEUE: usize = 1024;

/// How often a missing Docker engine is tried again.
const CONTAINER_RETRY: Duration = Duration::from_secs(60);

/// Connects to Docker; on success publishes the origin resolver and marks the collectors ok.
async fn start_containers(
    ccfg: &ContainerConfig,
    events: &mpsc::Sender<ContainerEvent>,
    state: &StatusState,
    origin_slot: &RwLock<Option<OriginResolver>>,
) -> Option<Containers> {
    match Containers::start(ccfg.clone(), events.clone()).await {
        Ok(c) => {
            *origin_slot.write() = Some(c.origin());
            let mut collectors = state.collectors.lock();
            collectors.insert("docker", CollectorStatus::new("ok"));
            collectors.insert("ecs", ecs_status(&c.status()));
            drop(collectors);
            info!("docker collection started");
            Some(c)
        }
        Err(e) => {
            warn!("docker collection is unavailable (retried every minute): {e}");
            let mut cs = CollectorStatus::new("error");
            cs.error = Some(e.to_string());
            state.collectors.lock().insert("docker", cs);
            state
                .collectors
                .lock()
                .insert("ecs", CollectorStatus::new("off"));
            None
        }
    }
}

/// Turns a container collector point into a series.
fn point_to_series(p: Point, now: i64, interval: i64) -> Series {
    let (kind, interval) = match p.kind {
        PointKind::Gauge => (SeriesKind::Gauge, 0),
        PointKind::Rate => (SeriesKind::Gauge, 0),
        PointKind::Count => (SeriesKind::Count, interval),
    };
    let mut tags: Vec<IStr> = p.tags.iter().map(|t| IStr::from(t.as_str())).collect();
    tags.sort();
    tags.dedup();
    Series {
        name: IStr::from(p.name.to_string().as_str()),
        tags: tags.into(),
        host: IStr::from(""),
        kind,
        interval,
        points: vec![(now, p.value)],
    }
}

/// The ECS line of the status from the container collector's view of the ECS agent.
fn ecs_status(st: &kelpie_container::CollectorStatus) -> CollectorStatus {
    let mut ecs = CollectorStatus::new(match st.ecs_reachable {
        Some(true) => "ok",
        Some(false) => "unreachable (deploys detected from container labels)",
        None => "not queried yet",
    });
    ecs.detail = st.ecs_cluster.as_ref().map(|c| format!("cluster {c}"));
    ecs
}

fn container_event(e: ContainerEvent, hostname: &str) -> Event {
    Event {
        title: e.title,
        text: e.text,
        timestamp: Some(e.timestamp),
        hostname: Some(hostname.to_string()),
        aggregation_key: e.aggregation_key,
        priority: e.priority.map(String::from),
        source_type_name: Some(e.source_type_name.to_string()),
        alert_type: Some(e.alert_type.to_string()),
        tags: e.tags,
        container: None,
        cardinality: None,
    }
}

/// What the log says about failing collections: the first failure, a summary at most once a minute while
/// they fail, the recovery. Each call returns the line to log, if any (a warning, or info for the recovery).
#[derive(Debug, Default)]
struct CollectionLog {
    failing: Option<Episode>,
}

impl CollectionLog {
    fn failed(&mut self, now: Instant, error: &str) -> Option<String> {
        match &mut self.failing {
            None => {
                self.failing = Some(Episode::begin(now));
                Some(format!(
                    "docker collection failed: {error}; container metrics are missing while it fails \
                     (tried at every flush, a summary at most once a minute)"
                ))
            }
            Some(e) => e.failed(now).map(|s| {
                format!(
                    "docker collection has been failing for {} ({} failed collections since the last \
                     message, {} in all; the last: {error})",
                    secs(s.lasted),
                    s.since_last_line,
                    s.failures
                )
            }),
        }
    }

    fn succeeded(&mut self, now: Instant) -> Option<String> {
        let r = self.failing.take()?.end(now);
        Some(format!(
            "docker collection works again after {} ({} failed collections)",
            secs(r.lasted),
            r.failures
        ))
    }
}

/// The collectors translated from the agent's configuration; None when `container_collection` is off.
pub fn container_config(cfg: &Config) -> Option<ContainerConfig> {
    cfg.container_collection.then(|| ContainerConfig {
        docker_host: cfg.docker_host.clone(),
        host_proc: cfg.host_proc.clone(),
        host_sys: cfg.host_sys.clone(),
        ecs_agent_url: cfg.ecs_agent_url.clone(),
        hostname: cfg.hostname.clone(),
        origin_cardinality: cfg.dogstatsd_tag_cardinality,
        tag_rules: cfg.container_tag_rules.clone(),
        metrics_filter: cfg.container_metrics_filter.clone(),
        ..ContainerConfig::default()
    })
}

/// The container collectors the flush reads: connected, or waiting for the next try.
pub struct ContainerSource {
    cfg: Option<ContainerConfig>,
    containers: Option<Containers>,
    next_try: Instant,
    events_tx: mpsc::Sender<ContainerEvent>,
    events: mpsc::Receiver<ContainerEvent>,
    origin_slot: Arc<RwLock<Option<OriginResolver>>>,
    state: Arc<StatusState>,
    hostname: String,
    log: CollectionLog,
}

impl ContainerSource {
    /// Connects to Docker when `cfg` is set (publishing the origin resolver in `origin_slot`); marks the
    /// collectors off otherwise.
    pub async fn start(
        cfg: Option<ContainerConfig>,
        hostname: String,
        state: Arc<StatusState>,
        origin_slot: Arc<RwLock<Option<OriginResolver>>>,
    ) -> ContainerSource {
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let containers = match &cfg {
            Some(ccfg) => start_containers(ccfg, &events_tx, &state, &origin_slot).await,
            None => {
                for name in ["docker", "ecs"] {
                    state
                        .collectors
                        .lock()
                        .insert(name, CollectorStatus::new("off"));
                }
                None
            }
        };
        ContainerSource {
            cfg,
            containers,
            next_try: Instant::now() + CONTAINER_RETRY,
            events_tx,
            events,
            origin_slot,
            state,
            hostname,
            log: CollectionLog::default(),
        }
    }

    /// The containers' series at `now` (trying Docker again first when it is time and this is not the
    /// forced flush at shutdown), and their state into the status.
    pub async fn collect(&mut self, now: i64, interval: i64, force: bool) -> Vec<Series> {
        let mut series = Vec::new();
        if self.containers.is_none() && !force && Instant::now() >= self.next_try {
            if let Some(ccfg) = &self.cfg {
                self.next_try = Instant::now() + CONTAINER_RETRY;
                self.containers =
                    start_containers(ccfg, &self.events_tx, &self.state, &self.origin_slot).await;
            }
        }
        if let Some(c) = &self.containers {
            match c.collect().await {
                Ok(points) => {
                    if let Some(line) = self.log.succeeded(Instant::now()) {
                        info!("{line}");
                    }
                    series.extend(
                        points
                            .into_iter()
                            .map(|p| point_to_series(p, now, interval)),
                    )
                }
                Err(e) => {
                    if let Some(line) = self.log.failed(Instant::now(), &e.to_string()) {
                        warn!("{line}");
                    }
                }
            }
            let st = c.status();
            let mut cs = CollectorStatus::new(if st.last_error.is_some() {
                "error"
            } else {
                "ok"
            });
            cs.containers = Some(st.running as u64);
            cs.error = st.last_error.clone();
            self.state.collectors.lock().insert("docker", cs);
            self.state.collectors.lock().insert("ecs", ecs_status(&st));
        }
        series
    }

    /// Moves the container events received since the last call to `out`.
    pub fn drain_events(&mut self, out: &mut Vec<Event>) {
        while let Ok(e) = self.events.try_recv() {
            out.push(container_event(e, &self.hostname));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker down for 2m 5s with a flush every 10 s: 3 warnings (the first failure, two summaries) and the
    /// recovery, instead of 13 warnings.
    #[test]
    fn failing_collections_are_said_once_then_summarised_then_recovered() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut log = CollectionLog::default();
        assert_eq!(log.succeeded(at(0)), None, "no outage, nothing to say");
        let mut lines = Vec::new();
        for s in (10..=130).step_by(10) {
            if let Some(l) = log.failed(at(s), "list containers: connection refused") {
                lines.push((s, l));
            }
        }
        if let Some(l) = log.succeeded(at(135)) {
            lines.push((135, l));
        }
        assert_eq!(
            lines,
            [
                (
                    10,
                    "docker collection failed: list containers: connection refused; container metrics are \
                     missing while it fails (tried at every flush, a summary at most once a minute)"
                        .to_string()
                ),
                (
                    70,
                    "docker collection has been failing for 1m (6 failed collections since the last message, \
                     7 in all; the last: list containers: connection refused)"
                        .to_string()
                ),
                (
                    130,
                    "docker collection has been failing for 2m (6 failed collections since the last message, \
                     13 in all; the last: list containers: connection refused)"
                        .to_string()
                ),
                (
                    135,
                    "docker collection works again after 2m 5s (13 failed collections)".to_string()
                ),
            ]
        );
        // A second outage starts afresh with its own first line.
        assert!(log
            .failed(at(200), "x")
            .unwrap()
            .starts_with("docker collection failed: x;"));
        assert_eq!(log.failed(at(210), "x"), None);
        assert_eq!(
            log.succeeded(at(215)).unwrap(),
            "docker collection works again after 15s (2 failed collections)"
        );
        assert_eq!(log.succeeded(at(220)), None);
    }
}
