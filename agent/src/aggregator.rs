//! DogStatsD aggregation with the Datadog Agent's semantics (its `TimeSampler`, `ContextMetrics` and
//! `sketchMap`), in time buckets of `interval_secs`.
//!
//! * A context is the (mapped) name + sorted, de-duplicated tags + host. A `host:<h>` tag sets the host
//!   and is removed from the tags (the last one wins); `dd.internal.entity_id:`, `dd.internal.card:` and
//!   `dd.internal.jmx_check_name:` tags are removed as the agent does. Distributions live apart from the
//!   other types (the agent keeps them in a separate sketch map), so a distribution and a gauge with the
//!   same name and tags are two contexts.
//! * Counter: sum of `value * (1 / rate)`, flushed as a rate (`sum / interval`, `interval` set). A counter
//!   with no sample in a flushed bucket is flushed as 0 while `last sample + expiry_secs > bucket start`,
//!   then forgotten. Gauge: last value. Set: number of distinct members (at most [`SET_MEMBER_LIMIT`] per
//!   context and bucket; more are counted as `set_member_limit` drops), flushed as a gauge.
//! * Histogram / timer: samples with integer weights `trunc(1 / rate)`, then `.max .min .median .avg .sum
//!   .count` and `.<N>percentile` exactly as the agent's `Histogram.flush` (sorted samples, weighted rank
//!   targets `(count - 1) / 2` and `(N * count - 1) / 100`); `.count` is a rate. Every sample is kept
//!   exactly, sorted into runs of equal values ([`histogram`]), under one memory budget for all contexts
//!   ([`HistogramMemory`], from `memory_limit`); only a context that needs memory past it takes its median
//!   and percentiles from the agent's sketch (1% relative accuracy) until its bucket is flushed, counted in
//!   `dogstatsd.histogram_samples_approximated`; max, min, avg, sum and count always stay exact.
//! * Distribution: the agent's sketch ([`crate::sketch`]), flushed as a sketch series.
//! * Gauges and counters with a timestamp (`|T`) are not aggregated: each value is flushed once as its
//!   own point with that timestamp, as the agent's no-aggregation pipeline does: a gauge as a gauge, a
//!   counter as a rate of `raw value / interval` with `interval` set (no sample rate applied), which
//!   Datadog turns back into the raw count.
//!
//! Points carry their bucket's start. A flush closes every bucket that ended at or before `now`. Contexts
//! other than counters are forgotten once a whole bucket passed without a sample. Names and tags are
//! interned (one `Arc<str>` per distinct string, freed at the flush after the last context using it
//! goes), and a sample for an existing context allocates nothing.
//!
//! Memory bounds: at most `max_contexts` contexts (new ones past that are refused and counted as
//! `context_limit` drops), at most [`SET_MEMBER_LIMIT`] set members per context, histogram samples within
//! [`AggregatorConfig::histogram_memory`] (then a 4096-bin sketch per context), at most
//! [`PASSTHROUGH_LIMIT`] timestamped points waiting for a flush.

use crate::dogstatsd::cardinality;
use crate::mapper::{MapResult, MapperProfiles};
use crate::model::{
    FlushBatch, FlushSink, IStr, MetricKind, MetricLine, Series, SeriesKind, SeriesRef,
    SketchPoint, SketchRef, NO_HOST,
};
use crate::sketch::Sketch;
use crate::telemetry::{DropReason, Telemetry};
use hashbrown::HashSet;
pub use histogram::HistogramMemory;
use histogram::{Added, Samples};
pub use shards::Shards;
use std::hash::BuildHasher;
use std::sync::Arc;
use table::{prefetch_read, Table};

/// Lines looked up together by [`Aggregator::insert_group`].
pub const GROUP: usize = 16;

/// A line of the group [`Aggregator::insert_group`] is inserting.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Index in the group.
    line: usize,
    /// Hash of the line's text.
    alias: (u64, u64),
    /// The context whose alias has the same fingerprint, if any (checked before use).
    slot: Option<u32>,
}

/// A line's exact context key (see [`Aggregator::exact_key`]).
#[derive(Debug)]
struct ExactKey {
    hash: u64,
    hash2: u64,
    mapped: Option<Arc<MapResult>>,
}

/// Distinct members kept per set context and bucket.
pub const SET_MEMBER_LIMIT: usize = 10_000;
/// Timestamped points kept between two flushes.
pub const PASSTHROUGH_LIMIT: usize = 100_000;
/// Bucket values of contexts that moved on to a newer bucket before a flush.
const BACKLOG_LIMIT: usize = 1_000_000;

/// Aggregation settings (Datadog Agent key names in the comments).
#[derive(Clone, Debug)]
pub struct AggregatorConfig {
    /// Bucket length in seconds (`KELPIE_FLUSH_INTERVAL`, 10).
    pub interval_secs: i64,
    /// `histogram_aggregates`: any of `max median avg count sum min` (default `max median avg count`).
    pub histogram_aggregates: Vec<String>,
    /// `histogram_percentiles`, as fractions (default `[0.95]`).
    pub histogram_percentiles: Vec<f64>,
    /// `dogstatsd_expiry_seconds` (300): how long an idle counter keeps being sent as 0.
    pub expiry_secs: i64,
    /// `dogstatsd_tags`: added to every DogStatsD metric.
    pub extra_tags: Vec<String>,
    /// `dogstatsd_mapper_profiles`.
    pub mapper: Option<MapperProfiles>,
    /// Most live contexts; new contexts past it are refused and counted (`context_limit`).
    pub max_contexts: usize,
    /// `statsd_metric_blocklist`: metrics (by name, after mapping) dropped and counted (`metric_blocklist`).
    pub blocklist: MetricBlocklist,
    /// Memory for histogram samples, shared by every shard (derived from `memory_limit`); past it, a
    /// context's percentiles come from a sketch until its bucket is flushed, counted.
    pub histogram_memory: HistogramMemory,
}

/// The Datadog Agent's `statsd_metric_blocklist`: names dropped before aggregation, exactly or, with
/// `statsd_metric_blocklist_match_prefix`, as prefixes.
#[derive(Clone, Debug, Default)]
pub struct MetricBlocklist {
    /// Sorted, de-duplicated.
    names: Vec<String>,
    match_prefix: bool,
}

