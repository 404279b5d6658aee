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
//!
//! Here: the configuration, the handle ([`Forwarder`]: start, submit, shutdown) and the shared state. The queue's
//! memory and disk bookkeeping is in `queue`, the dispatcher and its retries in `dispatch`, outage reporting
//! in `outage`, one request and the meaning of its answer in `send`, the files in `storage`.

mod dispatch;
mod outage;
mod queue;
mod send;
mod storage;
#[cfg(test)]
mod tests;

pub use send::{endpoint_url, secret_header};

use crate::intake::Payload;
use crate::telemetry::{DropReason, Telemetry};
use bytes::Bytes;
use dispatch::dispatch;
use outage::Outage;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
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

impl Inner {
    fn new(
        cfg: ForwarderConfig,
        telemetry: Arc<Telemetry>,
        storage: Option<storage::Storage>,
    ) -> Inner {
        Inner {
            cfg,
            telemetry,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
            drained: Notify::new(),
            accepting: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            dispatcher: Mutex::new(None),
            storage,
        }
    }
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
        let inner = Arc::new(Inner::new(cfg, telemetry, storage));
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
