//! Datadog's intake protobuf messages, hand-written with `prost` derives (there is no `protoc` on the build
//! machines). Field numbers and wire types follow `proto/metrics/agent_payload.proto` of DataDog/agent-payload
//! (package `datadog.agentpayload`): `MetricPayload` for `POST /api/v2/series` and `SketchPayload` for
//! `POST /api/beta/sketches`. Note `Dogsketch.k` is `sint32` (zig-zag) and `n` is `uint32`, both packed.

/// `datadog.agentpayload.CommonMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CommonMetadata {
    #[prost(string, tag = "1")]
    pub agent_version: String,
    #[prost(string, tag = "2")]
    pub timezone: String,
    #[prost(double, tag = "3")]
    pub current_epoch: f64,
    #[prost(string, tag = "4")]
    pub internal_ip: String,
    #[prost(string, tag = "5")]
    pub public_ip: String,
    #[prost(string, tag = "6")]
    pub api_key: String,
}

/// `datadog.agentpayload.Origin` (fields 1-3 are reserved).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Origin {
    #[prost(uint32, tag = "4")]
    pub origin_product: u32,
    #[prost(uint32, tag = "5")]
    pub origin_category: u32,
    #[prost(uint32, tag = "6")]
    pub origin_service: u32,
}

/// `datadog.agentpayload.Metadata`, used by both `MetricSeries` and `Sketch`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(message, optional, tag = "1")]
    pub origin: Option<Origin>,
}

/// `datadog.agentpayload.MetricPayload`: the body of `POST /api/v2/series`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricPayload {
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<MetricSeries>,
}

/// `MetricPayload.MetricType`: 0 unspecified, 1 count, 2 rate, 3 gauge (an enum, i.e. a varint on the wire).
pub mod metric_type {
    pub const UNSPECIFIED: i32 = 0;
    pub const COUNT: i32 = 1;
    pub const RATE: i32 = 2;
    pub const GAUGE: i32 = 3;
}

/// `MetricPayload.MetricPoint`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricPoint {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Unix seconds.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `MetricPayload.Resource`: the host is `{ type: "host", name: <hostname> }`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub name: String,
}

/// `MetricPayload.MetricSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricSeries {
    #[prost(message, repeated, tag = "1")]
    pub resources: Vec<Resource>,
    #[prost(string, tag = "2")]
    pub metric: String,
    #[prost(string, repeated, tag = "3")]
    pub tags: Vec<String>,
    #[prost(message, repeated, tag = "4")]
    pub points: Vec<MetricPoint>,
    /// `MetricType` enum (see [`metric_type`]).
    #[prost(int32, tag = "5")]
    pub r#type: i32,
    #[prost(string, tag = "6")]
    pub unit: String,
    #[prost(string, tag = "7")]
    pub source_type_name: String,
    /// Seconds between samples, for rates and counts.
    #[prost(int64, tag = "8")]
    pub interval: i64,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<Metadata>,
}

/// `datadog.agentpayload.SketchPayload`: the body of `POST /api/beta/sketches`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SketchPayload {
    #[prost(message, repeated, tag = "1")]
    pub sketches: Vec<Sketch>,
    /// Non-nullable in the Go definition, so always written (possibly empty).
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<CommonMetadata>,
}

/// `SketchPayload.Sketch` (fields 5 and 6 are reserved).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sketch {
    #[prost(string, tag = "1")]
    pub metric: String,
    #[prost(string, tag = "2")]
    pub host: String,
    #[prost(message, repeated, tag = "3")]
    pub distributions: Vec<Distribution>,
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
    #[prost(message, repeated, tag = "7")]
    pub dogsketches: Vec<Dogsketch>,
    #[prost(message, optional, tag = "8")]
    pub metadata: Option<Metadata>,
}

/// `SketchPayload.Sketch.Distribution` (the legacy GK format; never written by kelpie, kept for decoding).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Distribution {
    #[prost(int64, tag = "1")]
    pub ts: i64,
    #[prost(int64, tag = "2")]
    pub cnt: i64,
    #[prost(double, tag = "3")]
    pub min: f64,
    #[prost(double, tag = "4")]
    pub max: f64,
    #[prost(double, tag = "5")]
    pub avg: f64,
    #[prost(double, tag = "6")]
    pub sum: f64,
    #[prost(double, repeated, tag = "7")]
    pub v: Vec<f64>,
    #[prost(uint32, repeated, tag = "8")]
    pub g: Vec<u32>,
    #[prost(uint32, repeated, tag = "9")]
    pub delta: Vec<u32>,
    #[prost(double, repeated, tag = "10")]
    pub buf: Vec<f64>,
}

/// `SketchPayload.Sketch.Dogsketch`: one DDSketch point.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dogsketch {
    #[prost(int64, tag = "1")]
    pub ts: i64,
    #[prost(int64, tag = "2")]
    pub cnt: i64,
    #[prost(double, tag = "3")]
    pub min: f64,
    #[prost(double, tag = "4")]
    pub max: f64,
    #[prost(double, tag = "5")]
    pub avg: f64,
    #[prost(double, tag = "6")]
    pub sum: f64,
    /// Bin keys, zig-zag encoded.
    #[prost(sint32, repeated, tag = "7")]
    pub k: Vec<i32>,
    /// Bin counts.
    #[prost(uint32, repeated, tag = "8")]
    pub n: Vec<u32>,
}
