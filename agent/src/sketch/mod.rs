//! The Datadog Agent's own DDSketch (`pkg/quantile` in DataDog/datadog-agent), bin for bin.
//!
//! Why hand-written: the `sketches-ddsketch` crate implements the *paper's* DDSketch (its own gamma, key
//! offset and stores), whose keys mean nothing to Datadog's sketch intake. The intake expects the agent's
//! layout: relative accuracy 1/128 (gamma = 1 + 2/128), keys `round_half_even(ln(v) / ln(gamma)) + bias`
//! stored as `i16`, key 0 for |v| below the smallest trackable value (1e-9), negative keys for negative
//! values, at most 4096 bins with the lowest bins collapsed into the next one, and per-bin counts capped at
//! `u16::MAX` (a fuller bin spills into extra bins with the same key). The summary statistics (`cnt`, `min`,
//! `max`, `sum`, `avg`) follow the agent's `summary.Summary`, including its incremental average.
//!
//! The agent buffers up to 512 keys before merging them into its bins; this sketch merges each key as it
//! comes. Both end with the same bins: keys are merged into the first bin with that key and collapsing
//! always folds the lowest keys into the lowest kept key.

use crate::model::SketchPoint;

/// Relative accuracy of the agent's sketch.
const EPS: f64 = 1.0 / 128.0;
/// Smallest magnitude given a non-zero key.
const MIN_VALUE: f64 = 1e-9;
/// Most bins kept before the lowest ones are collapsed.
pub const BIN_LIMIT: usize = 4096;
/// Largest count of one bin (`bin.n` is a `u16` in the agent).
const MAX_BIN_WIDTH: u32 = u16::MAX as u32;
/// Key of +Inf (`1<<15 - 1`); the largest finite key is one less.
const INF_KEY: i32 = (1 << 15) - 1;
const MAX_KEY: i32 = INF_KEY - 1;
/// The agent's `Config.MaxCount()`: the most values one sketch can take (`binLimit * MaxUint16`).
pub const MAX_COUNT: i64 = BIN_LIMIT as i64 * MAX_BIN_WIDTH as i64;

/// The agent's default `Config`, derived exactly as `NewConfig(0, 0, 0)` does.
struct Params {
    gamma: f64,
    gamma_ln: f64,
    bias: i32,
    /// Smallest value with key 1 (`f64(1)`); anything smaller in magnitude has key 0.
    norm_min: f64,
}

fn params() -> &'static Params {
    static P: std::sync::OnceLock<Params> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let two_eps = 2.0 * EPS;
        let gamma = 1.0 + two_eps;
        let gamma_ln = two_eps.ln_1p();
        let emin = (MIN_VALUE.ln() / gamma_ln).floor() as i32;
        let bias = -emin + 1;
        let norm_min = gamma.powf((1 - bias) as f64);
        Params {
            gamma,
            gamma_ln,
            bias,
            norm_min,
        }
    })
}

/// The agent's key for `v` (`Config.key`). Non-finite values are not meant to be inserted.
pub fn key(v: f64) -> i16 {
    let p = params();
    if v < 0.0 {
        return -key(-v);
    }
    if v == 0.0 || v < p.norm_min {
        return 0;
    }
    let i = (v.ln() / p.gamma_ln).round_ties_even() as i32 + p.bias;
    if i > MAX_KEY {
        return INF_KEY as i16;
    }
    i.max(1) as i16
}

/// The lower bound of key `k`'s bin: `gamma^(k - bias)` (`Config.f64`).
pub fn key_lower_bound(k: i16) -> f64 {
    let p = params();
    let k = k as i32;
    if k < 0 {
        return -key_lower_bound(-k as i16);
    }
    if k == INF_KEY {
        return f64::INFINITY;
    }
    if k == 0 {
        return 0.0;
    }
    p.gamma.powf((k - p.bias) as f64)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bin {
    k: i16,
    n: u16,
}

/// The agent's `summary.Summary`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Summary {
    min: f64,
    max: f64,
    sum: f64,
    avg: f64,
    cnt: i64,
}

impl Summary {
    fn insert(&mut self, v: f64) {
        if v > self.max || self.cnt == 0 {
            self.max = v;
        }
        if v < self.min || self.cnt == 0 {
            self.min = v;
        }
        self.cnt += 1;
        self.sum += v;
        self.avg += (v - self.avg) / self.cnt as f64;
    }