impl MetricBlocklist {
    pub fn new(mut names: Vec<String>, match_prefix: bool) -> Self {
        names.sort();
        names.dedup();
        MetricBlocklist {
            names,
            match_prefix,
        }
    }

    /// Whether metric `name` is blocked.
    pub fn blocks(&self, name: &str) -> bool {
        if self.names.is_empty() {
            return false;
        }
        match self.names.binary_search_by(|n| n.as_str().cmp(name)) {
            Ok(_) => true,
            // The greatest entry below `name` is the only prefix candidate that matters: any prefix of
            // `name` sorts at or before it, and a longer prefix sorts after a shorter one.
            Err(i) if self.match_prefix => self.names[..i]
                .iter()
                .rev()
                .take_while(|n| n.as_bytes().first() == name.as_bytes().first())
                .any(|n| name.starts_with(n.as_str())),
            Err(_) => false,
        }
    }
}

impl Default for AggregatorConfig {
    fn default() -> Self {
        Self {
            interval_secs: 10,
            histogram_aggregates: ["max", "median", "avg", "count"].map(String::from).to_vec(),
            histogram_percentiles: vec![0.95],
            expiry_secs: 300,
            extra_tags: Vec::new(),
            mapper: None,
            max_contexts: usize::MAX,
            blocklist: MetricBlocklist::default(),
            histogram_memory: HistogramMemory::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Agg {
    Max,
    Min,
    Median,
    Avg,
    Sum,
    Count,
}

/// What a histogram flushes: aggregates in configured order, then percentiles ascending.
#[derive(Debug)]
struct HistSpec {
    aggs: Vec<Agg>,
    /// Percent (1..=100), sorted.
    pcts: Vec<i64>,
    /// `.max`, …, `.95percentile`, in output order.
    suffixes: Vec<String>,
}

impl HistSpec {
    fn new(aggs: &[String], pcts: &[f64]) -> Self {
        let mut out_aggs = Vec::new();
        let mut suffixes = Vec::new();
        for a in aggs {
            let agg = match a.trim() {
                "max" => Agg::Max,
                "min" => Agg::Min,
                "median" => Agg::Median,
                "avg" => Agg::Avg,
                "sum" => Agg::Sum,
                "count" => Agg::Count,
                other => {
                    tracing::info!("histogram aggregate `{other}` is not implemented, skipping it");
                    continue;
                }
            };
            if !out_aggs.contains(&agg) {
                out_aggs.push(agg);
                suffixes.push(format!(".{}", a.trim()));
            }
        }
        // As the agent's ParsePercentiles: 0.95 -> 95 (adding 0.5 so that 0.29 does not become 28).
        let mut out_pcts: Vec<i64> = Vec::new();
        for &p in pcts {
            if !(0.0..=1.0).contains(&p) {
                tracing::warn!("histogram_percentiles must be between 0 and 1: skipping {p}");
                continue;
            }
            out_pcts.push((p * 100.0 + 0.5) as i64);
        }
        out_pcts.sort_unstable();
        out_pcts.dedup();
        suffixes.extend(out_pcts.iter().map(|p| format!(".{p}percentile")));
        Self {
            aggs: out_aggs,
            pcts: out_pcts,
            suffixes,
        }
    }
}

#[derive(Debug, Default)]
struct SetState {
    /// Members by 64-bit hash (one in 2^64 chance that two members count once).
    members: HashSet<u64, foldhash::fast::FixedState>,
}

#[derive(Debug)]
struct HistState {
    /// The bucket's samples, exact (see [`histogram`]).
    samples: Samples,
    count: i64,
    sum: f64,
    min: f64,
    max: f64,
    /// Interned `name + suffix` for each output, made at the first flush.
    names: Box<[IStr]>,
}

impl HistState {
    fn new(memory: HistogramMemory) -> Self {
        Self {
            samples: Samples::new(memory),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            names: Box::new([]),
        }
    }

    /// Adds a sample with weight `trunc(1 / rate)` as the Agent's `Histogram.addSample` (a rate above 1 counts
    /// as 1, where the Agent's weight of 0 would make `.avg` infinite); false when its percentiles had to be
    /// approximated (the histogram memory budget is spent).
    fn add(&mut self, v: f64, rate: f64) -> bool {
        let rate = if rate > 0.0 && rate <= 1.0 { rate } else { 1.0 };
        let inv = 1.0 / rate;
        let w = inv as i64;
        self.count = self.count.saturating_add(w);
        self.sum += v * inv;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.samples.add(v, w.max(1) as u64) == Added::Exact
    }

    fn reset(&mut self) {
        self.samples.reset();
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
    }

    fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Output values in `spec.suffixes` order, as the agent's `Histogram.flush`.
    fn compute(&mut self, spec: &HistSpec, interval: i64, out: &mut Vec<(f64, SeriesKind)>) {
        out.clear();
        let (count, sum, min, max) = (self.count, self.sum, self.min, self.max);
        self.samples.ranks(count, max, |weighted| {
            for a in &spec.aggs {
                let v = match a {
                    Agg::Max => (max, SeriesKind::Gauge),
                    Agg::Min => (min, SeriesKind::Gauge),
                    Agg::Median => (weighted((count - 1) / 2), SeriesKind::Gauge),
                    Agg::Avg => (sum / count as f64, SeriesKind::Gauge),
                    Agg::Sum => (sum, SeriesKind::Gauge),
                    Agg::Count => (count as f64 / interval as f64, SeriesKind::Rate),
                };
                out.push(v);
            }
            for &p in &spec.pcts {
                let target = (p.saturating_mul(count) - 1) / 100;
                out.push((weighted(target), SeriesKind::Gauge));
            }
        });
    }
}

/// One context's value in its current bucket.
#[derive(Debug)]
enum Value {
    Counter(f64),
    Gauge(f64),
    Set(Box<SetState>),
    Histogram(Box<HistState>),
    Distribution(Box<Sketch>),
}

impl Value {
    fn new(kind: MetricKind, memory: &HistogramMemory) -> Self {
        match kind {
            MetricKind::Counter => Value::Counter(0.0),
            MetricKind::Gauge => Value::Gauge(0.0),
            MetricKind::Set => Value::Set(Box::default()),
            MetricKind::Histogram | MetricKind::Timer => {
                Value::Histogram(Box::new(HistState::new(memory.clone())))
            }
            MetricKind::Distribution => Value::Distribution(Box::default()),
        }
    }

    fn matches(&self, kind: MetricKind) -> bool {
        matches!(
            (self, kind),
            (Value::Counter(_), MetricKind::Counter)
                | (Value::Gauge(_), MetricKind::Gauge)
                | (Value::Set(_), MetricKind::Set)
                | (
                    Value::Histogram(_),
                    MetricKind::Histogram | MetricKind::Timer
                )
                | (Value::Distribution(_), MetricKind::Distribution)
        )
    }

    /// Empties the value in place (keeping small allocations for the next bucket).
    fn reset(&mut self) {
        match self {
            Value::Counter(v) | Value::Gauge(v) => *v = 0.0,
            Value::Set(s) => {
                s.members.clear();
                if s.members.capacity() > 256 {
                    s.members.shrink_to(256);
                }
            }
            Value::Histogram(h) => h.reset(),
            Value::Distribution(s) => s.reset(),
        }
    }

    /// An empty value of the same type, for a context moving on to a new bucket.
    fn fresh(&self) -> Self {
        match self {
            Value::Counter(_) => Value::Counter(0.0),
            Value::Gauge(_) => Value::Gauge(0.0),
            Value::Set(_) => Value::Set(Box::default()),
            Value::Histogram(h) => {
                let mut n = HistState::new(h.samples.memory().clone());
                n.names = h.names.clone();
                Value::Histogram(Box::new(n))
            }
            Value::Distribution(_) => Value::Distribution(Box::default()),
        }
    }
}

/// Fields the insert path reads come first (`repr(C)` keeps the order), so a sample for an existing
/// context touches one cache line of it.
#[derive(Debug)]
#[repr(C)]
struct Context {
    /// The context key's 128-bit hash (see [`Aggregator::insert`]): `hash` places it in the table, both
    /// identify it.
    hash: u64,
    hash2: u64,
    /// 128-bit hash of the line text this context was last made or found from by the slow path (see
    /// [`Aggregator::insert_group`]); (0, 0) when none.
    alias: (u64, u64),
    /// Start of the bucket `value` belongs to (when `has_value`).
    bucket: i64,
    /// Unix seconds of the last sample.
    last_seen: i64,
    value: Value,
    has_value: bool,
    name: IStr,
    /// Sorted (bytewise), de-duplicated.
    tags: Arc<[IStr]>,
    /// Empty: the agent's hostname.
    host: IStr,
}

impl Context {
    fn is_distribution(&self) -> bool {
        matches!(self.value, Value::Distribution(_))
    }
}

/// One distinct string per entry; entries nobody else references are dropped by `gc`.
#[derive(Debug, Default)]
struct Interner {
    set: HashSet<IStr, foldhash::fast::FixedState>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> IStr {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: IStr = Arc::from(s);
        self.set.insert(a.clone());
        a
    }

    fn gc(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
        if self.set.capacity() > 64 && self.set.len() < self.set.capacity() / 4 {
            self.set.shrink_to(self.set.len() * 2);
        }
    }
}

/// Mutable state, kept apart from the configuration so that tag slices borrowed from the configuration
/// can be used while it is updated.
#[derive(Debug, Default)]
struct State {
    slots: Vec<Option<Context>>,
    free: Vec<u32>,
    table: Table,
    /// Line-text hash -> slot, for the fast path.
    aliases: Table,
    live: usize,
    interner: Interner,
    /// Values of contexts that moved to a newer bucket before their old one was flushed.
    backlog: Vec<(u32, i64, Value)>,
    /// Timestamped points waiting for the next flush.
    passthrough: Vec<Series>,
    /// Last flush's cutoff (start of the first bucket it left open).
    last_cutoff: i64,
    /// Run the interner's collection at the next flush.
    gc_next: bool,
    name_buf: String,
    hist_out: Vec<(f64, SeriesKind)>,
    emit: EmitBufs,
}

/// Point buffers one context's flush fills, kept between contexts and flushes so a flush allocates nothing
/// per series.
#[derive(Debug, Default)]
struct EmitBufs {
    rates: Vec<(i64, f64)>,
    gauges: Vec<(i64, f64)>,
    hists: Vec<Vec<(i64, f64)>>,
    hist_kinds: Vec<SeriesKind>,
    sketches: Vec<SketchPoint>,
}

/// The DogStatsD aggregator. One per pipeline; not shared between threads.
pub struct Aggregator {
    cfg: AggregatorConfig,
    hist: HistSpec,
    telemetry: Arc<Telemetry>,
    hasher: foldhash::fast::FixedState,
    /// Scratch for hashing a context key.
    key_buf: Vec<u8>,
    /// Tag slices of the line being inserted; only its allocation survives between calls.
    scratch: Vec<&'static str>,
    /// Hashes of the line's tags.
    tag_hashes: Vec<u64>,
    /// Keys of the group of lines being inserted.
    pending: Vec<Pending>,
    /// This aggregator's share of [`PASSTHROUGH_LIMIT`] and [`BACKLOG_LIMIT`] (see [`Aggregator::share_limits`]).
    passthrough_limit: usize,
    backlog_limit: usize,
    st: State,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("contexts", &self.st.live)
            .finish_non_exhaustive()
    }
}

/// Turns an emptied vector of borrowed strings into one of another lifetime, keeping its allocation
/// (the standard library collects a vector's `into_iter().map(..)` in place when the element types have
/// the same layout).
fn recycle<'b>(mut v: Vec<&str>) -> Vec<&'b str> {
    v.clear();
    v.into_iter()
        .map(|_| -> &'b str { unreachable!() })
        .collect()
}

/// The non-empty `,`-separated parts of a raw tag field (as `MetricLine::tags`, with a byte search: tags are
/// short, and measured end to end this loop beat memchr's SIMD search, whose per-call setup costs more than
/// it saves on ten bytes).
struct Commas<'a>(&'a str);

impl<'a> Commas<'a> {
    fn new(raw: &'a str) -> Self {
        Commas(raw)
    }
}

impl<'a> Iterator for Commas<'a> {
    type Item = &'a str;
    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.0.is_empty() {
                return None;
            }
            let (tag, rest) = match self.0.as_bytes().iter().position(|&b| b == b',') {
                Some(i) => (&self.0[..i], &self.0[i + 1..]),
                None => (self.0, ""),
            };
            self.0 = rest;
            if !tag.is_empty() {
                return Some(tag);
            }
        }
    }
}

