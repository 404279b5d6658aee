//! Routing a request: the test-control endpoints, the API key check, the injected failure, and the
//! intake endpoint each path goes to; every request is logged for tests.

use super::ingest::{ingest_checks, ingest_event, ingest_profile, ingest_series, ingest_sketches};
use super::server::ConnKill;
use super::{
    Failure, FailureRequest, Received, ReceivedRequest, Shared, Times, BODY_READ_CAP,
    MAX_REQUESTS_KEPT,
};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// A JSON answer with `status`.
pub(super) fn answer(status: u16, body: Value) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(body)).into_response()
}

/// An error answer: `{"errors": [msg]}`.
fn error(status: u16, msg: impl Into<String>) -> Response {
    answer(status, json!({ "errors": [msg.into()] }))
}

/// The one handler: routing by hand keeps failure injection, the API key check and request logging in one
/// place for every intake path.
pub(super) async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
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
