//! Opening the UDP sockets (the bind address, `SO_REUSEPORT`, `SO_RXQ_OVFL`, the receive buffer within what
//! the kernel grants) and the socket options the Unix sockets share.

use super::{ListenError, ListenerConfig, POLL_INTERVAL};
use crate::telemetry::Telemetry;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};

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
pub(super) fn bind_udp(
    cfg: &ListenerConfig,
    telemetry: &Telemetry,
) -> Result<Vec<Socket>, ListenError> {
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
pub(super) fn set_rcvbuf(fd: RawFd, size: usize, cap: Option<usize>) -> io::Result<()> {
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

pub(super) fn set_int_opt(
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