/// `str` ordering (bytewise), inlined: tags are short and a `memcmp` call per comparison costs more.
#[inline]
fn byte_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Adds `tag` to `out`, leaving out (and taking the host from) the tags the agent strips.
#[inline]
fn classify<'a>(tag: &'a str, host: &mut &'a str, out: &mut Vec<&'a str>) {
    match tag.as_bytes().first() {
        Some(b'h') => {
            if let Some(h) = tag.strip_prefix("host:") {
                *host = if h.is_empty() { NO_HOST } else { h };
                return;
            }
        }
        Some(b'd') if cardinality::is_internal_tag(tag) => return,
        _ => {}
    }
    out.push(tag);
}

/// Sorts tags bytewise and drops duplicates (the order a context's tags are stored and flushed in).
fn sort_tags(tags: &mut Vec<&str>) {
    tags.sort_unstable_by(|a, b| byte_cmp(a, b));
    tags.dedup();
}

/// The context key's 128-bit hash (xxh3-128, one pass): name, the tags' hashes (sorted, de-duplicated),
/// host and whether it is a distribution. `buf` is scratch space.
fn key_hash(
    buf: &mut Vec<u8>,
    name: &str,
    tag_hashes: &[u64],
    host: &str,
    dist: bool,
) -> (u64, u64) {
    buf.clear();
    buf.extend_from_slice(name.as_bytes());
    buf.push(0xff);
    for t in tag_hashes {
        buf.extend_from_slice(&t.to_le_bytes());
    }
    buf.extend_from_slice(host.as_bytes());
    buf.push(0xff);
    buf.push(dist as u8);
    let h = xxhash_rust::xxh3::xxh3_128_with_seed(buf, 0x6b65_6c70_6965);
    (h as u64, (h >> 64) as u64)
}

