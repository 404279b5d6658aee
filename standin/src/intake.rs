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

mod proto;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use prost::Message;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
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

/// How the intake misbehaves.
#[derive(Clone, Debug, PartialEq)]
pub enum Failure {
    /// Answer this status (with a JSON error body) without accepting the data.
    Status(u16),
    /// Wait this long, then answer 503 without accepting the data (a hung intake).
    Stall(Duration),
    /// Close the connection without answering.
    Reset,
    /// Stop listening: connections are refused and open ones closed. `Times::Next` counts as `Always`.
    Down,
}

/// For how long a [`Failure`] lasts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Times {
    /// The next N requests.
    Next(usize),
    /// Until [`IntakeHandle::clear_failure`].
    Always,
    /// For this long from now.
    For(Duration),
}

/// JSON body of `POST /_standin/failure`: `{"kind":"status","status":500,"times":3}`,
/// `{"kind":"stall","ms":3000}`, `{"kind":"reset"}`, `{"kind":"down","for_ms":2000}`. Without `times` and
/// `for_ms` the failure lasts until `DELETE /_standin/failure`.
#[derive(Clone, Debug, Deserialize)]
pub struct FailureRequest {
    pub kind: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub ms: Option<u64>,
    #[serde(default)]
    pub times: Option<usize>,
    #[serde(default)]
    pub for_ms: Option<u64>,
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

struct ActiveFailure {
    failure: Failure,
    remaining: Option<usize>,
    until: Option<Instant>,
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
    fn set_failure(&self, failure: Failure, times: Times) {
        let until = match times {
            Times::For(d) => Some(Instant::now() + d),
            _ => None,
        };
        if failure == Failure::Down {
            *self.failure.lock() = None;
            let until =
                until.unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600));
            self.down.send_replace(Some(until));
            return;
        }
        let remaining = match times {
            Times::Next(0) => {
                *self.failure.lock() = None;
                return;
            }
            Times::Next(n) => Some(n),
            _ => None,
        };
        *self.failure.lock() = Some(ActiveFailure {
            failure,
            remaining,
            until,
        });
    }

    fn clear_failure(&self) {
        *self.failure.lock() = None;
        self.down.send_replace(None);
    }

    /// The failure to apply to this request, if any (consumes one of `Times::Next`).
    fn take_failure(&self) -> Option<Failure> {
        let mut guard = self.failure.lock();
        let active = guard.as_mut()?;
        if active.until.is_some_and(|u| Instant::now() >= u) {
            *guard = None;
            return None;
        }
        let f = active.failure.clone();
        if let Some(rem) = active.remaining.as_mut() {
            *rem = rem.saturating_sub(1);
            if *rem == 0 {
                *guard = None;
            }
        }
        Some(f)
    }

    fn record(&self, f: impl FnOnce(&mut Received)) {
        f(&mut self.received.lock());
        self.notify.notify_waiters();
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Marker put in each request's extensions: notifying it closes that request's connection at once.
#[derive(Clone)]
struct ConnKill(Arc<Notify>);

fn is_down(rx: &watch::Receiver<Option<Instant>>) -> bool {
    rx.borrow().is_some_and(|until| Instant::now() < until)
}

/// Accept loop with its own connection tasks, so that `Down` can really stop listening and close every open
/// connection, and `Reset` can close one connection without an answer.
async fn serve(shared: Arc<Shared>, router: Router, first: TcpListener, addr: SocketAddr) {
    let mut down_rx = shared.down.subscribe();
    let mut listener = Some(first);
    loop {
        let l = match listener.take() {
            Some(l) => l,
            None => match bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("intake stand-in cannot listen again on {addr}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let mut conns = JoinSet::new();
        while !is_down(&down_rx) {
            tokio::select! {
                accepted = l.accept() => match accepted {
                    Ok((stream, _)) => {
                        conns.spawn(serve_connection(stream, router.clone()));
                    }
                    Err(e) => {
                        tracing::warn!("intake stand-in accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                changed = down_rx.changed() => if changed.is_err() { return },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        // Down: refuse new connections and drop the open ones.
        conns.abort_all();
        drop(conns);
        drop(l);
        loop {
            let until = *down_rx.borrow_and_update();
            match until {
                None => break,
                Some(t) if Instant::now() >= t => {
                    shared.down.send_replace(None);
                    break;
                }
                Some(t) => tokio::select! {
                    _ = tokio::time::sleep_until(t) => {}
                    changed = down_rx.changed() => if changed.is_err() { return },
                },
            }
        }
    }
}

async fn serve_connection(stream: tokio::net::TcpStream, router: Router) {
    let kill = Arc::new(Notify::new());
    let kill_for_requests = kill.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(ConnKill(kill_for_requests.clone()));
            let router = router.clone();
            async move { tower::ServiceExt::oneshot(router, req).await }
        });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = &mut conn => {}
        _ = kill.notified() => {}
    }
}

fn answer(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

fn error(status: u16, msg: impl Into<String>) -> Response {
    answer(status, json!({ "errors": [msg.into()] }))
}

/// The one handler: routing by hand keeps failure injection, the API key check and request logging in one
/// place for every intake path.
async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    let headers = parts.headers.clone();
    let kill = parts.extensions.get::<ConnKill>().cloned();
    let body = match axum::body::to_bytes(Body::new(body), BODY_READ_CAP).await {
        Ok(b) => b,
        Err(_) => return error(413, "Payload too large"),
    };

    if path.starts_with("/_standin/") {
        return control(&shared, &method, &path, &body);
    }

    let response = match shared.take_failure() {
        Some(Failure::Status(code)) => error(code, format!("stand-in injected failure {code}")),
        Some(Failure::Stall(d)) => {
            tokio::time::sleep(d).await;
            error(503, "stand-in stalled")
        }
        Some(Failure::Reset) => {
            log_request(&shared, &method, &path, &headers, 0, body.len());
            if let Some(k) = kill {
                k.0.notify_one();
            }
            return std::future::pending().await;
        }
        Some(Failure::Down) | None => route(&shared, &method, &path, &headers, body.clone()).await,
    };
    log_request(
        &shared,
        &method,
        &path,
        &headers,
        response.status().as_u16(),
        body.len(),
    );
    response
}

fn log_request(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    status: u16,
    body_len: usize,
) {
    let headers = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let req = ReceivedRequest {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        status,
        body_len,
    };
    shared.record(|r| {
        if r.requests.len() < MAX_REQUESTS_KEPT {
            r.requests.push(req);
        } else {
            r.not_kept += 1;
        }
    });
}

fn control(shared: &Shared, method: &Method, path: &str, body: &[u8]) -> Response {
    match (method, path) {
        (&Method::GET, "/_standin/received") => {
            match serde_json::to_value(&*shared.received.lock()) {
                Ok(v) => answer(200, v),
                Err(e) => error(500, format!("cannot serialize what was received: {e}")),
            }
        }
        (&Method::POST, "/_standin/clear") => {
            *shared.received.lock() = Received::default();
            answer(200, json!({}))
        }
        (&Method::DELETE, "/_standin/failure") => {
            shared.clear_failure();
            answer(200, json!({}))
        }
        (&Method::POST, "/_standin/failure") => {
            let req: FailureRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return error(400, format!("invalid failure request: {e}")),
            };
            let failure = match req.kind.as_str() {
                "status" => Failure::Status(req.status.unwrap_or(500)),
                "stall" => Failure::Stall(Duration::from_millis(req.ms.unwrap_or(30_000))),
                "reset" => Failure::Reset,
                "down" => Failure::Down,
                other => {
                    return error(
                        400,
                        format!("unknown failure kind {other:?} (status, stall, reset, down)"),
                    )
                }
            };
            let times = match (req.times, req.for_ms) {
                (Some(n), _) => Times::Next(n),
                (None, Some(ms)) => Times::For(Duration::from_millis(ms)),
                (None, None) => Times::Always,
            };
            shared.set_failure(failure, times);
            answer(200, json!({}))
        }
        _ => error(404, "Not found"),
    }
}

fn api_key_ok(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(key) = headers.get("dd-api-key").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let key = key.trim();
    match &shared.api_key {
        Some(want) => key == want,
        None => !key.is_empty(),
    }
}

async fn route(
    shared: &Shared,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let known = matches!(
        (method, path),
        (&Method::POST, "/api/v2/series")
            | (&Method::POST, "/api/beta/sketches")
            | (&Method::POST, "/api/v1/events")
            | (&Method::POST, "/api/v1/check_run")
            | (&Method::POST, "/api/v2/profile")
            | (&Method::GET, "/api/v1/validate")
    );
    if !known {
        return error(404, "Not found");
    }
    if !api_key_ok(shared, headers) {
        return error(403, "Forbidden");
    }
    let result = match path {
        "/api/v1/validate" => Ok(answer(200, json!({ "valid": true }))),
        "/api/v2/series" => ingest_series(shared, headers, &body),
        "/api/beta/sketches" => ingest_sketches(shared, headers, &body),
        "/api/v1/events" => ingest_event(shared, headers, &body),
        "/api/v1/check_run" => ingest_checks(shared, headers, &body),
        _ => ingest_profile(shared, headers, body).await,
    };
    result.unwrap_or_else(|(status, msg)| error(status, msg))
}

type Refusal = (u16, String);

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
}

/// Media type without parameters, lower case.
fn media_type(headers: &HeaderMap) -> String {
    header(headers, "content-type")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Checks the size limits and undoes `Content-Encoding`.
fn decode_body(headers: &HeaderMap, body: &[u8], limits: Limits) -> Result<Vec<u8>, Refusal> {
    if body.len() > limits.max_compressed {
        return Err((
            413,
            format!(
                "Payload too large: {} bytes > {} bytes",
                body.len(),
                limits.max_compressed
            ),
        ));
    }
    let encoding = header(headers, "content-encoding").to_ascii_lowercase();
    let cap = limits.max_uncompressed as u64 + 1;
    let mut out = Vec::new();
    let res = match encoding.as_str() {
        "" | "identity" => {
            out.extend_from_slice(body);
            Ok(())
        }
        "zstd" => zstd::stream::read::Decoder::new(body)
            .and_then(|d| d.take(cap).read_to_end(&mut out).map(drop)),
        "gzip" => flate2::read::GzDecoder::new(body)
            .take(cap)
            .read_to_end(&mut out)
            .map(drop),
        "deflate" => {
            // HTTP's `deflate` is zlib-wrapped; some clients send raw deflate, which is accepted too.
            let r = flate2::read::ZlibDecoder::new(body)
                .take(cap)
                .read_to_end(&mut out)
                .map(drop);
            if r.is_err() {
                out.clear();
                flate2::read::DeflateDecoder::new(body)
                    .take(cap)
                    .read_to_end(&mut out)
                    .map(drop)
            } else {
                r
            }
        }
        other => return Err((415, format!("Unsupported Content-Encoding {other:?}"))),
    };
    if let Err(e) = res {
        return Err((400, format!("Invalid {encoding} body: {e}")));
    }
    if out.len() > limits.max_uncompressed {
        return Err((
            413,
            format!(
                "Payload too large once decompressed: more than {} bytes",
                limits.max_uncompressed
            ),
        ));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct JsonSeriesBody {
    series: Vec<JsonSeries>,
}

#[derive(Deserialize)]
struct JsonSeries {
    metric: String,
    #[serde(default, rename = "type")]
    kind: i32,
    points: Vec<JsonPoint>,
    #[serde(default)]
    resources: Vec<JsonResource>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    interval: i64,
    #[serde(default)]
    unit: String,
    #[serde(default)]
    source_type_name: String,
}

#[derive(Deserialize)]
struct JsonPoint {
    timestamp: i64,
    value: f64,
}

#[derive(Deserialize)]
struct JsonResource {
    name: String,
    #[serde(rename = "type")]
    kind: String,
}

fn host_of(resources: &[(String, String)]) -> Option<String> {
    resources
        .iter()
        .find(|(t, _)| t == "host")
        .map(|(_, n)| n.clone())
}

fn check_series(s: &ReceivedSeries) -> Result<(), Refusal> {
    if s.name.is_empty() {
        return Err((400, "series without a metric name".into()));
    }
    if !(0..=3).contains(&s.kind) {
        return Err((400, format!("series {}: invalid type {}", s.name, s.kind)));
    }
    Ok(())
}

fn ingest_series(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let raw = decode_body(headers, body, SERIES_LIMITS)?;
    let mut got = Vec::new();
    match media_type(headers).as_str() {
        "application/x-protobuf" => {
            let msg = proto::MetricPayload::decode(&raw[..])
                .map_err(|e| (400, format!("invalid MetricPayload protobuf: {e}")))?;
            for s in msg.series {
                let resources: Vec<(String, String)> = s
                    .resources
                    .into_iter()
                    .map(|r| (r.r#type, r.name))
                    .collect();
                got.push(ReceivedSeries {
                    host: host_of(&resources),
                    name: s.metric,
                    tags: s.tags,
                    kind: s.r#type,
                    interval: s.interval,
                    points: s.points.iter().map(|p| (p.timestamp, p.value)).collect(),
                    unit: s.unit,
                    source_type_name: s.source_type_name,
                    resources,
                    format: "protobuf",
                });
            }
        }
        "application/json" => {
            let msg: JsonSeriesBody = serde_json::from_slice(&raw)
                .map_err(|e| (400, format!("invalid v2 series JSON: {e}")))?;
            for s in msg.series {
                let resources: Vec<(String, String)> =
                    s.resources.into_iter().map(|r| (r.kind, r.name)).collect();
                got.push(ReceivedSeries {
                    host: host_of(&resources),
                    name: s.metric,
                    tags: s.tags,
                    kind: s.kind,
                    interval: s.interval,
                    points: s.points.iter().map(|p| (p.timestamp, p.value)).collect(),
                    unit: s.unit,
                    source_type_name: s.source_type_name,
                    resources,
                    format: "json",
                });
            }
        }
        other => {
            return Err((
                415,
                format!("Unsupported Content-Type {other:?} for series"),
            ))
        }
    }
    for s in &got {
        check_series(s)?;
    }
    shared.record(|r| keep(&mut r.series, got, &mut r.not_kept));
    Ok(answer(202, json!({ "errors": [] })))
}

fn keep<T>(into: &mut Vec<T>, items: Vec<T>, not_kept: &mut u64) {
    let room = MAX_KEPT.saturating_sub(into.len());
    let n = items.len();
    into.extend(items.into_iter().take(room));
    *not_kept += n.saturating_sub(room) as u64;
}

fn ingest_sketches(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let raw = decode_body(headers, body, SKETCH_LIMITS)?;
    if media_type(headers) != "application/x-protobuf" {
        return Err((415, "Sketches must be application/x-protobuf".into()));
    }
    let msg = proto::SketchPayload::decode(&raw[..])
        .map_err(|e| (400, format!("invalid SketchPayload protobuf: {e}")))?;
    let mut got = Vec::with_capacity(msg.sketches.len());
    for s in msg.sketches {
        if s.metric.is_empty() {
            return Err((400, "sketch without a metric name".into()));
        }
        for d in &s.dogsketches {
            if d.k.len() != d.n.len() {
                return Err((
                    400,
                    format!(
                        "sketch {}: {} keys but {} counts",
                        s.metric,
                        d.k.len(),
                        d.n.len()
                    ),
                ));
            }
        }
        got.push(ReceivedSketch {
            name: s.metric,
            host: s.host,
            tags: s.tags,
            legacy_distributions: s.distributions.len(),
            points: s
                .dogsketches
                .into_iter()
                .map(|d| ReceivedDogsketch {
                    ts: d.ts,
                    cnt: d.cnt,
                    min: d.min,
                    max: d.max,
                    avg: d.avg,
                    sum: d.sum,
                    k: d.k,
                    n: d.n,
                })
                .collect(),
        });
    }
    shared.record(|r| keep(&mut r.sketches, got, &mut r.not_kept));
    Ok(answer(202, json!({})))
}

fn parse_json(headers: &HeaderMap, body: &[u8], what: &str) -> Result<Value, Refusal> {
    let raw = decode_body(headers, body, SERIES_LIMITS)?;
    let mt = media_type(headers);
    if !mt.is_empty() && mt != "application/json" {
        return Err((415, format!("Unsupported Content-Type {mt:?} for {what}")));
    }
    serde_json::from_slice(&raw).map_err(|e| (400, format!("invalid {what} JSON: {e}")))
}

fn ingest_event(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let ev = parse_json(headers, body, "event")?;
    if ev.get("title").and_then(Value::as_str).is_none() {
        return Err((400, "event: title is required".into()));
    }
    if ev.get("text").and_then(Value::as_str).is_none() {
        return Err((400, "event: text is required".into()));
    }
    // Datadog documents title ≤ 100 and text ≤ 4000 characters but displays longer ones truncated rather than
    // refusing them; the stand-in keeps what was sent, so tests can check the agent respects the limits.
    if let Some(t) = ev.get("alert_type") {
        const ALERT_TYPES: &[&str] = &[
            "error",
            "warning",
            "info",
            "success",
            "user_update",
            "recommendation",
            "snapshot",
        ];
        if !t.as_str().is_some_and(|t| ALERT_TYPES.contains(&t)) {
            return Err((400, format!("event: invalid alert_type {t}")));
        }
    }
    if let Some(p) = ev.get("priority") {
        if !p.as_str().is_some_and(|p| p == "normal" || p == "low") {
            return Err((400, format!("event: invalid priority {p} (normal or low)")));
        }
    }
    if let Some(d) = ev.get("date_happened") {
        if !d.is_i64() {
            return Err((400, "event: date_happened must be an integer".into()));
        }
    }
    if let Some(tags) = ev.get("tags") {
        if !tags
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
        {
            return Err((400, "event: tags must be an array of strings".into()));
        }
    }
    let echo = ev.clone();
    shared.record(|r| keep(&mut r.events, vec![ev], &mut r.not_kept));
    Ok(answer(202, json!({ "status": "ok", "event": echo })))
}

fn ingest_checks(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Response, Refusal> {
    let v = parse_json(headers, body, "check_run")?;
    let Value::Array(checks) = v else {
        return Err((400, "check_run: the body must be a JSON array".into()));
    };
    for c in &checks {
        if c.get("check")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err((400, "check_run: check is required".into()));
        }
        if c.get("host_name").and_then(Value::as_str).is_none() {
            return Err((400, "check_run: host_name is required".into()));
        }
        if c.get("status")
            .and_then(Value::as_u64)
            .is_none_or(|s| s > 3)
        {
            return Err((400, "check_run: status must be 0, 1, 2 or 3".into()));
        }
    }
    shared.record(|r| keep(&mut r.service_checks, checks, &mut r.not_kept));
    Ok(answer(202, json!({ "status": "ok" })))
}

async fn ingest_profile(
    shared: &Shared,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let raw = Bytes::from(decode_body(headers, &body, PROFILE_LIMITS)?);
    let ct = header(headers, "content-type");
    let boundary = multer::parse_boundary(ct)
        .map_err(|e| (400, format!("profile: not multipart/form-data: {e}")))?;
    let stream = futures::stream::once(async move { Ok::<Bytes, std::convert::Infallible>(raw) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut parts = Vec::new();
    let mut event = None;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err((400, format!("profile: invalid multipart body: {e}"))),
        };
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|m| m.to_string());
        let data = field
            .bytes()
            .await
            .map_err(|e| (400, format!("profile: invalid multipart part: {e}")))?;
        if name == "event" {
            let v: Value = serde_json::from_slice(&data)
                .map_err(|e| (400, format!("profile: event part is not JSON: {e}")))?;
            if !v.is_object() {
                return Err((400, "profile: event part must be a JSON object".into()));
            }
            event = Some(v);
        }
        parts.push(ReceivedPart {
            name,
            filename,
            content_type,
            len: data.len(),
        });
    }
    let event = event.ok_or((
        400,
        "profile: an `event` part (event.json) is required".to_string(),
    ))?;
    shared.record(|r| {
        keep(
            &mut r.profiles,
            vec![ReceivedProfile { parts, event }],
            &mut r.not_kept,
        )
    });
    Ok(answer(202, json!({})))
}

#[cfg(test)]
mod tests;
