//! DogStatsD listeners: UDP, Unix datagram and Unix stream sockets, each read on plain OS threads.
//!
//! Why threads and not tokio: a DogStatsD input spends its life in `recvmmsg`, and one blocking thread per
//! socket reading 32 datagrams per system call, with buffers allocated once, is both the fastest and the
//! simplest thing; the async runtime stays free for the HTTP side of the agent.
//!
//! * UDP: `udp_sockets` sockets bound to the same port with `SO_REUSEPORT` (the kernel spreads senders over
//!   them), one thread each.
//! * Unix datagram: one socket, `SO_PASSCRED` when origin detection is on so every datagram carries the
//!   sender's pid (`SCM_CREDENTIALS`).
//! * Unix stream: one accepting thread and one thread per connection (at most [`MAX_STREAM_CONNECTIONS`]);
//!   each frame is a 32-bit little-endian length and that many bytes; the pid comes from `SO_PEERCRED`.
//!
//! Every reader hands what it read to its [`DatagramSink`] in batches and counts packets and bytes in
//! [`Telemetry`]: a datagram reader receives into a buffer the sink lent it and hands that buffer over
//! ([`DatagramSink::receive_lent`]), a stream reader copies out of its own buffer ([`DatagramSink::receive`]).
//! Memory is bounded: per datagram reader one lent buffer and a fixed set of control buffers, per stream
//! connection one buffer of about twice the largest frame. Every blocking call wakes up at least every
//! [`POLL_INTERVAL`] to see the stop flag, so [`Listeners::shutdown`] returns within about that time.
//!
//! Here: the settings, the sink interface and starting and stopping the listeners; `sockets.rs` opens the
//! UDP sockets and sets socket options, `dgram.rs` reads datagram sockets, `stream.rs` reads stream
//! connections.

mod dgram;
mod sockets;
mod stream;

pub use sockets::DEFAULT_UDP_RCVBUF;

use crate::telemetry::Telemetry;
use dgram::{dgram_loop, DgramSocket};
use sockets::{bind_udp, set_int_opt, set_rcvbuf};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use stream::{accept_loop, StreamCtx};

/// How often blocked readers wake up to check for shutdown.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Datagrams read per `recvmmsg` call (and so the largest batch handed to the sink).
pub const BATCH: usize = 32;
/// Most concurrent Unix stream connections; more are closed at once and counted
/// (`dogstatsd.dropped.uds_stream_connection_limit`).
pub const MAX_STREAM_CONNECTIONS: usize = 1024;
/// Largest accepted `buffer_size`.
pub const MAX_BUFFER_SIZE: usize = crate::config::MAX_DOGSTATSD_BUFFER_SIZE;
/// Memory budget of one datagram reader's buffers; large `buffer_size`s read fewer datagrams per call.
const DGRAM_READER_BUDGET: usize = 4 << 20;
/// Largest possible UDP payload; a UDP slot never needs more.
const MAX_UDP_PAYLOAD: usize = 65_536;
/// Permissions of the Unix socket files: anyone may write (clients run in other containers, as other users),
/// only the agent may read. Datadog's agent does the same.
const SOCKET_MODE: u32 = 0o722;

/// Where and how to listen. Field names follow the Datadog Agent's `dogstatsd_*` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// UDP port; 0 disables UDP (`dogstatsd_port`).
    pub udp_port: u16,
    /// Address to bind UDP to when `non_local_traffic` is off (`bind_host`; `localhost` is 127.0.0.1).
    pub bind_host: String,
    /// Listen on every interface (`dogstatsd_non_local_traffic`).
    pub non_local_traffic: bool,
    /// Unix datagram socket path (`dogstatsd_socket`).
    pub socket_path: Option<PathBuf>,
    /// Unix stream socket path (`dogstatsd_stream_socket`).
    pub stream_socket_path: Option<PathBuf>,
    /// Largest datagram or stream frame read (`dogstatsd_buffer_size`).
    pub buffer_size: usize,
    /// Requested receive buffer of each socket; 0 keeps the kernel default (`dogstatsd_so_rcvbuf`).
    pub so_rcvbuf: usize,
    /// Report the sender's pid of Unix socket traffic (`dogstatsd_origin_detection`).
    pub origin_detection: bool,
    /// UDP sockets sharing the port (`SO_REUSEPORT`), one reading thread each; 0 = min(available cores, 4).
    pub udp_sockets: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            udp_port: 8125,
            bind_host: "localhost".to_owned(),
            non_local_traffic: false,
            socket_path: None,
            stream_socket_path: None,
            buffer_size: 8192,
            so_rcvbuf: 0,
            origin_detection: false,
            udp_sockets: 0,
        }
    }
}

