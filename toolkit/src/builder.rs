//! [`Builder`]: the toolkit's settings, from the environment as Datadog's client libraries read it
//! (`DD_*`, `KELPIE_PROFILING_*`) or set in code, and [`Builder::build`], which opens the socket, makes the
//! `metrics` recorder and starts the background thread.

use crate::guard::Guard;
use crate::sink::{self, SharedSink};
use crate::worker::{runtime_id, ProfileSettings, Worker};
use crate::{
    target, Error, Target, DEFAULT_PROFILE_DURATION, DEFAULT_PROFILE_PERIOD,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_RUNTIME_METRICS_INTERVAL,
};
use cadence::StatsdClient;
use metrics_exporter_statsd::{StatsdBuilder, StatsdRecorder};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Configures what [`init`](crate::init) does from the environment; every setting can be overridden.
#[derive(Debug, Clone)]
pub struct Builder {
    target: Target,
    agent_url: String,
    service: Option<String>,
    env: Option<String>,
    version: Option<String>,
    tags: Vec<(String, String)>,
    prefix: Option<String>,
    runtime_metrics: Option<Duration>,
    flush_interval: Duration,
    profiling: bool,
    profile_duration: Duration,
    profile_period: Duration,
    histograms_as_distributions: bool,
    queue_capacity: usize,
    env_error: Option<Arc<Error>>,
}

impl Default for Builder {
    /// Defaults only, ignoring the environment: UDP to `localhost:8125`, runtime metrics every 10 s, no profiling.
    fn default() -> Self {
        Builder {
            target: Target::Udp {
                host: "localhost".into(),
                port: target::DEFAULT_DOGSTATSD_PORT,
            },
            agent_url: format!("http://localhost:{}", target::DEFAULT_TRACE_AGENT_PORT),
            service: None,
            env: None,
            version: None,
            tags: Vec::new(),
            prefix: None,
            runtime_metrics: Some(DEFAULT_RUNTIME_METRICS_INTERVAL),
            flush_interval: Duration::from_secs(1),
            profiling: false,
            profile_duration: DEFAULT_PROFILE_DURATION,
            profile_period: DEFAULT_PROFILE_PERIOD,
            histograms_as_distributions: false,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            env_error: None,
        }
    }
}

impl Builder {
    /// Defaults, then the process's environment (`DD_*`, `KELPIE_PROFILING_*`).
    pub fn from_env() -> Self {
        Self::from_lookup(&|k| std::env::var(k).ok())
    }

