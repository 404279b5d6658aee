//! One request to the intake: its URL, its headers, and what its answer means (2xx: done; 404, 408, 429, 5xx,
//! timeouts and network errors: retry; 400, 403, 413 and other 4xx: drop, counted by status).

use super::storage;
use crate::intake::Endpoint;
use crate::telemetry::DropReason;
use bytes::Bytes;

pub(super) enum Outcome {
    Success,
    Retry(String),
    Drop(DropReason, String),
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

pub(super) fn build_request(
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

pub(super) async fn send(req: reqwest::RequestBuilder) -> Outcome {
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
