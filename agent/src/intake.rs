//! Datadog's intake as kelpie sees it: the endpoints it posts to, one request ready to send ([`Payload`]), and
//! the intake's documented limits. Shared by the encoders, which build payloads within the limits, and the
//! forwarder, which sends, retries and stores them, so neither imports the other.

use bytes::Bytes;

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

/// Datadog's documented event limits (`POST /api/v1/events`): longer fields are truncated here rather than
/// have the whole event refused.
pub const EVENT_TITLE_MAX_CHARS: usize = 100;
pub const EVENT_TEXT_MAX_CHARS: usize = 4000;
