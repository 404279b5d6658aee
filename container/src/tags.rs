//! Container tags the way the Datadog Agent's tagger spells them for Docker and ECS.

use std::collections::HashMap;

pub const LABEL_ECS_CLUSTER: &str = "com.amazonaws.ecs.cluster";
pub const LABEL_ECS_CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
pub const LABEL_ECS_TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
pub const LABEL_ECS_FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
pub const LABEL_ECS_VERSION: &str = "com.amazonaws.ecs.task-definition-version";
const LABEL_DD_ENV: &str = "com.datadoghq.tags.env";
const LABEL_DD_SERVICE: &str = "com.datadoghq.tags.service";
const LABEL_DD_VERSION: &str = "com.datadoghq.tags.version";

/// How many distinct values a tag takes across a host's containers, as Datadog's tagger ranks them. DogStatsD
/// origin tags are those at or below `dogstatsd_tag_cardinality` (Datadog's default: low), because each extra
/// level multiplies a service's custom-metric contexts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagCardinality {
    /// No container tags at all.
    None,
    /// Image, ECS task family/revision/cluster/container name, `env/service/version`.
    #[default]
    Low,
    /// Plus `task_arn`.
    Orchestrator,
    /// Plus `container_name` and `container_id`.
    High,
}

impl TagCardinality {
    /// The level's name as configured (`none`, `low`, `orchestrator`, `high`).
    pub fn as_str(self) -> &'static str {
        match self {
            TagCardinality::None => "none",
            TagCardinality::Low => "low",
            TagCardinality::Orchestrator => "orchestrator",
            TagCardinality::High => "high",
        }
    }
}

impl std::str::FromStr for TagCardinality {
    type Err = ();
    /// `none`, `low`, `orchestrator` or `high`, any case.
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(TagCardinality::None),
            "low" => Ok(TagCardinality::Low),
            "orchestrator" => Ok(TagCardinality::Orchestrator),
            "high" => Ok(TagCardinality::High),
            _ => Err(()),
        }
    }
}

/// The cardinality of one of [`container_tags`]' tags; `None` for `runtime:docker`, which the Datadog Agent's
/// docker check adds to its own metrics but the tagger never gives a container.
pub fn tag_cardinality(tag: &str) -> Option<TagCardinality> {
    let key = tag.split(':').next().unwrap_or(tag);
    match key {
        "container_name" | "container_id" => Some(TagCardinality::High),
        "task_arn" => Some(TagCardinality::Orchestrator),
        "runtime" => None,
        _ => Some(TagCardinality::Low),
    }
}

/// An image reference split the way Datadog tags it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageParts {
    /// The reference as given, without a digest (`registry:5000/team/app:1.2`).
    pub docker_image: String,
    /// Without the tag (`registry:5000/team/app`).
    pub image_name: String,
    /// Last path component of the name (`app`).
    pub short_image: String,
    /// The tag (`1.2`; `latest` when none is given).
    pub image_tag: String,
}

/// Splits an image reference (`[registry[:port]/]path[:tag][@digest]`).
pub fn split_image(image: &str) -> ImageParts {
    let no_digest = image.split('@').next().unwrap_or(image);
    let last_slash = no_digest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match no_digest[last_slash..].rfind(':') {
        Some(i) => (
            &no_digest[..last_slash + i],
            &no_digest[last_slash + i + 1..],
        ),
        None => (no_digest, "latest"),
    };
    let short = name.rsplit('/').next().unwrap_or(name);
    let docker_image = if no_digest.is_empty() {
        image.to_string()
    } else {
        format!("{name}:{tag}")
    };
    ImageParts {
        docker_image,
        image_name: name.to_string(),
        short_image: short.to_string(),
        image_tag: tag.to_string(),
    }
}

/// The ECS cluster name from a label that may be a name or an ARN (`arn:aws:ecs:…:cluster/<name>`).
pub fn cluster_name(v: &str) -> &str {
    v.rsplit('/').next().unwrap_or(v)
}

/// ECS task identity read from a container's labels.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EcsLabels {
    pub family: Option<String>,
    pub version: Option<String>,
    pub task_arn: Option<String>,
    pub cluster: Option<String>,
    pub container_name: Option<String>,
}

impl EcsLabels {
    pub fn from_labels(labels: &HashMap<String, String>) -> Self {
        let get = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        EcsLabels {
            family: get(LABEL_ECS_FAMILY),
            version: get(LABEL_ECS_VERSION),
            task_arn: get(LABEL_ECS_TASK_ARN),
            cluster: get(LABEL_ECS_CLUSTER).map(|c| cluster_name(&c).to_string()),
            container_name: get(LABEL_ECS_CONTAINER_NAME),
        }
    }
}

