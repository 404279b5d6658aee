//! The queue between the socket readers and the processing workers, bounded in bytes.
//!
//! Why: a reader that parses and aggregates inline stops reading whenever processing pauses (a burst of new
//! contexts, a flush step, the scheduler), and then only the kernel's receive buffer (a few dozen datagrams)
//! stands between the sender and a drop. Here a reader pushes what one `recvmmsg` returned as one batch: a
//! short critical section, never a wait on processing. Workers pop batches, parse and aggregate them, and hand
//! the buffers back to the pool.
//!
//! No copy when a batch is dense: a datagram reader receives into a buffer the queue lent it
//! ([`DatagramSink::lend`], from the pool) and hands it back with the batch ([`DatagramSink::receive_lent`]).
//! When the payloads fill at least half of that buffer's capacity ([`PacketQueue::keeps`]) the buffer itself
//! is queued, each datagram where the kernel put it, and the reader is lent another; otherwise (a few small
//! datagrams: the buffer would hold many times their size in the queue) they are copied into a right-sized
//! pooled buffer and the lent buffer goes back to the reader. At 2M metrics/s in 8 KB datagrams that copy was
//! 4.3% of the agent's CPU. The stream reader's frames (and any sink caller using [`DatagramSink::receive`])
//! are always copied.
//!
//! Memory bound: the bytes held by queued batches (their buffers' capacity, so a kept lent buffer counts
//! whole) never exceed `max_bytes`; a batch that does not fit is dropped whole and its datagrams are counted as
//! `queue_full` (never a wait, never growth; a lent buffer is then given back to its reader). Spare buffers
//! are kept for reuse up to [`POOL_BUFFERS`] of at most [`POOL_BUFFER_MAX`] bytes each, half for copies and
//! half for lending; each datagram reader holds one lent buffer besides.
//!
//! Waking: a push wakes a worker only when one is idle (no traffic for [`BUSY_FOR`]) or when the queue holds
//! more than [`WAKE_BYTES`]. While traffic flows, a worker that finds the queue empty naps for [`NAP`] and then
//! takes everything that came meanwhile ([`PacketQueue::pop_many`]), so a steady stream of small reads costs a
//! wake-up per millisecond per worker, not a futex wake and two context switches per datagram (measured: the
//! reader spent 22% of its time in `futex_wake` and the workers switched 4,000 times a second each at 2M
//! metrics/s). A burst wakes the first worker at once through [`WAKE_BYTES`], and the helpers (below) through
//! [`HELP_BYTES`].
//!
//! Helpers: the first worker takes whatever comes; the others (helpers, [`PacketQueue::help_many`]) take
//! batches only while the queue holds a backlog of at least [`PacketQueue::help_bytes`], and a push wakes one
//! when it brings the queue there. So at a rate one worker keeps up with, one core does all the work: measured
//! at 2M metrics/s over 100k contexts, a second worker taking half the batches cost ~20% more CPU per metric
//! (174 against 214 ns: every context's cache lines travel between the cores, and both wake up to nap). A
//! burst, or a rate one worker cannot keep up with, builds the backlog and every worker works.
//!
//! Why a mutex and a condition variable rather than a channel crate: the bound is in bytes (a channel bounds
//! the number of items), the wake-up policy above needs to see who waits and how, and the pool of buffers
//! shares the same lock.

use super::listen::{DatagramSink, LentPacket, Received, Transport};
use crate::telemetry::{DropReason, Telemetry};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Spare buffers kept for reuse: half of them for copies, half for lending to readers (kept apart, so that
/// small copy buffers never crowd out the lent ones, nor the other way round).
pub const POOL_BUFFERS: usize = 16;
/// Largest buffer kept for reuse (a batch of 32 datagrams of 8 KB is 256 KiB). A lent buffer larger than
/// this (`dogstatsd_buffer_size` over 32 KiB) is never queued: its batches are copied, so it is not
/// reallocated for each batch.
pub const POOL_BUFFER_MAX: usize = 1 << 20;
/// How long a worker that found the queue empty waits while traffic flows, before it looks again.
pub const NAP: Duration = Duration::from_millis(1);
/// Traffic "flows" for this long after a push: until then, empty-handed workers nap instead of sleeping.
pub const BUSY_FOR: Duration = Duration::from_millis(50);
/// Queued bytes past which a push wakes a napping worker at once (a burst: 64 datagrams of 8 KB).
pub const WAKE_BYTES: usize = 512 << 10;
/// The backlog past which helpers take batches (see the module docs; a quarter of the queue when that is less):
/// four takes of 256 KiB, a few milliseconds of work.
pub const HELP_BYTES: usize = 1 << 20;

/// One datagram (or stream frame) inside a [`Batch`]'s buffer.
#[derive(Clone, Copy, Debug)]
struct Packet {
    start: u32,
    len: u32,
    transport: Transport,
    pid: Option<i32>,
}

/// Datagrams read together, in one buffer: copied into it, or received into it (a lent buffer kept whole).
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    packets: Vec<Packet>,
    /// `buf` was lent to a reader and received into: it goes back to the pool's lending side, at its length.
    lent: bool,
    /// Position in the queue (numbered as batches go in), so that what several workers process can be put back
    /// in arrival order where order matters (events and service checks shown on the local page).
    seq: u64,
}