/// Which socket a payload came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    UdsDgram,
    UdsStream,
}

/// One datagram (or one stream frame) as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received<'a> {
    /// The bytes: one or more newline-separated DogStatsD lines.
    pub payload: &'a [u8],
    pub transport: Transport,
    /// Sender's pid, for Unix socket traffic when origin detection is on.
    pub pid: Option<i32>,
}

/// One payload inside a buffer a sink lent to a reader ([`DatagramSink::receive_lent`]): the bytes are
/// `buf[start..start + len]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LentPacket {
    pub start: usize,
    pub len: usize,
    pub transport: Transport,
    /// Sender's pid, for Unix socket traffic when origin detection is on.
    pub pid: Option<i32>,
}

/// What the listeners hand their payloads to. Called from the reader threads, concurrently.
///
/// Two ways in. The stream reader copies frames out of its own buffer and calls [`DatagramSink::receive`].
/// The datagram readers receive into a buffer the sink lends them ([`DatagramSink::lend`], once, and again
/// each time the sink keeps one) and hand it over whole with [`DatagramSink::receive_lent`], so that a sink
/// which queues the payloads (the agent's [`PacketQueue`](crate::dogstatsd::queue::PacketQueue)) can queue
/// that buffer itself instead of copying out of it. A reader holds at most one lent buffer at a time. The
/// lending methods have defaults (a plain buffer, handed back after [`DatagramSink::receive`]), so a sink
/// that only implements `receive` sees every payload the same way.
pub trait DatagramSink: Send + Sync + 'static {
    /// Takes one batch (up to [`BATCH`] payloads from one socket). The payloads are only valid during the call.
    fn receive(&self, batch: &[Received<'_>]);

    /// A buffer of at least `len` bytes (its length, not only its capacity; what it holds does not matter)
    /// for a reader to receive into. A reader given fewer bytes grows the buffer to `len` itself. Default: a
    /// new zeroed buffer.
    fn lend(&self, len: usize) -> Vec<u8> {
        vec![0; len]
    }

    /// Takes one batch (up to [`BATCH`] payloads from one socket) received into `buf`, a buffer from
    /// [`DatagramSink::lend`]: each packet's bytes lie inside `buf` (a packet outside it panics). Returns the
    /// buffer when the sink did not keep it, for the reader to receive into again; `None` when the sink kept
    /// it (the reader then asks for another with [`DatagramSink::lend`]). Default: calls
    /// [`DatagramSink::receive`] with the payloads ([`BATCH`] at a time; empty payloads included) and gives the
    /// buffer back.
    fn receive_lent(&self, buf: Vec<u8>, packets: &[LentPacket]) -> Option<Vec<u8>> {
        for chunk in packets.chunks(BATCH) {
            let mut received = [Received {
                payload: &[],
                transport: Transport::Udp,
                pid: None,
            }; BATCH];
            for (r, p) in received.iter_mut().zip(chunk) {
                *r = Received {
                    payload: &buf[p.start..p.start + p.len],
                    transport: p.transport,
                    pid: p.pid,
                };
            }
            self.receive(&received[..chunk.len()]);
        }
        Some(buf)
    }
}

/// Why the listeners could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("dogstatsd_buffer_size must be between 1 and {MAX_BUFFER_SIZE} bytes, not {0}")]
    BufferSize(usize),
    #[error("cannot resolve DogStatsD bind_host {host:?}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("cannot listen for DogStatsD on UDP {addr}: {source}")]
    Udp { addr: SocketAddr, source: io::Error },
    #[error(
        "cannot listen for DogStatsD on UDP {addr}: the port is already in use (another kelpie or Datadog \
         agent on this host?); stop it or set dogstatsd_port"
    )]
    PortInUse { addr: SocketAddr },
    #[error("cannot listen for DogStatsD on Unix socket {}: {source}", path.display())]
    Unix { path: PathBuf, source: io::Error },
    #[error("cannot create the DogStatsD socket {}: its directory does not exist", path.display())]
    MissingDirectory { path: PathBuf },
    #[error("cannot create the DogStatsD socket {}: a file that is not a socket is in the way", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot create the DogStatsD socket {}: another process is listening on it", path.display())]
    InUse { path: PathBuf },
    #[error("cannot start a DogStatsD listener thread: {0}")]
    Thread(io::Error),
}

/// The running listeners. Dropping them (or [`Listeners::shutdown`]) stops every thread and removes the
/// Unix socket files.
pub struct Listeners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    udp_addr: Option<SocketAddr>,
    socket_files: Vec<PathBuf>,
}

