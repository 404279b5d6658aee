//! The status server (`KELPIE_STATUS_ADDR`, default 127.0.0.1:5002): the status page at `/`, the status JSON
//! at `/status` (SPEC.md §7), the local-mode history at `/api/series` and `/api/metrics`, a liveness check at
//! `/health`, and a CPU profile of the agent at `/debug/pprof/profile?seconds=N`.

use crate::history::History;
use crate::telemetry::Telemetry;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kelpie_container::tags::TagCardinality;
use kelpie_container::OriginResolver;
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One collector's state as shown in the status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CollectorStatus {
    /// `ok`, `off` or `error`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub error: Option<String>,
}

impl CollectorStatus {
    pub fn new(status: &str) -> Self {
        CollectorStatus {
            status: status.to_string(),
            containers: None,
            detail: None,
            error: None,
        }
    }
}

/// Which origin detection is configured.
#[derive(Clone, Copy, Debug)]
pub struct OriginSettings {
    /// Over the Unix sockets (`dogstatsd_origin_detection`).
    pub uds: bool,
    /// From the `|c:` field (`dogstatsd_origin_detection_client`).
    pub client_field: bool,
    /// `dogstatsd_tag_cardinality`.
    pub cardinality: TagCardinality,
}

/// What the status server reads. Shared with the pipeline.
pub struct StatusState {
    pub version: &'static str,
    pub hostname: String,
    pub mode: &'static str,
    pub site: String,
    pub started: Instant,
    pub flush_interval: Duration,
    pub telemetry: Arc<Telemetry>,
    pub history: Arc<Mutex<History>>,
    pub collectors: Mutex<BTreeMap<&'static str, CollectorStatus>>,
    pub origin_settings: OriginSettings,
    /// The container tag table, once Docker answers.
    pub origin: Arc<RwLock<Option<OriginResolver>>>,
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl StatusState {
    /// Whether the pipeline is alive: a flush happened within three flush intervals (or the agent is younger).
    pub fn healthy(&self) -> bool {
        let grace = (self.flush_interval.as_secs() as i64 * 3).max(5);
        if self.started.elapsed().as_secs() as i64 <= grace {
            return true;
        }
        let last = self.telemetry.flush.last_flush_unix.get();
        last > 0 && unix_now() - last <= grace
    }

    /// The status document of SPEC.md §7.
    pub fn to_json(&self) -> Value {
        let t = &self.telemetry;
        let d = &t.dogstatsd;
        let f = &t.forwarder;
        let history = self.history.lock();
        json!({
            "version": self.version,
            "hostname": self.hostname,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "mode": self.mode,
            "site": self.site,
            "healthy": self.healthy(),
            "dogstatsd": {
                "packets": {
                    "udp": d.packets_udp.get(),
                    "uds_dgram": d.packets_uds_dgram.get(),
                    "uds_stream": d.packets_uds_stream.get(),
                },
                "bytes": d.bytes.get(),
                "metric_samples": d.metric_samples.get(),
                "events": d.events.get(),
                "service_checks": d.service_checks.get(),
                "parse_errors": d.parse_errors.get(),
                "contexts": d.contexts.get(),
                "dropped": d.dropped.snapshot(),
                "udp_rcvbuf_requested": d.udp_rcvbuf_requested.get(),
                "udp_rcvbuf_granted": d.udp_rcvbuf_granted.get(),
            },
            "forwarder": {
                "transactions": {
                    "success": f.success.get(),
                    "retried": f.retried.get(),
                    "dropped": f.dropped.snapshot(),
                },
                "bytes_sent": f.bytes_sent.get(),
                "queued_bytes": f.queued_bytes.get(),
                "queued_on_disk_bytes": f.queued_on_disk_bytes.get(),
                "queued_transactions": f.queued_transactions.get(),
                "last_error": f.last_error.lock().clone(),
            },
            "aggregator": {
                "flushes": t.flush.flushes.get(),
                "last_flush_unix": t.flush.last_flush_unix.get(),
                "last_flush_duration_us": t.flush.last_duration_us.get(),
                "series_flushed": t.flush.series_flushed.get(),
                "sketches_flushed": t.flush.sketches_flushed.get(),
            },
            "history": {
                "contexts": history.contexts(),
                "bytes": history.bytes(),
                "evicted": history.evicted(),
            },
            "collectors": self.collectors.lock().clone(),
            "origin_detection": self.origin_json(),
        })
    }

    /// Origin detection: what is on, and how lookups fared (a container's metrics without its tags show up
    /// as unresolved lookups).
    fn origin_json(&self) -> Value {
        let OriginSettings {
            uds,
            client_field,
            cardinality,
        } = self.origin_settings;
        let resolver = self.origin.read();
        let (resolved, unresolved) = resolver.as_ref().map_or((0, 0), OriginResolver::stats);
        json!({
            "uds": uds,
            "client_field": client_field,
            "tag_cardinality": cardinality.as_str(),
            "containers": resolver.as_ref().map_or(0, OriginResolver::len),
            "resolved": resolved,
            "unresolved": unresolved,
        })
    }
}

/// Builds the status server's routes.
pub fn router(state: Arc<StatusState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/status", get(status))
        .route("/health", get(health))
        .route("/api/series", get(series))
        .route("/api/metrics", get(metrics))
        .route("/debug/pprof/profile", get(profile))
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

async fn metrics(State(s): State<Arc<StatusState>>) -> Json<Value> {
    let names = s.history.lock().metric_names();
    Json(json!({
        "metrics": names.iter().map(|(n, c)| json!({"metric": n, "contexts": c})).collect::<Vec<_>>()
    }))
}

#[derive(serde::Deserialize)]
struct ProfileQuery {
    seconds: Option<u64>,
}

/// A pprof CPU profile of the agent (gzip-compressed protobuf, like Go's `/debug/pprof/profile`).
async fn profile(Query(q): Query<ProfileQuery>) -> Response {
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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn page(State(s): State<Arc<StatusState>>) -> Html<String> {
    let doc = s.to_json();
    let text = render_text(&doc);
    let names = s.history.lock().metric_names();
    let mut rows = String::new();
    for (name, contexts) in names.iter().take(2000) {
        let latest = s
            .history
            .lock()
            .query(name, &[])
            .iter()
            .filter_map(|v| v.points.last().map(|p| p.1))
            .next_back();
        rows.push_str(&format!(
            "<tr><td><a href=\"/api/series?metric={n}\">{n}</a></td><td>{contexts}</td><td>{}</td></tr>\n",
            latest.map(|v| format!("{v}")).unwrap_or_default(),
            n = esc(name)
        ));
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kelpie on {host}</title>\
         <meta http-equiv=\"refresh\" content=\"10\">\
         <style>body{{font-family:sans-serif;margin:2em}}pre{{background:#f4f4f4;padding:1em}}\
         td{{padding:2px 10px}}</style></head><body><h1>kelpie on {host}</h1>\
         <pre>{text}</pre><h2>Metrics ({count})</h2><table><tr><th>metric</th><th>contexts</th>\
         <th>a latest value</th></tr>{rows}</table>\
         <p><a href=\"/status\">status JSON</a></p></body></html>",
        host = esc(&s.hostname),
        text = esc(&text),
        count = names.len(),
    ))
}

fn num(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64().unwrap_or(0)
}

fn reasons(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}: {}", v.as_u64().unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "none".to_string(),
    }
}

