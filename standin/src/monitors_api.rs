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
//! Tests drive it through [`MonitorsApi::start`]'s handle: `insert_raw` plays an edit in the Datadog UI,
//! `fail_next` injects errors, `fail_after_apply` applies a request and then loses its answer (a 5xx, or the
//! connection dropped), `request_log` shows what kelpie sent.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
}

/// One rate-limit bucket: `limit` requests per calendar-aligned window of `period` seconds.
struct Bucket {
    name: String,
    /// Methods it covers; empty: all.
    methods: Vec<String>,
    limit: u64,
    period: u64,
    window: u64,
    count: u64,
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
            }),
        }
    }
}

impl MonitorsState {
    /// See [`MonitorsApiHandle::set_rate_limit`].
    pub fn set_rate_limit(&self, limit: u64, period: Duration) {
        self.inner.lock().buckets.clear();
        self.add_rate_limit("monitors", &[], limit, period);
    }
    /// See [`MonitorsApiHandle::add_rate_limit`].
    pub fn add_rate_limit(&self, name: &str, methods: &[&str], limit: u64, period: Duration) {
        self.inner.lock().buckets.push(Bucket {
            name: name.to_string(),
            methods: methods.iter().map(|m| m.to_uppercase()).collect(),
            limit,
            period: period.as_secs().max(1),
            window: 0,
            count: 0,
        });
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
    pub fn insert_raw(&self, mut m: Value) -> i64 {
        let mut inner = self.state.inner.lock();
        let id = match m.get("id").and_then(Value::as_i64) {
            Some(id) => id,
            None => {
                inner.next_id += 1;
                inner.next_id
            }
        };
        let created = inner
            .monitors
            .get(&id)
            .and_then(|o| o.get("created").cloned());
        normalize(&mut m);
        server_fields(&mut m, id, created);
        inner.monitors.insert(id, m);
        id
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
        self.push_fail(path, status, n, false);
    }
    /// Applies the next `n` requests to `path` (as [`Self::fail_next`]) and then loses their answers: the
    /// client gets `status` (a 5xx from a proxy that timed out) or, with `status` 0, a dropped connection,
    /// although the change was made.
    pub fn fail_after_apply(&self, path: &str, status: u16, n: u32) {
        self.push_fail(path, status, n, true);
    }
    fn push_fail(&self, path: &str, status: u16, n: u32, after_apply: bool) {
        let (method, path) = match path.split_once(' ') {
            Some((m, p)) => (Some(m.to_uppercase()), p.to_string()),
            None => (None, path.to_string()),
        };
        self.state.inner.lock().fails.push(Fail {
            method,
            path,
            status,
            left: n,
            after_apply,
        });
    }
}

/// The stand-in on its own: every path goes to the Monitors API (unknown ones answer its JSON 404).
pub fn router(state: Arc<MonitorsState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// Only the Monitors API's paths (`/api/v1/monitor`, `/api/v1/monitor/...`), without a fallback, so it can be
/// merged into the intake stand-in's router (axum refuses to merge two routers that both have a fallback).
pub fn routes(state: Arc<MonitorsState>) -> Router {
    Router::new()
        .route("/api/v1/monitor", axum::routing::any(handle))
        .route("/api/v1/monitor/{*rest}", axum::routing::any(handle))
        .with_state(state)
}

fn err(status: StatusCode, msg: &str) -> (StatusCode, Value) {
    (status, json!({ "errors": [msg] }))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

async fn handle(
    State(state): State<Arc<MonitorsState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let mut inner = state.inner.lock();
    let mut rate_headers: Vec<(&'static str, String)> = Vec::new();
    let answer = 'answer: {
        let key = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| !v.trim().is_empty())
        };
        if !key("dd-api-key") || !key("dd-application-key") {
            break 'answer Answer::Json(
                StatusCode::FORBIDDEN,
                err(StatusCode::FORBIDDEN, "Forbidden").1,
            );
        }
        let m = method.as_str().to_string();
        if let Some(b) = inner
            .buckets
            .iter_mut()
            .find(|b| b.methods.is_empty() || b.methods.contains(&m))
        {
            // Windows are aligned to the calendar: window n covers [n·period, (n+1)·period) since the epoch.
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            let window = (now / b.period as f64).floor() as u64;
            if window != b.window {
                b.window = window;
                b.count = 0;
            }
            b.count += 1;
            let left = (window + 1) as f64 * b.period as f64 - now;
            rate_headers.push(("x-ratelimit-limit", b.limit.to_string()));
            rate_headers.push(("x-ratelimit-period", b.period.to_string()));
            rate_headers.push((
                "x-ratelimit-remaining",
                b.limit.saturating_sub(b.count).to_string(),
            ));
            // Whole seconds, rounded down, as Datadog sends it.
            rate_headers.push(("x-ratelimit-reset", (left.max(0.0) as u64).to_string()));
            rate_headers.push(("x-ratelimit-name", b.name.clone()));
            if b.count > b.limit {
                let (limit, period) = (b.limit, b.period);
                break 'answer Answer::Json(
                    StatusCode::TOO_MANY_REQUESTS,
                    err(
                        StatusCode::TOO_MANY_REQUESTS,
                        &format!("Rate limit of {limit} requests in {period} seconds reached. Please try again later."),
                    )
                    .1,
                );
            }
        }
        let fail = inner
            .fails
            .iter_mut()
            .find(|f| f.left > 0 && f.path == path && f.method.as_ref().is_none_or(|fm| *fm == m))
            .map(|f| {
                f.left -= 1;
                (f.status, f.after_apply)
            });
        match fail {
            Some((status, false)) => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Answer::Json(
                    status,
                    err(status, status.canonical_reason().unwrap_or("Error")).1,
                )
            }
            Some((status, true)) => {
                let _applied = route(&mut inner, &method, &path, &parse_query(&query), &body);
                match StatusCode::from_u16(status) {
                    Ok(status) if status != StatusCode::OK => Answer::Json(
                        status,
                        err(status, status.canonical_reason().unwrap_or("Error")).1,
                    ),
                    _ => Answer::Drop,
                }
            }
            None => {
                let (status, json) = route(&mut inner, &method, &path, &parse_query(&query), &body);
                Answer::Json(status, json)
            }
        }
    };
    let logged_status = match &answer {
        Answer::Json(status, _) => status.as_u16(),
        Answer::Drop => 0,
    };
    if inner.log.len() < MAX_LOG {
        inner.log.push(LogEntry {
            method: method.to_string(),
            path,
            query,
            status: logged_status,
        });
    }
    drop(inner);
    let mut resp = match answer {
        Answer::Json(status, json) => (status, axum::Json(json)).into_response(),
        Answer::Drop => {
            // The body fails at once: the server aborts the connection, so the client gets no answer.
            let body = axum::body::Body::from_stream(futures::stream::once(async {
                Err::<Bytes, _>(std::io::Error::other("answer lost"))
            }));
            (StatusCode::OK, body).into_response()
        }
    };
    for (k, v) in rate_headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

