//! Saying what is wrong while the intake fails: the first failure of an outage is logged at once (with the
//! URL and the reason), then a summary at most once a minute while it lasts, then the recovery; the status
//! shows since when the intake is not delivering and what is held.

use super::{Inner, State};
use std::time::Duration;
use tokio::time::Instant;

/// While the intake fails, a summary is logged at most this often.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(60);

/// An intake outage in progress: from the first failed attempt to the next success.
pub(super) struct Outage {
    since_unix: i64,
    since: Instant,
    /// Failed attempts since the last log line about this outage.
    failures_unlogged: u64,
    last_log: Instant,
    last_reason: String,
    /// `forwarder.dropped` total when the outage began.
    dropped_before: u64,
}

/// A duration in whole seconds, for log lines (`1m 5s`).
pub(super) fn secs(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

impl Inner {
    /// Payloads and bytes held (memory and disk).
    pub(super) fn held(st: &State) -> (usize, u64) {
        (st.queue.len(), st.mem_bytes as u64 + st.disk_bytes)
    }

    /// Keeps track of an outage and says so: the first failure at once, then a summary at most once a minute.
    pub(super) fn note_failure(&self, st: &mut State, reason: &str) {
        let now = Instant::now();
        let (n, bytes) = Inner::held(st);
        let url = &self.cfg.base_url;
        let dropped_now = self.telemetry.forwarder.dropped.total();
        match &mut st.outage {
            None => {
                let keep = if self.storage.is_some() {
                    "kept in memory and on disk"
                } else {
                    "kept in memory only (no forwarder_storage_path)"
                };
                tracing::warn!(
                    "cannot deliver to the intake {url}: {reason}; payloads are {keep} and retried with backoff ({n} payloads, {bytes} bytes held)"
                );
                let since_unix = crate::clock::unix_now();
                self.telemetry
                    .forwarder
                    .not_delivering_since
                    .set(since_unix);
                st.outage = Some(Outage {
                    since_unix,
                    since: now,
                    failures_unlogged: 0,
                    last_log: now,
                    last_reason: reason.to_string(),
                    dropped_before: dropped_now,
                });
            }
            Some(o) => {
                o.failures_unlogged += 1;
                o.last_reason = reason.to_string();
                if now.duration_since(o.last_log) >= OUTAGE_LOG_EVERY {
                    tracing::warn!(
                        "the intake {url} has not accepted data for {} ({} failed attempts since the last message, the last: {}); {n} payloads ({bytes} bytes) held, {} dropped since it began",
                        secs(now.duration_since(o.since)),
                        o.failures_unlogged,
                        o.last_reason,
                        dropped_now.saturating_sub(o.dropped_before),
                    );
                    o.last_log = now;
                    o.failures_unlogged = 0;
                }
            }
        }
    }

    pub(super) fn log_recovery(&self, st: &State, o: &Outage) {
        let (n, bytes) = Inner::held(st);
        tracing::info!(
            "the intake {} is accepting data again after {} (since {}); {n} payloads ({bytes} bytes) held are being sent, {} were dropped during the outage",
            self.cfg.base_url,
            secs(o.since.elapsed()),
            crate::status::format_time(o.since_unix),
            self.telemetry
                .forwarder
                .dropped
                .total()
                .saturating_sub(o.dropped_before),
        );
    }
}