fn header_line(title: &str) -> String {
    let bar = "=".repeat(title.len());
    format!("{bar}\n{title}\n{bar}\n")
}

/// Renders the status document the way `datadog-agent status` prints its sections.
pub fn render_text(doc: &Value) -> String {
    let mut out = String::new();
    out.push_str(&header_line(&format!(
        "Agent (kelpie v{})",
        doc["version"].as_str().unwrap_or("?")
    )));
    out.push_str(&format!(
        "  Hostname: {}\n  Mode: {}\n  Site: {}\n  Uptime: {} s\n  Healthy: {}\n\n",
        doc["hostname"].as_str().unwrap_or("?"),
        doc["mode"].as_str().unwrap_or("?"),
        doc["site"].as_str().unwrap_or("?"),
        num(doc, &["uptime_seconds"]),
        doc["healthy"].as_bool().unwrap_or(false),
    ));
    out.push_str(&header_line("Aggregator"));
    out.push_str(&format!(
        "  Flushes: {}\n  Series Flushed: {}\n  Sketches Flushed: {}\n  Last Flush Duration: {} us\n\n",
        num(doc, &["aggregator", "flushes"]),
        num(doc, &["aggregator", "series_flushed"]),
        num(doc, &["aggregator", "sketches_flushed"]),
        num(doc, &["aggregator", "last_flush_duration_us"]),
    ));
    let d = &doc["dogstatsd"];
    out.push_str(&header_line("DogStatsD"));
    out.push_str(&format!(
        "  Udp Packets: {}\n  Uds Datagram Packets: {}\n  Uds Stream Packets: {}\n  Metric Samples: {}\n  \
         Event Packets: {}\n  Service Check Packets: {}\n  Parse Errors: {}\n  Contexts: {}\n  Dropped: {}\n  \
         Udp Receive Buffer: requested {} bytes, granted {} bytes\n",
        num(d, &["packets", "udp"]),
        num(d, &["packets", "uds_dgram"]),
        num(d, &["packets", "uds_stream"]),
        num(d, &["metric_samples"]),
        num(d, &["events"]),
        num(d, &["service_checks"]),
        num(d, &["parse_errors"]),
        d["contexts"].as_i64().unwrap_or(0),
        reasons(&d["dropped"]),
        d["udp_rcvbuf_requested"].as_i64().unwrap_or(0),
        d["udp_rcvbuf_granted"].as_i64().unwrap_or(0),
    ));
    let o = &doc["origin_detection"];
    if o.is_object() {
        let on = |k: &str| {
            if o[k].as_bool() == Some(true) {
                "on"
            } else {
                "off"
            }
        };
        out.push_str(&format!(
            "  Origin Detection: sockets {}, |c: field {}, tag cardinality {}; {} containers known, {} lookups resolved, {} not\n",
            on("uds"),
            on("client_field"),
            o["tag_cardinality"].as_str().unwrap_or("?"),
            num(o, &["containers"]),
            num(o, &["resolved"]),
            num(o, &["unresolved"]),
        ));
    }
    out.push('\n');
    let f = &doc["forwarder"];
    out.push_str(&header_line("Forwarder"));
    out.push_str(&format!(
        "  Transactions: Success {}, Retried {}\n  Dropped: {}\n  Bytes Sent: {}\n  Queued: {} transactions, {} bytes in memory, {} bytes on disk\n",
        num(f, &["transactions", "success"]),
        num(f, &["transactions", "retried"]),
        reasons(&f["transactions"]["dropped"]),
        num(f, &["bytes_sent"]),
        f["queued_transactions"].as_i64().unwrap_or(0),
        f["queued_bytes"].as_i64().unwrap_or(0),
        f["queued_on_disk_bytes"].as_i64().unwrap_or(0),
    ));
    if let Some(e) = f["last_error"].as_str() {
        out.push_str(&format!("  Last Error: {e}\n"));
    }
    out.push('\n');
    out.push_str(&header_line("Collectors"));
    if let Some(m) = doc["collectors"].as_object() {
        for (name, c) in m {
            out.push_str(&format!(
                "  {name}: {}",
                c["status"].as_str().unwrap_or("?")
            ));
            if let Some(n) = c["containers"].as_u64() {
                out.push_str(&format!(", {n} containers"));
            }
            if let Some(d) = c["detail"].as_str() {
                out.push_str(&format!(", {d}"));
            }
            if let Some(e) = c["error"].as_str() {
                out.push_str(&format!(" ({e})"));
            }
            out.push('\n');
        }
    }
    out
}
