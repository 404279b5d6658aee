//! Turns flushed series, sketches, events and service checks into the request bodies Datadog's intake
//! accepts (SPEC §4), ready for the forwarder.
//!
//! - series → `POST /api/v2/series`: protobuf `MetricPayload` (or the JSON v2 body), zstd, split so each
//!   request stays within 512 000 bytes compressed and 5 242 880 bytes uncompressed;
//! - sketches → `POST /api/beta/sketches`: protobuf `SketchPayload`, zstd, within 3 200 000 / 62 914 560;
//! - events → `POST /api/v1/events`: one `EventCreateRequest` JSON per request;
//! - service checks → `POST /api/v1/check_run`: a JSON array.
//!
//! The host (`EncodeConfig::hostname` when the item has none) and the host tags are added here, so every
//! other stage can ignore them.
//!
//! Splitting: every item is encoded once on its own; items are then packed into chunks whose size is
//! estimated from the uncompressed length and the compression ratio seen so far; a chunk that still
//! compresses above the limit is split in half and both halves are tried again. An item too large to fit in
//! any request on its own is dropped, logged and counted in [`EncodeOutcome::dropped_too_large`].

pub mod proto;
#[cfg(test)]
mod tests;

use crate::model::{
    Event, Series, SeriesKind, SeriesRef, ServiceCheck, SketchRef, SketchSeries, NO_HOST,
};
use bytes::Bytes;
use prost::Message;
use std::io::Write;

/// zstd level used for series and sketches: level 1 is fast and already shrinks series ~5-10×.
const ZSTD_LEVEL: i32 = 1;

/// Largest uncompressed body kelpie builds before compressing it, below Datadog's limits: the open body is
/// the flush's only uncompressed buffer, and 1 MiB (about 100 kB once compressed) keeps it small next to the
/// contexts while still sending thousands of series per request.
const MAX_BODY_BEFORE_COMPRESSION: usize = 1 << 20;

/// Datadog's documented event limits (`POST /api/v1/events`): longer fields are truncated here rather than
/// have the whole event refused.
pub const EVENT_TITLE_MAX_CHARS: usize = 100;
pub const EVENT_TEXT_MAX_CHARS: usize = 4000;

/// What the encoder needs to know about the agent.
#[derive(Clone, Debug)]
pub struct EncodeConfig {
    /// Host of every series, sketch, event and check that has none.
    pub hostname: String,
    /// Host tags (`tags` + `env:<env>`), added to everything sent.
    pub host_tags: Vec<String>,
    /// Series as protobuf (true, the default) or as JSON v2.
    pub use_protobuf: bool,
}

impl Default for EncodeConfig {
    fn default() -> Self {
        EncodeConfig {
            hostname: String::new(),
            host_tags: Vec::new(),
            use_protobuf: true,
        }
    }
}

/// The intake endpoints kelpie posts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Series,
    Sketches,
    Events,
    CheckRun,
    Profile,
}

impl Endpoint {
    /// Path below the intake's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Series => "/api/v2/series",
            Endpoint::Sketches => "/api/beta/sketches",
            Endpoint::Events => "/api/v1/events",
            Endpoint::CheckRun => "/api/v1/check_run",
            Endpoint::Profile => "/api/v2/profile",
        }
    }

    /// A short stable name (used in logs and in the forwarder's files on disk).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Series => "series",
            Endpoint::Sketches => "sketches",
            Endpoint::Events => "events",
            Endpoint::CheckRun => "check_run",
            Endpoint::Profile => "profile",
        }
    }

    /// The inverse of [`Endpoint::name`].
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Some(match name {
            "series" => Endpoint::Series,
            "sketches" => Endpoint::Sketches,
            "events" => Endpoint::Events,
            "check_run" => Endpoint::CheckRun,
            "profile" => Endpoint::Profile,
            _ => return None,
        })
    }
}

/// One request body, ready to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    pub endpoint: Endpoint,
    /// The body as sent (compressed when `content_encoding` is set).
    pub body: Bytes,
    /// Owned for profiles, whose multipart boundary differs per upload.
    pub content_type: std::borrow::Cow<'static, str>,
    pub content_encoding: Option<&'static str>,
    /// Length of the body before compression.
    pub uncompressed_len: usize,
    /// How many series, sketches, events or checks the payload carries.
    pub items: usize,
}