/// A hash of origin tags (0 when there are none), part of a line's text hash.
fn origin_hash(origin_tags: &[IStr]) -> u64 {
    if origin_tags.is_empty() {
        return 0;
    }
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    for t in origin_tags {
        h.update(t.as_bytes());
        h.update(&[0xff]);
    }
    h.digest() | 1
}

/// 128-bit hash of what determines a line's context as sent: name, raw tag field, distribution or not, and
/// the origin tags' hash (the mapper, `dogstatsd_tags` and host rules are fixed for the aggregator's life).
fn alias_hash(buf: &mut Vec<u8>, line: &MetricLine<'_>, origin: u64) -> (u64, u64) {
    buf.clear();
    buf.extend_from_slice(line.name.as_bytes());
    buf.push(0xff);
    buf.extend_from_slice(line.tags.as_bytes());
    buf.push(0xff);
    buf.push((line.kind == MetricKind::Distribution) as u8);
    buf.extend_from_slice(&origin.to_le_bytes());
    let h = xxhash_rust::xxh3::xxh3_128_with_seed(buf, 0x0061_6c69_6173);
    // (0, 0) means "no alias" in a context.
    ((h as u64) | 1, (h >> 64) as u64)
}

/// Adds one numeric sample to a non-set value. False when it was refused (counted).
fn apply(value: &mut Value, v: f64, rate: f64, tel: &Telemetry) -> bool {
    match value {
        Value::Counter(sum) => *sum += v * (1.0 / rate),
        Value::Gauge(g) => *g = v,
        Value::Histogram(h) => {
            if !h.add(v, rate) {
                tel.dogstatsd.histogram_samples_approximated.inc();
            }
        }
        Value::Distribution(s) => {
            if !s.insert_sampled(v, rate) {
                tel.count_drop(DropReason::SketchFull, 1);
                return false;
            }
        }
        Value::Set(_) => return false,
    }
    true
}

impl Aggregator {
    pub fn new(cfg: AggregatorConfig, telemetry: Arc<Telemetry>) -> Self {
        let hist = HistSpec::new(&cfg.histogram_aggregates, &cfg.histogram_percentiles);
        let mut cfg = cfg;
        if cfg.interval_secs <= 0 {
            tracing::warn!("flush interval must be positive; using 10 seconds");
            cfg.interval_secs = 10;
        }
        Self {
            cfg,
            hist,
            telemetry,
            hasher: foldhash::fast::FixedState::with_seed(0x6b65_6c70_6965),
            key_buf: Vec::new(),
            scratch: Vec::new(),
            tag_hashes: Vec::new(),
            pending: Vec::new(),
            passthrough_limit: PASSTHROUGH_LIMIT,
            backlog_limit: BACKLOG_LIMIT,
            st: State::default(),
        }
    }

    /// Makes this aggregator one of `shards` that share the memory bounds of one: its limits on timestamped
    /// points and backlogged buckets become its share. (The context limit is always the agent's total.)
    pub fn share_limits(&mut self, shards: usize) {
        let shards = shards.max(1);
        self.passthrough_limit = (PASSTHROUGH_LIMIT / shards).max(1);
        self.backlog_limit = (BACKLOG_LIMIT / shards).max(1);
    }

    /// Number of live contexts.
    pub fn contexts(&self) -> usize {
        self.st.live
    }

    /// Changes the context limit (e.g. when the agent nears its memory limit). Existing contexts stay.
    pub fn set_max_contexts(&mut self, max: usize) {
        self.cfg.max_contexts = max;
    }

