//! Delivers encoded payloads to Datadog's intake (SPEC §4 "Delivery").
//!
//! - 2xx: done (`forwarder.success`).
//! - 404, 408, 429, 5xx, timeouts and network errors: retried with exponential backoff and jitter
//!   (`forwarder.retried`), oldest first, while newer payloads keep being sent.
//! - 400, 403, 413: dropped (`forwarder.dropped.http_400|http_403|http_413`); any other 4xx: `http_4xx`;
//!   anything else unexpected (1xx, 3xx): `http_unexpected`.
//!
//! Memory bound: payloads waiting are kept in memory up to `max_memory_bytes`; beyond that the oldest are
//! written to `storage_path` (one file per payload, written to a temporary name then renamed, so a crash never
//! leaves half a payload under a valid name) up to `storage_max_bytes`, the oldest files being dropped first
//! (`disk_full`). Without storage the oldest payloads are dropped (`retry_queue_full`). Files left by a previous
//! run are loaded at start and sent first. A payload leaves the queue only after a 2xx or a counted drop.
//!
//! Write-ahead (with storage): a payload goes to disk as soon as one attempt failed, when it was queued while
//! the intake is failing, or when it is still undelivered a second after it was queued (a stalled request), so
//! a crash or `kill -9` loses nothing that was flushed: the next start sends it. Its file is removed after the
//! 2xx. (A crash between the intake's 2xx and that removal sends the payload twice: at-least-once, with a
//! window of one request.)
//!
//! Saying what is wrong: the first failure of an outage is logged at once (warning, with the URL and the
//! reason), then a summary at most once a minute while it lasts, and the recovery; the status shows since when
//! the intake is not delivering and what is held.
//!
//! While the intake is failing, at most one request is in flight (a probe), and from the second failure in a
//! row probes are spaced by the same backoff, so a queue of thousands of payloads does not turn into a request
//! storm during an outage; the first success lifts both limits.
//!
//! One task (the dispatcher) owns sending, spilling and persisting; `submit` only appends to the queue under a
//! short lock, so it never blocks the flush loop. Disk IO is done with `std::fs` from the dispatcher: files
//! are at most a few MB and only written when the intake is unreachable.

mod storage;

use crate::intake::{Endpoint, Payload};
use crate::telemetry::{DropReason, Telemetry};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// How the forwarder talks to the intake and how much it may keep.
#[derive(Clone, Debug)]
pub struct ForwarderConfig {
    /// `dd_url`, or `https://api.<site>`; paths are appended.
    pub base_url: String,
    pub api_key: crate::secret::Secret,
    /// Per request (`forwarder_timeout`, 20 s).
    pub timeout: Duration,
    /// Payload bytes kept in memory before spilling to disk (or dropping the oldest without storage).
    pub max_memory_bytes: usize,
    /// `forwarder_storage_path`: where payloads that could not be sent yet are kept, across restarts.
    pub storage_path: Option<PathBuf>,
    /// `forwarder_storage_max_size_in_bytes`: 0 disables disk storage, as in the Datadog Agent.
    pub storage_max_bytes: u64,
    /// Requests in flight at most (1 while the intake is failing).
    pub max_concurrent: usize,
    /// First retry delay; doubled per attempt up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl ForwarderConfig {
    /// The forwarder's settings from the agent's; None in local mode (no API key).
    pub fn from_agent(cfg: &crate::config::Config) -> Option<ForwarderConfig> {
        let key = cfg.api_key.as_ref()?;
        Some(ForwarderConfig {
            base_url: cfg.dd_url.clone(),
            api_key: key.clone(),
            timeout: cfg.forwarder_timeout,
            storage_path: cfg.forwarder_storage_path.clone(),
            storage_max_bytes: cfg.forwarder_storage_max_size_in_bytes,
            backoff_base: cfg.forwarder_backoff_base,
            backoff_max: cfg.forwarder_backoff_max,
            ..ForwarderConfig::default()
        })
    }
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            base_url: "https://api.datadoghq.com".into(),
            api_key: Default::default(),
            timeout: Duration::from_secs(20),
            max_memory_bytes: 15 << 20,
            storage_path: None,
            storage_max_bytes: 0,
            max_concurrent: 4,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(64),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("cannot use the forwarder storage directory {path}: {source}")]
    Storage {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("the intake URL {0:?} is not an http(s) URL")]
    BadUrl(String),
}

