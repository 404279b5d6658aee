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
//! Every reader hands what it read to [`DatagramSink::receive`] in batches and counts packets and bytes in
//! [`Telemetry`]. Memory is bounded: per reader a fixed set of buffers, per stream connection one buffer of
//! about twice the largest frame. Every blocking call wakes up at least every [`POLL_INTERVAL`] to see the
//! stop flag, so [`Listeners::shutdown`] returns within about that time.

use crate::telemetry::{DropReason, Telemetry};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

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

/// What the listeners hand their payloads to. Called from the reader threads, concurrently.
pub trait DatagramSink: Send + Sync + 'static {
    /// Takes one batch (up to [`BATCH`] payloads from one socket). The payloads are only valid during the call.
    fn receive(&self, batch: &[Received<'_>]);
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
            let sockets = bind_udp(&cfg, &telemetry)?;
            me.udp_addr = sockets[0].local_addr().ok().and_then(|a| a.as_socket());
            let slot = cfg.buffer_size.min(MAX_UDP_PAYLOAD);
            for (i, socket) in sockets.into_iter().enumerate() {
                let reader = DgramSocket {
                    fd_owner: Box::new(socket),
                    transport: Transport::Udp,
                    creds: false,
                    drops: true,
                };
                me.spawn(format!("dsd-udp-{i}"), &telemetry, &sink, slot, reader)?;
            }
            if let Some(addr) = me.udp_addr {
                tracing::info!(%addr, "DogStatsD listening on UDP");
            }
        }

        if let Some(path) = &cfg.socket_path {
            prepare_socket_path(path, false)?;
            let unix_err = |source| ListenError::Unix {
                path: path.clone(),
                source,
            };
            let socket = UnixDatagram::bind(path).map_err(unix_err)?;
            me.socket_files.push(path.clone());
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
                .map_err(unix_err)?;
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
            me.spawn(
                "dsd-uds".to_owned(),
                &telemetry,
                &sink,
                cfg.buffer_size,
                reader,
            )?;
            tracing::info!(path = %path.display(), "DogStatsD listening on Unix datagram socket");
        }

        if let Some(path) = &cfg.stream_socket_path {
            prepare_socket_path(path, true)?;
            let unix_err = |source| ListenError::Unix {
                path: path.clone(),
                source,
            };
            let listener = UnixListener::bind(path).map_err(unix_err)?;
            me.socket_files.push(path.clone());
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
                .map_err(unix_err)?;
            listener.set_nonblocking(true).map_err(unix_err)?;
            let ctx = StreamCtx {
                stop: me.stop.clone(),
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
            me.threads.push(handle);
            tracing::info!(path = %path.display(), "DogStatsD listening on Unix stream socket");
        }
        Ok(me)
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

// ---------------------------------------------------------------------------------------------------------
// UDP

fn udp_bind_ip(cfg: &ListenerConfig) -> Result<IpAddr, ListenError> {
    if cfg.non_local_traffic {
        return Ok(Ipv4Addr::UNSPECIFIED.into());
    }
    let host = cfg.bind_host.trim();
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return Ok(Ipv4Addr::LOCALHOST.into());
    }
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(ip);
    }
    let resolve_err = |source| ListenError::Resolve {
        host: host.to_owned(),
        source,
    };
    let addrs: Vec<SocketAddr> = (host, 0).to_socket_addrs().map_err(resolve_err)?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .map(|a| a.ip())
        .ok_or_else(|| resolve_err(io::Error::new(io::ErrorKind::NotFound, "no address found")))
}

