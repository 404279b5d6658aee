//! Every counter and gauge of [`Telemetry`] described once: where it sits in the status JSON, how
//! `kelpie status` prints it and which `kelpie.*` metric carries it. The status JSON, the status text and the
//! self metrics are all derived from [`STATS`] (drops from [`DropReason`](super::DropReason)'s table), so a
//! number cannot show in one and be missing from another.

use super::Telemetry;

/// Whether a value only grows (sent as the change since the previous flush) or goes up and down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One number of the agent's telemetry.
pub struct Stat {
    /// Where it sits in the status JSON: `["dogstatsd", "packets", "udp"]`. The first key is its section.
    pub path: &'static [&'static str],
    /// Its line in `kelpie status` (the status JSON's sections `aggregator`, `dogstatsd` and `forwarder` are
    /// printed): consecutive stats with the same title share a line, each as `label value unit`.
    pub text: Option<Text>,
    /// The `kelpie.*` metric sent on each flush, if any.
    pub metric: Option<Metric>,
    pub kind: Kind,
    pub read: fn(&Telemetry) -> i64,
}

/// How a stat is printed: `  Title: label value unit`.
#[derive(Clone, Copy)]
pub struct Text {
    pub title: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
}

/// The self metric carrying a stat: its name, tags and the factor from the stat's unit to the metric's.
#[derive(Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub tags: &'static [&'static str],
    pub scale: f64,
}

const fn text(title: &'static str, label: &'static str, unit: &'static str) -> Option<Text> {
    Some(Text { title, label, unit })
}

const fn line(title: &'static str) -> Option<Text> {
    text(title, "", "")
}