fn route(
    inner: &mut Inner,
    method: &Method,
    path: &str,
    q: &BTreeMap<String, String>,
    body: &[u8],
) -> (StatusCode, Value) {
    let rest = match path.strip_prefix("/api/v1/monitor") {
        Some(r) => r,
        None => return err(StatusCode::NOT_FOUND, "Not found"),
    };
    let parse_body = || -> Result<Value, (StatusCode, Value)> {
        match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(err(StatusCode::BAD_REQUEST, "Invalid JSON in request body")),
        }
    };
    match (method.as_str(), rest) {
        ("GET", "") | ("GET", "/") => list(inner, q),
        ("POST", "") | ("POST", "/") => {
            let mut m = match parse_body() {
                Ok(m) => m,
                Err(e) => return e,
            };
            if let Err(e) = validate(&m) {
                return err(StatusCode::BAD_REQUEST, &e);
            }
            inner.next_id += 1;
            let id = inner.next_id;
            normalize(&mut m);
            server_fields(&mut m, id, None);
            inner.monitors.insert(id, m.clone());
            (StatusCode::OK, m)
        }
        ("POST", "/validate") => match parse_body() {
            Err(e) => e,
            Ok(m) => match validate(&m) {
                Ok(()) => (StatusCode::OK, json!({})),
                Err(e) => err(StatusCode::BAD_REQUEST, &e),
            },
        },
        ("GET", "/can_delete") => can_delete(inner, q),
        ("GET", "/search") => search(inner, q),
        (_, r) => {
            let Some(id) = r.strip_prefix('/').and_then(|s| s.parse::<i64>().ok()) else {
                return err(StatusCode::NOT_FOUND, "Not found");
            };
            let Some(existing) = inner.monitors.get(&id).cloned() else {
                return err(StatusCode::NOT_FOUND, "Monitor not found");
            };
            match method.as_str() {
                "GET" => (StatusCode::OK, existing),
                "PUT" => {
                    let patch = match parse_body() {
                        Ok(m) => m,
                        Err(e) => return e,
                    };
                    let mut m = existing.clone();
                    if let (Some(o), Some(p)) = (m.as_object_mut(), patch.as_object()) {
                        for (k, v) in p {
                            if ["id", "created", "creator", "org_id", "overall_state"]
                                .contains(&k.as_str())
                            {
                                continue;
                            }
                            o.insert(k.clone(), v.clone());
                        }
                    }
                    let old_t =
                        canon_type(existing.get("type").and_then(Value::as_str).unwrap_or(""));
                    let new_t = canon_type(m.get("type").and_then(Value::as_str).unwrap_or(""));
                    if old_t != new_t {
                        return err(StatusCode::BAD_REQUEST, "The value provided for parameter 'type' is invalid: a monitor's type cannot be changed");
                    }
                    if let Err(e) = validate(&m) {
                        return err(StatusCode::BAD_REQUEST, &e);
                    }
                    normalize(&mut m);
                    server_fields(&mut m, id, existing.get("created").cloned());
                    inner.monitors.insert(id, m.clone());
                    (StatusCode::OK, m)
                }
                "DELETE" => {
                    let force = q.get("force").is_some_and(|v| v == "true");
                    if let Some(refs) = referenced_by(inner, id).filter(|_| !force) {
                        return err(StatusCode::BAD_REQUEST, &refs);
                    }
                    inner.monitors.remove(&id);
                    (StatusCode::OK, json!({ "deleted_monitor_id": id }))
                }
                _ => err(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
            }
        }
    }
}

