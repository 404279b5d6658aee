//! A context's value in one bucket and the arithmetic of each DogStatsD type: counter sums with the sample
//! rate applied, last gauge, set members by hash, histogram samples and their aggregates and percentiles
//! (as the Agent's `Histogram.flush`), distributions in the Agent's sketch.

use super::histogram::{Added, HistogramMemory, Samples};
use crate::model::{IStr, MetricKind, SeriesKind};
use crate::prefetch::prefetch_value;
use crate::sketch::Sketch;
use crate::telemetry::{DropReason, Telemetry};
use hashbrown::HashSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Agg {
    Max,
    Min,
    Median,
    Avg,
    Sum,
    Count,
}

/// What a histogram flushes: aggregates in configured order, then percentiles ascending.
#[derive(Debug)]
pub(super) struct HistSpec {
    pub(super) aggs: Vec<Agg>,
    /// Percent (1..=100), sorted.
    pub(super) pcts: Vec<i64>,
    /// `.max`, …, `.95percentile`, in output order.
    pub(super) suffixes: Vec<String>,
}

impl HistSpec {
    pub(super) fn new(aggs: &[String], pcts: &[f64]) -> Self {
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

/// Members kept inline before a set context's members move to a hash set.
const SET_INLINE: usize = 6;

/// A set context's members in one bucket, by 64-bit hash (one in 2^64 chance that two members count once).
/// The first [`SET_INLINE`] are kept inline, in the same cache line as their count, so that a set with few
/// members per bucket (the common case) costs one memory read per sample rather than three (box, table
/// control bytes, table slot); past that, all of them are in `spilled`.
#[derive(Debug, Default)]
#[repr(C)]
pub(super) struct SetState {
    /// Members in `inline` (0 once they spilled).
    inline_len: usize,
    inline: [u64; SET_INLINE],
    spilled: HashSet<u64, foldhash::fast::FixedState>,
}

impl SetState {
    /// Distinct members.
    pub(super) fn len(&self) -> usize {
        self.inline_len + self.spilled.len()
    }

    pub(super) fn contains(&self, h: u64) -> bool {
        self.inline[..self.inline_len].contains(&h) || self.spilled.contains(&h)
    }

    /// Adds a member; false when it was already there.
    pub(super) fn insert(&mut self, h: u64) -> bool {
        if self.spilled.is_empty() {
            if self.inline[..self.inline_len].contains(&h) {
                return false;
            }
            if self.inline_len < SET_INLINE {
                self.inline[self.inline_len] = h;
                self.inline_len += 1;
                return true;
            }
            self.spilled.reserve(SET_INLINE * 2);
            self.spilled.extend(&self.inline[..self.inline_len]);
            self.inline_len = 0;
        }
        self.spilled.insert(h)
    }

    /// Empties the set, keeping a small table's allocation for the next bucket.
    pub(super) fn clear(&mut self) {
        self.inline_len = 0;
        self.spilled.clear();
        if self.spilled.capacity() > 256 {
            self.spilled.shrink_to(256);
        }
    }
}

#[derive(Debug)]
pub(super) struct HistState {
    /// The bucket's samples, exact (see [`histogram`](super::histogram)).
    pub(super) samples: Samples,
    pub(super) count: i64,
    pub(super) sum: f64,
    pub(super) min: f64,
    pub(super) max: f64,
    /// Interned `name + suffix` for each output, made at the first flush.
    pub(super) names: Box<[IStr]>,
}

impl HistState {
    pub(super) fn new(memory: HistogramMemory) -> Self {
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
    pub(super) fn add(&mut self, v: f64, rate: f64) -> bool {
        let rate = if rate > 0.0 && rate <= 1.0 { rate } else { 1.0 };
        let inv = 1.0 / rate;
        let w = inv as i64;
        self.count = self.count.saturating_add(w);
        self.sum += v * inv;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.samples.add(v, w.max(1) as u64) == Added::Exact
    }

    pub(super) fn reset(&mut self) {
        self.samples.reset();
        self.count = 0;
        self.sum = 0.0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Output values in `spec.suffixes` order, as the agent's `Histogram.flush`.
    pub(super) fn compute(
        &mut self,
        spec: &HistSpec,
        interval: i64,
        out: &mut Vec<(f64, SeriesKind)>,
    ) {
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

/// A histogram's closed bucket as it was set aside (see [`Value::close`]): its outputs, in `HistSpec::suffixes`
/// order, already computed, and the interned output names when it had them.
#[derive(Debug)]
pub(super) struct ClosedHist {
    pub(super) names: Box<[IStr]>,
    pub(super) out: Box<[(f64, SeriesKind)]>,
}

/// One context's value in its current bucket.
#[derive(Debug)]
pub(super) enum Value {
    Counter(f64),
    Gauge(f64),
    Set(Box<SetState>),
    Histogram(Box<HistState>),
    Distribution(Box<Sketch>),
    /// Only in the backlog of closed buckets: a histogram's bucket reduced to its outputs.
    ClosedHistogram(Box<ClosedHist>),
}

impl Value {
    pub(super) fn new(kind: MetricKind, memory: &HistogramMemory) -> Self {
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

    pub(super) fn matches(&self, kind: MetricKind) -> bool {
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

    /// Hints the CPU to load a boxed value's state (a set's members, a histogram's or sketch's header).
    #[inline]
    pub(super) fn prefetch(&self) {
        match self {
            Value::Set(s) => prefetch_value(&**s),
            Value::Histogram(h) => prefetch_value(&**h),
            Value::Distribution(s) => prefetch_value(&**s),
            _ => {}
        }
    }

    /// Hints the CPU to load what a sample will touch behind the boxed state, which must be loaded already
    /// (after [`Value::prefetch`]): where a histogram's next sample goes, a sketch's bins.
    #[inline]
    pub(super) fn prefetch_inner(&self) {
        match self {
            Value::Histogram(h) => h.samples.prefetch_next(),
            Value::Distribution(s) => s.prefetch_bins(),
            _ => {}
        }
    }

    /// Empties the value in place (keeping small allocations for the next bucket).
    pub(super) fn reset(&mut self) {
        match self {
            Value::Counter(v) | Value::Gauge(v) => *v = 0.0,
            Value::Set(s) => s.clear(),
            Value::Histogram(h) => h.reset(),
            Value::Distribution(s) => s.reset(),
            Value::ClosedHistogram(c) => c.out = Box::new([]),
        }
    }

    /// The value of a closed bucket, set aside until the flush sends it, in the least memory that flushes the
    /// same series: a set becomes its member count (flushed as a gauge either way) and a histogram its
    /// outputs (what the flush would compute from its samples; `spec` and `interval` are the flush's). At a
    /// bucket boundary nearly every context sets its bucket aside before the flush reaches it: at 100k
    /// contexts of the load generator's mix, the samples and members held twice were ~11 MiB of RSS.
    pub(super) fn close(
        self,
        spec: &HistSpec,
        interval: i64,
        out: &mut Vec<(f64, SeriesKind)>,
    ) -> Self {
        match self {
            Value::Set(s) => Value::Gauge(s.len() as f64),
            Value::Histogram(mut h) if !h.is_empty() => {
                h.compute(spec, interval, out);
                Value::ClosedHistogram(Box::new(ClosedHist {
                    names: std::mem::take(&mut h.names),
                    out: out.as_slice().into(),
                }))
            }
            other => other,
        }
    }

    /// An empty value of the same type, for a context moving on to a new bucket.
    pub(super) fn fresh(&self) -> Self {
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
            // Never a context's open value.
            Value::ClosedHistogram(_) => Value::Gauge(0.0),
        }
    }
}

/// Adds one numeric sample to a non-set value. False when it was refused (counted).
pub(super) fn apply(value: &mut Value, v: f64, rate: f64, tel: &Telemetry) -> bool {
    match value {
        // Unsampled (nearly every line): no division; `v * (1.0 / 1.0)` is `v` exactly.
        Value::Counter(sum) if rate == 1.0 => *sum += v,
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
        Value::Set(_) | Value::ClosedHistogram(_) => return false,
    }
    true
}
