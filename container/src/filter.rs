//! Which containers' metrics are collected, the Datadog Agent's way: `container_exclude` / `container_include`
//! (and their `_metrics` variants) hold filters `name:<regex>` or `image:<regex>` (unanchored, like Datadog's);
//! a container matching an exclude filter is left out unless an include filter matches it too. ECS's pause
//! containers are left out by default (`exclude_pause_container`).

use regex::Regex;

/// The image of the container ECS starts in every `awsvpc` task to hold its network.
const ECS_PAUSE_IMAGE: &str = "image:amazon/amazon-ecs-pause";

#[derive(Clone, Debug)]
enum Field {
    Name,
    Image,
}

#[derive(Clone, Debug)]
struct Matcher {
    field: Field,
    re: Regex,
}

/// A filter that is not `name:<regex>`, `image:<regex>` or `kube_namespace:<regex>`, or whose regex is invalid.
#[derive(Debug, thiserror::Error)]
#[error("`{filter}` is not a container filter: {reason}")]
pub struct FilterError {
    pub filter: String,
    pub reason: String,
}

/// Include and exclude filters over a container's name and image.
#[derive(Clone, Debug, Default)]
pub struct ContainerFilter {
    include: Vec<Matcher>,
    exclude: Vec<Matcher>,
}

fn parse(filters: &[String]) -> Result<Vec<Matcher>, FilterError> {
    let mut out = Vec::new();
    for f in filters {
        let err = |reason: String| FilterError {
            filter: f.clone(),
            reason,
        };
        let (field, pattern) = if let Some(p) = f.strip_prefix("name:") {
            (Field::Name, p)
        } else if let Some(p) = f.strip_prefix("image:") {
            (Field::Image, p)
        } else if f.starts_with("kube_namespace:") {
            continue; // Kubernetes only; nothing here has a namespace.
        } else {
            return Err(err("it must start with name: or image:".into()));
        };
        let re = Regex::new(pattern).map_err(|e| err(e.to_string()))?;
        out.push(Matcher { field, re });
    }
    Ok(out)
}

impl ContainerFilter {
    /// From the configured lists; `exclude_pause` adds ECS's pause image to the excludes.
    pub fn new(
        include: &[String],
        exclude: &[String],
        exclude_pause: bool,
    ) -> Result<Self, FilterError> {
        let mut exclude = parse(exclude)?;
        if exclude_pause {
            exclude.extend(parse(&[ECS_PAUSE_IMAGE.to_string()])?);
        }
        Ok(ContainerFilter {
            include: parse(include)?,
            exclude,
        })
    }

    /// Whether the container `name` running `image` is left out.
    pub fn excludes(&self, name: &str, image: &str) -> bool {
        let hit = |ms: &[Matcher]| {
            ms.iter().any(|m| match m.field {
                Field::Name => m.re.is_match(name),
                Field::Image => m.re.is_match(image),
            })
        };
        hit(&self.exclude) && !hit(&self.include)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exclude_unless_included_and_pause_by_default() {
        let f = ContainerFilter::new(
            &v(&["name:^keep-me$"]),
            &v(&[
                "image:^redis",
                "name:-sidecar$",
                "kube_namespace:kube-system",
            ]),
            true,
        )
        .unwrap();
        assert!(f.excludes("cache", "redis:7"));
        assert!(f.excludes("web-sidecar", "envoy:1"));
        assert!(!f.excludes("web", "nginx:1.25"));
        assert!(!f.excludes("keep-me", "redis:7"), "include wins");
        assert!(f.excludes(
            "ecs-task-1-internalecspause",
            "amazon/amazon-ecs-pause:0.1.0"
        ));
        let none = ContainerFilter::new(&[], &[], false).unwrap();
        assert!(!none.excludes("x", "amazon/amazon-ecs-pause:0.1.0"));
        let e = ContainerFilter::new(&[], &v(&["label:x"]), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "`label:x` is not a container filter: it must start with name: or image:"
        );
        assert!(ContainerFilter::new(&[], &v(&["name:(unclosed"]), false).is_err());
    }
}
