//! Agent configuration: an optional YAML file with the Datadog Agent's key names, every key overridable by a
//! `DD_<KEY>` environment variable, plus kelpie's own `KELPIE_*` variables (SPEC.md §2).
//!
//! Every value is checked at start; a bad one stops the agent with one sentence naming the key, where it came
//! from and the value. Unknown keys in the file are warned about once.

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

/// Every key the YAML file may hold; any other key in the file is warned about once at start. Environment
/// variables are read for these keys only (`DD_<KEY>`).
const KNOWN_KEYS: &[&str] = &[
    "api_key",
    "site",
    "dd_url",
    "hostname",
    "tags",
    "env",
    "dogstatsd_port",
    "bind_host",
    "dogstatsd_non_local_traffic",
    "dogstatsd_socket",
    "dogstatsd_stream_socket",
    "dogstatsd_origin_detection",
    "dogstatsd_origin_detection_client",
    "dogstatsd_tag_cardinality",
    "container_labels_as_tags",
    "docker_labels_as_tags",
    "container_env_as_tags",
    "docker_env_as_tags",
    "container_exclude",
    "container_include",
    "container_exclude_metrics",
    "container_include_metrics",
    "exclude_pause_container",
    "statsd_metric_blocklist",
    "statsd_metric_blocklist_match_prefix",
    "dogstatsd_buffer_size",
    "dogstatsd_so_rcvbuf",
    "dogstatsd_queue_bytes",
    "dogstatsd_pipeline_count",
    "dogstatsd_tags",
    "dogstatsd_mapper_profiles",
    "dogstatsd_expiry_seconds",
    "histogram_aggregates",
    "histogram_percentiles",
    "ecs_agent_url",
    "container_collection",
    "memory_limit",
    "forwarder_storage_path",
    "forwarder_storage_max_size_in_bytes",
    "forwarder_timeout",
    "forwarder_backoff_base",
    "forwarder_backoff_max",
    "log_level",
    "log_format_json",
];

/// Every setting with its default and meaning, for `kelpie agent --help` and `kelpie config`: the keys of
/// [`KNOWN_KEYS`] (env `DD_<KEY>`) and kelpie's own environment variables (uppercase names).
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "api_key",
        "none",
        "Datadog API key; without it the agent runs in local mode and sends nothing",
    ),
    ("site", "datadoghq.com", "intake is https://api.<site>"),
    (
        "dd_url",
        "from site",
        "intake base URL, overrides site (e.g. http://127.0.0.1:8080)",
    ),
    ("hostname", "the host's", "host of every series and event"),
    (
        "tags",
        "none",
        "host tags added to everything (space- or comma-separated)",
    ),
    ("env", "none", "adds env:<value>"),
    (
        "dogstatsd_port",
        "8125",
        "DogStatsD UDP port; 0 disables UDP",
    ),
    ("bind_host", "localhost", "address DogStatsD UDP listens on"),
    (
        "dogstatsd_non_local_traffic",
        "false",
        "listen on all interfaces (needed in a container)",
    ),
    (
        "dogstatsd_socket",
        "none",
        "Unix datagram socket path (e.g. /var/run/datadog/dsd.socket)",
    ),
    ("dogstatsd_stream_socket", "none", "Unix stream socket path"),
    (
        "dogstatsd_origin_detection",
        "false",
        "tag Unix socket traffic with the sender's container tags",
    ),
    (
        "dogstatsd_origin_detection_client",
        "false",
        "honour the |c: field clients send",
    ),
    (
        "dogstatsd_tag_cardinality",
        "low",
        "container tags added: none, low, orchestrator or high",
    ),
    (
        "container_labels_as_tags",
        "none",
        "container labels to tags (JSON object in the environment)",
    ),
    (
        "docker_labels_as_tags",
        "none",
        "same as container_labels_as_tags",
    ),
    (
        "container_env_as_tags",
        "none",
        "container env vars to tags (JSON object in the environment)",
    ),
    (
        "docker_env_as_tags",
        "none",
        "same as container_env_as_tags",
    ),
    (
        "container_exclude",
        "none",
        "containers whose metrics are not collected (name:RE image:RE)",
    ),
    (
        "container_include",
        "none",
        "exceptions to container_exclude",
    ),
    ("container_exclude_metrics", "none", "as container_exclude"),
    ("container_include_metrics", "none", "as container_include"),
    (
        "exclude_pause_container",
        "true",
        "skip ECS/Kubernetes pause containers",
    ),
    (
        "statsd_metric_blocklist",
        "none",
        "DogStatsD metric names dropped before aggregation",
    ),
    (
        "statsd_metric_blocklist_match_prefix",
        "false",
        "the blocklist holds prefixes",
    ),
    (
        "dogstatsd_buffer_size",
        "8192",
        "largest datagram read, bytes",
    ),
    (
        "dogstatsd_so_rcvbuf",
        "0",
        "UDP receive buffer requested, bytes (0: ask 4 MiB, up to net.core.rmem_max unless CAP_NET_ADMIN)",
    ),
    (
        "dogstatsd_queue_bytes",
        "memory_limit / 8, 4-64 MiB",
        "queue between socket readers and workers",
    ),
    (
        "dogstatsd_pipeline_count",
        "0",
        "parsing/aggregation workers (0: one per core)",
    ),
    (
        "dogstatsd_tags",
        "none",
        "tags added to every DogStatsD metric",
    ),
    (
        "dogstatsd_mapper_profiles",
        "none",
        "Datadog mapper profiles (JSON in the environment)",
    ),
    (
        "dogstatsd_expiry_seconds",
        "300",
        "counters without samples are sent as 0 this long",
    ),
    (
        "histogram_aggregates",
        "max median avg count",
        "histogram aggregates sent",
    ),
    (
        "histogram_percentiles",
        "0.95",
        "histogram percentiles sent",
    ),
    (
        "ecs_agent_url",
        "http://localhost:51678",
        "ECS agent introspection API",
    ),
    ("container_collection", "true", "Docker metrics and events"),
    (
        "memory_limit",
        "256MiB",
        "cap on the agent's memory; near it new contexts are refused and counted",
    ),
    (
        "forwarder_storage_path",
        "none",
        "directory for payloads not sent yet, kept across restarts",
    ),
    (
        "forwarder_storage_max_size_in_bytes",
        "0",
        "disk cap for that directory",
    ),
    ("forwarder_timeout", "20", "intake request timeout, seconds"),
    ("forwarder_backoff_base", "2", "retry backoff base, seconds"),
    ("forwarder_backoff_max", "64", "retry backoff cap, seconds"),
    (
        "log_level",
        "info",
        "trace, debug, info, warn, error, critical or off (RUST_LOG overrides)",
    ),
    ("log_format_json", "false", "one JSON object per log line"),
    (
        "KELPIE_FLUSH_INTERVAL",
        "10s",
        "aggregation bucket and flush interval",
    ),
    (
        "KELPIE_STATUS_ADDR",
        "127.0.0.1:5002",
        "status page, status JSON, /debug/pprof/profile",
    ),
    (
        "KELPIE_HISTORY_MEMORY",
        "32MiB (0 with api_key)",
        "memory for the local page's last hour",
    ),
    (
        "KELPIE_PROFILES_ADDR",
        "127.0.0.1:<DD_APM_RECEIVER_PORT>",
        "profiles intake (off to disable)",
    ),
    (
        "KELPIE_PPROF",
        "true",
        "serve /debug/pprof/profile on the status server",
    ),
    (
        "DD_APM_RECEIVER_PORT",
        "8126",
        "port of the profiles intake",
    ),
    (
        "DD_APM_NON_LOCAL_TRAFFIC",
        "false",
        "profiles intake on all interfaces",
    ),
    (
        "HOST_PROC",
        "/proc",
        "the host's /proc (/host/proc in a container)",
    ),
    ("HOST_SYS", "/sys", "the host's /sys"),
    (
        "DOCKER_HOST",
        "unix:///var/run/docker.sock",
        "Docker engine address",
    ),
];

