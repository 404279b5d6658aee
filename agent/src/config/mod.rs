//! Agent configuration: an optional YAML file with the Datadog Agent's key names, every key overridable by a
//! `DD_<KEY>` environment variable, plus kelpie's own `KELPIE_*` variables (SPEC.md §2).
//!
//! Every value is checked at start; a bad one stops the agent with one sentence naming the key, where it came
//! from and the value. Unknown keys in the file are warned about once.
//!
//! Each setting is defined once, in [`keys::KEYS`] (name, source, default, check, meaning); the rest reads it:
//! - `keys.rs`: the table, and the names and suggestions derived from it;
//! - `sources.rs`: reading the file and the environment, with each value's origin;
//! - `check.rs`: the typed readers, one per kind of check;
//! - `build.rs`: what each setting becomes in [`Config`], and the settings worked out from others;
//! - `display.rs`: `kelpie agent --help`, `kelpie config` and the unknown-key warnings.

mod build;
mod check;
mod display;
pub mod keys;
mod sources;
#[cfg(test)]
mod tests;

pub use check::{parse_duration, parse_size};
pub use display::env_help;
pub use keys::{suggest_key, MAX_DOGSTATSD_BUFFER_SIZE};

use kelpie_container::filter::ContainerFilter;
use kelpie_container::tags::{TagCardinality, TagRules};
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default location of the config file; a missing default file is fine.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/kelpie/kelpie.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // Not a `source`: the reason is in the sentence, so that a chain printer does not repeat it.
    #[error("cannot read config file {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("config file {path} is not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("invalid value for `{key}` (from {origin}): {value:?} {reason}")]
    Invalid {
        key: &'static str,
        origin: String,
        value: String,
        reason: String,
    },
}

/// One mapper profile mapping (`dogstatsd_mapper_profiles[].mappings[]`).
pub type MapperProfilesValue = Value;

/// The agent's configuration, fully validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Never printed: see [`crate::secret::Secret`].
    pub api_key: Option<crate::secret::Secret>,
    pub site: String,
    /// Intake base URL without trailing slash (`dd_url`, or `https://api.<site>`).
    pub dd_url: String,
    pub hostname: String,
    /// Host tags (`tags` plus `env:<env>`), added to everything sent.
    pub host_tags: Vec<String>,
    pub env: Option<String>,
    pub dogstatsd_port: u16,
    pub bind_host: String,
    pub dogstatsd_non_local_traffic: bool,
    pub dogstatsd_socket: Option<PathBuf>,
    pub dogstatsd_stream_socket: Option<PathBuf>,
    pub dogstatsd_origin_detection: bool,
    /// Use the container a client names in a line's `|c:` field (Datadog's key; off by default as there).
    pub dogstatsd_origin_detection_client: bool,
    /// Which container tags origin detection adds (Datadog's key; `low` by default as there).
    pub dogstatsd_tag_cardinality: TagCardinality,
    /// `container_labels_as_tags` / `container_env_as_tags` (and their `docker_` spellings).
    pub container_tag_rules: TagRules,
    /// `container_exclude` / `container_include` (and `_metrics`), `exclude_pause_container`.
    pub container_metrics_filter: ContainerFilter,
    /// `statsd_metric_blocklist`: DogStatsD metric names dropped (and counted) before aggregation.
    pub statsd_metric_blocklist: Vec<String>,
    /// `statsd_metric_blocklist_match_prefix`: the blocklist's names are prefixes.
    pub statsd_metric_blocklist_match_prefix: bool,
    pub dogstatsd_buffer_size: usize,
    pub dogstatsd_so_rcvbuf: usize,
    /// Bytes the queue between the socket readers and the workers may hold (`dogstatsd_queue_bytes`; default
    /// an eighth of `memory_limit`, between 4 MiB and 64 MiB).
    pub dogstatsd_queue_bytes: u64,
    /// Processing workers (`dogstatsd_pipeline_count`; 0, the default: one per core).
    pub dogstatsd_pipeline_count: usize,
    pub dogstatsd_tags: Vec<String>,
    pub dogstatsd_mapper_profiles: Option<MapperProfilesValue>,
    pub dogstatsd_expiry_seconds: i64,
    pub histogram_aggregates: Vec<String>,
    pub histogram_percentiles: Vec<f64>,
    pub ecs_agent_url: String,
    pub container_collection: bool,
    pub docker_host: Option<String>,
    pub memory_limit: u64,
    pub forwarder_storage_path: Option<PathBuf>,
    pub forwarder_storage_max_size_in_bytes: u64,
    pub forwarder_timeout: Duration,
    /// Retry backoff: base and cap (Datadog's `forwarder_backoff_base` 2 s, `forwarder_backoff_max` 64 s).
    pub forwarder_backoff_base: Duration,
    pub forwarder_backoff_max: Duration,
    pub flush_interval: Duration,
    pub status_addr: SocketAddr,
    pub profiles_addr: Option<SocketAddr>,
    pub history_memory: u64,
    pub host_proc: PathBuf,
    pub host_sys: PathBuf,
    /// A `tracing` level: `trace`, `debug`, `info`, `warn`, `error` or `off` (Datadog's `warning` and
    /// `critical` are read as `warn` and `error`).
    pub log_level: String,
    /// `log_format_json`: one JSON object per log line instead of readable text.
    pub log_format_json: bool,
    /// Keys of the file that kelpie does not know (warned about once at start).
    pub unknown_keys: Vec<String>,
    /// `DD_*` environment variables that are not settings but are one or two letters from one (likely typos).
    pub misspelt_env: Vec<(String, &'static str)>,
    /// Each setting that was given: its value as written and where it came from (`environment variable
    /// DD_X` or the file's path). Settings absent here have their default.
    pub given: BTreeMap<&'static str, (String, String)>,
    /// `KELPIE_PPROF` (true): whether the status server serves `/debug/pprof/profile`.
    pub pprof: bool,
    /// Other problems worth a warning at start (a world-readable file holding the API key).
    pub warnings: Vec<String>,
}

impl Config {
    /// Loads the configuration from `path` (or the default path, which may be missing) and the process
    /// environment.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_from(path, env)
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_from(
        path: Option<&Path>,
        env: BTreeMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let (file_path, must_exist) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
        };
        let (raw, unknown_keys) = sources::read(&file_path, must_exist, env)?;
        let file_key = raw
            .values
            .get("api_key")
            .is_some_and(|(_, o)| matches!(o, sources::Origin::File(_)));
        let mut config = build::config(&raw, unknown_keys)?;
        config.given = raw
            .values
            .iter()
            .map(|(k, (v, origin))| {
                // Lists and mappings on one line, as JSON.
                let text = match v {
                    Value::Sequence(_) | Value::Mapping(_) => {
                        serde_json::to_string(v).unwrap_or_else(|_| sources::value_text(v))
                    }
                    _ => sources::value_text(v),
                };
                // The key is kept redacted even here: `Config`'s Debug shows this map.
                let text = if *k == "api_key" {
                    crate::secret::mask(&text)
                } else {
                    text
                };
                (*k, (text, origin.to_string()))
            })
            .collect();
        config.misspelt_env = sources::misspelt_env(&raw.env);
        if file_key && config.api_key.is_some() {
            config
                .warnings
                .extend(sources::world_readable_warning(&file_path));
        }
        Ok(config)
    }

    /// `local` without an API key, `forwarding` with one.
    pub fn mode(&self) -> &'static str {
        if self.api_key.is_some() {
            "forwarding"
        } else {
            "local"
        }
    }
}
