//! What a Rust service links to send its metrics, runtime numbers and CPU profiles to the kelpie agent
//! (or to a Datadog Agent: the wire formats are the same).
//!
//! One call at start-up:
//!
//! ```no_run
//! # fn main() -> Result<(), kelpie_toolkit::Error> {
//! let _guard = kelpie_toolkit::init()?; // keep it alive for the life of the process
//! metrics::counter!("http.requests", "route" => "/users").increment(1);
//! metrics::histogram!("http.latency").record(0.012);
//! metrics::gauge!("queue.depth").set(3.0);
//! # Ok(()) }
//! ```
//!
//! [`init`] installs a global [`metrics`] recorder backed by `metrics-exporter-statsd` (so `metrics` labels
//! become DogStatsD tags), sending to the destination Datadog's client libraries would use
//! (`DD_DOGSTATSD_URL`, `DD_DOGSTATSD_SOCKET`, `DD_AGENT_HOST` + `DD_DOGSTATSD_PORT`; see [`target`]), with the
//! tags `service:`/`env:`/`version:` from `DD_SERVICE`/`DD_ENV`/`DD_VERSION` and those of `DD_TAGS` on every
//! point. A background thread (and, with profiling on, a sampler thread) then
//! - flushes the datagram buffer every second (so a quiet service's points are not held back),
//! - sends the process's runtime numbers every 10 s as `runtime.rust.*` gauges (see [`runtime`];
//!   `DD_RUNTIME_METRICS_ENABLED=false` turns them off),
//! - and, with `DD_PROFILING_ENABLED=true`, takes a CPU profile (15 s every 60 s by default;
//!   `KELPIE_PROFILING_DURATION`, `KELPIE_PROFILING_PERIOD`) and posts it to the agent's
//!   `/profiling/v1/input` (see [`profiling`]).
//!
//! Sending never blocks the service: points go through a bounded queue (4096 by default) to a non-blocking
//! socket; what does not fit, or what the socket refuses (agent down, its buffer full), is dropped and counted
//! in [`Guard::stats`].
//!
//! Dropping the [`Guard`] stops the background thread and flushes what is queued.

pub mod profiling;
pub mod runtime;
pub mod target;

pub use target::Target;

