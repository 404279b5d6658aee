//! Reading a datagram socket (UDP or Unix datagram): `recvmmsg` into buffers allocated once, up to [`BATCH`]
//! datagrams per call, with the sender's pid (`SCM_CREDENTIALS`) and the kernel's drop counter
//! (`SO_RXQ_OVFL`) from each message's control data.

use super::{DatagramSink, Received, Transport, BATCH, DGRAM_READER_BUDGET};
use crate::telemetry::{DropReason, Telemetry};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A datagram socket and how to read it. `fd_owner` keeps the socket open while the reader runs.
pub(super) struct DgramSocket {
    pub fd_owner: Box<dyn AsRawFd + Send>,
    pub transport: Transport,
    /// Read SCM_CREDENTIALS (SO_PASSCRED is on).
    pub creds: bool,
    /// Read the socket's drop counter (SO_RXQ_OVFL is on): the kernel's drops are counted as `kernel`.
    pub drops: bool,
}

/// Control buffer per message, in u64 for cmsghdr alignment; enough for one `ucred`.
const CTRL_WORDS: usize = 8;

/// While datagrams arrive faster than [`BUSY_RATE`] per second, a reader that emptied its socket naps before it
/// reads again, so that it is woken once per nap rather than once per datagram (measured at 2M metrics/s in
/// 8 KB datagrams: 12,000 wake-ups a second, a third of the reader's time in the scheduler). What arrives
/// during a nap waits in the socket's receive buffer, so the nap is as long as the granted buffer takes to
/// fill at [`NAP_FILL_RATE`], between [`NAP_MIN`] and [`NAP_MAX`]: 524 µs with 1 MiB, 2 ms with the 4 MiB
/// the agent asks for (each wake-up cost ~40 µs of the reader's CPU on the benchmark VM, so 500 µs naps were
/// half of the reader's time).
const NAP_MIN: Duration = Duration::from_micros(500);
const NAP_MAX: Duration = Duration::from_millis(2);
/// Arrival rate (bytes per second) a nap's receive buffer must absorb: above what one sender reaches over
/// loopback with 8 KB datagrams (~1 GB/s of payload on the benchmark VM; the kernel charges each datagram
/// about its size again in bookkeeping).
const NAP_FILL_RATE: u64 = 2_000_000_000;
/// Datagrams per second above which a reader naps, measured over [`RATE_WINDOW`].
const BUSY_RATE: u32 = 2_000;
const RATE_WINDOW: Duration = Duration::from_millis(100);
/// Smallest granted receive buffer with which a reader naps. With less (the kernel's default 208 KiB, when
/// `net.core.rmem_max` was not raised) the reader never naps.
const NAP_MIN_RCVBUF: usize = 1 << 20;

/// The nap of a reader whose socket was granted `rcvbuf` bytes (None: it does not nap).
fn nap_for(rcvbuf: usize) -> Option<Duration> {
    if rcvbuf < NAP_MIN_RCVBUF {
        return None;
    }
    let fill = Duration::from_micros(rcvbuf as u64 * 1_000_000 / NAP_FILL_RATE);
    Some(fill.clamp(NAP_MIN, NAP_MAX))
}

/// When a reader naps (see [`NAP_MIN`]).
struct Napper {
    nap: Option<Duration>,
    window_start: Instant,
    in_window: u32,
    busy: bool,
}

impl Napper {
    fn new(fd: libc::c_int) -> Napper {
        Napper {
            nap: rcvbuf(fd).and_then(nap_for),
            window_start: Instant::now(),
            in_window: 0,
            busy: false,
        }
    }

    /// After a read of `n` datagrams (of the `max` the call could take): naps when the socket was emptied
    /// while traffic is busy.
    fn after_read(&mut self, n: usize, max: usize) {
        let Some(nap) = self.nap else {
            return;
        };
        self.in_window = self.in_window.saturating_add(n as u32);
        let elapsed = self.window_start.elapsed();
        if elapsed >= RATE_WINDOW {
            let per_sec = u64::from(self.in_window) * 1000 / elapsed.as_millis().max(1) as u64;
            self.busy = per_sec >= u64::from(BUSY_RATE);
            self.window_start = Instant::now();
            self.in_window = 0;
        }
        if self.busy && n < max {
            std::thread::sleep(nap);
        }
    }
}

