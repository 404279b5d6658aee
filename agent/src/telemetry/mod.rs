//! The agent's own counters. Every noteworthy runtime event (a packet, a parse error, a drop, a retry) is
//! counted here in one place, and the same numbers feed `kelpie status`, `GET /status` and the `kelpie.*`
//! metrics sent on each flush ([`self_metrics`]), all derived from one description of each number
//! ([`stats::STATS`], [`drops`]), so they can never drift apart.
//!
//! Drops are counted by a [`DropReason`] (each defined once in [`drops`], with its key, section and meaning).
//! Use [`Telemetry::count_drop`] and log through [`tracing`] at the call site (rate-limited with
//! [`warn_every!`](crate::warn_every) where the event can repeat per packet).

pub mod drops;
pub mod self_metrics;
pub mod stats;

pub use drops::{DropReason, DropSection, Reasons};
pub use self_metrics::{self_rss_bytes, SelfMetrics};

use parking_lot::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Relaxed);
    }
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

/// DogStatsD input counters (`dogstatsd` section of the status).
#[derive(Debug, Default)]
pub struct DogstatsdTelemetry {
    pub packets_udp: Counter,
    pub packets_uds_dgram: Counter,
    pub packets_uds_stream: Counter,
    pub bytes: Counter,
    pub metric_samples: Counter,
    pub events: Counter,
    pub service_checks: Counter,
    pub parse_errors: Counter,
    /// Histogram samples whose context's percentiles had to come from a sketch (the histogram memory budget,
    /// derived from `memory_limit`, was spent); 0 means every percentile was exact.
    pub histogram_samples_approximated: Counter,
    /// Live contexts in the aggregator.
    pub contexts: Gauge,
    /// Most contexts held; new ones past it are refused (`dropped.context_limit`).
    pub context_limit: Gauge,
    /// 1 while the limit is lowered to the contexts held because the agent's RSS is near `memory_limit`.
    pub context_limit_lowered: Gauge,
    pub dropped: Reasons,
    pub udp_rcvbuf_requested: Gauge,
    pub udp_rcvbuf_granted: Gauge,
    /// Bytes held by batches waiting between the socket readers and the workers.
    pub queue_bytes: Gauge,
    /// The queue's bound (`dogstatsd_queue_bytes`).
    pub queue_max_bytes: Gauge,
    /// Processing workers (`dogstatsd_pipeline_count`).
    pub pipelines: Gauge,
}

/// Forwarder counters (`forwarder` section of the status).
#[derive(Debug, Default)]
pub struct ForwarderTelemetry {
    pub success: Counter,
    pub retried: Counter,
    pub dropped: Reasons,
    pub bytes_sent: Counter,
    pub queued_bytes: Gauge,
    pub queued_on_disk_bytes: Gauge,
    /// Payloads waiting (memory + disk).
    pub queued_transactions: Gauge,
    /// Last error seen talking to the intake, for the status page.
    pub last_error: Mutex<Option<String>>,
    /// Unix seconds of the first failure of the outage in progress; 0 while delivering.
    pub not_delivering_since: Gauge,
}

/// Flush loop counters.
#[derive(Debug, Default)]
pub struct FlushTelemetry {
    pub flushes: Counter,
    /// Unix seconds of the last completed flush (0 before the first).
    pub last_flush_unix: Gauge,
    /// Duration of the last flush in microseconds.
    pub last_duration_us: Gauge,
    pub series_flushed: Counter,
    pub sketches_flushed: Counter,
}

/// Encoding counters (`encode` section of the status): what a flush could not turn into payloads.
#[derive(Debug, Default)]
pub struct EncodeTelemetry {
    pub dropped: Reasons,
}

/// All of the agent's counters. Shared as `Arc<Telemetry>`.
#[derive(Debug, Default)]
pub struct Telemetry {
    pub dogstatsd: DogstatsdTelemetry,
    pub forwarder: ForwarderTelemetry,
    pub flush: FlushTelemetry,
    pub encode: EncodeTelemetry,
}

/// True at most once every `secs` seconds per `last` slot (unix seconds of the last time it said yes): the
/// rate limit of warnings that can repeat per packet or per request. Use [`warn_every!`](crate::warn_every).
pub fn allow_every(last: &AtomicU64, secs: u64) -> bool {
    let now = crate::clock::since_epoch().as_secs();
    let prev = last.load(Relaxed);
    now >= prev.saturating_add(secs) && last.compare_exchange(prev, now, Relaxed, Relaxed).is_ok()
}

/// `tracing::warn!` at most once every `secs` seconds from this call site.
#[macro_export]
macro_rules! warn_every {
    ($secs:expr, $($arg:tt)+) => {{
        static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if $crate::telemetry::allow_every(&LAST, $secs) {
            tracing::warn!($($arg)+);
        }
    }};
}

impl Telemetry {
    /// Counts `n` things dropped for `reason`, in the reason's section (`dogstatsd.dropped.<key>`,
    /// `encode.dropped.<key>` or `forwarder.transactions.dropped.<key>`).
    pub fn count_drop(&self, reason: DropReason, n: u64) {
        self.dropped(reason.section()).add(reason, n);
    }

    /// The drop counts of `section`.
    pub fn dropped(&self, section: DropSection) -> &Reasons {
        match section {
            DropSection::Dogstatsd => &self.dogstatsd.dropped,
            DropSection::Encode => &self.encode.dropped,
            DropSection::Forwarder => &self.forwarder.dropped,
        }
    }
}
