//! A client of Datadog's Monitors API v1 that keeps to the account's rate limits: at most 4 requests in
//! flight, `X-RateLimit-*` headers honoured per endpoint (a request waits for the window's reset when the
//! remaining budget is spent), 429 waits for the reset and retries, 5xx and network errors are retried with
//! backoff.

use reqwest::{Method, StatusCode};
use serde_json::Value as J;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Semaphore};

/// At most this many requests in flight (SPEC §6.4).
pub const MAX_IN_FLIGHT: usize = 4;
/// Page size of list requests (the API's maximum).
pub const PAGE_SIZE: usize = 1000;
const MAX_ATTEMPTS: u32 = 6;
const MAX_RATE_LIMIT_WAITS: u32 = 100;
const MAX_PAGES: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Config(String),
    #[error("{method} {path} failed with HTTP {status}: {message}")]
    Http {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("{method} {path} failed: {message}")]
    Network {
        method: String,
        path: String,
        message: String,
    },
}

impl ApiError {
    /// The API's own error text, when it gave one.
    pub fn api_message(&self) -> String {
        match self {
            ApiError::Http { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

#[derive(Default)]
struct Gate {
    remaining: Option<i64>,
    reset_at: Option<Instant>,
}

/// Counters of what the client did (for reports and tests).
#[derive(Default, Debug)]
pub struct Stats {
    pub requests: AtomicU64,
    pub writes: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: String,
    app_key: String,
    sem: Semaphore,
    gates: Mutex<HashMap<&'static str, Gate>>,
    pub stats: Arc<Stats>,
}

/// Where the API is: `DD_HOST` overrides, else `https://api.<DD_SITE>`.
pub fn base_url_from_env() -> String {
    match std::env::var("DD_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
    {
        Some(h) => {
            let h = h.trim().trim_end_matches('/');
            if h.starts_with("http://") || h.starts_with("https://") {
                h.to_string()
            } else {
                format!("https://{h}")
            }
        }
        None => {
            let site = std::env::var("DD_SITE")
                .ok()
                .filter(|s| !s.trim().is_empty());
            format!(
                "https://api.{}",
                site.as_deref().unwrap_or("datadoghq.com").trim()
            )
        }
    }
}

fn error_text(body: &J) -> String {
    match body.get("errors") {
        Some(J::Array(a)) => a
            .iter()
            .map(|e| {
                e.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string())
            })
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) if !other.is_null() => other.to_string(),
        _ => body.to_string(),
    }
}

fn header_num(h: &reqwest::header::HeaderMap, name: &str) -> Option<f64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

impl Client {
    /// A client configured from `DD_API_KEY`, `DD_APP_KEY` (or `DD_APPLICATION_KEY`), `DD_SITE`, `DD_HOST`.
    pub fn from_env() -> Result<Client, ApiError> {
        let api_key = std::env::var("DD_API_KEY").unwrap_or_default();
        let app_key = std::env::var("DD_APP_KEY")
            .or_else(|_| std::env::var("DD_APPLICATION_KEY"))
            .unwrap_or_default();
        if api_key.trim().is_empty() || app_key.trim().is_empty() {
            return Err(ApiError::Config(
                "DD_API_KEY and DD_APP_KEY must be set to talk to the Datadog API".into(),
            ));
        }
        Client::new(&base_url_from_env(), api_key.trim(), app_key.trim())
    }

    pub fn new(base: &str, api_key: &str, app_key: &str) -> Result<Client, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("kelpie-monitors/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            api_key: api_key.to_string(),
            app_key: app_key.to_string(),
            sem: Semaphore::new(MAX_IN_FLIGHT),
            gates: Mutex::new(HashMap::new()),
            stats: Arc::new(Stats::default()),
        })
    }

    async fn wait_gate(&self, class: &'static str) {
        loop {
            let wait = {
                let mut gates = self.gates.lock().await;
                let g = gates.entry(class).or_default();
                let now = Instant::now();
                match (g.remaining, g.reset_at) {
                    (Some(r), Some(at)) if r <= 0 && at > now => Some(at - now),
                    (_, Some(at)) if at <= now => {
                        // A new window: the budget is unknown until the next response says it.
                        g.remaining = None;
                        g.reset_at = None;
                        None
                    }
                    _ => {
                        if let Some(r) = g.remaining.as_mut() {
                            *r -= 1;
                        }
                        None
                    }
                }
            };
            match wait {
                Some(d) => {
                    tracing::debug!(
                        class,
                        wait_ms = d.as_millis() as u64,
                        "rate limit budget spent, waiting"
                    );
                    tokio::time::sleep(d).await
                }
                None => return,
            }
        }
    }

    async fn note_headers(
        &self,
        class: &'static str,
        h: &reqwest::header::HeaderMap,
        limited: bool,
    ) {
        let remaining = header_num(h, "x-ratelimit-remaining");
        let reset = header_num(h, "x-ratelimit-reset").or_else(|| header_num(h, "retry-after"));
        let mut gates = self.gates.lock().await;
        let g = gates.entry(class).or_default();
        if limited {
            g.remaining = Some(0);
            g.reset_at = Some(
                Instant::now() + Duration::from_secs_f64(reset.unwrap_or(1.0).clamp(0.05, 3600.0)),
            );
            return;
        }
        if let (Some(r), Some(s)) = (remaining, reset) {
            let at = Instant::now() + Duration::from_secs_f64(s.clamp(0.0, 3600.0));
            // Responses arrive out of order: keep the smallest budget seen in this window.
            let r = r as i64;
            g.remaining = Some(match g.remaining {
                Some(cur) if g.reset_at.is_some() => cur.min(r),
                _ => r,
            });
            g.reset_at = Some(at);
        }
    }

    /// Sends one request; a non-2xx final answer is an error carrying the API's error text.
    async fn send(
        &self,
        class: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&J>,
    ) -> Result<(StatusCode, J), ApiError> {
        let (status, json) = self
            .send_any(class, method.clone(), path, query, body)
            .await?;
        if status.is_success() {
            return Ok((status, json));
        }
        Err(ApiError::Http {
            method: method.to_string(),
            path: path.to_string(),
            status: status.as_u16(),
            message: error_text(&json),
        })
    }

    /// Sends one request with the rate-limit, retry and concurrency rules; returns the final status and JSON
    /// body, whatever the status.
    async fn send_any(
        &self,
        class: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&J>,
    ) -> Result<(StatusCode, J), ApiError> {
        let url = format!("{}{}", self.base, path);
        let mut attempts = 0u32;
        let mut limited = 0u32;
        loop {
            let permit = self
                .sem
                .acquire()
                .await
                .map_err(|_| ApiError::Config("client closed".into()))?;
            self.wait_gate(class).await;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("DD-API-KEY", &self.api_key)
                .header("DD-APPLICATION-KEY", &self.app_key)
                .header("Accept", "application/json");
            if !query.is_empty() {
                req = req.query(query);
            }
            if let Some(b) = body {
                req = req.json(b);
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            if method != Method::GET {
                self.stats.writes.fetch_add(1, Ordering::Relaxed);
            }
            let res = req.send().await;
            drop(permit);
            let net_err = |e: reqwest::Error| ApiError::Network {
                method: method.to_string(),
                path: path.to_string(),
                message: e.to_string(),
            };
            match res {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    self.note_headers(class, &headers, status == StatusCode::TOO_MANY_REQUESTS)
                        .await;
                    let bytes = resp.bytes().await.map_err(net_err)?;
                    let json: J = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                        J::String(String::from_utf8_lossy(&bytes).chars().take(200).collect())
                    });
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        limited += 1;
                        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                        if limited <= MAX_RATE_LIMIT_WAITS {
                            continue;
                        }
                    } else if status.is_server_error() && attempts + 1 < MAX_ATTEMPTS {
                        attempts += 1;
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff(attempts)).await;
                        continue;
                    }
                    return Ok((status, json));
                }
                Err(e) => {
                    if attempts + 1 < MAX_ATTEMPTS {
                        attempts += 1;
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff(attempts)).await;
                        continue;
                    }
                    return Err(net_err(e));
                }
            }
        }
    }

    /// Lists monitors, following pages (`page_size` 1000) until a short page.
    pub async fn list(
        &self,
        monitor_tags: Option<&str>,
        name: Option<&str>,
    ) -> Result<Vec<J>, ApiError> {
        let mut out = Vec::new();
        for page in 0..MAX_PAGES {
            let mut q = vec![
                ("page", page.to_string()),
                ("page_size", PAGE_SIZE.to_string()),
            ];
            if let Some(t) = monitor_tags.filter(|t| !t.is_empty()) {
                q.push(("monitor_tags", t.to_string()));
            }
            if let Some(n) = name.filter(|n| !n.is_empty()) {
                q.push(("name", n.to_string()));
            }
            let (_, body) = self
                .send("list", Method::GET, "/api/v1/monitor", &q, None)
                .await?;
            let items = match body {
                J::Array(a) => a,
                other => {
                    return Err(ApiError::Http {
                        method: "GET".into(),
                        path: "/api/v1/monitor".into(),
                        status: 200,
                        message: format!(
                            "expected a JSON array, got {}",
                            other.to_string().chars().take(80).collect::<String>()
                        ),
                    })
                }
            };
            let n = items.len();
            out.extend(items);
            if n < PAGE_SIZE {
                break;
            }
        }
        Ok(out)
    }

    pub async fn get(&self, id: i64) -> Result<J, ApiError> {
        Ok(self
            .send(
                "get",
                Method::GET,
                &format!("/api/v1/monitor/{id}"),
                &[],
                None,
            )
            .await?
            .1)
    }

    pub async fn create(&self, body: &J) -> Result<J, ApiError> {
        Ok(self
            .send("create", Method::POST, "/api/v1/monitor", &[], Some(body))
            .await?
            .1)
    }

    pub async fn update(&self, id: i64, body: &J) -> Result<J, ApiError> {
        Ok(self
            .send(
                "update",
                Method::PUT,
                &format!("/api/v1/monitor/{id}"),
                &[],
                Some(body),
            )
            .await?
            .1)
    }

    pub async fn delete(&self, id: i64, force: bool) -> Result<(), ApiError> {
        let q: Vec<(&str, String)> = if force {
            vec![("force", "true".into())]
        } else {
            vec![]
        };
        self.send(
            "delete",
            Method::DELETE,
            &format!("/api/v1/monitor/{id}"),
            &q,
            None,
        )
        .await
        .map(|_| ())
    }

    /// `POST /api/v1/monitor/validate`: Ok when the API accepts the monitor, else its error text.
    pub async fn validate(&self, body: &J) -> Result<Result<(), String>, ApiError> {
        match self
            .send(
                "validate",
                Method::POST,
                "/api/v1/monitor/validate",
                &[],
                Some(body),
            )
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(ApiError::Http {
                status: 400,
                message,
                ..
            }) => Ok(Err(message)),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v1/monitor/can_delete`: the ids that can be deleted and, for the others, why not.
    pub async fn can_delete(
        &self,
        ids: &[i64],
    ) -> Result<(Vec<i64>, BTreeMap<i64, String>), ApiError> {
        let mut ok = Vec::new();
        let mut errors = BTreeMap::new();
        for chunk in ids.chunks(100) {
            let list = chunk
                .iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(",");
            let q = vec![("monitor_ids", list)];
            let (status, body) = self
                .send_any(
                    "can_delete",
                    Method::GET,
                    "/api/v1/monitor/can_delete",
                    &q,
                    None,
                )
                .await?;
            if !(status.is_success() || status == StatusCode::CONFLICT) {
                return Err(ApiError::Http {
                    method: "GET".into(),
                    path: "/api/v1/monitor/can_delete".into(),
                    status: status.as_u16(),
                    message: error_text(&body),
                });
            }
            if let Some(a) = body.pointer("/data/ok").and_then(J::as_array) {
                ok.extend(a.iter().filter_map(J::as_i64));
            }
            if let Some(o) = body.get("errors").and_then(J::as_object) {
                for (k, v) in o {
                    if let Ok(id) = k.parse::<i64>() {
                        errors.insert(id, error_text(&serde_json::json!({"errors": v})));
                    }
                }
            }
        }
        Ok((ok, errors))
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5000))
}
