//! From checked values to a [`Config`]: what each setting becomes, and the settings worked out from others
//! (the intake URL from the site, host tags from `tags` and `env`, the queue from `memory_limit`, the profiles
//! address from the APM port). How each value is read and checked is its row of [`super::keys::KEYS`].

use super::sources::Raw;
use super::{Config, ConfigError};
use kelpie_container::filter::ContainerFilter;
use kelpie_container::tags::TagRules;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The intake base URL: `dd_url` without its trailing slash, else `https://api.<site>`.
fn dd_url(raw: &Raw, site: &str) -> Result<String, ConfigError> {
    Ok(match raw.text("dd_url")? {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("https://api.{site}"),
    })
}

/// Host tags: `tags`, and `env:<env>`.
fn host_tags(raw: &Raw, env: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let mut tags = raw.list("tags")?;
    tags.extend(env.map(|e| format!("env:{e}")));
    Ok(tags)
}

/// `container_*_as_tags` and their `docker_` spellings, in that order.
fn container_tag_rules(raw: &Raw) -> Result<TagRules, ConfigError> {
    let mut rules = TagRules::default();
    for key in ["container_labels_as_tags", "docker_labels_as_tags"] {
        for (name, tag) in raw.tag_map(key)? {
            rules.labels.push(TagRules::rule(&name, &tag));
        }
    }
    for key in ["container_env_as_tags", "docker_env_as_tags"] {
        for (name, tag) in raw.tag_map(key)? {
            rules.env.push(TagRules::rule(&name, &tag));
        }
    }
    Ok(rules)
}

/// `container_include`/`_exclude` (and their `_metrics` spellings) and `exclude_pause_container` as one filter.
fn container_metrics_filter(raw: &Raw) -> Result<ContainerFilter, ConfigError> {
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    for (key, is_include) in [
        ("container_include", true),
        ("container_include_metrics", true),
        ("container_exclude", false),
        ("container_exclude_metrics", false),
    ] {
        let list = raw.list(key)?;
        if is_include {
            include.extend(list);
        } else {
            exclude.extend(list);
        }
    }
    let exclude_pause = raw.bool("exclude_pause_container")?;
    ContainerFilter::new(&include, &exclude, exclude_pause)
        .map_err(|e| raw.invalid("container_exclude", format!("holds {e}")))
}

/// `dogstatsd_queue_bytes`: given, at most half of `memory_limit`; by default an eighth of it, within 4-64 MiB.
fn dogstatsd_queue_bytes(raw: &Raw, memory_limit: u64) -> Result<u64, ConfigError> {
    const KEY: &str = "dogstatsd_queue_bytes";
    match raw.size(KEY)? {
        None => Ok((memory_limit / 8).clamp(4 << 20, 64 << 20)),
        Some(n) if n <= memory_limit / 2 => Ok(n),
        Some(_) => Err(raw.invalid(
            KEY,
            "is not a size between 1MiB and half of memory_limit, such as 32MiB",
        )),
    }
}

/// The profiles intake: `KELPIE_PROFILES_ADDR`, else the trace agent's port as the Datadog Agent has it,
/// `DD_APM_RECEIVER_PORT` (8126; 0 is off), on all interfaces with `DD_APM_NON_LOCAL_TRAFFIC=true` (needed in a
/// container).
fn profiles_addr(raw: &Raw) -> Result<Option<SocketAddr>, ConfigError> {
    let apm_port = raw.uint("DD_APM_RECEIVER_PORT")? as u16;
    let apm_non_local = raw.bool("DD_APM_NON_LOCAL_TRAFFIC")?;
    if raw.is_given("KELPIE_PROFILES_ADDR") {
        return raw.addr("KELPIE_PROFILES_ADDR");
    }
    Ok(match (apm_port, apm_non_local) {
        (0, _) => None,
        (port, true) => Some(SocketAddr::from(([0, 0, 0, 0], port))),
        (port, false) => Some(SocketAddr::from(([127, 0, 0, 1], port))),
    })
}