/// Why encoding failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("could not serialize the payload as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("could not compress the payload: {0}")]
    Compress(#[from] std::io::Error),
}

/// Payloads plus what had to be left out.
#[derive(Debug, Default)]
pub struct EncodeOutcome {
    pub payloads: Vec<Payload>,
    /// Items larger than a whole request on their own: dropped (and logged). Count them as
    /// `payload_too_large`.
    pub dropped_too_large: usize,
}

/// Size limits of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body allowed as sent.
    pub max_compressed: usize,
    /// Largest body allowed once decompressed.
    pub max_uncompressed: usize,
}

/// Datadog's `/api/v2/series` limits: 500 kB (512 000 bytes) compressed, 5 MB (5 242 880) uncompressed.
pub const SERIES_LIMITS: Limits = Limits {
    max_compressed: 512_000,
    max_uncompressed: 5_242_880,
};
/// Datadog's sketches limits: 3.2 MB (3 200 000 bytes) compressed, 62 MB (62 914 560) uncompressed.
pub const SKETCH_LIMITS: Limits = Limits {
    max_compressed: 3_200_000,
    max_uncompressed: 62_914_560,
};

pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// How encoded items are joined into one body.
struct Framing {
    prefix: &'static [u8],
    separator: &'static [u8],
    suffix: &'static [u8],
}

/// Protobuf repeated field 1: records are simply concatenated.
const PROTO_SERIES: Framing = Framing {
    prefix: b"",
    separator: b"",
    suffix: b"",
};
/// `SketchPayload`: records, then the (non-nullable, empty) `metadata` field 2.
const PROTO_SKETCHES: Framing = Framing {
    prefix: b"",
    separator: b"",
    suffix: &[0x12, 0x00],
};
const JSON_SERIES: Framing = Framing {
    prefix: b"{\"series\":[",
    separator: b",",
    suffix: b"]}",
};
const JSON_ARRAY: Framing = Framing {
    prefix: b"[",
    separator: b",",
    suffix: b"]",
};

#[derive(Clone, Copy)]
enum Codec {
    Zstd,
    Deflate,
}

impl Codec {
    fn content_encoding(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Deflate => "deflate",
        }
    }

    fn compress(self, data: &[u8]) -> Result<Vec<u8>, std::io::Error> {
        self.compress_parts(&[data])
    }

    /// Compresses the concatenation of `parts` without first copying them into one buffer.
    fn compress_parts(self, parts: &[&[u8]]) -> Result<Vec<u8>, std::io::Error> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        match self {
            Codec::Zstd => {
                let mut enc =
                    zstd::stream::Encoder::new(Vec::with_capacity(len / 4 + 64), ZSTD_LEVEL)?;
                enc.set_pledged_src_size(Some(len as u64))?;
                for p in parts {
                    enc.write_all(p)?;
                }
                enc.finish()
            }
            Codec::Deflate => {
                let mut enc = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(len / 4 + 64),
                    flate2::Compression::fast(),
                );
                for p in parts {
                    enc.write_all(p)?;
                }
                enc.finish()
            }
        }
    }
}

/// Encodes series for `POST /api/v2/series`; oversized series are dropped and logged.
pub fn encode_series(cfg: &EncodeConfig, series: &[Series]) -> Result<Vec<Payload>, EncodeError> {
    Ok(encode_series_outcome(cfg, series)?.payloads)
}

/// Like [`encode_series`], also telling how many series were too large to send.
pub fn encode_series_outcome(
    cfg: &EncodeConfig,
    series: &[Series],
) -> Result<EncodeOutcome, EncodeError> {
    encode_series_with_limits(cfg, series, SERIES_LIMITS)
}

/// [`encode_series_outcome`] with explicit limits (tests use small ones).
pub fn encode_series_with_limits(
    cfg: &EncodeConfig,
    series: &[Series],
    limits: Limits,
) -> Result<EncodeOutcome, EncodeError> {
    let mut enc = SeriesEncoder::with_limits(cfg, limits);
    for s in series {
        enc.push(s.as_ref());
    }
    enc.finish()
}

