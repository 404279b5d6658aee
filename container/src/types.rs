//! What the collector hands to the agent: metric [`Point`]s, [`ContainerEvent`]s, the [`CollectorStatus`] that
//! `kelpie status` shows, and the crate's [`ContainerError`].

/// How a [`Point`] is to be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointKind {
    Gauge,
    /// A per-second value already computed from deltas.
    Rate,
    Count,
}

/// One metric value of one container (or of the container counts).
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub name: &'static str,
    pub kind: PointKind,
    pub value: f64,
    pub tags: Vec<String>,
}

/// A Datadog event produced from Docker (failed `die`, `oom`) or by the deploy detector.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerEvent {
    pub title: String,
    pub text: String,
    /// `error`, `warning`, `info` or `success`.
    pub alert_type: &'static str,
    pub aggregation_key: Option<String>,
    /// Always `docker`.
    pub source_type_name: &'static str,
    /// Unix seconds.
    pub timestamp: i64,
    pub tags: Vec<String>,
    pub priority: Option<&'static str>,
}

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("cannot connect to Docker at {at}: {reason}")]
    Connect { at: String, reason: String },
    #[error("Docker request failed: {0}")]
    Docker(String),
    #[error("ECS agent introspection API: {0}")]
    Ecs(String),
}

/// What `kelpie status` shows for the docker collector.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectorStatus {
    /// Running containers at the last collect (or as the event stream last saw them).
    pub running: usize,
    pub last_error: Option<String>,
    /// Whether the Docker event stream is connected.
    pub events_connected: bool,
    /// Events handed to the agent.
    pub events_sent: u64,
    /// Events dropped because the agent's channel was full or closed.
    pub events_dropped: u64,
    /// Times the event stream was (re)connected.
    pub event_stream_connects: u64,
    /// `Some(true)` when the ECS introspection API answered the last time it was asked.
    pub ecs_reachable: Option<bool>,
    /// Cluster reported by the ECS agent.
    pub ecs_cluster: Option<String>,
}
