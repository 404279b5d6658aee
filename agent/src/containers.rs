//! The Docker and ECS collectors as the flush sees them: connecting to Docker (at start, then retried every
//! minute while it is missing, so a host without Docker runs the rest), their points turned into series,
//! their events into DogStatsD-style events, and their state into the status's `docker` and `ecs` lines.
//! The collectors themselves are the `kelpie-container` crate.

use crate::config::Config;
use crate::model::{Event, IStr, Series, SeriesKind};
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
                Ok(points) => series.extend(
                    points
                        .into_iter()
                        .map(|p| point_to_series(p, now, interval)),
                ),
                Err(e) => warn!("docker collection failed: {e}"),
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
