//! `kelpie status` as text, from the status document: the sections `datadog-agent status` prints, the
//! numbers laid out by [`stats::STATS`], with colours on a terminal.

use crate::clock::unix_now;
use crate::telemetry::stats;
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

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
    let section = |out: &mut String, key: &str| {
        for line in stats::text_lines(doc, key) {
            out.push_str(&line);
            out.push('\n');
        }
    };
    out.push_str(&header_line("Aggregator"));
    section(&mut out, "aggregator");
    out.push_str(&format!(
        "  Encoding Dropped: {}\n\n",
        reasons(&doc["encode"]["dropped"])
    ));
    let d = &doc["dogstatsd"];
    out.push_str(&header_line("DogStatsD"));
    section(&mut out, "dogstatsd");
    if d["context_limit_reason"] == "rss_near_memory_limit" {
        out.push_str("  Context Limit Lowered: memory near memory_limit\n");
    }
    out.push_str(&format!("  Dropped: {}\n", reasons(&d["dropped"])));
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
    section(&mut out, "forwarder");
    out.push_str(&format!(
        "  Dropped: {}\n",
        reasons(&f["transactions"]["dropped"])
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