impl Batch {
    /// The datagrams, as the readers received them.
    pub fn received(&self) -> impl Iterator<Item = Received<'_>> + '_ {
        self.packets.iter().map(|p| Received {
            payload: &self.buf[p.start as usize..(p.start + p.len) as usize],
            transport: p.transport,
            pid: p.pid,
        })
    }

    /// The batch's number in arrival order across every reader of this queue.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Number of datagrams.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Memory this batch holds.
    fn footprint(&self) -> usize {
        self.buf.capacity() + self.packets.capacity() * std::mem::size_of::<Packet>()
    }
}

/// Spare buffers (see [`POOL_BUFFERS`]).
#[derive(Debug, Default)]
struct Pool {
    /// For copies: empty, at most [`POOL_BUFFERS`] / 2.
    copy: Vec<Vec<u8>>,
    /// For lending: at the length they were lent with (initialised bytes, so lending one again writes
    /// nothing), at most [`POOL_BUFFERS`] / 2.
    lend: Vec<Vec<u8>>,
    /// Empty packet lists, at most [`POOL_BUFFERS`].
    packets: Vec<Vec<Packet>>,
}

impl Pool {
    /// Keeps an emptied packet list for reuse, up to [`POOL_BUFFERS`].
    fn keep_packets(&mut self, packets: Vec<Packet>) {
        if self.packets.len() < POOL_BUFFERS {
            self.packets.push(packets);
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Batch>,
    /// Sum of the queued batches' footprints.
    bytes: usize,
    closed: bool,
    /// The next batch's [`Batch::seq`].
    next_seq: u64,
    /// Workers waiting for a push to wake them (no traffic lately).
    idle: usize,
    /// When the last push came.
    last_push: Option<Instant>,
}

/// The bounded queue (see the module docs). Readers push through [`DatagramSink::receive`].
#[derive(Debug)]
pub struct PacketQueue {
    inner: Mutex<Inner>,
    ready: Condvar,
    /// Where helpers wait for a backlog.
    help: Condvar,
    pool: Mutex<Pool>,
    max_bytes: usize,
    help_bytes: usize,
    telemetry: Arc<Telemetry>,
}

impl PacketQueue {
    pub fn new(max_bytes: usize, telemetry: Arc<Telemetry>) -> Self {
        telemetry
            .dogstatsd
            .queue_max_bytes
            .set(i64::try_from(max_bytes).unwrap_or(i64::MAX));
        PacketQueue {
            inner: Mutex::new(Inner::default()),
            ready: Condvar::new(),
            help: Condvar::new(),
            pool: Mutex::new(Pool::default()),
            max_bytes,
            help_bytes: HELP_BYTES.min(max_bytes / 4).max(1),
            telemetry,
        }
    }

    /// Takes the next batch, waiting up to `wait` for one. `None` when none came in time, or when the queue
    /// is closed and empty (see [`PacketQueue::is_finished`]).
    pub fn pop(&self, wait: Duration) -> Option<Batch> {
        let mut out = Vec::with_capacity(1);
        self.pop_many(&mut out, wait, 1);
        out.pop()
    }

    /// Moves queued batches into `out`, oldest first, until they hold `max_bytes` (at least one batch). When
    /// the queue is empty it waits first: [`NAP`] while traffic flows (a push does not wake a napping worker
    /// unless [`WAKE_BYTES`] are queued), else up to `idle_wait` (the next push wakes it). `out` stays empty
    /// when nothing came in time, or when the queue is closed and empty (see [`PacketQueue::is_finished`]).
    pub fn pop_many(&self, out: &mut Vec<Batch>, idle_wait: Duration, max_bytes: usize) {
        let mut inner = self.inner.lock();
        if inner.queue.is_empty() && !inner.closed {
            let flowing = inner.last_push.is_some_and(|t| t.elapsed() < BUSY_FOR);
            if flowing {
                self.ready.wait_for(&mut inner, NAP.min(idle_wait));
            } else {
                inner.idle += 1;
                self.ready.wait_for(&mut inner, idle_wait);
                inner.idle -= 1;
            }
        }
        Self::take(inner, out, max_bytes, &self.telemetry);
    }

    /// As [`PacketQueue::pop_many`], for a helper: takes batches only while the queue holds at least
    /// [`PacketQueue::help_bytes`] (or is closed), else waits up to `idle_wait` for a push to bring it there.
    pub fn help_many(&self, out: &mut Vec<Batch>, idle_wait: Duration, max_bytes: usize) {
        let mut inner = self.inner.lock();
        if inner.bytes < self.help_bytes && !inner.closed {
            self.help.wait_for(&mut inner, idle_wait);
            if inner.bytes < self.help_bytes && !inner.closed {
                return;
            }
        }
        Self::take(inner, out, max_bytes, &self.telemetry);
    }

    /// The backlog in bytes past which helpers take batches.
    pub fn help_bytes(&self) -> usize {
        self.help_bytes
    }

    /// Moves queued batches into `out`, oldest first, until they hold `max_bytes` (at least one batch).
    fn take(
        mut inner: parking_lot::MutexGuard<'_, Inner>,
        out: &mut Vec<Batch>,
        max_bytes: usize,
        telemetry: &Telemetry,
    ) {
        let mut taken = 0;
        while taken < max_bytes.max(1) {
            let Some(batch) = inner.queue.pop_front() else {
                break;
            };
            let size = batch.footprint();
            inner.bytes -= size;
            taken += size;
            out.push(batch);
        }
        if taken == 0 {
            return;
        }
        let bytes = inner.bytes;
        drop(inner);
        telemetry.dogstatsd.queue_bytes.set(bytes as i64);
    }

    /// True once the queue is closed and every batch has been taken: the workers can stop.
    pub fn is_finished(&self) -> bool {
        let inner = self.inner.lock();
        inner.closed && inner.queue.is_empty()
    }

    /// No more pushes are expected (the readers have stopped): wakes every waiting worker so that they drain
    /// what is left and stop. Later pushes are still taken.
    pub fn close(&self) {
        self.inner.lock().closed = true;
        self.ready.notify_all();
        self.help.notify_all();
    }

    /// Gives a processed batch's buffers back for reuse.
    pub fn recycle(&self, batch: Batch) {
        let Batch {
            mut buf,
            mut packets,
            lent,
            ..
        } = batch;
        packets.clear();
        if !lent {
            buf.clear();
        }
        // Declared after the buffers: what is not kept is freed once the lock is released.
        let mut pool = self.pool.lock();
        pool.keep_packets(packets);
        let spares = if lent { &mut pool.lend } else { &mut pool.copy };
        if buf.capacity() <= POOL_BUFFER_MAX && spares.len() < POOL_BUFFERS / 2 {
            spares.push(buf);
        }
    }

    fn recycle_packets(&self, mut packets: Vec<Packet>) {
        packets.clear();
        self.pool.lock().keep_packets(packets);
    }

    /// A spare buffer for a copy, and a packet list.
    fn take_buffer(&self) -> Batch {
        let mut pool = self.pool.lock();
        Batch {
            buf: pool.copy.pop().unwrap_or_default(),
            packets: pool.packets.pop().unwrap_or_default(),
            ..Batch::default()
        }
    }

    fn take_packets(&self) -> Vec<Packet> {
        self.pool.lock().packets.pop().unwrap_or_default()
    }

    /// Whether a lent buffer of `capacity` bytes holding `payload` bytes is queued as it is: when the payloads
    /// fill at least half of it (so a queued batch never holds more than twice its payload) and it can go
    /// back to the pool afterwards.
    fn keeps(capacity: usize, payload: usize) -> bool {
        capacity <= POOL_BUFFER_MAX && payload >= capacity.div_ceil(2)
    }

    /// Queues `batch`; when it does not fit, counts its datagrams as `queue_full` and gives it back.
    fn push(&self, mut batch: Batch) -> Result<(), Batch> {
        let size = batch.footprint();
        let mut inner = self.inner.lock();
        if inner.bytes + size > self.max_bytes {
            drop(inner);
            self.telemetry
                .count_drop(DropReason::QueueFull, batch.len() as u64);
            crate::warn_every!(
                10,
                max_bytes = self.max_bytes,
                "the DogStatsD queue is full (the workers cannot keep up): datagrams are dropped and counted \
                 as queue_full; raise dogstatsd_queue_bytes or dogstatsd_pipeline_count"
            );
            return Err(batch);
        }
        inner.bytes += size;
        batch.seq = inner.next_seq;
        inner.next_seq += 1;
        let bytes = inner.bytes;
        inner.queue.push_back(batch);
        inner.last_push = Some(Instant::now());
        let wake = inner.idle > 0 || bytes >= WAKE_BYTES;
        let help = bytes >= self.help_bytes;
        drop(inner);
        self.telemetry.dogstatsd.queue_bytes.set(bytes as i64);
        if wake {
            self.ready.notify_one();
        }
        if help {
            self.help.notify_one();
        }
        Ok(())
    }

    /// Copies `batch` (`count` payloads of `total` bytes) into a pooled buffer and queues it; empty payloads
    /// are left out.
    fn copy_in<'a>(&self, batch: impl Iterator<Item = Received<'a>>, count: usize, total: usize) {
        let mut b = self.take_buffer();
        b.buf.reserve_exact(total);
        b.packets.reserve_exact(count);
        for r in batch {
            if r.payload.is_empty() {
                continue;
            }
            b.packets.push(Packet {
                start: b.buf.len() as u32,
                len: r.payload.len() as u32,
                transport: r.transport,
                pid: r.pid,
            });
            b.buf.extend_from_slice(r.payload);
        }
        if let Err(b) = self.push(b) {
            self.recycle(b);
        }
    }
}

impl DatagramSink for PacketQueue {
    /// Copies the payloads into a pooled buffer and queues it.
    fn receive(&self, batch: &[Received<'_>]) {
        let total: usize = batch.iter().map(|r| r.payload.len()).sum();
        if total == 0 {
            return;
        }
        self.copy_in(batch.iter().copied(), batch.len(), total);
    }

    /// A spare lent buffer whose capacity fits `len` best, else a new one; grown to `len` bytes only when it
    /// is shorter (a buffer lent before keeps its length, so it is not written again).
    fn lend(&self, len: usize) -> Vec<u8> {
        let spare = {
            let mut pool = self.pool.lock();
            let best = pool
                .lend
                .iter()
                .enumerate()
                .filter(|(_, b)| b.capacity() >= len)
                .min_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i);
            best.map(|i| pool.lend.swap_remove(i))
        };
        match spare {
            Some(mut buf) => {
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                buf
            }
            None => vec![0; len],
        }
    }