fn tags_of(m: &Value) -> Vec<String> {
    m.get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn list(inner: &Inner, q: &BTreeMap<String, String>) -> (StatusCode, Value) {
    let want_tags: Vec<&str> = q
        .get("monitor_tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let name = q.get("name").map(|n| n.to_lowercase());
    let mut items: Vec<&Value> = inner
        .monitors
        .values()
        .filter(|m| {
            let tags = tags_of(m);
            want_tags.iter().all(|w| tags.iter().any(|t| t == w))
        })
        .filter(|m| match &name {
            Some(n) => m
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|s| s.to_lowercase().contains(n)),
            None => true,
        })
        .collect();
    if let Some(off) = q.get("id_offset").and_then(|s| s.parse::<i64>().ok()) {
        items.retain(|m| m.get("id").and_then(Value::as_i64).is_some_and(|i| i > off));
    }
    if let Some(page) = q.get("page") {
        let Ok(page) = page.parse::<usize>() else {
            return err(
                StatusCode::BAD_REQUEST,
                "The value provided for parameter 'page' is invalid",
            );
        };
        let size = match q.get("page_size").map(|s| s.parse::<usize>()) {
            None => 100,
            Some(Ok(s)) if (1..=MAX_PAGE_SIZE).contains(&s) => s,
            Some(_) => return err(StatusCode::BAD_REQUEST, "The value provided for parameter 'page_size' is invalid: it must be between 1 and 1000"),
        };
        items = items
            .into_iter()
            .skip(page.saturating_mul(size))
            .take(size)
            .collect();
    }
    (
        StatusCode::OK,
        Value::Array(items.into_iter().cloned().collect()),
    )
}

/// `GET /api/v1/monitor/search`: `query` terms `tag:"k:v"` (or `tag:k:v`) must all match, other words match
/// the name (case-insensitive); the answer holds `monitors` (summaries), `metadata` (`page`, `page_count`,
/// `per_page`, `total_count`) and `counts`, as Datadog's.
fn search(inner: &Inner, q: &BTreeMap<String, String>) -> (StatusCode, Value) {
    let query = q.get("query").cloned().unwrap_or_default();
    let mut tags = Vec::new();
    let mut words = Vec::new();
    for term in query.split_whitespace() {
        match term.strip_prefix("tag:") {
            Some(t) => tags.push(t.trim_matches('"').to_string()),
            None => words.push(term.trim_matches('"').to_lowercase()),
        }
    }
    let per_page = match q.get("per_page").map(|s| s.parse::<usize>()) {
        None => 30,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return err(
                StatusCode::BAD_REQUEST,
                "The value provided for parameter 'per_page' is invalid",
            )
        }
    };
    let page = match q.get("page").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return err(
                StatusCode::BAD_REQUEST,
                "The value provided for parameter 'page' is invalid",
            )
        }
    };
    let found: Vec<&Value> = inner
        .monitors
        .values()
        .filter(|m| {
            let mt = tags_of(m);
            tags.iter().all(|t| mt.iter().any(|x| x == t))
        })
        .filter(|m| {
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase();
            words.iter().all(|w| name.contains(w.as_str()))
        })
        .collect();
    let total = found.len();
    let monitors: Vec<Value> = found
        .iter()
        .skip(page.saturating_mul(per_page))
        .take(per_page)
        .map(|m| {
            json!({
                "id": m.get("id"),
                "name": m.get("name"),
                "tags": m.get("tags"),
                "type": m.get("type"),
                "query": m.get("query"),
                "status": m.get("overall_state"),
            })
        })
        .collect();
    (
        StatusCode::OK,
        json!({
            "counts": {"status": [], "muted": [], "tag": [], "type": []},
            "metadata": {"page": page, "page_count": total.div_ceil(per_page), "per_page": per_page, "total_count": total},
            "monitors": monitors,
        }),
    )
}

