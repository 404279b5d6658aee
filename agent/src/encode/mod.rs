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
//!
//! Files: `series.rs` and `sketch.rs` (one streaming encoder each), `pack.rs` (framing, compression and
//! splitting), `proto.rs` (the protobuf messages); events and service checks, small, are here. The endpoints,
//! [`Payload`] and the intake's limits are `crate::intake`, shared with the forwarder.

mod pack;
pub mod proto;
mod series;
mod sketch;
#[cfg(test)]
mod tests;

pub use crate::intake::{Endpoint, Payload};
pub use series::SeriesEncoder;
pub use sketch::SketchEncoder;

use crate::intake::{
    CONTENT_TYPE_JSON, EVENT_TEXT_MAX_CHARS, EVENT_TITLE_MAX_CHARS, SERIES_LIMITS,
};
use crate::model::{Event, ServiceCheck, NO_HOST};
use bytes::Bytes;
use pack::{Codec, StreamPacker, JSON_ARRAY};

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

fn merged_tags(own: &crate::model::TagSet, host_tags: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = Vec::with_capacity(host_tags.len() + 8);
    tags.extend(own.iter().map(str::to_string));
    add_host_tags(&mut tags, host_tags);
    tags
}

fn truncate_chars(s: &mut String, max_chars: usize) {
    if let Some((idx, _)) = s.char_indices().nth(max_chars) {
        s.truncate(idx);
    }
}
