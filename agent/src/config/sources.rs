//! Where settings come from: the YAML file (known keys kept, unknown ones collected for a warning) and the
//! environment (`DD_<KEY>` over the file, JSON for the keys that hold mappings, and the environment-only
//! settings), each value kept with its origin for error messages and `kelpie config`.

use super::keys::{self, Key, Source};
use super::ConfigError;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where a setting came from, for error messages.
#[derive(Debug, Clone)]
pub(super) enum Origin {
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

/// Raw settings before typing: each file key's value and where it came from, and the environment (read for
/// the environment-only settings).
pub(super) struct Raw {
    pub values: BTreeMap<&'static str, (Value, Origin)>,
    pub env: BTreeMap<String, String>,
}

impl Raw {
    /// The value given for `k` (trimmed text for an environment-only setting), with where it came from.
    pub fn given(&self, k: &Key) -> Option<(Value, Origin)> {
        match k.source {
            Source::Env => self.env.get(k.name).map(|v| {
                (
                    Value::String(v.trim().to_string()),
                    Origin::Env(k.name.to_string()),
                )
            }),
            Source::Dd | Source::DdJson => self.values.get(k.name).cloned(),
        }
    }
}

/// The file at `path` (or the default path, which may be missing) and `env`, as [`Raw`] settings, with the
/// file's unknown keys.
pub(super) fn read(
    file_path: &Path,
    must_exist: bool,
    env: BTreeMap<String, String>,
) -> Result<(Raw, Vec<String>), ConfigError> {
    let mut values = BTreeMap::new();
    let mut unknown_keys = Vec::new();
    match std::fs::read_to_string(file_path) {
        Ok(text) => {
            let doc: Value = serde_yaml::from_str(&text).map_err(|e| ConfigError::Yaml {
                path: file_path.to_path_buf(),
                message: e.to_string(),
            })?;
            match doc {
                Value::Null => {}
                Value::Mapping(map) => {
                    for (k, v) in map {
                        let key = value_text(&k);
                        match keys::file_keys().find(|known| known.name == key) {
                            Some(known) => {
                                values
                                    .insert(known.name, (v, Origin::File(file_path.to_path_buf())));
                            }
                            None => unknown_keys.push(key),
                        }
                    }
                }
                _ => {
                    return Err(ConfigError::Yaml {
                        path: file_path.to_path_buf(),
                        message: "the top level must be a mapping of keys to values".into(),
                    })
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {}
        Err(error) => {
            return Err(ConfigError::Read {
                path: file_path.to_path_buf(),
                error,
            })
        }
    }
    for key in keys::file_keys() {
        let name = key.env_name();
        if let Some(v) = env.get(&name) {
            let value = if key.source == Source::DdJson {
                // Datadog takes these as JSON in the environment.
                serde_json::from_str::<serde_json::Value>(v)
                    .ok()
                    .and_then(|j| serde_yaml::to_value(j).ok())
                    .unwrap_or_else(|| Value::String(v.clone()))
            } else {
                Value::String(v.clone())
            };
            values.insert(key.name, (value, Origin::Env(name)));
        }
    }
    Ok((Raw { values, env }, unknown_keys))
}

/// `DD_*` environment variables that are not settings but are one or two letters from one (likely typos),
/// with the key they likely meant.
pub(super) fn misspelt_env(env: &BTreeMap<String, String>) -> Vec<(String, &'static str)> {
    env.keys()
        .filter_map(|name| {
            let key = name.strip_prefix("DD_")?.to_ascii_lowercase();
            if keys::file_keys().any(|k| k.name == key) {
                return None;
            }
            keys::suggest_key(&key).map(|k| (name.clone(), k))
        })
        .collect()
}

/// A value as text: scalars as written, lists and mappings as YAML.
pub(super) fn value_text(v: &Value) -> String {
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

/// A warning when `path` (which holds the API key) can be read by every user of the host.
pub(super) fn world_readable_warning(path: &Path) -> Option<String> {
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
