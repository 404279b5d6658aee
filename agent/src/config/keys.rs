//! Every setting, defined once: its name, where it is read from, its default, how its value is checked and
//! what it means. The file's known keys, `kelpie agent --help`, `kelpie config`, the "did you mean"
//! suggestions and the typed readers of [`super::check`] all come from [`KEYS`]; a new setting is one row here
//! and one line where [`super::build`] puts it into [`super::Config`].

/// Largest `dogstatsd_buffer_size`: the config refuses more, and the DogStatsD listener
/// (`dogstatsd::listen::MAX_BUFFER_SIZE`) is this constant.
pub const MAX_DOGSTATSD_BUFFER_SIZE: usize = 1 << 20;

/// Where a setting is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A key of the YAML file, and `DD_<KEY>` in the environment (which wins).
    Dd,
    /// Like [`Source::Dd`], with JSON (a mapping or a list) in the environment, as the Datadog Agent reads it.
    DdJson,
    /// An environment variable only (kelpie's own, or another program's such as `DOCKER_HOST`), named by the
    /// key itself.
    Env,
}

/// A setting's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyDefault {
    /// No value: the feature is off or the list empty. Shown as `none`.
    None,
    /// This text, read and checked as if it had been given.
    Value(&'static str),
    /// Worked out at start from other settings or from the host; the text says how.
    Derived(&'static str),
}

/// How a setting's value is read and checked. Each reason is the end of the error sentence
/// (`invalid value for `key` (from …): "value" <reason>`).
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// Any text; empty is the same as not given.
    Text,
    /// Text that `ok` accepts.
    TextIf {
        ok: fn(&str) -> bool,
        reason: &'static str,
    },
    /// A Unix socket path whose directory exists.
    SocketPath,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`; empty is false).
    Bool,
    /// A whole number up to `max`, and at least `min` (`below` otherwise).
    Uint {
        min: u64,
        max: u64,
        reason: &'static str,
        below: &'static str,
    },
    /// A size such as `256MiB`, at least `min` (`below` otherwise).
    Size {
        min: u64,
        reason: &'static str,
        below: &'static str,
    },
    /// A positive duration such as `20` or `20s`; with `whole_seconds`, a whole number of seconds of at least 1.
    Duration {
        whole_seconds: bool,
        reason: &'static str,
    },
    /// A socket address; with `off`, also `off`, `0` or empty for none.
    Addr { off: bool, reason: &'static str },
    /// A log level (see [`Raw::log_level`](super::sources::Raw::log_level)).
    LogLevel,
    /// A container tag cardinality.
    Cardinality,
    /// A list: a YAML sequence, or a space- or comma-separated string.
    List,
    /// A list of these names only.
    ListOf(&'static [&'static str]),
    /// A list of numbers between 0 and 1 (exclusive).
    Fractions,
    /// A list: a YAML sequence, or a whitespace-separated string (the items may hold commas).
    Words,
    /// Container filters (`name:<regex>`, `image:<regex>`), as [`Check::Words`].
    Filters,
    /// A mapping of names to tag keys.
    TagMap,
    /// Any YAML (or JSON) value; an empty list or null is none.
    Yaml,
}

/// One setting.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The YAML key, or for [`Source::Env`] the environment variable.
    pub name: &'static str,
    pub source: Source,
    pub default: KeyDefault,
    pub check: Check,
    /// One line for `kelpie agent --help`.
    pub doc: &'static str,
}

impl Key {
    /// The environment variable that sets it: `DD_<KEY>`, or the name itself for [`Source::Env`].
    pub fn env_name(&self) -> String {
        match self.source {
            Source::Env => self.name.to_string(),
            Source::Dd | Source::DdJson => format!("DD_{}", self.name.to_ascii_uppercase()),
        }
    }

    /// Whether the YAML file may hold it.
    pub fn in_file(&self) -> bool {
        self.source != Source::Env
    }

    /// The default as `--help` and `kelpie config` show it.
    pub fn default_text(&self) -> &'static str {
        match self.default {
            KeyDefault::None => "none",
            KeyDefault::Value(v) | KeyDefault::Derived(v) => v,
        }
    }
}

/// The definition of the setting `name`. Panics for a name that is not in [`KEYS`]: the readers are called with
/// literal names, and every one runs on every load, so a typo fails every config test.
pub fn key(name: &str) -> &'static Key {
    KEYS.iter()
        .find(|k| k.name == name)
        .unwrap_or_else(|| panic!("`{name}` is not a setting of config::KEYS"))
}

/// The keys the YAML file may hold (and `DD_<KEY>` may set); any other key in the file is warned about once.
pub fn file_keys() -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(|k| k.in_file())
}

/// The file key closest to `unknown` (at most two edits away, or the same but for `-`/`_`), for "did you
/// mean".
pub fn suggest_key(unknown: &str) -> Option<&'static str> {
    let norm = unknown.trim().to_ascii_lowercase().replace('-', "_");
    file_keys()
        .map(|k| (strsim::damerau_levenshtein(&norm, k.name), k.name))
        .filter(|(d, _)| *d <= 2.max(norm.len() / 8))
        .min()
        .map(|(_, k)| k)
}

const fn key_row(name: &'static str, default: KeyDefault, check: Check, doc: &'static str) -> Key {
    Key {
        name,
        source: Source::Dd,
        default,
        check,
        doc,
    }
}

const fn json_row(name: &'static str, check: Check, doc: &'static str) -> Key {
    Key {
        name,
        source: Source::DdJson,
        default: KeyDefault::None,
        check,
        doc,
    }
}

const fn env_row(name: &'static str, default: KeyDefault, check: Check, doc: &'static str) -> Key {
    Key {
        name,
        source: Source::Env,
        default,
        check,
        doc,
    }
}

const fn uint(max: u64, reason: &'static str) -> Check {
    Check::Uint {
        min: 0,
        max,
        reason,
        below: reason,
    }
}

const POSITIVE_SECONDS: Check = Check::Duration {
    whole_seconds: false,
    reason: "is not a positive number of seconds",
};

use KeyDefault::{Derived, Value};

/// Every setting, in the order `--help` and `kelpie config` list them: the file's keys, then the environment's.
pub const KEYS: &[Key] = &[
    key_row(
        "api_key",
        KeyDefault::None,
        Check::Text,
        "Datadog API key; without it the agent runs in local mode and sends nothing",
    ),
    key_row(
        "site",
        Value("datadoghq.com"),
        Check::TextIf {
            ok: |s| !s.contains('/') && !s.contains(' '),
            reason: "is not a Datadog site name such as datadoghq.eu",
        },
        "intake is https://api.<site>",
    ),
    key_row(
        "dd_url",
        Derived("from site"),
        Check::TextIf {
            ok: |u| u.starts_with("http://") || u.starts_with("https://"),
            reason: "is not an http:// or https:// URL",
        },
        "intake base URL, overrides site (e.g. http://127.0.0.1:8080)",
    ),
    key_row(
        "hostname",
        Derived("the host's"),
        Check::Text,
        "host of every series and event",
    ),
    key_row(
        "tags",
        KeyDefault::None,
        Check::List,
        "host tags added to everything (space- or comma-separated)",
    ),
    key_row("env", KeyDefault::None, Check::Text, "adds env:<value>"),
    key_row(
        "dogstatsd_port",
        Value("8125"),
        uint(65535, "is not a UDP port number (0-65535)"),
        "DogStatsD UDP port; 0 disables UDP",
    ),
    key_row(
        "bind_host",
        Value("localhost"),
        Check::Text,
        "address DogStatsD UDP listens on",
    ),
    key_row(
        "dogstatsd_non_local_traffic",
        Value("false"),
        Check::Bool,
        "listen on all interfaces (needed in a container)",
    ),
    key_row(
        "dogstatsd_socket",
        KeyDefault::None,
        Check::SocketPath,
        "Unix datagram socket path (e.g. /var/run/datadog/dsd.socket)",
    ),
    key_row(
        "dogstatsd_stream_socket",
        KeyDefault::None,
        Check::SocketPath,
        "Unix stream socket path",
    ),
    key_row(
        "dogstatsd_origin_detection",
        Value("false"),
        Check::Bool,
        "tag Unix socket traffic with the sender's container tags",
    ),
    key_row(
        "dogstatsd_origin_detection_client",
        Value("false"),
        Check::Bool,
        "honour the |c: field clients send",
    ),
    key_row(
        "dogstatsd_tag_cardinality",
        Value("low"),
        Check::Cardinality,
        "container tags added: none, low, orchestrator or high",
    ),
    json_row(
        "container_labels_as_tags",
        Check::TagMap,
        "container labels to tags (JSON object in the environment)",
    ),
    json_row(
        "docker_labels_as_tags",
        Check::TagMap,
        "same as container_labels_as_tags",
    ),
    json_row(
        "container_env_as_tags",
        Check::TagMap,
        "container env vars to tags (JSON object in the environment)",
    ),
    json_row(
        "docker_env_as_tags",
        Check::TagMap,
        "same as container_env_as_tags",
    ),
    key_row(
        "container_exclude",
        KeyDefault::None,
        Check::Filters,
        "containers whose metrics are not collected (name:RE image:RE)",
    ),
    key_row(
        "container_include",
        KeyDefault::None,
        Check::Filters,
        "exceptions to container_exclude",
    ),
    key_row(
        "container_exclude_metrics",
        KeyDefault::None,
        Check::Filters,
        "as container_exclude",
    ),
    key_row(
        "container_include_metrics",
        KeyDefault::None,
        Check::Filters,
        "as container_include",
    ),
    key_row(
        "exclude_pause_container",
        Value("true"),
        Check::Bool,
        "skip ECS/Kubernetes pause containers",
    ),
    key_row(
        "statsd_metric_blocklist",
        KeyDefault::None,
        Check::Words,
        "DogStatsD metric names dropped before aggregation",
    ),
    key_row(
        "statsd_metric_blocklist_match_prefix",
        Value("false"),
        Check::Bool,
        "the blocklist holds prefixes",
    ),
    key_row(
        "dogstatsd_buffer_size",
        Value("8192"),
        Check::Uint {
            min: 1,
            max: MAX_DOGSTATSD_BUFFER_SIZE as u64,
            // The number is MAX_DOGSTATSD_BUFFER_SIZE (a test checks they agree).
            reason: "is not a buffer size in bytes (1-1048576)",
            below: "must be at least 1 byte",
        },
        "largest datagram read, bytes",
    ),
    key_row(
        "dogstatsd_so_rcvbuf",
        Value("0"),
        uint(1 << 31, "is not a buffer size in bytes"),
        "UDP receive buffer requested, bytes (0: ask 4 MiB, up to net.core.rmem_max unless CAP_NET_ADMIN)",
    ),
    key_row(
        "dogstatsd_queue_bytes",
        Derived("memory_limit / 8, 4-64 MiB"),
        Check::Size {
            // The upper bound, half of memory_limit, is checked where it is known (build.rs).
            min: 1 << 20,
            reason: "is not a size between 1MiB and half of memory_limit, such as 32MiB",
            below: "is not a size between 1MiB and half of memory_limit, such as 32MiB",
        },
        "queue between socket readers and workers",
    ),
    key_row(
        "dogstatsd_pipeline_count",
        Value("0"),
        uint(
            64,
            "is not a number of workers between 1 and 64 (0: one per core)",
        ),
        "parsing/aggregation workers (0: one per core)",
    ),
    key_row(
        "dogstatsd_tags",
        KeyDefault::None,
        Check::List,
        "tags added to every DogStatsD metric",
    ),
    json_row(
        "dogstatsd_mapper_profiles",
        Check::Yaml,
        "Datadog mapper profiles (JSON in the environment)",
    ),
    key_row(
        "dogstatsd_expiry_seconds",
        Value("300"),
        uint(u32::MAX as u64, "is not a number of seconds"),
        "counters without samples are sent as 0 this long",
    ),
    key_row(
        "histogram_aggregates",
        Value("max median avg count"),
        Check::ListOf(&["max", "min", "median", "avg", "sum", "count"]),
        "histogram aggregates sent",
    ),
    key_row(
        "histogram_percentiles",
        Value("0.95"),
        Check::Fractions,
        "histogram percentiles sent",
    ),
    key_row(
        "ecs_agent_url",
        Value("http://localhost:51678"),
        Check::Text,
        "ECS agent introspection API",
    ),
    key_row(
        "container_collection",
        Value("true"),
        Check::Bool,
        "Docker metrics and events",
    ),
    key_row(
        "memory_limit",
        Value("256MiB"),
        Check::Size {
            min: 16 << 20,
            reason: "is not a size such as 256MiB, 512MB or a number of bytes",
            below: "is below the minimum of 16MiB",
        },
        "cap on the agent's memory; near it new contexts are refused and counted",
    ),
    key_row(
        "forwarder_storage_path",
        KeyDefault::None,
        Check::Text,
        "directory for payloads not sent yet, kept across restarts",
    ),
    key_row(
        "forwarder_storage_max_size_in_bytes",
        Value("0"),
        uint(u64::MAX, "is not a size in bytes"),
        "disk cap for that directory",
    ),
    key_row(
        "forwarder_timeout",
        Value("20"),
        Check::Duration {
            whole_seconds: false,
            reason: "is not a positive duration such as 20 or 20s",
        },
        "intake request timeout, seconds",
    ),
    key_row(
        "forwarder_backoff_base",
        Value("2"),
        POSITIVE_SECONDS,
        "retry backoff base, seconds",
    ),
    key_row(
        "forwarder_backoff_max",
        Value("64"),
        POSITIVE_SECONDS,
        "retry backoff cap, seconds",
    ),
    key_row(
        "log_level",
        Value("info"),
        Check::LogLevel,
        "trace, debug, info, warn, error, critical or off (RUST_LOG overrides)",
    ),
    key_row(
        "log_format_json",
        Value("false"),
        Check::Bool,
        "one JSON object per log line",
    ),
    env_row(
        "KELPIE_FLUSH_INTERVAL",
        Value("10s"),
        Check::Duration {
            whole_seconds: true,
            reason: "is not a whole number of seconds of at least 1s, such as 10s",
        },
        "aggregation bucket and flush interval",
    ),
    env_row(
        "KELPIE_STATUS_ADDR",
        Value("127.0.0.1:5002"),
        Check::Addr {
            off: false,
            reason: "is not an address such as 127.0.0.1:5002",
        },
        "status page, status JSON, /debug/pprof/profile",
    ),
    env_row(
        "KELPIE_HISTORY_MEMORY",
        Derived("32MiB (0 with api_key)"),
        Check::Size {
            min: 0,
            reason: "is not a size such as 32MiB",
            below: "is not a size such as 32MiB",
        },
        "memory for the local page's last hour",
    ),
    env_row(
        "KELPIE_PROFILES_ADDR",
        Derived("127.0.0.1:<DD_APM_RECEIVER_PORT>"),
        Check::Addr {
            off: true,
            reason: "is not an address such as 127.0.0.1:8126 (or off)",
        },
        "profiles intake (off to disable)",
    ),
    env_row(
        "KELPIE_PPROF",
        Value("true"),
        Check::Bool,
        "serve /debug/pprof/profile on the status server",
    ),
    env_row(
        "DD_APM_RECEIVER_PORT",
        Value("8126"),
        uint(65535, "is not a TCP port number (0-65535)"),
        "port of the profiles intake",
    ),
    env_row(
        "DD_APM_NON_LOCAL_TRAFFIC",
        Value("false"),
        Check::Bool,
        "profiles intake on all interfaces",
    ),
    env_row(
        "HOST_PROC",
        Value("/proc"),
        Check::Text,
        "the host's /proc (/host/proc in a container)",
    ),
    env_row("HOST_SYS", Value("/sys"), Check::Text, "the host's /sys"),
    env_row(
        "DOCKER_HOST",
        Derived("unix:///var/run/docker.sock"),
        Check::Text,
        "Docker engine address",
    ),
];
