//! Local-mode history: the recent points of every flushed series, kept for up to an hour within a fixed memory
//! budget, so that an agent without an API key still shows what it collects (`GET /api/series`, the status page).
//!
//! When the budget is exceeded the least recently updated contexts are dropped first (counted as
//! `history_evicted` in the status), so memory stays bounded whatever the traffic.

use crate::model::{FlushBatch, IStr, SeriesRef, SketchRef};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// How long points are kept.
pub const RETENTION_SECS: i64 = 3600;

/// Fixed cost of one context besides its strings and points (map entry, deque, key).
const ENTRY_OVERHEAD: usize = 160;
const POINT_SIZE: usize = std::mem::size_of::<(i64, f64)>();

#[derive(Hash, PartialEq, Eq, Clone, Debug)]
struct Key {
    name: IStr,
    tags: Arc<[IStr]>,
    host: IStr,
}

#[derive(Debug)]
struct Entry {
    kind: &'static str,
    points: VecDeque<(i64, f64)>,
    last_update: u64,
    bytes: usize,
}

/// One context's points, as served by `GET /api/series`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SeriesView {
    pub metric: String,
    pub tags: Vec<String>,
    pub host: String,
    pub kind: &'static str,
    /// `[unix seconds, value]`, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// Bounded recent history of flushed series.
#[derive(Debug)]
pub struct History {
    budget: usize,
    bytes: usize,
    generation: u64,
    evicted: u64,
    entries: HashMap<Key, Entry>,
}

impl History {
    pub fn new(budget_bytes: u64) -> Self {
        History {
            budget: budget_bytes as usize,
            bytes: 0,
            generation: 0,
            evicted: 0,
            entries: HashMap::new(),
        }
    }

    /// Records one flush.
    pub fn record(&mut self, batch: &FlushBatch, now: i64) {
        self.begin();
        for s in &batch.series {
            self.record_series(s.as_ref());
        }
        for sk in &batch.sketches {
            self.record_sketch(sk.as_ref());
        }
        self.end(now);
    }

    /// Starts recording a flush: then [`History::record_series`] / [`History::record_sketch`] for each of its
    /// series, and [`History::end`].
    pub fn begin(&mut self) {
        self.generation += 1;
    }

    /// Ends a flush: drops points older than the retention and enforces the budget.
    pub fn end(&mut self, now: i64) {
        self.expire(now);
        self.enforce_budget();
    }

    pub fn record_sketch(&mut self, sk: SketchRef<'_>) {
        let key = Key {
            name: sk.name.clone(),
            tags: sk.tags.clone(),
            host: sk.host.clone(),
        };
        for p in sk.points {
            self.push(&key, "distribution", p.ts, p.avg);
        }
    }

    pub fn record_series(&mut self, s: SeriesRef<'_>) {
        let key = Key {
            name: s.name.clone(),
            tags: s.tags.clone(),
            host: s.host.clone(),
        };
        let kind = match s.kind {
            crate::model::SeriesKind::Count => "count",
            crate::model::SeriesKind::Rate => "rate",
            crate::model::SeriesKind::Gauge => "gauge",
        };
        for &(ts, v) in s.points {
            self.push(&key, kind, ts, v);
        }
    }

    fn push(&mut self, key: &Key, kind: &'static str, ts: i64, v: f64) {
        let generation = self.generation;
        let entry = match self.entries.get_mut(key) {
            Some(e) => e,
            None => {
                let bytes = ENTRY_OVERHEAD
                    + key.name.len()
                    + key.tags.iter().map(|t| t.len() + 16).sum::<usize>()
                    + key.host.len();
                self.bytes += bytes;
                self.entries.entry(key.clone()).or_insert(Entry {
                    kind,
                    points: VecDeque::new(),
                    last_update: generation,
                    bytes,
                })
            }
        };
        entry.points.push_back((ts, v));
        entry.bytes += POINT_SIZE;
        entry.last_update = generation;
        self.bytes += POINT_SIZE;
    }

    fn expire(&mut self, now: i64) {
        let cutoff = now - RETENTION_SECS;
        let mut freed = 0;
        self.entries.retain(|_, e| {
            while e.points.front().is_some_and(|(ts, _)| *ts < cutoff) {
                e.points.pop_front();
                e.bytes -= POINT_SIZE;
                freed += POINT_SIZE;
            }
            if e.points.is_empty() {
                freed += e.bytes;
                false
            } else {
                true
            }
        });
        self.bytes -= freed;
    }