    /// `InsertN(v, n)`: the count is truncated, the sum is not (as in the agent).
    fn insert_n(&mut self, v: f64, n: f64) {
        self.merge(&Summary {
            min: v,
            max: v,
            sum: n * v,
            avg: v,
            cnt: n as i64,
        });
    }

    fn merge(&mut self, o: &Summary) {
        if self.cnt == 0 {
            *self = *o;
            return;
        }
        if o.cnt == 0 {
            return;
        }
        if o.max > self.max {
            self.max = o.max;
        }
        if o.min < self.min {
            self.min = o.min;
        }
        self.cnt += o.cnt;
        self.sum += o.sum;
        self.avg += (o.avg - self.avg) * o.cnt as f64 / self.cnt as f64;
    }
}

/// Appends `n` of key `k` as the agent's `appendSafe` does: one bin when it fits, else the remainder
/// first and then full bins.
fn append_safe(bins: &mut Vec<Bin>, k: i16, n: u64) {
    if n <= MAX_BIN_WIDTH as u64 {
        bins.push(Bin { k, n: n as u16 });
        return;
    }
    let r = n % MAX_BIN_WIDTH as u64;
    if r != 0 {
        bins.push(Bin { k, n: r as u16 });
    }
    for _ in 0..n / MAX_BIN_WIDTH as u64 {
        bins.push(Bin { k, n: u16::MAX });
    }
}

/// Collapses the lowest bins so that at most `BIN_LIMIT` remain (plus bins made full by the collapse),
/// as the agent's `trimLeft`.
fn trim_left(bins: &mut Vec<Bin>) {
    if bins.len() <= BIN_LIMIT {
        return;
    }
    let n_remove = bins.len() - BIN_LIMIT;
    let mut missing: u64 = 0;
    let mut overflow: Vec<Bin> = Vec::new();
    for b in &bins[..n_remove] {
        missing += b.n as u64;
        if missing > MAX_BIN_WIDTH as u64 {
            overflow.push(Bin {
                k: b.k,
                n: u16::MAX,
            });
            missing -= MAX_BIN_WIDTH as u64;
        }
    }
    // Add what is left into the lowest kept bin; what does not fit spills into more bins with its key.
    let kept = &mut bins[n_remove];
    let next = kept.n as u64 + missing;
    if next > MAX_BIN_WIDTH as u64 {
        kept.n = u16::MAX;
        let k = kept.k;
        append_safe(&mut overflow, k, next - MAX_BIN_WIDTH as u64);
    } else {
        kept.n = next as u16;
    }
    // The overflow bins (usually none) take the place of the removed ones, in place.
    bins.splice(..n_remove, overflow);
}

/// A distribution sketch, bit-compatible with the Datadog Agent's (`quantile.Agent` / `quantile.Sketch`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sketch {
    /// Sorted by key; a key may repeat when its count passed `u16::MAX`.
    bins: Vec<Bin>,
    /// Sum of the bins' counts (`sparseStore.count`).
    count: i64,
    basic: Summary,
}

