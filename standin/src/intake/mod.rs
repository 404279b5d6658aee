//! Datadog intake stand-in: an HTTP server that accepts what Datadog's intake documents (paths, `DD-API-KEY`,
//! `Content-Encoding`, payload limits, protobuf and JSON bodies) and keeps everything it accepted, decoded,
//! for tests to check. It can also misbehave on demand ([`Failure`]): answer an error status, stall, reset
//! the connection, or stop listening altogether.
//!
//! Accepted requests (anything else: 404):
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /api/v2/series` | `MetricPayload` protobuf (`application/x-protobuf`) or JSON v2 (`application/json`) | 202 `{"errors":[]}` |
//! | `POST /api/beta/sketches` | `SketchPayload` protobuf | 202 `{}` |
//! | `POST /api/v1/events` | `EventCreateRequest` JSON (`title`, `text` required; `alert_type`, `priority` checked) | 202 `{"status":"ok","event":…}` |
//! | `POST /api/v1/check_run` | JSON array of checks (`check`, `host_name`, `status` 0-3 required) | 202 `{"status":"ok"}` |
//! | `POST /api/v2/profile` | `multipart/form-data` with an `event` part (JSON) and attachments | 202 `{}` |
//! | `GET /api/v1/validate` | — | 200 `{"valid":true}` |
//!
//! Every intake request needs a non-empty `DD-API-KEY` header (or the configured key): 403 otherwise.
//! Bodies may be compressed (`zstd`, `gzip`, `deflate`): another encoding gets 415, a corrupt body 400.
//! Sizes as documented by Datadog: series 512 000 bytes compressed / 5 242 880 uncompressed, sketches
//! 3 200 000 / 62 914 560, events and checks like series; bigger gets 413.
//!
//! Test-control endpoints (no API key needed), for a stand-in running in another process or container:
//! `GET /_standin/received` (everything received, as JSON), `POST /_standin/failure` (a
//! [`FailureRequest`] JSON), `DELETE /_standin/failure`, `POST /_standin/clear` (forget what was received).
//!
//! This file holds the public types, the handle tests use and the shared state; the server, the routes,
//! body decoding, ingestion and fault injection have their own files.

mod decode;
mod failure;
mod ingest;
mod proto;
mod routes;
mod server;
#[cfg(test)]
mod tests;

pub use failure::{Failure, FailureRequest, Times};

use axum::Router;
use failure::ActiveFailure;
use parking_lot::Mutex;
use routes::handle;
use serde::Serialize;
use serde_json::Value;
use server::{bind, serve};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// Size limits of one request, as Datadog documents them.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_compressed: usize,
    pub max_uncompressed: usize,
}

/// `/api/v2/series`: 500 kB (512 000 bytes) compressed, 5 MB (5 242 880 bytes) decompressed.
pub const SERIES_LIMITS: Limits = Limits {
    max_compressed: 512_000,
    max_uncompressed: 5_242_880,
};
/// Sketches: 3.2 MB (3 200 000 bytes) compressed, 62 MB (62 914 560 bytes) decompressed.
pub const SKETCH_LIMITS: Limits = Limits {
    max_compressed: 3_200_000,
    max_uncompressed: 62_914_560,
};
/// Profiles: Datadog does not document a number; 10 MiB as sent, 64 MiB decompressed.
pub const PROFILE_LIMITS: Limits = Limits {
    max_compressed: 10 << 20,
    max_uncompressed: 64 << 20,
};

/// Largest body read at all (anything above every limit is refused with 413 anyway).
const BODY_READ_CAP: usize = 80 << 20;
/// At most this many items of each kind are kept (a test tool, but still bounded).
const MAX_KEPT: usize = 2_000_000;
const MAX_REQUESTS_KEPT: usize = 200_000;

/// Datadog's documented event limits (longer values are accepted and kept as sent; Datadog displays them
/// truncated).
pub const EVENT_TITLE_MAX_CHARS: usize = 100;
pub const EVENT_TEXT_MAX_CHARS: usize = 4000;

/// One series as received, decoded from protobuf or JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReceivedSeries {
    pub name: String,
    pub tags: Vec<String>,
    /// The `host` resource, if any.
    pub host: Option<String>,
    /// `MetricType`: 0 unspecified, 1 count, 2 rate, 3 gauge.
    #[serde(rename = "type")]
    pub kind: i32,
    pub interval: i64,
    /// (unix seconds, value)
    pub points: Vec<(i64, f64)>,
    pub unit: String,
    pub source_type_name: String,
    /// All resources as (type, name).
    pub resources: Vec<(String, String)>,
    /// `protobuf` or `json`.
    pub format: &'static str,
}

/// One `Dogsketch` point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReceivedDogsketch {
    pub ts: i64,
    pub cnt: i64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub sum: f64,
    pub k: Vec<i32>,
    pub n: Vec<u32>,
}

/// One sketch as received.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReceivedSketch {
    pub name: String,
    pub host: String,
    pub tags: Vec<String>,
    pub points: Vec<ReceivedDogsketch>,
    /// Legacy `distributions` entries seen (kelpie should send none).
    pub legacy_distributions: usize,
}

/// One part of a profile upload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReceivedPart {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub len: usize,
}

/// One profile upload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReceivedProfile {
    pub parts: Vec<ReceivedPart>,
    /// The `event` part, parsed.
    pub event: Value,
}

/// One HTTP request to an intake path, whatever its outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    /// Lower-case header names.
    pub headers: BTreeMap<String, String>,
    /// The status answered (0 when the connection was reset instead).
    pub status: u16,
    pub body_len: usize,
}

impl ReceivedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// Everything the intake accepted so far.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Received {
    pub series: Vec<ReceivedSeries>,
    pub sketches: Vec<ReceivedSketch>,
    pub events: Vec<Value>,
    pub service_checks: Vec<Value>,
    pub profiles: Vec<ReceivedProfile>,
    pub requests: Vec<ReceivedRequest>,
    /// Items not kept because the stand-in's own caps were reached.
    pub not_kept: u64,
}

/// How to start an intake.
#[derive(Clone, Debug)]
pub struct IntakeConfig {
    pub listen: SocketAddr,
    /// When set, only this key is valid; otherwise any non-empty key is.
    pub api_key: Option<String>,
    /// More routes served by the same server (the binary adds the monitors API).
    pub extra_routes: Option<Router>,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        IntakeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_key: None,
            extra_routes: None,
        }
    }
}

struct Shared {
    received: Mutex<Received>,
    notify: Notify,
    failure: Mutex<Option<ActiveFailure>>,
    /// `Some(until)` while the server must not listen.
    down: watch::Sender<Option<Instant>>,
    api_key: Option<String>,
}

/// Starts intakes.
pub struct Intake;

impl Intake {
    /// Starts an intake on 127.0.0.1 on a free port. Panics if it cannot bind (tests only).
    pub async fn start() -> IntakeHandle {
        match Intake::start_with(IntakeConfig::default()).await {
            Ok(h) => h,
            Err(e) => panic!("the intake stand-in could not listen on 127.0.0.1: {e}"),
        }
    }

    /// Starts an intake on `addr`.
    pub async fn start_on(addr: SocketAddr) -> std::io::Result<IntakeHandle> {
        Intake::start_with(IntakeConfig {
            listen: addr,
            ..IntakeConfig::default()
        })
        .await
    }

    pub async fn start_with(cfg: IntakeConfig) -> std::io::Result<IntakeHandle> {
        let listener = bind(cfg.listen)?;
        let addr = listener.local_addr()?;
        let (down, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            received: Mutex::new(Received::default()),
            notify: Notify::new(),
            failure: Mutex::new(None),
            down,
            api_key: cfg.api_key,
        });
        let mut router = Router::new().fallback(handle).with_state(shared.clone());
        if let Some(extra) = cfg.extra_routes {
            router = router.merge(extra);
        }
        let task = tokio::spawn(serve(shared.clone(), router, listener, addr));
        Ok(IntakeHandle {
            shared,
            addr,
            _task: Arc::new(TaskGuard(task)),
        })
    }
}

struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running intake; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct IntakeHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    _task: Arc<TaskGuard>,
}

impl IntakeHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the agent's `dd_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A copy of everything received.
    pub fn received(&self) -> Received {
        self.shared.received.lock().clone()
    }

    pub fn series(&self) -> Vec<ReceivedSeries> {
        self.shared.received.lock().series.clone()
    }

    pub fn sketches(&self) -> Vec<ReceivedSketch> {
        self.shared.received.lock().sketches.clone()
    }

    pub fn events(&self) -> Vec<Value> {
        self.shared.received.lock().events.clone()
    }

    pub fn service_checks(&self) -> Vec<Value> {
        self.shared.received.lock().service_checks.clone()
    }

    pub fn profiles(&self) -> Vec<ReceivedProfile> {
        self.shared.received.lock().profiles.clone()
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.received.lock().requests.clone()
    }

    /// Forgets everything received.
    pub fn clear(&self) {
        *self.shared.received.lock() = Received::default();
    }

    /// Makes the intake misbehave; replaces any previous failure.
    pub fn set_failure(&self, failure: Failure, times: Times) {
        self.shared.set_failure(failure, times);
    }

    /// Back to normal (and listening again if down).
    pub fn clear_failure(&self) {
        self.shared.clear_failure();
    }

    /// Waits until `pred` holds for what was received, or `timeout`; returns whether it held.
    pub async fn wait_for(&self, pred: impl Fn(&Received) -> bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(&self.shared.received.lock()) {
                return true;
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return pred(&self.shared.received.lock()),
            }
        }
    }
}

impl Shared {
    fn record(&self, f: impl FnOnce(&mut Received)) {
        f(&mut self.received.lock());
        self.notify.notify_waiters();
    }
}
