//! The queue between the socket readers and the processing workers, bounded in bytes.
//!
//! Why: a reader that parses and aggregates inline stops reading whenever processing pauses (a burst of new
//! contexts, a flush step, the scheduler), and then only the kernel's receive buffer (a few dozen datagrams)
//! stands between the sender and a drop. Here a reader copies what one `recvmmsg` returned into one pooled
//! buffer and pushes it: a memcpy and a short critical section, never a wait on processing. Workers pop
//! batches, parse and aggregate them, and hand the buffer back to the pool.
//!
//! Memory bound: the bytes held by queued batches (their buffers' capacity) never exceed `max_bytes`; a batch
//! that does not fit is dropped whole and its datagrams are counted as `queue_full` (never a wait, never
//! growth). Spare buffers are kept for reuse up to [`POOL_BUFFERS`] of at most [`POOL_BUFFER_MAX`] bytes each.
//!
//! Waking: a push wakes a worker only when one is idle (no traffic for [`BUSY_FOR`]) or when the queue holds
//! more than [`WAKE_BYTES`]. While traffic flows, a worker that finds the queue empty naps for [`NAP`] and then
//! takes everything that came meanwhile ([`PacketQueue::pop_many`]), so a steady stream of small reads costs a
//! wake-up per millisecond per worker, not a futex wake and two context switches per datagram (measured: the
//! reader spent 22% of its time in `futex_wake` and the workers switched 4,000 times a second each at 2M
//! metrics/s). A burst still wakes every worker at once through [`WAKE_BYTES`].
//!
//! Why a mutex and a condition variable rather than a channel crate: the bound is in bytes (a channel bounds
//! the number of items), the wake-up policy above needs to see who waits and how, and the pool of buffers
//! shares the same lock.

use super::listen::{DatagramSink, Received, Transport};
use crate::telemetry::{DropReason, Telemetry};
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Spare buffers kept for reuse.
pub const POOL_BUFFERS: usize = 16;
/// Largest buffer kept for reuse (a batch of 32 datagrams of 8 KB is 256 KiB).
pub const POOL_BUFFER_MAX: usize = 1 << 20;
/// How long a worker that found the queue empty waits while traffic flows, before it looks again.
pub const NAP: Duration = Duration::from_millis(1);
/// Traffic "flows" for this long after a push: until then, empty-handed workers nap instead of sleeping.
pub const BUSY_FOR: Duration = Duration::from_millis(50);
/// Queued bytes past which a push wakes a napping worker at once (a burst: 64 datagrams of 8 KB).
pub const WAKE_BYTES: usize = 512 << 10;

/// One datagram (or stream frame) inside a [`Batch`]'s buffer.
#[derive(Clone, Copy, Debug)]
struct Packet {
    start: u32,
    len: u32,
    transport: Transport,
    pid: Option<i32>,
}

/// Datagrams read together, copied into one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    buf: Vec<u8>,
    packets: Vec<Packet>,
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

    fn clear(&mut self) {
        self.buf.clear();
        self.packets.clear();
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
    pool: Mutex<Vec<Batch>>,
    max_bytes: usize,
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
            pool: Mutex::new(Vec::new()),
            max_bytes,
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
        self.telemetry.dogstatsd.queue_bytes.set(bytes as i64);
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
    }

    /// Gives a processed batch's buffer back for reuse.
    pub fn recycle(&self, mut batch: Batch) {
        if batch.buf.capacity() > POOL_BUFFER_MAX {
            return;
        }
        batch.clear();
        let mut pool = self.pool.lock();
        if pool.len() < POOL_BUFFERS {
            pool.push(batch);
        }
    }

    fn take_buffer(&self) -> Batch {
        self.pool.lock().pop().unwrap_or_default()
    }

    /// Queues `batch`; when it does not fit, drops it and counts its datagrams as `queue_full`.
    fn push(&self, mut batch: Batch) {
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
            self.recycle(batch);
            return;
        }
        inner.bytes += size;
        batch.seq = inner.next_seq;
        inner.next_seq += 1;
        let bytes = inner.bytes;
        inner.queue.push_back(batch);
        inner.last_push = Some(Instant::now());
        let wake = inner.idle > 0 || bytes >= WAKE_BYTES;
        drop(inner);
        self.telemetry.dogstatsd.queue_bytes.set(bytes as i64);
        if wake {
            self.ready.notify_one();
        }
    }
}