/// Binds the UDP sockets: the first on the configured port (which may be 0 in tests), the others on the port
/// the first one got.
///
/// One port belongs to one agent: the sockets share the port with `SO_REUSEPORT`, which would also let a second
/// agent (same user) join the group and silently take half of the traffic. So a probe socket without
/// `SO_REUSEPORT` is bound first: it fails when anyone already holds the port, and that is a clear error.
fn bind_udp(cfg: &ListenerConfig, telemetry: &Telemetry) -> Result<Vec<Socket>, ListenError> {
    let ip = udp_bind_ip(cfg)?;
    let count = match cfg.udp_sockets {
        0 => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4),
        n => n,
    };
    let mut addr = SocketAddr::new(ip, cfg.udp_port);
    if cfg.udp_port != 0 {
        let probe = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
            .and_then(|probe| probe.bind(&addr.into()));
        match probe {
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
                return Err(ListenError::PortInUse { addr })
            }
            Err(source) => return Err(ListenError::Udp { addr, source }),
            Ok(()) => {}
        }
    }
    let (requested, max) = match cfg.so_rcvbuf {
        0 => (DEFAULT_UDP_RCVBUF, rmem_max()),
        n => (n, None),
    };
    telemetry
        .dogstatsd
        .udp_rcvbuf_requested
        .set(requested as i64);
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        let socket = udp_socket(addr, requested, max).map_err(|source| match source.kind() {
            io::ErrorKind::AddrInUse if i == 0 => ListenError::PortInUse { addr },
            _ => ListenError::Udp { addr, source },
        })?;
        if i == 0 {
            if let Some(bound) = socket.local_addr().ok().and_then(|a| a.as_socket()) {
                addr = bound;
            }
            // Linux reports twice the size asked for (the other half is its bookkeeping); show what a user
            // compares with net.core.rmem_max and dogstatsd_so_rcvbuf.
            let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
            telemetry.dogstatsd.udp_rcvbuf_granted.set(granted as i64);
            if granted < requested {
                let msg = "the kernel granted a smaller DogStatsD UDP receive buffer than requested: bursts \
                           can overflow it (counted as dogstatsd.dropped.kernel); raise the sysctl \
                           net.core.rmem_max or give the agent CAP_NET_ADMIN";
                if cfg.so_rcvbuf > 0 {
                    tracing::warn!(requested, granted, "{msg}");
                } else {
                    tracing::info!(requested, granted, "{msg}");
                }
            }
        }
        sockets.push(socket);
    }
    Ok(sockets)
}

/// The receive buffer asked for on each UDP socket when `dogstatsd_so_rcvbuf` is unset: about 500 datagrams of
/// 8 KB, so that a burst outlasts a reader that the scheduler kept off the CPU for a few milliseconds.
pub const DEFAULT_UDP_RCVBUF: usize = 4 << 20;

/// `net.core.rmem_max`: the largest receive buffer an unprivileged socket may ask for.
fn rmem_max() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A UDP socket on `addr` in the port's `SO_REUSEPORT` group, with `SO_RXQ_OVFL` (its drop counter comes with
/// every datagram) and a receive buffer of `so_rcvbuf` bytes: forced past `net.core.rmem_max` when the agent
/// may (CAP_NET_ADMIN), else at most `rmem_max` when that is known.
fn udp_socket(addr: SocketAddr, so_rcvbuf: usize, rmem_max: Option<usize>) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    set_int_opt(socket.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)?;
    if so_rcvbuf > 0 {
        set_rcvbuf(socket.as_raw_fd(), so_rcvbuf, rmem_max)?;
    }
    socket.set_read_timeout(Some(POLL_INTERVAL))?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Sets SO_RCVBUF, first with SO_RCVBUFFORCE (allowed with CAP_NET_ADMIN) so that net.core.rmem_max does not
/// cap it, then the ordinary way, asking for at most `cap` (the kernel would cap it there anyway).
fn set_rcvbuf(fd: RawFd, size: usize, cap: Option<usize>) -> io::Result<()> {
    let int = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    if set_int_opt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, int(size)).is_ok() {
        return Ok(());
    }
    set_int_opt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_RCVBUF,
        int(cap.map_or(size, |c| size.min(c))),
    )
}

