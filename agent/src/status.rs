//! The status server (`KELPIE_STATUS_ADDR`, default 127.0.0.1:5002): the status JSON at `/status` (SPEC.md
//! §7), the local-mode history at `/api/series`, a liveness check at `/health`, a CPU profile of the agent at
//! `/debug/pprof/profile?seconds=N`, and the local page with its own endpoints ([`crate::web`]).

use crate::history::History;
use crate::recent::Recent;
use crate::telemetry::{DropSection, Telemetry};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
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
    /// Serve `/debug/pprof/profile` (`KELPIE_PPROF`).
    pub pprof: bool,
    pub hostname: String,
    pub mode: &'static str,
    pub site: String,
    /// The intake base URL in use (`dd_url`, or `https://api.<site>`); empty in local mode.
    pub intake_url: String,
    pub started: Instant,
    pub flush_interval: Duration,
    pub telemetry: Arc<Telemetry>,
    pub history: Arc<Mutex<History>>,
    /// The last events and service checks (filled by the flusher).
    pub recent: Mutex<Recent>,
    /// The metric names with the most contexts at the last flush (`/api/top`).
    pub top: Mutex<crate::top::TopView>,
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
        let recent = self.recent.lock();
        json!({
            "version": self.version,
            "hostname": self.hostname,
            "uptime_seconds": self.started.elapsed().as_secs(),
            "mode": self.mode,
            "site": self.site,
            "dd_url": (!self.intake_url.is_empty()).then_some(&self.intake_url),
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
                "histogram_samples_approximated": d.histogram_samples_approximated.get(),
                "contexts": d.contexts.get(),
                "context_limit": d.context_limit.get(),
                "context_limit_reason": if d.context_limit_lowered.get() != 0 { "rss_near_memory_limit" } else { "memory_limit" },
                "dropped": d.dropped.shown(DropSection::Dogstatsd),
                "udp_rcvbuf_requested": d.udp_rcvbuf_requested.get(),
                "udp_rcvbuf_granted": d.udp_rcvbuf_granted.get(),
                "queue_bytes": d.queue_bytes.get(),
                "queue_max_bytes": d.queue_max_bytes.get(),
                "pipelines": d.pipelines.get(),
            },
            "forwarder": {
                "transactions": {
                    "success": f.success.get(),
                    "retried": f.retried.get(),
                    "dropped": f.dropped.shown(DropSection::Forwarder),
                },
                "bytes_sent": f.bytes_sent.get(),
                "queued_bytes": f.queued_bytes.get(),
                "queued_on_disk_bytes": f.queued_on_disk_bytes.get(),
                "queued_transactions": f.queued_transactions.get(),
                "last_error": f.last_error.lock().clone(),
                "delivering": f.not_delivering_since.get() == 0,
                "not_delivering_since": Some(f.not_delivering_since.get()).filter(|&t| t > 0),
            },
            "aggregator": {
                "flushes": t.flush.flushes.get(),
                "last_flush_unix": t.flush.last_flush_unix.get(),
                "last_flush_duration_us": t.flush.last_duration_us.get(),
                "series_flushed": t.flush.series_flushed.get(),
                "sketches_flushed": t.flush.sketches_flushed.get(),
            },
            "encode": {
                "dropped": t.encode.dropped.shown(DropSection::Encode),
            },
            "history": {
                "contexts": history.contexts(),
                "bytes": history.bytes(),
                "evicted": history.evicted(),
            },
            "collectors": self.collectors_json(),
            "origin_detection": self.origin_json(),
            "recent_events": recent.events(5),
            "recent_service_checks": recent.checks(5),
        })
    }

    /// The collectors, with every field of SPEC §7 present whether or not a collector runs: `host`, `docker`
    /// (with `containers`, 0 when off or unavailable, and `error`) and `ecs`.
    fn collectors_json(&self) -> Value {
        let mut all = self.collectors.lock().clone();
        for name in ["host", "docker", "ecs"] {
            all.entry(name)
                .or_insert_with(|| CollectorStatus::new("off"));
        }
        if let Some(docker) = all.get_mut("docker") {
            docker.containers.get_or_insert(0);
        }
        serde_json::to_value(all).unwrap_or_default()
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

/// ANSI colours for `kelpie status` on a terminal; all empty when plain.
#[derive(Clone, Copy)]
struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn good(self, s: &str) -> String {
        self.wrap("32", s)
    }
    fn bad(self, s: &str) -> String {
        self.wrap("1;31", s)
    }
    fn warn(self, s: &str) -> String {
        self.wrap("33", s)
    }
    fn title(self, s: &str) -> String {
        self.wrap("1;36", s)
    }
}

