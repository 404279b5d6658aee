//! Every counter and gauge of [`Telemetry`] declared once, in the `telemetry!` list below: the field it is
//! counted in, where it sits in the status JSON, how `kelpie status` prints it and which `kelpie.*` metric
//! carries it. The macro makes both the structs ([`FlushTelemetry`], [`DogstatsdTelemetry`],
//! [`ForwarderTelemetry`], [`EncodeTelemetry`] and [`Telemetry`]) and [`STATS`], from which the status JSON,
//! the status text and the self metrics are all derived (drops from [`DropReason`](super::DropReason)'s
//! table), so a number cannot show in one and be missing from another. Nor can a field be added without
//! saying where it shows: each is either a stat (a row of [`STATS`]) or marked `internal`, its doc comment
//! saying why and where it shows instead.

use super::{Counter, Gauge, Reasons};
use parking_lot::Mutex;

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

/// Declares the telemetry structs, [`Telemetry`] (one field per struct) and [`STATS`] from one list, so each
/// number is written once, with where it shows. The list is of structs, in the order `kelpie status` prints
/// their stats:
///
/// ```text
/// /// What the struct counts.
/// pub struct NameTelemetry in field_of_telemetry {
///     /// What it counts.
///     Counter|Gauge name => ["status", "json", "path"], text, metric;
///     /// What it holds, and why it is no stat (where it shows instead, if anywhere).
///     internal name: Type;
/// }
/// ```
///
/// A stat becomes a field of its struct and a row of [`STATS`] (`text`: [`line`](fn@line), [`text`] or `None`;
/// `metric`: [`metric`], [`scaled`] or `None`); an `internal` field only a field. Every entry needs its doc
/// comment; anything else is a compile error.
macro_rules! telemetry {
    // The next struct: its entries one by one.
    (@struct [$($done:tt)*] [$($rows:tt)*]
        $(#[$attr:meta])* pub struct $name:ident in $section:ident { $($entries:tt)* } $($more:tt)*
    ) => {
        telemetry!(@entry [$($done)*] [$($rows)*] [$(#[$attr])* $name $section] [] [$($entries)*] $($more)*);
    };
    // Every struct read: the structs, `Telemetry` and `STATS`.
    (@struct [$($(#[$attr:meta])* $name:ident $section:ident { $($fields:tt)* })*] [$($rows:tt)*]) => {
        $(
            $(#[$attr])*
            #[derive(Debug, Default)]
            pub struct $name { $($fields)* }
        )*

        /// All of the agent's counters. Shared as `Arc<Telemetry>`.
        #[derive(Debug, Default)]
        pub struct Telemetry { $(pub $section: $name,)* }

        /// Every stat, in the order `kelpie status` prints them.
        pub static STATS: &[Stat] = &[$($rows)*];
    };
    (@struct [$($done:tt)*] [$($rows:tt)*] $($bad:tt)*) => {
        compile_error!(concat!(
            "expected `/// doc` then `pub struct NameTelemetry in field { entries }`, not: ",
            stringify!($($bad)*)
        ));
    };
    // The struct's entries are all read.
    (@entry [$($done:tt)*] [$($rows:tt)*] [$(#[$attr:meta])* $name:ident $section:ident] [$($fields:tt)*] []
        $($more:tt)*
    ) => {
        telemetry!(@struct [$($done)* $(#[$attr])* $name $section { $($fields)* }] [$($rows)*] $($more)*);
    };
    // A field that is no stat.
    (@entry [$($done:tt)*] [$($rows:tt)*] [$($head:tt)*] [$($fields:tt)*]
        [$(#[$doc:meta])+ internal $field:ident: $ty:ty; $($rest:tt)*] $($more:tt)*
    ) => {
        telemetry!(@entry [$($done)*] [$($rows)*] [$($head)*] [$($fields)* $(#[$doc])+ pub $field: $ty,]
            [$($rest)*] $($more)*);
    };
    // A stat: a field and a row.
    (@entry [$($done:tt)*] [$($rows:tt)*] [$(#[$attr:meta])* $name:ident $section:ident] [$($fields:tt)*]
        [$(#[$doc:meta])+ $kind:ident $field:ident => [$($path:literal),+], $text:expr, $metric:expr;
            $($rest:tt)*]
        $($more:tt)*
    ) => {
        telemetry!(@entry [$($done)*]
            [$($rows)* Stat {
                path: &[$($path),+],
                text: $text,
                metric: $metric,
                kind: Kind::$kind,
                read: |t| t.$section.$field.get() as i64,
            },]
            [$(#[$attr])* $name $section] [$($fields)* $(#[$doc])+ pub $field: $kind,] [$($rest)*] $($more)*);
    };
    // Anything else in a struct.
    (@entry [$($done:tt)*] [$($rows:tt)*] [$($head:tt)*] [$($fields:tt)*] [$($bad:tt)*] $($more:tt)*) => {
        compile_error!(concat!(
            "a telemetry entry is `/// doc` then `Counter|Gauge name => [\"json\", \"path\"], text, metric;` ",
            "or `internal name: Type;`, not: ",
            stringify!($($bad)*)
        ));
    };
    ($($structs:tt)+) => {
        telemetry!(@struct [] [] $($structs)+);
    };
}

telemetry! {
    /// Flush loop counters (`aggregator` section of the status).
    pub struct FlushTelemetry in flush {
        /// Flushes completed.
        Counter flushes => ["aggregator", "flushes"], line("Flushes"), None;
        /// Series the flushes handed to the encoders.
        Counter series_flushed => ["aggregator", "series_flushed"], line("Series Flushed"), None;
        /// Sketches the flushes handed to the encoders.
        Counter sketches_flushed => ["aggregator", "sketches_flushed"], line("Sketches Flushed"), None;
        /// Duration of the last flush in microseconds.
        Gauge last_duration_us => ["aggregator", "last_flush_duration_us"],
            text("Last Flush Duration", "", "us"), scaled("kelpie.flush.duration", 1e-6);
        /// Unix seconds of the last completed flush (0 before the first); `/health` is built on it.
        Gauge last_flush_unix => ["aggregator", "last_flush_unix"], None, None;
    }

    /// DogStatsD input counters (`dogstatsd` section of the status).
    pub struct DogstatsdTelemetry in dogstatsd {
        /// Datagrams received on the UDP sockets.
        Counter packets_udp => ["dogstatsd", "packets", "udp"],
            line("Udp Packets"), metric("kelpie.dogstatsd.packets", &["transport:udp"]);
        /// Datagrams received on the Unix datagram socket.
        Counter packets_uds_dgram => ["dogstatsd", "packets", "uds_dgram"],
            line("Uds Datagram Packets"), metric("kelpie.dogstatsd.packets", &["transport:uds_dgram"]);
        /// Frames received on the Unix stream socket.
        Counter packets_uds_stream => ["dogstatsd", "packets", "uds_stream"],
            line("Uds Stream Packets"), metric("kelpie.dogstatsd.packets", &["transport:uds_stream"]);
        /// Bytes received, every transport.
        Counter bytes => ["dogstatsd", "bytes"], text("Received", "", "bytes"), None;
        /// Metric samples parsed.
        Counter metric_samples => ["dogstatsd", "metric_samples"],
            line("Metric Samples"), metric("kelpie.dogstatsd.metric_samples", &[]);
        /// Events parsed.
        Counter events => ["dogstatsd", "events"],
            line("Event Packets"), metric("kelpie.dogstatsd.events", &[]);
        /// Service checks parsed.
        Counter service_checks => ["dogstatsd", "service_checks"],
            line("Service Check Packets"), metric("kelpie.dogstatsd.service_checks", &[]);
        /// Lines that could not be parsed.
        Counter parse_errors => ["dogstatsd", "parse_errors"],
            line("Parse Errors"), metric("kelpie.dogstatsd.parse_errors", &[]);
        /// Histogram samples whose context's percentiles had to come from a sketch (the histogram memory
        /// budget, derived from `memory_limit`, was spent); 0 means every percentile was exact.
        Counter histogram_samples_approximated => ["dogstatsd", "histogram_samples_approximated"],
            line("Histogram Samples Approximated"),
            metric("kelpie.dogstatsd.histogram_samples_approximated", &[]);
        /// Live contexts in the aggregator.
        Gauge contexts => ["dogstatsd", "contexts"], line("Contexts"), metric("kelpie.dogstatsd.contexts", &[]);
        /// Most contexts held; new ones past it are refused (`dropped.context_limit`).
        Gauge context_limit => ["dogstatsd", "context_limit"],
            text("Contexts", "limit", ""), metric("kelpie.dogstatsd.context_limit", &[]);
        /// 1 while the limit is lowered to the contexts held because the agent's RSS is near `memory_limit`.
        /// Not a number to show: the status shows it as the limit's reason (`context_limit_reason`).
        internal context_limit_lowered: Gauge;
        /// The UDP receive buffer asked for (`dogstatsd_so_rcvbuf`, or the default), in bytes.
        Gauge udp_rcvbuf_requested => ["dogstatsd", "udp_rcvbuf_requested"],
            text("Udp Receive Buffer", "requested", "bytes"), None;
        /// The UDP receive buffer the kernel granted, in bytes.
        Gauge udp_rcvbuf_granted => ["dogstatsd", "udp_rcvbuf_granted"],
            text("Udp Receive Buffer", "granted", "bytes"), None;
        /// Bytes held by batches waiting between the socket readers and the workers.
        Gauge queue_bytes => ["dogstatsd", "queue_bytes"],
            text("Queue", "", "bytes held"), metric("kelpie.dogstatsd.queue_bytes", &[]);
        /// The queue's bound (`dogstatsd_queue_bytes`).
        Gauge queue_max_bytes => ["dogstatsd", "queue_max_bytes"], text("Queue", "max", "bytes"), None;
        /// Processing workers (`dogstatsd_pipeline_count`).
        Gauge pipelines => ["dogstatsd", "pipelines"], text("Queue", "", "workers"), None;
        /// What was dropped, by reason: shown (`dogstatsd.dropped`, `kelpie.dogstatsd.dropped`) from the
        /// reasons' own table ([`DropReason`](super::DropReason)), not from [`STATS`].
        internal dropped: Reasons;
    }

    /// Forwarder counters (`forwarder` section of the status).
    pub struct ForwarderTelemetry in forwarder {
        /// Payloads the intake accepted.
        Counter success => ["forwarder", "transactions", "success"],
            text("Transactions", "Success", ""), metric("kelpie.forwarder.transactions", &["outcome:success"]);
        /// Sends that failed and will be retried.
        Counter retried => ["forwarder", "transactions", "retried"],
            text("Transactions", "Retried", ""), metric("kelpie.forwarder.transactions", &["outcome:retried"]);
        /// Bytes of the payloads the intake accepted.
        Counter bytes_sent => ["forwarder", "bytes_sent"],
            line("Bytes Sent"), metric("kelpie.forwarder.bytes_sent", &[]);
        /// Payloads waiting (memory + disk).
        Gauge queued_transactions => ["forwarder", "queued_transactions"],
            text("Queued", "", "transactions"), None;
        /// Bytes of the payloads waiting in memory.
        Gauge queued_bytes => ["forwarder", "queued_bytes"],
            text("Queued", "", "bytes in memory"), metric("kelpie.forwarder.queued_bytes", &[]);
        /// Bytes of the payloads waiting on disk (`forwarder_storage_path`).
        Gauge queued_on_disk_bytes => ["forwarder", "queued_on_disk_bytes"],
            text("Queued", "", "bytes on disk"), metric("kelpie.forwarder.queued_on_disk_bytes", &[]);
        /// What was dropped, by reason: shown (`forwarder.transactions.dropped`, `kelpie.forwarder.dropped`)
        /// from the reasons' own table ([`DropReason`](super::DropReason)), not from [`STATS`].
        internal dropped: Reasons;
        /// Last error seen talking to the intake: text, not a number, shown as `forwarder.last_error`.
        internal last_error: Mutex<Option<String>>;
        /// Unix seconds of the first failure of the outage in progress; 0 while delivering. A time, not a
        /// number to sum or graph: the status shows it as `forwarder.delivering` and
        /// `forwarder.not_delivering_since` (absent while delivering).
        internal not_delivering_since: Gauge;
    }

    /// Encoding counters (`encode` section of the status): what a flush could not turn into payloads.
    pub struct EncodeTelemetry in encode {
        /// What was dropped, by reason: shown (`encode.dropped`, `kelpie.encode.dropped`) from the reasons'
        /// own table ([`DropReason`](super::DropReason)), not from [`STATS`].
        internal dropped: Reasons;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_unique_and_holds_no_other() {
        for (i, a) in STATS.iter().enumerate() {
            for b in &STATS[i + 1..] {
                let n = a.path.len().min(b.path.len());
                assert_ne!(a.path[..n], b.path[..n], "{:?} and {:?}", a.path, b.path);
            }
        }
    }

    #[test]
    fn each_read_gives_its_own_field() {
        let t = Telemetry::default();
        t.dogstatsd.packets_uds_stream.add(3);
        t.forwarder.queued_on_disk_bytes.set(-4);
        let read = |path: &[&str]| (STATS.iter().find(|s| s.path == path).unwrap().read)(&t);
        assert_eq!(read(&["dogstatsd", "packets", "uds_stream"]), 3);
        assert_eq!(read(&["forwarder", "queued_on_disk_bytes"]), -4);
        assert_eq!(read(&["dogstatsd", "packets", "udp"]), 0);
    }
}