const fn metric(name: &'static str, tags: &'static [&'static str]) -> Option<Metric> {
    Some(Metric {
        name,
        tags,
        scale: 1.0,
    })
}

/// A metric in another unit than the stat: its value is the stat's times `scale`.
const fn scaled(name: &'static str, scale: f64) -> Option<Metric> {
    Some(Metric {
        name,
        tags: &[],
        scale,
    })
}

/// Defines [`STATS`] from one list: `Counter|Gauge telemetry.field => ["json", "path"], text, metric;`.
macro_rules! stats {
    ($($kind:ident $($field:ident).+ => [$($path:literal),+], $text:expr, $metric:expr;)+) => {
        /// Every stat, in the order `kelpie status` prints them.
        pub static STATS: &[Stat] = &[$(Stat {
            path: &[$($path),+],
            text: $text,
            metric: $metric,
            kind: Kind::$kind,
            read: |t| t.$($field).+.get() as i64,
        }),+];
    };
}

stats! {
    Counter flush.flushes => ["aggregator", "flushes"], line("Flushes"), None;
    Counter flush.series_flushed => ["aggregator", "series_flushed"], line("Series Flushed"), None;
    Counter flush.sketches_flushed => ["aggregator", "sketches_flushed"], line("Sketches Flushed"), None;
    Gauge flush.last_duration_us => ["aggregator", "last_flush_duration_us"],
        text("Last Flush Duration", "", "us"), scaled("kelpie.flush.duration", 1e-6);
    Gauge flush.last_flush_unix => ["aggregator", "last_flush_unix"], None, None;
    Counter dogstatsd.packets_udp => ["dogstatsd", "packets", "udp"],
        line("Udp Packets"), metric("kelpie.dogstatsd.packets", &["transport:udp"]);
    Counter dogstatsd.packets_uds_dgram => ["dogstatsd", "packets", "uds_dgram"],
        line("Uds Datagram Packets"), metric("kelpie.dogstatsd.packets", &["transport:uds_dgram"]);
    Counter dogstatsd.packets_uds_stream => ["dogstatsd", "packets", "uds_stream"],
        line("Uds Stream Packets"), metric("kelpie.dogstatsd.packets", &["transport:uds_stream"]);
    Counter dogstatsd.bytes => ["dogstatsd", "bytes"], text("Received", "", "bytes"), None;
    Counter dogstatsd.metric_samples => ["dogstatsd", "metric_samples"],
        line("Metric Samples"), metric("kelpie.dogstatsd.metric_samples", &[]);
    Counter dogstatsd.events => ["dogstatsd", "events"],
        line("Event Packets"), metric("kelpie.dogstatsd.events", &[]);
    Counter dogstatsd.service_checks => ["dogstatsd", "service_checks"],
        line("Service Check Packets"), metric("kelpie.dogstatsd.service_checks", &[]);
    Counter dogstatsd.parse_errors => ["dogstatsd", "parse_errors"],
        line("Parse Errors"), metric("kelpie.dogstatsd.parse_errors", &[]);
    Counter dogstatsd.histogram_samples_approximated => ["dogstatsd", "histogram_samples_approximated"],
        line("Histogram Samples Approximated"), metric("kelpie.dogstatsd.histogram_samples_approximated", &[]);
    Gauge dogstatsd.contexts => ["dogstatsd", "contexts"],
        line("Contexts"), metric("kelpie.dogstatsd.contexts", &[]);
    Gauge dogstatsd.context_limit => ["dogstatsd", "context_limit"],
        text("Contexts", "limit", ""), metric("kelpie.dogstatsd.context_limit", &[]);
    Gauge dogstatsd.udp_rcvbuf_requested => ["dogstatsd", "udp_rcvbuf_requested"],
        text("Udp Receive Buffer", "requested", "bytes"), None;
    Gauge dogstatsd.udp_rcvbuf_granted => ["dogstatsd", "udp_rcvbuf_granted"],
        text("Udp Receive Buffer", "granted", "bytes"), None;
    Gauge dogstatsd.queue_bytes => ["dogstatsd", "queue_bytes"],
        text("Queue", "", "bytes held"), metric("kelpie.dogstatsd.queue_bytes", &[]);
    Gauge dogstatsd.queue_max_bytes => ["dogstatsd", "queue_max_bytes"], text("Queue", "max", "bytes"), None;
    Gauge dogstatsd.pipelines => ["dogstatsd", "pipelines"], text("Queue", "", "workers"), None;
    Counter forwarder.success => ["forwarder", "transactions", "success"],
        text("Transactions", "Success", ""), metric("kelpie.forwarder.transactions", &["outcome:success"]);
    Counter forwarder.retried => ["forwarder", "transactions", "retried"],
        text("Transactions", "Retried", ""), metric("kelpie.forwarder.transactions", &["outcome:retried"]);
    Counter forwarder.bytes_sent => ["forwarder", "bytes_sent"],
        line("Bytes Sent"), metric("kelpie.forwarder.bytes_sent", &[]);
    Gauge forwarder.queued_transactions => ["forwarder", "queued_transactions"],
        text("Queued", "", "transactions"), None;
    Gauge forwarder.queued_bytes => ["forwarder", "queued_bytes"],
        text("Queued", "", "bytes in memory"), metric("kelpie.forwarder.queued_bytes", &[]);
    Gauge forwarder.queued_on_disk_bytes => ["forwarder", "queued_on_disk_bytes"],
        text("Queued", "", "bytes on disk"), metric("kelpie.forwarder.queued_on_disk_bytes", &[]);
}

/// The value at `path` in a status document (0 when absent).
pub fn value_at(doc: &serde_json::Value, path: &[&str]) -> i64 {
    path.iter().fold(doc, |v, k| &v[*k]).as_i64().unwrap_or(0)
}

/// Puts `value` at `path` in `doc`, making the objects on the way.
pub fn put(doc: &mut serde_json::Value, path: &[&str], value: serde_json::Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = doc;
    for k in parents {
        if !cur[*k].is_object() {
            cur[*k] = serde_json::json!({});
        }
        cur = &mut cur[*k];
    }
    cur[*last] = value;
}

/// The `kelpie status` lines of a section of the status document (`aggregator`, `dogstatsd`, `forwarder`):
/// one per title, its stats joined.
pub fn text_lines(doc: &serde_json::Value, section: &str) -> Vec<String> {
    let mut lines: Vec<(&str, Vec<String>)> = Vec::new();
    for s in STATS.iter().filter(|s| s.path[0] == section) {
        let Some(t) = s.text else { continue };
        let part = [t.label, &value_at(doc, s.path).to_string(), t.unit]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        match lines.last_mut() {
            Some((title, parts)) if *title == t.title => parts.push(part),
            _ => lines.push((t.title, vec![part])),
        }
    }
    lines
        .into_iter()
        .map(|(title, parts)| format!("  {title}: {}", parts.join(", ")))
        .collect()
}