impl Listeners {
    /// Binds everything (errors are one sentence naming the address/path and cause) and starts threads.
    pub fn start(
        cfg: ListenerConfig,
        telemetry: Arc<Telemetry>,
        sink: Arc<dyn DatagramSink>,
    ) -> Result<Listeners, ListenError> {
        if cfg.buffer_size == 0 || cfg.buffer_size > MAX_BUFFER_SIZE {
            return Err(ListenError::BufferSize(cfg.buffer_size));
        }
        // Built up as we go, so an error half-way stops what already started and removes its files (Drop).
        let mut me = Listeners {
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            udp_addr: None,
            socket_files: Vec::new(),
        };
        if cfg.udp_port != 0 {
            me.start_udp(&cfg, &telemetry, &sink)?;
        }
        if let Some(path) = &cfg.socket_path {
            me.start_unix_dgram(path, &cfg, &telemetry, &sink)?;
        }
        if let Some(path) = &cfg.stream_socket_path {
            me.start_unix_stream(path, &cfg, &telemetry, &sink)?;
        }
        Ok(me)
    }

    /// The UDP sockets, one reader thread each.
    fn start_udp(
        &mut self,
        cfg: &ListenerConfig,
        telemetry: &Arc<Telemetry>,
        sink: &Arc<dyn DatagramSink>,
    ) -> Result<(), ListenError> {
        let sockets = bind_udp(cfg, telemetry)?;
        self.udp_addr = sockets[0].local_addr().ok().and_then(|a| a.as_socket());
        let slot = cfg.buffer_size.min(MAX_UDP_PAYLOAD);
        for (i, socket) in sockets.into_iter().enumerate() {
            let reader = DgramSocket {
                fd_owner: Box::new(socket),
                transport: Transport::Udp,
                creds: false,
                drops: true,
            };
            self.spawn(format!("dsd-udp-{i}"), telemetry, sink, slot, reader)?;
        }
        if let Some(addr) = self.udp_addr {
            tracing::info!(%addr, "DogStatsD listening on UDP");
        }
        Ok(())
    }

    /// The Unix datagram socket at `path` and its reader thread.
    fn start_unix_dgram(
        &mut self,
        path: &PathBuf,
        cfg: &ListenerConfig,
        telemetry: &Arc<Telemetry>,
        sink: &Arc<dyn DatagramSink>,
    ) -> Result<(), ListenError> {
        let socket = self.bind_socket_file(path, false, |p| UnixDatagram::bind(p))?;
        let unix_err = |source| ListenError::Unix {
            path: path.clone(),
            source,
        };
        socket
            .set_read_timeout(Some(POLL_INTERVAL))
            .map_err(unix_err)?;
        if cfg.origin_detection {
            set_int_opt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PASSCRED, 1)
                .map_err(unix_err)?;
        }
        if cfg.so_rcvbuf > 0 {
            set_rcvbuf(socket.as_raw_fd(), cfg.so_rcvbuf, None).map_err(unix_err)?;
        }
        let reader = DgramSocket {
            fd_owner: Box::new(socket),
            transport: Transport::UdsDgram,
            creds: cfg.origin_detection,
            // A Unix datagram socket never drops: a sender finding it full waits or gets EAGAIN.
            drops: false,
        };
        self.spawn(
            "dsd-uds".to_owned(),
            telemetry,
            sink,
            cfg.buffer_size,
            reader,
        )?;
        tracing::info!(path = %path.display(), "DogStatsD listening on Unix datagram socket");
        Ok(())
    }

    /// The Unix stream socket at `path` and its accepting thread (which starts one thread per connection).
    fn start_unix_stream(
        &mut self,
        path: &PathBuf,
        cfg: &ListenerConfig,
        telemetry: &Arc<Telemetry>,
        sink: &Arc<dyn DatagramSink>,
    ) -> Result<(), ListenError> {
        let listener = self.bind_socket_file(path, true, |p| UnixListener::bind(p))?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ListenError::Unix {
                path: path.clone(),
                source,
            })?;
        let ctx = StreamCtx {
            stop: self.stop.clone(),
            telemetry: telemetry.clone(),
            sink: sink.clone(),
            buffer_size: cfg.buffer_size,
            origin_detection: cfg.origin_detection,
            so_rcvbuf: cfg.so_rcvbuf,
            active: Arc::new(AtomicUsize::new(0)),
        };
        let handle = std::thread::Builder::new()
            .name("dsd-uds-stream".to_owned())
            .spawn(move || accept_loop(listener, ctx))
            .map_err(ListenError::Thread)?;
        self.threads.push(handle);
        tracing::info!(path = %path.display(), "DogStatsD listening on Unix stream socket");
        Ok(())
    }

    /// Binds a Unix socket at `path` (a stale socket file from a previous run is removed first), to be
    /// removed at shutdown, writable by anyone.
    fn bind_socket_file<S>(
        &mut self,
        path: &PathBuf,
        stream: bool,
        bind: impl FnOnce(&PathBuf) -> io::Result<S>,
    ) -> Result<S, ListenError> {
        prepare_socket_path(path, stream)?;
        let unix_err = |source| ListenError::Unix {
            path: path.clone(),
            source,
        };
        let socket = bind(path).map_err(unix_err)?;
        self.socket_files.push(path.clone());
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .map_err(unix_err)?;
        Ok(socket)
    }

    fn spawn(
        &mut self,
        name: String,
        telemetry: &Arc<Telemetry>,
        sink: &Arc<dyn DatagramSink>,
        slot: usize,
        socket: DgramSocket,
    ) -> Result<(), ListenError> {
        let (stop, telemetry, sink) = (self.stop.clone(), telemetry.clone(), sink.clone());
        let handle = std::thread::Builder::new()
            .name(name)
            .spawn(move || dgram_loop(socket, slot, &stop, &telemetry, &*sink))
            .map_err(ListenError::Thread)?;
        self.threads.push(handle);
        Ok(())
    }

    /// The address the first UDP socket is bound to (all share its port); None when UDP is off.
    pub fn udp_local_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// Stops reading (sockets closed, threads joined within ~1 s; unix socket files removed); used on SIGTERM.
    pub fn shutdown(self) {
        drop(self)
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.threads.drain(..) {
            if handle.join().is_err() {
                tracing::error!("a DogStatsD listener thread panicked");
            }
        }
        for path in self.socket_files.drain(..) {
            if let Err(err) = std::fs::remove_file(&path) {
                if err.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), "cannot remove the DogStatsD socket file: {err}");
                }
            }
        }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Checks the socket's directory and clears a stale socket file left by a previous run.
