//! How `memory_limit` is shared out and kept: the aggregator's settings, whose context cap and exact-histogram
//! budget are what is left of `memory_limit` after the agent's base, the local history and the packet queue;
//! and the guard the flush runs first, which near 90% of `memory_limit` RSS lowers the cap to the contexts held
//! (new ones are refused and counted as `context_limit`) and says so in the log.

use crate::aggregator::{AggregatorConfig, HistogramMemory, MetricBlocklist, Shards};
use crate::config::Config;
use crate::mapper::MapperProfiles;
use crate::telemetry::{self_rss_bytes, DogstatsdTelemetry, DropReason};
use std::time::{Duration, Instant};
use tracing::warn;

/// Bytes of memory budgeted per aggregation context when deriving the context cap from `memory_limit`.
const BYTES_PER_CONTEXT: u64 = 640;
/// Memory kept aside for the agent itself (buffers, runtime, queues) when deriving the context cap.
const BASE_MEMORY: u64 = 48 << 20;

/// Builds the aggregator configuration from the agent's.
pub fn aggregator_config(cfg: &Config) -> anyhow::Result<(AggregatorConfig, usize)> {
    let mapper = match &cfg.dogstatsd_mapper_profiles {
        Some(v) => {
            let profiles: Vec<crate::mapper::ProfileConfig> = serde_yaml::from_value(v.clone())
                .map_err(|e| {
                    anyhow::anyhow!("invalid value for `dogstatsd_mapper_profiles`: {e}")
                })?;
            Some(MapperProfiles::new(&profiles, 1000).map_err(|e| {
                anyhow::anyhow!("invalid value for `dogstatsd_mapper_profiles`: {e}")
            })?)
        }
        None => None,
    };
    let budget = cfg
        .memory_limit
        .saturating_sub(BASE_MEMORY + cfg.history_memory + cfg.dogstatsd_queue_bytes);
    let max_contexts = (budget / BYTES_PER_CONTEXT).max(1000) as usize;
    Ok((
        AggregatorConfig {
            interval_secs: cfg.flush_interval.as_secs() as i64,
            histogram_aggregates: cfg.histogram_aggregates.clone(),
            histogram_percentiles: cfg.histogram_percentiles.clone(),
            expiry_secs: cfg.dogstatsd_expiry_seconds,
            extra_tags: cfg.dogstatsd_tags.clone(),
            mapper,
            max_contexts,
            blocklist: MetricBlocklist::new(
                cfg.statsd_metric_blocklist.clone(),
                cfg.statsd_metric_blocklist_match_prefix,
            ),
            // Exact histogram samples get a quarter of the aggregation budget (44-52 MiB, about 3M distinct
            // values of 16 bytes, at the default memory_limit); past it percentiles come from a sketch, counted.
            histogram_memory: HistogramMemory::new((budget / 4) as usize),
        },
        max_contexts,
    ))
}

/// Lowers the context cap while the agent's memory is near `memory_limit`, and raises it back after.
pub struct MemoryGuard {
    /// The cap derived from `memory_limit`.
    max_contexts: usize,
    memory_limit: u64,
    refusals: RefusalLog,
}

impl MemoryGuard {
    pub fn new(max_contexts: usize, memory_limit: u64) -> MemoryGuard {
        MemoryGuard {
            max_contexts,
            memory_limit,
            refusals: RefusalLog::default(),
        }
    }

    /// Sets the shards' cap from the agent's RSS now, publishes it, and reports refusals since the last call.
    pub fn check(&mut self, agg: &Shards, d: &DogstatsdTelemetry) {
        let rss = self_rss_bytes();
        let near_limit = rss > self.memory_limit / 10 * 9;
        let cap = if near_limit {
            agg.contexts()
        } else {
            self.max_contexts
        };
        agg.set_max_contexts(cap);
        let live = agg.contexts();
        d.context_limit.set(cap as i64);
        d.context_limit_lowered.set(near_limit as i64);
        self.refusals
            .report(d, cap, live, near_limit.then_some(rss), self.memory_limit);
    }
}

/// Says when new contexts are refused (`context_limit`): at once, then at most once a minute while it lasts.
#[derive(Default)]
struct RefusalLog {
    /// `context_limit` drops already reported.
    reported: u64,
    last_log: Option<Instant>,
}

impl RefusalLog {
    fn report(
        &mut self,
        d: &DogstatsdTelemetry,
        cap: usize,
        live: usize,
        rss_near_limit: Option<u64>,
        memory_limit: u64,
    ) {
        let refused = d.dropped.get(DropReason::ContextLimit);
        if refused <= self.reported
            || self
                .last_log
                .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        let why = match rss_near_limit {
            Some(rss) => format!(
                "lowered to the contexts held because the agent's memory ({rss} bytes) is above 90% of \
                 memory_limit ({memory_limit} bytes)"
            ),
            None => format!(
                "derived from memory_limit ({memory_limit} bytes, {BYTES_PER_CONTEXT} bytes per context)"
            ),
        };
        warn!(
            "refused {} new DogStatsD contexts: {live} contexts are held and the limit is {cap}, {why}; \
             samples of the contexts held are still aggregated and sent, idle ones expire",
            refused - self.reported
        );
        self.reported = refused;
        self.last_log = Some(Instant::now());
    }
}
