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
//! other than counters are forgotten once a whole bucket passed without a sample. Names and hosts are
//! interned (one `Arc<str>` per distinct string, freed at the flush after the last context using it
//! goes); a context's tags are one [`TagSet`] (their text in one allocation, shared with its flushed
//! series). A sample for an existing context allocates nothing.
//!
//! Memory bounds: at most `max_contexts` contexts (new ones past that are refused and counted as
//! `context_limit` drops), at most [`SET_MEMBER_LIMIT`] set members per context, histogram samples within
//! [`AggregatorConfig::histogram_memory`] (then a 4096-bin sketch per context), at most
//! [`PASSTHROUGH_LIMIT`] timestamped points waiting for a flush.
//!
//! One job per file: [`config`] (settings, blocklist), [`value`] (each type's arithmetic), [`interner`]
//! (shared strings), [`key`] (tags and context hashes), [`insert`] (the insert paths), [`passthrough`]
//! (timestamped points), [`flush`] (closing buckets), [`histogram`] (exact histogram samples), [`table`]
//! (the context index) and [`shards`] (several aggregators behind locks).

mod config;
mod flush;
pub mod histogram;
mod insert;
mod interner;
mod key;
mod passthrough;
pub mod shards;
mod table;
#[cfg(test)]
mod tests;
mod value;

pub use config::{AggregatorConfig, MetricBlocklist};
pub use flush::FlushState;
pub use histogram::HistogramMemory;
pub use key::name_hash;
pub use shards::Shards;

use crate::model::{IStr, Series, SeriesKind, TagSet};
use crate::telemetry::Telemetry;
use flush::EmitBufs;
use insert::Pending;
use interner::Interner;
use std::sync::Arc;
use table::Table;
use value::{HistSpec, Value};

/// Lines looked up together by [`Aggregator::insert_group`].
pub const GROUP: usize = 16;

/// Distinct members kept per set context and bucket.
pub const SET_MEMBER_LIMIT: usize = 10_000;
/// Timestamped points kept between two flushes.
pub const PASSTHROUGH_LIMIT: usize = 100_000;
/// Bucket values of contexts that moved on to a newer bucket before a flush.
const BACKLOG_LIMIT: usize = 1_000_000;

/// Bytes at the start of a [`Context`] that a sample for it reads (through `has_value`), prefetched together.
const HOT_BYTES: usize = std::mem::offset_of!(Context, has_value) + 1;

/// Fields the insert path reads come first (`repr(C)` keeps the order), so a sample for an existing
/// context touches its first [`HOT_BYTES`] (two cache lines at most; 120-byte slots are not line-aligned).
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
    tags: TagSet,
    /// Empty: the agent's hostname.
    host: IStr,
}

impl Context {
    fn is_distribution(&self) -> bool {
        matches!(self.value, Value::Distribution(_))
    }
}

/// Mutable state, kept apart from the configuration so that tag slices borrowed from the configuration
/// can be used while it is updated.
#[derive(Debug, Default)]
struct State {
    slots: Vec<Option<Context>>,
    free: Vec<u32>,
    table: Table,
    /// Line-text hash -> slot, for the fast path (at most half full: it is probed for every sample).
    aliases: Table<4>,
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
    /// Scratch of [`Aggregator::insert_group`]: its lines' name hashes.
    name_hashes: Vec<u64>,
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
            name_hashes: Vec::new(),
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
}