fn header_line(title: &str) -> String {
    let bar = "=".repeat(title.len());
    format!("{bar}\n{title}\n{bar}\n")
}

/// A unix time as `2026-12-02T19:59:01Z`.
pub fn format_time(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `Not delivering to <url> since <time> (<for how long>), N payloads (B bytes) held`.
fn not_delivering_line(doc: &Value, since: i64) -> String {
    let f = &doc["forwarder"];
    let held_bytes =
        f["queued_bytes"].as_i64().unwrap_or(0) + f["queued_on_disk_bytes"].as_i64().unwrap_or(0);
    format!(
        "Not delivering to {} since {} ({} ago), {} payloads ({held_bytes} bytes) held",
        doc["dd_url"].as_str().unwrap_or("the intake"),
        format_time(since),
        humantime::format_duration(Duration::from_secs((unix_now() - since).max(0) as u64)),
        f["queued_transactions"].as_i64().unwrap_or(0),
    )
}

/// Renders the status document the way `datadog-agent status` prints its sections, without colours.
pub fn render_text(doc: &Value) -> String {
    render(doc, false)
}

/// Like [`render_text`], coloured with ANSI escapes when `color` (a terminal): health, errors and drops stand
/// out.
pub fn render(doc: &Value, color: bool) -> String {
    let p = Paint { on: color };
    let header_line = |t: &str| {
        let h = header_line(t);
        let mut lines = h.lines();
        let (a, b, c) = (
            lines.next().unwrap_or(""),
            lines.next().unwrap_or(""),
            lines.next().unwrap_or(""),
        );
        format!("{a}\n{}\n{c}\n", p.title(b))
    };
    let reasons = |v: &Value| {
        let r = reasons(v);
        if r == "none" {
            r
        } else {
            p.warn(&r)
        }
    };
    let mut out = String::new();
    out.push_str(&header_line(&format!(
        "Agent (kelpie v{})",
        doc["version"].as_str().unwrap_or("?")
    )));
    out.push_str(&format!(
        "  Hostname: {}\n  Mode: {}\n  Intake: {}\n  Uptime: {} s\n  Healthy: {}\n\n",
        doc["hostname"].as_str().unwrap_or("?"),
        doc["mode"].as_str().unwrap_or("?"),
        doc["dd_url"]
            .as_str()
            .unwrap_or("none (local mode: nothing is sent)"),
        num(doc, &["uptime_seconds"]),
        if doc["healthy"].as_bool().unwrap_or(false) {
            p.good("true")
        } else {
            p.bad("false")
        },
    ));
    out.push_str(&header_line("Aggregator"));
    out.push_str(&format!(
        "  Flushes: {}\n  Series Flushed: {}\n  Sketches Flushed: {}\n  Last Flush Duration: {} us\n  \
         Encoding Dropped: {}\n\n",
        num(doc, &["aggregator", "flushes"]),
        num(doc, &["aggregator", "series_flushed"]),
        num(doc, &["aggregator", "sketches_flushed"]),
        num(doc, &["aggregator", "last_flush_duration_us"]),
        reasons(&doc["encode"]["dropped"]),
    ));
    let d = &doc["dogstatsd"];
    out.push_str(&header_line("DogStatsD"));
    out.push_str(&format!(
        "  Udp Packets: {}\n  Uds Datagram Packets: {}\n  Uds Stream Packets: {}\n  Metric Samples: {}\n  \
         Event Packets: {}\n  Service Check Packets: {}\n  Parse Errors: {}\n  Contexts: {} (limit {}{})\n  Dropped: {}\n  \
         Udp Receive Buffer: requested {} bytes, granted {} bytes\n  Queue: {} of {} bytes, {} workers\n",
        num(d, &["packets", "udp"]),
        num(d, &["packets", "uds_dgram"]),
        num(d, &["packets", "uds_stream"]),
        num(d, &["metric_samples"]),
        num(d, &["events"]),
        num(d, &["service_checks"]),
        num(d, &["parse_errors"]),
        d["contexts"].as_i64().unwrap_or(0),
        d["context_limit"].as_i64().unwrap_or(0),
        if d["context_limit_reason"] == "rss_near_memory_limit" {
            ", lowered: memory near memory_limit"
        } else {
            ""
        },
        reasons(&d["dropped"]),
        d["udp_rcvbuf_requested"].as_i64().unwrap_or(0),
        d["udp_rcvbuf_granted"].as_i64().unwrap_or(0),
        d["queue_bytes"].as_i64().unwrap_or(0),
        d["queue_max_bytes"].as_i64().unwrap_or(0),
        d["pipelines"].as_i64().unwrap_or(0),
    ));
    let approximated = num(d, &["histogram_samples_approximated"]);
    if approximated > 0 {
        out.push_str(&format!(
            "  Histogram Samples Approximated: {approximated} (histogram memory budget spent; see docs/dogstatsd.md)\n"
        ));
    }
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
    if let Some(since) = f["not_delivering_since"].as_i64() {
        out.push_str(&format!("  {}\n", p.bad(&not_delivering_line(doc, since))));
    }
    if let Some(e) = f["last_error"].as_str() {
        out.push_str(&format!("  Last Error: {}\n", p.bad(e)));
    }
    out.push('\n');
    out.push_str(&header_line("Collectors"));
    if let Some(m) = doc["collectors"].as_object() {
        for (name, c) in m {
            let status = c["status"].as_str().unwrap_or("?");
            let status = match status {
                "ok" => p.good(status),
                "error" => p.bad(status),
                _ => status.to_string(),
            };
            out.push_str(&format!("  {name}: {status}"));
            if let (Some(n), false) = (c["containers"].as_u64(), c["status"] == "off") {
                out.push_str(&format!(", {n} containers"));
            }
            if let Some(d) = c["detail"].as_str() {
                out.push_str(&format!(", {d}"));
            }
            if let Some(e) = c["error"].as_str() {
                out.push_str(&format!(" ({})", p.bad(e)));
            }
            out.push('\n');
        }
    }
    if let Some(events) = doc["recent_events"].as_array() {
        out.push('\n');
        out.push_str(&header_line("Last Events"));
        if events.is_empty() {
            out.push_str("  none\n");
        }
        for e in events {
            let alert = e["alert_type"].as_str().unwrap_or("info");
            let alert = match alert {
                "error" => p.bad(alert),
                "warning" => p.warn(alert),
                _ => alert.to_string(),
            };
            out.push_str(&format!(
                "  {} [{alert}] {}",
                format_time(e["timestamp"].as_i64().unwrap_or(0)),
                e["title"].as_str().unwrap_or(""),
            ));
            if let Some(tags) = e["tags"].as_array().filter(|t| !t.is_empty()) {
                let tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
                out.push_str(&format!(" ({})", tags.join(", ")));
            }
            out.push('\n');
        }
    }
    if let Some(checks) = doc["recent_service_checks"].as_array() {
        out.push('\n');
        out.push_str(&header_line("Last Service Checks"));
        if checks.is_empty() {
            out.push_str("  none\n");
        }
        for c in checks {
            let status = c["status_text"].as_str().unwrap_or("unknown");
            let status = match status {
                "ok" => p.good(status),
                "critical" => p.bad(status),
                _ => p.warn(status),
            };
            out.push_str(&format!(
                "  {} {} {status}",
                format_time(c["timestamp"].as_i64().unwrap_or(0)),
                c["check"].as_str().unwrap_or(""),
            ));
            if let Some(m) = c["message"].as_str().filter(|m| !m.is_empty()) {
                out.push_str(&format!(": {m}"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod render_tests {
    use super::*;

    #[test]
    fn colour_only_when_asked_and_problems_stand_out() {
        let doc = json!({
            "version": "1", "hostname": "h", "mode": "forwarding", "dd_url": "http://127.0.0.1:9",
            "healthy": false,
            "forwarder": {"last_error": "connection refused"},
            "collectors": {"docker": {"status": "error", "error": "permission denied on /var/run/docker.sock"}},
            "recent_events": [], "recent_service_checks": [
                {"timestamp": 0, "check": "db", "status_text": "critical", "message": ""}],
        });
        let plain = render(&doc, false);
        assert!(!plain.contains('\x1b'), "{plain}");
        assert!(plain.contains("Intake: http://127.0.0.1:9"), "{plain}");
        assert!(
            plain.contains("1970-01-01T00:00:00Z db critical"),
            "{plain}"
        );
        let coloured = render(&doc, true);
        assert!(
            coloured.contains("Healthy: \x1b[1;31mfalse\x1b[0m"),
            "{coloured}"
        );
        assert!(
            coloured.contains("docker: \x1b[1;31merror\x1b[0m"),
            "{coloured}"
        );
        assert_eq!(render_text(&doc), plain);
    }
}

#[cfg(test)]
mod drop_tests {
    use super::*;
    use crate::telemetry::DropReason;

    fn state(telemetry: Arc<Telemetry>) -> StatusState {
        StatusState {
            version: "test",
            pprof: false,
            hostname: "h".into(),
            mode: "forwarding",
            site: "datadoghq.com".into(),
            intake_url: String::new(),
            started: Instant::now(),
            flush_interval: Duration::from_secs(10),
            telemetry,
            history: Arc::new(Mutex::new(History::new(0))),
            recent: Mutex::new(Default::default()),
            top: Mutex::new(Default::default()),
            collectors: Mutex::new(Default::default()),
            origin_settings: OriginSettings {
                uds: false,
                client_field: false,
                cardinality: TagCardinality::Low,
            },
            origin: Arc::new(RwLock::new(None)),
        }
    }

    #[test]
    fn every_drop_reason_shows_in_the_json_and_the_text_under_its_section() {
        let telemetry = Arc::new(Telemetry::default());
        for (i, &r) in DropReason::ALL.iter().enumerate() {
            telemetry.count_drop(r, 1000 + i as u64);
        }
        let doc = state(telemetry).to_json();
        let text = render_text(&doc);
        for (i, &r) in DropReason::ALL.iter().enumerate() {
            let section = match r.section() {
                DropSection::Dogstatsd => &doc["dogstatsd"]["dropped"],
                DropSection::Encode => &doc["encode"]["dropped"],
                DropSection::Forwarder => &doc["forwarder"]["transactions"]["dropped"],
            };
            assert_eq!(section[r.key()], 1000 + i as u64, "{r}: {doc}");
            let shown = format!("{}: {}", r.key(), 1000 + i);
            assert!(text.contains(&shown), "{shown} not in\n{text}");
        }
    }

    #[test]
    fn the_drops_looked_for_first_show_at_zero_and_no_others() {
        let doc = state(Arc::new(Telemetry::default())).to_json();
        assert_eq!(
            doc["dogstatsd"]["dropped"],
            json!({"kernel": 0, "queue_full": 0})
        );
        assert_eq!(doc["forwarder"]["transactions"]["dropped"], json!({}));
        assert_eq!(doc["encode"]["dropped"], json!({}));
    }
}
