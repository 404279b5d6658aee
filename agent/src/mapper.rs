//! DogStatsD mapper profiles (`dogstatsd_mapper_profiles`), with the Datadog Agent's semantics: the
//! first profile whose `prefix` starts the metric name (or whose prefix is `*`) decides; its mappings are
//! tried in order and the first whose pattern matches the whole name renames the metric and adds tags,
//! with `$1` / `${1}` (or named groups) expanded from the match. A name that matches a profile's prefix
//! but none of its mappings is left alone and later profiles are not tried, as in the agent.
//!
//! `wildcard` patterns may only use `[a-zA-Z0-9-_*.]` and no `**`; each `*` matches one dot-free segment.
//! Results (hits and misses) are cached per name in a bounded cache, like the agent's
//! `dogstatsd_mapper_cache_size` (1000 by default).
//!
//! ```yaml
//! dogstatsd_mapper_profiles:
//!   - name: airflow
//!     prefix: "airflow."
//!     mappings:
//!       - match: "airflow.job.duration_sec.*.*"
//!         name: "airflow.job.duration"
//!         tags:
//!           job_type: "$1"
//!           job_name: "$2"
//! ```

use hashbrown::HashMap;
use parking_lot::Mutex;
use regex::Regex;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Default size of the result cache (the agent's `dogstatsd_mapper_cache_size`).
pub const DEFAULT_CACHE_SIZE: usize = 1000;

/// A mapping profile as written in the configuration.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct ProfileConfig {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub mappings: Vec<MappingConfig>,
}

/// One mapping rule as written in the configuration.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
pub struct MappingConfig {
    #[serde(rename = "match", default)]
    pub pattern: String,
    /// `wildcard` (default) or `regex`.
    #[serde(default)]
    pub match_type: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// Why mapper profiles could not be loaded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MapperError {
    #[error("dogstatsd_mapper_profiles: profile number {0} has no name")]
    MissingName(usize),
    #[error("dogstatsd_mapper_profiles: profile `{0}` has no prefix")]
    MissingPrefix(String),
    #[error("dogstatsd_mapper_profiles: profile `{profile}`, mapping number {index}: match_type must be `wildcard` or `regex`, not `{match_type}`")]
    BadMatchType {
        profile: String,
        index: usize,
        match_type: String,
    },
    #[error("dogstatsd_mapper_profiles: profile `{profile}`, mapping number {index}: {what} is required")]
    Missing {
        profile: String,
        index: usize,
        what: &'static str,
    },
    #[error("dogstatsd_mapper_profiles: invalid wildcard match pattern `{0}`: only letters, digits, `-`, `_`, `.` and `*` are allowed")]
    BadWildcard(String),
    #[error("dogstatsd_mapper_profiles: invalid wildcard match pattern `{0}`: it must not contain consecutive `*`")]
    DoubleStar(String),
    #[error("dogstatsd_mapper_profiles: invalid match `{pattern}`: {reason}")]
    BadRegex { pattern: String, reason: String },
    #[error("dogstatsd_mapper_profiles: {0}")]
    Parse(String),
}

#[derive(Clone, Debug)]
struct Mapping {
    regex: Regex,
    name: String,
    tags: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
struct Profile {
    prefix: String,
    mappings: Vec<Mapping>,
}

/// The outcome of mapping one name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapResult {
    pub name: String,
    /// `key:value` tags.
    pub tags: Vec<String>,
}

/// Bounded two-generation cache: lookups hit `hot`, then `cold` (promoting); when `hot` is full it
/// becomes `cold` and the old `cold` is dropped. Holds at most `2 * half` entries, recently used survive.
#[derive(Debug, Default)]
struct Cache {
    hot: HashMap<Box<str>, Option<Arc<MapResult>>>,
    cold: HashMap<Box<str>, Option<Arc<MapResult>>>,
    half: usize,
}

impl Cache {
    fn get(&mut self, name: &str) -> Option<Option<Arc<MapResult>>> {
        if let Some(v) = self.hot.get(name) {
            return Some(v.clone());
        }
        let (k, v) = self.cold.remove_entry(name)?;
        self.put(k, v.clone());
        Some(v)
    }