/// The receive buffer the kernel granted (it reports twice that: the doubled figure covers its bookkeeping),
/// read as the listener's setup reads it.
fn rcvbuf(fd: libc::c_int) -> Option<usize> {
    // SAFETY: fd is an open socket for the duration of this call (the reader owns it).
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    socket2::SockRef::from(&fd)
        .recv_buffer_size()
        .ok()
        .map(|b| b / 2)
}

/// Reads `socket` until `stop`, handing each batch of datagrams to `sink`.
// One function (~120 lines) on purpose: the buffers the kernel writes into through raw pointers and the
// slices read back from them live in one scope, so their lifetimes are checked in one place.
pub(super) fn dgram_loop(
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

    let mut napper = Napper::new(fd);
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
                payload = truncated(payload, transport, slot, telemetry);
            }
            bytes += len as u64;
            let (pid, drops) = if ctrl_words > 0 {
                read_cmsgs(&h.msg_hdr)
            } else {
                (None, None)
            };
            if let Some(total) = drops {
                count_kernel_drops(total, &mut kernel_drops, transport, telemetry);
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
        napper.after_read(n, batch);
    }
    // Keep the iovecs (pointed to by hdrs) and the buffers alive until here.
    drop(hdrs);
    drop(iovs);
    drop(ctrl);
    drop(buf);
}

/// A truncated datagram's complete lines (the cut one would carry a wrong value); counted and warned about.
#[cold]
fn truncated<'a>(
    payload: &'a [u8],
    transport: Transport,
    slot: usize,
    telemetry: &Telemetry,
) -> &'a [u8] {
    telemetry.count_drop(DropReason::DatagramTruncated, 1);
    crate::warn_every!(
        10,
        ?transport,
        buffer_size = slot,
        "a DogStatsD datagram was larger than dogstatsd_buffer_size; its last line was dropped"
    );
    memchr::memrchr(b'\n', payload).map_or(&[][..], |end| &payload[..end])
}

/// Counts the datagrams the kernel dropped since `seen`, from a socket's drop counter `total` (cumulative
/// and wrapping in the kernel).
fn count_kernel_drops(total: u32, seen: &mut u32, transport: Transport, telemetry: &Telemetry) {
    let new = total.wrapping_sub(*seen);
    if new > 0 && new < u32::MAX / 2 {
        telemetry.count_drop(DropReason::Kernel, u64::from(new));
        *seen = total;
        crate::warn_every!(
            60,
            ?transport,
            dropped = new,
            "the kernel dropped DogStatsD datagrams: the socket's receive buffer overflowed \
             (counted as dogstatsd.dropped.kernel; see docs/deploy.md on net.core.rmem_max)"
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn napper(allowed: bool) -> Napper {
        Napper {
            nap: nap_for(if allowed { 4 << 20 } else { 212_992 }),
            window_start: Instant::now() - RATE_WINDOW * 2,
            in_window: 0,
            busy: false,
        }
    }

    #[test]
    fn a_reader_naps_only_when_busy_drained_and_allowed() {
        // Well above BUSY_RATE over the window: busy.
        let mut n = napper(true);
        n.after_read(BUSY_RATE as usize, 32);
        assert!(n.busy);
        // Below it: not busy.
        let mut n = napper(true);
        n.after_read(1, 32);
        assert!(!n.busy);
        // With a small receive buffer the reader never naps, however busy.
        let mut n = napper(false);
        n.after_read(BUSY_RATE as usize, 32);
        assert!(!n.busy);
    }

    /// A nap lasts what the granted buffer takes to fill at 2 GB/s, within its bounds.
    #[test]
    fn a_nap_is_as_long_as_the_receive_buffer_can_hold() {
        assert_eq!(
            nap_for(212_992),
            None,
            "the kernel's default buffer: no nap"
        );
        assert_eq!(nap_for(1 << 20), Some(Duration::from_micros(524)));
        assert_eq!(nap_for(3 << 20), Some(Duration::from_micros(1572)));
        assert_eq!(nap_for(4 << 20), Some(NAP_MAX));
        assert_eq!(nap_for(64 << 20), Some(NAP_MAX));
    }
}