    fn enforce_budget(&mut self) {
        if self.bytes <= self.budget {
            return;
        }
        // Drop the least recently updated contexts until 90% of the budget is used.
        let target = self.budget / 10 * 9;
        let mut order: Vec<(u64, Key)> = self
            .entries
            .iter()
            .map(|(k, e)| (e.last_update, k.clone()))
            .collect();
        order.sort_by_key(|(g, _)| *g);
        for (_, key) in order {
            if self.bytes <= target {
                break;
            }
            if let Some(e) = self.entries.remove(&key) {
                self.bytes -= e.bytes;
                self.evicted += 1;
            }
        }
    }

    /// Estimated bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contexts(&self) -> usize {
        self.entries.len()
    }

    /// Contexts dropped to stay under the budget since start.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Every context of `metric` whose tags include all of `tags`.
    pub fn query(&self, metric: &str, tags: &[&str]) -> Vec<SeriesView> {
        let mut out: Vec<SeriesView> = self
            .entries
            .iter()
            .filter(|(k, _)| &*k.name == metric)
            .filter(|(k, _)| tags.iter().all(|t| k.tags.iter().any(|kt| &**kt == *t)))
            .map(|(k, e)| SeriesView {
                metric: k.name.to_string(),
                tags: k.tags.iter().map(|t| t.to_string()).collect(),
                host: k.host.to_string(),
                kind: e.kind,
                points: e.points.iter().copied().collect(),
            })
            .collect();
        out.sort_by(|a, b| a.tags.cmp(&b.tags).then(a.host.cmp(&b.host)));
        out
    }

    /// Distinct metric names with their number of contexts, sorted by name.
    pub fn metric_names(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for k in self.entries.keys() {
            *counts.entry(&k.name).or_insert(0) += 1;
        }
        let mut out: Vec<(String, usize)> = counts
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Series, SeriesKind};

    fn series(name: &str, tag: &str, ts: i64, v: f64) -> Series {
        Series {
            name: name.into(),
            tags: vec![IStr::from(tag)].into(),
            host: "".into(),
            kind: SeriesKind::Gauge,
            interval: 0,
            points: vec![(ts, v)],
        }
    }

    fn batch(s: Vec<Series>) -> FlushBatch {
        FlushBatch {
            series: s,
            sketches: vec![],
        }
    }

    #[test]
    fn keeps_points_and_filters_by_tag() {
        let mut h = History::new(1 << 20);
        h.record(
            &batch(vec![
                series("a", "x:1", 100, 1.0),
                series("a", "x:2", 100, 2.0),
            ]),
            100,
        );
        h.record(&batch(vec![series("a", "x:1", 110, 3.0)]), 110);
        let all = h.query("a", &[]);
        assert_eq!(all.len(), 2);
        let one = h.query("a", &["x:1"]);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].points, vec![(100, 1.0), (110, 3.0)]);
        assert_eq!(h.metric_names(), vec![("a".to_string(), 2)]);
    }

    #[test]
    fn expires_after_an_hour() {
        let mut h = History::new(1 << 20);
        h.record(&batch(vec![series("a", "x:1", 0, 1.0)]), 0);
        h.record(&batch(vec![series("b", "x:1", 3601, 1.0)]), 3601);
        assert!(h.query("a", &[]).is_empty());
        assert_eq!(h.query("b", &[]).len(), 1);
    }

    #[test]
    fn stays_within_budget_dropping_least_recently_updated() {
        let budget = 64 * 1024;
        let mut h = History::new(budget);
        h.record(&batch(vec![series("old", "x:1", 0, 1.0)]), 0);
        for round in 1..50 {
            let s: Vec<Series> = (0..200)
                .map(|i| series("new", &format!("i:{i}"), round * 10, 1.0))
                .collect();
            h.record(&batch(s), round * 10);
            assert!(h.bytes() <= budget as usize, "round {round}: {}", h.bytes());
        }
        assert!(h.query("old", &[]).is_empty());
        assert!(h.evicted() > 0);
    }
}
