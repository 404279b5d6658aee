//! Local-mode history: the recent points of every flushed series, kept for up to an hour within a fixed memory
//! budget, so that an agent without an API key still shows what it collects (`GET /api/series`, the status page).
//!
//! When the budget is exceeded the least recently updated contexts are dropped first (counted as
//! `history_evicted` in the status), so memory stays bounded whatever the traffic.

use crate::model::SketchPoint;
use crate::model::{FlushBatch, IStr, SeriesRef, SketchRef, TagSet};
use std::collections::{HashMap, HashSet, VecDeque};

/// How long points are kept.
pub const RETENTION_SECS: i64 = 3600;

/// Fixed cost of one context besides its strings and points (map entry, deque, key).
const ENTRY_OVERHEAD: usize = 160;
const POINT_SIZE: usize = std::mem::size_of::<(i64, f64)>();

#[derive(Hash, PartialEq, Eq, Clone, Debug)]
struct Key {
    name: IStr,
    tags: TagSet,
    host: IStr,
    /// For a distribution, which of its statistics ([`DISTRIBUTION_STATS`]); empty for other series.
    stat: &'static str,
}

/// What is kept of each distribution point: the percentiles people read first, and the aggregates.
pub const DISTRIBUTION_STATS: [&str; 6] = ["p50", "p95", "p99", "avg", "max", "count"];

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
    /// For a distribution, the statistic (`p50`, `p95`, `p99`, `avg`, `max`, `count`).
    #[serde(skip_serializing_if = "str::is_empty")]
    pub stat: &'static str,
    /// `[unix seconds, value]`, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// One metric name as listed by `GET /api/metrics`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MetricSummary {
    pub metric: String,
    pub contexts: usize,
    /// `gauge`, `rate`, `count` or `distribution`.
    pub kind: &'static str,
    /// Each tag key with its number of distinct values.
    pub tag_keys: Vec<(String, usize)>,
}

/// The value at quantile `q` of a flushed sketch point, ranked as [`crate::sketch::Sketch::quantile`] does.
pub fn point_quantile(p: &SketchPoint, q: f64) -> f64 {
    if p.cnt <= 0 {
        return 0.0;
    }
    let want = (q * (p.cnt - 1) as f64).round_ties_even();
    let mut n = 0.0;
    for (k, c) in p.k.iter().zip(&p.n) {
        n += *c as f64;
        if n > want {
            let k = (*k).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
            return crate::sketch::key_lower_bound(k).clamp(p.min, p.max);
        }
    }
    p.max
}

/// One line of a chart: the contexts of one group, aggregated per timestamp.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChartLine {
    /// `service:api`, `service:(none)`, a statistic (`p95`) or `*` (everything).
    pub group: String,
    pub contexts: usize,
    pub points: Vec<(i64, f64)>,
}