/// Image tags only (`docker_image image_name image_tag short_image`).
pub fn image_tags(img: &ImageParts) -> Vec<String> {
    vec![
        format!("docker_image:{}", img.docker_image),
        format!("image_name:{}", img.image_name),
        format!("image_tag:{}", img.image_tag),
        format!("short_image:{}", img.short_image),
    ]
}

/// Every tag of a container: identity, image, `runtime:docker`, ECS labels and the unified-service-tagging
/// labels. Sorted and de-duplicated.
pub fn container_tags(
    id: &str,
    name: &str,
    image: &str,
    labels: &HashMap<String, String>,
) -> Vec<String> {
    let img = split_image(image);
    let mut tags = image_tags(&img);
    tags.push(format!("container_name:{}", name.trim_start_matches('/')));
    tags.push(format!("container_id:{id}"));
    tags.push("runtime:docker".to_string());
    let ecs = EcsLabels::from_labels(labels);
    let pairs = [
        ("task_family", &ecs.family),
        ("task_version", &ecs.version),
        ("task_arn", &ecs.task_arn),
        ("ecs_cluster_name", &ecs.cluster),
        ("ecs_container_name", &ecs.container_name),
    ];
    for (k, v) in pairs {
        if let Some(v) = v {
            tags.push(format!("{k}:{v}"));
        }
    }
    for (label, key) in [
        (LABEL_DD_ENV, "env"),
        (LABEL_DD_SERVICE, "service"),
        (LABEL_DD_VERSION, "version"),
    ] {
        if let Some(v) = labels.get(label).filter(|v| !v.is_empty()) {
            tags.push(format!("{key}:{v}"));
        }
    }
    tags.sort();
    tags.dedup();
    tags
}

/// The Datadog Agent's autodiscovery label listing extra tags for everything a container emits, as a JSON
/// array of `key:value` strings.
pub const LABEL_AD_TAGS: &str = "com.datadoghq.ad.tags";

/// Extra container tags configured the Datadog Agent's way: `container_labels_as_tags` and
/// `container_env_as_tags` map a label or environment variable name (any case) to a tag key; a key written
/// `+key` is high cardinality (origin tags only at `high`), any other low. Plus the `com.datadoghq.ad.tags`
/// label, always read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagRules {
    /// (lowercased label name, tag key, cardinality)
    pub labels: Vec<(String, String, TagCardinality)>,
    /// (lowercased environment variable name, tag key, cardinality)
    pub env: Vec<(String, String, TagCardinality)>,
}

impl TagRules {
    /// One rule from a configured `name: key` pair (`+key` for high cardinality).
    pub fn rule(name: &str, key: &str) -> (String, String, TagCardinality) {
        let (key, card) = match key.strip_prefix('+') {
            Some(k) => (k, TagCardinality::High),
            None => (key, TagCardinality::Low),
        };
        (name.to_ascii_lowercase(), key.to_string(), card)
    }

