//! The profile intake: what Datadog's profilers (and `kelpie-toolkit`) post to the agent.
//!
//! Datadog's profilers send each profile to the trace agent's `POST /profiling/v1/input` as
//! `multipart/form-data` (an `event` part, `event.json`, and one attachment per profile type, e.g.
//! `cpu.pprof`). The Datadog Agent proxies that body untouched to the intake's `/api/v2/profile`; so do we:
//! the raw body and its `Content-Type` (which carries the multipart boundary) go to a [`ProfileSink`], the
//! forwarder in the agent ([`ProfileForwarder`], started by [`start`]).
//!
//! Limits, each answered with the status a profiler understands and counted as a forwarder drop
//! (`kelpie status` → `forwarder.dropped`):
//! - a body over [`MAX_BODY_BYTES`] (16 MiB) → `413`, reason `profile_too_large`;
//! - a body that is not `multipart/form-data` → `415`, reason `profile_bad_content_type`;
//! - more than [`MAX_IN_FLIGHT`] uploads being read at once → `503`, reason `profile_busy` (profilers retry
//!   later), so memory stays under `MAX_IN_FLIGHT × MAX_BODY_BYTES`;
//! - a body that breaks off mid-way → `400`, reason `profile_read_error`.

use crate::encode::{Endpoint, Payload};
use crate::forwarder::Forwarder;
use crate::telemetry::{DropReason, Telemetry};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The path Datadog's profilers post to.
pub const INPUT_PATH: &str = "/profiling/v1/input";
/// Largest profile upload accepted (Datadog's profilers stay well under it).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Uploads read concurrently; more are refused with 503 until one finishes.
pub const MAX_IN_FLIGHT: usize = 4;

/// Where accepted profiles go (the forwarder: `Endpoint::Profile` → `/api/v2/profile`).
pub trait ProfileSink: Send + Sync {
    /// Takes one upload: the request's `Content-Type` (with its boundary) and the raw multipart body.
    fn submit(&self, content_type: String, body: Bytes);
}

/// Why the profile server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProfileServerError {
    #[error("could not listen for profiles on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the profile server failed: {0}")]
    Serve(#[source] std::io::Error),
}

#[derive(Clone)]
struct AppState {
    sink: Arc<dyn ProfileSink>,
    telemetry: Arc<Telemetry>,
    in_flight: Arc<Semaphore>,
}

/// The routes of the profile intake, to serve alone ([`serve`]) or merged into another router.
pub fn router(sink: Arc<dyn ProfileSink>, telemetry: Arc<Telemetry>) -> Router {
    Router::new()
        .route(INPUT_PATH, post(input))
        .with_state(AppState {
            sink,
            telemetry,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
}

/// Listens on `addr` (the trace agent's port, 8126, by convention) until the task is dropped or fails.
pub async fn serve(
    addr: SocketAddr,
    sink: Arc<dyn ProfileSink>,
    telemetry: Arc<Telemetry>,
) -> Result<(), ProfileServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ProfileServerError::Bind { addr, source })?;
    serve_listener(listener, sink, telemetry, std::future::pending()).await
}

/// Serves on an already bound listener until `shutdown` resolves (in-flight uploads are finished first).
pub async fn serve_listener(
    listener: TcpListener,
    sink: Arc<dyn ProfileSink>,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ProfileServerError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "accepting profiles on {INPUT_PATH}");
    }
    axum::serve(listener, router(sink, telemetry))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ProfileServerError::Serve)
}

/// Hands profile uploads to the forwarder (`/api/v2/profile`); in local mode they are counted and dropped.
pub struct ProfileForwarder {
    pub forwarder: Option<Forwarder>,
    pub telemetry: Arc<Telemetry>,
}

impl ProfileSink for ProfileForwarder {
    fn submit(&self, content_type: String, body: bytes::Bytes) {
        match &self.forwarder {
            Some(f) => f.submit(vec![Payload {
                endpoint: Endpoint::Profile,
                uncompressed_len: body.len(),
                body,
                content_type: content_type.into(),
                content_encoding: None,
                items: 1,
            }]),
            None => self.telemetry.count_drop(DropReason::ProfileLocalMode, 1),
        }
    }
}

/// Starts the agent's profile intake on `addr` until `shutdown`: uploads go to `forwarder` (counted and
/// dropped without one, in local mode). A port that cannot be bound is logged, not fatal: the agent runs
/// without it. Returns the address bound.
pub async fn start(
    addr: SocketAddr,
    forwarder: Option<Forwarder>,
    telemetry: Arc<Telemetry>,
    shutdown: CancellationToken,
) -> Option<SocketAddr> {
    let sink: Arc<dyn ProfileSink> = Arc::new(ProfileForwarder {
        forwarder,
        telemetry: telemetry.clone(),
    });
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot listen for profiles on {addr}: {e}");
            return None;
        }
    };
    let bound = listener.local_addr().unwrap_or(addr);
    tokio::spawn(async move {
        let stop = async move { shutdown.cancelled().await };
        if let Err(e) = serve_listener(listener, sink, telemetry, stop).await {
            tracing::warn!("{e}");
        }
    });
    Some(bound)
}

