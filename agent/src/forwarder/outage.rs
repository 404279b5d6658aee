//! Saying what is wrong while the intake fails: the first failure of an outage is logged at once (with the
//! URL and the reason), then a summary at most once a minute while it lasts, then the recovery; the status
//! shows since when the intake is not delivering and what is held. The policy (when to say what) is
//! [`crate::outage`], shared with Docker collection.

use super::{Inner, State};
use crate::outage::{secs, Episode};
use tokio::time::Instant;

/// An intake outage in progress: from the first failed attempt to the next success.
pub(super) struct Outage {
    since_unix: i64,
    episode: Episode,
    last_reason: String,
    /// `forwarder.dropped` total when the outage began.
    dropped_before: u64,
}

impl Inner {
    /// Payloads and bytes held (memory and disk).
    pub(super) fn held(st: &State) -> (usize, u64) {
        (st.queue.len(), st.mem_bytes as u64 + st.disk_bytes)
    }

    /// Keeps track of an outage and says so: the first failure at once, then a summary at most once a minute.
    pub(super) fn note_failure(&self, st: &mut State, reason: &str) {
        // tokio's clock (not std's), so that a test with paused time moves it.
        let now = Instant::now().into_std();
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
                    episode: Episode::begin(now),
                    last_reason: reason.to_string(),
                    dropped_before: dropped_now,
                });
            }
            Some(o) => {
                o.last_reason = reason.to_string();
                if let Some(s) = o.episode.failed(now) {
                    tracing::warn!(
                        "the intake {url} has not accepted data for {} ({} failed attempts since the last message, the last: {}); {n} payloads ({bytes} bytes) held, {} dropped since it began",
                        secs(s.lasted),
                        s.since_last_line,
                        o.last_reason,
                        dropped_now.saturating_sub(o.dropped_before),
                    );
                }
            }
        }
    }

    pub(super) fn log_recovery(&self, st: &State, o: &Outage) {
        let (n, bytes) = Inner::held(st);
        tracing::info!(
            "the intake {} is accepting data again after {} (since {}); {n} payloads ({bytes} bytes) held are being sent, {} were dropped during the outage",
            self.cfg.base_url,
            secs(o.episode.lasted(Instant::now().into_std())),
            crate::status::format_time(o.since_unix),
            self.telemetry
                .forwarder
                .dropped
                .total()
                .saturating_sub(o.dropped_before),
        );
    }
}
