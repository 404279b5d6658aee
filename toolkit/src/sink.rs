//! The DogStatsD side: the non-blocking socket (UDP or Unix datagram) behind a bounded queue, and the counters
//! of what it dropped, shared by the `metrics` recorder, the runtime-metrics client and the [`crate::Guard`].

use crate::{Error, Target, UDP_DATAGRAM_SIZE, UDS_DATAGRAM_SIZE};
use cadence::{MetricSink, QueuingMetricSink};
use std::net::{ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Opens the socket to `target` behind a queue of `capacity` points.
pub(crate) fn open(target: &Target, capacity: usize) -> Result<Shared, Error> {
    let sent_errors = Arc::new(AtomicU64::new(0));
    let errors = sent_errors.clone();
    let queue = cadence::QueuingMetricSink::builder()
        .with_capacity(capacity)
        .with_error_handler(move |_e| {
            errors.fetch_add(1, Relaxed);
        });
    let target_name = target.to_string();
    let socket_err = |source| Error::Socket {
        target: target_name.clone(),
        source,
    };
    let queue = match target {
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
    Ok(Shared {
        queue,
        sent_errors,
        queue_full: AtomicU64::new(0),
        profiles_sent: AtomicU64::new(0),
        profile_errors: AtomicU64::new(0),
    })
}

pub(crate) struct Shared {
    pub(crate) queue: QueuingMetricSink,
    pub(crate) sent_errors: Arc<AtomicU64>,
    pub(crate) queue_full: AtomicU64,
    pub(crate) profiles_sent: AtomicU64,
    pub(crate) profile_errors: AtomicU64,
}

impl Shared {
    pub(crate) fn flush(&self) {
        if let Err(e) = self.queue.flush() {
            tracing::trace!(error = %e, "DogStatsD flush failed");
            self.sent_errors.fetch_add(1, Relaxed);
        }
    }
}

/// The sink shared by the `metrics` recorder and the runtime-metrics client. (`QueuingMetricSink` is
/// `Clone`, but dropping any clone stops its worker, so it is shared behind an `Arc` instead.)
#[derive(Clone)]
pub(crate) struct SharedSink(pub(crate) Arc<Shared>);

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