use cadence::{Gauged, MetricSink, QueuingMetricSink, StatsdClient};
use metrics_exporter_statsd::{StatsdBuilder, StatsdRecorder};
use std::net::{ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why the toolkit could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{var}={value:?} is not usable: {reason}")]
    InvalidAddress {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("invalid setting {var}={value:?}: {reason}")]
    InvalidSetting {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("could not open a socket to the DogStatsD server at {target}: {source}")]
    Socket {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a global metrics recorder is already installed; call kelpie_toolkit::init only once")]
    RecorderAlreadySet,
    #[error("could not start the toolkit's background thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the CPU profiler failed: {0}")]
    Profiler(String),
    #[error("the profile upload failed: {0}")]
    Upload(String),
}

/// Default interval of the runtime metrics.
pub const DEFAULT_RUNTIME_METRICS_INTERVAL: Duration = Duration::from_secs(10);
/// Default length of one CPU profile.
pub const DEFAULT_PROFILE_DURATION: Duration = Duration::from_secs(15);
/// Default time between the starts of two CPU profiles.
pub const DEFAULT_PROFILE_PERIOD: Duration = Duration::from_secs(60);
/// Default bound of the queue between the service's threads and the socket.
pub const DEFAULT_QUEUE_CAPACITY: usize = 4096;
/// Datagram size over UDP (Datadog's clients use the same, to stay under a 1500-byte MTU).
pub const UDP_DATAGRAM_SIZE: usize = 1432;
/// Datagram size over a Unix socket (Datadog's clients' default).
pub const UDS_DATAGRAM_SIZE: usize = 8192;

/// Configures what [`init`] does from the environment; every setting can be overridden.
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

    /// Builds the recorder without installing it (for `metrics::with_local_recorder` or a layered recorder),
    /// and starts the background thread. The [`Guard`] must be kept alive.
    pub fn build(self) -> Result<(StatsdRecorder, Guard), Error> {
        if let Some(e) = &self.env_error {
            return Err(clone_error(e));
        }
        let sent_errors = Arc::new(AtomicU64::new(0));
        let errors = sent_errors.clone();
        let queue = cadence::QueuingMetricSink::builder()
            .with_capacity(self.queue_capacity)
            .with_error_handler(move |_e| {
                errors.fetch_add(1, Relaxed);
            });
        let target_name = self.target.to_string();
        let socket_err = |source| Error::Socket {
            target: target_name.clone(),
            source,
        };
        let queue = match &self.target {
            Target::Udp { host, port } => {
                // Prefer IPv4 ("localhost" may list ::1 first while the agent listens on 127.0.0.1).
                let addrs: Vec<_> = (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(socket_err)?
                    .collect();
                let addr = addrs
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or_else(|| addrs.first())
                    .copied()
                    .ok_or_else(|| {
                        socket_err(std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "the host name resolved to no address",
                        ))
                    })?;
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let socket = UdpSocket::bind(local).map_err(socket_err)?;
                socket.set_nonblocking(true).map_err(socket_err)?;
                let sink =
                    cadence::BufferedUdpMetricSink::with_capacity(addr, socket, UDP_DATAGRAM_SIZE)
                        .map_err(|e| socket_err(std::io::Error::other(e.to_string())))?;
                queue.build(sink)
            }
            Target::Unix(path) => {
                let socket = UnixDatagram::unbound().map_err(socket_err)?;
                socket.set_nonblocking(true).map_err(socket_err)?;
                queue.build(cadence::BufferedUnixMetricSink::with_capacity(
                    path,
                    socket,
                    UDS_DATAGRAM_SIZE,
                ))
            }
        };
        let shared = Arc::new(Shared {
            queue,
            sent_errors,
            queue_full: AtomicU64::new(0),
            profiles_sent: AtomicU64::new(0),
            profile_errors: AtomicU64::new(0),
        });

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
            .map_err(|e| socket_err(std::io::Error::other(e.to_string())))?;

        let mut runtime_client = StatsdClient::builder("", SharedSink(shared.clone()));
        for (k, v) in &tag_pairs {
            runtime_client = runtime_client.with_tag(k.as_str(), v.as_str());
        }
        let runtime_client = runtime_client.with_tag("language", "rust").build();

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

/// Sets everything up from the environment: `Builder::from_env().install()`.
pub fn init() -> Result<Guard, Error> {
    Builder::from_env().install()
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

/// A random UUID v4, the `runtime-id` Datadog's profilers tag each process with.
fn runtime_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What the toolkit has counted since start-up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Points dropped because the in-process queue was full.
    pub dropped_queue_full: u64,
    /// Datagrams the socket refused (agent not listening, its buffer full).
    pub send_errors: u64,
    /// Profiles the agent accepted.
    pub profiles_sent: u64,
    /// Profiles that could not be taken or posted.
    pub profile_errors: u64,
}

struct Shared {
    queue: QueuingMetricSink,
    sent_errors: Arc<AtomicU64>,
    queue_full: AtomicU64,
    profiles_sent: AtomicU64,
    profile_errors: AtomicU64,
}

impl Shared {
    fn flush(&self) {
        if let Err(e) = self.queue.flush() {
            tracing::trace!(error = %e, "DogStatsD flush failed");
            self.sent_errors.fetch_add(1, Relaxed);
        }
    }
}

/// The sink shared by the `metrics` recorder and the runtime-metrics client. (`QueuingMetricSink` is
/// `Clone`, but dropping any clone stops its worker, so it is shared behind an `Arc` instead.)
#[derive(Clone)]
struct SharedSink(Arc<Shared>);

impl MetricSink for SharedSink {
    fn emit(&self, metric: &str) -> std::io::Result<usize> {
        let r = self.0.queue.emit(metric);
        if r.is_err() {
            self.0.queue_full.fetch_add(1, Relaxed);
        }
        r
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.queue.flush()
    }
}

/// Keeps the toolkit running; dropping it stops the background thread and flushes what is queued.
pub struct Guard {
    shared: Arc<Shared>,
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Guard {
    /// Sends what is buffered now (waiting up to a second for the queue to drain).
    pub fn flush(&self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.shared.queue.queued() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        self.shared.flush();
    }

    /// Counters since start-up.
    pub fn stats(&self) -> Stats {
        Stats {
            dropped_queue_full: self.shared.queue_full.load(Relaxed),
            send_errors: self.shared.sent_errors.load(Relaxed),
            profiles_sent: self.shared.profiles_sent.load(Relaxed),
            profile_errors: self.shared.profile_errors.load(Relaxed),
        }
    }

    /// Stops the background thread (posting a profile in progress if it covers at least a second) and flushes.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::warn!("the kelpie toolkit thread panicked");
            }
        }
        self.flush();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.stop_now();
    }
}

struct ProfileSettings {
    agent_url: String,
    duration: Duration,
    period: Duration,
    tags: Vec<String>,
}

