//! Reading the Unix stream socket: an accepting thread (at most [`MAX_STREAM_CONNECTIONS`] connections) and
//! one thread per connection, each reading length-prefixed frames with the peer's pid (`SO_PEERCRED`).

use super::sockets::set_rcvbuf;
use super::{DatagramSink, Received, Transport, BATCH, MAX_STREAM_CONNECTIONS, POLL_INTERVAL};
use crate::telemetry::{DropReason, Telemetry};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub(super) struct StreamCtx {
    pub stop: Arc<AtomicBool>,
    pub telemetry: Arc<Telemetry>,
    pub sink: Arc<dyn DatagramSink>,
    pub buffer_size: usize,
    pub origin_detection: bool,
    pub so_rcvbuf: usize,
    /// Open connections.
    pub active: Arc<AtomicUsize>,
}

pub(super) fn accept_loop(listener: UnixListener, ctx: StreamCtx) {
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
