//! The intake's own decoding view of Datadog's `agent_payload.proto` (DataDog/agent-payload,
//! package `datadog.agentpayload`). Written separately from the agent's encoder on purpose: the stand-in
//! checks the agent against the field numbers and wire types, not against itself.

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricPayload {
    #[prost(message, repeated, tag = "1")]
    pub series: Vec<MetricSeries>,
}

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
    /// `MetricType`: 0 unspecified, 1 count, 2 rate, 3 gauge.
    #[prost(int32, tag = "5")]
    pub r#type: i32,
    #[prost(string, tag = "6")]
    pub unit: String,
    #[prost(string, tag = "7")]
    pub source_type_name: String,
    #[prost(int64, tag = "8")]
    pub interval: i64,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<Metadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Resource {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricPoint {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(message, optional, tag = "1")]
    pub origin: Option<Origin>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Origin {
    #[prost(uint32, tag = "4")]
    pub origin_product: u32,
    #[prost(uint32, tag = "5")]
    pub origin_category: u32,
    #[prost(uint32, tag = "6")]
    pub origin_service: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SketchPayload {
    #[prost(message, repeated, tag = "1")]
    pub sketches: Vec<Sketch>,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<CommonMetadata>,
}

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

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sketch {
    #[prost(string, tag = "1")]
    pub metric: String,
    #[prost(string, tag = "2")]
    pub host: String,
    /// Legacy GK distributions (field 3); only counted, kelpie never writes them.
    #[prost(bytes = "vec", repeated, tag = "3")]
    pub distributions: Vec<Vec<u8>>,
    #[prost(string, repeated, tag = "4")]
    pub tags: Vec<String>,
    #[prost(message, repeated, tag = "7")]
    pub dogsketches: Vec<Dogsketch>,
    #[prost(message, optional, tag = "8")]
    pub metadata: Option<Metadata>,
}

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
    #[prost(sint32, repeated, tag = "7")]
    pub k: Vec<i32>,
    #[prost(uint32, repeated, tag = "8")]
    pub n: Vec<u32>,
}
