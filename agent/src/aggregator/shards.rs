//! The context table split into shards, so that the processing workers aggregate on every core without
//! contending on one lock, and a flush takes one shard at a time while the others keep aggregating.
//!
//! A line goes to the shard of its metric name as sent. Every context of that name lives in that shard (the
//! name before the mapper decides the mapped name and tags; tags and origin only refine it), so a context is
//! never split across shards: its counter is summed in one place and flushed once. The price is that one very
//! hot name is aggregated on one shard; other names still go in parallel.
//!
//! Memory bounds are the agent's, not each shard's: the context limit is checked against the total of every
//! shard ([`Telemetry`]'s context gauge), and the limits on timestamped points and backlogged buckets are
//! divided among the shards ([`Aggregator::share_limits`]).

use super::key::name_hash;
use super::{Aggregator, AggregatorConfig};
use crate::model::{FlushSink, IStr, MetricLine};
use crate::telemetry::Telemetry;
use parking_lot::{Mutex, MutexGuard};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shards per processing worker: enough that two workers rarely want the same shard at once.
pub const SHARDS_PER_WORKER: usize = 4;

/// Contexts flushed between two chances for the workers to take a shard's lock (about a millisecond).
const FLUSH_STEP_CONTEXTS: usize = 2048;

/// Queued DogStatsD bytes past which a flush waits before its next step, so that the workers catch up: on two
/// cores a flush of 100k contexts is ~150 ms of CPU, and at 2M metrics/s (170 MB/s of datagrams) the queue
/// grew by 20-33 MB while it ran, which was most of the agent's peak RSS. Four batches of 256 KiB.
const PACE_QUEUE_BYTES: i64 = 1 << 20;
/// How long a flush waits at a time for the queue to shrink.
const PACE_NAP: Duration = Duration::from_millis(1);
/// The most a flush waits in all: a flood the workers cannot keep up with does not hold the flush back.
const PACE_MAX: Duration = Duration::from_millis(1000);

/// The sharded aggregator (see the module docs). Shared by the workers and the flusher.
pub struct Shards {
    shards: Box<[Mutex<Aggregator>]>,
    telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for Shards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shards")
            .field("shards", &self.shards.len())
            .field("contexts", &self.contexts())
            .finish()
    }
}

impl Shards {
    pub fn new(cfg: AggregatorConfig, telemetry: Arc<Telemetry>, shards: usize) -> Self {
        let n = shards.max(1);
        let shards = (0..n)
            .map(|_| {
                let mut a = Aggregator::new(cfg.clone(), telemetry.clone());
                a.share_limits(n);
                Mutex::new(a)
            })
            .collect();
        Shards { shards, telemetry }
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The shard a line with this metric name (as sent) belongs to.
    #[inline]
    pub fn shard_of(&self, name: &str) -> usize {
        self.shard_of_hash(name_hash(name))
    }

    /// The shard of a name whose [`name_hash`] is `h`.
    #[inline]
    pub fn shard_of_hash(&self, h: u64) -> usize {
        // The hash scaled to the shard count (multiply-high): no division on the per-line path.
        ((h as u128 * self.shards.len() as u128) >> 64) as usize
    }

    pub fn lock(&self, shard: usize) -> MutexGuard<'_, Aggregator> {
        self.shards[shard].lock()
    }

