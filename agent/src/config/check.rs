//! Reading and checking values: one typed reader per kind of [`Check`], each taking the setting's default and
//! its rule from [`super::keys::KEYS`], so a setting's checks are written once, in its row. A bad value is one
//! [`ConfigError::Invalid`] sentence naming the key, where the value came from and the value.

use super::keys::{key, Check, Key, KeyDefault, Source};
use super::sources::{value_text, Raw};
use super::ConfigError;
use kelpie_container::filter::ContainerFilter;
use kelpie_container::tags::TagCardinality;
use serde_yaml::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A reader called for a setting of another kind: a mistake in this module, caught by every config test.
fn wrong_kind(k: &Key) -> ! {
    panic!("config::{}: no reader for {:?}", k.name, k.check)
}

impl Raw {
    /// The error for `key`'s value, ending with `reason`.
    pub fn invalid(&self, key: &'static str, reason: impl Into<String>) -> ConfigError {
        let (value, origin) = match self.given(super::keys::key(key)) {
            Some((v, o)) => (value_text(&v), o.to_string()),
            None => (String::new(), "default".to_string()),
        };
        ConfigError::Invalid {
            key,
            origin,
            value,
            reason: reason.into(),
        }
    }

    /// Whether `name` was given at all (in the file or the environment).
    pub fn is_given(&self, name: &'static str) -> bool {
        self.given(key(name)).is_some()
    }

    /// The value given for `k`, or its default value.
    fn value(&self, k: &Key) -> Option<Value> {
        match (self.given(k), k.default) {
            (Some((v, _)), _) => Some(v),
            (None, KeyDefault::Value(d)) => Some(Value::String(d.to_string())),
            (None, _) => None,
        }
    }

    /// The text of a one-value setting, trimmed, or its default value. Empty text is not given (but for an
    /// environment-only setting, where it is checked like any other).
    fn scalar(&self, k: &Key) -> Option<String> {
        let given = self
            .given(k)
            .map(|(v, _)| value_text(&v).trim().to_string())
            .filter(|s| !s.is_empty() || k.source == Source::Env);
        given.or_else(|| match k.default {
            KeyDefault::Value(d) => Some(d.to_string()),
            _ => None,
        })
    }

    /// The text of a one-value setting that always has one (a default value).
    fn scalar_or_default(&self, k: &Key) -> String {
        self.scalar(k)
            .unwrap_or_else(|| panic!("config::{} has no default value", k.name))
    }

    /// [`Check::Text`] and [`Check::TextIf`].
    pub fn text(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let k = key(name);
        match (k.check, self.scalar(k)) {
            (Check::Text, text) => Ok(text),
            (Check::TextIf { ok, reason }, Some(t)) if !ok(&t) => Err(self.invalid(name, reason)),
            (Check::TextIf { .. }, text) => Ok(text),
            _ => wrong_kind(k),
        }
    }