    fn put(&mut self, k: Box<str>, v: Option<Arc<MapResult>>) {
        if self.half == 0 {
            return;
        }
        if self.hot.len() >= self.half {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.hot.insert(k, v);
    }
}

/// Compiled `dogstatsd_mapper_profiles`. Deserializes from the YAML/JSON list of profiles.
#[derive(Debug, serde::Deserialize)]
#[serde(try_from = "Vec<ProfileConfig>")]
pub struct MapperProfiles {
    profiles: Vec<Profile>,
    cache: Mutex<Cache>,
}

impl Clone for MapperProfiles {
    fn clone(&self) -> Self {
        let half = self.cache.lock().half;
        Self {
            profiles: self.profiles.clone(),
            cache: Mutex::new(Cache {
                half,
                ..Cache::default()
            }),
        }
    }
}

impl TryFrom<Vec<ProfileConfig>> for MapperProfiles {
    type Error = MapperError;
    fn try_from(v: Vec<ProfileConfig>) -> Result<Self, MapperError> {
        Self::new(&v, DEFAULT_CACHE_SIZE)
    }
}

fn build_regex(pattern: &str, match_type: &str) -> Result<Regex, MapperError> {
    let re = if match_type == "wildcard" {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '.');
        if pattern.is_empty() || !pattern.chars().all(allowed) {
            return Err(MapperError::BadWildcard(pattern.to_string()));
        }
        if pattern.contains("**") {
            return Err(MapperError::DoubleStar(pattern.to_string()));
        }
        pattern.replace('.', "\\.").replace('*', "([^.]*)")
    } else {
        pattern.to_string()
    };
    Regex::new(&format!("^{re}$")).map_err(|e| MapperError::BadRegex {
        pattern: pattern.to_string(),
        // The regex crate's message spans lines; keep the last one (the reason).
        reason: e
            .to_string()
            .lines()
            .last()
            .unwrap_or("cannot compile")
            .trim()
            .to_string(),
    })
}

impl MapperProfiles {
    /// Validates and compiles profiles, as the agent's `NewMetricMapper`.
    pub fn new(profiles: &[ProfileConfig], cache_size: usize) -> Result<Self, MapperError> {
        let mut out = Vec::with_capacity(profiles.len());
        for (pi, p) in profiles.iter().enumerate() {
            if p.name.is_empty() {
                return Err(MapperError::MissingName(pi));
            }
            if p.prefix.is_empty() {
                return Err(MapperError::MissingPrefix(p.name.clone()));
            }
            let mut mappings = Vec::with_capacity(p.mappings.len());
            for (i, m) in p.mappings.iter().enumerate() {
                let match_type = if m.match_type.is_empty() {
                    "wildcard"
                } else {
                    m.match_type.as_str()
                };
                if match_type != "wildcard" && match_type != "regex" {
                    return Err(MapperError::BadMatchType {
                        profile: p.name.clone(),
                        index: i,
                        match_type: match_type.to_string(),
                    });
                }
                let missing = |what| MapperError::Missing {
                    profile: p.name.clone(),
                    index: i,
                    what,
                };
                if m.name.is_empty() {
                    return Err(missing("name"));
                }
                if m.pattern.is_empty() {
                    return Err(missing("match"));
                }
                mappings.push(Mapping {
                    regex: build_regex(&m.pattern, match_type)?,
                    name: m.name.clone(),
                    tags: m.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                });
            }
            out.push(Profile {
                prefix: p.prefix.clone(),
                mappings,
            });
        }
        Ok(Self {
            profiles: out,
            cache: Mutex::new(Cache {
                half: cache_size.div_ceil(2),
                ..Cache::default()
            }),
        })
    }

    /// Parses the value of `dogstatsd_mapper_profiles` written as YAML or JSON (as in
    /// `DD_DOGSTATSD_MAPPER_PROFILES`).
    pub fn parse(text: &str) -> Result<Self, MapperError> {
        let v: Vec<ProfileConfig> =
            serde_yaml::from_str(text).map_err(|e| MapperError::Parse(e.to_string()))?;
        Self::new(&v, DEFAULT_CACHE_SIZE)
    }

    /// Maps a metric name: `Some((new name, tags))` when a mapping matched.
    pub fn map(&self, name: &str) -> Option<(String, Vec<String>)> {
        self.map_shared(name)
            .map(|r| (r.name.clone(), r.tags.clone()))
    }

