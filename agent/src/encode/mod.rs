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

use crate::model::{Event, Series, SeriesKind, ServiceCheck, SketchSeries};
use bytes::Bytes;
use prost::Message;
use std::io::Write;

/// zstd level used for series and sketches: level 1 is fast and already shrinks series ~5-10×.
const ZSTD_LEVEL: i32 = 1;

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
        match self {
            Codec::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL),
            Codec::Deflate => {
                let mut enc = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(data.len() / 4 + 64),
                    flate2::Compression::fast(),
                );
                enc.write_all(data)?;
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
    let mut records = Vec::with_capacity(series.len());
    if cfg.use_protobuf {
        for s in series {
            let msg = series_to_proto(cfg, s);
            records.push(field_record(1, &msg));
        }
        pack(
            Endpoint::Series,
            CONTENT_TYPE_PROTOBUF,
            Codec::Zstd,
            &PROTO_SERIES,
            records,
            limits,
            "series",
        )
    } else {
        for s in series {
            records.push(serde_json::to_vec(&series_to_json(cfg, s))?);
        }
        pack(
            Endpoint::Series,
            CONTENT_TYPE_JSON,
            Codec::Zstd,
            &JSON_SERIES,
            records,
            limits,
            "series",
        )
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
    let records = sketches
        .iter()
        .map(|s| field_record(1, &sketch_to_proto(cfg, s)))
        .collect();
    pack(
        Endpoint::Sketches,
        CONTENT_TYPE_PROTOBUF,
        Codec::Zstd,
        &PROTO_SKETCHES,
        records,
        limits,
        "sketch",
    )
}