    /// Like [`Builder::from_env`], reading variables through `env` (for tests and embedding).
    pub fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Self {
        let mut b = Builder::default();
        let mut fail = |e: Error| {
            if b.env_error.is_none() {
                b.env_error = Some(Arc::new(e));
            }
        };
        match Target::from_lookup(env) {
            Ok(t) => b.target = t,
            Err(e) => fail(e),
        }
        match target::agent_url_from_lookup(env) {
            Ok(u) => b.agent_url = u,
            Err(e) => fail(e),
        }
        let get = |k: &str| {
            env(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        b.service = get("DD_SERVICE");
        b.env = get("DD_ENV");
        b.version = get("DD_VERSION");
        if let Some(tags) = get("DD_TAGS") {
            for tag in tags.split([',', ' ']).filter(|t| !t.is_empty()) {
                match tag.split_once(':') {
                    Some((k, v)) if !k.is_empty() => b.tags.push((k.to_string(), v.to_string())),
                    _ => tracing::warn!(tag, "DD_TAGS entry without a key:value form is ignored"),
                }
            }
        }
        if let Some(id) = get("DD_ENTITY_ID") {
            // As Datadog's clients do: lets the agent find this container's tags (origin detection).
            b.tags.push(("dd.internal.entity_id".into(), id));
        }
        let flag = |k: &'static str, v: String| -> Result<bool, Error> {
            match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(Error::InvalidSetting {
                    var: k,
                    value: v,
                    reason: "expected true or false".into(),
                }),
            }
        };
        if let Some(v) = get("DD_RUNTIME_METRICS_ENABLED") {
            match flag("DD_RUNTIME_METRICS_ENABLED", v) {
                Ok(false) => b.runtime_metrics = None,
                Ok(true) => {}
                Err(e) => fail(e),
            }
        }
        if let Some(v) = get("DD_PROFILING_ENABLED") {
            match flag("DD_PROFILING_ENABLED", v) {
                Ok(on) => b.profiling = on,
                Err(e) => fail(e),
            }
        }
        let duration = |k: &'static str, v: String| -> Result<Duration, Error> {
            match humantime::parse_duration(&v) {
                Ok(d) if !d.is_zero() => Ok(d),
                _ => Err(Error::InvalidSetting {
                    var: k,
                    value: v,
                    reason: "expected a duration such as 15s or 1m".into(),
                }),
            }
        };
        if let Some(v) = get("KELPIE_PROFILING_DURATION") {
            match duration("KELPIE_PROFILING_DURATION", v) {
                Ok(d) => b.profile_duration = d,
                Err(e) => fail(e),
            }
        }
        if let Some(v) = get("KELPIE_PROFILING_PERIOD") {
            match duration("KELPIE_PROFILING_PERIOD", v) {
                Ok(d) => b.profile_period = d,
                Err(e) => fail(e),
            }
        }
        b
    }

    /// Sends to this DogStatsD destination instead.
    pub fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }
    /// Posts profiles to this base URL (`http://host:8126`) instead.
    pub fn agent_url(mut self, url: impl Into<String>) -> Self {
        self.agent_url = url.into().trim_end_matches('/').to_string();
        self
    }
    /// The `service:` tag (unified service tagging).
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }
    /// The `env:` tag.
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.env = Some(env.into());
        self
    }
    /// The `version:` tag.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }
    /// Adds a `key:value` tag to every point.
    pub fn tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }
    /// Prefixes the service's own metric names (`prefix.name`); runtime metrics keep their names.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }
    /// How often runtime metrics are sent; `None` turns them off.
    pub fn runtime_metrics(mut self, every: Option<Duration>) -> Self {
        self.runtime_metrics = every.filter(|d| !d.is_zero());
        self
    }
    /// How often the datagram buffer is flushed (default 1 s).
    pub fn flush_interval(mut self, every: Duration) -> Self {
        self.flush_interval = every.max(Duration::from_millis(10));
        self
    }
    /// Turns CPU profiling on or off.
    pub fn profiling(mut self, on: bool) -> Self {
        self.profiling = on;
        self
    }
    /// Length of one CPU profile and time between the starts of two (the period is at least the duration).
    pub fn profile_schedule(mut self, duration: Duration, period: Duration) -> Self {
        self.profile_duration = duration.max(Duration::from_millis(100));
        self.profile_period = period;
        self
    }
    /// Sends `metrics` histograms as DogStatsD distributions (`|d`, global percentiles) instead of `|h`.
    pub fn histograms_as_distributions(mut self, on: bool) -> Self {
        self.histograms_as_distributions = on;
        self
    }
    /// Bound of the in-process queue (points beyond it are dropped and counted).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// The tags put on every point, as `key:value` strings.
    pub fn tags(&self) -> Vec<String> {
        self.tag_pairs()
            .into_iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect()
    }

    fn tag_pairs(&self) -> Vec<(String, String)> {
        let mut tags = Vec::new();
        for (k, v) in [
            ("service", &self.service),
            ("env", &self.env),
            ("version", &self.version),
        ] {
            if let Some(v) = v {
                tags.push((k.to_string(), v.clone()));
            }
        }
        tags.extend(self.tags.iter().cloned());
        tags
    }

    /// The tags of every profile: the service (the executable's name when `DD_SERVICE` is unset), the
    /// configured tags, and what Datadog's profilers add (language, runtime id, pid, profiler version).
    fn profile_tags(&self) -> Vec<String> {
        let mut profile_tags = self.tags();
        if self.service.is_none() {
            // Datadog files a profile under its service; name it after the executable as its profilers do.
            let exe = std::env::current_exe()
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "unnamed-rust-service".into());
            profile_tags.insert(0, format!("service:{exe}"));
        }
        profile_tags.extend([
            "language:rust".to_string(),
            "runtime:rust".to_string(),
            format!("runtime-id:{}", runtime_id()),
            format!("process_id:{}", std::process::id()),
            format!(
                "profiler_version:kelpie-toolkit-{}",
                env!("CARGO_PKG_VERSION")
            ),
        ]);

        profile_tags
    }

    /// Builds the recorder without installing it (for `metrics::with_local_recorder` or a layered recorder),
    /// and starts the background thread. The [`Guard`] must be kept alive.
    pub fn build(self) -> Result<(StatsdRecorder, Guard), Error> {
        if let Some(e) = &self.env_error {
            return Err(clone_error(e));
        }
        let shared = Arc::new(sink::open(&self.target, self.queue_capacity)?);

        let tag_pairs = self.tag_pairs();
        let mut recorder = StatsdBuilder::from("", 0).with_sink(SharedSink(shared.clone()));
        for (k, v) in &tag_pairs {
            recorder = recorder.with_default_tag(k, v);
        }
        if self.histograms_as_distributions {
            recorder = recorder.histogram_is_distribution();
        }
        let recorder = recorder
            .build(self.prefix.as_deref())
            .map_err(|e| Error::Socket {
                target: self.target.to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;

        let mut runtime_client = StatsdClient::builder("", SharedSink(shared.clone()));
        for (k, v) in &tag_pairs {
            runtime_client = runtime_client.with_tag(k.as_str(), v.as_str());
        }
        let runtime_client = runtime_client.with_tag("language", "rust").build();

        let profile_tags = self.profile_tags();
        let worker = Worker {
            shared: shared.clone(),
            runtime_client,
            runtime_every: self.runtime_metrics,
            tokio: tokio::runtime::Handle::try_current().ok(),
            flush_every: self.flush_interval,
            profiling: self.profiling.then(|| ProfileSettings {
                agent_url: self.agent_url.clone(),
                duration: self.profile_duration,
                period: self.profile_period.max(self.profile_duration),
                tags: profile_tags,
            }),
        };
        let (stop_tx, stop_rx) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("kelpie-toolkit".into())
            .spawn(move || worker.run(stop_rx))
            .map_err(Error::Thread)?;
        tracing::debug!(target = %self.target, profiling = self.profiling, "kelpie toolkit started");
        Ok((
            recorder,
            Guard {
                shared,
                stop: Some(stop_tx),
                thread: Some(thread),
            },
        ))
    }

    /// Builds, installs the recorder as the process's global `metrics` recorder and starts the background thread.
    pub fn install(self) -> Result<Guard, Error> {
        let (recorder, guard) = self.build()?;
        metrics::set_global_recorder(recorder).map_err(|_| Error::RecorderAlreadySet)?;
        Ok(guard)
    }
}

fn clone_error(e: &Error) -> Error {
    match e {
        Error::InvalidAddress { var, value, reason } => Error::InvalidAddress {
            var,
            value: value.clone(),
            reason: reason.clone(),
        },
        Error::InvalidSetting { var, value, reason } => Error::InvalidSetting {
            var,
            value: value.clone(),
            reason: reason.clone(),
        },
        other => Error::InvalidSetting {
            var: "environment",
            value: String::new(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn env_settings() {
        let vars: HashMap<&str, &str> = [
            ("DD_SERVICE", "api"),
            ("DD_ENV", "prod"),
            ("DD_VERSION", "1.2.3"),
            ("DD_TAGS", "team:core,region:eu bare"),
            ("DD_DOGSTATSD_SOCKET", "/var/run/datadog/dsd.socket"),
            ("DD_PROFILING_ENABLED", "true"),
            ("KELPIE_PROFILING_DURATION", "5s"),
            ("DD_RUNTIME_METRICS_ENABLED", "false"),
        ]
        .into_iter()
        .collect();
        let b = Builder::from_lookup(&|k| vars.get(k).map(|v| v.to_string()));
        assert!(b.env_error.is_none());
        assert_eq!(
            b.tags(),
            vec![
                "service:api",
                "env:prod",
                "version:1.2.3",
                "team:core",
                "region:eu"
            ]
        );
        assert_eq!(b.target, Target::Unix("/var/run/datadog/dsd.socket".into()));
        assert!(b.profiling);
        assert_eq!(b.profile_duration, Duration::from_secs(5));
        assert_eq!(b.runtime_metrics, None);
    }

    #[test]
    fn bad_env_is_a_clear_error() {
        let b = Builder::from_lookup(&|k| (k == "DD_PROFILING_ENABLED").then(|| "maybe".into()));
        let err = b.build().err().expect("invalid flag");
        assert!(err.to_string().contains("DD_PROFILING_ENABLED"), "{err}");
        let b = Builder::from_lookup(&|k| (k == "DD_DOGSTATSD_URL").then(|| "tcp://x".into()));
        let err = b.build().err().expect("invalid url");
        assert!(err.to_string().contains("DD_DOGSTATSD_URL"), "{err}");
    }
}
