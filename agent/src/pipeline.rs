//! Wires the stages together and runs the agent until shutdown:
//! listeners → aggregator → flusher (+ host, container and self metrics) → encoder → forwarder,
//! with the history store and status server beside them.
//!
//! Shutdown starts at the inputs: listeners stop, the open buckets are flushed (forced), the forwarder drains
//! within a bounded wait and persists what is left when disk storage is configured.

use crate::aggregator::shards::SHARDS_PER_WORKER;
use crate::aggregator::{Aggregator, AggregatorConfig, HistogramMemory, MetricBlocklist, Shards};
use crate::config::Config;
use crate::dogstatsd::listen::{ListenerConfig, Listeners, Received, Transport};
use crate::dogstatsd::parse::{for_each_line, Repairs};
use crate::dogstatsd::queue::PacketQueue;
use crate::encode::{self, EncodeConfig, Payload};
use crate::forwarder::{Forwarder, ForwarderConfig};
use crate::history::History;
use crate::host::HostCollector;
use crate::mapper::MapperProfiles;
use crate::model::{
    Event, FlushSink, IStr, MetricLine, Parsed, Series, SeriesKind, SeriesRef, ServiceCheck,
    SketchRef,
};
use crate::status::{self, CollectorStatus, StatusState};
use crate::telemetry::{DropReason, DropSection, Telemetry};
use kelpie_container::tags::TagCardinality;
use kelpie_container::{
    ContainerConfig, ContainerEvent, ContainerOrigin, Containers, OriginResolver, OriginTags,
    PointKind,
};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Longest a socket reader waits for the container collector to learn a container whose packets arrive
/// before Docker's `start` event was handled (once per container), so its first samples carry its tags.
const NEW_CONTAINER_WAIT: Duration = Duration::from_millis(100);

/// Lines a worker gathers for one shard before it takes the shard's lock to insert them.
const SHARD_BATCH: usize = 256;

/// How long an idle worker waits for the queue before it looks at the stop condition again.
const WORKER_POLL: Duration = Duration::from_millis(200);

/// Capacity of the queues carrying DogStatsD events and service checks to the flusher.
const EVENT_QUEUE: usize = 4096;

/// Longest the forwarder keeps sending after SIGTERM (counted from the signal) before what is left goes to
/// disk or is dropped and logged: with its 1 s grace for requests in flight, the agent exits well within
/// Docker's default 10 s stop timeout.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(6);

/// Bytes of memory budgeted per aggregation context when deriving the context cap from `memory_limit`.
const BYTES_PER_CONTEXT: u64 = 640;
/// Memory kept aside for the agent itself (buffers, runtime, queues) when deriving the context cap.
const BASE_MEMORY: u64 = 48 << 20;

/// Addresses the running agent bound (useful to tests and to the log line at start).
#[derive(Debug, Clone)]
pub struct Bound {
    pub status: SocketAddr,
    pub udp: Option<SocketAddr>,
    pub profiles: Option<SocketAddr>,
}

/// What the workers do with each batch of datagrams: resolve the sender's origin, parse each payload, and
/// insert its metric lines into their shards (events and service checks go to the flusher's queues).
struct AggregatingSink {
    agg: Arc<Shards>,
    telemetry: Arc<Telemetry>,
    /// Filled once Docker answers (at start or on a later retry).
    origin: Arc<RwLock<Option<OriginResolver>>>,
    origin_detection: bool,
    /// Resolve the `|c:` field clients fill in (`dogstatsd_origin_detection_client`).
    client_origin: bool,
    /// The origin tags of a datagram from nobody known.
    no_tags: OriginTags,
    events: mpsc::Sender<Event>,
    checks: mpsc::Sender<ServiceCheck>,
}

/// The last `|c:` field a sink looked up, and what it named: consecutive lines from one client carry the same.
type FieldCache<'a> = Option<(&'a str, Option<Arc<ContainerOrigin>>)>;

impl AggregatingSink {
    /// The origin tags of one line when they differ from its datagram's (`None`: use the datagram's): those
    /// of the container its `|c:` field names (when client origin detection is on), or the sender's at the
    /// cardinality the line asks for with `|card:`.
    fn line_origin<'a>(
        &self,
        origin: &Option<OriginResolver>,
        cache: &mut FieldCache<'a>,
        sender: Option<&ContainerOrigin>,
        field: Option<&'a str>,
        asked: Option<TagCardinality>,
        default: TagCardinality,
    ) -> Option<OriginTags> {
        let card = asked.unwrap_or(default);
        if let (true, Some(o), Some(field)) = (self.client_origin, origin, field) {
            let named = match cache {
                Some((f, named)) if *f == field => named.clone(),
                _ => {
                    let named = o.origin_for_container_field(field);
                    *cache = Some((field, named.clone()));
                    named
                }
            };
            if let Some(c) = named {
                return Some(c.at(card).clone());
            }
        }
        match sender {
            Some(s) if card != default => Some(s.at(card).clone()),
            _ => None,
        }
    }
}

