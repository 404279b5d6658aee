//! Wires the stages together and runs the agent until shutdown. A datagram's path, in the order `run` starts
//! the stages and each lives in its own module:
//!
//! listen ([`dogstatsd::listen`](crate::dogstatsd::listen), [`dogstatsd::queue`](crate::dogstatsd::queue)) →
//! enrich and parse ([`dogstatsd::enrich`](crate::dogstatsd::enrich), on the
//! [`workers`](crate::dogstatsd::workers)) → aggregate ([`aggregator`](crate::aggregator), its budget from
//! [`memory`](crate::memory)) → flush ([`flush`](crate::flush), with host, [`containers`](crate::containers)
//! and self metrics) → encode ([`encode`](crate::encode)) → forward ([`forwarder`](crate::forwarder)); the
//! history, the status server and the profile intake beside them.
//!
//! Shutdown starts at the inputs: listeners stop, the workers drain the queue, the open buckets are flushed
//! (forced), the forwarder drains within a bounded wait and persists what is left when disk storage is
//! configured.

use crate::aggregator::shards::SHARDS_PER_WORKER;
use crate::aggregator::Shards;
use crate::config::Config;
use crate::containers::{container_config, ContainerSource};
use crate::dogstatsd::enrich::AggregatingSink;
use crate::dogstatsd::workers::{worker_count, Input};
use crate::flush::{encode_config, Flusher};
use crate::forwarder::{Forwarder, ForwarderConfig};
use crate::history::History;
use crate::host::HostCollector;
use crate::memory::{aggregator_config, MemoryGuard};
use crate::status::{self, StatusState};
use crate::telemetry::{SelfMetrics, Telemetry};
use kelpie_container::OriginTags;
use parking_lot::{Mutex, RwLock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Capacity of the queues carrying DogStatsD events and service checks to the flusher.
const EVENT_QUEUE: usize = 4096;

/// Longest the forwarder keeps sending after SIGTERM (counted from the signal) before what is left goes to
/// disk or is dropped and logged: with its 1 s grace for requests in flight, the agent exits well within
/// Docker's default 10 s stop timeout.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(6);

/// Addresses the running agent bound (useful to tests and to the log line at start).
#[derive(Debug, Clone)]
pub struct Bound {
    pub status: SocketAddr,
    pub udp: Option<SocketAddr>,
    pub profiles: Option<SocketAddr>,
}

// Over 100 lines on purpose: the agent's start-up and shutdown order read top to bottom in one place (see
// ARCHITECTURE.md, shutdown order); each step is one call.
/// Runs the agent until `shutdown` is cancelled, then drains and returns. `ready` receives the bound
/// addresses once every listener is up.
pub async fn run(
    cfg: Config,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> anyhow::Result<()> {
    few_malloc_arenas();
    for w in cfg.unknown_key_warnings().iter().chain(&cfg.warnings) {
        warn!("{w}");
    }
    let telemetry = Arc::new(Telemetry::default());
    let history = Arc::new(Mutex::new(History::new(cfg.history_memory)));
    let origin = Arc::new(RwLock::new(None));
    let state = Arc::new(StatusState::new(
        &cfg,
        VERSION,
        telemetry.clone(),
        history.clone(),
        origin.clone(),
    ));

    // The aggregator: its shards, and its context cap from memory_limit.
    let (agg, workers, max_contexts) = aggregator(&cfg, &telemetry)?;

    // Containers (optional: a host without Docker still runs the rest, and retries Docker every minute).
    let containers = ContainerSource::start(
        container_config(&cfg),
        cfg.hostname.clone(),
        state.clone(),
        origin.clone(),
    )
    .await;
    let forwarder = ForwarderConfig::from_agent(&cfg)
        .map(|c| Forwarder::start(c, telemetry.clone()))
        .transpose()?;
    let (status_addr, status_task) = serve_status(cfg.status_addr, state.clone()).await?;
    // Profiles intake (the toolkit's profiler posts here; forwarded like the rest).
    let profiles_addr = match cfg.profiles_addr {
        Some(addr) => {
            let (fwd, tel) = (forwarder.clone(), telemetry.clone());
            crate::profiles::start(addr, fwd, tel, shutdown.clone()).await
        }
        None => None,
    };

    // Listen → enrich → parse → aggregate.
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (sc_tx, sc_rx) = mpsc::channel(EVENT_QUEUE);
    let sink = AggregatingSink {
        agg: agg.clone(),
        telemetry: telemetry.clone(),
        origin,
        origin_detection: cfg.dogstatsd_origin_detection,
        client_origin: cfg.dogstatsd_origin_detection_client,
        no_tags: OriginTags::from([]),
        events: ev_tx,
        checks: sc_tx,
    };
    let input = Input::start(&cfg, workers, sink, telemetry.clone())?;
    let bound = Bound {
        status: status_addr,
        udp: input.udp_local_addr(),
        profiles: profiles_addr,
    };
    for line in crate::startup::summary(&cfg, &bound, &state.collectors.lock(), VERSION) {
        info!("{line}");
    }
    if let Some(tx) = ready {
        let _ = tx.send(bound);
    }

    // Flush → encode → forward, on interval boundaries.
    let mut flusher = Flusher {
        encode: encode_config(&cfg),
        host: HostCollector::new(cfg.host_proc.clone(), cfg.host_sys.clone()),
        guard: MemoryGuard::new(max_contexts, cfg.memory_limit),
        cfg,
        telemetry,
        agg,
        history,
        containers,
        forwarder: forwarder.clone(),
        events: ev_rx,
        checks: sc_rx,
        self_metrics: SelfMetrics::default(),
        state,
    };
    flusher.run_until(&shutdown).await;

    info!("shutting down: stopping inputs, flushing, draining the forwarder");
    let stopping = Instant::now();
    // Inputs first, then what they queued, then the open buckets.
    tokio::task::spawn_blocking(move || input.shutdown()).await?;
    flusher.flush(true).await;
    if let Some(f) = forwarder {
        f.shutdown(SHUTDOWN_DRAIN.saturating_sub(stopping.elapsed()))
            .await;
    }
    status_task.abort();
    info!("kelpie agent stopped");
    Ok(())
}

/// The aggregator's shards (4 per worker), the worker count and the context cap derived from memory_limit.
fn aggregator(
    cfg: &Config,
    telemetry: &Arc<Telemetry>,
) -> anyhow::Result<(Arc<Shards>, usize, usize)> {
    let (agg_cfg, max_contexts) = aggregator_config(cfg)?;
    telemetry.dogstatsd.context_limit.set(max_contexts as i64);
    let workers = worker_count(cfg);
    telemetry.dogstatsd.pipelines.set(workers as i64);
    let shards = Shards::new(agg_cfg, telemetry.clone(), workers * SHARDS_PER_WORKER);
    Ok((Arc::new(shards), workers, max_contexts))
}

/// Starts the status server on `addr`.
async fn serve_status(
    addr: SocketAddr,
    state: Arc<StatusState>,
) -> anyhow::Result<(SocketAddr, JoinHandle<std::io::Result<()>>)> {
    let (bound, serve) = status::bind(addr, state)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on the status address {addr}: {e}"))?;
    Ok((bound, tokio::spawn(serve)))
}

/// Few malloc arenas: the reader threads and the runtime would otherwise each grow their own, and memory freed
/// by the flush in one arena could not serve new contexts created in another (measured as RSS, not leaks).
fn few_malloc_arenas() {
    // SAFETY: mallopt only tunes glibc's allocator; it is called before the agent's threads start.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
