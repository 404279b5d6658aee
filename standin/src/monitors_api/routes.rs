//! Serving a request: the API keys, the rate limit, injected failures, the request log, and the route to
//! each endpoint of the Monitors API v1.

use super::normalize::{canon_type, normalize, server_fields};
use super::queries::{can_delete, list, referenced_by, search};
use super::ratelimit::rate_limit;
use super::validate::validate;
use super::{Answer, Inner, LogEntry, MonitorsState, MAX_LOG};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

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

/// Headers an injected failure may carry (`fail_next_with_headers`), as the answer's header names.
const INJECTABLE_HEADERS: [&str; 6] = [
    "x-ratelimit-limit",
    "x-ratelimit-period",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-name",
    "retry-after",
];

pub(super) fn err(status: StatusCode, msg: &str) -> (StatusCode, Value) {
    (status, json!({ "errors": [msg] }))
}

pub(super) fn percent_decode(s: &str) -> String {
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

// Over 100 lines on purpose: one request's way through the stand-in in the order the real API applies it (keys,
// rate limit, injected edits and failures, the route, the answer and its rate-limit headers), read top to bottom.
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
        let key = |name: &str, want: Option<&str>| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| !v.trim().is_empty() && want.is_none_or(|w| w == v))
        };
        let keys = inner.keys.clone();
        let want = |i: usize| {
            keys.as_ref()
                .map(|k| if i == 0 { k.0.as_str() } else { k.1.as_str() })
        };
        if !key("dd-api-key", want(0)) || !key("dd-application-key", want(1)) {
            break 'answer Answer::Json(
                StatusCode::FORBIDDEN,
                err(StatusCode::FORBIDDEN, "Forbidden").1,
            );
        }
        let m = method.as_str().to_string();
        if let Some(refused) = rate_limit(&mut inner, &m, &mut rate_headers) {
            break 'answer refused;
        }
        inner.apply_edits(&m, &path);
        let fail = inner
            .fails
            .iter_mut()
            .find(|f| f.left > 0 && f.path == path && f.method.as_ref().is_none_or(|fm| *fm == m))
            .map(|f| {
                f.left -= 1;
                for (k, v) in &f.headers {
                    if let Some(known) = INJECTABLE_HEADERS
                        .iter()
                        .find(|h| h.eq_ignore_ascii_case(k))
                    {
                        rate_headers.push((known, v.clone()));
                    }
                }
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