impl Sketch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hints the CPU to load the bins (the first four cache lines), before an insert.
    #[inline]
    pub fn prefetch_bins(&self) {
        crate::prefetch::prefetch_span(
            self.bins.as_ptr() as *const u8,
            std::mem::size_of_val(self.bins.as_slice()),
        );
    }

    /// Inserts one value. Returns false (and changes nothing) for a non-finite value or when the sketch
    /// already holds the agent's maximum count.
    pub fn insert(&mut self, v: f64) -> bool {
        if !v.is_finite() || self.count >= MAX_COUNT {
            return false;
        }
        self.basic.insert(v);
        self.add_key(key(v), 1);
        true
    }

    /// Inserts `v` `n` times (the agent's `InsertN`).
    pub fn insert_n(&mut self, v: f64, n: u32) -> bool {
        if n == 0 {
            return true;
        }
        if !v.is_finite() || self.count + n as i64 > MAX_COUNT {
            return false;
        }
        self.basic.insert_n(v, n as f64);
        self.add_key(key(v), n as u64);
        true
    }

    /// Inserts a DogStatsD sample with its sample rate as the agent's `Agent.Insert(v, sampleRate)`: a rate
    /// outside (0, 1] counts as 1; otherwise the bins get `trunc(1 / rate)` and the sum gets `v / rate`.
    pub fn insert_sampled(&mut self, v: f64, sample_rate: f64) -> bool {
        let rate = if sample_rate > 0.0 && sample_rate <= 1.0 {
            sample_rate
        } else {
            1.0
        };
        if rate == 1.0 {
            return self.insert(v);
        }
        let n = 1.0 / rate;
        if !v.is_finite() || n >= (MAX_COUNT - self.count) as f64 + 1.0 {
            return false;
        }
        let count = n as u64;
        if count == 0 {
            return true;
        }
        self.basic.insert_n(v, n);
        self.add_key(key(v), count);
        true
    }

    /// Adds `n` to key `k`: into the first bin with that key, spilling into more bins past `u16::MAX`.
    fn add_key(&mut self, k: i16, n: u64) {
        self.count += n as i64;
        let idx = self.bins.partition_point(|b| b.k < k);
        if idx < self.bins.len() && self.bins[idx].k == k {
            let total = self.bins[idx].n as u64 + n;
            if total <= MAX_BIN_WIDTH as u64 {
                self.bins[idx].n = total as u16;
                return;
            }
            let mut spill = Vec::new();
            append_safe(&mut spill, k, total);
            self.bins.splice(idx..idx + 1, spill);
        } else if n <= MAX_BIN_WIDTH as u64 {
            self.bins.insert(idx, Bin { k, n: n as u16 });
        } else {
            let mut spill = Vec::new();
            append_safe(&mut spill, k, n);
            self.bins.splice(idx..idx, spill);
        }
        trim_left(&mut self.bins);
    }

    /// Merges `other` into `self` (the agent's `Sketch.Merge`).
    pub fn merge(&mut self, other: &Sketch) {
        self.basic.merge(&other.basic);
        self.count += other.count;
        let mut out: Vec<Bin> = Vec::with_capacity(self.bins.len() + other.bins.len());
        let mut si = 0;
        for ob in &other.bins {
            while si < self.bins.len() && self.bins[si].k < ob.k {
                out.push(self.bins[si]);
                si += 1;
            }
            if si < self.bins.len() && self.bins[si].k == ob.k {
                append_safe(&mut out, ob.k, ob.n as u64 + self.bins[si].n as u64);
                si += 1;
            } else {
                out.push(*ob);
            }
        }
        out.extend_from_slice(&self.bins[si..]);
        trim_left(&mut out);
        self.bins = out;
    }

    /// Empties the sketch, keeping its allocation.
    pub fn reset(&mut self) {
        self.bins.clear();
        self.count = 0;
        self.basic = Summary::default();
    }

    /// The value at quantile `q`: the agent's rank (`round_half_even(q * (n - 1))`, `q <= 0` is the min
    /// and `q >= 1` the max), answered with the center of the bin holding that rank, `gamma^(k - bias)`,
    /// clamped to [min, max]. Keys round to the nearest power of gamma, so this is within 0.8% of the
    /// true value; the agent's own `Quantile` interpolates as if the bin started at that power and can
    /// be 1.5% off (Datadog computes the quantiles it shows server-side from the bins). `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        if q <= 0.0 {
            return Some(self.basic.min);
        }
        if q >= 1.0 {
            return Some(self.basic.max);
        }
        let want = (q * (self.count - 1) as f64).round_ties_even();
        let mut n = 0.0;
        for b in &self.bins {
            n += b.n as f64;
            if n > want {
                return Some(key_lower_bound(b.k).clamp(self.basic.min, self.basic.max));
            }
        }
        Some(self.basic.max)
    }

    pub fn is_empty(&self) -> bool {
        self.basic.cnt == 0
    }
    /// Number of values (sum of weights, truncated per sample as the agent does).
    pub fn count(&self) -> i64 {
        self.basic.cnt
    }
    pub fn sum(&self) -> f64 {
        self.basic.sum
    }
    pub fn min(&self) -> f64 {
        self.basic.min
    }
    pub fn max(&self) -> f64 {
        self.basic.max
    }
    pub fn avg(&self) -> f64 {
        self.basic.avg
    }
    /// Number of bins (keys may repeat).
    pub fn bin_count(&self) -> usize {
        self.bins.len()
    }

    /// The sketch as one `Dogsketch` point at `ts`: `k` ascending, `n` matching.
    pub fn to_point(&self, ts: i64) -> SketchPoint {
        SketchPoint {
            ts,
            cnt: self.basic.cnt,
            min: self.basic.min,
            max: self.basic.max,
            avg: self.basic.avg,
            sum: self.basic.sum,
            k: self.bins.iter().map(|b| b.k as i32).collect(),
            n: self.bins.iter().map(|b| b.n as u32).collect(),
        }
    }

    /// Heap bytes held (for memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.bins.capacity() * std::mem::size_of::<Bin>()
    }
}

#[cfg(test)]
mod tests;
