//! Datadog monitors as code: Terraform-syntax files (both the provider's `datadog_monitor` and the compact
//! `datadog_monitor_metric`) are loaded, validated offline, unit-tested on synthetic series, compared with the
//! account after the API's normalizations, and synced with ownership tags so that only this project's monitors
//! are ever touched.
//!
//! Docs are read with private items (`cargo doc -p kelpie-monitors --document-private-items`); the clap argument
//! docs are `--help` text, where `<NAME>` is a placeholder, not an HTML tag.
#![allow(rustdoc::private_intra_doc_links, rustdoc::invalid_html_tags)]

pub mod against;
pub mod alerting;
pub mod api;
pub mod cli;
pub mod diag;
pub mod eval;
pub mod funcs;
pub mod import;
pub mod load;
pub mod model;
pub mod monitor_test;
pub mod plan;
pub mod progress;
pub mod query;
pub mod ratelimit;