fn prepare_socket_path(path: &Path, stream: bool) -> Result<(), ListenError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(ListenError::MissingDirectory {
            path: path.to_owned(),
        });
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            let live = if stream {
                UnixStream::connect(path).is_ok()
            } else {
                UnixDatagram::unbound()
                    .and_then(|s| s.connect(path))
                    .is_ok()
            };
            if live {
                return Err(ListenError::InUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(|source| ListenError::Unix {
                path: path.to_owned(),
                source,
            })
        }
        Ok(_) => Err(ListenError::NotASocket {
            path: path.to_owned(),
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ListenError::Unix {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A payload as a sink saw it: bytes, transport, pid.
    type Seen = (Vec<u8>, Transport, Option<i32>);

    /// Records each `receive` call's payloads.
    #[derive(Default)]
    struct Calls(Mutex<Vec<Vec<Seen>>>);

    impl DatagramSink for Calls {
        fn receive(&self, batch: &[Received<'_>]) {
            let call = batch
                .iter()
                .map(|r| (r.payload.to_vec(), r.transport, r.pid))
                .collect();
            self.0.lock().unwrap().push(call);
        }
    }

    /// A sink with only `receive` sees a lent batch as one `receive` call and gives the buffer back.
    #[test]
    fn the_default_lending_hands_the_payloads_to_receive_and_the_buffer_back() {
        let sink = Calls::default();
        let mut buf = sink.lend(64);
        assert_eq!(buf, vec![0; 64]);
        buf[..5].copy_from_slice(b"a:1|c");
        buf[32..37].copy_from_slice(b"b:2|c");
        let at = buf.as_ptr();
        let packets = [
            LentPacket {
                start: 0,
                len: 5,
                transport: Transport::Udp,
                pid: None,
            },
            LentPacket {
                start: 16,
                len: 0,
                transport: Transport::Udp,
                pid: None,
            },
            LentPacket {
                start: 32,
                len: 5,
                transport: Transport::UdsDgram,
                pid: Some(7),
            },
        ];
        let back = sink.receive_lent(buf, &packets).expect("given back");
        assert_eq!(back.as_ptr(), at);
        let calls = sink.0.lock().unwrap();
        assert_eq!(
            *calls,
            [vec![
                (b"a:1|c".to_vec(), Transport::Udp, None),
                (Vec::new(), Transport::Udp, None),
                (b"b:2|c".to_vec(), Transport::UdsDgram, Some(7)),
            ]]
        );
    }
}
