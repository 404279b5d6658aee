//! Sketches (distributions) for `POST /api/beta/sketches`: [`SketchEncoder`] streams them into protobuf
//! `SketchPayload` bodies, with the host and host tags added.

use super::pack::{Codec, StreamPacker, PROTO_SKETCHES};
use super::{host_of, merged_tags, proto, EncodeConfig, EncodeError, EncodeOutcome};
use crate::intake::{Endpoint, Limits, CONTENT_TYPE_PROTOBUF, SKETCH_LIMITS};
use crate::model::SketchRef;
use prost::Message;

/// Sketch counterpart of [`SeriesEncoder`](super::SeriesEncoder).
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
pub(super) fn write_field_record<M: Message>(tag: u32, msg: &M, buf: &mut Vec<u8>) {
    let len = msg.encoded_len();
    buf.reserve(len + 11);
    prost::encoding::encode_key(tag, prost::encoding::WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(len as u64, buf);
    // `encode` writes the message's fields without a length prefix; it cannot fail on a growable Vec.
    let _ = msg.encode(buf);
}
