//! Where payloads wait, and how much of them: in memory up to `max_memory_bytes`, then (with storage) on disk
//! up to `storage_max_bytes`, the oldest dropped first (`retry_queue_full` without storage, `disk_full` with
//! it); written ahead to disk once an attempt failed or a second passed; loaded back at start; everything
//! left persisted at the shutdown deadline. Every payload that leaves the queue other than by a 2xx is a
//! counted drop.

use super::{Inner, State, Txn};
use crate::telemetry::DropReason;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// With storage, a payload still undelivered this long after it was queued is written to disk.
pub(super) const WRITE_AHEAD_AFTER: Duration = Duration::from_secs(1);

#[derive(PartialEq)]
pub(super) enum Stored {
    Yes,
    /// Larger than the storage, or no room without dropping payloads being sent.
    NoRoom,
    Failed,
}

impl Inner {
    pub(super) fn publish(&self, st: &State) {
        let t = &self.telemetry.forwarder;
        t.queued_bytes.set(st.mem_bytes as i64);
        t.queued_on_disk_bytes.set(st.disk_bytes as i64);
        t.queued_transactions.set(st.queue.len() as i64);
    }

    pub(super) fn drop_txn(&self, st: &mut State, seq: u64, reason: DropReason) {
        if let Some(txn) = st.queue.remove(&seq) {
            self.forget(st, &txn);
            self.telemetry.count_drop(reason, 1);
        }
    }