/// The environment variable of a setting of [`SETTINGS`].
pub fn env_name(key: &str) -> String {
    if key.chars().any(|c| c.is_ascii_uppercase()) {
        key.to_string()
    } else {
        format!("DD_{}", key.to_ascii_uppercase())
    }
}

/// The settings as `kelpie agent --help` lists them: environment variable, key, default and meaning.
pub fn env_help() -> String {
    let mut out = String::from(
        "Settings (YAML key in the --config file, or the environment variable, which wins; default in brackets):\n",
    );
    for (key, default, meaning) in SETTINGS {
        let env = env_name(key);
        let key = if env == *key { "" } else { key };
        out.push_str(&format!(
            "  {env:<42} {key:<37} [{default}]\n      {meaning}\n"
        ));
    }
    out.push_str(
        "\nkelpie config prints the configuration in force, with where each value came from.\n",
    );
    out
}

/// The known key closest to `unknown` (at most two edits away, or the same but for `-`/`_`), for "did you
/// mean".
pub fn suggest_key(unknown: &str) -> Option<&'static str> {
    let norm = unknown.trim().to_ascii_lowercase().replace('-', "_");
    KNOWN_KEYS
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&norm, k), *k))
        .filter(|(d, _)| *d <= 2.max(norm.len() / 8))
        .min()
        .map(|(_, k)| k)
}

/// The `log_level` values accepted (Datadog's, and `tracing`'s `warn`), as the `tracing` level they mean.
fn log_level(v: &str) -> Option<&'static str> {
    Some(match v.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        "error" | "err" | "critical" => "error",
        "off" => "off",
        _ => return None,
    })
}

/// Keys whose environment variable holds JSON (a mapping or list), as the Datadog Agent reads them.
const JSON_IN_ENV: &[&str] = &[
    "dogstatsd_mapper_profiles",
    "container_labels_as_tags",
    "docker_labels_as_tags",
    "container_env_as_tags",
    "docker_env_as_tags",
];

/// Where a setting came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    Env(String),
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Env(name) => write!(f, "environment variable {name}"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Raw settings before typing: each key's value and where it came from.
struct Raw {
    values: BTreeMap<&'static str, (Value, Origin)>,
    env: BTreeMap<String, String>,
}

impl Raw {
    fn get(&self, key: &'static str) -> Option<&(Value, Origin)> {
        self.values.get(key)
    }

    fn invalid(&self, key: &'static str, reason: impl Into<String>) -> ConfigError {
        let (value, origin) = match self.values.get(key) {
            Some((v, o)) => (value_text(v), o.to_string()),
            None => (String::new(), "default".to_string()),
        };
        ConfigError::Invalid {
            key,
            origin,
            value,
            reason: reason.into(),
        }
    }

    fn string(&self, key: &'static str) -> Option<String> {
        self.get(key)
            .map(|(v, _)| value_text(v).trim().to_string())
            .filter(|s| !s.is_empty())
    }

    fn bool(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some((Value::Bool(b), _)) => Ok(*b),
            Some((v, _)) => match value_text(v).trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" | "" => Ok(false),
                _ => Err(self.invalid(key, "is not a boolean (true or false)")),
            },
        }
    }

    fn uint(
        &self,
        key: &'static str,
        default: u64,
        max: u64,
        what: &str,
    ) -> Result<u64, ConfigError> {
        match self.string(key) {
            None => Ok(default),
            Some(s) => match s.parse::<u64>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(self.invalid(key, format!("is not {what}"))),
            },
        }
    }

    /// A mapping of names to strings (YAML mapping, or a JSON object in the environment).
    fn string_map(&self, key: &'static str) -> Result<Vec<(String, String)>, ConfigError> {
        match self.get(key) {
            None => Ok(Vec::new()),
            Some((Value::Mapping(m), _)) => m
                .iter()
                .map(|(k, v)| match (k, v) {
                    (Value::String(k), Value::String(v)) => Ok((k.clone(), v.clone())),
                    _ => Err(self.invalid(key, "is not a mapping of names to tag keys")),
                })
                .collect(),
            Some(_) => Err(self.invalid(
                key,
                "is not a mapping of names to tag keys (a JSON object in the environment)",
            )),
        }
    }

    /// A list given as a YAML sequence or a whitespace-separated string (container filters may hold commas).
    fn filter_list(&self, key: &'static str) -> Vec<String> {
        match self.get(key) {
            Some((Value::Sequence(_), _)) | None => self.list(key),
            Some((v, _)) => value_text(v).split_whitespace().map(String::from).collect(),
        }
    }

    /// A list given as a YAML sequence, or as a space- or comma-separated string (env vars).
    fn list(&self, key: &'static str) -> Vec<String> {
        match self.get(key) {
            None => Vec::new(),
            Some((Value::Sequence(items), _)) => items
                .iter()
                .map(|v| value_text(v).trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Some((v, _)) => value_text(v)
                .split(|c: char| c == ',' || c.is_whitespace())
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        }
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Parses sizes like `256MiB`, `512MB`, `1GiB`, `1048576`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let v = num * mult;
    (v.is_finite() && v >= 0.0).then_some(v as u64)
}

/// Parses durations like `10s`, `500ms`, `1m`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(s).ok()
}