/// A metric's chart as served by `GET /api/chart`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Chart {
    pub metric: String,
    pub kind: &'static str,
    /// The statistic drawn for a distribution (empty otherwise; `p50,p95,p99` when those are the lines).
    pub stat: String,
    /// `sum` (counts and rates) or `avg` (gauges, distribution statistics) across the contexts of a group.
    pub aggregation: &'static str,
    pub by: String,
    /// Lines kept (the groups with the highest latest values first).
    pub series: Vec<ChartLine>,
    /// Groups before keeping the first `max_groups`.
    pub groups_total: usize,
    pub contexts: usize,
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
        for stat in DISTRIBUTION_STATS {
            let key = Key {
                name: sk.name.clone(),
                tags: sk.tags.clone(),
                host: sk.host.clone(),
                stat,
            };
            for p in sk.points {
                let v = match stat {
                    "p50" => point_quantile(p, 0.5),
                    "p95" => point_quantile(p, 0.95),
                    "p99" => point_quantile(p, 0.99),
                    "max" => p.max,
                    "count" => p.cnt as f64,
                    _ => p.avg,
                };
                self.push(&key, "distribution", p.ts, v);
            }
        }
    }

    pub fn record_series(&mut self, s: SeriesRef<'_>) {
        let key = Key {
            name: s.name.clone(),
            tags: s.tags.clone(),
            host: s.host.clone(),
            stat: "",
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

    /// The memory budget (0: the history is off).
    pub fn budget(&self) -> usize {
        self.budget
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
            .filter(|(k, _)| tags.iter().all(|t| k.tags.iter().any(|kt| kt == *t)))
            .map(|(k, e)| SeriesView {
                metric: k.name.to_string(),
                tags: k.tags.iter().map(|t| t.to_string()).collect(),
                host: k.host.to_string(),
                kind: e.kind,
                stat: k.stat,
                points: e.points.iter().copied().collect(),
            })
            .collect();
        out.sort_by(|a, b| {
            a.tags
                .cmp(&b.tags)
                .then(a.host.cmp(&b.host))
                .then(a.stat.cmp(b.stat))
        });
        out
    }

    /// The chart of `metric`: its contexts having all of `tags`, one line per value of tag key `by` (one
    /// line for all when `by` is empty), aggregated across contexts (`sum` for counts and rates, `avg`
    /// otherwise), the `max_groups` lines with the highest latest values. A distribution is drawn as its
    /// `stat` (one of [`DISTRIBUTION_STATS`]); without `stat` and `by`, as three lines p50, p95 and p99.
    pub fn chart(
        &self,
        metric: &str,
        tags: &[&str],
        by: &str,
        stat: &str,
        max_groups: usize,
    ) -> Chart {
        let matching: Vec<(&Key, &Entry)> = self
            .entries
            .iter()
            .filter(|(k, _)| &*k.name == metric)
            .filter(|(k, _)| tags.iter().all(|t| k.tags.iter().any(|kt| kt == *t)))
            .collect();
        let plain = matching.iter().any(|(k, _)| k.stat.is_empty());
        let kind = matching
            .iter()
            .find(|(k, _)| k.stat.is_empty() == plain)
            .map_or("gauge", |(_, e)| e.kind);
        // Which statistics become lines, and whether each is its own line.
        let (stats, stat_lines): (Vec<&str>, bool) = if plain {
            (vec![""], false)
        } else if let Some(s) = DISTRIBUTION_STATS.iter().find(|s| **s == stat) {
            (vec![*s], false)
        } else if by.is_empty() {
            (vec!["p50", "p95", "p99"], true)
        } else {
            (vec!["p95"], false)
        };
        let summed = matches!(kind, "rate" | "count") || stats == ["count"];
        let prefix = format!("{by}:");
        // Per group: its contexts, and per timestamp the sum and number of values.
        type Group = (usize, std::collections::BTreeMap<i64, (f64, u32)>);
        let mut groups: HashMap<String, Group> = HashMap::new();
        let mut contexts = 0;
        for (k, e) in &matching {
            if !stats.contains(&k.stat) {
                continue;
            }
            if k.stat == stats[0] {
                contexts += 1;
            }
            let group = if stat_lines {
                k.stat.to_string()
            } else if by.is_empty() {
                "*".to_string()
            } else {
                k.tags
                    .iter()
                    .find(|t| t.starts_with(&prefix))
                    .map_or_else(|| format!("{by}:(none)"), |t| t.to_string())
            };
            let g = groups.entry(group).or_default();
            g.0 += 1;
            for &(ts, v) in &e.points {
                let slot = g.1.entry(ts).or_insert((0.0, 0));
                slot.0 += v;
                slot.1 += 1;
            }
        }
        let groups_total = groups.len();
        let mut series: Vec<ChartLine> = groups
            .into_iter()
            .map(|(group, (n, points))| ChartLine {
                group,
                contexts: n,
                points: points
                    .into_iter()
                    .map(|(ts, (sum, count))| (ts, if summed { sum } else { sum / count as f64 }))
                    .collect(),
            })
            .collect();
        let last = |l: &ChartLine| l.points.last().map_or(f64::NEG_INFINITY, |p| p.1);
        series.sort_by(|a, b| {
            if stat_lines {
                a.group.cmp(&b.group)
            } else {
                last(b).total_cmp(&last(a)).then(a.group.cmp(&b.group))
            }
        });
        series.truncate(max_groups);
        Chart {
            metric: metric.to_string(),
            kind,
            stat: stats.join(","),
            aggregation: if summed { "sum" } else { "avg" },
            by: by.to_string(),
            series,
            groups_total,
            contexts,
        }
    }

    /// Distinct metric names with their number of contexts, sorted by name.
    pub fn metric_names(&self) -> Vec<(String, usize)> {
        self.metric_summaries()
            .into_iter()
            .map(|m| (m.metric, m.contexts))
            .collect()
    }

    /// Every metric name with its number of contexts, its kind and its number of distinct values per tag key,
    /// sorted by name.
    pub fn metric_summaries(&self) -> Vec<MetricSummary> {
        // Per name: contexts, kind, and the distinct values of each tag key.
        type Name<'a> = (usize, &'static str, HashMap<&'a str, HashSet<&'a str>>);
        let mut by_name: HashMap<&str, Name<'_>> = HashMap::new();
        for (k, e) in &self.entries {
            // A distribution's contexts are counted once (by its first statistic).
            if !(k.stat.is_empty() || k.stat == DISTRIBUTION_STATS[0]) {
                continue;
            }
            let m = by_name
                .entry(&k.name)
                .or_insert_with(|| (0, e.kind, HashMap::new()));
            m.0 += 1;
            for t in k.tags.iter() {
                let (key, value) = t.split_once(':').unwrap_or((t, ""));
                m.2.entry(key).or_default().insert(value);
            }
        }
        let mut out: Vec<MetricSummary> = by_name
            .into_iter()
            .map(|(name, (contexts, kind, keys))| {
                let mut tag_keys: Vec<(String, usize)> = keys
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.len()))
                    .collect();
                tag_keys.sort();
                MetricSummary {
                    metric: name.to_string(),
                    contexts,
                    kind,
                    tag_keys,
                }
            })
            .collect();
        out.sort_by(|a, b| a.metric.cmp(&b.metric));
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
    fn charts_group_by_a_tag_and_draw_distributions_as_percentiles() {
        let mut h = History::new(1 << 20);
        let rate = |tag: &str, ts: i64, v: f64| {
            let mut s = series("req", tag, ts, v);
            s.kind = SeriesKind::Rate;
            s
        };
        h.record(
            &batch(vec![
                rate("service:api", 100, 2.0),
                rate("service:web", 100, 5.0),
            ]),
            100,
        );
        // A second context with service:api.
        let mut other = rate("service:api", 110, 4.0);
        other.tags = vec![IStr::from("service:api"), IStr::from("x:1")].into();
        h.record(&batch(vec![rate("service:api", 110, 3.0), other]), 110);
        let c = h.chart("req", &[], "service", "", 10);
        assert_eq!(
            (c.kind, c.aggregation, c.groups_total, c.contexts),
            ("rate", "sum", 2, 3)
        );
        // Highest latest value first.
        assert_eq!(c.series[0].group, "service:api");
        assert_eq!(c.series[0].points, vec![(100, 2.0), (110, 7.0)]);
        assert_eq!(c.series[1].group, "service:web");
        let all = h.chart("req", &["x:1"], "", "", 10);
        assert_eq!(all.series.len(), 1);
        assert_eq!(all.series[0].points, vec![(110, 4.0)]);
        assert_eq!(h.chart("req", &[], "service", "", 1).series.len(), 1);

        let mut sketch = crate::sketch::Sketch::new();
        for v in 1..=100 {
            sketch.insert(v as f64);
        }
        let sk = crate::model::SketchSeries {
            name: "lat".into(),
            tags: vec![IStr::from("service:api")].into(),
            host: "".into(),
            interval: 10,
            points: vec![sketch.to_point(120)],
        };
        h.record(
            &FlushBatch {
                series: vec![],
                sketches: vec![sk],
            },
            120,
        );
        // The agent's ranks: round_half_even(q × (n − 1)) of 1..=100 are the values 51, 95 and 99.
        let d = h.chart("lat", &[], "", "", 10);
        assert_eq!((d.kind, d.stat.as_str()), ("distribution", "p50,p95,p99"));
        let lines: Vec<(&str, f64)> = d
            .series
            .iter()
            .map(|l| (l.group.as_str(), l.points[0].1))
            .collect();
        assert_eq!(lines.len(), 3);
        for ((name, got), want) in lines.iter().zip([51.0, 95.0, 99.0]) {
            assert!((got - want).abs() / want < 0.02, "{name}: {got}");
        }
        let by = h.chart("lat", &[], "service", "count", 10);
        assert_eq!(by.series[0].points, vec![(120, 100.0)]);
        assert_eq!(
            h.metric_names(),
            vec![("lat".to_string(), 1), ("req".to_string(), 3)]
        );
        let summary = h.metric_summaries();
        assert_eq!(
            summary[1].tag_keys,
            vec![("service".to_string(), 2), ("x".to_string(), 1)]
        );
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