/// The cardinality a `dd.internal.card:<level>` tag among raw `tags` asks for.
fn card_tag(tags: &str) -> Option<TagCardinality> {
    const PREFIX: &str = "dd.internal.card:";
    let at = memchr::memmem::find(tags.as_bytes(), PREFIX.as_bytes())?;
    if at > 0 && tags.as_bytes()[at - 1] != b',' {
        return None;
    }
    let rest = &tags[at + PREFIX.len()..];
    rest[..rest.find(',').unwrap_or(rest.len())].parse().ok()
}

/// Appends a line's origin tags to an event's or service check's own. (Events and service checks are
/// rare: their `|c:` lookups skip the sink's field cache.)
fn add_origin_tags(tags: &mut Vec<String>, own: Option<&OriginTags>, datagram: &[IStr]) {
    let t: &[IStr] = own.map_or(datagram, |t| t);
    tags.extend(t.iter().map(|s| s.to_string()));
}

/// Lines waiting for their shard, gathered by one worker. The vectors are kept between batches; only their
/// allocations outlive a batch (see [`recycle_lines`]).
#[derive(Default)]
struct ShardLines {
    lines: Vec<Vec<MetricLine<'static>>>,
    tags: Vec<OriginTags>,
}

/// Turns an emptied vector of lines into one of another lifetime, keeping its allocation (the standard library
/// collects `into_iter().map(..)` in place when the element types have the same layout).
fn recycle_lines<'b>(mut v: Vec<MetricLine<'_>>) -> Vec<MetricLine<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| -> MetricLine<'b> { unreachable!() })
        .collect()
}

impl AggregatingSink {
    /// Processes one batch of datagrams (called by a worker; `start` is where this worker begins its round of
    /// the shards, so that workers do not queue up behind the same lock).
    fn process(&self, batch: &[Received<'_>], scratch: &mut ShardLines, start: usize) {
        let shards = &*self.agg;
        let n = shards.len();
        // Repaired copies of lines that are not UTF-8 (allocates only for such a line).
        let repairs = Repairs::new();
        let mut lines: Vec<Vec<MetricLine<'_>>> =
            scratch.lines.drain(..).map(recycle_lines).collect();
        lines.resize_with(n, Vec::new);
        scratch.tags.resize_with(n, || self.no_tags.clone());
        let tags = &mut scratch.tags;
        // Inserts one shard's gathered lines (they share their origin tags), at the time they go in.
        fn insert(agg: &mut Aggregator, lines: &mut Vec<MetricLine<'_>>, tags: &OriginTags) {
            agg.insert_group(lines, tags, status::unix_now());
            lines.clear();
        }
        let origin_guard = self.origin.read();
        let origin = &*origin_guard;
        let default = origin
            .as_ref()
            .map_or(TagCardinality::Low, OriginResolver::cardinality);
        let mut cache: FieldCache<'_> = None;
        for r in batch {
            let sender = match (origin, r.pid) {
                (Some(o), Some(pid)) if self.origin_detection && r.transport != Transport::Udp => {
                    o.origin_for_pid_waiting(pid, NEW_CONTAINER_WAIT)
                }
                _ => None,
            };
            let sender = sender.as_deref();
            let datagram_tags: &OriginTags = sender.map_or(&self.no_tags, |s| s.at(default));
            for_each_line(
                r.payload,
                &repairs,
                &self.telemetry,
                |parsed| match parsed {
                    Parsed::Metric(m) => {
                        // The `dd.internal.card:` tag asks the same as `|card:` (older clients); only looked
                        // for when there are origin tags to choose from.
                        let asked = match m.cardinality {
                            None if sender.is_some() || m.container_id.is_some() => {
                                card_tag(m.tags)
                            }
                            asked => asked,
                        };
                        let own = self.line_origin(
                            origin,
                            &mut cache,
                            sender,
                            m.container_id,
                            asked,
                            default,
                        );
                        let line_tags = own.as_ref().unwrap_or(datagram_tags);
                        let s = shards.shard_of(m.name);
                        // A shard's gathered lines share their origin tags: a line with others (`|c:`, `|card:`,
                        // another sender) sends what was gathered first.
                        if !Arc::ptr_eq(line_tags, &tags[s]) {
                            if !lines[s].is_empty() {
                                insert(&mut shards.lock(s), &mut lines[s], &tags[s]);
                            }
                            tags[s] = line_tags.clone();
                        }
                        lines[s].push(m);
                        if lines[s].len() >= SHARD_BATCH {
                            insert(&mut shards.lock(s), &mut lines[s], &tags[s]);
                        }
                    }
                    Parsed::Event(mut e) => {
                        let (field, card) = (e.container.as_deref(), e.cardinality);
                        let own = self.line_origin(origin, &mut None, sender, field, card, default);
                        add_origin_tags(&mut e.tags, own.as_ref(), datagram_tags);
                        if self.events.try_send(e).is_err() {
                            self.telemetry.count_drop(DropReason::EventQueueFull, 1);
                        }
                    }
                    Parsed::ServiceCheck(mut c) => {
                        let (field, card) = (c.container.as_deref(), c.cardinality);
                        let own = self.line_origin(origin, &mut None, sender, field, card, default);
                        add_origin_tags(&mut c.tags, own.as_ref(), datagram_tags);
                        if c.timestamp.is_none() {
                            c.timestamp = Some(status::unix_now());
                        }
                        if self.checks.try_send(c).is_err() {
                            self.telemetry
                                .count_drop(DropReason::ServiceCheckQueueFull, 1);
                        }
                    }
                },
            );
        }
        drop(origin_guard);
        // What is left: first every shard whose lock is free, from this worker's starting point, then the rest,
        // waiting for their locks.
        let mut busy = Vec::new();
        for i in 0..n {
            let s = (start + i) % n;
            if lines[s].is_empty() {
                continue;
            }
            match shards.try_lock(s) {
                Some(mut agg) => insert(&mut agg, &mut lines[s], &tags[s]),
                None => busy.push(s),
            }
        }
        for s in busy {
            insert(&mut shards.lock(s), &mut lines[s], &tags[s]);
        }
        // Let go of the origin tags (a container that went away should not be kept alive by a worker).
        for t in tags.iter_mut() {
            *t = self.no_tags.clone();
        }
        scratch.lines = lines.into_iter().map(recycle_lines).collect();
    }
}

/// The processing workers: each takes batches from the queue and runs [`AggregatingSink::process`] until the
/// queue is closed and drained.
struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(
        count: usize,
        queue: Arc<PacketQueue>,
        sink: Arc<AggregatingSink>,
    ) -> anyhow::Result<Workers> {
        let shards = sink.agg.len();
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let (queue, sink) = (queue.clone(), sink.clone());
            let start = i * shards / count.max(1);
            let handle = std::thread::Builder::new()
                .name(format!("dsd-worker-{i}"))
                .spawn(move || {
                    let mut scratch = ShardLines::default();
                    loop {
                        match queue.pop(WORKER_POLL) {
                            Some(batch) => {
                                let received: Vec<Received<'_>> = batch.received().collect();
                                sink.process(&received, &mut scratch, start);
                                drop(received);
                                queue.recycle(batch);
                            }
                            None if queue.is_finished() => return,
                            None => {}
                        }
                    }
                })
                .map_err(|e| anyhow::anyhow!("cannot start a DogStatsD worker thread: {e}"))?;
            threads.push(handle);
        }
        Ok(Workers { threads })
    }

    /// Waits for every worker to finish (after the queue was closed).
    fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a DogStatsD worker thread panicked");
            }
        }
    }
}

