//! [`ContainerConfig`]: where to find Docker, the host's `/proc` and `/sys` and the ECS agent, and which
//! container tags and filters apply.

use crate::{filter, tags};
use std::path::PathBuf;
use std::time::Duration;

/// Where to find Docker, the host's proc/sys and the ECS agent.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    /// `DOCKER_HOST` (`unix:///path` or `tcp://host:port`); `None` = `unix:///var/run/docker.sock`.
    pub docker_host: Option<String>,
    pub host_proc: PathBuf,
    pub host_sys: PathBuf,
    /// ECS agent introspection API base URL.
    pub ecs_agent_url: String,
    /// This host's name, used in deploy event titles.
    pub hostname: String,
    /// How long the deploy detector waits for the rest of a deploy's containers before emitting its event.
    pub deploy_debounce: Duration,
    /// Container tags up to this cardinality tag DogStatsD traffic (`dogstatsd_tag_cardinality`).
    pub origin_cardinality: tags::TagCardinality,
    /// Extra tags from labels and environment (`container_labels_as_tags`, `container_env_as_tags`).
    pub tag_rules: tags::TagRules,
    /// Containers whose metrics are not collected (`container_exclude`, `container_include`, …).
    pub metrics_filter: filter::ContainerFilter,
}

impl Default for ContainerConfig {
    /// From the environment: `DOCKER_HOST`, `HOST_PROC` (default `/proc`), `HOST_SYS` (default `/sys`),
    /// `DD_ECS_AGENT_URL` (default `http://localhost:51678`); hostname empty; 5 s debounce.
    fn default() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        ContainerConfig {
            docker_host: env("DOCKER_HOST"),
            host_proc: env("HOST_PROC")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/proc".into()),
            host_sys: env("HOST_SYS")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/sys".into()),
            ecs_agent_url: env("DD_ECS_AGENT_URL")
                .unwrap_or_else(|| "http://localhost:51678".into()),
            hostname: String::new(),
            deploy_debounce: Duration::from_secs(5),
            origin_cardinality: tags::TagCardinality::Low,
            tag_rules: tags::TagRules::default(),
            metrics_filter: filter::ContainerFilter::default(),
        }
    }
}
