//! The agent's own counters. Every noteworthy runtime event (a packet, a parse error, a drop, a retry) is
//! counted here in one place, and the same numbers feed `kelpie status`, `GET /status` and the `kelpie.*`
//! metrics sent on each flush ([`self_metrics`]), all derived from one description of each number
//! ([`stats::STATS`], [`drops`]), so they can never drift apart.
//!
//! Each counter and gauge is declared once, in [`stats`]: one list makes both its field of [`Telemetry`]
//! (`telemetry.dogstatsd.packets_udp`) and its row of [`stats::STATS`] (its status JSON path, `kelpie status`
//! line and `kelpie.*` metric). A field that is no stat (the drop counts, the last error) is marked `internal`
//! there with the reason, so no field goes missing from the status by accident.
//!
//! Drops are counted by a [`DropReason`] (each defined once in [`drops`], with its key, section and meaning).
//! Use [`Telemetry::count_drop`] and log through [`tracing`] at the call site (rate-limited with
//! [`warn_every!`](crate::warn_every) where the event can repeat per packet).

pub mod drops;
pub mod self_metrics;
pub mod stats;

pub use drops::{DropReason, DropSection, Reasons};
pub use self_metrics::{self_rss_bytes, SelfMetrics};
pub use stats::{
    DogstatsdTelemetry, EncodeTelemetry, FlushTelemetry, ForwarderTelemetry, Telemetry,
};

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