    pub fn try_lock(&self, shard: usize) -> Option<MutexGuard<'_, Aggregator>> {
        self.shards[shard].try_lock()
    }

    /// Live contexts over every shard.
    pub fn contexts(&self) -> usize {
        self.telemetry.dogstatsd.contexts.get().max(0) as usize
    }

    /// Changes the context limit of every shard (the limit applies to their total).
    pub fn set_max_contexts(&self, max: usize) {
        for s in self.shards.iter() {
            s.lock().set_max_contexts(max);
        }
    }

    /// Inserts lines that share their origin tags, each into its name's shard (tests and benchmarks; the
    /// workers group lines by shard themselves, see `pipeline`).
    pub fn insert_group(&self, lines: &[MetricLine<'_>], origin_tags: &[IStr], now: i64) {
        for line in lines {
            self.lock(self.shard_of(line.name))
                .insert(line, origin_tags, now);
        }
    }

    /// Flushes every shard in turn (see [`Aggregator::begin_flush`]), each a slice of contexts at a time,
    /// letting the workers take the shard's lock in between.
    ///
    /// Between steps, while the workers are behind (more than [`PACE_QUEUE_BYTES`] queued), it waits for them
    /// without the lock, up to [`PACE_MAX`] per flush: the flush has the whole interval, received datagrams
    /// only the queue.
    pub fn flush_into(&self, now: i64, force: bool, sink: &mut dyn FlushSink) {
        let deadline = Instant::now() + PACE_MAX;
        let behind = || {
            self.telemetry.dogstatsd.queue_bytes.get() > PACE_QUEUE_BYTES
                && Instant::now() < deadline
        };
        for shard in self.shards.iter() {
            let mut agg = shard.lock();
            let mut f = agg.begin_flush(now, force, sink);
            while !agg.flush_step(&mut f, sink, FLUSH_STEP_CONTEXTS) {
                if behind() {
                    MutexGuard::unlocked(&mut agg, || {
                        while behind() {
                            std::thread::sleep(PACE_NAP);
                        }
                    });
                } else {
                    MutexGuard::bump(&mut agg);
                }
            }
            agg.end_flush(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FlushBatch, MetricKind};

    fn line<'a>(name: &'a str, tags: &'a str) -> MetricLine<'a> {
        MetricLine {
            tags,
            ..MetricLine::new(name, "1", MetricKind::Counter)
        }
    }

    /// A flush while the workers are behind (the queue over [`PACE_QUEUE_BYTES`] the whole time) waits for
    /// them between steps at most [`PACE_MAX`] in all, then finishes with every context flushed once.
    #[test]
    fn a_flush_behind_a_full_queue_still_flushes_everything() {
        let tel = Arc::new(Telemetry::default());
        let shards = Shards::new(AggregatorConfig::default(), tel.clone(), 2);
        let names: Vec<String> = (0..3 * FLUSH_STEP_CONTEXTS)
            .map(|i| format!("m.{i}"))
            .collect();
        let lines: Vec<_> = names.iter().map(|n| line(n, "a:1")).collect();
        shards.insert_group(&lines, &[], 1000);
        tel.dogstatsd.queue_bytes.set(PACE_QUEUE_BYTES + 1);
        let mut batch = FlushBatch::default();
        shards.flush_into(2000, true, &mut batch);
        assert_eq!(batch.series.len(), names.len());
        let mut seen: Vec<&str> = batch.series.iter().map(|s| &*s.name).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), names.len(), "each context once");
    }

    /// Contexts of many names from several threads: each counted exactly once, in one series per context,
    /// with the context gauge equal to the total and the limit applied to the total.
    #[test]
    fn every_context_is_in_one_shard_and_counted_exactly() {
        let tel = Arc::new(Telemetry::default());
        let cfg = AggregatorConfig {
            max_contexts: 150,
            ..AggregatorConfig::default()
        };
        let shards = Arc::new(Shards::new(cfg, tel.clone(), 8));
        let names: Vec<String> = (0..50).map(|i| format!("m.{i}")).collect();
        std::thread::scope(|s| {
            for t in 0..2 {
                let (shards, names) = (shards.clone(), &names);
                s.spawn(move || {
                    for round in 0..100 {
                        // The same contexts from both threads, tags in either order.
                        let tags = if (round + t) % 2 == 0 {
                            "a:1,b:2"
                        } else {
                            "b:2,a:1"
                        };
                        let lines: Vec<_> = names.iter().map(|n| line(n, tags)).collect();
                        shards.insert_group(&lines, &[], 1000);
                        let other: Vec<_> = names.iter().map(|n| line(n, "c:3")).collect();
                        shards.insert_group(&other, &[], 1000);
                    }
                });
            }
        });
        assert_eq!(shards.contexts(), 100);
        // 50 more contexts fit under the limit of 150; the 51st is refused.
        let more: Vec<String> = (0..51).map(|i| format!("new.{i}")).collect();
        let lines: Vec<_> = more.iter().map(|n| line(n, "")).collect();
        shards.insert_group(&lines, &[], 1000);
        assert_eq!(shards.contexts(), 150);
        assert_eq!(
            tel.dogstatsd.dropped.snapshot().get("context_limit"),
            Some(&1)
        );

        let mut batch = FlushBatch::default();
        shards.flush_into(2000, true, &mut batch);
        let mut per_context = std::collections::HashMap::new();
        for s in &batch.series {
            let key = (s.name.to_string(), s.tags.len());
            let sum: f64 = s.points.iter().map(|p| p.1).sum();
            assert!(per_context.insert(key, sum).is_none(), "{} twice", s.name);
        }
        assert_eq!(per_context.len(), 150);
        // 200 increments per (name, tag set) from the two threads, flushed as a rate over 10 s.
        assert_eq!(per_context[&("m.7".to_string(), 2)], 20.0);
        assert_eq!(per_context[&("m.7".to_string(), 1)], 20.0);
    }
}