fn set_int_opt(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: fd is an open socket owned by the caller; the option value is a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Datagram reading (UDP and Unix datagram)

/// A datagram socket and how to read it. `fd_owner` keeps the socket open while the reader runs.
struct DgramSocket {
    fd_owner: Box<dyn AsRawFd + Send>,
    transport: Transport,
    /// Read SCM_CREDENTIALS (SO_PASSCRED is on).
    creds: bool,
    /// Read the socket's drop counter (SO_RXQ_OVFL is on): the kernel's drops are counted as `kernel`.
    drops: bool,
}

/// Control buffer per message, in u64 for cmsghdr alignment; enough for one `ucred`.
const CTRL_WORDS: usize = 8;

fn dgram_loop(
    socket: DgramSocket,
    slot: usize,
    stop: &AtomicBool,
    telemetry: &Telemetry,
    sink: &dyn DatagramSink,
) {
    let fd = socket.fd_owner.as_raw_fd();
    let transport = socket.transport;
    let batch = (DGRAM_READER_BUDGET / slot).clamp(1, BATCH);

    // All buffers are allocated once. The kernel writes into `buf` through the iovecs; we read it back only
    // through slices made from the same raw pointer, after recvmmsg returned.
    let mut buf = vec![0u8; slot * batch].into_boxed_slice();
    let base = buf.as_mut_ptr();
    let ctrl_words = if socket.creds || socket.drops {
        CTRL_WORDS
    } else {
        0
    };
    // The socket's drop counter as last seen (the kernel counts from 0 since the socket was made).
    let mut kernel_drops = 0u32;
    let mut ctrl = vec![0u64; ctrl_words * batch].into_boxed_slice();
    let ctrl_base = ctrl.as_mut_ptr();
    let ctrl_len = ctrl_words * std::mem::size_of::<u64>();
    let mut iovs: Vec<libc::iovec> = (0..batch)
        .map(|i| libc::iovec {
            // SAFETY: i * slot < buf.len().
            iov_base: unsafe { base.add(i * slot) }.cast(),
            iov_len: slot,
        })
        .collect();
    let mut hdrs: Vec<libc::mmsghdr> = (0..batch)
        .map(|i| {
            // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
            h.msg_hdr.msg_iov = &mut iovs[i];
            h.msg_hdr.msg_iovlen = 1 as _;
            if ctrl_len > 0 {
                // SAFETY: i * ctrl_words < ctrl.len().
                h.msg_hdr.msg_control = unsafe { ctrl_base.add(i * ctrl_words) }.cast();
            }
            h
        })
        .collect();

    while !stop.load(Ordering::Relaxed) {
        for h in hdrs.iter_mut() {
            h.msg_len = 0;
            h.msg_hdr.msg_controllen = ctrl_len as _;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: hdrs holds `batch` valid headers whose iovecs and control buffers point into live buffers of
        // the announced sizes; fd is open for the life of `socket`.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                hdrs.as_mut_ptr(),
                batch as _,
                libc::MSG_WAITFORONE as _,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => {}
                _ => {
                    crate::warn_every!(10, ?transport, "reading a DogStatsD socket failed: {err}");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            continue;
        }
        let n = (n as usize).min(batch);
        let mut received = [Received {
            payload: &[],
            transport,
            pid: None,
        }; BATCH];
        let mut bytes = 0u64;
        for (i, h) in hdrs[..n].iter().enumerate() {
            let len = (h.msg_len as usize).min(slot);
            // SAFETY: the kernel wrote `len` <= slot bytes at this slot; the slot lies inside `buf`, which is
            // not written again until the batch has been handed over.
            let mut payload: &[u8] = unsafe { std::slice::from_raw_parts(base.add(i * slot), len) };
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                // Keep the complete lines; the cut one would carry a wrong value.
                payload = memchr::memrchr(b'\n', payload).map_or(&[][..], |end| &payload[..end]);
                telemetry.count_drop(DropReason::DatagramTruncated, 1);
                crate::warn_every!(
                    10,
                    ?transport,
                    buffer_size = slot,
                    "a DogStatsD datagram was larger than dogstatsd_buffer_size; its last line was dropped"
                );
            }
            bytes += len as u64;
            let (pid, drops) = if ctrl_words > 0 {
                read_cmsgs(&h.msg_hdr)
            } else {
                (None, None)
            };
            if let Some(total) = drops {
                // Cumulative (and wrapping) in the kernel: count what is new since the last datagram.
                let new = total.wrapping_sub(kernel_drops);
                if new > 0 && new < u32::MAX / 2 {
                    telemetry.count_drop(DropReason::Kernel, u64::from(new));
                    kernel_drops = total;
                    crate::warn_every!(
                        60,
                        ?transport,
                        dropped = new,
                        "the kernel dropped DogStatsD datagrams: the socket's receive buffer overflowed \
                         (counted as dogstatsd.dropped.kernel; see docs/deploy.md on net.core.rmem_max)"
                    );
                }
            }
            received[i] = Received {
                payload,
                transport,
                pid,
            };
        }
        let d = &telemetry.dogstatsd;
        match transport {
            Transport::Udp => d.packets_udp.add(n as u64),
            Transport::UdsDgram => d.packets_uds_dgram.add(n as u64),
            Transport::UdsStream => d.packets_uds_stream.add(n as u64),
        }
        d.bytes.add(bytes);
        sink.receive(&received[..n]);
    }
    // Keep the iovecs (pointed to by hdrs) and the buffers alive until here.
    drop(hdrs);
    drop(iovs);
    drop(ctrl);
    drop(buf);
}

/// The pid in a message's SCM_CREDENTIALS and the socket's drop counter (SO_RXQ_OVFL), when present.
fn read_cmsgs(msg: &libc::msghdr) -> (Option<i32>, Option<u32>) {
    let (mut pid, mut drops) = (None, None);
    // SAFETY: msg was filled by recvmmsg; msg_control/msg_controllen describe a live buffer and the CMSG_*
    // macros stay inside it. The payloads are read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET {
                match (*cmsg).cmsg_type {
                    libc::SCM_CREDENTIALS => {
                        let cred: libc::ucred =
                            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                        // 0 when the sender is in a pid namespace we cannot see.
                        pid = (cred.pid > 0).then_some(cred.pid);
                    }
                    libc::SO_RXQ_OVFL => {
                        drops = Some(std::ptr::read_unaligned(
                            libc::CMSG_DATA(cmsg).cast::<u32>(),
                        ));
                    }
                    _ => {}
                }
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    (pid, drops)
}

// ---------------------------------------------------------------------------------------------------------
// Unix sockets

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

struct StreamCtx {
    stop: Arc<AtomicBool>,
    telemetry: Arc<Telemetry>,
    sink: Arc<dyn DatagramSink>,
    buffer_size: usize,
    origin_detection: bool,
    so_rcvbuf: usize,
    /// Open connections.
    active: Arc<AtomicUsize>,
}

fn accept_loop(listener: UnixListener, ctx: StreamCtx) {
    let ctx = Arc::new(ctx);
    let mut conns: Vec<JoinHandle<()>> = Vec::new();
    while !ctx.stop.load(Ordering::Relaxed) {
        // Reap finished connection threads so the list stays as long as the open connections.
        let (done, open): (Vec<_>, Vec<_>) = conns.into_iter().partition(|h| h.is_finished());
        conns = open;
        for h in done {
            let _ = h.join();
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if ctx.active.load(Ordering::Relaxed) >= MAX_STREAM_CONNECTIONS {
                    ctx.telemetry
                        .count_drop(DropReason::UdsStreamConnectionLimit, 1);
                    crate::warn_every!(
                        10,
                        limit = MAX_STREAM_CONNECTIONS,
                        "refused a DogStatsD stream connection: too many open connections"
                    );
                    continue;
                }
                ctx.active.fetch_add(1, Ordering::Relaxed);
                let conn_ctx = ctx.clone();
                let spawned = std::thread::Builder::new()
                    .name("dsd-uds-conn".to_owned())
                    .spawn(move || {
                        stream_conn(stream, &conn_ctx);
                        conn_ctx.active.fetch_sub(1, Ordering::Relaxed);
                    });
                match spawned {
                    Ok(h) => conns.push(h),
                    Err(err) => {
                        ctx.active.fetch_sub(1, Ordering::Relaxed);
                        ctx.telemetry
                            .count_drop(DropReason::UdsStreamConnectionLimit, 1);
                        tracing::warn!(
                            "cannot start a thread for a DogStatsD stream connection: {err}"
                        );
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let mut pfd = libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd for an open fd.
                unsafe { libc::poll(&mut pfd, 1, POLL_INTERVAL.as_millis() as libc::c_int) };
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                crate::warn_every!(10, "accepting a DogStatsD stream connection failed: {err}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

fn peer_pid(fd: RawFd) -> Option<i32> {
    // SAFETY: all-zero is a valid ucred; getsockopt writes at most `len` bytes into it.
    unsafe {
        let mut cred: libc::ucred = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
        let rc = libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        );
        (rc == 0 && cred.pid > 0).then_some(cred.pid)
    }
}

/// Reads length-prefixed frames from one stream connection until EOF, an error, a too-large frame or shutdown.
fn stream_conn(mut stream: UnixStream, ctx: &StreamCtx) {
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(POLL_INTERVAL)).is_err()
    {
        return;
    }
    if ctx.so_rcvbuf > 0 {
        let _ = set_rcvbuf(stream.as_raw_fd(), ctx.so_rcvbuf, None);
    }
    let pid = if ctx.origin_detection {
        peer_pid(stream.as_raw_fd())
    } else {
        None
    };
    let max = ctx.buffer_size;
    // Room for one largest frame and its header, twice, so a read usually brings several whole frames.
    let mut buf = vec![0u8; 2 * (max + 4)].into_boxed_slice();
    let mut filled = 0usize;
    let d = &ctx.telemetry.dogstatsd;
    while !ctx.stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                if filled > 0 {
                    ctx.telemetry
                        .count_drop(DropReason::UdsStreamPartialFrame, 1);
                }
                return;
            }
            Ok(n) => filled += n,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(err) => {
                tracing::debug!("reading a DogStatsD stream connection failed: {err}");
                return;
            }
        }
        let mut pos = 0;
        let mut frames = [Received {
            payload: &[],
            transport: Transport::UdsStream,
            pid,
        }; BATCH];
        let mut k = 0;
        let (mut packets, mut bytes) = (0u64, 0u64);
        let mut too_large = None;
        while filled - pos >= 4 {
            let len =
                u32::from_le_bytes([buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]]) as usize;
            if len > max {
                too_large = Some(len);
                break;
            }
            if filled - pos - 4 < len {
                break;
            }
            frames[k].payload = &buf[pos + 4..pos + 4 + len];
            k += 1;
            pos += 4 + len;
            packets += 1;
            bytes += len as u64;
            if k == BATCH {
                ctx.sink.receive(&frames[..k]);
                k = 0;
            }
        }
        if k > 0 {
            ctx.sink.receive(&frames[..k]);
        }
        d.packets_uds_stream.add(packets);
        d.bytes.add(bytes);
        if let Some(len) = too_large {
            ctx.telemetry
                .count_drop(DropReason::UdsStreamFrameTooLarge, 1);
            crate::warn_every!(
                10,
                len,
                buffer_size = max,
                "closed a DogStatsD stream connection: a frame is larger than dogstatsd_buffer_size"
            );
            return;
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
    }
}