    /// The extra tags of a container with these labels and environment (`NAME=value` entries).
    pub fn extra_tags(
        &self,
        labels: &HashMap<String, String>,
        env: &[String],
    ) -> Vec<(String, TagCardinality)> {
        let mut out = Vec::new();
        apply_rules(
            &self.labels,
            labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            &mut out,
        );
        apply_rules(
            &self.env,
            env.iter().filter_map(|e| e.split_once('=')),
            &mut out,
        );
        if let Some(v) = labels.get(LABEL_AD_TAGS) {
            match serde_json::from_str::<Vec<String>>(v) {
                Ok(tags) => out.extend(
                    tags.into_iter()
                        .map(|t| t.trim().to_string())
                        .filter(|t| !t.is_empty())
                        .map(|t| (t, TagCardinality::Low)),
                ),
                Err(e) => {
                    tracing::debug!(label = v.as_str(), error = %e, "ignored an invalid com.datadoghq.ad.tags label")
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Adds a `key:value` tag for each (name, value) pair a rule names (any case; empty values give none).
fn apply_rules<'a>(
    rules: &[(String, String, TagCardinality)],
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    out: &mut Vec<(String, TagCardinality)>,
) {
    if rules.is_empty() {
        return;
    }
    for (name, value) in pairs.filter(|(_, v)| !v.is_empty()) {
        let lower = name.to_ascii_lowercase();
        for (_, key, card) in rules.iter().filter(|(want, _, _)| *want == lower) {
            out.push((format!("{key}:{value}"), *card));
        }
    }
}

/// Tags of the `docker.containers.{running,stopped}` counts: the image and, when labelled, the task family.
pub fn count_tags(image: &str, labels: &HashMap<String, String>) -> Vec<String> {
    let mut tags = image_tags(&split_image(image));
    if let Some(f) = labels.get(LABEL_ECS_FAMILY).filter(|v| !v.is_empty()) {
        tags.push(format!("task_family:{f}"));
    }
    tags.sort();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_like_datadog() {
        let p = split_image("registry.example.com:5000/team/app:1.2@sha256:abcd");
        assert_eq!(p.docker_image, "registry.example.com:5000/team/app:1.2");
        assert_eq!(p.image_name, "registry.example.com:5000/team/app");
        assert_eq!(p.short_image, "app");
        assert_eq!(p.image_tag, "1.2");
        let p = split_image("registry.example.com:5000/app");
        assert_eq!(
            (p.image_name.as_str(), p.image_tag.as_str()),
            ("registry.example.com:5000/app", "latest")
        );
        let p = split_image("redis");
        assert_eq!(
            (p.docker_image.as_str(), p.short_image.as_str()),
            ("redis:latest", "redis")
        );
        let p = split_image("");
        assert_eq!(p.image_tag, "latest");
    }

    #[test]
    fn ecs_and_unified_service_labels_become_tags() {
        let labels: HashMap<String, String> = [
            (LABEL_ECS_FAMILY, "web"),
            (LABEL_ECS_VERSION, "42"),
            (LABEL_ECS_CLUSTER, "arn:aws:ecs:us-east-1:123:cluster/prod"),
            (
                LABEL_ECS_TASK_ARN,
                "arn:aws:ecs:us-east-1:123:task/prod/abc",
            ),
            (LABEL_ECS_CONTAINER_NAME, "nginx"),
            ("com.datadoghq.tags.env", "staging"),
            ("com.datadoghq.tags.service", "web"),
            ("com.datadoghq.tags.version", "1.0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let t = container_tags("abc123", "/ecs-web-42-nginx", "nginx:1.25", &labels);
        for want in [
            "container_name:ecs-web-42-nginx",
            "container_id:abc123",
            "docker_image:nginx:1.25",
            "image_name:nginx",
            "image_tag:1.25",
            "short_image:nginx",
            "runtime:docker",
            "task_family:web",
            "task_version:42",
            "task_arn:arn:aws:ecs:us-east-1:123:task/prod/abc",
            "ecs_cluster_name:prod",
            "ecs_container_name:nginx",
            "env:staging",
            "service:web",
            "version:1.0",
        ] {
            assert!(t.iter().any(|x| x == want), "missing {want} in {t:?}");
        }
        assert_eq!(t.len(), 15);
    }

    #[test]
    fn labels_env_and_ad_tags_become_extra_tags_with_their_cardinality() {
        let rules = TagRules {
            labels: vec![
                TagRules::rule("com.docker.compose.service", "compose_service"),
                TagRules::rule("Team", "team"),
                TagRules::rule("build", "+build_id"),
            ],
            env: vec![TagRules::rule("DEPLOY_COLOR", "color")],
        };
        let labels: HashMap<String, String> = [
            ("com.docker.compose.service", "web"),
            ("TEAM", "payments"),
            ("build", "1234"),
            ("unrelated", "x"),
            (LABEL_AD_TAGS, r#"["tier:frontend", " owner:alice ", ""]"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = [
            "DEPLOY_COLOR=blue".to_string(),
            "PATH=/bin".to_string(),
            "BROKEN".to_string(),
        ];
        let got = rules.extra_tags(&labels, &env);
        let low = TagCardinality::Low;
        assert_eq!(
            got,
            [
                ("build_id:1234".to_string(), TagCardinality::High),
                ("color:blue".to_string(), low),
                ("compose_service:web".to_string(), low),
                ("owner:alice".to_string(), low),
                ("team:payments".to_string(), low),
                ("tier:frontend".to_string(), low),
            ]
        );
        // No rules: only the ad.tags label; a broken label is ignored.
        let mut labels = labels;
        labels.insert(LABEL_AD_TAGS.into(), "not json".into());
        assert!(TagRules::default().extra_tags(&labels, &env).is_empty());
    }
}
