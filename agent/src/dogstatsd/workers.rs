//! The DogStatsD input as the agent runs it: the socket listeners, the byte-bounded queue behind them and the
//! worker threads that take batches from it and hand them to the [`AggregatingSink`] (enrich → parse →
//! aggregate). Started listeners first, stopped in the same order: listeners, then the queue is closed and the
//! workers drain it.

use super::enrich::{AggregatingSink, Arrival, ShardLines};
use super::listen::{ListenerConfig, Listeners, Received};
use super::queue::PacketQueue;
use crate::config::Config;
use crate::telemetry::Telemetry;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long an idle worker waits for the queue before it looks at the stop condition again.
const WORKER_POLL: Duration = Duration::from_millis(200);
/// Bytes of datagrams a worker takes from the queue at once: what came during a nap, shared with the other
/// workers in a burst (32 datagrams of 8 KB).
const TAKE_BYTES: usize = 256 << 10;

/// The processing workers: each takes batches from the queue and runs [`AggregatingSink::process`] until the
/// queue is closed and drained. The first takes every batch it can; the others only help with a backlog
/// (see [`PacketQueue::help_many`]).
struct Workers {
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(
        count: usize,
        queue: Arc<PacketQueue>,
        sink: Arc<AggregatingSink>,
    ) -> anyhow::Result<Workers> {
        let shards = sink.agg.len();
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let (queue, sink) = (queue.clone(), sink.clone());
            let start = i * shards / count.max(1);
            let handle = std::thread::Builder::new()
                .name(format!("dsd-worker-{i}"))
                .spawn(move || {
                    let mut scratch = ShardLines::default();
                    let mut batches = Vec::new();
                    loop {
                        // The first worker takes whatever comes; the others help with a backlog.
                        if i == 0 {
                            queue.pop_many(&mut batches, WORKER_POLL, TAKE_BYTES);
                        } else {
                            queue.help_many(&mut batches, WORKER_POLL, TAKE_BYTES);
                        }
                        if batches.is_empty() {
                            if queue.is_finished() {
                                return;
                            }
                            continue;
                        }
                        // Every datagram taken, with where it stood in arrival order.
                        let (received, arrivals): (Vec<Received<'_>>, Vec<Arrival>) = batches
                            .iter()
                            .flat_map(|b| {
                                b.received()
                                    .enumerate()
                                    .map(move |(i, r)| (r, (b.seq(), i as u32)))
                            })
                            .unzip();
                        sink.process(&received, &arrivals, &mut scratch, start);
                        drop(received);
                        for b in batches.drain(..) {
                            queue.recycle(b);
                        }
                    }
                })
                .map_err(|e| anyhow::anyhow!("cannot start a DogStatsD worker thread: {e}"))?;
            threads.push(handle);
        }
        Ok(Workers { threads })
    }

    /// Waits for every worker to finish (after the queue was closed).
    fn join(self) {
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a DogStatsD worker thread panicked");
            }
        }
    }
}

/// The worker count `dogstatsd_pipeline_count` asks for (0: one per core).
pub fn worker_count(cfg: &Config) -> usize {
    match cfg.dogstatsd_pipeline_count {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// The listeners' settings from the agent's.
fn listener_config(cfg: &Config) -> ListenerConfig {
    ListenerConfig {
        udp_port: cfg.dogstatsd_port,
        bind_host: cfg.bind_host.clone(),
        non_local_traffic: cfg.dogstatsd_non_local_traffic,
        socket_path: cfg.dogstatsd_socket.clone(),
        stream_socket_path: cfg.dogstatsd_stream_socket.clone(),
        buffer_size: cfg.dogstatsd_buffer_size,
        so_rcvbuf: cfg.dogstatsd_so_rcvbuf,
        origin_detection: cfg.dogstatsd_origin_detection,
        udp_sockets: 0,
    }
}

/// The running DogStatsD input.
pub struct Input {
    listeners: Listeners,
    queue: Arc<PacketQueue>,
    workers: Workers,
}

impl Input {
    /// Listens as `cfg` says and starts `workers` workers feeding `sink`.
    pub fn start(
        cfg: &Config,
        workers: usize,
        sink: AggregatingSink,
        telemetry: Arc<Telemetry>,
    ) -> anyhow::Result<Input> {
        let queue = Arc::new(PacketQueue::new(
            usize::try_from(cfg.dogstatsd_queue_bytes).unwrap_or(usize::MAX),
            telemetry.clone(),
        ));
        let listeners = Listeners::start(listener_config(cfg), telemetry, queue.clone())?;
        // Started after the listeners, so that an agent that cannot listen leaves no worker behind; datagrams
        // read meanwhile wait in the queue.
        let workers = Workers::start(workers, queue.clone(), Arc::new(sink))?;
        Ok(Input {
            listeners,
            queue,
            workers,
        })
    }

    /// The UDP address bound, if any.
    pub fn udp_local_addr(&self) -> Option<SocketAddr> {
        self.listeners.udp_local_addr()
    }

    /// Stops listening, then lets the workers drain the queue (blocking).
    pub fn shutdown(self) {
        self.listeners.shutdown();
        self.queue.close();
        self.workers.join();
    }
}
