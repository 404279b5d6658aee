//! A client of Datadog's Monitors API v1 that keeps to the account's rate limits: at most 4 requests in
//! flight, a budget per rate-limit name from the `X-RateLimit-*` headers (see [`crate::ratelimit`]: no more
//! requests in a window than `Remaining` allows, in flight included, and a new window only once it has surely
//! begun), 429 waits for the reset and retries, 5xx and network errors are retried with backoff. A create
//! whose answer is lost is not simply sent again: [`Client::create_tagged`] first looks for the monitor by its
//! ownership tags.
//!
//! This file holds the client and how it sends a request; the typed endpoints are in `api/endpoints.rs`.

mod endpoints;

use crate::ratelimit::{Decision, Headers, LimitInfo, Limiter, Ticket};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{Notify, Semaphore};

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

/// Counters of what the client did (for reports and tests).
#[derive(Default, Debug)]
pub struct Stats {
    pub requests: AtomicU64,
    pub writes: AtomicU64,
    pub retries: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Creates whose answer was lost and that were then found by their tags instead of being sent again.
    pub found_after_lost_answer: AtomicU64,
}

/// The client is waiting for a rate-limit window to reset.
#[derive(Clone, Debug, PartialEq)]
pub struct RateWait {
    pub until: SystemTime,
    pub limit: LimitInfo,
}

/// A key as a header value that `Debug` output shows as `Sensitive` (a key a header cannot carry becomes a
/// placeholder, which the API refuses with 403).
fn secret_header(key: &str) -> reqwest::header::HeaderValue {
    let mut v = reqwest::header::HeaderValue::from_str(key)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static("invalid-key"));
    v.set_sensitive(true);
    v
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    api_key: String,
    app_key: String,
    sem: Semaphore,
    limiter: Mutex<Limiter>,
    answered: Notify,
    waiting: Mutex<Option<RateWait>>,
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

fn error_text(body: &Value) -> String {
    match body.get("errors") {
        Some(Value::Array(a)) => a
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
            limiter: Mutex::new(Limiter::default()),
            answered: Notify::new(),
            waiting: Mutex::new(None),
            stats: Arc::new(Stats::default()),
        })
    }

    /// What the client waits for, if it is waiting for a rate limit's window to reset.
    pub fn rate_wait(&self) -> Option<RateWait> {
        self.waiting.lock().map(|w| w.clone()).unwrap_or(None)
    }

    /// Waits until the rate limits allow one request of `class`.
    async fn acquire(&self, class: &'static str) -> Ticket {
        loop {
            let answered = self.answered.notified();
            tokio::pin!(answered);
            answered.as_mut().enable();
            let now = Instant::now();
            let (decision, ticket, info) = {
                let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
                let (d, t) = l.try_acquire(class, now);
                let info = match &d {
                    Decision::WaitUntil(_, name) => Some(l.info(name)),
                    _ => None,
                };
                (d, t, info)
            };
            match (decision, ticket) {
                (Decision::Go, Some(t)) => {
                    if let Ok(mut w) = self.waiting.lock() {
                        *w = None;
                    }
                    return t;
                }
                (Decision::WaitUntil(until, name), _) => {
                    let wait = until.saturating_duration_since(now);
                    tracing::debug!(
                        class,
                        name,
                        wait_ms = wait.as_millis() as u64,
                        "rate limit budget spent, waiting"
                    );
                    if let (Ok(mut w), Some(limit)) = (self.waiting.lock(), info) {
                        *w = Some(RateWait {
                            until: SystemTime::now() + wait,
                            limit,
                        });
                    }
                    tokio::time::sleep(wait).await;
                }
                _ => {
                    // Another request's answer will tell the budget; the timeout guards against a lost wake-up.
                    let _ = tokio::time::timeout(Duration::from_millis(250), answered).await;
                }
            }
        }
    }

    fn learn(&self, ticket: Ticket, headers: Option<(&reqwest::header::HeaderMap, bool)>) {
        {
            let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
            match headers {
                Some((h, limited)) => {
                    l.answered(ticket, &Headers::from_map(h), limited, Instant::now())
                }
                None => l.lost(ticket),
            }
        }
        self.answered.notify_waiters();
    }

    /// Sends one request; a non-2xx final answer is an error carrying the API's error text.
    async fn send(
        &self,
        class: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), ApiError> {
        self.send_checked(class, method, path, query, body, true)
            .await
    }

    /// As [`Self::send`]; with `idempotent` false a 5xx or a network error is returned, not retried.
    async fn send_checked(
        &self,
        class: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<(StatusCode, Value), ApiError> {
        let (status, json) = self
            .send_any(class, method.clone(), path, query, body, idempotent)
            .await?;
        if status.is_success() {
            return Ok((status, json));
        }
        Err(self.http_error(method.as_str(), path, status, &json))
    }

    /// The error for a final answer `status` with `body`; a refusal of the keys (401, 403) says what to check.
    fn http_error(&self, method: &str, path: &str, status: StatusCode, body: &Value) -> ApiError {
        let mut message = error_text(body);
        if matches!(status.as_u16(), 401 | 403) {
            message = format!(
                "{message} (check that DD_API_KEY and DD_APP_KEY are keys of the account at {} and that the \
                 application key may read and write monitors)",
                self.base
            );
        }
        ApiError::Http {
            method: method.to_string(),
            path: path.to_string(),
            status: status.as_u16(),
            message,
        }
    }

    /// Sends one request with the rate-limit, retry and concurrency rules; returns the final status and JSON
    /// body, whatever the status. 429s are always retried (the request was not applied); 5xx and network
    /// errors only when `idempotent`.
    async fn send_any(
        &self,
        class: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<(StatusCode, Value), ApiError> {
        let url = format!("{}{}", self.base, path);
        let mut attempts = 0u32;
        let mut limited_count = 0u32;
        loop {
            let permit = self
                .sem
                .acquire()
                .await
                .map_err(|_| ApiError::Config("client closed".into()))?;
            let ticket = self.acquire(class).await;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .header("DD-API-KEY", secret_header(&self.api_key))
                .header("DD-APPLICATION-KEY", secret_header(&self.app_key))
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
            // The answer is read whole before the permit is given back: in flight until then.
            let res = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match resp.bytes().await {
                        Ok(bytes) => Ok((status, headers, bytes)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            drop(permit);
            match res {
                Ok((status, headers, bytes)) => {
                    let limited = status == StatusCode::TOO_MANY_REQUESTS;
                    self.learn(ticket, Some((&headers, limited)));
                    let json: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&bytes).chars().take(200).collect())
                    });
                    if limited {
                        limited_count += 1;
                        self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                        if limited_count <= MAX_RATE_LIMIT_WAITS {
                            continue;
                        }
                    } else if status.is_server_error() && idempotent && attempts + 1 < MAX_ATTEMPTS
                    {
                        attempts += 1;
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff(attempts)).await;
                        continue;
                    }
                    return Ok((status, json));
                }
                Err(e) => {
                    self.learn(ticket, None);
                    if idempotent && attempts + 1 < MAX_ATTEMPTS {
                        attempts += 1;
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(backoff(attempts)).await;
                        continue;
                    }
                    return Err(ApiError::Network {
                        method: method.to_string(),
                        path: path.to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
}
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(6)).min(5000))
}
