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
//!
//! Files: `builder.rs` (settings and start-up), `sink.rs` (the socket and its queue), `guard.rs`, `worker.rs`
//! (the background and sampler threads), `target.rs`, `runtime.rs`, `profiling.rs`.

mod builder;
mod guard;
pub mod profiling;
pub mod runtime;
mod sink;
pub mod target;
mod worker;

pub use builder::Builder;
pub use guard::{Guard, Stats};
pub use target::Target;

use std::time::Duration;

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

/// Sets everything up from the environment: `Builder::from_env().install()`.
pub fn init() -> Result<Guard, Error> {
    Builder::from_env().install()
}
