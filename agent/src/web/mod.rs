//! The local page served at `/` by the status server, and the JSON it reads: `/api/metrics`, `/api/chart`,
//! `/api/events`, `/api/service_checks` (beside `/status` and `/api/series` of [`crate::status`]).
//!
//! The page is three static files compiled into the binary (`index.html`, `app.js`, `app.css`): no external
//! assets and no build step. It polls the JSON endpoints and redraws itself, so it updates without a reload.
//! Its line chart is drawn on a canvas by `app.js` itself (a few hundred lines): the Debian, PyPI and crates.io
//! registries we can install from ship no chart library's browser build, and a small dedicated drawer keeps
//! the page well under 200 KB.

use crate::status::StatusState;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Most lines one chart returns (the groups with the highest latest values).
const MAX_CHART_LINES: usize = 100;

/// The page's routes.
pub fn routes() -> Router<Arc<StatusState>> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/api/metrics", get(metrics))
        .route("/api/chart", get(chart))
        .route("/api/events", get(events))
        .route("/api/service_checks", get(service_checks))
        .route("/api/top", get(top))
}

async fn top(State(s): State<Arc<StatusState>>) -> Json<crate::top::TopView> {
    Json(s.top.lock().clone())
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The unit of a metric the agent itself produces (SPEC.md §5), for the chart's axis.
pub fn unit_of(metric: &str) -> Option<&'static str> {
    let unit = match metric {
        m if m.starts_with("system.cpu.") && m != "system.cpu.num_cores" => "%",
        "system.disk.in_use" | "system.mem.pct_usable" => "fraction",
        m if m.starts_with("system.mem.") || m.starts_with("system.swap.") => "MiB",
        m if m.starts_with("system.disk.") => "KiB",
        m if m.starts_with("system.net.bytes_") => "B/s",
        "system.uptime" | "docker.uptime" | "kelpie.flush.duration" => "s",
        m if m.starts_with("docker.cpu.") && m != "docker.cpu.throttled" => "%",
        m if m.starts_with("docker.mem.") && m != "docker.mem.in_use" => "B",
        "docker.mem.in_use" => "fraction",
        m if m.starts_with("docker.io.") || m.starts_with("docker.net.bytes_") => "B/s",
        "kelpie.memory.rss"
        | "kelpie.forwarder.queued_bytes"
        | "kelpie.forwarder.queued_on_disk_bytes" => "B",
        _ => return None,
    };
    Some(unit)
}

async fn metrics(State(s): State<Arc<StatusState>>) -> Json<Value> {
    let names = s.history.lock().metric_summaries();
    Json(json!({
        "history_enabled": s.history.lock().budget() > 0,
        "metrics": names.iter().map(|m| json!({
            "metric": m.metric,
            "contexts": m.contexts,
            "kind": m.kind,
            "unit": unit_of(&m.metric),
            "tag_keys": m.tag_keys.iter().map(|(k, n)| json!({"key": k, "values": n})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>()
    }))
}

#[derive(serde::Deserialize)]
struct ChartQuery {
    metric: Option<String>,
    /// Comma-separated tags every context must have.
    tags: Option<String>,
    /// A tag key: one line per value.
    by: Option<String>,
    /// A distribution's statistic: p50, p95, p99, avg, max or count.
    stat: Option<String>,
}

async fn chart(State(s): State<Arc<StatusState>>, Query(q): Query<ChartQuery>) -> Response {
    let Some(metric) = q.metric.filter(|m| !m.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "the metric query parameter is required, e.g. /api/chart?metric=system.load.1&by=device"})),
        )
            .into_response();
    };
    let tags_raw = q.tags.unwrap_or_default();
    let tags: Vec<&str> = tags_raw.split(',').filter(|t| !t.is_empty()).collect();
    let by = q.by.unwrap_or_default();
    let stat = q.stat.unwrap_or_default();
    let chart = s
        .history
        .lock()
        .chart(&metric, &tags, by.trim(), stat.trim(), MAX_CHART_LINES);
    let mut doc = serde_json::to_value(&chart).unwrap_or_default();
    doc["unit"] = json!(unit_of(&metric));
    Json(doc).into_response()
}

#[derive(serde::Deserialize)]
struct LimitQuery {
    limit: Option<usize>,
}

async fn events(State(s): State<Arc<StatusState>>, Query(q): Query<LimitQuery>) -> Json<Value> {
    let recent = s.recent.lock();
    Json(json!({
        "events": recent.events(q.limit.unwrap_or(usize::MAX)),
        "seen": recent.seen().0,
    }))
}

async fn service_checks(
    State(s): State<Arc<StatusState>>,
    Query(q): Query<LimitQuery>,
) -> Json<Value> {
    let recent = s.recent.lock();
    Json(json!({
        "service_checks": recent.checks(q.limit.unwrap_or(usize::MAX)),
        "seen": recent.seen().1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_small_and_has_no_external_assets() {
        let total = INDEX_HTML.len() + APP_JS.len() + APP_CSS.len();
        assert!(total < 200 * 1024, "{total} bytes");
        for text in [INDEX_HTML, APP_JS, APP_CSS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }

    #[test]
    fn units_of_known_metrics() {
        assert_eq!(unit_of("system.cpu.user"), Some("%"));
        assert_eq!(unit_of("system.mem.used"), Some("MiB"));
        assert_eq!(unit_of("system.disk.free"), Some("KiB"));
        assert_eq!(unit_of("docker.mem.rss"), Some("B"));
        assert_eq!(unit_of("app.requests"), None);
    }
}