/// A warning when `path` (which holds the API key) can be read by every user of the host.
fn world_readable_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "the configuration file {} holds the API key and every user of this host can read it (mode {:o}): \
             `chmod 600` it (640 with the agent's group), or pass the key as DD_API_KEY",
            path.display(),
            mode & 0o777
        )
    })
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
        let mut values = BTreeMap::new();
        let mut unknown_keys = Vec::new();
        match std::fs::read_to_string(&file_path) {
            Ok(text) => {
                let doc: Value = serde_yaml::from_str(&text).map_err(|e| ConfigError::Yaml {
                    path: file_path.clone(),
                    message: e.to_string(),
                })?;
                match doc {
                    Value::Null => {}
                    Value::Mapping(map) => {
                        for (k, v) in map {
                            let key = value_text(&k);
                            match KNOWN_KEYS.iter().find(|known| **known == key) {
                                Some(known) => {
                                    values.insert(*known, (v, Origin::File(file_path.clone())));
                                }
                                None => unknown_keys.push(key),
                            }
                        }
                    }
                    _ => {
                        return Err(ConfigError::Yaml {
                            path: file_path,
                            message: "the top level must be a mapping of keys to values".into(),
                        })
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {}
            Err(error) => {
                return Err(ConfigError::Read {
                    path: file_path,
                    error,
                })
            }
        }
        for key in KNOWN_KEYS {
            let name = format!("DD_{}", key.to_ascii_uppercase());
            if let Some(v) = env.get(&name) {
                let value = if JSON_IN_ENV.contains(key) {
                    // Datadog takes these as JSON in the environment.
                    serde_json::from_str::<serde_json::Value>(v)
                        .ok()
                        .and_then(|j| serde_yaml::to_value(j).ok())
                        .unwrap_or_else(|| Value::String(v.clone()))
                } else {
                    Value::String(v.clone())
                };
                values.insert(key, (value, Origin::Env(name)));
            }
        }
        let file_key = values
            .get("api_key")
            .is_some_and(|(_, o)| matches!(o, Origin::File(_)));
        let raw = Raw { values, env };
        let mut config = Self::from_raw(&raw, unknown_keys)?;
        config.given = raw
            .values
            .iter()
            .map(|(k, (v, origin))| {
                // Lists and mappings on one line, as JSON.
                let text = match v {
                    Value::Sequence(_) | Value::Mapping(_) => {
                        serde_json::to_string(v).unwrap_or_else(|_| value_text(v))
                    }
                    _ => value_text(v),
                };
                // The key is kept redacted even here: `Config`'s Debug shows this map.
                let text = if *k == "api_key" { redact(&text) } else { text };
                (*k, (text, origin.to_string()))
            })
            .collect();
        config.misspelt_env = raw
            .env
            .keys()
            .filter_map(|name| {
                let key = name.strip_prefix("DD_")?.to_ascii_lowercase();
                if KNOWN_KEYS.contains(&key.as_str()) {
                    return None;
                }
                suggest_key(&key).map(|k| (name.clone(), k))
            })
            .collect();
        if file_key && config.api_key.is_some() {
            config.warnings.extend(world_readable_warning(&file_path));
        }
        Ok(config)
    }

    /// One warning per unknown key of the file and per likely misspelt `DD_*` variable, with "did you mean".
    pub fn unknown_key_warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown_keys
            .iter()
            .map(|key| match suggest_key(key) {
                Some(k) => {
                    format!("unknown configuration key `{key}` is ignored; did you mean `{k}`?")
                }
                None => format!("unknown configuration key `{key}` is ignored"),
            })
            .collect();
        for (name, key) in &self.misspelt_env {
            out.push(format!(
                "environment variable {name} is not a kelpie setting and is ignored; did you mean {}?",
                env_name(key)
            ));
        }
        out
    }

    /// The configuration in force, one `(setting, value, where it came from)` per entry of [`SETTINGS`],
    /// secrets redacted (`api_key` shows its last 4 characters only).
    pub fn effective(&self) -> Vec<(String, String, String)> {
        let derived: BTreeMap<&str, String> = [
            ("dd_url", self.dd_url.clone()),
            ("hostname", self.hostname.clone()),
            (
                "KELPIE_FLUSH_INTERVAL",
                humantime::format_duration(self.flush_interval).to_string(),
            ),
            ("KELPIE_STATUS_ADDR", self.status_addr.to_string()),
            (
                "KELPIE_PROFILES_ADDR",
                self.profiles_addr.map_or("off".into(), |a| a.to_string()),
            ),
            ("KELPIE_HISTORY_MEMORY", self.history_memory.to_string()),
            ("KELPIE_PPROF", self.pprof.to_string()),
            ("HOST_PROC", self.host_proc.display().to_string()),
            ("HOST_SYS", self.host_sys.display().to_string()),
            ("log_level", self.log_level.clone()),
        ]
        .into_iter()
        .collect();
        SETTINGS
            .iter()
            .map(|(key, default, _)| {
                let env = env_name(key);
                let (value, source) = match self.given.get(key) {
                    Some((v, origin)) => (v.clone(), origin.clone()),
                    None if env == *key
                        && std::env::var_os(&env).is_some()
                        && derived.contains_key(key) =>
                    {
                        (derived[key].clone(), format!("environment variable {env}"))
                    }
                    None => match derived.get(key) {
                        Some(v) if *key == "dd_url" => (v.clone(), "from site".to_string()),
                        Some(v) if *key == "hostname" => (v.clone(), "detected".to_string()),
                        _ => (default.to_string(), "default".to_string()),
                    },
                };
                let value = if *key == "api_key" && value != "none" {
                    redact(&value)
                } else {
                    value
                };
                (key.to_string(), value, source)
            })
            .collect()
    }

    fn from_raw(raw: &Raw, unknown_keys: Vec<String>) -> Result<Config, ConfigError> {
        let api_key = raw.string("api_key").map(crate::secret::Secret::new);
        let site = raw
            .string("site")
            .unwrap_or_else(|| "datadoghq.com".to_string());
        if site.contains('/') || site.contains(' ') {
            return Err(raw.invalid("site", "is not a Datadog site name such as datadoghq.eu"));
        }
        let dd_url = match raw.string("dd_url") {
            Some(u) => {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(raw.invalid("dd_url", "is not an http:// or https:// URL"));
                }
                u.trim_end_matches('/').to_string()
            }
            None => format!("https://api.{site}"),
        };
        let env_tag = raw.string("env");
        let mut host_tags = raw.list("tags");
        if let Some(e) = &env_tag {
            host_tags.push(format!("env:{e}"));
        }
        let hostname = match raw.string("hostname") {
            Some(h) => h,
            None => detect_hostname(),
        };
        let dogstatsd_port =
            raw.uint("dogstatsd_port", 8125, 65535, "a UDP port number (0-65535)")? as u16;
        let bind_host = raw
            .string("bind_host")
            .unwrap_or_else(|| "localhost".to_string());
        let socket_path = |key: &'static str| -> Result<Option<PathBuf>, ConfigError> {
            let Some(p) = raw.string(key) else {
                return Ok(None);
            };
            let path = PathBuf::from(&p);
            let parent = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !parent.is_dir() {
                return Err(raw.invalid(
                    key,
                    format!("is in directory {} which does not exist", parent.display()),
                ));
            }
            Ok(Some(path))
        };
        let dogstatsd_socket = socket_path("dogstatsd_socket")?;
        let dogstatsd_stream_socket = socket_path("dogstatsd_stream_socket")?;
        let dogstatsd_buffer_size = raw.uint(
            "dogstatsd_buffer_size",
            8192,
            1 << 20,
            "a buffer size in bytes (1-1048576)",
        )? as usize;
        if dogstatsd_buffer_size == 0 {
            return Err(raw.invalid("dogstatsd_buffer_size", "must be at least 1 byte"));
        }
        let dogstatsd_so_rcvbuf =
            raw.uint("dogstatsd_so_rcvbuf", 0, 1 << 31, "a buffer size in bytes")? as usize;
        let mut container_tag_rules = TagRules::default();
        for key in ["container_labels_as_tags", "docker_labels_as_tags"] {
            for (name, tag) in raw.string_map(key)? {
                container_tag_rules.labels.push(TagRules::rule(&name, &tag));
            }
        }
        for key in ["container_env_as_tags", "docker_env_as_tags"] {
            for (name, tag) in raw.string_map(key)? {
                container_tag_rules.env.push(TagRules::rule(&name, &tag));
            }
        }
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for (key, is_include) in [
            ("container_include", true),
            ("container_include_metrics", true),
            ("container_exclude", false),
            ("container_exclude_metrics", false),
        ] {
            let list = raw.filter_list(key);
            if let Err(e) = ContainerFilter::new(&[], &list, false) {
                return Err(raw.invalid(key, format!("holds {e}")));
            }
            if is_include {
                include.extend(list);
            } else {
                exclude.extend(list);
            }
        }
        let exclude_pause = raw.bool("exclude_pause_container", true)?;
        let container_metrics_filter = ContainerFilter::new(&include, &exclude, exclude_pause)
            .map_err(|e| raw.invalid("container_exclude", format!("holds {e}")))?;
        let dogstatsd_tag_cardinality = match raw.string("dogstatsd_tag_cardinality") {
            None => TagCardinality::Low,
            Some(v) => v.parse().map_err(|()| {
                raw.invalid(
                    "dogstatsd_tag_cardinality",
                    "is not a tag cardinality (none, low, orchestrator or high)",
                )
            })?,
        };
        let dogstatsd_expiry_seconds = raw.uint(
            "dogstatsd_expiry_seconds",
            300,
            u32::MAX as u64,
            "a number of seconds",
        )? as i64;
        let histogram_aggregates = {
            let mut l = raw.list("histogram_aggregates");
            if raw.get("histogram_aggregates").is_none() {
                l = ["max", "median", "avg", "count"].map(String::from).to_vec();
            }
            for a in &l {
                if !["max", "min", "median", "avg", "sum", "count"].contains(&a.as_str()) {
                    return Err(raw.invalid(
                        "histogram_aggregates",
                        format!("names {a:?}, not one of max, min, median, avg, sum, count"),
                    ));
                }
            }
            l
        };
        let histogram_percentiles = if raw.get("histogram_percentiles").is_none() {
            vec![0.95]
        } else {
            let mut out = Vec::new();
            for p in raw.list("histogram_percentiles") {
                match p.parse::<f64>() {
                    Ok(v) if v > 0.0 && v < 1.0 => out.push(v),
                    _ => {
                        return Err(raw.invalid(
                            "histogram_percentiles",
                            format!("has {p:?}, which is not a number between 0 and 1"),
                        ))
                    }
                }
            }
            out
        };
        let ecs_agent_url = raw
            .string("ecs_agent_url")
            .unwrap_or_else(|| "http://localhost:51678".into());
        let memory_limit = match raw.string("memory_limit") {
            None => 256 * 1024 * 1024,
            Some(s) => match parse_size(&s) {
                Some(n) if n >= 16 * 1024 * 1024 => n,
                Some(_) => return Err(raw.invalid("memory_limit", "is below the minimum of 16MiB")),
                None => {
                    return Err(raw.invalid(
                        "memory_limit",
                        "is not a size such as 256MiB, 512MB or a number of bytes",
                    ))
                }
            },
        };
        let dogstatsd_queue_bytes = match raw.string("dogstatsd_queue_bytes") {
            None => (memory_limit / 8).clamp(4 << 20, 64 << 20),
            Some(s) => match parse_size(&s) {
                Some(n) if n >= 1 << 20 && n <= memory_limit / 2 => n,
                _ => {
                    return Err(raw.invalid(
                        "dogstatsd_queue_bytes",
                        "is not a size between 1MiB and half of memory_limit, such as 32MiB",
                    ))
                }
            },
        };
        let dogstatsd_pipeline_count = raw.uint(
            "dogstatsd_pipeline_count",
            0,
            64,
            "a number of workers between 1 and 64 (0: one per core)",
        )? as usize;
        let forwarder_storage_path = raw.string("forwarder_storage_path").map(PathBuf::from);
        let forwarder_storage_max_size_in_bytes = raw.uint(
            "forwarder_storage_max_size_in_bytes",
            0,
            u64::MAX,
            "a size in bytes",
        )?;
        let forwarder_timeout = match raw.string("forwarder_timeout") {
            None => Duration::from_secs(20),
            Some(s) => match parse_duration(&s) {
                Some(d) if !d.is_zero() => d,
                _ => {
                    return Err(raw.invalid(
                        "forwarder_timeout",
                        "is not a positive duration such as 20 or 20s",
                    ))
                }
            },
        };
        let backoff = |key: &'static str, default: f64| -> Result<Duration, ConfigError> {
            match raw.string(key) {
                None => Ok(Duration::from_secs_f64(default)),
                Some(s) => match parse_duration(&s) {
                    Some(d) if !d.is_zero() => Ok(d),
                    _ => Err(raw.invalid(key, "is not a positive number of seconds")),
                },
            }
        };
        let forwarder_backoff_base = backoff("forwarder_backoff_base", 2.0)?;
        let forwarder_backoff_max = backoff("forwarder_backoff_max", 64.0)?;
        // An empty list (or null) is no profiles at all.
        let dogstatsd_mapper_profiles = raw
            .get("dogstatsd_mapper_profiles")
            .map(|(v, _)| v.clone())
            .filter(|v| !v.is_null() && v.as_sequence().is_none_or(|s| !s.is_empty()));
        let kelpie = |name: &str| raw.env.get(name).map(|s| s.trim().to_string());
        let env_invalid = |key: &'static str, value: &str, reason: &str| ConfigError::Invalid {
            key,
            origin: format!("environment variable {key}"),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let flush_interval = match kelpie("KELPIE_FLUSH_INTERVAL") {
            None => Duration::from_secs(10),
            Some(s) => match parse_duration(&s) {
                Some(d) if d >= Duration::from_secs(1) && d.subsec_nanos() == 0 => d,
                _ => {
                    return Err(env_invalid(
                        "KELPIE_FLUSH_INTERVAL",
                        &s,
                        "is not a whole number of seconds of at least 1s, such as 10s",
                    ))
                }
            },
        };
        let status_addr = match kelpie("KELPIE_STATUS_ADDR") {
            None => SocketAddr::from(([127, 0, 0, 1], 5002)),
            Some(s) => s.parse().map_err(|_| {
                env_invalid(
                    "KELPIE_STATUS_ADDR",
                    &s,
                    "is not an address such as 127.0.0.1:5002",
                )
            })?,
        };
        // The trace agent's port by default, like the Datadog Agent: DD_APM_RECEIVER_PORT (8126), on all
        // interfaces with DD_APM_NON_LOCAL_TRAFFIC=true (needed in a container).
        let apm_port = match kelpie("DD_APM_RECEIVER_PORT") {
            None => 8126,
            Some(s) => s.parse::<u16>().map_err(|_| {
                env_invalid(
                    "DD_APM_RECEIVER_PORT",
                    &s,
                    "is not a TCP port number (0-65535)",
                )
            })?,
        };
        let apm_non_local = match kelpie("DD_APM_NON_LOCAL_TRAFFIC").as_deref() {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                return Err(env_invalid(
                    "DD_APM_NON_LOCAL_TRAFFIC",
                    other,
                    "is not a boolean (true or false)",
                ))
            }
        };
        let profiles_addr = match kelpie("KELPIE_PROFILES_ADDR") {
            None if apm_port == 0 => None,
            None if apm_non_local => Some(SocketAddr::from(([0, 0, 0, 0], apm_port))),
            None => Some(SocketAddr::from(([127, 0, 0, 1], apm_port))),
            Some(s) if s.is_empty() || s == "off" || s == "0" => None,
            Some(s) => Some(s.parse().map_err(|_| {
                env_invalid(
                    "KELPIE_PROFILES_ADDR",
                    &s,
                    "is not an address such as 127.0.0.1:8126 (or off)",
                )
            })?),
        };
        let pprof = match kelpie("KELPIE_PPROF").map(|s| s.to_ascii_lowercase()) {
            None => true,
            Some(s) if matches!(s.as_str(), "true" | "1" | "yes" | "on") => true,
            Some(s) if matches!(s.as_str(), "false" | "0" | "no" | "off") => false,
            Some(s) => {
                return Err(env_invalid(
                    "KELPIE_PPROF",
                    &s,
                    "is not a boolean (true or false)",
                ))
            }
        };
        // The history is what local mode shows; with a key it is off unless asked for, so its memory goes to
        // contexts instead.
        let history_memory = match kelpie("KELPIE_HISTORY_MEMORY") {
            None if api_key.is_some() => 0,
            None => 32 * 1024 * 1024,
            Some(s) => parse_size(&s).ok_or_else(|| {
                env_invalid("KELPIE_HISTORY_MEMORY", &s, "is not a size such as 32MiB")
            })?,
        };
        let host_proc = PathBuf::from(kelpie("HOST_PROC").unwrap_or_else(|| "/proc".into()));
        let host_sys = PathBuf::from(kelpie("HOST_SYS").unwrap_or_else(|| "/sys".into()));
        let docker_host = kelpie("DOCKER_HOST").filter(|s| !s.is_empty());
        Ok(Config {
            api_key,
            site,
            dd_url,
            hostname,
            host_tags,
            env: env_tag,
            dogstatsd_port,
            bind_host,
            dogstatsd_non_local_traffic: raw.bool("dogstatsd_non_local_traffic", false)?,
            dogstatsd_socket,
            dogstatsd_stream_socket,
            dogstatsd_origin_detection: raw.bool("dogstatsd_origin_detection", false)?,
            dogstatsd_origin_detection_client: raw
                .bool("dogstatsd_origin_detection_client", false)?,
            dogstatsd_tag_cardinality,
            container_tag_rules,
            container_metrics_filter,
            statsd_metric_blocklist: raw.filter_list("statsd_metric_blocklist"),
            statsd_metric_blocklist_match_prefix: raw
                .bool("statsd_metric_blocklist_match_prefix", false)?,
            dogstatsd_buffer_size,
            dogstatsd_so_rcvbuf,
            dogstatsd_queue_bytes,
            dogstatsd_pipeline_count,
            dogstatsd_tags: raw.list("dogstatsd_tags"),
            dogstatsd_mapper_profiles,
            dogstatsd_expiry_seconds,
            histogram_aggregates,
            histogram_percentiles,
            ecs_agent_url,
            container_collection: raw.bool("container_collection", true)?,
            docker_host,
            memory_limit,
            forwarder_storage_path,
            forwarder_storage_max_size_in_bytes,
            forwarder_timeout,
            forwarder_backoff_base,
            forwarder_backoff_max,
            flush_interval,
            status_addr,
            profiles_addr,
            history_memory,
            host_proc,
            host_sys,
            log_level: match raw.string("log_level") {
                None => "info".into(),
                Some(l) => log_level(&l)
                    .ok_or_else(|| {
                        raw.invalid(
                            "log_level",
                            "is not a log level (trace, debug, info, warn, error, critical or off)",
                        )
                    })?
                    .to_string(),
            },
            log_format_json: raw.bool("log_format_json", false)?,
            unknown_keys,
            misspelt_env: Vec::new(),
            given: BTreeMap::new(),
            pprof,
            warnings: Vec::new(),
        })
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

