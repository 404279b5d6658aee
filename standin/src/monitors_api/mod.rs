//! Monitors API stand-in: Datadog's Monitors API v1 (`/api/v1/monitor`, `/{id}`, `/validate`, `/can_delete`)
//! as far as kelpie relies on it. It behaves like Datadog where that matters: what it stores is normalized the
//! way Datadog does (`metric alert` read back as `query alert`, thresholds as floats, trimmed strings, sorted
//! tags, server-side option defaults and extra fields such as `id`, `created`, `modified`, `creator`,
//! `overall_state`), queries and thresholds are validated with Datadog's error texts, lists are paged
//! (`page`, `page_size` ≤ 1000, filters `monitor_tags` and `name`), requests need `DD-API-KEY` and
//! `DD-APPLICATION-KEY`, and optional rate limits answer as Datadog documents them: `X-RateLimit-Limit`,
//! `-Period` (whole seconds, windows aligned to the calendar: they start at multiples of the period since the
//! Unix epoch), `-Remaining`, `-Reset` (whole seconds until the window ends, rounded down) and `-Name`, and
//! 429 once a window's budget is spent. By default one bucket covers every monitor endpoint;
//! [`MonitorsApiHandle::add_rate_limit`] adds named buckets for some methods.
//!
//! Tests drive it through [`MonitorsApiHandle`]: `insert_raw` plays an edit in the Datadog UI,
//! `edit_before` plays one made while a client is between its read and its write (applied just before a
//! given request is served), `fail_next` injects errors (`fail_next_with_headers` with headers such as
//! `X-RateLimit-Reset`), `fail_after_apply` applies a request and then loses its answer (a 5xx, or the
//! connection dropped), `require_keys` refuses other keys with 403 as Datadog does, `request_log` shows what
//! kelpie sent.
//!
//! This file holds the state and the handle tests use; routing, rate limits, the list and search endpoints,
//! validation and normalization have their own files.

mod normalize;
mod queries;
mod ratelimit;
mod routes;
#[cfg(test)]
mod tests;
mod validate;

pub use routes::{router, routes};

use normalize::{normalize, server_fields};
use ratelimit::Bucket;

use axum::http::StatusCode;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Most entries kept in the request log.
const MAX_LOG: usize = 200_000;
/// The API's largest page.
pub const MAX_PAGE_SIZE: usize = 1000;

/// One request the stand-in answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The status answered; 0 when the connection was dropped instead (see `fail_after_apply`).
    pub status: u16,
}

impl LogEntry {
    /// Whether the request changed something (POST/PUT/DELETE other than validate).
    pub fn is_write(&self) -> bool {
        self.method != "GET" && !self.path.ends_with("/validate")
    }
}

struct Fail {
    method: Option<String>,
    path: String,
    status: u16,
    left: u32,
    /// Apply the request first, then answer `status` (0: drop the connection) instead of its answer.
    after_apply: bool,
    /// Headers added to the failed answer.
    headers: Vec<(String, String)>,
}

/// A change made outside the client (someone in the Datadog UI, another tool), see
/// [`MonitorsApiHandle::edit_before`].
#[derive(Clone, Debug)]
pub enum OutsideEdit {
    /// The monitor is deleted.
    Delete(i64),
    /// The monitor is stored as given, as [`MonitorsApiHandle::insert_raw`] does (its `id` says which).
    Store(Value),
}

struct PendingEdit {
    method: Option<String>,
    path: String,
    edit: OutsideEdit,
}

/// What the handler answers: a normal response, or a dropped connection.
enum Answer {
    Json(StatusCode, Value),
    Drop,
}

struct Inner {
    monitors: BTreeMap<i64, Value>,
    next_id: i64,
    buckets: Vec<Bucket>,
    log: Vec<LogEntry>,
    fails: Vec<Fail>,
    edits: Vec<PendingEdit>,
    /// The only keys accepted (API key, application key), when set; otherwise any non-empty ones.
    keys: Option<(String, String)>,
}

impl Inner {
    /// See [`MonitorsApiHandle::insert_raw`].
    fn insert_raw(&mut self, mut m: Value) -> i64 {
        let id = match m.get("id").and_then(Value::as_i64) {
            Some(id) => id,
            None => {
                self.next_id += 1;
                self.next_id
            }
        };
        let created = self
            .monitors
            .get(&id)
            .and_then(|o| o.get("created").cloned());
        normalize(&mut m);
        server_fields(&mut m, id, created);
        self.monitors.insert(id, m);
        id
    }

    /// Applies the outside edits waiting for a request `method path`, first in, each once.
    fn apply_edits(&mut self, method: &str, path: &str) {
        let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.edits)
            .into_iter()
            .partition(|e| e.path == path && e.method.as_deref().is_none_or(|m| m == method));
        self.edits = rest;
        for e in due {
            match e.edit {
                OutsideEdit::Delete(id) => {
                    self.monitors.remove(&id);
                }
                OutsideEdit::Store(m) => {
                    self.insert_raw(m);
                }
            }
        }
    }
}