/// Encodes series one at a time as they are flushed, compressing each request body as soon as it is full, so
/// that memory holds one uncompressed body at most rather than every series of the flush.
pub struct SeriesEncoder<'c> {
    cfg: &'c EncodeConfig,
    packer: StreamPacker,
}

impl<'c> SeriesEncoder<'c> {
    pub fn new(cfg: &'c EncodeConfig) -> Self {
        Self::with_limits(cfg, SERIES_LIMITS)
    }

    pub fn with_limits(cfg: &'c EncodeConfig, limits: Limits) -> Self {
        let (content_type, framing) = if cfg.use_protobuf {
            (CONTENT_TYPE_PROTOBUF, &PROTO_SERIES)
        } else {
            (CONTENT_TYPE_JSON, &JSON_SERIES)
        };
        let packer = StreamPacker::new(
            Endpoint::Series,
            content_type,
            Codec::Zstd,
            framing,
            limits,
            "series",
        );
        SeriesEncoder { cfg, packer }
    }

    /// Adds one series (a failure is kept and reported by [`SeriesEncoder::finish`]).
    pub fn push(&mut self, s: SeriesRef<'_>) {
        let cfg = self.cfg;
        self.packer.push_with(|rec| {
            if cfg.use_protobuf {
                write_series_record(cfg, &s, rec);
                Ok(())
            } else {
                Ok(serde_json::to_writer(rec, &series_to_json(cfg, &s))?)
            }
        });
    }

    pub fn finish(self) -> Result<EncodeOutcome, EncodeError> {
        self.packer.finish()
    }
}

/// Sketch counterpart of [`SeriesEncoder`].
pub struct SketchEncoder<'c> {
    cfg: &'c EncodeConfig,
    packer: StreamPacker,
}

impl<'c> SketchEncoder<'c> {
    pub fn new(cfg: &'c EncodeConfig) -> Self {
        Self::with_limits(cfg, SKETCH_LIMITS)
    }

    pub fn with_limits(cfg: &'c EncodeConfig, limits: Limits) -> Self {
        let packer = StreamPacker::new(
            Endpoint::Sketches,
            CONTENT_TYPE_PROTOBUF,
            Codec::Zstd,
            &PROTO_SKETCHES,
            limits,
            "sketch",
        );
        SketchEncoder { cfg, packer }
    }

    /// Adds one sketch series (a failure is kept and reported by [`SketchEncoder::finish`]).
    pub fn push(&mut self, s: SketchRef<'_>) {
        let msg = sketch_to_proto(self.cfg, &s);
        self.packer.push_with(|rec| {
            write_field_record(1, &msg, rec);
            Ok(())
        });
    }

    pub fn finish(self) -> Result<EncodeOutcome, EncodeError> {
        self.packer.finish()
    }
}

/// Encodes sketches for `POST /api/beta/sketches`; oversized sketches are dropped and logged.
pub fn encode_sketches(
    cfg: &EncodeConfig,
    sketches: &[SketchSeries],
) -> Result<Vec<Payload>, EncodeError> {
    Ok(encode_sketches_outcome(cfg, sketches)?.payloads)
}

/// Like [`encode_sketches`], also telling how many sketches were too large to send.
pub fn encode_sketches_outcome(
    cfg: &EncodeConfig,
    sketches: &[SketchSeries],
) -> Result<EncodeOutcome, EncodeError> {
    encode_sketches_with_limits(cfg, sketches, SKETCH_LIMITS)
}

/// [`encode_sketches_outcome`] with explicit limits (tests use small ones).
pub fn encode_sketches_with_limits(
    cfg: &EncodeConfig,
    sketches: &[SketchSeries],
    limits: Limits,
) -> Result<EncodeOutcome, EncodeError> {
    let mut enc = SketchEncoder::with_limits(cfg, limits);
    for s in sketches {
        enc.push(s.as_ref());
    }
    enc.finish()
}

