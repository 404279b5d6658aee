//! The dispatcher: the one task that sends. It picks ready payloads (oldest first, every other pick the newest
//! fresh one so a draining backlog does not hold back the current flushes), sends at most `max_concurrent`
//! at once (one probe while the intake fails), and applies each outcome: done, dropped and counted, or retried
//! with exponential backoff and jitter.

use super::send::{build_request, send, Outcome};
use super::{storage, Inner, State, Txn};
use crate::telemetry::DropReason;
use bytes::Bytes;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Grace given to requests in flight at the shutdown deadline before they are abandoned (and kept).
pub(super) const IN_FLIGHT_GRACE: Duration = Duration::from_secs(1);

pub(super) async fn dispatch(inner: Arc<Inner>, client: reqwest::Client) {
    let mut sends: JoinSet<(u64, Outcome)> = JoinSet::new();
    let base = inner.cfg.base_url.trim_end_matches('/').to_string();
    loop {
        if inner.stopping.load(Ordering::Acquire) {
            break;
        }
        let next_wake = {
            let mut st = inner.state.lock();
            inner.spill(&mut st, inner.cfg.max_memory_bytes);
            let now = Instant::now();
            let write_ahead = inner.write_ahead(&mut st, now);
            let blocked = st.blocked_until.filter(|&until| until > now);
            let limit = if blocked.is_some() {
                0
            } else if st.consecutive_failures > 0 {
                1
            } else {
                inner.cfg.max_concurrent
            };
            while st.in_flight < limit {
                let Some((seq, meta, body)) = inner.next_ready(&mut st, now) else {
                    break;
                };
                match body {
                    Ok(body) => {
                        let req =
                            build_request(&client, &base, inner.cfg.api_key.expose(), &meta, body);
                        sends.spawn(async move { (seq, send(req).await) });
                    }
                    Err(e) => {
                        tracing::error!("cannot read a stored payload, dropping it: {e}");
                        st.in_flight -= 1;
                        inner.drop_txn(&mut st, seq, DropReason::DiskCorrupt);
                    }
                }
            }
            inner.publish(&st);
            if st.queue.is_empty() {
                inner.drained.notify_waiters();
            }
            let send_at = if blocked.is_some() {
                blocked
            } else if st.in_flight < limit {
                st.queue
                    .values()
                    .filter(|t| !t.in_flight)
                    .map(|t| t.not_before)
                    .min()
            } else {
                None
            };
            match (send_at, write_ahead) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        tokio::select! {
            _ = inner.wake.notified() => {}
            Some(res) = sends.join_next(), if !sends.is_empty() => {
                match res {
                    Ok((seq, outcome)) => inner.finish(seq, outcome),
                    Err(e) => tracing::error!("forwarder send task failed: {e}"),
                }
            }
            _ = sleep_until_opt(next_wake) => {}
        }
    }
    // Shutdown deadline: let requests in flight finish briefly, then keep what is left.
    let grace = Instant::now() + IN_FLIGHT_GRACE.min(inner.cfg.timeout);
    while !sends.is_empty() {
        tokio::select! {
            Some(res) = sends.join_next() => {
                if let Ok((seq, outcome)) = res {
                    inner.finish(seq, outcome);
                }
            }
            _ = tokio::time::sleep_until(grace) => break,
        }
    }
    sends.abort_all();
    inner.persist_all();
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Inner {
    pub(super) fn backoff(&self, attempts: u32) -> Duration {
        let base = self.cfg.backoff_base.as_secs_f64();
        let max = self.cfg.backoff_max.as_secs_f64().max(base);
        let exp = base * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        let d = exp.min(max);
        // Equal jitter: between half and all of the delay.
        Duration::from_secs_f64(d * rand::random_range(0.5..=1.0))
    }

    /// Picks a ready payload (the oldest, or every other time the newest never tried, so the current flushes
    /// keep flowing while a backlog drains), marks it in flight and returns what to send.
    pub(super) fn next_ready(
        &self,
        st: &mut State,
        now: Instant,
    ) -> Option<(u64, storage::Meta, Result<Bytes, String>)> {
        let ready = |t: &Txn| !t.in_flight && t.not_before <= now;
        let newest = if st.newest_next {
            st.queue
                .iter()
                .rev()
                .find(|(_, t)| ready(t) && t.attempts == 0)
                .map(|(s, _)| *s)
        } else {
            None
        };
        st.newest_next = !st.newest_next;
        let seq = match newest {
            Some(s) => s,
            None => *st.queue.iter().find(|(_, t)| ready(t))?.0,
        };
        let txn = st.queue.get_mut(&seq)?;
        txn.in_flight = true;
        let body = match (&txn.body, &txn.file) {
            (Some(b), _) => Ok(b.clone()),
            (None, Some(path)) => storage::Storage::read_body(path).map_err(|e| e.to_string()),
            (None, None) => Err("payload has neither a body nor a file".into()),
        };
        let meta = txn.meta.clone();
        st.in_flight += 1;
        Some((seq, meta, body))
    }

    pub(super) fn finish(&self, seq: u64, outcome: Outcome) {
        let mut st = self.state.lock();
        st.in_flight = st.in_flight.saturating_sub(1);
        let t = &self.telemetry.forwarder;
        match outcome {
            Outcome::Success => {
                st.consecutive_failures = 0;
                st.blocked_until = None;
                if let Some(o) = st.outage.take() {
                    self.log_recovery(&st, &o);
                    t.not_delivering_since.set(0);
                }
                if let Some(txn) = st.queue.remove(&seq) {
                    self.forget(&mut st, &txn);
                    t.success.inc();
                    t.bytes_sent.add(txn.size as u64);
                }
            }
            Outcome::Drop(reason, msg) => {
                tracing::warn!(
                    reason = reason.key(),
                    "intake refused a payload, dropping it: {msg}"
                );
                *t.last_error.lock() = Some(msg);
                self.drop_txn(&mut st, seq, reason);
            }
            Outcome::Retry(msg) => {
                st.consecutive_failures = st.consecutive_failures.saturating_add(1);
                self.note_failure(&mut st, &msg);
                // One failure may be that payload's own problem: newer payloads still go out at once. From the
                // second failure in a row the intake itself looks unwell: wait between probes.
                if st.consecutive_failures >= 2 {
                    let wait = self.backoff(st.consecutive_failures - 1);
                    st.blocked_until = Some(Instant::now() + wait);
                }
                if let Some(txn) = st.queue.get_mut(&seq) {
                    txn.in_flight = false;
                    txn.attempts = txn.attempts.saturating_add(1);
                    let delay = self.backoff(txn.attempts);
                    txn.not_before = Instant::now() + delay;
                    tracing::debug!(
                        attempts = txn.attempts,
                        ?delay,
                        "payload will be retried: {msg}"
                    );
                }
                t.retried.inc();
                *t.last_error.lock() = Some(msg);
            }
        }
        self.publish(&st);
        if st.queue.is_empty() {
            self.drained.notify_waiters();
        }
    }
}
