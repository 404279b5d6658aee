//! Data types shared by the agent's stages: what the DogStatsD parser produces, what the aggregator flushes
//! and what the encoder turns into Datadog payloads. Kept in one place so the stages agree on one shape.

use crate::dogstatsd::number;
use kelpie_container::tags::TagCardinality;
use std::sync::Arc;

mod tagset;
pub use tagset::{TagIter, TagSet};

/// An interned string: metric names and hosts are stored once per aggregator and shared by every context and
/// flush that uses them.
pub type IStr = Arc<str>;

/// The host of a metric sent with an empty `host:` tag: it has no host at all, as with the Datadog Agent
/// (an empty host everywhere else means "this agent's hostname"). Never sent as such: the encoders send no
/// host for it.
pub const NO_HOST: &str = "\u{0}";

/// DogStatsD metric types (`c g s h ms d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// `c`: summed, sent as a rate.
    Counter,
    /// `g`: last value.
    Gauge,
    /// `s`: number of unique values, sent as a gauge.
    Set,
    /// `h`: aggregates and percentiles.
    Histogram,
    /// `ms`: like a histogram.
    Timer,
    /// `d`: a DDSketch, sent as sketches.
    Distribution,
}

/// One DogStatsD metric line, borrowing from the datagram it came in. Produced by
/// `dogstatsd::parse_line` without allocating; its numbers are read there, once.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricLine<'a> {
    /// Metric name, as sent (before mapper profiles).
    pub name: &'a str,
    /// Raw value field, as sent. For every kind but `Set` this is one or more `:`-separated numbers, read by
    /// the parser into [`MetricLine::numbers`] (value packing, `name:1:2:3|h`). For `Set` it is the member,
    /// taken as is.
    pub values: &'a str,
    /// The finite numbers of `values`, read once by the parser (NaN and infinities were counted as dropped
    /// there); [`Numbers::None`] for a set.
    pub numbers: Numbers<'a>,
    pub kind: MetricKind,
    /// `|@rate`, 1.0 when absent (and for `|@0`); always positive and finite, possibly above 1.
    pub sample_rate: f64,
    /// Raw tags field without the leading `#` (`a:b,c`); empty when absent.
    pub tags: &'a str,
    /// `|c:` field, when present (without the `c:`): `ci-<container id>`, `in-<cgroup inode>`, a bare id, or a list.
    pub container_id: Option<&'a str>,
    /// `|card:` field: the cardinality of the origin tags this line asks for (unknown values: `None`; see
    /// `dogstatsd::cardinality`).
    pub cardinality: Option<TagCardinality>,
    /// `|T<unix seconds>`: gauges and counters with a timestamp are not aggregated but forwarded as is (the
    /// parser refuses it on other types, as the Agent drops them).
    pub timestamp: Option<i64>,
}

impl<'a> MetricLine<'a> {
    /// The line `<name>:<value>|<kind>` as the parser makes it (rate 1, no tags, no other fields), for code
    /// that builds lines itself (tests, benchmarks): set the other fields with `..MetricLine::new(..)`.
    ///
    /// # Panics
    /// When `value` is not one finite number (for a set: any member). A `:`-packed line is parsed, with the
    /// arena its numbers go in (`dogstatsd::parse_line`).
    pub fn new(name: &'a str, value: &'a str, kind: MetricKind) -> Self {
        let numbers = match kind {
            MetricKind::Set => Numbers::None,
            _ => match number::parse_f64(value.as_bytes()) {
                Some(v) => Numbers::One(v),
                None => panic!("MetricLine::new takes one finite number, not {value:?}"),
            },
        };
        Self::with_numbers(name, value, numbers, kind)
    }

    /// A line whose numbers were already read (by the parser), with the defaults of absent fields.
    #[inline]
    pub(crate) fn with_numbers(
        name: &'a str,
        values: &'a str,
        numbers: Numbers<'a>,
        kind: MetricKind,
    ) -> Self {
        MetricLine {
            name,
            values,
            numbers,
            kind,
            sample_rate: 1.0,
            tags: "",
            container_id: None,
            cardinality: None,
            timestamp: None,
        }
    }

    /// Tags of the line, in the order sent (empty entries skipped).
    pub fn tags(&self) -> impl Iterator<Item = &'a str> + 'a {
        let raw: &'a str = self.tags;
        raw.split(',').filter(|t| !t.is_empty())
    }

    /// The line's finite numbers (one unless packed; none for a set).
    #[inline]
    pub fn numbers(&self) -> &[f64] {
        match &self.numbers {
            Numbers::None => &[],
            Numbers::One(v) => std::slice::from_ref(v),
            Numbers::Packed(v) => v,
        }
    }
}

/// The numbers of a metric line, read once by the parser: nearly every line holds one, held inline; the
/// numbers of a `:`-packed line are in the arena of the payload it came in (`dogstatsd::LineArena`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Numbers<'a> {
    /// A set's member is not a number.
    None,
    One(f64),
    /// Two or more finite numbers.
    Packed(&'a [f64]),
}

/// A DogStatsD event (`_e{…}`) or an event the agent makes itself (Docker, ECS deploys).
/// Serialized as the body of Datadog's `POST /api/v1/events` (`EventCreateRequest`).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Event {
    pub title: String,
    pub text: String,
    /// `d:` unix seconds; `date_happened` on the wire.
    #[serde(rename = "date_happened", skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// `h:`, else a `host:` tag; the agent's hostname when absent. `Some("")` (an empty `host:` tag) is no
    /// host at all, as with the Datadog Agent.
    #[serde(rename = "host", skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregation_key: Option<String>,
    /// `normal` or `low`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_type_name: Option<String>,
    /// `error`, `warning`, `info` or `success`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_type: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `c:` (the sender's container, for origin tags); not sent on.
    #[serde(skip)]
    pub container: Option<String>,
    /// `card:` (the cardinality of those origin tags); not sent on.
    #[serde(skip)]
    pub cardinality: Option<TagCardinality>,
}