/// Shared state of the stand-in (mount it with [`router`]).
pub struct MonitorsState {
    inner: Mutex<Inner>,
}

impl Default for MonitorsState {
    fn default() -> Self {
        MonitorsState {
            inner: Mutex::new(Inner {
                monitors: BTreeMap::new(),
                next_id: 1000,
                buckets: Vec::new(),
                log: Vec::new(),
                fails: Vec::new(),
                edits: Vec::new(),
                keys: None,
            }),
        }
    }
}

pub struct MonitorsApi;

/// A running stand-in; stops when dropped.
pub struct MonitorsApiHandle {
    pub addr: SocketAddr,
    state: Arc<MonitorsState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MonitorsApi {
    /// Starts the stand-in on 127.0.0.1 (a free port) in a thread of its own, so it serves whether the test
    /// is async or blocking.
    pub fn start() -> MonitorsApiHandle {
        let state = Arc::new(MonitorsState::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = router(state.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        MonitorsApiHandle {
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for MonitorsApiHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl MonitorsApiHandle {
    /// `http://127.0.0.1:<port>` (what `DD_HOST` should be).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn state(&self) -> Arc<MonitorsState> {
        self.state.clone()
    }
    /// Every stored monitor, as the API would return it.
    pub fn monitors(&self) -> Vec<Value> {
        self.state.inner.lock().monitors.values().cloned().collect()
    }
    pub fn get(&self, id: i64) -> Option<Value> {
        self.state.inner.lock().monitors.get(&id).cloned()
    }
    /// Stores a monitor as if made or edited in the Datadog UI: no validation; server fields are filled in
    /// and the same normalization applies. With an `id` of an existing monitor it replaces that monitor.
    /// Returns the id.
    pub fn insert_raw(&self, m: Value) -> i64 {
        self.state.inner.lock().insert_raw(m)
    }
    /// Makes `edit` happen just before the next request to `path` (optionally prefixed by a method, as in
    /// [`Self::fail_next`]) is served: a change someone makes while a client is between its read and its
    /// write. Each edit happens once.
    pub fn edit_before(&self, path: &str, edit: OutsideEdit) {
        let (method, path) = split_method(path);
        self.state
            .inner
            .lock()
            .edits
            .push(PendingEdit { method, path, edit });
    }
    /// Accepts only these keys from now on; other keys are answered 403 `Forbidden`, as Datadog answers an
    /// invalid API or application key.
    pub fn require_keys(&self, api_key: &str, app_key: &str) {
        self.state.inner.lock().keys = Some((api_key.to_string(), app_key.to_string()));
    }
    /// Enables a rate limit of `limit` requests per `period` (whole seconds, at least 1) for all monitor
    /// endpoints, in one bucket named `monitors` (replacing any buckets set before).
    pub fn set_rate_limit(&self, limit: u64, period: Duration) {
        self.state.set_rate_limit(limit, period);
    }
    /// Adds a named bucket for requests with one of `methods` (empty: all); a request counts against the first
    /// bucket that covers it, as Datadog gives each group of endpoints its own `X-RateLimit-Name`.
    pub fn add_rate_limit(&self, name: &str, methods: &[&str], limit: u64, period: Duration) {
        self.state.add_rate_limit(name, methods, limit, period);
    }
    pub fn request_log(&self) -> Vec<LogEntry> {
        self.state.inner.lock().log.clone()
    }
    pub fn clear_log(&self) {
        self.state.inner.lock().log.clear();
    }
    /// Makes the next `n` requests to `path` (optionally prefixed by a method, e.g. `"POST /api/v1/monitor"`)
    /// fail with `status`.
    pub fn fail_next(&self, path: &str, status: u16, n: u32) {
        self.push_fail(path, status, n, false, &[]);
    }
    /// As [`Self::fail_next`], with `headers` on each failed answer (a 429's `X-RateLimit-Reset`, say).
    pub fn fail_next_with_headers(
        &self,
        path: &str,
        status: u16,
        n: u32,
        headers: &[(&str, &str)],
    ) {
        self.push_fail(path, status, n, false, headers);
    }
    /// Applies the next `n` requests to `path` (as [`Self::fail_next`]) and then loses their answers: the
    /// client gets `status` (a 5xx from a proxy that timed out) or, with `status` 0, a dropped connection,
    /// although the change was made.
    pub fn fail_after_apply(&self, path: &str, status: u16, n: u32) {
        self.push_fail(path, status, n, true, &[]);
    }
    fn push_fail(
        &self,
        path: &str,
        status: u16,
        n: u32,
        after_apply: bool,
        headers: &[(&str, &str)],
    ) {
        let (method, path) = split_method(path);
        self.state.inner.lock().fails.push(Fail {
            method,
            path,
            status,
            left: n,
            after_apply,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
    }
}

/// `"PUT /api/v1/monitor/1"` → (`Some("PUT")`, `"/api/v1/monitor/1"`); a bare path matches every method.
fn split_method(path: &str) -> (Option<String>, String) {
    match path.split_once(' ') {
        Some((m, p)) => (Some(m.to_uppercase()), p.to_string()),
        None => (None, path.to_string()),
    }
}