    /// Queues `buf` itself when the payloads fill at least half of it ([`PacketQueue::keeps`]; `None`: the
    /// reader asks for another), else copies them as [`DatagramSink::receive`] does and gives `buf` back. A
    /// kept buffer that does not fit in the queue is given back too, its datagrams counted as `queue_full`.
    fn receive_lent(&self, buf: Vec<u8>, packets: &[LentPacket]) -> Option<Vec<u8>> {
        let total: usize = packets.iter().map(|p| p.len).sum();
        if total == 0 {
            return Some(buf);
        }
        if !Self::keeps(buf.capacity(), total) {
            let payloads = packets.iter().map(|p| Received {
                payload: &buf[p.start..p.start + p.len],
                transport: p.transport,
                pid: p.pid,
            });
            self.copy_in(payloads, packets.len(), total);
            return Some(buf);
        }
        let mut b = Batch {
            buf,
            packets: self.take_packets(),
            lent: true,
            seq: 0,
        };
        b.packets.reserve_exact(packets.len());
        for p in packets.iter().filter(|p| p.len > 0) {
            // Checked here, where a wrong packet is the reader's fault, rather than in a worker. Within a
            // buffer of at most POOL_BUFFER_MAX bytes, offsets fit in u32.
            assert!(
                p.start
                    .checked_add(p.len)
                    .is_some_and(|end| end <= b.buf.len()),
                "a lent packet lies outside its buffer"
            );
            b.packets.push(Packet {
                start: p.start as u32,
                len: p.len as u32,
                transport: p.transport,
                pid: p.pid,
            });
        }
        match self.push(b) {
            Ok(()) => None,
            Err(Batch { buf, packets, .. }) => {
                self.recycle_packets(packets);
                Some(buf)
            }
        }
    }
}

#[cfg(test)]
mod tests;