impl DatagramSink for PacketQueue {
    fn receive(&self, batch: &[Received<'_>]) {
        let total: usize = batch.iter().map(|r| r.payload.len()).sum();
        if total == 0 {
            return;
        }
        let mut b = self.take_buffer();
        b.buf.reserve_exact(total);
        b.packets.reserve_exact(batch.len());
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
        self.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dgram(payload: &[u8]) -> Received<'_> {
        Received {
            payload,
            transport: Transport::Udp,
            pid: None,
        }
    }

    #[test]
    fn batches_come_out_in_order_with_their_datagrams() {
        let tel = Arc::new(Telemetry::default());
        let q = PacketQueue::new(1 << 20, tel.clone());
        q.receive(&[dgram(b"a:1|c"), dgram(b""), dgram(b"b:2|c")]);
        q.receive(&[Received {
            payload: b"c:3|c",
            transport: Transport::UdsDgram,
            pid: Some(7),
        }]);
        assert!(tel.dogstatsd.queue_bytes.get() > 0);
        let b = q.pop(Duration::ZERO).unwrap();
        let got: Vec<_> = b.received().map(|r| r.payload.to_vec()).collect();
        assert_eq!(got, [b"a:1|c".to_vec(), b"b:2|c".to_vec()]);
        let first = b.seq();
        q.recycle(b);
        let b = q.pop(Duration::ZERO).unwrap();
        assert_eq!(b.seq(), first + 1, "batches are numbered in arrival order");
        let r: Vec<_> = b.received().collect();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].transport, r[0].pid), (Transport::UdsDgram, Some(7)));
        assert!(q.pop(Duration::ZERO).is_none());
        assert_eq!(tel.dogstatsd.queue_bytes.get(), 0);
        assert!(!q.is_finished());
        q.close();
        assert!(q.is_finished());
    }

    #[test]
    fn a_full_queue_drops_whole_batches_and_counts_their_datagrams() {
        let tel = Arc::new(Telemetry::default());
        let q = PacketQueue::new(3000, tel.clone());
        let payload = vec![b'x'; 1000];
        for _ in 0..5 {
            q.receive(&[dgram(&payload), dgram(&payload)]);
        }
        // 2000 bytes of buffer (plus the packet records) per batch: only the first fits.
        assert_eq!(tel.dogstatsd.dropped.snapshot().get("queue_full"), Some(&8));
        assert!(tel.dogstatsd.queue_bytes.get() as usize <= 3000);
        assert_eq!(q.pop(Duration::ZERO).unwrap().len(), 2);
        assert!(q.pop(Duration::ZERO).is_none());
    }

    #[test]
    fn pop_many_takes_what_came_up_to_the_byte_limit_in_order() {
        let tel = Arc::new(Telemetry::default());
        let q = PacketQueue::new(1 << 20, tel.clone());
        let payload = vec![b'x'; 1000];
        for _ in 0..3 {
            q.receive(&[dgram(&payload)]);
        }
        let mut out = Vec::new();
        // The limit is reached inside the second batch: two are taken, the third stays.
        q.pop_many(&mut out, Duration::ZERO, 1500);
        assert_eq!(out.len(), 2);
        assert!(out[0].seq() < out[1].seq());
        out.clear();
        // At least one batch, whatever the limit.
        q.pop_many(&mut out, Duration::ZERO, 1);
        assert_eq!(out.len(), 1);
        out.clear();
        q.pop_many(&mut out, Duration::ZERO, 1 << 20);
        assert!(out.is_empty());
        assert_eq!(tel.dogstatsd.queue_bytes.get(), 0);
    }

    /// While traffic flows a push does not wake a napping worker, yet what was pushed is taken at the worker's
    /// next look; an idle worker is woken by the next push.
    #[test]
    fn napping_and_idle_workers_both_get_every_push() {
        let tel = Arc::new(Telemetry::default());
        let q = Arc::new(PacketQueue::new(1 << 20, tel));
        let q2 = q.clone();
        let worker = std::thread::spawn(move || {
            let (mut got, mut out) = (0, Vec::new());
            while !q2.is_finished() {
                q2.pop_many(&mut out, Duration::from_secs(30), 1 << 20);
                got += out.drain(..).map(|b| b.len()).sum::<usize>();
            }
            got
        });
        for i in 0..200 {
            q.receive(&[dgram(b"a:1|c")]);
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        // Past BUSY_FOR without a push, the worker sleeps until woken.
        std::thread::sleep(BUSY_FOR * 2);
        q.receive(&[dgram(b"a:1|c"), dgram(b"a:1|c")]);
        q.close();
        assert_eq!(worker.join().unwrap(), 202);
    }

    #[test]
    fn a_waiting_worker_wakes_for_a_push_and_for_close() {
        let tel = Arc::new(Telemetry::default());
        let q = Arc::new(PacketQueue::new(1 << 20, tel));
        let q2 = q.clone();
        let worker = std::thread::spawn(move || {
            let mut got = 0;
            while !q2.is_finished() {
                if let Some(b) = q2.pop(Duration::from_secs(30)) {
                    got += b.len();
                }
            }
            got
        });
        q.receive(&[dgram(b"a:1|c")]);
        q.receive(&[dgram(b"a:1|c"), dgram(b"a:1|c")]);
        q.close();
        assert_eq!(worker.join().unwrap(), 3);
    }
}
