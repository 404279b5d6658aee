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
    let mut t = Text {
        p: Paint { on: color },
        doc,
        out: String::new(),
    };
    t.agent();
    t.aggregator();
    t.dogstatsd();
    t.forwarder();
    t.collectors();
    t.events();
    t.checks();
    t.out
}

/// The text being written, section by section.
struct Text<'a> {
    p: Paint,
    doc: &'a Value,
    out: String,
}

impl Text<'_> {
    fn line(&mut self, s: &str) {
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn header(&mut self, title: &str) {
        let bar = "=".repeat(title.len());
        let title = self.p.title(title);
        self.out.push_str(&format!("{bar}\n{title}\n{bar}\n"));
    }

    /// The lines [`stats::STATS`] gives the section `key`.
    fn stats(&mut self, key: &str) {
        for line in stats::text_lines(self.doc, key) {
            self.line(&line);
        }
    }

    /// `  Dropped: reason: n, …`, highlighted when anything was dropped.
    fn dropped(&mut self, label: &str, v: &Value) {
        let r = reasons(v);
        let r = if r == "none" { r } else { self.p.warn(&r) };
        self.line(&format!("  {label}: {r}"));
    }

    fn agent(&mut self) {
        let (doc, p) = (self.doc, self.p);
        self.header(&format!(
            "Agent (kelpie v{})",
            doc["version"].as_str().unwrap_or("?")
        ));
        self.out.push_str(&format!(
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
    }

    fn aggregator(&mut self) {
        self.header("Aggregator");
        self.stats("aggregator");
        self.dropped("Encoding Dropped", &self.doc["encode"]["dropped"]);
        self.out.push('\n');
    }

    fn dogstatsd(&mut self) {
        let d = &self.doc["dogstatsd"];
        self.header("DogStatsD");
        self.stats("dogstatsd");
        if d["context_limit_reason"] == "rss_near_memory_limit" {
            self.line("  Context Limit Lowered: memory near memory_limit");
        }
        self.dropped("Dropped", &d["dropped"]);
        let o = &self.doc["origin_detection"];
        if o.is_object() {
            let on = |k: &str| {
                if o[k].as_bool() == Some(true) {
                    "on"
                } else {
                    "off"
                }
            };
            self.line(&format!(
                "  Origin Detection: sockets {}, |c: field {}, tag cardinality {}; {} containers known, {} lookups resolved, {} not",
                on("uds"),
                on("client_field"),
                o["tag_cardinality"].as_str().unwrap_or("?"),
                num(o, &["containers"]),
                num(o, &["resolved"]),
                num(o, &["unresolved"]),
            ));
        }
        self.out.push('\n');
    }

    fn forwarder(&mut self) {
        let (doc, p) = (self.doc, self.p);
        let f = &doc["forwarder"];
        self.header("Forwarder");
        self.stats("forwarder");
        self.dropped("Dropped", &f["transactions"]["dropped"]);
        if let Some(since) = f["not_delivering_since"].as_i64() {
            self.line(&format!("  {}", p.bad(&not_delivering_line(doc, since))));
        }
        if let Some(e) = f["last_error"].as_str() {
            self.line(&format!("  Last Error: {}", p.bad(e)));
        }
        self.out.push('\n');
    }

    fn collectors(&mut self) {
        let p = self.p;
        self.header("Collectors");
        let Some(m) = self.doc["collectors"].as_object() else {
            return;
        };
        for (name, c) in m {
            let status = c["status"].as_str().unwrap_or("?");
            let status = match status {
                "ok" => p.good(status),
                "error" => p.bad(status),
                _ => status.to_string(),
            };
            let mut line = format!("  {name}: {status}");
            if let (Some(n), false) = (c["containers"].as_u64(), c["status"] == "off") {
                line.push_str(&format!(", {n} containers"));
            }
            if let Some(d) = c["detail"].as_str() {
                line.push_str(&format!(", {d}"));
            }
            if let Some(e) = c["error"].as_str() {
                line.push_str(&format!(" ({})", p.bad(e)));
            }
            self.line(&line);
        }
    }

    /// A list section: its header, then each item's line (or `none`).
    fn list(&mut self, title: &str, key: &str, item: impl Fn(Paint, &Value) -> String) {
        let Some(items) = self.doc[key].as_array() else {
            return;
        };
        self.out.push('\n');
        self.header(title);
        if items.is_empty() {
            self.line("  none");
        }
        for v in items {
            let line = item(self.p, v);
            self.line(&line);
        }
    }

    fn events(&mut self) {
        self.list("Last Events", "recent_events", |p, e| {
            let alert = e["alert_type"].as_str().unwrap_or("info");
            let alert = match alert {
                "error" => p.bad(alert),
                "warning" => p.warn(alert),
                _ => alert.to_string(),
            };
            let mut line = format!(
                "  {} [{alert}] {}",
                format_time(e["timestamp"].as_i64().unwrap_or(0)),
                e["title"].as_str().unwrap_or(""),
            );
            if let Some(tags) = e["tags"].as_array().filter(|t| !t.is_empty()) {
                let tags: Vec<&str> = tags.iter().filter_map(Value::as_str).collect();
                line.push_str(&format!(" ({})", tags.join(", ")));
            }
            line
        });
    }

    fn checks(&mut self) {
        self.list("Last Service Checks", "recent_service_checks", |p, c| {
            let status = c["status_text"].as_str().unwrap_or("unknown");
            let status = match status {
                "ok" => p.good(status),
                "critical" => p.bad(status),
                _ => p.warn(status),
            };
            let mut line = format!(
                "  {} {} {status}",
                format_time(c["timestamp"].as_i64().unwrap_or(0)),
                c["check"].as_str().unwrap_or(""),
            );
            if let Some(m) = c["message"].as_str().filter(|m| !m.is_empty()) {
                line.push_str(&format!(": {m}"));
            }
            line
        });
    }
}
