//! The status server's routes: the status JSON at `/status`, `/health`, the local-mode history at
//! `/api/series`, a CPU profile of the agent at `/debug/pprof/profile?seconds=N`, and the local page's own
//! endpoints ([`crate::web`]).

use super::StatusState;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Builds the status server's routes.
pub fn router(state: Arc<StatusState>) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/health", get(health))
        .route("/api/series", get(series))
        .route("/debug/pprof/profile", get(profile))
        .merge(crate::web::routes())
        .with_state(state)
}

/// Binds the status server; returns the bound address and the serving future.
pub async fn bind(
    addr: SocketAddr,
    state: Arc<StatusState>,
) -> std::io::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(state);
    Ok((local, async move { axum::serve(listener, app).await }))
}

async fn status(State(s): State<Arc<StatusState>>) -> Json<Value> {
    Json(s.to_json())
}

async fn health(State(s): State<Arc<StatusState>>) -> Response {
    if s.healthy() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the flush loop is late: no flush within three flush intervals\n",
        )
            .into_response()
    }
}

#[derive(serde::Deserialize)]
struct SeriesQuery {
    metric: Option<String>,
    /// Comma-separated tags that every returned context must have.
    tags: Option<String>,
}

async fn series(State(s): State<Arc<StatusState>>, Query(q): Query<SeriesQuery>) -> Response {
    let Some(metric) = q.metric.filter(|m| !m.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "the metric query parameter is required, e.g. /api/series?metric=system.load.1"})),
        )
            .into_response();
    };
    let tags_raw = q.tags.unwrap_or_default();
    let tags: Vec<&str> = tags_raw.split(',').filter(|t| !t.is_empty()).collect();
    let mut found = s.history.lock().query(&metric, &tags);
    for v in &mut found {
        if v.host.is_empty() {
            v.host = s.hostname.clone();
        } else if v.host == crate::model::NO_HOST {
            v.host.clear();
        }
    }
    Json(json!({ "metric": metric, "series": found })).into_response()
}

#[derive(serde::Deserialize)]
struct ProfileQuery {
    seconds: Option<u64>,
}

/// A pprof CPU profile of the agent (gzip-compressed protobuf, like Go's `/debug/pprof/profile`).
async fn profile(State(s): State<Arc<StatusState>>, Query(q): Query<ProfileQuery>) -> Response {
    if !s.pprof {
        return (
            StatusCode::NOT_FOUND,
            "the CPU profiler is turned off (KELPIE_PPROF=false)\n",
        )
            .into_response();
    }
    let seconds = q.seconds.unwrap_or(30).clamp(1, 300);
    let guard = match pprof::ProfilerGuardBuilder::default()
        .frequency(99)
        .blocklist(&["libc", "libgcc", "pthread", "vdso"])
        .build()
    {
        Ok(g) => g,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot start the CPU profiler: {e}\n"),
            )
                .into_response()
        }
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        use pprof::protos::Message;
        let report = guard.report().build().map_err(|e| e.to_string())?;
        let profile = report.pprof().map_err(|e| e.to_string())?;
        let raw = profile.encode_to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, &raw).map_err(|e| e.to_string())?;
        gz.finish().map_err(|e| e.to_string())
    })
    .await;
    match encoded {
        Ok(Ok(body)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"profile.pb.gz\"",
                ),
            ],
            body,
        )
            .into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot build the profile: {e}\n"),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the profiler task failed: {e}\n"),
        )
            .into_response(),
    }
}
