//! The kelpie agent: a DogStatsD sink, host and container collector, aggregator and Datadog forwarder.
//!
//! Data flow (see ARCHITECTURE.md and [`pipeline`]): inputs (`dogstatsd`, `host`, container collectors) feed the
//! `aggregator`; the flusher closes buckets every flush interval, `encode`s them into Datadog payloads and
//! hands them to the `forwarder` (or, in local mode, only to the `history` store served by `status`).
//! Every stage is bounded: full queues are counted drops in `telemetry`, never unbounded growth.
//!
//! The crate is the agent's inside, not a published API: its docs are read with private items
//! (`cargo doc -p kelpie-agent --document-private-items`), so module docs link to the private parts they name.
#![allow(rustdoc::private_intra_doc_links)]

pub mod aggregator;
pub mod clock;
pub mod config;
pub mod containers;
pub mod dogstatsd;
pub mod encode;
pub mod flush;
pub mod forwarder;
pub mod history;
pub mod host;
pub mod intake;
pub mod mapper;
pub mod memory;
pub mod model;
pub mod outage;
pub mod pipeline;
pub mod prefetch;
pub mod profiles;
pub mod recent;
pub mod secret;
pub mod sketch;
pub mod startup;
pub mod status;
pub mod telemetry;
pub mod top;
pub mod web;
