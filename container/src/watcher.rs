//! The Docker event stream follower: keeps the container table and origin tags current, turns failed `die`s
//! and `oom`s into events, and feeds the deploy detector. Reconnects with exponential backoff; after a
//! reconnect it asks for the events it may have missed (`since` the last one seen), skips the ones it already
//! handled, and re-lists running containers so a deploy that happened while it was away still counts once.

use crate::deploy::{DeployDetector, Observed, PendingDeploy};
use crate::ecs::EcsClient;
use crate::tags::{self, EcsLabels};
use crate::{unix_now, ContainerEvent, Inner, Tracked};
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Remembered event keys for de-duplication after a reconnect.
const SEEN_CAP: usize = 4096;
/// Times the deploy detector waits for the ECS agent to report a new task RUNNING before emitting anyway.
const MAX_CONFIRM_ATTEMPTS: u32 = 5;
/// How long an id Docker does not know is not asked about again, and how many such ids are remembered.
/// Short: a container's first packets can arrive before Docker reports it running, and a long wait here left a
/// just-started container's metrics without its tags (seen once in the whole-host e2e test).
const UNKNOWN_TTL: Duration = Duration::from_secs(2);
const UNKNOWN_CAP: usize = 1024;

/// A bounded set of recently handled events, as 64-bit hashes of `time_nano/id/action` (16 bytes per event
/// instead of a ~100-byte string; a collision would at worst drop one replayed-looking event).
#[derive(Debug, Default)]
pub(crate) struct Seen {
    order: VecDeque<u64>,
    set: HashSet<u64>,
}

