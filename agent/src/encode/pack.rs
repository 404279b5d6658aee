//! Packing encoded records into request bodies within the intake's limits: records are joined with their
//! framing into an open body whose size is estimated from the compression ratio seen so far; a body that still
//! compresses above the limit is split in half and both halves tried again; a record too large on its own is
//! dropped, logged and counted.

use super::{EncodeError, EncodeOutcome};
use crate::intake::{Endpoint, Limits, Payload};
use bytes::Bytes;
use std::io::Write;

/// zstd level used for series and sketches: level 1 is fast and already shrinks series ~5-10×.
const ZSTD_LEVEL: i32 = 1;

/// Largest uncompressed body kelpie builds before compressing it, below Datadog's limits: the open body is
/// the flush's only uncompressed buffer, and 1 MiB (about 100 kB once compressed) keeps it small next to the
/// contexts while still sending thousands of series per request.
const MAX_BODY_BEFORE_COMPRESSION: usize = 1 << 20;

/// How encoded items are joined into one body.
pub(super) struct Framing {
    prefix: &'static [u8],
    separator: &'static [u8],
    suffix: &'static [u8],
}

/// Protobuf repeated field 1: records are simply concatenated.
pub(super) const PROTO_SERIES: Framing = Framing {
    prefix: b"",
    separator: b"",
    suffix: b"",
};
/// `SketchPayload`: records, then the (non-nullable, empty) `metadata` field 2.
pub(super) const PROTO_SKETCHES: Framing = Framing {
    prefix: b"",
    separator: b"",
    suffix: &[0x12, 0x00],
};
pub(super) const JSON_SERIES: Framing = Framing {
    prefix: b"{\"series\":[",
    separator: b",",
    suffix: b"]}",
};
pub(super) const JSON_ARRAY: Framing = Framing {
    prefix: b"[",
    separator: b",",
    suffix: b"]",
};

#[derive(Clone, Copy)]
pub(super) enum Codec {
    Zstd,
    Deflate,
}

impl Codec {
    pub(super) fn content_encoding(self) -> &'static str {
        match self {
            Codec::Zstd => "zstd",
            Codec::Deflate => "deflate",
        }
    }

    pub(super) fn compress(self, data: &[u8]) -> Result<Vec<u8>, std::io::Error> {
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

/// Packs records into request bodies as they come: a body grows while its uncompressed size and its size
/// estimated from the compression ratio seen so far fit the limits, then it is compressed and kept; a body
/// that still compresses above the limit is split in half (at record boundaries) and both halves are tried
/// again. A record too large for any request on its own is dropped, logged and counted.
pub(super) struct StreamPacker {
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
    pub(super) fn new(
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
    pub(super) fn push_with(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
    ) {
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
        let mut body = self
            .codec
            .compress_parts(&[f.prefix, &raw[span], f.suffix])?;
        // The output buffer was sized for a poor ratio; a queued payload keeps only what it uses.
        body.shrink_to_fit();
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

    pub(super) fn finish(mut self) -> Result<EncodeOutcome, EncodeError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.close_body()?;
        Ok(self.out)
    }
}
