//! The samples of one histogram context in one bucket, kept exactly so that its median and percentiles are the
//! Datadog Agent's (which keeps every sample), in little memory, under a budget shared by all aggregators.
//!
//! New samples are appended (8 bytes each; 16 for one with a sample rate, which carries its weight). Once the new
//! ones outnumber the compacted ones (and at flush), they are sorted and merged into the compacted runs: one
//! `(value, total weight)` per distinct value, 16 bytes. A timer in whole milliseconds has a few hundred distinct
//! values however many samples it gets; distinct values cost 16 bytes each. Sorting as it goes costs O(log n)
//! per sample, amortized.
//!
//! The memory the stores hold is reserved from a [`HistogramMemory`] shared by every shard (reserved as vectors
//! grow, so the shared counter is touched only when a vector reallocates). A store that cannot get the memory
//! it needs moves its samples into the Agent's sketch (bounded, 1% relative accuracy for the median and
//! percentiles; max, min, avg, sum and count stay exact) until the bucket is flushed, and every sample added to a
//! sketch is counted (`dogstatsd.histogram_samples_approximated`), so an approximation is never silent.

use crate::sketch::Sketch;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

/// Bytes of histogram samples the aggregators may hold at once, shared by every shard (clones share it).
#[derive(Clone, Debug)]
pub struct HistogramMemory {
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl Default for HistogramMemory {
    /// No limit.
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl HistogramMemory {
    pub fn new(limit: usize) -> Self {
        HistogramMemory {
            limit,
            used: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    fn try_reserve(&self, bytes: usize) -> bool {
        let before = self.used.fetch_add(bytes, Relaxed);
        if before.saturating_add(bytes) > self.limit {
            self.used.fetch_sub(bytes, Relaxed);
            return false;
        }
        true
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Relaxed);
    }
}

/// What [`Samples::add`] did with a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Added {
    /// Kept exactly.
    Exact,
    /// Went into the sketch (the budget was spent).
    Approximated,
}

/// One bucket's samples of one histogram context (see the module documentation).
#[derive(Debug)]
pub(super) struct Samples {
    /// Weight-1 samples not compacted yet, in arrival order.
    fresh: Vec<f64>,
    /// Weighted samples not compacted yet.
    fresh_weighted: Vec<(f64, u64)>,
    /// Distinct values, ascending, with their total weight.
    runs: Vec<(f64, u64)>,
    /// Set when the budget ran out: every sample from then on (and those before) is in it.
    sketch: Option<Box<Sketch>>,
    /// Bytes reserved from `memory` for the vectors' capacity.
    reserved: usize,
    memory: HistogramMemory,
}

/// New samples below this many are not worth a compaction of their own.
const COMPACT_MIN: usize = 32;
/// Capacity kept across buckets (a context keeps getting about as many samples).
const KEEP_CAPACITY: usize = 32;

impl Samples {
    pub(super) fn new(memory: HistogramMemory) -> Self {
        Samples {
            fresh: Vec::new(),
            fresh_weighted: Vec::new(),
            runs: Vec::new(),
            sketch: None,
            reserved: 0,
            memory,
        }
    }

    pub(super) fn memory(&self) -> &HistogramMemory {
        &self.memory
    }

    pub(super) fn is_empty(&self) -> bool {
        self.fresh.is_empty()
            && self.fresh_weighted.is_empty()
            && self.runs.is_empty()
            && self.sketch.is_none()
    }

    /// Hints the CPU to load where the next weight-1 sample goes.
    #[inline]
    pub(super) fn prefetch_next(&self) {
        if self.sketch.is_none() {
            crate::prefetch::prefetch_read(self.fresh.as_ptr().wrapping_add(self.fresh.len()));
        }
    }

    /// Adds `v` with `weight` (at least 1).
    pub(super) fn add(&mut self, v: f64, weight: u64) -> Added {
        if let Some(s) = &mut self.sketch {
            insert_weighted(s, v, weight);
            return Added::Approximated;
        }
        let pending = self.fresh.len() + self.fresh_weighted.len();
        if pending >= COMPACT_MIN && pending >= self.runs.len() {
            self.compact();
            if self.sketch.is_some() {
                return self.add(v, weight);
            }
        }
        let grows = if weight == 1 {
            self.fresh.len() == self.fresh.capacity()
        } else {
            self.fresh_weighted.len() == self.fresh_weighted.capacity()
        };
        if grows {
            let extra = if weight == 1 {
                self.fresh.capacity().max(4) * 8
            } else {
                self.fresh_weighted.capacity().max(4) * 16
            };
            if !self.reserve(extra) {
                self.move_into_sketch();
                return self.add(v, weight);
            }
        }
        if weight == 1 {
            self.fresh.push(v);
        } else {
            self.fresh_weighted.push((v, weight));
        }
        if grows {
            self.sync_reserved();
        }
        Added::Exact
    }

    /// Sorts the new samples into the runs.
    fn compact(&mut self) {
        if self.fresh.is_empty() && self.fresh_weighted.is_empty() {
            return;
        }
        self.fresh.sort_unstable_by(f64::total_cmp);
        self.fresh_weighted
            .sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        // Distinct new values, to size the merged runs.
        let merged_max = self.runs.len() + self.fresh.len() + self.fresh_weighted.len();
        if !self.reserve(merged_max * 16) {
            self.move_into_sketch();
            return;
        }
        let mut out: Vec<(f64, u64)> = Vec::with_capacity(merged_max);
        let push = |out: &mut Vec<(f64, u64)>, v: f64, w: u64| match out.last_mut() {
            Some(last) if last.0 == v => last.1 = last.1.saturating_add(w),
            _ => out.push((v, w)),
        };
        let (mut i, mut j, mut k) = (0, 0, 0);
        loop {
            // The smallest head of the three sorted sources.
            let a = self.runs.get(i).map(|r| r.0);
            let b = self.fresh.get(j).copied();
            let c = self.fresh_weighted.get(k).map(|r| r.0);
            let min = [a, b, c]
                .into_iter()
                .flatten()
                .min_by(|x, y| x.total_cmp(y));
            let Some(min) = min else { break };
            if a == Some(min) {
                push(&mut out, min, self.runs[i].1);
                i += 1;
            } else if b == Some(min) {
                push(&mut out, min, 1);
                j += 1;
            } else {
                push(&mut out, min, self.fresh_weighted[k].1);
                k += 1;
            }
        }
        out.shrink_to_fit();
        self.runs = out;
        self.fresh.clear();
        self.fresh_weighted.clear();
        self.sync_reserved();
    }

    /// Moves every sample into a sketch (the budget is spent) and frees the vectors.
    fn move_into_sketch(&mut self) {
        let mut s = Box::new(Sketch::new());
        for &v in &self.fresh {
            insert_weighted(&mut s, v, 1);
        }
        for &(v, w) in self.fresh_weighted.iter().chain(&self.runs) {
            insert_weighted(&mut s, v, w);
        }
        self.fresh = Vec::new();
        self.fresh_weighted = Vec::new();
        self.runs = Vec::new();
        self.sketch = Some(s);
        self.sync_reserved();
    }

    /// Reserves `extra` bytes beyond what is held now (false: over budget, nothing reserved).
    fn reserve(&mut self, extra: usize) -> bool {
        if self.memory.try_reserve(extra) {
            self.reserved += extra;
            true
        } else {
            false
        }
    }

    /// Sets the reservation to the vectors' real capacity.
    fn sync_reserved(&mut self) {
        let held = self.fresh.capacity() * 8
            + self.fresh_weighted.capacity() * 16
            + self.runs.capacity() * 16;
        // The shared counter is touched only when the capacity changed (a reallocation), not per sample.
        match held.cmp(&self.reserved) {
            // Growth the caller did not reserve for (cannot fail the sample now: take it).
            std::cmp::Ordering::Greater => {
                self.memory.used.fetch_add(held - self.reserved, Relaxed);
            }
            std::cmp::Ordering::Less => self.memory.release(self.reserved - held),
            std::cmp::Ordering::Equal => {}
        }
        self.reserved = held;
    }

    /// Empties the store for the next bucket, keeping a little capacity.
    pub(super) fn reset(&mut self) {
        self.fresh.clear();
        self.fresh.shrink_to(KEEP_CAPACITY);
        self.fresh_weighted.clear();
        self.fresh_weighted.shrink_to(KEEP_CAPACITY / 4);
        self.runs = Vec::new();
        self.sketch = None;
        self.sync_reserved();
    }

    /// Calls `f` with a function that returns the value at a 0-based weighted rank (the Agent's walk over its
    /// sorted samples: the first value whose running weight exceeds the rank), or the sketch's estimate. `count`
    /// is the total weight and `max` the largest value (for a rank past the end).
    pub(super) fn ranks<R>(
        &mut self,
        count: i64,
        max: f64,
        f: impl FnOnce(&dyn Fn(i64) -> f64) -> R,
    ) -> R {
        self.compact();
        if let Some(s) = &self.sketch {
            let at = |target: i64| {
                let q = if count > 1 {
                    target as f64 / (count - 1) as f64
                } else {
                    0.0
                };
                s.quantile(q).unwrap_or(max)
            };
            return f(&at);
        }
        let runs = &self.runs;
        let at = |target: i64| {
            let mut acc: u64 = 0;
            for &(v, w) in runs {
                acc = acc.saturating_add(w);
                if acc as i128 > target as i128 {
                    return v;
                }
            }
            max
        };
        f(&at)
    }
}

impl Drop for Samples {
    fn drop(&mut self) {
        self.memory.release(self.reserved);
    }
}

fn insert_weighted(s: &mut Sketch, v: f64, weight: u64) {
    let mut left = weight;
    while left > 0 {
        let n = left.min(u32::MAX as u64) as u32;
        if !s.insert_n(v, n) {
            // The sketch is full (its count limit): the exact aggregates still count the sample.
            return;
        }
        left -= n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_rank(samples: &[(f64, u64)], target: i64) -> f64 {
        let mut sorted = samples.to_vec();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut acc = 0u64;
        for (v, w) in sorted {
            acc += w;
            if acc as i64 > target {
                return v;
            }
        }
        f64::NAN
    }

    #[test]
    fn ranks_are_exact_with_repeats_weights_and_many_compactions() {
        let mem = HistogramMemory::default();
        let mut s = Samples::new(mem.clone());
        let mut all = Vec::new();
        for i in 0..50_000u64 {
            let v = ((i * 7919) % 1009) as f64 * 0.5;
            let w = if i % 7 == 0 { 3 } else { 1 };
            assert_eq!(s.add(v, w), Added::Exact);
            all.push((v, w));
        }
        let count: i64 = all.iter().map(|a| a.1 as i64).sum();
        for target in [
            0,
            1,
            count / 3,
            (count - 1) / 2,
            (95 * count - 1) / 100,
            count - 1,
        ] {
            let want = exact_rank(&all, target);
            let got = s.ranks(count, 0.0, |at| at(target));
            assert_eq!(got, want, "rank {target}");
        }
        // 1009 distinct values: the runs, not 50,000 samples.
        assert!(
            mem.used() <= 1009 * 16 * 2 + COMPACT_MIN * 16,
            "{}",
            mem.used()
        );
        drop(s);
        assert_eq!(mem.used(), 0, "every byte given back");
    }

    #[test]
    fn a_spent_budget_moves_to_the_sketch_and_counts() {
        let mem = HistogramMemory::new(4096);
        let mut s = Samples::new(mem.clone());
        let mut approximated = 0;
        for v in 1..=10_000u64 {
            if s.add(v as f64, 1) == Added::Approximated {
                approximated += 1;
            }
            assert!(mem.used() <= 4096);
        }
        assert!(approximated > 9_000, "{approximated}");
        let median = s.ranks(10_000, 10_000.0, |at| at(4_999));
        assert!((median - 5_000.0).abs() / 5_000.0 < 0.02, "{median}");
        s.reset();
        assert_eq!(mem.used(), 0);
        // A new bucket starts exact again.
        assert_eq!(s.add(1.0, 1), Added::Exact);
    }
}