/// Hands profile uploads to the forwarder (`/api/v2/profile`); in local mode they are counted and dropped.
struct ProfileForwarder {
    forwarder: Option<Forwarder>,
    telemetry: Arc<Telemetry>,
}

impl crate::profiles::ProfileSink for ProfileForwarder {
    fn submit(&self, content_type: String, body: bytes::Bytes) {
        match &self.forwarder {
            Some(f) => f.submit(vec![Payload {
                endpoint: encode::Endpoint::Profile,
                uncompressed_len: body.len(),
                body,
                content_type: content_type.into(),
                content_encoding: None,
                items: 1,
            }]),
            None => self.telemetry.count_drop(DropReason::ProfileLocalMode, 1),
        }
    }
}

/// The agent's own RSS in bytes, from /proc/self/statm.
pub fn self_rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(4096) as u64
}

/// Turns a container collector point into a series.
fn point_to_series(p: kelpie_container::Point, now: i64, interval: i64) -> Series {
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

/// Self-telemetry: `datadog.agent.running` and `kelpie.*`, counters as deltas since the previous flush.
struct SelfMetrics {
    last: HashMap<String, u64>,
}

impl SelfMetrics {
    fn series(&mut self, t: &Telemetry, now: i64, interval: i64) -> Vec<Series> {
        let mut out = Vec::new();
        let gauge = |name: &str, tags: &[&str], v: f64| Series {
            name: IStr::from(name),
            tags: tags
                .iter()
                .map(|t| IStr::from(*t))
                .collect::<Vec<_>>()
                .into(),
            host: IStr::from(""),
            kind: SeriesKind::Gauge,
            interval: 0,
            points: vec![(now, v)],
        };
        out.push(gauge("datadog.agent.running", &["version:kelpie"], 1.0));
        let d = &t.dogstatsd;
        let f = &t.forwarder;
        let mut counts: Vec<(String, Vec<String>, u64)> = vec![
            (
                "kelpie.dogstatsd.packets".into(),
                vec!["transport:udp".into()],
                d.packets_udp.get(),
            ),
            (
                "kelpie.dogstatsd.packets".into(),
                vec!["transport:uds_dgram".into()],
                d.packets_uds_dgram.get(),
            ),
            (
                "kelpie.dogstatsd.packets".into(),
                vec!["transport:uds_stream".into()],
                d.packets_uds_stream.get(),
            ),
            (
                "kelpie.dogstatsd.metric_samples".into(),
                vec![],
                d.metric_samples.get(),
            ),
            ("kelpie.dogstatsd.events".into(), vec![], d.events.get()),
            (
                "kelpie.dogstatsd.service_checks".into(),
                vec![],
                d.service_checks.get(),
            ),
            (
                "kelpie.dogstatsd.parse_errors".into(),
                vec![],
                d.parse_errors.get(),
            ),
            (
                "kelpie.dogstatsd.histogram_samples_approximated".into(),
                vec![],
                d.histogram_samples_approximated.get(),
            ),
            (
                "kelpie.forwarder.transactions".into(),
                vec!["outcome:success".into()],
                f.success.get(),
            ),
            (
                "kelpie.forwarder.transactions".into(),
                vec!["outcome:retried".into()],
                f.retried.get(),
            ),
            (
                "kelpie.forwarder.bytes_sent".into(),
                vec![],
                f.bytes_sent.get(),
            ),
        ];
        for section in DropSection::ALL {
            for (reason, n) in t.dropped(section).shown(section) {
                counts.push((section.metric().into(), vec![format!("reason:{reason}")], n));
            }
        }
        for (name, tags, total) in counts {
            let key = format!("{name}|{}", tags.join(","));
            let prev = self.last.insert(key, total).unwrap_or(0);
            out.push(Series {
                name: IStr::from(name.as_str()),
                tags: tags
                    .iter()
                    .map(|t| IStr::from(t.as_str()))
                    .collect::<Vec<_>>()
                    .into(),
                host: IStr::from(""),
                kind: SeriesKind::Count,
                interval,
                points: vec![(now, total.saturating_sub(prev) as f64)],
            });
        }
        out.push(gauge(
            "kelpie.dogstatsd.contexts",
            &[],
            d.contexts.get() as f64,
        ));
        out.push(gauge(
            "kelpie.dogstatsd.queue_bytes",
            &[],
            d.queue_bytes.get() as f64,
        ));
        out.push(gauge(
            "kelpie.dogstatsd.context_limit",
            &[],
            d.context_limit.get() as f64,
        ));
        out.push(gauge(
            "kelpie.forwarder.queued_bytes",
            &[],
            f.queued_bytes.get() as f64,
        ));
        out.push(gauge(
            "kelpie.forwarder.queued_on_disk_bytes",
            &[],
            f.queued_on_disk_bytes.get() as f64,
        ));
        out.push(gauge(
            "kelpie.flush.duration",
            &[],
            t.flush.last_duration_us.get() as f64 / 1e6,
        ));
        out.push(gauge("kelpie.memory.rss", &[], self_rss_bytes() as f64));
        out
    }
}

/// Where the flusher sends each series: the local history and/or the streaming encoders.
struct FlushOut<'h, 'c> {
    history: Option<&'h mut History>,
    series: Option<encode::SeriesEncoder<'c>>,
    sketches: Option<encode::SketchEncoder<'c>>,
    n_series: u64,
    n_sketches: u64,
    /// Contexts per metric name and tag key, for `kelpie status --top`.
    top: crate::top::TopBuilder,
}

impl FlushSink for FlushOut<'_, '_> {
    fn series(&mut self, s: SeriesRef<'_>) {
        self.n_series += 1;
        self.top.series(&s);
        if let Some(h) = self.history.as_deref_mut() {
            h.record_series(s);
        }
        if let Some(e) = &mut self.series {
            e.push(s);
        }
    }
    fn sketch(&mut self, s: SketchRef<'_>) {
        self.n_sketches += 1;
        self.top.sketch(&s);
        if let Some(h) = self.history.as_deref_mut() {
            h.record_sketch(s);
        }
        if let Some(e) = &mut self.sketches {
            e.push(s);
        }
    }
}

/// Everything the flusher needs.
struct Flusher {
    cfg: Config,
    telemetry: Arc<Telemetry>,
    agg: Arc<Shards>,
    history: Arc<Mutex<History>>,
    host: HostCollector,
    containers: Option<Containers>,
    container_cfg: Option<ContainerConfig>,
    cev_tx: mpsc::Sender<ContainerEvent>,
    origin_slot: Arc<RwLock<Option<OriginResolver>>>,
    next_container_try: Instant,
    forwarder: Option<Forwarder>,
    encode: EncodeConfig,
    events: mpsc::Receiver<Event>,
    checks: mpsc::Receiver<ServiceCheck>,
    container_events: mpsc::Receiver<ContainerEvent>,
    self_metrics: SelfMetrics,
    state: Arc<StatusState>,
    max_contexts: usize,
    refusals: RefusalLog,
}

/// Says when new contexts are refused (`context_limit`): at once, then at most once a minute while it lasts.
#[derive(Default)]
struct RefusalLog {
    /// `context_limit` drops already reported.
    reported: u64,
    last_log: Option<Instant>,
}

impl RefusalLog {
    fn report(
        &mut self,
        d: &crate::telemetry::DogstatsdTelemetry,
        cap: usize,
        live: usize,
        rss_near_limit: Option<u64>,
        memory_limit: u64,
    ) {
        let refused = d.dropped.get(DropReason::ContextLimit);
        if refused <= self.reported
            || self
                .last_log
                .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        let why = match rss_near_limit {
            Some(rss) => format!(
                "lowered to the contexts held because the agent's memory ({rss} bytes) is above 90% of \
                 memory_limit ({memory_limit} bytes)"
            ),
            None => format!(
                "derived from memory_limit ({memory_limit} bytes, {BYTES_PER_CONTEXT} bytes per context)"
            ),
        };
        warn!(
            "refused {} new DogStatsD contexts: {live} contexts are held and the limit is {cap}, {why}; \
             samples of the contexts held are still aggregated and sent, idle ones expire",
            refused - self.reported
        );
        self.reported = refused;
        self.last_log = Some(Instant::now());
    }
}

impl Flusher {
    /// Adds what an encoder made to `payloads`; counts what it could not encode (`items` when it failed as a
    /// whole, counted under `failed`).
    fn collect_payloads(
        &self,
        outcome: Result<encode::EncodeOutcome, encode::EncodeError>,
        what: &str,
        failed: (DropReason, u64),
        payloads: &mut Vec<Payload>,
    ) {
        match outcome {
            Ok(o) => {
                if o.dropped_too_large > 0 {
                    self.telemetry
                        .count_drop(DropReason::PayloadTooLarge, o.dropped_too_large as u64);
                }
                payloads.extend(o.payloads);
            }
            Err(e) => {
                warn!("cannot encode {what}: {e}");
                self.telemetry.count_drop(failed.0, failed.1);
            }
        }
    }

    async fn flush(&mut self, force: bool) {
        let started = Instant::now();
        let now = status::unix_now();
        let interval = self.cfg.flush_interval.as_secs() as i64;
        // Memory guard: near memory_limit, refuse new contexts (counted by the aggregator).
        let rss = self_rss_bytes();
        let near_limit = rss > self.cfg.memory_limit / 10 * 9;
        let cap = if near_limit {
            self.agg.contexts()
        } else {
            self.max_contexts
        };
        self.agg.set_max_contexts(cap);
        let live = self.agg.contexts();
        let d = &self.telemetry.dogstatsd;
        d.context_limit.set(cap as i64);
        d.context_limit_lowered.set(near_limit as i64);
        self.refusals.report(
            d,
            cap,
            live,
            near_limit.then_some(rss),
            self.cfg.memory_limit,
        );
        let host_series = self.host.collect(now);
        let mut container_series = Vec::new();
        if self.containers.is_none() && !force && Instant::now() >= self.next_container_try {
            if let Some(ccfg) = &self.container_cfg {
                self.next_container_try = Instant::now() + CONTAINER_RETRY;
                self.containers =
                    start_containers(ccfg, &self.cev_tx, &self.state, &self.origin_slot).await;
            }
        }
        if let Some(c) = &self.containers {
            match c.collect().await {
                Ok(points) => container_series.extend(
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
        let mut events = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            events.push(e);
        }
        while let Ok(e) = self.container_events.try_recv() {
            events.push(container_event(e, &self.cfg.hostname));
        }
        let mut checks = Vec::new();
        while let Ok(c) = self.checks.try_recv() {
            checks.push(c);
        }
        self.state.recent.lock().record(&events, &checks, now);

        // Every series goes straight from the aggregator into the encoder (and the local history): no flush
        // holds all its series at once.
        let mut history = (self.cfg.history_memory > 0).then(|| self.history.lock());
        let forwarding = self.forwarder.is_some();
        let mut out = FlushOut {
            history: history.as_deref_mut(),
            series: forwarding.then(|| encode::SeriesEncoder::new(&self.encode)),
            sketches: forwarding.then(|| encode::SketchEncoder::new(&self.encode)),
            n_series: 0,
            n_sketches: 0,
            top: Default::default(),
        };
        if let Some(h) = out.history.as_deref_mut() {
            h.begin();
        }
        // One shard at a time, a slice of contexts at a time, so the workers keep aggregating meanwhile.
        self.agg.flush_into(now, force, &mut out);
        let self_series = self.self_metrics.series(&self.telemetry, now, interval);
        for s in host_series
            .iter()
            .chain(&container_series)
            .chain(&self_series)
        {
            out.series(s.as_ref());
        }
        if let Some(h) = out.history.as_deref_mut() {
            h.end(now);
        }
        let FlushOut {
            series,
            sketches,
            n_series,
            n_sketches,
            history: _,
            top,
        } = out;
        *self.state.top.lock() = top.finish(now);
        drop(history);
        self.telemetry.flush.series_flushed.add(n_series);
        self.telemetry.flush.sketches_flushed.add(n_sketches);
        if let Some(fwd) = &self.forwarder {
            let mut payloads: Vec<Payload> = Vec::new();
            if let Some(enc) = series {
                let failed = (DropReason::SeriesEncodeError, n_series);
                self.collect_payloads(enc.finish(), "series", failed, &mut payloads);
            }
            if let Some(enc) = sketches {
                let failed = (DropReason::SketchEncodeError, n_sketches);
                self.collect_payloads(enc.finish(), "sketches", failed, &mut payloads);
            }
            for ev in &events {
                match encode::encode_event(&self.encode, ev) {
                    Ok(p) => payloads.push(p),
                    Err(e) => {
                        warn!("cannot encode event {:?}: {e}", ev.title);
                        self.telemetry.count_drop(DropReason::EventEncodeError, 1);
                    }
                }
            }
            if !checks.is_empty() {
                match encode::encode_service_checks(&self.encode, &checks) {
                    Ok(p) => payloads.extend(p),
                    Err(e) => {
                        warn!("cannot encode service checks: {e}");
                        self.telemetry
                            .count_drop(DropReason::ServiceCheckEncodeError, checks.len() as u64);
                    }
                }
            }
            fwd.submit(payloads);
        }
        let t = &self.telemetry.flush;
        t.flushes.inc();
        t.last_flush_unix.set(now);
        t.last_duration_us.set(started.elapsed().as_micros() as i64);
    }
}

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

/// Builds the aggregator configuration from the agent's.
pub fn aggregator_config(cfg: &Config) -> anyhow::Result<(AggregatorConfig, usize)> {
    let mapper = match &cfg.dogstatsd_mapper_profiles {
        Some(v) => {
            let profiles: Vec<crate::mapper::ProfileConfig> = serde_yaml::from_value(v.clone())
                .map_err(|e| {
                    anyhow::anyhow!("invalid value for `dogstatsd_mapper_profiles`: {e}")
                })?;
            Some(MapperProfiles::new(&profiles, 1000).map_err(|e| {
                anyhow::anyhow!("invalid value for `dogstatsd_mapper_profiles`: {e}")
            })?)
        }
        None => None,
    };
    let budget = cfg
        .memory_limit
        .saturating_sub(BASE_MEMORY + cfg.history_memory + cfg.dogstatsd_queue_bytes);
    let max_contexts = (budget / BYTES_PER_CONTEXT).max(1000) as usize;
    Ok((
        AggregatorConfig {
            interval_secs: cfg.flush_interval.as_secs() as i64,
            histogram_aggregates: cfg.histogram_aggregates.clone(),
            histogram_percentiles: cfg.histogram_percentiles.clone(),
            expiry_secs: cfg.dogstatsd_expiry_seconds,
            extra_tags: cfg.dogstatsd_tags.clone(),
            mapper,
            max_contexts,
            blocklist: MetricBlocklist::new(
                cfg.statsd_metric_blocklist.clone(),
                cfg.statsd_metric_blocklist_match_prefix,
            ),
            // Exact histogram samples get a quarter of the aggregation budget (44-52 MiB, about 3M distinct
            // values of 16 bytes, at the default memory_limit); past it percentiles come from a sketch, counted.
            histogram_memory: HistogramMemory::new((budget / 4) as usize),
        },
        max_contexts,
    ))
}

/// Runs the agent until `shutdown` is cancelled, then drains and returns. `ready` receives the bound
/// addresses once every listener is up.
pub async fn run(
    cfg: Config,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> anyhow::Result<()> {
    // Few malloc arenas: the reader threads and the runtime would otherwise each grow their own, and memory freed
    // by the flush in one arena could not serve new contexts created in another (measured as RSS, not leaks).
    // SAFETY: mallopt only tunes glibc's allocator; it is called before the agent's threads start.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    for w in cfg.unknown_key_warnings().iter().chain(&cfg.warnings) {
        warn!("{w}");
    }
    let telemetry = Arc::new(Telemetry::default());
    let history = Arc::new(Mutex::new(History::new(cfg.history_memory)));
    let (agg_cfg, max_contexts) = aggregator_config(&cfg)?;
    telemetry.dogstatsd.context_limit.set(max_contexts as i64);
    let workers = match cfg.dogstatsd_pipeline_count {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    telemetry.dogstatsd.pipelines.set(workers as i64);
    let agg = Arc::new(Shards::new(
        agg_cfg,
        telemetry.clone(),
        workers * SHARDS_PER_WORKER,
    ));

    let origin_slot: Arc<RwLock<Option<OriginResolver>>> = Arc::new(RwLock::new(None));
    let state = Arc::new(StatusState {
        version: VERSION,
        pprof: cfg.pprof,
        hostname: cfg.hostname.clone(),
        mode: cfg.mode(),
        site: cfg.site.clone(),
        intake_url: if cfg.api_key.is_some() {
            cfg.dd_url.clone()
        } else {
            String::new()
        },
        started: Instant::now(),
        flush_interval: cfg.flush_interval,
        telemetry: telemetry.clone(),
        history: history.clone(),
        recent: Mutex::new(Default::default()),
        top: Mutex::new(Default::default()),
        collectors: Mutex::new(Default::default()),
        origin_settings: status::OriginSettings {
            uds: cfg.dogstatsd_origin_detection,
            client_field: cfg.dogstatsd_origin_detection_client,
            cardinality: cfg.dogstatsd_tag_cardinality,
        },
        origin: origin_slot.clone(),
    });
    state
        .collectors
        .lock()
        .insert("host", CollectorStatus::new("ok"));

    // Containers (optional: a host without Docker still runs the rest, and retries Docker every minute).
    let (cev_tx, cev_rx) = mpsc::channel(1024);
    let container_cfg = cfg.container_collection.then(|| ContainerConfig {
        docker_host: cfg.docker_host.clone(),
        host_proc: cfg.host_proc.clone(),
        host_sys: cfg.host_sys.clone(),
        ecs_agent_url: cfg.ecs_agent_url.clone(),
        hostname: cfg.hostname.clone(),
        origin_cardinality: cfg.dogstatsd_tag_cardinality,
        tag_rules: cfg.container_tag_rules.clone(),
        metrics_filter: cfg.container_metrics_filter.clone(),
        ..ContainerConfig::default()
    });
    let containers = match &container_cfg {
        Some(ccfg) => start_containers(ccfg, &cev_tx, &state, &origin_slot).await,
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

    let forwarder = match &cfg.api_key {
        Some(key) => Some(Forwarder::start(
            ForwarderConfig {
                base_url: cfg.dd_url.clone(),
                api_key: key.clone(),
                timeout: cfg.forwarder_timeout,
                storage_path: cfg.forwarder_storage_path.clone(),
                storage_max_bytes: cfg.forwarder_storage_max_size_in_bytes,
                backoff_base: cfg.forwarder_backoff_base,
                backoff_max: cfg.forwarder_backoff_max,
                ..ForwarderConfig::default()
            },
            telemetry.clone(),
        )?),
        None => None,
    };

    // Status server.
    let (status_addr, status_fut) =
        status::bind(cfg.status_addr, state.clone())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on the status address {}: {e}",
                    cfg.status_addr
                )
            })?;
    let status_task = tokio::spawn(status_fut);

    // Profiles intake (the toolkit's profiler posts here; forwarded like the rest).
    let profiles_addr = match (cfg.profiles_addr, &forwarder) {
        (Some(addr), fwd) => {
            let sink: Arc<dyn crate::profiles::ProfileSink> = Arc::new(ProfileForwarder {
                forwarder: fwd.clone(),
                telemetry: telemetry.clone(),
            });
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => {
                    let bound = listener.local_addr().unwrap_or(addr);
                    let sd = shutdown.clone();
                    let tel = telemetry.clone();
                    tokio::spawn(async move {
                        let stop = async move { sd.cancelled().await };
                        if let Err(e) =
                            crate::profiles::serve_listener(listener, sink, tel, stop).await
                        {
                            warn!("{e}");
                        }
                    });
                    Some(bound)
                }
                Err(e) => {
                    warn!("cannot listen for profiles on {addr}: {e}");
                    None
                }
            }
        }
        (None, _) => None,
    };

    // DogStatsD listeners.
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (sc_tx, sc_rx) = mpsc::channel(EVENT_QUEUE);
    let sink = Arc::new(AggregatingSink {
        agg: agg.clone(),
        telemetry: telemetry.clone(),
        origin: origin_slot.clone(),
        origin_detection: cfg.dogstatsd_origin_detection,
        client_origin: cfg.dogstatsd_origin_detection_client,
        no_tags: OriginTags::from([]),
        events: ev_tx,
        checks: sc_tx,
    });
    let queue = Arc::new(PacketQueue::new(
        usize::try_from(cfg.dogstatsd_queue_bytes).unwrap_or(usize::MAX),
        telemetry.clone(),
    ));
    let listeners = Listeners::start(
        ListenerConfig {
            udp_port: cfg.dogstatsd_port,
            bind_host: cfg.bind_host.clone(),
            non_local_traffic: cfg.dogstatsd_non_local_traffic,
            socket_path: cfg.dogstatsd_socket.clone(),
            stream_socket_path: cfg.dogstatsd_stream_socket.clone(),
            buffer_size: cfg.dogstatsd_buffer_size,
            so_rcvbuf: cfg.dogstatsd_so_rcvbuf,
            origin_detection: cfg.dogstatsd_origin_detection,
            udp_sockets: 0,
        },
        telemetry.clone(),
        queue.clone(),
    )?;
    // Started after the listeners, so that an agent that cannot listen leaves no worker behind; datagrams
    // read meanwhile wait in the queue.
    let workers = Workers::start(workers, queue.clone(), sink)?;
    let bound = Bound {
        status: status_addr,
        udp: listeners.udp_local_addr(),
        profiles: profiles_addr,
    };
    for line in crate::startup::summary(&cfg, &bound, &state.collectors.lock(), VERSION) {
        info!("{line}");
    }
    if let Some(tx) = ready {
        let _ = tx.send(bound);
    }

    let mut flusher = Flusher {
        encode: EncodeConfig {
            hostname: cfg.hostname.clone(),
            host_tags: cfg.host_tags.clone(),
            use_protobuf: true,
        },
        host: HostCollector::new(cfg.host_proc.clone(), cfg.host_sys.clone()),
        cfg,
        telemetry,
        agg,
        history,
        containers,
        container_cfg,
        cev_tx,
        origin_slot,
        next_container_try: Instant::now() + CONTAINER_RETRY,
        forwarder: forwarder.clone(),
        events: ev_rx,
        checks: sc_rx,
        container_events: cev_rx,
        self_metrics: SelfMetrics {
            last: HashMap::new(),
        },
        state,
        max_contexts,
        refusals: RefusalLog::default(),
    };

    // Flush on interval boundaries, like the Datadog Agent.
    let interval = flusher.cfg.flush_interval;
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let step = interval.as_millis() as u64;
        let wait = step - (now.as_millis() as u64 % step);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(wait + 5)) => flusher.flush(false).await,
        }
    }

    info!("shutting down: stopping inputs, flushing, draining the forwarder");
    let stopping = Instant::now();
    // Inputs first, then what they queued, then the open buckets.
    tokio::task::spawn_blocking(move || {
        listeners.shutdown();
        queue.close();
        workers.join();
    })
    .await?;
    flusher.flush(true).await;
    if let Some(f) = forwarder {
        f.shutdown(SHUTDOWN_DRAIN.saturating_sub(stopping.elapsed()))
            .await;
    }
    status_task.abort();
    info!("kelpie agent stopped");
    Ok(())
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod sink_tests {
    use super::*;
    use crate::aggregator::AggregatorConfig;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn sink(client_origin: bool) -> (AggregatingSink, mpsc::Receiver<Event>) {
        let telemetry = Arc::new(Telemetry::default());
        let resolver = OriginResolver::new("/nonexistent".into(), None);
        resolver.insert(A, &["container_name:a".into(), "image_name:img-a".into()]);
        resolver.insert(B, &["container_name:b".into(), "image_name:img-b".into()]);
        let (events, ev_rx) = mpsc::channel(8);
        let (checks, _) = mpsc::channel(8);
        let sink = AggregatingSink {
            agg: Arc::new(Shards::new(
                AggregatorConfig::default(),
                telemetry.clone(),
                4,
            )),
            telemetry,
            origin: Arc::new(RwLock::new(Some(
                resolver.with_cardinality(TagCardinality::Low),
            ))),
            origin_detection: true,
            client_origin,
            no_tags: OriginTags::from([]),
            events,
            checks,
        };
        (sink, ev_rx)
    }

    /// Counter totals per tag set after one flush.
    fn totals(sink: &AggregatingSink) -> Vec<(Vec<String>, f64)> {
        let mut b = crate::model::FlushBatch::default();
        sink.agg.flush_into(i64::MAX / 2, true, &mut b);
        let mut got: Vec<(Vec<String>, f64)> = b
            .series
            .iter()
            .map(|s| {
                let tags = s.tags.iter().map(|t| t.to_string()).collect();
                (tags, s.points.iter().map(|p| p.1).sum::<f64>() * 10.0)
            })
            .collect();
        got.sort_by(|x, y| x.0.cmp(&y.0));
        got
    }

    /// One datagram mixing lines without origin, with `|c:` fields (known, unknown, in a row) and a
    /// `|card:` request: each sample lands in its own container's context, in any grouping.
    #[test]
    fn lines_of_one_datagram_take_their_own_container_field_and_cardinality() {
        let payload = format!(
            "m:1|c\nm:1|c|c:ci-{A}\nm:2|c|c:ci-{A}\nm:16|c|c:in-999\nm:4|c|c:ci-{B}|card:high\nm:8|c\n\
             m:32|c|#dd.internal.card:high|c:ci-{A}\n_e{{1,1}}:t|x|c:ci-{B}"
        );
        let (s, mut ev) = sink(true);
        s.process(
            &[Received {
                payload: payload.as_bytes(),
                transport: Transport::Udp,
                pid: None,
            }],
            &mut ShardLines::default(),
            0,
        );
        assert_eq!(
            totals(&s),
            [
                (vec![], 25.0),
                (
                    vec![
                        "container_name:a".to_string(),
                        "image_name:img-a".to_string()
                    ],
                    32.0
                ),
                (
                    vec![
                        "container_name:b".to_string(),
                        "image_name:img-b".to_string()
                    ],
                    4.0
                ),
                (vec!["image_name:img-a".to_string()], 3.0),
            ]
        );
        assert_eq!(ev.try_recv().unwrap().tags, ["image_name:img-b"]);
        // Client origin detection off: the fields are ignored, everything in one context.
        let (s, _) = sink(false);
        s.process(
            &[Received {
                payload: payload.as_bytes(),
                transport: Transport::Udp,
                pid: None,
            }],
            &mut ShardLines::default(),
            0,
        );
        assert_eq!(totals(&s), [(vec![], 64.0)]);
        assert_eq!(
            card_tag("a:1,dd.internal.card:orchestrator,b"),
            Some(TagCardinality::Orchestrator)
        );
        assert_eq!(card_tag("dd.internal.card:low"), Some(TagCardinality::Low));
        assert_eq!(card_tag("xdd.internal.card:high"), None);
        assert_eq!(card_tag("a:1"), None);
    }
}

#[cfg(test)]
mod self_metrics_tests {
    use super::*;

    #[test]
    fn every_drop_reason_is_sent_as_its_sections_dropped_metric() {
        let telemetry = Telemetry::default();
        for (i, &r) in DropReason::ALL.iter().enumerate() {
            telemetry.count_drop(r, 1000 + i as u64);
        }
        let mut m = SelfMetrics {
            last: HashMap::new(),
        };
        let series = m.series(&telemetry, 100, 10);
        for (i, &r) in DropReason::ALL.iter().enumerate() {
            let tag = format!("reason:{}", r.key());
            let found = series
                .iter()
                .find(|s| &*s.name == r.section().metric() && s.tags.iter().any(|t| **t == *tag));
            let found = found.unwrap_or_else(|| panic!("no {}{{{tag}}}", r.section().metric()));
            assert_eq!(found.points, [(100, 1000.0 + i as f64)], "{r}");
        }
    }
}