/// Encodes one event as Datadog's `EventCreateRequest` (host defaulted, host tags added, title and text
/// truncated to Datadog's limits).
pub fn encode_event(cfg: &EncodeConfig, ev: &Event) -> Result<Payload, EncodeError> {
    let mut ev = ev.clone();
    if ev.hostname.as_deref().is_none_or(str::is_empty) {
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
    let mut records = Vec::with_capacity(checks.len());
    for c in checks {
        let mut c = c.clone();
        if c.hostname.as_deref().is_none_or(str::is_empty) {
            c.hostname = Some(cfg.hostname.clone());
        }
        add_host_tags(&mut c.tags, &cfg.host_tags);
        records.push(serde_json::to_vec(&c)?);
    }
    Ok(pack(
        Endpoint::CheckRun,
        CONTENT_TYPE_JSON,
        Codec::Deflate,
        &JSON_ARRAY,
        records,
        SERIES_LIMITS,
        "service check",
    )?
    .payloads)
}

fn host_of<'a>(cfg: &'a EncodeConfig, host: &'a str) -> &'a str {
    if host.is_empty() {
        &cfg.hostname
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

fn series_to_proto(cfg: &EncodeConfig, s: &Series) -> proto::MetricSeries {
    proto::MetricSeries {
        resources: vec![proto::Resource {
            r#type: "host".into(),
            name: host_of(cfg, &s.host).to_string(),
        }],
        metric: s.name.to_string(),
        tags: merged_tags(&s.tags, &cfg.host_tags),
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

fn series_to_json(cfg: &EncodeConfig, s: &Series) -> serde_json::Value {
    // JSON cannot carry NaN or infinities; Datadog would refuse the whole request.
    let points: Vec<serde_json::Value> = s
        .points
        .iter()
        .filter(|(_, v)| v.is_finite())
        .map(|&(ts, v)| serde_json::json!({ "timestamp": ts, "value": v }))
        .collect();
    serde_json::json!({
        "metric": &*s.name,
        "type": kind_code(s.kind),
        "interval": s.interval,
        "points": points,
        "resources": [{ "type": "host", "name": host_of(cfg, &s.host) }],
        "tags": merged_tags(&s.tags, &cfg.host_tags),
    })
}

fn sketch_to_proto(cfg: &EncodeConfig, s: &SketchSeries) -> proto::Sketch {
    proto::Sketch {
        metric: s.name.to_string(),
        host: host_of(cfg, &s.host).to_string(),
        distributions: Vec::new(),
        tags: merged_tags(&s.tags, &cfg.host_tags),
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

/// One length-delimited field `tag` holding `msg`: concatenating such records for field 1 gives a valid
/// repeated field of the enclosing message.
fn field_record<M: Message>(tag: u32, msg: &M) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut buf = Vec::with_capacity(len + 11);
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, &mut buf);
    prost::encoding::encode_varint(len as u64, &mut buf);
    // `encode` writes the message's fields without a length prefix; it cannot fail on a growable Vec.
    let _ = msg.encode(&mut buf);
    buf
}

fn framed_len(framing: &Framing, records: &[Vec<u8>]) -> usize {
    let sep = framing.separator.len() * records.len().saturating_sub(1);
    framing.prefix.len() + framing.suffix.len() + sep + records.iter().map(Vec::len).sum::<usize>()
}

fn frame(framing: &Framing, records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(framed_len(framing, records));
    out.extend_from_slice(framing.prefix);
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(framing.separator);
        }
        out.extend_from_slice(r);
    }
    out.extend_from_slice(framing.suffix);
    out
}

struct Packer<'a> {
    endpoint: Endpoint,
    content_type: &'static str,
    codec: Codec,
    framing: &'a Framing,
    limits: Limits,
    what: &'static str,
    out: EncodeOutcome,
    /// Observed compression ratio (uncompressed / compressed), used to size the next chunk.
    ratio: f64,
}

fn pack(
    endpoint: Endpoint,
    content_type: &'static str,
    codec: Codec,
    framing: &Framing,
    records: Vec<Vec<u8>>,
    limits: Limits,
    what: &'static str,
) -> Result<EncodeOutcome, EncodeError> {
    let mut p = Packer {
        endpoint,
        content_type,
        codec,
        framing,
        limits,
        what,
        out: EncodeOutcome::default(),
        ratio: 2.0,
    };
    let fixed = framing.prefix.len() + framing.suffix.len();
    let mut start = 0;
    while start < records.len() {
        // Grow the chunk while its uncompressed size and estimated compressed size fit.
        let budget_uncompressed = p.limits.max_uncompressed;
        let budget_estimated = (p.limits.max_compressed as f64 * p.ratio * 0.9) as usize;
        let budget = budget_uncompressed.min(budget_estimated.max(1));
        let mut end = start;
        let mut size = fixed;
        while end < records.len() {
            let add = records[end].len()
                + if end > start {
                    framing.separator.len()
                } else {
                    0
                };
            if end > start && size + add > budget {
                break;
            }
            size += add;
            end += 1;
        }
        p.emit(&records[start..end])?;
        start = end;
    }
    Ok(p.out)
}

impl Packer<'_> {
    /// Compresses `chunk` into one payload, halving it until each part fits the limits.
    fn emit(&mut self, chunk: &[Vec<u8>]) -> Result<(), EncodeError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let raw_len = framed_len(self.framing, chunk);
        if raw_len > self.limits.max_uncompressed {
            return self.split_or_drop(chunk, raw_len, None);
        }
        let raw = frame(self.framing, chunk);
        let body = self.codec.compress(&raw)?;
        if !body.is_empty() {
            self.ratio = (raw.len() as f64 / body.len() as f64).max(1.0);
        }
        if body.len() > self.limits.max_compressed {
            return self.split_or_drop(chunk, raw_len, Some(body.len()));
        }
        self.out.payloads.push(Payload {
            endpoint: self.endpoint,
            body: Bytes::from(body),
            content_type: self.content_type.into(),
            content_encoding: Some(self.codec.content_encoding()),
            uncompressed_len: raw.len(),
            items: chunk.len(),
        });
        Ok(())
    }

    fn split_or_drop(
        &mut self,
        chunk: &[Vec<u8>],
        raw_len: usize,
        compressed: Option<usize>,
    ) -> Result<(), EncodeError> {
        if chunk.len() == 1 {
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
        let mid = chunk.len() / 2;
        self.emit(&chunk[..mid])?;
        self.emit(&chunk[mid..])
    }
}