    /// Releases what `txn` held (memory accounting, its file).
    pub(super) fn forget(&self, st: &mut State, txn: &Txn) {
        if txn.body.is_some() {
            st.mem_bytes = st.mem_bytes.saturating_sub(txn.size);
        }
        if let Some(file) = &txn.file {
            st.disk_bytes = st.disk_bytes.saturating_sub(txn.size as u64);
            if let Err(e) = std::fs::remove_file(file) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("cannot remove forwarder file {}: {e}", file.display());
                }
            }
        }
    }

    /// Drops the oldest payloads held in memory (not in flight) until memory use is within `cap`.
    pub(super) fn drop_oldest_in_memory(&self, st: &mut State, cap: usize, reason: DropReason) {
        while st.mem_bytes > cap {
            let Some(seq) = oldest_in_memory(st) else {
                break;
            };
            tracing::warn!(
                reason = reason.key(),
                "forwarder queue over its memory cap: dropping the oldest payload"
            );
            *self.telemetry.forwarder.last_error.lock() =
                Some(format!("payload dropped: {reason}"));
            self.drop_txn(st, seq, reason);
        }
    }

    /// Moves the oldest payloads in memory to disk until memory use is within `cap` (with storage), or drops
    /// them (without).
    pub(super) fn spill(&self, st: &mut State, cap: usize) {
        if self.storage.is_none() {
            self.drop_oldest_in_memory(st, cap, DropReason::RetryQueueFull);
            return;
        }
        while st.mem_bytes > cap {
            let Some(seq) = oldest_in_memory(st) else {
                break;
            };
            match self.store(st, seq) {
                Stored::Yes => {}
                Stored::NoRoom => self.drop_txn(st, seq, DropReason::DiskFull),
                Stored::Failed => self.drop_txn(st, seq, DropReason::DiskError),
            }
        }
    }

    /// Write-ahead: writes to disk every payload held only in memory that failed once, was queued while the
    /// intake fails, or is older than [`WRITE_AHEAD_AFTER`]. Returns when the next one becomes due.
    pub(super) fn write_ahead(&self, st: &mut State, now: Instant) -> Option<Instant> {
        self.storage.as_ref()?;
        let failing = st.outage.is_some();
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for (seq, t) in &st.queue {
            if t.body.is_none() || t.no_disk {
                continue;
            }
            let at = t.queued + WRITE_AHEAD_AFTER;
            if failing || t.attempts > 0 || at <= now {
                due.push(*seq);
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        for seq in due {
            if self.store(st, seq) != Stored::Yes {
                // Still in memory and still sent; the memory cap decides its fate.
                if let Some(t) = st.queue.get_mut(&seq) {
                    t.no_disk = true;
                }
            }
        }
        next
    }

    /// Writes one payload held in memory to disk, making room by dropping the oldest stored payloads
    /// (`disk_full`). A payload in flight may be stored too: its request has its own copy of the body.
    pub(super) fn store(&self, st: &mut State, seq: u64) -> Stored {
        let Some(storage) = &self.storage else {
            return Stored::Failed;
        };
        let size = st.queue.get(&seq).map_or(0, |t| t.size) as u64;
        if size > self.cfg.storage_max_bytes {
            tracing::warn!(
                "payload of {size} bytes is larger than the forwarder storage ({} bytes): it cannot be kept on disk",
                self.cfg.storage_max_bytes
            );
            return Stored::NoRoom;
        }
        while st.disk_bytes + size > self.cfg.storage_max_bytes {
            let Some(old) = st
                .queue
                .iter()
                .find(|(s, t)| **s != seq && t.file.is_some() && !t.in_flight)
                .map(|(s, _)| *s)
            else {
                break;
            };
            tracing::warn!(
                "forwarder storage full ({} bytes): dropping the oldest stored payload",
                self.cfg.storage_max_bytes
            );
            *self.telemetry.forwarder.last_error.lock() =
                Some("stored payload dropped: disk_full".into());
            self.drop_txn(st, old, DropReason::DiskFull);
        }
        if st.disk_bytes + size > self.cfg.storage_max_bytes {
            // Everything on disk is in flight right now.
            return Stored::NoRoom;
        }
        let Some(txn) = st.queue.get_mut(&seq) else {
            return Stored::Failed;
        };
        let Some(body) = txn.body.take() else {
            return Stored::Yes;
        };
        match storage.write(&txn.meta, &body) {
            Ok(path) => {
                txn.file = Some(path);
                st.mem_bytes = st.mem_bytes.saturating_sub(size as usize);
                st.disk_bytes += size;
                Stored::Yes
            }
            Err(e) => {
                txn.body = Some(body);
                tracing::error!("cannot write a payload to the forwarder storage: {e}");
                *self.telemetry.forwarder.last_error.lock() =
                    Some(format!("forwarder storage: {e}"));
                Stored::Failed
            }
        }
    }

    pub(super) fn load_from_disk(&self) {
        let Some(storage) = &self.storage else { return };
        let mut st = self.state.lock();
        let now = Instant::now();
        let (files, corrupt) = storage.load();
        if corrupt > 0 {
            self.telemetry.count_drop(DropReason::DiskCorrupt, corrupt);
        }
        for f in files {
            let seq = st.next_seq;
            st.next_seq += 1;
            st.disk_bytes += f.size as u64;
            st.queue.insert(
                seq,
                Txn {
                    meta: f.meta,
                    body: None,
                    file: Some(f.path),
                    size: f.size,
                    attempts: 0,
                    not_before: now,
                    in_flight: false,
                    queued: now,
                    no_disk: false,
                },
            );
        }
        // A smaller cap than last run: oldest first.
        while st.disk_bytes > self.cfg.storage_max_bytes {
            let Some(seq) = st.queue.keys().next().copied() else {
                break;
            };
            self.drop_txn(&mut st, seq, DropReason::DiskFull);
        }
        if !st.queue.is_empty() {
            tracing::info!(
                "forwarder: {} payload(s) from a previous run will be sent",
                st.queue.len()
            );
        }
        self.publish(&st);
    }

    /// At the shutdown deadline: everything still queued goes to disk (or is counted as dropped).
    pub(super) fn persist_all(&self) {
        let mut st = self.state.lock();
        for txn in st.queue.values_mut() {
            txn.in_flight = false;
        }
        st.in_flight = 0;
        if self.storage.is_some() {
            // Keeping everything on disk is spilling down to a memory cap of zero.
            self.spill(&mut st, 0);
            let stored = st.queue.values().filter(|t| t.file.is_some()).count();
            if stored > 0 {
                tracing::info!(
                    "forwarder stopped: {stored} payload(s) kept on disk for the next start"
                );
            }
        } else {
            let left: Vec<u64> = st.queue.keys().copied().collect();
            if !left.is_empty() {
                // Exactly what is lost, by kind: payloads, items (series, sketches, events, checks) and bytes.
                let mut by_kind: BTreeMap<&'static str, (usize, usize, usize)> = BTreeMap::new();
                for t in st.queue.values() {
                    let e = by_kind.entry(t.meta.endpoint.name()).or_default();
                    e.0 += 1;
                    e.1 += t.meta.items;
                    e.2 += t.size;
                }
                let detail = by_kind
                    .iter()
                    .map(|(k, (n, items, bytes))| {
                        format!("{k}: {n} payloads, {items} items, {bytes} bytes")
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::warn!(
                    "forwarder stopped with {} payload(s) unsent and no forwarder_storage_path: dropping them ({detail})",
                    left.len()
                );
            }
            for seq in left {
                self.drop_txn(&mut st, seq, DropReason::Shutdown);
            }
        }
        self.publish(&st);
    }
}

/// The oldest payload whose body is held in memory and is not being sent right now.
fn oldest_in_memory(st: &State) -> Option<u64> {
    st.queue
        .iter()
        .find(|(_, t)| t.body.is_some() && !t.in_flight)
        .map(|(s, _)| *s)
}