/// Encodes one event as Datadog's `EventCreateRequest` (host defaulted, host tags added, title and text
/// truncated to Datadog's limits).
pub fn encode_event(cfg: &EncodeConfig, ev: &Event) -> Result<Payload, EncodeError> {
    let mut ev = ev.clone();
    // `Some("")` stays: an empty `host:` tag asked for no host.
    if ev.hostname.is_none() {
        ev.hostname = Some(cfg.hostname.clone());
    }
    add_host_tags(&mut ev.tags, &cfg.host_tags);
    truncate_chars(&mut ev.title, EVENT_TITLE_MAX_CHARS);
    truncate_chars(&mut ev.text, EVENT_TEXT_MAX_CHARS);
    let raw = serde_json::to_vec(&ev)?;
    let codec = Codec::Deflate;
    let body = codec.compress(&raw)?;
    Ok(Payload {
        endpoint: Endpoint::Events,
        body: Bytes::from(body),
        content_type: CONTENT_TYPE_JSON.into(),
        content_encoding: Some(codec.content_encoding()),
        uncompressed_len: raw.len(),
        items: 1,
    })
}

/// Encodes service checks as the JSON array of `POST /api/v1/check_run` (host defaulted, host tags
/// added), split like series.
pub fn encode_service_checks(
    cfg: &EncodeConfig,
    checks: &[ServiceCheck],
) -> Result<Vec<Payload>, EncodeError> {
    let mut p = StreamPacker::new(
        Endpoint::CheckRun,
        CONTENT_TYPE_JSON,
        Codec::Deflate,
        &JSON_ARRAY,
        SERIES_LIMITS,
        "service check",
    );
    for c in checks {
        let mut c = c.clone();
        if c.hostname.is_none() {
            c.hostname = Some(cfg.hostname.clone());
        }
        add_host_tags(&mut c.tags, &cfg.host_tags);
        p.push_with(|rec| Ok(serde_json::to_writer(rec, &c)?));
    }
    Ok(p.finish()?.payloads)
}

/// The host a series is sent with: the agent's for none given, nothing (`""`) for [`NO_HOST`].
fn host_of<'a>(cfg: &'a EncodeConfig, host: &'a str) -> &'a str {
    if host.is_empty() {
        &cfg.hostname
    } else if host == NO_HOST {
        ""
    } else {
        host
    }
}

fn add_host_tags(tags: &mut Vec<String>, host_tags: &[String]) {
    for t in host_tags {
        if !tags.iter().any(|x| x == t) {
            tags.push(t.clone());
        }
    }
}

fn merged_tags(own: &[crate::model::IStr], host_tags: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::with_capacity(own.len() + host_tags.len());
    tags.extend(own.iter().map(|t| t.to_string()));
    add_host_tags(&mut tags, host_tags);
    tags
}

fn truncate_chars(s: &mut String, max_chars: usize) {
    if let Some((idx, _)) = s.char_indices().nth(max_chars) {
        s.truncate(idx);
    }
}

fn kind_code(kind: SeriesKind) -> i32 {
    match kind {
        SeriesKind::Count => proto::metric_type::COUNT,
        SeriesKind::Rate => proto::metric_type::RATE,
        SeriesKind::Gauge => proto::metric_type::GAUGE,
    }
}

/// The prost form of one series; the agent writes the same bytes with [`write_series_record`], which the
/// tests check against this.
#[cfg(test)]
fn series_to_proto(cfg: &EncodeConfig, s: &SeriesRef<'_>) -> proto::MetricSeries {
    let host = host_of(cfg, s.host);
    proto::MetricSeries {
        resources: if host.is_empty() {
            Vec::new()
        } else {
            vec![proto::Resource {
                r#type: "host".into(),
                name: host.to_string(),
            }]
        },
        metric: s.name.to_string(),
        tags: merged_tags(s.tags, &cfg.host_tags),
        points: s
            .points
            .iter()
            .map(|&(timestamp, value)| proto::MetricPoint { value, timestamp })
            .collect(),
        r#type: kind_code(s.kind),
        unit: String::new(),
        source_type_name: String::new(),
        interval: s.interval,
        metadata: None,
    }
}