/// Handle to the running forwarder; cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ForwarderConfig,
    telemetry: Arc<Telemetry>,
    state: Mutex<State>,
    /// Something changed for the dispatcher (new payload, stop).
    wake: Notify,
    /// The queue became empty.
    drained: Notify,
    accepting: AtomicBool,
    /// Set at the shutdown deadline: no new sends, persist what is left.
    stopping: AtomicBool,
    dispatcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    storage: Option<storage::Storage>,
}

/// One payload waiting to be delivered. It lives either in memory (`body`) or on disk (`file`).
struct Txn {
    meta: storage::Meta,
    body: Option<Bytes>,
    file: Option<PathBuf>,
    size: usize,
    attempts: u32,
    not_before: Instant,
    in_flight: bool,
    /// When it was queued (write-ahead: on disk if still undelivered a second later).
    queued: Instant,
    /// It cannot be written to disk (larger than the storage, or a write failed): it stays in memory.
    no_disk: bool,
}

/// An intake outage in progress: from the first failed attempt to the next success.
struct Outage {
    since_unix: i64,
    since: Instant,
    /// Failed attempts since the last log line about this outage.
    failures_unlogged: u64,
    last_log: Instant,
    last_reason: String,
    /// `forwarder.dropped` total when the outage began.
    dropped_before: u64,
}

#[derive(Default)]
struct State {
    /// Oldest first.
    queue: BTreeMap<u64, Txn>,
    next_seq: u64,
    mem_bytes: usize,
    disk_bytes: u64,
    in_flight: usize,
    consecutive_failures: u32,
    /// While the intake keeps failing, no request starts before this (one probe per backoff period).
    blocked_until: Option<Instant>,
    outage: Option<Outage>,
    /// Alternates the pick between the oldest payload and the newest fresh one, so a backlog being drained
    /// after an outage does not hold back the current flushes.
    newest_next: bool,
}

/// With storage, a payload still undelivered this long after it was queued is written to disk.
const WRITE_AHEAD_AFTER: Duration = Duration::from_secs(1);
/// While the intake fails, a summary is logged at most this often.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(60);

#[derive(PartialEq)]
enum Stored {
    Yes,
    /// Larger than the storage, or no room without dropping payloads being sent.
    NoRoom,
    Failed,
}

enum Outcome {
    Success,
    Retry(String),
    Drop(DropReason, String),
}