/// Every field of [`Config`] from its setting (a list of field initialisers, long but flat).
pub(super) fn config(raw: &Raw, unknown_keys: Vec<String>) -> Result<Config, ConfigError> {
    let api_key = raw.text("api_key")?.map(crate::secret::Secret::new);
    let site = raw.text("site")?.unwrap_or_default();
    let env = raw.text("env")?;
    let memory_limit = raw.size("memory_limit")?.unwrap_or_default();
    // The history is what local mode shows; with a key it is off unless asked for, so its memory goes to
    // contexts instead.
    let history_memory = match raw.size("KELPIE_HISTORY_MEMORY")? {
        Some(n) => n,
        None if api_key.is_some() => 0,
        None => 32 << 20,
    };
    Ok(Config {
        dd_url: dd_url(raw, &site)?,
        host_tags: host_tags(raw, env.as_deref())?,
        hostname: raw.text("hostname")?.unwrap_or_else(detect_hostname),
        api_key,
        site,
        env,
        dogstatsd_port: raw.uint("dogstatsd_port")? as u16,
        bind_host: raw.text("bind_host")?.unwrap_or_default(),
        dogstatsd_non_local_traffic: raw.bool("dogstatsd_non_local_traffic")?,
        dogstatsd_socket: raw.socket_path("dogstatsd_socket")?,
        dogstatsd_stream_socket: raw.socket_path("dogstatsd_stream_socket")?,
        dogstatsd_origin_detection: raw.bool("dogstatsd_origin_detection")?,
        dogstatsd_origin_detection_client: raw.bool("dogstatsd_origin_detection_client")?,
        dogstatsd_tag_cardinality: raw.cardinality("dogstatsd_tag_cardinality")?,
        container_tag_rules: container_tag_rules(raw)?,
        container_metrics_filter: container_metrics_filter(raw)?,
        statsd_metric_blocklist: raw.list("statsd_metric_blocklist")?,
        statsd_metric_blocklist_match_prefix: raw.bool("statsd_metric_blocklist_match_prefix")?,
        dogstatsd_buffer_size: raw.uint("dogstatsd_buffer_size")? as usize,
        dogstatsd_so_rcvbuf: raw.uint("dogstatsd_so_rcvbuf")? as usize,
        dogstatsd_queue_bytes: dogstatsd_queue_bytes(raw, memory_limit)?,
        dogstatsd_pipeline_count: raw.uint("dogstatsd_pipeline_count")? as usize,
        dogstatsd_tags: raw.list("dogstatsd_tags")?,
        dogstatsd_mapper_profiles: raw.yaml("dogstatsd_mapper_profiles"),
        dogstatsd_expiry_seconds: raw.uint("dogstatsd_expiry_seconds")? as i64,
        histogram_aggregates: raw.list("histogram_aggregates")?,
        histogram_percentiles: raw.fractions("histogram_percentiles")?,
        ecs_agent_url: raw.text("ecs_agent_url")?.unwrap_or_default(),
        container_collection: raw.bool("container_collection")?,
        docker_host: raw.text("DOCKER_HOST")?.filter(|s| !s.is_empty()),
        memory_limit,
        forwarder_storage_path: raw.text("forwarder_storage_path")?.map(PathBuf::from),
        forwarder_storage_max_size_in_bytes: raw.uint("forwarder_storage_max_size_in_bytes")?,
        forwarder_timeout: raw.duration("forwarder_timeout")?,
        forwarder_backoff_base: raw.duration("forwarder_backoff_base")?,
        forwarder_backoff_max: raw.duration("forwarder_backoff_max")?,
        flush_interval: raw.duration("KELPIE_FLUSH_INTERVAL")?,
        status_addr: raw
            .addr("KELPIE_STATUS_ADDR")?
            .unwrap_or_else(|| unreachable!("KELPIE_STATUS_ADDR has a default and cannot be off")),
        profiles_addr: profiles_addr(raw)?,
        history_memory,
        host_proc: PathBuf::from(raw.text("HOST_PROC")?.unwrap_or_default()),
        host_sys: PathBuf::from(raw.text("HOST_SYS")?.unwrap_or_default()),
        log_level: raw.log_level("log_level")?.to_string(),
        log_format_json: raw.bool("log_format_json")?,
        unknown_keys,
        misspelt_env: Vec::new(),
        given: BTreeMap::new(),
        pprof: raw.bool("KELPIE_PPROF")?,
        warnings: Vec::new(),
    })
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