    /// Like [`map`](Self::map) without copying the cached result (no allocation on a cache hit).
    pub fn map_shared(&self, name: &str) -> Option<Arc<MapResult>> {
        let profile = self
            .profiles
            .iter()
            .find(|p| p.prefix == "*" || name.starts_with(p.prefix.as_str()))?;
        if let Some(hit) = self.cache.lock().get(name) {
            return hit;
        }
        let result = profile.mappings.iter().find_map(|m| {
            let caps = m.regex.captures(name)?;
            let mut new_name = String::new();
            caps.expand(&m.name, &mut new_name);
            let tags = m
                .tags
                .iter()
                .map(|(k, v)| {
                    let mut t = format!("{k}:");
                    caps.expand(v, &mut t);
                    t
                })
                .collect();
            Some(Arc::new(MapResult {
                name: new_name,
                tags,
            }))
        });
        self.cache.lock().put(name.into(), result.clone());
        result
    }

    /// Number of cached names (for tests and status).
    pub fn cached(&self) -> usize {
        let c = self.cache.lock();
        c.hot.len() + c.cold.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
- name: airflow
  prefix: "airflow."
  mappings:
    - match: "airflow.job.duration_sec.*.*"
      name: "airflow.job.duration"
      tags:
        job_type: "$1"
        job_name: "${2}"
    - match: 'airflow\.dag\.(?P<dag>[a-z]+)\.([a-z]+)'
      match_type: regex
      name: "airflow.dag.$2"
      tags:
        dag: "${dag}"
- name: everything
  prefix: "*"
  mappings:
    - match: "legacy.*"
      name: "modern.$1"
"#;

    fn profiles() -> MapperProfiles {
        MapperProfiles::parse(YAML).expect("valid profiles")
    }

    #[test]
    fn wildcard_with_expansions() {
        let m = profiles();
        let (name, mut tags) = m.map("airflow.job.duration_sec.local.backfill").unwrap();
        tags.sort();
        assert_eq!(name, "airflow.job.duration");
        assert_eq!(tags, vec!["job_name:backfill", "job_type:local"]);
        // `*` does not cross dots.
        assert_eq!(m.map("airflow.job.duration_sec.a.b.c"), None);
    }

    #[test]
    fn regex_with_named_groups() {
        let m = profiles();
        let (name, tags) = m.map("airflow.dag.payments.runs").unwrap();
        assert_eq!(name, "airflow.dag.runs");
        assert_eq!(tags, vec!["dag:payments"]);
    }

    #[test]
    fn no_match_and_first_matching_prefix_decides() {
        let m = profiles();
        assert_eq!(m.map("web.requests"), None);
        assert_eq!(
            m.map("legacy.hits"),
            Some(("modern.hits".to_string(), vec![]))
        );
        // Matches the `airflow.` prefix but none of its mappings: later profiles are not tried.
        assert_eq!(m.map("airflow.legacy"), None);
        // Results are cached, misses included.
        assert_eq!(m.map("web.requests"), None);
        assert!(m.cached() >= 3);
    }

    #[test]
    fn cache_is_bounded() {
        let m = MapperProfiles::new(
            &serde_yaml::from_str::<Vec<ProfileConfig>>(YAML).unwrap(),
            10,
        )
        .unwrap();
        for i in 0..1000 {
            let name = format!("legacy.m{i}");
            assert_eq!(m.map(&name).unwrap().0, format!("modern.m{i}"));
        }
        assert!(m.cached() <= 10, "{}", m.cached());
    }

    #[test]
    fn invalid_profiles_are_one_sentence_errors() {
        let bad = |yaml: &str| MapperProfiles::parse(yaml).unwrap_err();
        assert_eq!(
            bad("- {name: a, prefix: x., mappings: [{match: 'x.$', name: y}]}"),
            MapperError::BadWildcard("x.$".into())
        );
        assert_eq!(
            bad("- {name: a, prefix: x., mappings: [{match: 'x.**', name: y}]}"),
            MapperError::DoubleStar("x.**".into())
        );
        assert!(matches!(
            bad("- {name: a, prefix: x., mappings: [{match: 'x.*', name: y, match_type: glob}]}"),
            MapperError::BadMatchType { .. }
        ));
        assert!(matches!(
            bad("- {name: a, prefix: x., mappings: [{match: 'x(', name: y, match_type: regex}]}"),
            MapperError::BadRegex { .. }
        ));
        assert_eq!(bad("- {prefix: x.}"), MapperError::MissingName(0));
        assert_eq!(bad("- {name: a}"), MapperError::MissingPrefix("a".into()));
        assert!(matches!(
            bad("- {name: a, prefix: x., mappings: [{match: 'x.*'}]}"),
            MapperError::Missing { what: "name", .. }
        ));
        let msg =
            bad("- {name: a, prefix: x., mappings: [{match: 'x(', name: y, match_type: regex}]}")
                .to_string();
        assert!(!msg.contains('\n'), "{msg}");
    }
}