async fn input(State(state): State<AppState>, headers: HeaderMap, body: Body) -> StatusCode {
    let refuse = |reason: DropReason, status: StatusCode| {
        state.telemetry.count_drop(reason, 1);
        tracing::debug!(reason = reason.key(), %status, "profile upload refused");
        status
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return refuse(
            DropReason::ProfileBadContentType,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        );
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return refuse(DropReason::ProfileTooLarge, StatusCode::PAYLOAD_TOO_LARGE);
    }
    let Ok(_permit) = state.in_flight.try_acquire() else {
        return refuse(DropReason::ProfileBusy, StatusCode::SERVICE_UNAVAILABLE);
    };
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(b) => b,
        Err(e) => {
            // `to_bytes` reports the limit as an error whose source chain holds `LengthLimitError`.
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.to_string().contains("length limit"));
            return if too_large {
                refuse(DropReason::ProfileTooLarge, StatusCode::PAYLOAD_TOO_LARGE)
            } else {
                refuse(DropReason::ProfileReadError, StatusCode::BAD_REQUEST)
            };
        }
    };
    state.sink.submit(content_type, body);
    StatusCode::ACCEPTED
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Default)]
    struct Captured(Mutex<Vec<(String, Bytes)>>);

    impl ProfileSink for Captured {
        fn submit(&self, content_type: String, body: Bytes) {
            self.0.lock().push((content_type, body));
        }
    }

    async fn start() -> (
        String,
        Arc<Captured>,
        Arc<Telemetry>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{INPUT_PATH}", listener.local_addr().unwrap());
        let sink = Arc::new(Captured::default());
        let telemetry = Arc::new(Telemetry::default());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let s: Arc<dyn ProfileSink> = sink.clone();
        tokio::spawn(serve_listener(listener, s, telemetry.clone(), async {
            let _ = rx.await;
        }));
        (url, sink, telemetry, tx)
    }

    #[tokio::test]
    async fn a_multipart_upload_reaches_the_sink_untouched() {
        let (url, sink, telemetry, _stop) = start().await;
        let pprof = vec![0x1f, 0x8b, 8, 0, 1, 2, 3];
        let form = reqwest::multipart::Form::new()
            .part(
                "event",
                reqwest::multipart::Part::bytes(
                    br#"{"attachments":["cpu.pprof"],"version":"4"}"#.to_vec(),
                )
                .file_name("event.json")
                .mime_str("application/json")
                .unwrap(),
            )
            .part(
                "cpu.pprof",
                reqwest::multipart::Part::bytes(pprof.clone()).file_name("cpu.pprof"),
            );
        let resp = reqwest::Client::new()
            .post(&url)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let got = sink.0.lock().clone();
        assert_eq!(got.len(), 1);
        let (content_type, body) = &got[0];
        let boundary = content_type
            .split("boundary=")
            .nth(1)
            .expect("the boundary is passed on");
        let text = String::from_utf8_lossy(body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")), "{text}");
        assert!(text.contains("name=\"event\"; filename=\"event.json\""));
        assert!(text.contains(r#"{"attachments":["cpu.pprof"],"version":"4"}"#));
        assert!(body.windows(pprof.len()).any(|w| w == pprof.as_slice()));
        assert_eq!(telemetry.forwarder.dropped.total(), 0);
    }

    #[tokio::test]
    async fn oversized_uploads_get_413_and_are_counted() {
        let (url, sink, telemetry, _stop) = start().await;
        let client = reqwest::Client::new();
        // Declared too large.
        let big = vec![b'x'; MAX_BODY_BYTES + 1];
        let resp = client
            .post(&url)
            .header("content-type", "multipart/form-data; boundary=abc")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
        // Too large without a Content-Length (chunked), written by hand on a raw connection.
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches(INPUT_PATH)
            .to_string();
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {INPUT_PATH} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary=abc\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![b'y'; 1 << 20];
        let mut answer = Vec::new();
        for _ in 0..=(MAX_BODY_BYTES >> 20) {
            let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
            c.extend_from_slice(&chunk);
            c.extend_from_slice(b"\r\n");
            if conn.write_all(&c).await.is_err() {
                break; // the server may answer and close before the whole body is sent
            }
        }
        let _ = conn.write_all(b"0\r\n\r\n").await;
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            conn.read_to_end(&mut answer),
        )
        .await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(sink.0.lock().is_empty());
        assert_eq!(
            telemetry
                .forwarder
                .dropped
                .snapshot()
                .get("profile_too_large"),
            Some(&2)
        );
    }

    #[tokio::test]
    async fn non_multipart_bodies_and_other_paths_are_refused() {
        let (url, sink, telemetry, _stop) = start().await;
        let client = reqwest::Client::new();
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 415);
        let resp = client
            .post(url.replace(INPUT_PATH, "/v0.4/traces"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
        let resp = client.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 405);
        assert!(sink.0.lock().is_empty());
        assert_eq!(
            telemetry
                .forwarder
                .dropped
                .snapshot()
                .get("profile_bad_content_type"),
            Some(&1)
        );
    }

    #[tokio::test]
    async fn bind_errors_name_the_address() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let sink: Arc<dyn ProfileSink> = Arc::new(Captured::default());
        let err = serve(addr, sink, Arc::new(Telemetry::default()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