    /// Inserts one parsed line received at `now` (unix seconds). `origin_tags` are extra tags from origin
    /// detection (may be empty). Never allocates for an existing context (steady state).
    pub fn insert(&mut self, line: &MetricLine<'_>, origin_tags: &[IStr], now: i64) {
        self.insert_group(std::slice::from_ref(line), origin_tags, now);
    }

    /// Inserts lines that share their origin tags (e.g. one datagram's), with the same result as inserting
    /// them one by one.
    ///
    /// Fast path: a client sends a context's line with the same bytes every time, so a line's text (name,
    /// raw tag field, whether it is a distribution, and a hash of the origin tags) is hashed (xxh3-128) and
    /// looked up among the texts contexts were last seen with; on a match the value is applied without
    /// splitting, classifying or hashing the tags. Lines are taken [`GROUP`] at a time in three passes (hash
    /// and prefetch the probe, find and prefetch the context, apply) so the cache misses of a group overlap.
    /// Anything else (a new context, a context sent with its tags in another order, timestamped lines) takes
    /// the exact path: the context key is made from the tags and the line's text is recorded for next time.
    pub fn insert_group(&mut self, lines: &[MetricLine<'_>], origin_tags: &[IStr], now: i64) {
        let origin = origin_hash(origin_tags);
        let mut pending = std::mem::take(&mut self.pending);
        for chunk in lines.chunks(GROUP) {
            pending.clear();
            for (i, line) in chunk.iter().enumerate() {
                let timestamped = line.timestamp.is_some()
                    && matches!(line.kind, MetricKind::Counter | MetricKind::Gauge);
                if timestamped {
                    // No context: `exact_key` queues it as its own point and returns None.
                    let none = self.exact_key(line, origin_tags);
                    debug_assert!(none.is_none());
                    continue;
                }
                let alias = alias_hash(&mut self.key_buf, line, origin);
                self.st.aliases.prefetch(alias.0);
                pending.push(Pending {
                    line: i,
                    alias,
                    slot: None,
                });
            }
            for p in pending.iter_mut() {
                p.slot = self.st.aliases.find(p.alias.0, |_| true);
                if let Some(idx) = p.slot {
                    prefetch_read(&self.st.slots[idx as usize]);
                }
            }
            for p in pending.iter() {
                let hit = p.slot.filter(|&idx| {
                    self.st.slots[idx as usize]
                        .as_ref()
                        .is_some_and(|c| c.alias == p.alias)
                });
                let line = &chunk[p.line];
                match hit {
                    Some(idx) => self.apply_line(idx, line, now),
                    None => self.insert_exact(line, origin_tags, now, p.alias),
                }
            }
        }
        self.pending = pending;
    }

    /// The exact path: finds or makes the line's context from its key, records `alias` (the line's text
    /// hash) on it, and applies the line.
    fn insert_exact(
        &mut self,
        line: &MetricLine<'_>,
        origin_tags: &[IStr],
        now: i64,
        alias: (u64, u64),
    ) {
        let Some(p) = self.exact_key(line, origin_tags) else {
            return;
        };
        let slots = &self.st.slots;
        let found = self.st.table.find(p.hash, |j| {
            slots[j as usize]
                .as_ref()
                .is_some_and(|c| c.hash == p.hash && c.hash2 == p.hash2)
        });
        let Some(idx) = found.or_else(|| self.create(line, &p, origin_tags, now)) else {
            return;
        };
        let st = &mut self.st;
        if let Some(ctx) = st.slots[idx as usize].as_mut() {
            if ctx.alias != alias {
                let old = std::mem::replace(&mut ctx.alias, alias);
                let slots = &st.slots;
                let alias_of = |j: u32| slots[j as usize].as_ref().map_or(0, |c| c.alias.0);
                if old != (0, 0) {
                    st.aliases.remove(old.0, idx, alias_of);
                }
                st.aliases.insert(alias.0, idx, alias_of);
            }
        }
        self.apply_line(idx, line, now);
    }

    /// The line's tags, without the ones the agent strips, in `tags`; returns the host (`host:` tag).
    fn collect_tags<'a>(
        extra_tags: &'a [String],
        line: &MetricLine<'a>,
        mapped: Option<&'a MapResult>,
        origin_tags: &'a [IStr],
        tags: &mut Vec<&'a str>,
    ) -> &'a str {
        let mut host: &str = "";
        for t in Commas::new(line.tags) {
            classify(t, &mut host, tags);
        }
        if let Some(r) = mapped {
            for t in &r.tags {
                classify(t, &mut host, tags);
            }
        }
        tags.extend(extra_tags.iter().map(String::as_str));
        tags.extend(origin_tags.iter().map(|t| &**t));
        host
    }

    /// Hashes a line's exact context key; a timestamped line has no context and is queued here as its own
    /// point instead, and a blocklisted one is counted and dropped (None for both).
    fn exact_key(&mut self, line: &MetricLine<'_>, origin_tags: &[IStr]) -> Option<ExactKey> {
        let mapped: Option<Arc<MapResult>> = match &self.cfg.mapper {
            Some(m) => m.map_shared(line.name),
            None => None,
        };
        let name: &str = mapped.as_deref().map_or(line.name, |r| r.name.as_str());
        // Blocked lines make no context, so each comes here: the name is checked before any tag work.
        if self.cfg.blocklist.blocks(name) {
            self.telemetry.count_drop(DropReason::MetricBlocklist, 1);
            return None;
        }
        let mut tags = recycle(std::mem::take(&mut self.scratch));
        let host = Self::collect_tags(
            &self.cfg.extra_tags,
            line,
            mapped.as_deref(),
            origin_tags,
            &mut tags,
        );
        let kind = line.kind;
        if let (Some(ts), MetricKind::Counter | MetricKind::Gauge) = (line.timestamp, kind) {
            sort_tags(&mut tags);
            let interval = self.cfg.interval_secs;
            Self::passthrough(
                &mut self.st,
                &self.telemetry,
                self.passthrough_limit,
                line,
                name,
                &tags,
                host,
                ts,
                interval,
            );
            self.scratch = recycle(tags);
            return None;
        }
        // The key is hashed from the tags' hashes, sorted and de-duplicated, so the tag strings are neither
        // sorted nor compared for a context that exists: a tag set is identified by its tags' 64-bit hashes,
        // as the Datadog Agent's context keys are, and the context by a 128-bit hash of those.
        let hashes = &mut self.tag_hashes;
        hashes.clear();
        hashes.extend(tags.iter().map(|t| self.hasher.hash_one(t)));
        hashes.sort_unstable();
        hashes.dedup();
        let dist = kind == MetricKind::Distribution;
        let (hash, hash2) = key_hash(&mut self.key_buf, name, hashes, host, dist);
        self.scratch = recycle(tags);
        Some(ExactKey {
            hash,
            hash2,
            mapped,
        })
    }

    /// Makes the context of a line whose key is not in the table; None when the context limit refuses it
    /// (counted).
    fn create(
        &mut self,
        line: &MetricLine<'_>,
        p: &ExactKey,
        origin_tags: &[IStr],
        now: i64,
    ) -> Option<u32> {
        let st = &mut self.st;
        let tel = &*self.telemetry;
        // The limit is the agent's, over every shard: the gauge counts all their contexts.
        if tel.dogstatsd.contexts.get().max(0) as usize >= self.cfg.max_contexts {
            tel.count_drop(DropReason::ContextLimit, 1);
            return None;
        }
        let mapped = p.mapped.as_deref();
        let name: &str = mapped.map_or(line.name, |r| r.name.as_str());
        let mut tags = recycle(std::mem::take(&mut self.scratch));
        let host = Self::collect_tags(&self.cfg.extra_tags, line, mapped, origin_tags, &mut tags);
        sort_tags(&mut tags);
        let ctx = Context {
            hash: p.hash,
            hash2: p.hash2,
            alias: (0, 0),
            bucket: 0,
            last_seen: now,
            value: Value::new(line.kind, &self.cfg.histogram_memory),
            has_value: false,
            name: st.interner.intern(name),
            tags: tags.iter().map(|t| st.interner.intern(t)).collect(),
            host: st.interner.intern(host),
        };
        self.scratch = recycle(tags);
        let i = match st.free.pop() {
            Some(i) => {
                st.slots[i as usize] = Some(ctx);
                i
            }
            None => {
                st.slots.push(Some(ctx));
                (st.slots.len() - 1) as u32
            }
        };
        let slots = &st.slots;
        st.table.insert(p.hash, i, |j| {
            slots[j as usize].as_ref().map_or(0, |c| c.hash)
        });
        st.live += 1;
        tel.dogstatsd.contexts.add(1);
        Some(i)
    }

    /// Adds a line's values to its context's open bucket.
    fn apply_line(&mut self, idx: u32, line: &MetricLine<'_>, now: i64) {
        let st = &mut self.st;
        let tel = &*self.telemetry;
        let kind = line.kind;
        let interval = self.cfg.interval_secs;
        let Some(ctx) = st.slots[idx as usize].as_mut() else {
            return;
        };
        let mut bucket = now.div_euclid(interval) * interval;
        if ctx.has_value && bucket != ctx.bucket {
            if bucket > ctx.bucket {
                if st.backlog.len() >= self.backlog_limit {
                    tel.count_drop(DropReason::BucketBacklog, 1);
                    ctx.value.reset();
                } else {
                    let fresh = ctx.value.fresh();
                    let old = std::mem::replace(&mut ctx.value, fresh);
                    st.backlog.push((idx, ctx.bucket, old));
                }
                ctx.has_value = false;
            } else {
                // A sample older than the context's open bucket (clock step): keep it in the open one.
                bucket = ctx.bucket;
            }
        }
        ctx.bucket = bucket;
        ctx.last_seen = ctx.last_seen.max(now);
        // The type of a bucket's value is set by its first sample; a sample of another type in the same
        // bucket is applied to it as that type, as the agent's `ContextMetrics.AddSample` does.
        if !ctx.has_value && !ctx.value.matches(kind) {
            ctx.value = Value::new(kind, &self.cfg.histogram_memory);
        }

        // The parser hands out positive rates (above 1 too: a counter counts `value / rate`, as the Agent's);
        // histograms and sketches treat a rate above 1 as 1.
        let rate = if line.sample_rate > 0.0 {
            line.sample_rate
        } else {
            1.0
        };
        let hasher = &self.hasher;
        let add_member = |s: &mut SetState, m: &str| -> bool {
            let h = hasher.hash_one(m);
            if s.members.len() >= SET_MEMBER_LIMIT && !s.members.contains(&h) {
                tel.count_drop(DropReason::SetMemberLimit, 1);
                false
            } else {
                s.members.insert(h);
                true
            }
        };
        let mut any = false;
        match (&mut ctx.value, kind) {
            (Value::Set(s), MetricKind::Set) => any = add_member(s, line.values),
            // Numbers sent to a set: each is a member, as written.
            (Value::Set(s), _) => {
                for m in line.values.split(':').filter(|m| !m.is_empty()) {
                    any |= add_member(s, m);
                }
            }
            // A set member sent to a numeric context counts as the value 0 (its numeric value in the agent).
            (value, MetricKind::Set) => {
                apply(value, 0.0, 1.0, tel);
                any = true;
            }
            (value, _) => match line.value {
                // One number, read by the parser (finite).
                Some(v) => any = apply(value, v, rate, tel),
                None => {
                    for v in line.values() {
                        if !v.is_finite() {
                            tel.count_drop(DropReason::NonFiniteValue, 1);
                            continue;
                        }
                        any |= apply(value, v, rate, tel);
                    }
                }
            },
        }
        if any {
            ctx.has_value = true;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn passthrough(
        st: &mut State,
        tel: &Telemetry,
        passthrough_limit: usize,
        line: &MetricLine<'_>,
        name: &str,
        tags: &[&str],
        host: &str,
        ts: i64,
        interval: i64,
    ) {
        // As the agent's no-aggregation pipeline: a counter becomes a rate (raw value / interval, sample
        // rate not applied) with the interval set, a gauge stays a gauge.
        let (kind, div, series_interval) = if line.kind == MetricKind::Counter {
            (SeriesKind::Rate, interval as f64, interval)
        } else {
            (SeriesKind::Gauge, 1.0, 0)
        };
        let mut shared: Option<(IStr, Arc<[IStr]>, IStr)> = None;
        for v in line.values() {
            if !v.is_finite() {
                tel.count_drop(DropReason::NonFiniteValue, 1);
                continue;
            }
            if st.passthrough.len() >= passthrough_limit {
                tel.count_drop(DropReason::TimestampedLimit, 1);
                continue;
            }
            let (n, t, h) = shared.get_or_insert_with(|| {
                (
                    st.interner.intern(name),
                    tags.iter().map(|t| st.interner.intern(t)).collect(),
                    st.interner.intern(host),
                )
            });
            st.passthrough.push(Series {
                name: n.clone(),
                tags: t.clone(),
                host: h.clone(),
                kind,
                interval: series_interval,
                points: vec![(ts, v / div)],
            });
        }
    }

    /// Closes and returns every bucket that ended at or before `now` (all buckets when `force`, for
    /// shutdown). Forgets idle contexts and expired counters.
    pub fn flush(&mut self, now: i64, force: bool) -> FlushBatch {
        let mut batch = FlushBatch::default();
        self.flush_into(now, force, &mut batch);
        batch
    }

    /// Like [`Aggregator::flush`], handing each series to `sink` as it is made instead of collecting them.
    pub fn flush_into(&mut self, now: i64, force: bool, sink: &mut dyn FlushSink) {
        let mut f = self.begin_flush(now, force, sink);
        while !self.flush_step(&mut f, sink, usize::MAX) {}
        self.end_flush(f);
    }

    /// Starts a flush that [`Aggregator::flush_step`] carries out a slice of contexts at a time and
    /// [`Aggregator::end_flush`] finishes, so the caller can let samples in between (the listeners wait
    /// for the aggregator while it flushes). Samples inserted meanwhile go to the open bucket; a closed
    /// value they push aside is still flushed by this flush.
    pub fn begin_flush(&mut self, now: i64, force: bool, sink: &mut dyn FlushSink) -> FlushState {
        let interval = self.cfg.interval_secs;
        let cutoff = now.div_euclid(interval) * interval + if force { interval } else { 0 };
        let closed = |b: i64| force || b.saturating_add(interval) <= cutoff;
        let st = &mut self.st;

        let passthrough = std::mem::take(&mut st.passthrough);
        let had_passthrough = !passthrough.is_empty();
        for s in &passthrough {
            sink.series(s.as_ref());
        }
        drop(passthrough);

        // Backlogged values that are now closed, grouped by context.
        let mut backlog = std::mem::take(&mut st.backlog);
        let (mut done, keep): (Vec<_>, Vec<_>) = backlog.drain(..).partition(|e| closed(e.1));
        st.backlog = keep;
        done.sort_by_key(|e| (e.0, e.1));

        // Buckets this flush closes, for the counters' zero points.
        let mut buckets: Vec<i64> = Vec::new();
        let mut note = |b: i64| {
            if !buckets.contains(&b) {
                buckets.push(b);
            }
        };
        for e in &done {
            note(e.1);
        }
        for c in st.slots.iter().flatten() {
            if c.has_value && closed(c.bucket) && !c.is_distribution() {
                note(c.bucket);
            }
        }
        if buckets.is_empty() && st.last_cutoff.saturating_add(interval) <= cutoff {
            buckets.push(cutoff - interval);
        }
        FlushState {
            cutoff,
            force,
            done,
            di: 0,
            backlog_seen: st.backlog.len(),
            buckets,
            next: 0,
            removed: 0,
            had_passthrough,
            vals: Vec::new(),
        }
    }

    /// Flushes up to `max` more contexts; true when every context has been seen.
    pub fn flush_step(&mut self, f: &mut FlushState, sink: &mut dyn FlushSink, max: usize) -> bool {
        let interval = self.cfg.interval_secs;
        let expiry = self.cfg.expiry_secs;
        let (cutoff, force) = (f.cutoff, f.force);
        let closed = |b: i64| force || b.saturating_add(interval) <= cutoff;
        let st = &mut self.st;
        let spec = &self.hist;

        // Closed values that samples inserted since the last step pushed aside, for contexts still ahead.
        if st.backlog.len() > f.backlog_seen {
            let added = st.backlog.split_off(f.backlog_seen);
            let before = f.done.len();
            for e in added {
                if closed(e.1) && e.0 as usize >= f.next {
                    f.done.push(e);
                } else {
                    st.backlog.push(e);
                }
            }
            if f.done.len() > before {
                f.done[f.di..].sort_by_key(|e| (e.0, e.1));
            }
        }

        let end = f.next.saturating_add(max).min(st.slots.len());
        let (done, vals) = (&mut f.done, &mut f.vals);
        for idx in f.next..end {
            let Some(ctx) = st.slots[idx].as_mut() else {
                continue;
            };
            vals.clear();
            while f.di < done.len() && (done[f.di].0 as usize) < idx {
                f.di += 1;
            }
            while f.di < done.len() && done[f.di].0 as usize == idx {
                let (_, b, v) = std::mem::replace(&mut done[f.di], (0, 0, Value::Counter(0.0)));
                vals.push((b, v));
                f.di += 1;
            }
            let current = ctx.has_value && closed(ctx.bucket);
            let counter = matches!(ctx.value, Value::Counter(_));
            if vals.is_empty() && !current && !counter {
                // Idle (nothing closed in this flush).
            } else {
                emit(
                    ctx,
                    vals,
                    current,
                    &f.buckets,
                    interval,
                    expiry,
                    spec,
                    &mut st.interner,
                    &mut st.name_buf,
                    &mut st.hist_out,
                    &mut st.emit,
                    sink,
                );
                if current {
                    ctx.value.reset();
                    ctx.has_value = false;
                }
            }
            // Forget contexts: counters once expired, others after a whole bucket without a sample.
            let forget = !ctx.has_value
                && if counter {
                    ctx.last_seen.saturating_add(expiry) <= cutoff - interval
                } else {
                    ctx.last_seen < cutoff - interval
                }
                && !st.backlog.iter().any(|e| e.0 as usize == idx);
            if forget {
                let hash = ctx.hash;
                let alias = ctx.alias.0;
                let slots = &st.slots;
                st.table.remove(hash, idx as u32, |j| {
                    slots[j as usize].as_ref().map_or(0, |c| c.hash)
                });
                if alias != 0 {
                    st.aliases.remove(alias, idx as u32, |j| {
                        slots[j as usize].as_ref().map_or(0, |c| c.alias.0)
                    });
                }
                st.slots[idx] = None;
                st.free.push(idx as u32);
                st.live -= 1;
                f.removed += 1;
            }
        }
        f.next = end;
        f.backlog_seen = st.backlog.len();
        end >= st.slots.len()
    }

    /// Finishes a flush begun with [`Aggregator::begin_flush`] (after `flush_step` returned true).
    pub fn end_flush(&mut self, f: FlushState) {
        let st = &mut self.st;
        // Trailing empty slots can go.
        while matches!(st.slots.last(), Some(None)) {
            st.slots.pop();
        }
        if !st.free.is_empty() {
            let len = st.slots.len() as u32;
            st.free.retain(|&i| i < len);
        }
        if st.slots.capacity() > 1024 && st.slots.len() < st.slots.capacity() / 4 {
            st.slots.shrink_to(st.slots.len() * 2);
            st.free.shrink_to(st.free.len() * 2);
        }
        // Strings of timestamped points are still held by this batch: free them at the next flush.
        if f.removed > 0 || st.gc_next {
            st.interner.gc();
        }
        st.gc_next = f.had_passthrough;
        st.last_cutoff = f.cutoff;
        self.telemetry.dogstatsd.contexts.add(-(f.removed as i64));
    }
}

/// A flush in progress (see [`Aggregator::begin_flush`]).
#[derive(Debug)]
pub struct FlushState {
    cutoff: i64,
    force: bool,
    /// Closed backlogged values, sorted by context, consumed from `di`.
    done: Vec<(u32, i64, Value)>,
    di: usize,
    /// Backlog entries already looked at.
    backlog_seen: usize,
    buckets: Vec<i64>,
    /// Next context slot to flush.
    next: usize,
    removed: usize,
    had_passthrough: bool,
    vals: Vec<(i64, Value)>,
}

/// Appends a context's closed buckets (`vals`, plus its current value when `current`) to `batch`: one
/// series per output name and type, with a point per bucket (the agent's `dedupSerieBySerieSignature`).
/// A backlogged bucket may hold another type than the current one; each is flushed as its own type.
#[allow(clippy::too_many_arguments)]
fn emit(
    ctx: &mut Context,
    vals: &mut [(i64, Value)],
    current: bool,
    buckets: &[i64],
    interval: i64,
    expiry: i64,
    spec: &HistSpec,
    interner: &mut Interner,
    name_buf: &mut String,
    hist_out: &mut Vec<(f64, SeriesKind)>,
    bufs: &mut EmitBufs,
    sink: &mut dyn FlushSink,
) {
    let EmitBufs {
        rates,
        gauges,
        hists,
        hist_kinds,
        sketches,
    } = bufs;
    rates.clear();
    gauges.clear();
    sketches.clear();
    let n_out = spec.suffixes.len();
    let mut hist_names: Option<Box<[IStr]>> = None;
    let cur_bucket = ctx.bucket;
    let cur = current.then_some((cur_bucket, &mut ctx.value));
    let entries = vals.iter_mut().map(|(b, v)| (*b, v)).chain(cur);
    for (b, value) in entries {
        match value {
            Value::Counter(sum) => rates.push((b, *sum / interval as f64)),
            Value::Gauge(g) => gauges.push((b, *g)),
            Value::Set(s) => gauges.push((b, s.members.len() as f64)),
            Value::Distribution(s) => {
                if !s.is_empty() {
                    sketches.push(s.to_point(b));
                }
            }
            Value::Histogram(h) => {
                if h.is_empty() {
                    continue;
                }
                if h.names.len() != n_out {
                    h.names = spec
                        .suffixes
                        .iter()
                        .map(|s| {
                            name_buf.clear();
                            name_buf.push_str(&ctx.name);
                            name_buf.push_str(s);
                            interner.intern(name_buf)
                        })
                        .collect();
                }
                if hist_names.is_none() {
                    hist_names = Some(h.names.clone());
                    hists.resize_with(n_out, Vec::new);
                    hists.iter_mut().for_each(Vec::clear);
                    hist_kinds.clear();
                    hist_kinds.resize(n_out, SeriesKind::Gauge);
                }
                h.compute(spec, interval, hist_out);
                for (i, &(v, k)) in hist_out.iter().enumerate() {
                    hists[i].push((b, v));
                    hist_kinds[i] = k;
                }
            }
        }
    }
    // Counters: a 0 for each closed bucket without a sample, until expiry.
    if matches!(ctx.value, Value::Counter(_)) {
        for &b in buckets {
            if ctx.last_seen.saturating_add(expiry) > b && !rates.iter().any(|p| p.0 == b) {
                rates.push((b, 0.0));
            }
        }
    }
    let mut push = |name: &IStr, kind: SeriesKind, points: &mut Vec<(i64, f64)>| {
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| p.0);
        sink.series(SeriesRef {
            name,
            tags: &ctx.tags,
            host: &ctx.host,
            kind,
            interval: if kind == SeriesKind::Gauge {
                0
            } else {
                interval
            },
            points,
        });
    };
    push(&ctx.name, SeriesKind::Rate, rates);
    push(&ctx.name, SeriesKind::Gauge, gauges);
    if let Some(names) = hist_names {
        for ((name, &kind), points) in names.iter().zip(hist_kinds.iter()).zip(hists.iter_mut()) {
            push(name, kind, points);
        }
    }
    if !sketches.is_empty() {
        sketches.sort_by_key(|p| p.ts);
        sink.sketch(SketchRef {
            name: &ctx.name,
            tags: &ctx.tags,
            host: &ctx.host,
            interval,
            points: sketches,
        });
    }
}

pub mod histogram;
pub mod shards;
mod table;
#[cfg(test)]
mod tests;