struct Worker {
    shared: Arc<Shared>,
    runtime_client: StatsdClient,
    runtime_every: Option<Duration>,
    tokio: Option<tokio::runtime::Handle>,
    flush_every: Duration,
    profiling: Option<ProfileSettings>,
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl Worker {
    fn run(self, stop: watch::Receiver<bool>) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(error = %e, "kelpie toolkit: no runtime for the background thread; only the service's own metrics will be sent");
                return;
            }
        };
        rt.block_on(async {
            tokio::join!(
                self.flush_loop(stop.clone()),
                self.runtime_loop(stop.clone()),
                self.profile_loop(stop.clone()),
            );
        });
    }

    async fn flush_loop(&self, stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.flush_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.shared.flush(),
                _ = stopped(stop.clone()) => return,
            }
        }
    }

    async fn runtime_loop(&self, stop: watch::Receiver<bool>) {
        let Some(every) = self.runtime_every else {
            return;
        };
        let mut collector = runtime::RuntimeCollector::default();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopped(stop.clone()) => return,
            }
            let points = collector.collect(
                Instant::now(),
                runtime::read_process(),
                self.tokio.as_ref().map(runtime::read_tokio),
            );
            for (name, value) in points {
                // Errors are counted by the sink.
                let _ = self.runtime_client.gauge_with_tags(name, value).try_send();
            }
            self.shared.flush();
        }
    }

    /// Uploads the profiles that the sampler thread ([`sample_loop`]) takes. Sampling runs on its own thread so
    /// that starting the profiler (slow the first time: the unwinder loads debug info) and symbolizing a report
    /// never delay the flush and runtime-metrics ticks of this thread.
    async fn profile_loop(&self, stop: watch::Receiver<bool>) {
        let Some(settings) = &self.profiling else {
            return;
        };
        let client = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "kelpie toolkit: no HTTP client, profiling is off");
                return;
            }
        };
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(2);
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let (duration, period) = (settings.duration, settings.period);
        if let Err(e) = std::thread::Builder::new()
            .name("kelpie-profiler".into())
            .spawn(move || sample_loop(duration, period, stop_rx, done_tx))
        {
            tracing::warn!(error = %e, "kelpie toolkit: could not start the profiler thread");
            return;
        }
        let mut stop_tx = Some(stop_tx);
        loop {
            let next = if stop_tx.is_some() {
                tokio::select! {
                    next = done_rx.recv() => next,
                    _ = stopped(stop.clone()) => {
                        // Dropping the sender wakes the sampler, which posts the profile in progress and exits.
                        stop_tx = None;
                        continue;
                    }
                }
            } else {
                // Stopping: wait a little for the last profile, the process is going away.
                tokio::time::timeout(Duration::from_secs(5), done_rx.recv())
                    .await
                    .ok()
                    .flatten()
            };
            let Some((result, last)) = next else {
                return;
            };
            let last = last || stop_tx.is_none();
            self.upload_one(&client, settings, result, last).await;
        }
    }

    async fn upload_one(
        &self,
        client: &reqwest::Client,
        settings: &ProfileSettings,
        profile: Result<profiling::Profile, Error>,
        last: bool,
    ) {
        let result = match profile {
            Ok(profile) => {
                // The last upload, at shutdown, gets little time.
                let limit = if last { 2 } else { 10 };
                match tokio::time::timeout(
                    Duration::from_secs(limit),
                    profiling::upload(client, &settings.agent_url, &profile, &settings.tags),
                )
                .await
                {
                    Ok(r) => r.map(|_| profile.samples),
                    Err(_) => Err(Error::Upload(format!("no answer within {limit} s"))),
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(samples) => {
                self.shared.profiles_sent.fetch_add(1, Relaxed);
                tracing::debug!(samples, "CPU profile posted");
            }
            Err(e) => {
                self.shared.profile_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "kelpie toolkit: CPU profile not sent");
            }
        }
    }
}

/// A finished profile (or why there is none) and whether it is the last one.
type ProfileResult = (Result<profiling::Profile, Error>, bool);

/// The sampler thread: a profile of `duration` every `period` until `stop` fires or is dropped; then the profile
/// in progress is finished if it covers at least a second. Blocking waits only: nothing here needs a runtime.
fn sample_loop(
    duration: Duration,
    period: Duration,
    stop: std::sync::mpsc::Receiver<()>,
    out: tokio::sync::mpsc::Sender<ProfileResult>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    // True when told to stop (a message or the sender gone), false when `d` passed.
    let wait = |d: Duration| !matches!(stop.recv_timeout(d), Err(RecvTimeoutError::Timeout));
    loop {
        let cycle = Instant::now();
        match profiling::Sampler::start() {
            Ok(sampler) => {
                let sampling_since = Instant::now();
                let stopped = wait(duration);
                if !stopped || sampling_since.elapsed() >= Duration::from_secs(1) {
                    // The uploader is bounded (2 waiting); this blocks while it is behind.
                    if out.blocking_send((sampler.finish(), stopped)).is_err() {
                        return;
                    }
                }
                if stopped {
                    return;
                }
            }
            Err(e) => {
                if out.blocking_send((Err(e), false)).is_err() {
                    return;
                }
            }
        }
        if wait(period.saturating_sub(cycle.elapsed())) {
            return;
        }
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

    #[test]
    fn runtime_ids_are_uuids() {
        let id = runtime_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, runtime_id());
    }
}