fn referenced_by(inner: &Inner, id: i64) -> Option<String> {
    let needle = id.to_string();
    let refs: Vec<String> = inner
        .monitors
        .iter()
        .filter(|(other, m)| {
            **other != id
                && m.get("type").and_then(Value::as_str) == Some("composite")
                && m.get("query").and_then(Value::as_str).is_some_and(|q| {
                    q.split(|c: char| !c.is_ascii_digit())
                        .any(|tok| tok == needle)
                })
        })
        .map(|(o, _)| o.to_string())
        .collect();
    (!refs.is_empty()).then(|| {
        format!(
            "monitor [{id},] is referenced in composite monitors: [{}]",
            refs.join(", ")
        )
    })
}

fn can_delete(inner: &Inner, q: &BTreeMap<String, String>) -> (StatusCode, Value) {
    let Some(ids) = q.get("monitor_ids") else {
        return err(
            StatusCode::BAD_REQUEST,
            "The value provided for parameter 'monitor_ids' is invalid",
        );
    };
    let mut ok = Vec::new();
    let mut errors = Map::new();
    for s in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Ok(id) = s.parse::<i64>() else {
            return err(
                StatusCode::BAD_REQUEST,
                "The value provided for parameter 'monitor_ids' is invalid",
            );
        };
        if !inner.monitors.contains_key(&id) {
            errors.insert(id.to_string(), json!(["Monitor not found"]));
        } else if let Some(why) = referenced_by(inner, id) {
            errors.insert(id.to_string(), json!([why]));
        } else {
            ok.push(id);
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    let errors = if errors.is_empty() {
        Value::Null
    } else {
        Value::Object(errors)
    };
    (status, json!({ "data": { "ok": ok }, "errors": errors }))
}

fn canon_type(t: &str) -> &str {
    match t.trim() {
        "metric alert" => "query alert",
        other => other,
    }
}

/// Python's float repr, which Datadog's error texts use (`50.0`, `0.25`).
fn py_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// Checks a metric query's shape; returns the comparator and threshold.
fn check_metric_query(q: &str) -> Option<(String, f64)> {
    let q = q.trim();
    let open = q.find('(')?;
    let aggr = &q[..open];
    if ![
        "avg",
        "sum",
        "min",
        "max",
        "change",
        "pct_change",
        "percentile",
    ]
    .iter()
    .any(|a| aggr.starts_with(a))
    {
        return None;
    }
    // The head's parentheses may nest: change(max(last_5m),last_5m).
    let mut depth = 0;
    let close = open
        + q[open..].find(|c| {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            depth == 0
        })?;
    let args = &q[open + 1..close];
    let window = match args.split_once('(') {
        Some((_, inner)) => inner.split(')').next()?,
        None => args,
    };
    let w = window
        .strip_prefix("last_")
        .or_else(|| window.strip_prefix("next_"))?;
    let unit_len = w.chars().next_back()?.len_utf8();
    let (n, unit) = w.split_at(w.len() - unit_len);
    n.parse::<u32>().ok().filter(|n| *n > 0)?;
    if !["m", "h", "d", "w"].contains(&unit) {
        return None;
    }
    let rest = q[close + 1..].strip_prefix(':')?;
    if !rest.contains('{') || rest.matches('{').count() != rest.matches('}').count() {
        return None;
    }
    for op in [">=", "<=", ">", "<", "==", "!="] {
        if let Some(i) = rest.rfind(op) {
            if rest[..i].matches('{').count() != rest[..i].matches('}').count() {
                continue;
            }
            let thr = rest[i + op.len()..].trim().parse::<f64>().ok()?;
            let expr = rest[..i].trim();
            if expr.is_empty() || !expr.contains(':') {
                return None;
            }
            return Some((op.to_string(), thr));
        }
    }
    None
}

fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Datadog's validation of a create/update body, with its error texts.
fn validate(m: &Value) -> Result<(), String> {
    let s = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("")
    };
    let t = s("type");
    const TYPES: &[&str] = &[
        "metric alert",
        "query alert",
        "service check",
        "event alert",
        "event-v2 alert",
        "log alert",
        "process alert",
        "rum alert",
        "trace-analytics alert",
        "slo alert",
        "composite",
        "audit alert",
        "ci-pipelines alert",
        "ci-tests alert",
        "error-tracking alert",
        "database-monitoring alert",
        "network-performance alert",
        "synthetics alert",
        "cost alert",
    ];
    if !TYPES.contains(&t) {
        return Err("The value provided for parameter 'type' is invalid".into());
    }
    if s("query").is_empty() {
        return Err("The value provided for parameter 'query' is invalid".into());
    }
    if m.get("name").is_some_and(|n| !n.is_string()) {
        return Err("The value provided for parameter 'name' is invalid".into());
    }
    if let Some(p) = m.get("priority").filter(|p| !p.is_null()) {
        if !num(p).is_some_and(|p| (1.0..=5.0).contains(&p) && p.fract() == 0.0) {
            return Err("The value provided for parameter 'priority' is invalid".into());
        }
    }
    let th = m.pointer("/options/thresholds").filter(|t| !t.is_null());
    if let Some(th) = th {
        let Some(o) = th.as_object() else {
            return Err("The value provided for parameter 'thresholds' is invalid".into());
        };
        if o.values().any(|v| !v.is_null() && num(v).is_none()) {
            return Err("The value provided for parameter 'thresholds' is invalid".into());
        }
    }
    if t == "metric alert" || t == "query alert" {
        let Some((op, qthr)) = check_metric_query(s("query")) else {
            return Err("The value provided for parameter 'query' is invalid".into());
        };
        let get = |k: &str| th.and_then(|t| t.get(k)).and_then(num);
        let crit = get("critical");
        if crit.is_none()
            && th
                .and_then(Value::as_object)
                .is_some_and(|o| o.values().any(|v| !v.is_null()))
        {
            return Err("Alert status is required.".into());
        }
        if let Some(c) = crit {
            if c != qthr {
                return Err(format!(
                    "Alert threshold ({}) does not match that used in the query ({}).",
                    py_float(c),
                    py_float(qthr)
                ));
            }
            if let Some(w) = get("warning") {
                let up = op.starts_with('>');
                if up && w >= c {
                    return Err(format!(
                        "Warning threshold ({}) must be less than the alert threshold ({}).",
                        py_float(w),
                        py_float(c)
                    ));
                }
                if !up && w <= c {
                    return Err(format!(
                        "Warning threshold ({}) must be greater than the alert threshold ({}).",
                        py_float(w),
                        py_float(c)
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Datadog's normalization of a stored monitor.
fn normalize(m: &mut Value) {
    let Some(o) = m.as_object_mut() else { return };
    for k in ["name", "message", "query"] {
        if let Some(Value::String(s)) = o.get_mut(k) {
            *s = s.trim().to_string();
        }
    }
    if o.get("type").and_then(Value::as_str) == Some("metric alert") {
        o.insert("type".into(), Value::from("query alert"));
    }
    let mut tags: Vec<String> = o
        .get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(|s| s.trim().to_string()))
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags.dedup();
    o.insert("tags".into(), Value::from(tags));
    if let Some(Value::String(p)) = o.get("priority") {
        let p = p.trim().parse::<i64>().ok();
        o.insert("priority".into(), p.map(Value::from).unwrap_or(Value::Null));
    }
    let mut opts = match o.remove("options") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for (k, v) in [
        ("notify_audit", Value::Bool(false)),
        ("include_tags", Value::Bool(true)),
        ("new_host_delay", json!(300)),
        ("notify_no_data", Value::Bool(false)),
        ("require_full_window", Value::Bool(true)),
        ("renotify_interval", Value::Null),
        ("timeout_h", Value::Null),
        ("no_data_timeframe", Value::Null),
        ("escalation_message", Value::from("")),
        ("locked", Value::Bool(false)),
        ("silenced", json!({})),
    ] {
        match opts.get(k) {
            None | Some(Value::Null) => {
                opts.insert(k.to_string(), v);
            }
            _ => {}
        }
    }
    if let Some(Value::String(s)) = opts.get_mut("escalation_message") {
        *s = s.trim().to_string();
    }
    if let Some(Value::Object(th)) = opts.get_mut("thresholds") {
        for v in th.values_mut() {
            if let Some(f) = num(v) {
                *v = json!(f);
            }
        }
    }
    o.insert("options".into(), Value::Object(opts));
}

fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

fn server_fields(m: &mut Value, id: i64, created: Option<Value>) {
    let Some(o) = m.as_object_mut() else { return };
    let now = Value::from(rfc3339(SystemTime::now()));
    o.insert("id".into(), Value::from(id));
    o.insert("org_id".into(), Value::from(2));
    o.insert("created".into(), created.unwrap_or_else(|| now.clone()));
    o.insert("modified".into(), now);
    o.insert("deleted".into(), Value::Null);
    o.insert(
        "creator".into(),
        json!({"email": "ci@example.com", "handle": "ci@example.com", "name": "CI", "id": 1}),
    );
    o.entry("overall_state").or_insert(Value::from("No Data"));
    o.insert("overall_state_modified".into(), Value::Null);
    o.entry("priority").or_insert(Value::Null);
    o.entry("restricted_roles").or_insert(Value::Null);
    o.entry("message").or_insert(Value::from(""));
    o.entry("name").or_insert(Value::from(""));
    let multi = o
        .get("query")
        .and_then(Value::as_str)
        .is_some_and(|q| q.contains(" by "));
    o.insert("multi".into(), Value::Bool(multi));
    // Datadog keeps a draft a draft; "published" is only the default.
    o.entry("draft_status").or_insert(Value::from("published"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datadog_error_texts() {
        let m = json!({"type": "metric alert", "query": "avg(last_5m):avg:a{*} > 50", "options": {"thresholds": {"critical": 40}}});
        assert_eq!(
            validate(&m).unwrap_err(),
            "Alert threshold (40.0) does not match that used in the query (50.0)."
        );
        let m = json!({"type": "metric alert", "query": "avg(last_5m):avg:a{*} > 50", "options": {"thresholds": {"critical": 50, "warning": 60}}});
        assert_eq!(
            validate(&m).unwrap_err(),
            "Warning threshold (60.0) must be less than the alert threshold (50.0)."
        );
        let m = json!({"type": "metric alert", "query": "avg(last_5m):avg:a{*} > 50", "options": {"thresholds": {"warning": 10}}});
        assert_eq!(validate(&m).unwrap_err(), "Alert status is required.");
        let m = json!({"type": "metric alert", "query": "avg:a{*} > 50"});
        assert_eq!(
            validate(&m).unwrap_err(),
            "The value provided for parameter 'query' is invalid"
        );
        let m = json!({"type": "query alert", "query": "sum(last_1h):sum:a{x:y}.as_count() / sum:b{*}.as_count() >= 0.5"});
        assert!(validate(&m).is_ok());
    }

    #[test]
    fn normalization() {
        let mut m = json!({"type": "metric alert", "name": " n ", "tags": ["b", "a", "a"], "options": {"thresholds": {"critical": 5}}});
        normalize(&mut m);
        assert_eq!(m["type"], "query alert");
        assert_eq!(m["name"], "n");
        assert_eq!(m["tags"], json!(["a", "b"]));
        assert_eq!(m["options"]["thresholds"]["critical"], json!(5.0));
        assert_eq!(m["options"]["new_host_delay"], json!(300));
        assert_eq!(m["options"]["include_tags"], json!(true));
        assert!(rfc3339(UNIX_EPOCH + Duration::from_secs(86_400 * 365))
            .starts_with("1971-01-01T00:00:00"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("managed-by%3Akelpie%2Ca+b"),
            "managed-by:kelpie,a b"
        );
        assert_eq!(percent_decode("100%"), "100%");
    }
}