/// Protobuf writers for the few field types a `MetricSeries` uses, with proto3's rule that a field holding
/// its default value is left out (so the bytes equal prost's).
mod pb {
    use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};

    pub fn str_len(tag: u32, s: &str) -> usize {
        if s.is_empty() {
            0
        } else {
            prost::encoding::key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
        }
    }
    /// A repeated string element is written even when empty.
    pub fn rep_str_len(tag: u32, s: &str) -> usize {
        prost::encoding::key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
    }
    pub fn put_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
        if !s.is_empty() {
            put_rep_str(tag, s, buf);
        }
    }
    pub fn put_rep_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.extend_from_slice(s.as_bytes());
    }
    pub fn i64_len(tag: u32, v: i64) -> usize {
        if v == 0 {
            0
        } else {
            prost::encoding::key_len(tag) + encoded_len_varint(v as u64)
        }
    }
    pub fn put_i64(tag: u32, v: i64, buf: &mut Vec<u8>) {
        if v != 0 {
            encode_key(tag, WireType::Varint, buf);
            encode_varint(v as u64, buf);
        }
    }
    pub fn f64_len(tag: u32, v: f64) -> usize {
        // As prost: left out when `v == 0.0` (so -0.0 too).
        if v == 0.0 {
            0
        } else {
            prost::encoding::key_len(tag) + 8
        }
    }
    pub fn put_f64(tag: u32, v: f64, buf: &mut Vec<u8>) {
        if v != 0.0 {
            encode_key(tag, WireType::SixtyFourBit, buf);
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
    pub fn msg_len(tag: u32, body: usize) -> usize {
        prost::encoding::key_len(tag) + encoded_len_varint(body as u64) + body
    }
    pub fn put_msg_header(tag: u32, body: usize, buf: &mut Vec<u8>) {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(body as u64, buf);
    }
}

/// Writes one series as field 1 of `MetricPayload` (`MetricSeries`: resources 1, metric 2, tags 3, points 4,
/// type 5, interval 8), straight from the borrowed strings. Hand-written rather than through prost's
/// generated struct because that needs an owned `String` per name, tag and host, i.e. about ten allocations
/// per series on every flush; the bytes are the same (checked in the tests).
fn write_series_record(cfg: &EncodeConfig, s: &SeriesRef<'_>, buf: &mut Vec<u8>) {
    let host = host_of(cfg, s.host);
    // Host tags not already among the series' own tags nor earlier host tags (as `merged_tags`).
    let ht = &cfg.host_tags;
    let extra =
        |&(i, t): &(usize, &String)| !s.tags.iter().any(|o| **o == **t) && !ht[..i].contains(t);
    // A series without a host (`host:` sent empty) has no host resource, as the Datadog Agent sends it.
    let resource = pb::str_len(1, "host") + pb::str_len(2, host);
    let resources = if host.is_empty() {
        0
    } else {
        pb::msg_len(1, resource)
    };
    let point = |&(ts, v): &(i64, f64)| pb::f64_len(1, v) + pb::i64_len(2, ts);
    let body = resources
        + pb::str_len(2, s.name)
        + s.tags.iter().map(|t| pb::rep_str_len(3, t)).sum::<usize>()
        + ht.iter()
            .enumerate()
            .filter(extra)
            .map(|(_, t)| pb::rep_str_len(3, t))
            .sum::<usize>()
        + s.points
            .iter()
            .map(|p| pb::msg_len(4, point(p)))
            .sum::<usize>()
        + pb::i64_len(5, kind_code(s.kind) as i64)
        + pb::i64_len(8, s.interval);
    buf.reserve(pb::msg_len(1, body));
    pb::put_msg_header(1, body, buf);
    if !host.is_empty() {
        pb::put_msg_header(1, resource, buf);
        pb::put_str(1, "host", buf);
        pb::put_str(2, host, buf);
    }
    pb::put_str(2, s.name, buf);
    for t in s.tags.iter() {
        pb::put_rep_str(3, t, buf);
    }
    for (_, t) in ht.iter().enumerate().filter(extra) {
        pb::put_rep_str(3, t, buf);
    }
    for p in s.points {
        pb::put_msg_header(4, point(p), buf);
        pb::put_f64(1, p.1, buf);
        pb::put_i64(2, p.0, buf);
    }
    pb::put_i64(5, kind_code(s.kind) as i64, buf);
    pb::put_i64(8, s.interval, buf);
}

fn series_to_json(cfg: &EncodeConfig, s: &SeriesRef<'_>) -> serde_json::Value {
    // JSON cannot carry NaN or infinities; Datadog would refuse the whole request.
    let points: Vec<serde_json::Value> = s
        .points
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|&(ts, v)| serde_json::json!({ "timestamp": ts, "value": v }))
        .collect();
    let host = host_of(cfg, s.host);
    let resources: Vec<serde_json::Value> = if host.is_empty() {
        Vec::new()
    } else {
        vec![serde_json::json!({ "type": "host", "name": host })]
    };
    serde_json::json!({
        "metric": &**s.name,
        "type": kind_code(s.kind),
        "interval": s.interval,
        "points": points,
        "resources": resources,
        "tags": merged_tags(s.tags, &cfg.host_tags),
    })
}