    /// [`Check::SocketPath`]: a path whose directory exists.
    pub fn socket_path(&self, name: &'static str) -> Result<Option<PathBuf>, ConfigError> {
        let k = key(name);
        let Check::SocketPath = k.check else {
            wrong_kind(k)
        };
        let Some(p) = self.scalar(k) else {
            return Ok(None);
        };
        let path = PathBuf::from(&p);
        let parent = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return Err(self.invalid(
                name,
                format!("is in directory {} which does not exist", parent.display()),
            ));
        }
        Ok(Some(path))
    }

    /// [`Check::Bool`].
    pub fn bool(&self, name: &'static str) -> Result<bool, ConfigError> {
        let k = key(name);
        let Check::Bool = k.check else { wrong_kind(k) };
        match self.value(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(v) => match value_text(&v).trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" | "" => Ok(false),
                _ => Err(self.invalid(name, "is not a boolean (true or false)")),
            },
        }
    }

    /// [`Check::Uint`].
    pub fn uint(&self, name: &'static str) -> Result<u64, ConfigError> {
        let k = key(name);
        let Check::Uint {
            min,
            max,
            reason,
            below,
        } = k.check
        else {
            wrong_kind(k)
        };
        match self.scalar_or_default(k).parse::<u64>() {
            Ok(n) if n < min => Err(self.invalid(name, below)),
            Ok(n) if n <= max => Ok(n),
            _ => Err(self.invalid(name, reason)),
        }
    }

    /// [`Check::Size`]; `None` when not given and the default is worked out elsewhere.
    pub fn size(&self, name: &'static str) -> Result<Option<u64>, ConfigError> {
        let k = key(name);
        let Check::Size { min, reason, below } = k.check else {
            wrong_kind(k)
        };
        let Some(s) = self.scalar(k) else {
            return Ok(None);
        };
        match parse_size(&s) {
            Some(n) if n >= min => Ok(Some(n)),
            Some(_) => Err(self.invalid(name, below)),
            None => Err(self.invalid(name, reason)),
        }
    }

    /// [`Check::Duration`].
    pub fn duration(&self, name: &'static str) -> Result<Duration, ConfigError> {
        let k = key(name);
        let Check::Duration {
            whole_seconds,
            reason,
        } = k.check
        else {
            wrong_kind(k)
        };
        match parse_duration(&self.scalar_or_default(k)) {
            Some(d) if whole_seconds && d >= Duration::from_secs(1) && d.subsec_nanos() == 0 => {
                Ok(d)
            }
            Some(d) if !whole_seconds && !d.is_zero() => Ok(d),
            _ => Err(self.invalid(name, reason)),
        }
    }

    /// [`Check::Addr`]; `None` when turned off, or not given and the default is worked out elsewhere.
    pub fn addr(&self, name: &'static str) -> Result<Option<SocketAddr>, ConfigError> {
        let k = key(name);
        let Check::Addr { off, reason } = k.check else {
            wrong_kind(k)
        };
        match self.scalar(k) {
            None => Ok(None),
            Some(s) if off && (s.is_empty() || s == "off" || s == "0") => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| self.invalid(name, reason)),
        }
    }

    /// [`Check::LogLevel`]: the `tracing` level meant.
    pub fn log_level(&self, name: &'static str) -> Result<&'static str, ConfigError> {
        let k = key(name);
        let Check::LogLevel = k.check else {
            wrong_kind(k)
        };
        log_level(&self.scalar_or_default(k)).ok_or_else(|| {
            self.invalid(
                name,
                "is not a log level (trace, debug, info, warn, error, critical or off)",
            )
        })
    }

    /// [`Check::Cardinality`].
    pub fn cardinality(&self, name: &'static str) -> Result<TagCardinality, ConfigError> {
        let k = key(name);
        let Check::Cardinality = k.check else {
            wrong_kind(k)
        };
        self.scalar_or_default(k).parse().map_err(|()| {
            self.invalid(
                name,
                "is not a tag cardinality (none, low, orchestrator or high)",
            )
        })
    }

    /// [`Check::List`], [`Check::ListOf`], [`Check::Words`] and [`Check::Filters`]. Given, even empty, the
    /// list replaces the default.
    pub fn list(&self, name: &'static str) -> Result<Vec<String>, ConfigError> {
        let k = key(name);
        let Some(value) = self.value(k) else {
            return Ok(Vec::new());
        };
        let words = match (&value, k.check) {
            (Value::Sequence(_), _) | (_, Check::List | Check::ListOf(_)) => false,
            (_, Check::Words | Check::Filters) => true,
            _ => wrong_kind(k),
        };
        let list = items(&value, words);
        match k.check {
            Check::ListOf(names) => {
                if let Some(a) = list.iter().find(|a| !names.contains(&a.as_str())) {
                    return Err(self.invalid(
                        name,
                        format!("names {a:?}, not one of {}", names.join(", ")),
                    ));
                }
            }
            Check::Filters => {
                if let Err(e) = ContainerFilter::new(&[], &list, false) {
                    return Err(self.invalid(name, format!("holds {e}")));
                }
            }
            _ => {}
        }
        Ok(list)
    }

    /// [`Check::Fractions`].
    pub fn fractions(&self, name: &'static str) -> Result<Vec<f64>, ConfigError> {
        let k = key(name);
        let Check::Fractions = k.check else {
            wrong_kind(k)
        };
        let Some(value) = self.value(k) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for p in items(&value, false) {
            match p.parse::<f64>() {
                Ok(v) if v > 0.0 && v < 1.0 => out.push(v),
                _ => {
                    return Err(self.invalid(
                        name,
                        format!("has {p:?}, which is not a number between 0 and 1"),
                    ))
                }
            }
        }
        Ok(out)
    }

    /// [`Check::TagMap`]: a mapping of names to strings (YAML mapping, or a JSON object in the environment).
    pub fn tag_map(&self, name: &'static str) -> Result<Vec<(String, String)>, ConfigError> {
        let k = key(name);
        let Check::TagMap = k.check else {
            wrong_kind(k)
        };
        match self.value(k) {
            None => Ok(Vec::new()),
            Some(Value::Mapping(m)) => m
                .iter()
                .map(|(k, v)| match (k, v) {
                    (Value::String(k), Value::String(v)) => Ok((k.clone(), v.clone())),
                    _ => Err(self.invalid(name, "is not a mapping of names to tag keys")),
                })
                .collect(),
            Some(_) => Err(self.invalid(
                name,
                "is not a mapping of names to tag keys (a JSON object in the environment)",
            )),
        }
    }

    /// [`Check::Yaml`]: the value as given; null or an empty list is none.
    pub fn yaml(&self, name: &'static str) -> Option<Value> {
        let k = key(name);
        let Check::Yaml = k.check else { wrong_kind(k) };
        self.value(k)
            .filter(|v| !v.is_null() && v.as_sequence().is_none_or(|s| !s.is_empty()))
    }
}

/// A list's items: a YAML sequence's, or a string split on whitespace (`words`) or on whitespace and commas.
fn items(value: &Value, words: bool) -> Vec<String> {
    match value {
        Value::Sequence(items) => items
            .iter()
            .map(|v| value_text(v).trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        v if words => value_text(v).split_whitespace().map(String::from).collect(),
        v => value_text(v)
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    }
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
