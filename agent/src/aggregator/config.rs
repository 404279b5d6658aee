//! The aggregator's settings ([`AggregatorConfig`], the Datadog Agent's keys) and the metric blocklist.

use super::histogram::HistogramMemory;
use crate::mapper::MapperProfiles;

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