fn sketch_to_proto(cfg: &EncodeConfig, s: &SketchRef<'_>) -> proto::Sketch {
    proto::Sketch {
        metric: s.name.to_string(),
        host: host_of(cfg, s.host).to_string(),
        distributions: Vec::new(),
        tags: merged_tags(s.tags, &cfg.host_tags),
        dogsketches: s
            .points
            .iter()
            .map(|p| proto::Dogsketch {
                ts: p.ts,
                cnt: p.cnt,
                min: p.min,
                max: p.max,
                avg: p.avg,
                sum: p.sum,
                k: p.k.clone(),
                n: p.n.clone(),
            })
            .collect(),
        metadata: None,
    }
}

/// Appends one length-delimited field `tag` holding `msg` to `buf`: concatenating such records for field 1
/// gives a valid repeated field of the enclosing message.
fn write_field_record<M: Message>(tag: u32, msg: &M, buf: &mut Vec<u8>) {
    let len = msg.encoded_len();
    buf.reserve(len + 11);
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(len as u64, buf);
    // `encode` writes the message's fields without a length prefix; it cannot fail on a growable Vec.
    let _ = msg.encode(buf);
}

/// Packs records into request bodies as they come: a body grows while its uncompressed size and its size
/// estimated from the compression ratio seen so far fit the limits, then it is compressed and kept; a body
/// that still compresses above the limit is split in half (at record boundaries) and both halves are tried
/// again. A record too large for any request on its own is dropped, logged and counted.
struct StreamPacker {
    endpoint: Endpoint,
    content_type: &'static str,
    codec: Codec,
    framing: &'static Framing,
    limits: Limits,
    what: &'static str,
    /// The open body: prefix, then records joined by the separator (the suffix is added when it is closed).
    raw: Vec<u8>,
    /// Start of each record of the open body in `raw`.
    starts: Vec<usize>,
    /// The record being written (see [`StreamPacker::push_with`]).
    rec: Vec<u8>,
    /// Observed compression ratio (uncompressed / compressed), used to size the next body.
    ratio: f64,
    /// The first failure; later records are ignored and [`StreamPacker::finish`] reports it.
    error: Option<EncodeError>,
    out: EncodeOutcome,
}

impl StreamPacker {
    fn new(
        endpoint: Endpoint,
        content_type: &'static str,
        codec: Codec,
        framing: &'static Framing,
        limits: Limits,
        what: &'static str,
    ) -> Self {
        StreamPacker {
            endpoint,
            content_type,
            codec,
            framing,
            limits,
            what,
            raw: Vec::new(),
            starts: Vec::new(),
            rec: Vec::new(),
            ratio: 2.0,
            error: None,
            out: EncodeOutcome::default(),
        }
    }