/// A DogStatsD service check (`_sc|…`), sent in the JSON array of `POST /api/v1/check_run`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ServiceCheck {
    pub check: String,
    /// 0 ok, 1 warning, 2 critical, 3 unknown.
    pub status: u8,
    /// Unix seconds; the receive time when absent in the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    /// `h:`, else a `host:` tag; the agent's hostname when absent, no host for `Some("")` (as [`Event`]).
    #[serde(rename = "host_name", skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// `c:` (the sender's container, for origin tags); not sent on.
    #[serde(skip)]
    pub container: Option<String>,
    /// `card:` (the cardinality of those origin tags); not sent on.
    #[serde(skip)]
    pub cardinality: Option<TagCardinality>,
}

/// What one DogStatsD line is.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed<'a> {
    Metric(MetricLine<'a>),
    /// Boxed: events and service checks are rare and twice a metric line's size, which every parsed line
    /// would otherwise be moved around as.
    Event(Box<Event>),
    ServiceCheck(Box<ServiceCheck>),
}

/// Datadog's v2 series metric type (`MetricIntakeType`): 0 unspecified, 1 count, 2 rate, 3 gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum SeriesKind {
    Count = 1,
    Rate = 2,
    Gauge = 3,
}

/// One flushed series: a context and its points. Tags are the context's own (sorted, de-duplicated);
/// host tags are added by the encoder.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: IStr,
    pub tags: TagSet,
    /// Empty string means "the agent's hostname".
    pub host: IStr,
    pub kind: SeriesKind,
    /// Seconds; the flush interval for rates and counts, 0 for gauges.
    pub interval: i64,
    /// (unix seconds, value)
    pub points: Vec<(i64, f64)>,
}

/// One Datadog sketch point, exactly the fields of `SketchPayload.Sketch.Dogsketch`:
/// `k` are the agent's bin keys (sorted ascending), `n` their counts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SketchPoint {
    pub ts: i64,
    pub cnt: i64,
    pub min: f64,
    pub max: f64,
    pub avg: f64,
    pub sum: f64,
    pub k: Vec<i32>,
    pub n: Vec<u32>,
}

/// One flushed distribution context.
#[derive(Clone, Debug, PartialEq)]
pub struct SketchSeries {
    pub name: IStr,
    pub tags: TagSet,
    pub host: IStr,
    pub interval: i64,
    pub points: Vec<SketchPoint>,
}

/// Everything one flush produced.
#[derive(Clone, Debug, Default)]
pub struct FlushBatch {
    pub series: Vec<Series>,
    pub sketches: Vec<SketchSeries>,
}

impl Series {
    /// This series as the borrowed form a [`FlushSink`] takes.
    pub fn as_ref(&self) -> SeriesRef<'_> {
        SeriesRef {
            name: &self.name,
            tags: &self.tags,
            host: &self.host,
            kind: self.kind,
            interval: self.interval,
            points: &self.points,
        }
    }
}

impl SketchSeries {
    /// This sketch series as the borrowed form a [`FlushSink`] takes.
    pub fn as_ref(&self) -> SketchRef<'_> {
        SketchRef {
            name: &self.name,
            tags: &self.tags,
            host: &self.host,
            interval: self.interval,
            points: &self.points,
        }
    }
}

/// A flushed series, borrowed from the aggregator while it flushes (see [`Series`] for the fields). The
/// interned strings are handed out by reference so a consumer that keeps them (the history) clones the `Arc`
/// and one that only reads them (the encoder) copies nothing.
#[derive(Clone, Copy, Debug)]
pub struct SeriesRef<'a> {
    pub name: &'a IStr,
    pub tags: &'a TagSet,
    pub host: &'a IStr,
    pub kind: SeriesKind,
    pub interval: i64,
    pub points: &'a [(i64, f64)],
}

impl SeriesRef<'_> {
    pub fn to_owned(&self) -> Series {
        Series {
            name: self.name.clone(),
            tags: self.tags.clone(),
            host: self.host.clone(),
            kind: self.kind,
            interval: self.interval,
            points: self.points.to_vec(),
        }
    }
}

/// A flushed distribution context, borrowed (see [`SketchSeries`]).
#[derive(Clone, Copy, Debug)]
pub struct SketchRef<'a> {
    pub name: &'a IStr,
    pub tags: &'a TagSet,
    pub host: &'a IStr,
    pub interval: i64,
    pub points: &'a [SketchPoint],
}

impl SketchRef<'_> {
    pub fn to_owned(&self) -> SketchSeries {
        SketchSeries {
            name: self.name.clone(),
            tags: self.tags.clone(),
            host: self.host.clone(),
            interval: self.interval,
            points: self.points.to_vec(),
        }
    }
}

/// Where a flush goes, one series at a time, so that nothing needs to hold every flushed series at once: the
/// agent streams them into the encoder (and the local history); tests collect them in a [`FlushBatch`].
pub trait FlushSink {
    fn series(&mut self, s: SeriesRef<'_>);
    fn sketch(&mut self, s: SketchRef<'_>);
}

impl FlushSink for FlushBatch {
    fn series(&mut self, s: SeriesRef<'_>) {
        self.series.push(s.to_owned());
    }
    fn sketch(&mut self, s: SketchRef<'_>) {
        self.sketches.push(s.to_owned());
    }
}