impl Forwarder {
    /// Starts the forwarder's tasks (needs a tokio runtime) and loads payloads left on disk by a previous run.
    pub fn start(
        cfg: ForwarderConfig,
        telemetry: Arc<Telemetry>,
    ) -> Result<Forwarder, ForwarderError> {
        if !(cfg.base_url.starts_with("http://") || cfg.base_url.starts_with("https://")) {
            return Err(ForwarderError::BadUrl(cfg.base_url.clone()));
        }
        let storage = match &cfg.storage_path {
            Some(path) if cfg.storage_max_bytes > 0 => {
                Some(storage::Storage::open(path.clone()).map_err(|source| {
                    ForwarderError::Storage {
                        path: path.clone(),
                        source,
                    }
                })?)
            }
            Some(path) => {
                tracing::warn!(
                    "forwarder_storage_path is {} but forwarder_storage_max_size_in_bytes is 0: payloads that \
                     cannot be sent are kept in memory only",
                    path.display()
                );
                None
            }
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("kelpie/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut cfg = cfg;
        cfg.max_concurrent = cfg.max_concurrent.max(1);
        let inner = Arc::new(Inner {
            cfg,
            telemetry,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            drained: Notify::new(),
            accepting: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            dispatcher: Mutex::new(None),
            storage,
        });
        inner.load_from_disk();
        let task = tokio::spawn(dispatch(inner.clone(), client));
        *inner.dispatcher.lock() = Some(task);
        Ok(Forwarder { inner })
    }

    /// Queues payloads for delivery; never blocks. Over the memory cap the oldest payloads are spilled to disk
    /// (by the dispatcher) or dropped and counted.
    pub fn submit(&self, payloads: Vec<Payload>) {
        if payloads.is_empty() {
            return;
        }
        let inner = &self.inner;
        if !inner.accepting.load(Ordering::Acquire) {
            tracing::warn!(
                "forwarder stopped: dropping {} payload(s) submitted after shutdown",
                payloads.len()
            );
            inner
                .telemetry
                .count_drop(DropReason::ForwarderStopped, payloads.len() as u64);
            return;
        }
        {
            let mut st = inner.state.lock();
            let now = Instant::now();
            for p in payloads {
                let seq = st.next_seq;
                st.next_seq += 1;
                let size = p.body.len();
                st.mem_bytes += size;
                st.queue.insert(
                    seq,
                    Txn {
                        meta: storage::Meta::of(&p),
                        body: Some(p.body),
                        file: None,
                        size,
                        attempts: 0,
                        not_before: now,
                        in_flight: false,
                        queued: now,
                        no_disk: false,
                    },
                );
            }
            // Over the cap: the oldest payloads go to disk (or are dropped without storage). Disk writes only
            // happen here when the intake has been failing long enough to fill the memory queue.
            inner.spill(&mut st, inner.cfg.max_memory_bytes);
            inner.publish(&st);
        }
        inner.wake.notify_one();
    }

    /// Stops accepting, keeps sending until the queue is empty or `deadline`, then persists what is left to
    /// disk (if configured; otherwise it is counted as dropped, reason `shutdown`).
    pub async fn shutdown(self, deadline: Duration) {
        let inner = self.inner;
        inner.accepting.store(false, Ordering::Release);
        let until = Instant::now() + deadline;
        loop {
            let drained = inner.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            {
                // While the intake fails, waiting would deliver nothing (and Docker kills after 10 s).
                let st = inner.state.lock();
                if st.queue.is_empty() || st.outage.is_some() {
                    break;
                }
            }
            tokio::select! {
                _ = &mut drained => {}
                _ = tokio::time::sleep_until(until) => break,
                // Notices an outage that begins while draining.
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        inner.stopping.store(true, Ordering::Release);
        inner.wake.notify_one();
        let task = inner.dispatcher.lock().take();
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::error!("forwarder dispatcher ended abnormally: {e}");
            }
        }
    }
}

impl Inner {
    fn publish(&self, st: &State) {
        let t = &self.telemetry.forwarder;
        t.queued_bytes.set(st.mem_bytes as i64);
        t.queued_on_disk_bytes.set(st.disk_bytes as i64);
        t.queued_transactions.set(st.queue.len() as i64);
    }

    fn drop_txn(&self, st: &mut State, seq: u64, reason: DropReason) {
        if let Some(txn) = st.queue.remove(&seq) {
            self.forget(st, &txn);
            self.telemetry.count_drop(reason, 1);
        }
    }

    /// Releases what `txn` held (memory accounting, its file).
    fn forget(&self, st: &mut State, txn: &Txn) {
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
    fn drop_oldest_in_memory(&self, st: &mut State, cap: usize, reason: DropReason) {
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
    fn spill(&self, st: &mut State, cap: usize) {
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
    fn write_ahead(&self, st: &mut State, now: Instant) -> Option<Instant> {
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
    fn store(&self, st: &mut State, seq: u64) -> Stored {
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

    fn load_from_disk(&self) {
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

    fn backoff(&self, attempts: u32) -> Duration {
        let base = self.cfg.backoff_base.as_secs_f64();
        let max = self.cfg.backoff_max.as_secs_f64().max(base);
        let exp = base * 2f64.powi(attempts.saturating_sub(1).min(30) as i32);
        let d = exp.min(max);
        // Equal jitter: between half and all of the delay.
        Duration::from_secs_f64(d * rand::random_range(0.5..=1.0))
    }

    /// Picks a ready payload (the oldest, or every other time the newest never tried, so the current flushes
    /// keep flowing while a backlog drains), marks it in flight and returns what to send.
    fn next_ready(
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

    fn finish(&self, seq: u64, outcome: Outcome) {
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

    /// Payloads and bytes held (memory and disk).
    fn held(st: &State) -> (usize, u64) {
        (st.queue.len(), st.mem_bytes as u64 + st.disk_bytes)
    }

    /// Keeps track of an outage and says so: the first failure at once, then a summary at most once a minute.
    fn note_failure(&self, st: &mut State, reason: &str) {
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

    fn log_recovery(&self, st: &State, o: &Outage) {
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

    /// At the shutdown deadline: everything still queued goes to disk (or is counted as dropped).
    fn persist_all(&self) {
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

/// Grace given to requests in flight at the shutdown deadline before they are abandoned (and kept).
const IN_FLIGHT_GRACE: Duration = Duration::from_secs(1);

/// A duration in whole seconds, for log lines (`1m 5s`).
fn secs(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

async fn dispatch(inner: Arc<Inner>, client: reqwest::Client) {
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

/// Full URL of `endpoint`. Profiles go to Datadog's profiling intake (`https://intake.profile.<site>`) when the
/// base is Datadog's API host (`https://api.<site>`); any other base (`dd_url`, a stand-in) serves every path.
pub fn endpoint_url(base: &str, endpoint: Endpoint) -> String {
    let base = base.trim_end_matches('/');
    if endpoint == Endpoint::Profile {
        if let Some(site) = base.strip_prefix("https://api.") {
            return format!("https://intake.profile.{site}{}", endpoint.path());
        }
    }
    format!("{base}{}", endpoint.path())
}

fn build_request(
    client: &reqwest::Client,
    base: &str,
    api_key: &str,
    meta: &storage::Meta,
    body: Bytes,
) -> reqwest::RequestBuilder {
    let mut req = client
        .post(endpoint_url(base, meta.endpoint))
        .header("DD-API-KEY", secret_header(api_key))
        .header("Content-Type", meta.content_type.as_ref())
        .header("DD-Agent-Version", env!("CARGO_PKG_VERSION"))
        .body(body);
    if let Some(enc) = meta.content_encoding {
        req = req.header("Content-Encoding", enc);
    }
    req
}

/// A header value that `Debug` output (reqwest's, hyper's) shows as `Sensitive`.
pub fn secret_header(value: &str) -> reqwest::header::HeaderValue {
    // A key with bytes a header cannot carry is sent as a placeholder: the intake answers 403 (counted).
    let mut v = reqwest::header::HeaderValue::from_str(value)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid-api-key"));
    v.set_sensitive(true);
    v
}

async fn send(req: reqwest::RequestBuilder) -> Outcome {
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Outcome::Retry(describe(&e)),
    };
    let status = resp.status().as_u16();
    let url = resp.url().path().to_string();
    // Read the (small) answer so the connection can be reused; its content only matters for errors.
    let body = resp.bytes().await.unwrap_or_default();
    let detail = || {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        format!("POST {url}: HTTP {status} {text}")
    };
    match status {
        200..=299 => Outcome::Success,
        400 => Outcome::Drop(DropReason::Http400, detail()),
        403 => Outcome::Drop(DropReason::Http403, detail()),
        413 => Outcome::Drop(DropReason::Http413, detail()),
        404 | 408 | 429 | 500..=599 => Outcome::Retry(detail()),
        401..=499 => Outcome::Drop(DropReason::Http4xx, detail()),
        _ => Outcome::Drop(DropReason::HttpUnexpected, detail()),
    }
}

/// An error with its causes, in one line.
fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        format!("timeout: {e}")
    } else {
        e.to_string()
    };
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("Forwarder")
            .field("base_url", &self.inner.cfg.base_url)
            .field("queued", &st.queue.len())
            .field("in_flight", &st.in_flight)
            .finish()
    }
}

/// The oldest payload whose body is held in memory and is not being sent right now.
fn oldest_in_memory(st: &State) -> Option<u64> {
    st.queue
        .iter()
        .find(|(_, t)| t.body.is_some() && !t.in_flight)
        .map(|(s, _)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let api = "https://api.datadoghq.eu/";
        assert_eq!(
            endpoint_url(api, Endpoint::Series),
            "https://api.datadoghq.eu/api/v2/series"
        );
        assert_eq!(
            endpoint_url(api, Endpoint::Profile),
            "https://intake.profile.datadoghq.eu/api/v2/profile"
        );
        let local = "http://127.0.0.1:8080";
        assert_eq!(
            endpoint_url(local, Endpoint::Profile),
            "http://127.0.0.1:8080/api/v2/profile"
        );
        assert_eq!(
            endpoint_url(local, Endpoint::Sketches),
            "http://127.0.0.1:8080/api/beta/sketches"
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let inner_cfg = ForwarderConfig {
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(64),
            ..ForwarderConfig::default()
        };
        let inner = Inner {
            cfg: inner_cfg,
            telemetry: Arc::new(Telemetry::default()),
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            drained: Notify::new(),
            accepting: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            dispatcher: Mutex::new(None),
            storage: None,
        };
        for (attempt, full) in [
            (1u32, 2.0f64),
            (2, 4.0),
            (3, 8.0),
            (6, 64.0),
            (7, 64.0),
            (1000, 64.0),
        ] {
            for _ in 0..20 {
                let d = inner.backoff(attempt).as_secs_f64();
                assert!(
                    d >= full / 2.0 - 1e-9 && d <= full + 1e-9,
                    "attempt {attempt}: {d}"
                );
            }
        }
    }
}