    /// Adds the record `write` puts into an empty buffer. Failures (of `write` or of compressing a full body)
    /// are kept for [`StreamPacker::finish`], so a flush can stream into it without handling them per record.
    fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>) {
        if self.error.is_some() {
            return;
        }
        self.rec.clear();
        let res = write(&mut self.rec).and_then(|()| self.push_record());
        if let Err(e) = res {
            self.error = Some(e);
        }
    }

    fn budget(&self) -> usize {
        let estimated = (self.limits.max_compressed as f64 * self.ratio * 0.9) as usize;
        self.limits
            .max_uncompressed
            .min(estimated.max(1))
            .min(MAX_BODY_BEFORE_COMPRESSION)
    }

    /// Appends `self.rec` to the open body, closing the body first when the record would not fit.
    fn push_record(&mut self) -> Result<(), EncodeError> {
        let f = self.framing;
        if !self.starts.is_empty()
            && self.raw.len() + f.separator.len() + self.rec.len() + f.suffix.len() > self.budget()
        {
            self.close_body()?;
        }
        if self.starts.is_empty() {
            self.raw.clear();
            self.raw.extend_from_slice(f.prefix);
        } else {
            self.raw.extend_from_slice(f.separator);
        }
        self.starts.push(self.raw.len());
        self.raw.extend_from_slice(&self.rec);
        Ok(())
    }

    fn close_body(&mut self) -> Result<(), EncodeError> {
        if self.starts.is_empty() {
            return Ok(());
        }
        let raw = std::mem::take(&mut self.raw);
        let starts = std::mem::take(&mut self.starts);
        let res = self.emit(&raw, &starts, 0, starts.len());
        // Keep the allocations for the next body.
        self.raw = raw;
        self.starts = starts;
        self.starts.clear();
        res
    }

    /// Byte range of records `a..b` of `raw` (without separators around them).
    fn span(&self, raw: &[u8], starts: &[usize], a: usize, b: usize) -> std::ops::Range<usize> {
        let end = if b < starts.len() {
            starts[b] - self.framing.separator.len()
        } else {
            raw.len()
        };
        starts[a]..end
    }

    /// Compresses records `a..b` of the open body into one payload, halving until each part fits.
    fn emit(
        &mut self,
        raw: &[u8],
        starts: &[usize],
        a: usize,
        b: usize,
    ) -> Result<(), EncodeError> {
        if a >= b {
            return Ok(());
        }
        let f = self.framing;
        let span = self.span(raw, starts, a, b);
        let raw_len = f.prefix.len() + span.len() + f.suffix.len();
        if raw_len > self.limits.max_uncompressed {
            return self.split_or_drop(raw, starts, a, b, raw_len, None);
        }
        let body = self
            .codec
            .compress_parts(&[f.prefix, &raw[span], f.suffix])?;
        if !body.is_empty() {
            self.ratio = (raw_len as f64 / body.len() as f64).max(1.0);
        }
        if body.len() > self.limits.max_compressed {
            return self.split_or_drop(raw, starts, a, b, raw_len, Some(body.len()));
        }
        self.out.payloads.push(Payload {
            endpoint: self.endpoint,
            body: Bytes::from(body),
            content_type: self.content_type.into(),
            content_encoding: Some(self.codec.content_encoding()),
            uncompressed_len: raw_len,
            items: b - a,
        });
        Ok(())
    }

    fn split_or_drop(
        &mut self,
        raw: &[u8],
        starts: &[usize],
        a: usize,
        b: usize,
        raw_len: usize,
        compressed: Option<usize>,
    ) -> Result<(), EncodeError> {
        if b - a == 1 {
            tracing::error!(
                endpoint = self.endpoint.name(),
                uncompressed_bytes = raw_len,
                compressed_bytes = compressed,
                max_compressed = self.limits.max_compressed,
                max_uncompressed = self.limits.max_uncompressed,
                "dropping one {} larger than Datadog accepts in a single request",
                self.what
            );
            self.out.dropped_too_large += 1;
            return Ok(());
        }
        let mid = a + (b - a) / 2;
        self.emit(raw, starts, a, mid)?;
        self.emit(raw, starts, mid, b)
    }

    fn finish(mut self) -> Result<EncodeOutcome, EncodeError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.close_body()?;
        Ok(self.out)
    }
}