/// A secret as `***************abcd`: its last four characters only.
fn redact(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let keep = if chars.len() > 8 { 4 } else { 0 };
    let shown: String = chars[chars.len() - keep..].iter().collect();
    format!("{}{shown}", "*".repeat(chars.len() - keep))
}

/// The host's name: `/host/etc/hostname` when the host's /etc is mounted (in a container), else the kernel's.
fn detect_hostname() -> String {
    for path in ["/host/etc/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(path) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        if let Ok(s) = std::str::from_utf8(&buf[..end]) {
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    "localhost".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load(yaml: Option<&str>, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kelpie.yaml");
        match yaml {
            Some(y) => {
                std::fs::write(&path, y).unwrap();
                Config::load_from(Some(&path), env(pairs))
            }
            None => Config::load_from(Some(Path::new("/nonexistent/kelpie.yaml")), env(pairs))
                .or_else(|_| {
                    std::fs::write(&path, "").unwrap();
                    Config::load_from(Some(&path), env(pairs))
                }),
        }
    }

    #[test]
    fn defaults_match_spec() {
        let c = load(None, &[("DD_HOSTNAME", "h1")]).unwrap();
        assert_eq!(c.dogstatsd_port, 8125);
        assert_eq!(c.bind_host, "localhost");
        assert_eq!(c.dd_url, "https://api.datadoghq.com");
        assert_eq!(c.dogstatsd_buffer_size, 8192);
        assert_eq!(c.histogram_aggregates, ["max", "median", "avg", "count"]);
        assert_eq!(c.histogram_percentiles, [0.95]);
        assert_eq!(c.memory_limit, 256 * 1024 * 1024);
        assert_eq!(c.flush_interval, Duration::from_secs(10));
        assert_eq!(c.status_addr, "127.0.0.1:5002".parse().unwrap());
        assert_eq!(c.mode(), "local");
        assert_eq!(c.hostname, "h1");
        assert!(c.container_collection);
        assert_eq!(c.dogstatsd_expiry_seconds, 300);
    }

    #[test]
    fn env_overrides_file() {
        let c = load(
            Some("dogstatsd_port: 9000\ntags: [a:b, c:d]\nsite: datadoghq.eu\napi_key: x\n"),
            &[("DD_DOGSTATSD_PORT", "9125"), ("DD_ENV", "prod")],
        )
        .unwrap();
        assert_eq!(c.dogstatsd_port, 9125);
        assert_eq!(c.host_tags, ["a:b", "c:d", "env:prod"]);
        assert_eq!(c.dd_url, "https://api.datadoghq.eu");
        assert_eq!(c.mode(), "forwarding");
        // The status-page history is for local mode; forwarding turns it off unless asked for.
        assert_eq!(c.history_memory, 0);
        let c = load(Some("api_key: x\n"), &[("KELPIE_HISTORY_MEMORY", "8MiB")]).unwrap();
        assert_eq!(c.history_memory, 8 << 20);
    }

    #[test]
    fn env_lists_are_space_or_comma_separated() {
        let c = load(
            None,
            &[
                ("DD_TAGS", "team:infra  role:web,zone:a"),
                ("DD_HISTOGRAM_PERCENTILES", "0.5 0.99"),
                ("DD_HISTOGRAM_AGGREGATES", "max min sum"),
            ],
        )
        .unwrap();
        assert_eq!(c.host_tags, ["team:infra", "role:web", "zone:a"]);
        assert_eq!(c.histogram_percentiles, [0.5, 0.99]);
        assert_eq!(c.histogram_aggregates, ["max", "min", "sum"]);
    }

    #[test]
    fn origin_options_default_like_the_datadog_agent() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.dogstatsd_tag_cardinality, TagCardinality::Low);
        assert!(!c.dogstatsd_origin_detection_client);
        let c = load(
            Some("dogstatsd_tag_cardinality: high\n"),
            &[("DD_DOGSTATSD_ORIGIN_DETECTION_CLIENT", "true")],
        )
        .unwrap();
        assert_eq!(c.dogstatsd_tag_cardinality, TagCardinality::High);
        assert!(c.dogstatsd_origin_detection_client);
        let e = load(None, &[("DD_DOGSTATSD_TAG_CARDINALITY", "medium")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid value for `dogstatsd_tag_cardinality` (from environment variable DD_DOGSTATSD_TAG_CARDINALITY): \"medium\" is not a tag cardinality (none, low, orchestrator or high)"
        );
    }

    #[test]
    fn container_tag_rules_and_filters_from_yaml_and_json_env() {
        let c = load(
            Some(
                "container_labels_as_tags:\n  com.docker.compose.service: compose_service\n\
                 container_exclude: [\"image:^redis\"]\n",
            ),
            &[
                ("DD_DOCKER_LABELS_AS_TAGS", r#"{"build":"+build_id"}"#),
                ("DD_CONTAINER_ENV_AS_TAGS", r#"{"DEPLOY_COLOR":"color"}"#),
                ("DD_CONTAINER_INCLUDE", "name:^keep name:x{1,2}"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.container_tag_rules.labels,
            [
                TagRules::rule("com.docker.compose.service", "compose_service"),
                TagRules::rule("build", "+build_id"),
            ]
        );
        assert_eq!(
            c.container_tag_rules.env,
            [TagRules::rule("DEPLOY_COLOR", "color")]
        );
        let f = &c.container_metrics_filter;
        assert!(f.excludes("cache", "redis:7"));
        assert!(!f.excludes("keep-cache", "redis:7"));
        assert!(
            f.excludes("t", "amazon/amazon-ecs-pause:0.1.0"),
            "pause excluded by default"
        );
        let e = load(None, &[("DD_CONTAINER_EXCLUDE", "name:ok label:x")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid value for `container_exclude` (from environment variable DD_CONTAINER_EXCLUDE): \"name:ok label:x\" holds `label:x` is not a container filter: it must start with name: or image:"
        );
        let c = load(
            Some("statsd_metric_blocklist_match_prefix: true\n"),
            &[("DD_STATSD_METRIC_BLOCKLIST", "app.debug app.noisy.")],
        )
        .unwrap();
        assert_eq!(c.statsd_metric_blocklist, ["app.debug", "app.noisy."]);
        assert!(c.statsd_metric_blocklist_match_prefix);
        let e = load(None, &[("DD_CONTAINER_LABELS_AS_TAGS", "team=team")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a mapping of names to tag keys"), "{e}");
    }

    /// docs/kelpie.example.yaml lists every key, and its documented defaults, uncommented, are valid and
    /// are the defaults.
    #[test]
    fn the_example_config_documents_every_key_with_its_default() {
        let text = include_str!("../../docs/kelpie.example.yaml");
        for key in KNOWN_KEYS {
            assert!(
                text.contains(&format!("\n# {key}:")),
                "{key} is missing from docs/kelpie.example.yaml"
            );
        }
        let uncommented: Vec<&str> = text
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(rest) if KNOWN_KEYS.contains(&rest.split(':').next().unwrap_or("")) => rest,
                _ => l,
            })
            .collect();
        let mut c = load(Some(&uncommented.join("\n")), &[]).unwrap();
        let d = load(None, &[]).unwrap();
        // Given or not, the same values.
        c.given.clear();
        assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
        assert_eq!(format!("{c:?}"), format!("{d:?}"));
        crate::pipeline::aggregator_config(&c).unwrap();
    }

    #[test]
    fn bad_values_name_key_origin_and_value() {
        let e = load(None, &[("DD_DOGSTATSD_PORT", "70000")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid value for `dogstatsd_port` (from environment variable DD_DOGSTATSD_PORT): \"70000\" is not a UDP port number (0-65535)"
        );
        let e = load(None, &[("KELPIE_FLUSH_INTERVAL", "ten seconds")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("KELPIE_FLUSH_INTERVAL") && e.contains("ten seconds"),
            "{e}"
        );
        let e = load(None, &[("DD_DOGSTATSD_SOCKET", "/no/such/dir/dsd.socket")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dogstatsd_socket") && e.contains("/no/such/dir"),
            "{e}"
        );
        let e = load(Some("dogstatsd_non_local_traffic: maybe\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dogstatsd_non_local_traffic") && e.contains("kelpie.yaml"),
            "{e}"
        );
        let e = load(None, &[("DD_MEMORY_LIMIT", "lots")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("memory_limit"), "{e}");
        let e = load(None, &[("DD_HISTOGRAM_PERCENTILES", "0.95 95")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("histogram_percentiles") && e.contains("\"95\""),
            "{e}"
        );
    }

    #[test]
    fn log_level_is_checked_like_every_other_value() {
        let e = load(None, &[("DD_LOG_LEVEL", "verbose")])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid value for `log_level` (from environment variable DD_LOG_LEVEL): \"verbose\" is not a log level (trace, debug, info, warn, error, critical or off)"
        );
        for (given, level) in [
            ("WARNING", "warn"),
            ("critical", "error"),
            ("debug", "debug"),
        ] {
            let c = load(None, &[("DD_LOG_LEVEL", given)]).unwrap();
            assert_eq!(c.log_level, level);
        }
        let c = load(Some("log_format_json: true\n"), &[]).unwrap();
        assert!(c.log_format_json);
    }

    #[test]
    fn unknown_keys_and_misspelt_env_vars_get_did_you_mean() {
        let c = load(
            Some("dogstatsd_prot: 9000\nlogs_enabled: true\n"),
            &[
                ("DD_DOGSTATSD_NON_LOCAL_TRAFIC", "true"),
                ("DD_LOGS_ENABLED", "true"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.unknown_key_warnings(),
            [
                "unknown configuration key `dogstatsd_prot` is ignored; did you mean `dogstatsd_port`?",
                "unknown configuration key `logs_enabled` is ignored",
                "environment variable DD_DOGSTATSD_NON_LOCAL_TRAFIC is not a kelpie setting and is ignored; did you mean DD_DOGSTATSD_NON_LOCAL_TRAFFIC?",
            ]
        );
    }

    #[test]
    fn effective_config_says_where_each_value_came_from_and_hides_the_key() {
        let c = load(
            Some("dogstatsd_port: 9000\n"),
            &[
                ("DD_API_KEY", "0123456789abcdef"),
                ("DD_SITE", "datadoghq.eu"),
            ],
        )
        .unwrap();
        let eff = c.effective();
        let get = |k: &str| eff.iter().find(|(key, _, _)| key == k).cloned().unwrap();
        let (_, v, src) = get("api_key");
        assert_eq!(v, "************cdef");
        assert_eq!(src, "environment variable DD_API_KEY");
        let (_, v, src) = get("dogstatsd_port");
        assert_eq!(v, "9000");
        assert!(src.ends_with("kelpie.yaml"), "{src}");
        assert_eq!(get("dd_url").1, "https://api.datadoghq.eu");
        assert_eq!(get("bind_host").2, "default");
        for key in KNOWN_KEYS {
            assert!(
                SETTINGS.iter().any(|(k, _, _)| k == key),
                "{key} missing from SETTINGS"
            );
        }
        assert!(env_help().contains("DD_DOGSTATSD_PORT"));
    }

    #[test]
    fn unknown_keys_are_collected_not_fatal() {
        let c = load(Some("api_key: k\nlogs_enabled: true\nfoo: 1\n"), &[]).unwrap();
        assert_eq!(c.unknown_keys, ["logs_enabled", "foo"]);
    }

    #[test]
    fn broken_yaml_is_one_sentence() {
        let e = load(Some("tags: [a\n"), &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("config file ") && e.contains("not valid YAML"),
            "{e}"
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("256MiB"), Some(256 << 20));
        assert_eq!(parse_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("20"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("soon"), None);
    }
}

#[cfg(test)]
mod key_file_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn load_with_mode(yaml: &str, mode: u32) -> (Config, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kelpie.yaml");
        std::fs::write(&path, yaml).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let cfg = Config::load_from(Some(&path), BTreeMap::new()).unwrap();
        (cfg, path, dir)
    }

    #[test]
    fn a_world_readable_file_holding_the_key_is_warned_about_by_name() {
        let (cfg, path, _d) = load_with_mode("api_key: 0123456789abcdef0123\n", 0o644);
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains(&path.display().to_string()));
        assert!(cfg.warnings[0].contains("mode 644"), "{}", cfg.warnings[0]);
        assert!(!cfg.warnings[0].contains("0123456789abcdef"));
        // Readable by its owner (and group) only: fine.
        let (cfg, _, _d) = load_with_mode("api_key: 0123456789abcdef0123\n", 0o640);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        // World-readable without a key: fine too.
        let (cfg, _, _d) = load_with_mode("site: datadoghq.eu\n", 0o644);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        // The key in Debug output: never.
        let (cfg, _, _d) = load_with_mode("api_key: 0123456789abcdef0123\n", 0o600);
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    }

    /// From the config_load fuzz target's first finding (agent/fuzz/README.md): a key given by the
    /// environment next to odd YAML. The finding itself was the target's (a 15-character key that happened
    /// to be part of a field name); the key of such a load, and a real-looking one, stay out of Debug.
    #[test]
    fn a_key_from_the_environment_stays_out_of_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kelpie.yaml");
        std::fs::write(&path, "api_keysd_mprefix: 0\"\n").unwrap();
        for key in ["apper_profiles:", "0123456789abcdef0123456789abcdef"] {
            let env: BTreeMap<String, String> = [
                ("DD_API_KEY".to_string(), key.to_string()),
                (
                    "DD_ISHTOGRAM_PERCENTILES".to_string(),
                    "0.5 0.99".to_string(),
                ),
            ]
            .into();
            let cfg = Config::load_from(Some(&path), env).unwrap();
            assert_eq!(cfg.api_key.as_ref().map(|k| k.expose()), Some(key));
            let shown = format!("{cfg:?}").replace("dogstatsd_mapper_profiles:", "");
            assert!(!shown.contains(key), "{shown}");
            assert!(!shown.contains("0123456789abcdef"), "{shown}");
        }
    }
}
