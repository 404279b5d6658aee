//! Series for `POST /api/v2/series`: [`SeriesEncoder`] streams them into protobuf `MetricPayload` bodies
//! (written by hand, straight from the borrowed strings) or JSON v2 bodies, with the host and host tags added.

use super::pack::{Codec, StreamPacker, JSON_SERIES, PROTO_SERIES};
use super::{host_of, merged_tags, proto, EncodeConfig, EncodeError, EncodeOutcome};
use crate::intake::{Endpoint, Limits, CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF, SERIES_LIMITS};
use crate::model::{SeriesKind, SeriesRef};

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

pub(super) fn kind_code(kind: SeriesKind) -> i32 {
    match kind {
        SeriesKind::Count => proto::metric_type::COUNT,
        SeriesKind::Rate => proto::metric_type::RATE,
        SeriesKind::Gauge => proto::metric_type::GAUGE,
    }
}

/// The prost form of one series; the agent writes the same bytes with [`write_series_record`], which the
/// tests check against this.
#[cfg(test)]
pub(super) fn series_to_proto(cfg: &EncodeConfig, s: &SeriesRef<'_>) -> proto::MetricSeries {
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
pub(super) fn write_series_record(cfg: &EncodeConfig, s: &SeriesRef<'_>, buf: &mut Vec<u8>) {
    let host = host_of(cfg, s.host);
    // Host tags not already among the series' own tags nor earlier host tags (as `merged_tags`).
    let ht = &cfg.host_tags;
    let extra = |&(i, t): &(usize, &String)| {
        !s.tags.iter().any(|o| o == t.as_str()) && !ht[..i].contains(t)
    };
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
