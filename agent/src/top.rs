//! `kelpie status --top` (`GET /api/top`): the metric names with the most contexts in the last flush, and for
//! each the tag keys with the most distinct values, to find a high-cardinality sender fast (like the Datadog
//! Agent's `agent dogstatsd top`).
//!
//! Built by the flusher from the series it flushes (one pass, no extra lock on the ingest path). Its memory is
//! bounded: distinct values are counted up to [`VALUES_CAP`] per (metric, tag key) as 8-byte hashes, and the
//! builder is dropped after each flush, keeping only the [`KEEP`] top names.

use crate::model::{IStr, SeriesRef, SketchRef, TagSet};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;

/// The maps' hasher: foldhash rather than the standard SipHash, which was most of this module's cost (~1% of
/// the agent's CPU at 100k contexts: it runs over every flushed series), seeded at random per process like
/// the standard one, so that senders cannot aim at collisions.
type Fast = foldhash::fast::RandomState;

/// Distinct values counted per metric and tag key (`10000+` past it).
pub const VALUES_CAP: usize = 10_000;
/// Names kept after a flush.
pub const KEEP: usize = 50;

#[derive(Default)]
struct NameStats {
    contexts: u64,
    tag_values: HashMap<Box<str>, HashSet<u64, Fast>, Fast>,
}

/// Collects one flush.
#[derive(Default)]
pub struct TopBuilder {
    names: HashMap<IStr, NameStats, Fast>,
    contexts: u64,
    /// Hashes the tag values counted (8 bytes each).
    values_hasher: Fast,
}

/// One metric name of the top list.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TopMetric {
    pub metric: String,
    pub contexts: u64,
    /// Tag keys by distinct values, most first: `(key, values, capped at VALUES_CAP)`.
    pub tags: Vec<(String, u64, bool)>,
}

/// The top list of the last flush.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct TopView {
    /// Unix seconds of the flush.
    pub flushed_at: i64,
    /// Contexts flushed in all (series and distributions).
    pub contexts: u64,
    pub names: u64,
    pub metrics: Vec<TopMetric>,
}

impl TopBuilder {
    fn observe(&mut self, name: &IStr, tags: &TagSet) {
        self.contexts += 1;
        // Looked up before an entry is made: most series' names are there already, and `entry` would take
        // (and drop) a reference to the name each time.
        let stats = match self.names.get_mut(name) {
            Some(s) => s,
            None => self.names.entry(name.clone()).or_default(),
        };
        stats.contexts += 1;
        let hasher = &self.values_hasher;
        for t in tags {
            let (key, value) = t.split_once(':').unwrap_or((t, ""));
            let set = match stats.tag_values.get_mut(key) {
                Some(s) => s,
                None => stats.tag_values.entry(key.into()).or_default(),
            };
            if set.len() < VALUES_CAP {
                set.insert(hasher.hash_one(value));
            }
        }
    }

    pub fn series(&mut self, s: &SeriesRef<'_>) {
        self.observe(s.name, s.tags);
    }

    pub fn sketch(&mut self, s: &SketchRef<'_>) {
        self.observe(s.name, s.tags);
    }

    /// The `KEEP` names with the most contexts.
    pub fn finish(self, now: i64) -> TopView {
        let names = self.names.len() as u64;
        let mut metrics: Vec<TopMetric> = self
            .names
            .into_iter()
            .map(|(name, s)| {
                let mut tags: Vec<(String, u64, bool)> = s
                    .tag_values
                    .into_iter()
                    .map(|(k, v)| (k.into(), v.len() as u64, v.len() >= VALUES_CAP))
                    .collect();
                tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                TopMetric {
                    metric: name.to_string(),
                    contexts: s.contexts,
                    tags,
                }
            })
            .collect();
        metrics.sort_by(|a, b| b.contexts.cmp(&a.contexts).then(a.metric.cmp(&b.metric)));
        metrics.truncate(KEEP);
        TopView {
            flushed_at: now,
            contexts: self.contexts,
            names,
            metrics,
        }
    }
}

/// The top list as text, `limit` names.
pub fn render(view: &TopView, limit: usize) -> String {
    let mut out = format!(
        "{} contexts in {} metric names at the last flush; the {} with the most contexts:\n\n",
        view.contexts,
        view.names,
        limit.min(view.metrics.len())
    );
    let width = view
        .metrics
        .iter()
        .take(limit)
        .map(|m| m.metric.len())
        .max()
        .unwrap_or(6)
        .max(6);
    out.push_str(&format!(
        "{:>9}  {:<width$}  tag keys by distinct values\n",
        "contexts", "metric"
    ));
    for m in view.metrics.iter().take(limit) {
        let tags: Vec<String> = m
            .tags
            .iter()
            .take(5)
            .map(|(k, n, capped)| format!("{k} ({n}{})", if *capped { "+" } else { "" }))
            .collect();
        out.push_str(&format!(
            "{:>9}  {:<width$}  {}\n",
            m.contexts,
            m.metric,
            if tags.is_empty() {
                "-".to_string()
            } else {
                tags.join(", ")
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Series, SeriesKind};

    fn series(name: &str, tags: &[String]) -> Series {
        Series {
            name: name.into(),
            tags: tags
                .iter()
                .map(|t| IStr::from(t.as_str()))
                .collect::<Vec<_>>()
                .into(),
            host: "".into(),
            kind: SeriesKind::Gauge,
            interval: 0,
            points: vec![(0, 1.0)],
        }
    }

    #[test]
    fn finds_the_metric_and_tag_with_the_most_contexts() {
        let mut b = TopBuilder::default();
        for i in 0..300 {
            let s = series(
                "app.requests",
                &[format!("request_id:{i}"), format!("service:s{}", i % 3)],
            );
            b.series(&s.as_ref());
        }
        for i in 0..2 {
            b.series(&series("app.ok", &[format!("service:s{i}")]).as_ref());
        }
        let view = b.finish(100);
        assert_eq!((view.contexts, view.names), (302, 2));
        assert_eq!(view.metrics[0].metric, "app.requests");
        assert_eq!(view.metrics[0].contexts, 300);
        assert_eq!(
            view.metrics[0].tags,
            vec![
                ("request_id".to_string(), 300, false),
                ("service".to_string(), 3, false)
            ]
        );
        let text = render(&view, 10);
        assert!(
            text.contains("      300  app.requests  request_id (300), service (3)"),
            "{text}"
        );
    }
}
