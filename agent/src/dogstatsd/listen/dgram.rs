//! Reading a datagram socket (UDP or Unix datagram): `recvmmsg`, up to [`BATCH`] datagrams per call, with the
//! sender's pid (`SCM_CREDENTIALS`) and the kernel's drop counter (`SO_RXQ_OVFL`) from each message's control
//! data.
//!
//! The datagrams are received into a buffer the sink lent ([`DatagramSink::lend`]), datagram i at slot i
//! (`slot` bytes each), and the buffer is handed over whole with where each datagram lies
//! ([`DatagramSink::receive_lent`]): the agent's queue keeps a well-filled buffer as it is, without copying
//! it (at 2M metrics/s in 8 KB datagrams that copy was 4.3% of the agent's CPU), and gives a sparse one back
//! after copying out of it. When the sink keeps the buffer the reader asks for another; it never holds more
//! than one. The control buffers and message headers are the reader's own, allocated once.

use super::{DatagramSink, LentPacket, Transport, BATCH, DGRAM_READER_BUDGET};
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

/// Reads `socket` until `stop`, handing each batch of datagrams to `sink` in the buffer it lent.
// One function (~130 lines) on purpose: the buffer the kernel writes into through raw pointers, the iovecs
// pointing into it and its handing over live in one scope, so their lifetimes are checked in one place.
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
    // Datagram i is received at buf[i * slot..]: the lent buffer holds `batch` slots.
    let need = slot * batch;
    let mut buf = sink.lend(need);

    // The control buffers and headers are the reader's own, allocated once. The iovecs are pointed into the
    // current lent buffer before each recvmmsg (see there).
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
    let mut iovs = vec![
        libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        batch
    ];
    let mut hdrs: Vec<libc::mmsghdr> = (0..batch)
        .map(|i| {
            // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid value.
            let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
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
        if buf.len() < need {
            // A sink may lend less than asked: the kernel must never write past the end.
            buf.resize(need, 0);
        }
        // Point the iovecs into this round's buffer: the previous one may have been handed over. From here to
        // the end of recvmmsg `buf` is neither moved, nor resized, nor read or written by this code: the
        // kernel writes into it through these raw pointers only.
        let base = buf.as_mut_ptr();
        for (i, (h, iov)) in hdrs.iter_mut().zip(iovs.iter_mut()).enumerate() {
            // SAFETY: i * slot + slot <= need <= buf.len(): the slot lies inside `buf`.
            iov.iov_base = unsafe { base.add(i * slot) }.cast();
            iov.iov_len = slot;
            h.msg_hdr.msg_iov = iov;
            h.msg_len = 0;
            h.msg_hdr.msg_controllen = ctrl_len as _;
            h.msg_hdr.msg_flags = 0;
        }
        // SAFETY: hdrs holds `batch` valid headers whose iovecs (in `iovs`, not moved since they were set
        // above) point at disjoint `slot`-byte slots of `buf` and whose control buffers point into `ctrl`, all
        // alive for the whole call; fd is open for the life of `socket`.
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
        // recvmmsg has returned: the kernel is done with `buf`, which is read through ordinary slices below.
        let n = (n as usize).min(batch);
        let mut packets = [LentPacket {
            start: 0,
            len: 0,
            transport,
            pid: None,
        }; BATCH];
        let mut bytes = 0u64;
        for (i, h) in hdrs[..n].iter().enumerate() {
            let start = i * slot;
            let mut len = (h.msg_len as usize).min(slot);
            bytes += len as u64;
            if h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                len = truncated(&buf[start..start + len], transport, slot, telemetry);
            }
            let (pid, drops) = if ctrl_words > 0 {
                read_cmsgs(&h.msg_hdr)
            } else {
                (None, None)
            };
            if let Some(total) = drops {
                count_kernel_drops(total, &mut kernel_drops, transport, telemetry);
            }
            packets[i] = LentPacket {
                start,
                len,
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
        // The buffer goes to the sink; the iovecs still point into it but are not used again before they are
        // pointed into the buffer received into next.
        buf = match sink.receive_lent(std::mem::take(&mut buf), &packets[..n]) {
            Some(back) => back,
            None => sink.lend(need),
        };
        napper.after_read(n, batch);
    }
    // Keep the iovecs (pointed to by hdrs) and the control buffers alive until here.
    drop(hdrs);
    drop(iovs);
    drop(ctrl);
}

/// The length of a truncated datagram's complete lines (the cut one would carry a wrong value); counted and
/// warned about.
#[cold]
fn truncated(payload: &[u8], transport: Transport, slot: usize, telemetry: &Telemetry) -> usize {
    telemetry.count_drop(DropReason::DatagramTruncated, 1);
    crate::warn_every!(
        10,
        ?transport,
        buffer_size = slot,
        "a DogStatsD datagram was larger than dogstatsd_buffer_size; its last line was dropped"
    );
    memchr::memrchr(b'\n', payload).unwrap_or(0)
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