impl Seen {
    /// True when `key` is new (and remembers it).
    pub(crate) fn first_time(&mut self, key: &str) -> bool {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let k = h.finish();
        if !self.set.insert(k) {
            return false;
        }
        if self.order.len() >= SEEN_CAP {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(k);
        true
    }
}

pub(crate) struct Watcher {
    inner: Arc<Inner>,
    events: mpsc::Sender<ContainerEvent>,
    wanted: mpsc::Receiver<String>,
    stop: CancellationToken,
    detector: DeployDetector,
    seen: Seen,
    /// Unix seconds of the last event handled (the `since` of the next connection).
    last_time: i64,
    ecs: Option<EcsClient>,
    /// Ids asked for by origin detection that Docker did not know, and when.
    unknown: HashMap<String, Instant>,
}

fn observed(t: &Tracked, timestamp: i64) -> Option<Observed> {
    let ecs = EcsLabels::from_labels(&t.labels);
    Some(Observed {
        family: ecs.family?,
        version: ecs.version?,
        cluster: ecs.cluster,
        task_arn: ecs.task_arn,
        container_name: ecs.container_name.unwrap_or_else(|| t.name.clone()),
        image: t.image.clone(),
        timestamp,
    })
}

impl Watcher {
    pub(crate) fn new(
        inner: Arc<Inner>,
        events: mpsc::Sender<ContainerEvent>,
        wanted: mpsc::Receiver<String>,
        stop: CancellationToken,
        listed_at: i64,
    ) -> Self {
        let mut detector =
            DeployDetector::new(inner.cfg.hostname.clone(), inner.cfg.deploy_debounce);
        for t in inner.tracked.read().values() {
            if let Some(o) = observed(t, listed_at) {
                detector.baseline(&o);
            }
        }
        let ecs = match EcsClient::new(&inner.cfg.ecs_agent_url) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "ECS introspection disabled");
                None
            }
        };
        Watcher {
            inner,
            events,
            wanted,
            stop,
            detector,
            seen: Seen::default(),
            // Replay from the listing on: a container started between the list and the subscription counts.
            last_time: listed_at,
            ecs,
            unknown: HashMap::new(),
        }
    }

    fn send(&self, ev: ContainerEvent) {
        match self.events.try_send(ev) {
            Ok(()) => {
                self.inner.events_sent.fetch_add(1, Relaxed);
            }
            Err(e) => {
                self.inner.events_dropped.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "container event dropped: the agent's event queue is full or closed");
            }
        }
    }

    /// Asks the ECS agent once for the cluster, so the status shows it before any deploy. Events that arrive
    /// meanwhile are replayed by the `since` of the first subscription.
    async fn probe_ecs(&self) {
        let Some(ecs) = &self.ecs else { return };
        match ecs.metadata().await {
            Ok(m) => {
                *self.inner.ecs_reachable.lock() = Some(true);
                if !m.cluster.is_empty() {
                    *self.inner.ecs_cluster.lock() =
                        Some(tags::cluster_name(&m.cluster).to_string());
                }
            }
            Err(e) => {
                tracing::info!(error = %e, "ECS agent introspection API not reachable; deploys are detected from labels");
                *self.inner.ecs_reachable.lock() = Some(false);
            }
        }
    }

    pub(crate) async fn run(mut self) {
        self.probe_ecs().await;
        let mut backoff = Duration::from_millis(250);
        let mut first = true;
        // Since when the event stream is lost, and how many connections failed since.
        let mut lost: Option<(Instant, u32)> = None;
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            if !first {
                // Missed events are lost when the daemon restarted: re-list and treat what runs now as seen.
                match self.resync().await {
                    Ok(()) => {
                        if let Some((since, failed)) = lost.take() {
                            tracing::info!(
                                "Docker answers again after {:.1} s ({failed} failed connections); containers \
                                 re-listed, events followed from unix time {} on",
                                since.elapsed().as_secs_f64(),
                                self.last_time
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "re-listing containers after reconnect failed");
                        self.inner.set_error(&e);
                    }
                }
            }
            first = false;
            let mut filters = HashMap::new();
            filters.insert("type", vec!["container"]);
            filters.insert("event", vec!["start", "die", "oom", "destroy"]);
            let opts = EventsOptionsBuilder::new()
                .since(&self.last_time.to_string())
                .filters(&filters)
                .build();
            let mut stream = Box::pin(self.inner.docker.events(Some(opts)));
            self.inner.connected.store(true, Relaxed);
            self.inner.connects.fetch_add(1, Relaxed);
            let connected_at = Instant::now();
            loop {
                let deadline = self.detector.next_deadline();
                let sleep = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = self.stop.cancelled() => return,
                    msg = stream.next() => match msg {
                        Some(Ok(m)) => self.handle(m).await,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "Docker event stream failed; reconnecting");
                            self.inner.set_error(&crate::ContainerError::Docker(format!("event stream: {e}")));
                            break;
                        }
                        None => {
                            tracing::warn!("Docker event stream ended; reconnecting");
                            break;
                        }
                    },
                    _ = sleep => self.flush_deploys().await,
                    Some(id) = self.wanted.recv() => self.want(&id).await,
                }
            }
            self.inner.connected.store(false, Relaxed);
            lost.get_or_insert((Instant::now(), 0)).1 += 1;
            if connected_at.elapsed() > Duration::from_secs(30) {
                backoff = Duration::from_millis(250);
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }

    /// After a reconnect: containers that started while the stream was down (strictly after the last event
    /// seen; the `since` replay covers that second) may be a deploy whose `start` events are lost (the daemon's
    /// event buffer does not survive a restart). Per family, when none of them runs the current revision, the
    /// newest one's revision is observed; when the current revision restarted too (a daemon restart restarts
    /// every container), nothing changed.
    async fn resync(&mut self) -> Result<(), crate::ContainerError> {
        self.inner.refresh().await?;
        let now = Instant::now();
        let mut by_family: HashMap<String, Vec<(i64, Observed)>> = HashMap::new();
        for t in self.inner.tracked.read().values() {
            let Some(started) = t.started_unix.filter(|s| *s > self.last_time) else {
                continue;
            };
            if let Some(o) = observed(t, started) {
                by_family
                    .entry(o.family.clone())
                    .or_default()
                    .push((started, o));
            }
        }
        for (family, mut obs) in by_family {
            let current = self.detector.current(&family).map(str::to_string);
            if obs
                .iter()
                .any(|(_, o)| Some(&o.version) == current.as_ref())
            {
                continue;
            }
            obs.sort_by_key(|(s, _)| *s);
            let Some(newest) = obs.last().map(|(_, o)| o.version.clone()) else {
                continue;
            };
            for (_, o) in obs.into_iter().filter(|(_, o)| o.version == newest) {
                self.detector.observe(o, now);
            }
        }
        Ok(())
    }

    /// An id seen by origin detection that the table does not know yet. Ids Docker does not know (a client
    /// sending a made-up `|c:`) are remembered for a while so they cost one inspect, not one per packet.
    async fn want(&mut self, id: &str) {
        if self.inner.tracked.read().keys().any(|k| k.starts_with(id)) {
            return;
        }
        let now = Instant::now();
        if self
            .unknown
            .get(id)
            .is_some_and(|t| now.duration_since(*t) < UNKNOWN_TTL)
        {
            return;
        }
        match self.inner.inspect(id).await {
            Ok(Some(t)) => self.inner.track(t),
            _ => {
                if self.unknown.len() >= UNKNOWN_CAP {
                    self.unknown.clear();
                }
                self.unknown.insert(id.to_string(), now);
            }
        }
    }

    async fn handle(&mut self, m: EventMessage) {
        if m.typ != Some(EventMessageTypeEnum::CONTAINER) {
            return;
        }
        let action = m.action.clone().unwrap_or_default();
        let actor = m.actor.clone().unwrap_or_default();
        let Some(id) = actor.id.clone() else { return };
        let time = m.time.unwrap_or_else(unix_now);
        let key = format!(
            "{}/{}/{}",
            m.time_nano.unwrap_or(time * 1_000_000_000),
            id,
            action
        );
        if !self.seen.first_time(&key) {
            return; // replayed after a reconnect
        }
        self.last_time = self.last_time.max(time);
        let attrs = actor.attributes.unwrap_or_default();
        match action.as_str() {
            "start" => match self.inner.inspect(&id).await {
                Ok(Some(t)) => {
                    if let Some(o) = observed(&t, time) {
                        self.detector.observe(o, Instant::now());
                    }
                    self.inner.track(t);
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "inspect after start failed"),
            },
            "die" => {
                let tracked = self.inner.untrack(&id);
                let code = attrs.get("exitCode").cloned().unwrap_or_default();
                if code != "0" && !code.is_empty() {
                    let (name, image, tags) = describe(&id, tracked.as_deref(), &attrs);
                    self.send(ContainerEvent {
                        title: format!("Container {name} ({image}) exited with code {code}"),
                        text: format!(
                            "Container {name} ({}) of image {image} died with exit code {code}.",
                            short(&id)
                        ),
                        alert_type: "error",
                        aggregation_key: Some(format!(
                            "docker:{}",
                            tags::split_image(&image).image_name
                        )),
                        source_type_name: "docker",
                        timestamp: time,
                        tags,
                        priority: Some("normal"),
                    });
                }
            }
            "oom" => {
                let tracked = self.inner.tracked.read().get(&id).cloned();
                let (name, image, tags) = describe(&id, tracked.as_deref(), &attrs);
                self.send(ContainerEvent {
                    title: format!("Container {name} ({image}) ran out of memory"),
                    text: format!(
                        "The kernel OOM killer killed a process of container {name} ({}) of image {image}.",
                        short(&id)
                    ),
                    alert_type: "error",
                    aggregation_key: Some(format!("docker:{}", tags::split_image(&image).image_name)),
                    source_type_name: "docker",
                    timestamp: time,
                    tags,
                    priority: Some("normal"),
                });
            }
            "destroy" => {
                self.inner.untrack(&id);
            }
            _ => {}
        }
    }

    async fn flush_deploys(&mut self) {
        let due = self.detector.take_due(Instant::now());
        for p in due {
            match self.confirm(&p).await {
                Confirm::Retry => {
                    self.detector.retry(p, Instant::now());
                }
                Confirm::Emit(cluster) => {
                    let mut p = p;
                    if p.cluster.is_none() {
                        p.cluster = cluster;
                    }
                    if let Some(ev) = self.detector.commit(p) {
                        tracing::info!(title = %ev.title, "ECS deploy detected");
                        self.send(ev);
                    }
                }
            }
        }
    }

    /// Asks the ECS agent whether the deploy's task runs; labels alone decide when it does not answer.
    async fn confirm(&mut self, p: &PendingDeploy) -> Confirm {
        let Some(ecs) = self.ecs.clone() else {
            return Confirm::Emit(None);
        };
        let tasks = match ecs.tasks().await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "ECS agent not reachable; using labels only");
                *self.inner.ecs_reachable.lock() = Some(false);
                return Confirm::Emit(None);
            }
        };
        *self.inner.ecs_reachable.lock() = Some(true);
        let cluster = match ecs.metadata().await {
            Ok(m) if !m.cluster.is_empty() => {
                let c = tags::cluster_name(&m.cluster).to_string();
                *self.inner.ecs_cluster.lock() = Some(c.clone());
                Some(c)
            }
            _ => self.inner.ecs_cluster.lock().clone(),
        };
        let ours: Vec<_> = tasks
            .iter()
            .filter(|t| {
                p.task_arns.contains(&t.arn) || (t.family == p.family && t.version == p.version)
            })
            .collect();
        let running = ours.iter().any(|t| t.known_status == "RUNNING");
        if running || p.confirm_attempts >= MAX_CONFIRM_ATTEMPTS {
            Confirm::Emit(cluster)
        } else {
            tracing::debug!(family = %p.family, version = %p.version, "ECS agent does not report the task RUNNING yet");
            Confirm::Retry
        }
    }
}

enum Confirm {
    Emit(Option<String>),
    Retry,
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Name, image and tags of an event's container: from the table when known, else from the event's attributes
/// (Docker puts the name, image and every label there).
fn describe(
    id: &str,
    t: Option<&Tracked>,
    attrs: &HashMap<String, String>,
) -> (String, String, Vec<String>) {
    if let Some(t) = t {
        return (t.name.clone(), t.image.clone(), t.tags.to_vec());
    }
    let name = attrs
        .get("name")
        .cloned()
        .unwrap_or_else(|| short(id).to_string());
    let image = attrs.get("image").cloned().unwrap_or_default();
    let tags = tags::container_tags(id, &name, &image, attrs);
    (name, image, tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_is_bounded_and_deduplicates() {
        let mut s = Seen::default();
        assert!(s.first_time("a"));
        assert!(!s.first_time("a"));
        for i in 0..SEEN_CAP * 2 {
            s.first_time(&i.to_string());
        }
        assert!(s.set.len() <= SEEN_CAP && s.order.len() <= SEEN_CAP);
        assert!(s.first_time("a"), "old keys age out");
    }
}
