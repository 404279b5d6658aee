//! The queue's unit tests: order and numbering, the byte bound, waking, and lent buffers kept or copied.

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

/// A reader's slot size in these tests (the default `dogstatsd_buffer_size`) and its lent buffer's size.
const SLOT: usize = 8192;
const LENT: usize = SLOT * crate::dogstatsd::listen::BATCH;

/// Fills `buf` as a reader would: datagram i (of `lens[i]` bytes, all `b'a' + i`) at slot i, from UDP; the
/// one at `unix` (if any) from the Unix datagram socket with pid 42.
fn received_into(buf: &mut [u8], lens: &[usize], unix: Option<usize>) -> Vec<LentPacket> {
    (lens.iter().enumerate())
        .map(|(i, &len)| {
            buf[i * SLOT..i * SLOT + len].fill(b'a' + i as u8);
            let unix = unix == Some(i);
            LentPacket {
                start: i * SLOT,
                len,
                transport: if unix {
                    Transport::UdsDgram
                } else {
                    Transport::Udp
                },
                pid: unix.then_some(42),
            }
        })
        .collect()
}

/// A datagram as a batch holds it: payload, transport, pid.
type Seen = (Vec<u8>, Transport, Option<i32>);

/// What a batch holds.
fn contents(b: &Batch) -> Vec<Seen> {
    b.received()
        .map(|r| (r.payload.to_vec(), r.transport, r.pid))
        .collect()
}

/// What [`received_into`] wrote, empty datagrams left out.
fn expected(lens: &[usize], unix: Option<usize>) -> Vec<Seen> {
    (lens.iter().enumerate())
        .filter(|(_, &len)| len > 0)
        .map(|(i, &len)| {
            let (transport, pid) = if unix == Some(i) {
                (Transport::UdsDgram, Some(42))
            } else {
                (Transport::Udp, None)
            };
            (vec![b'a' + i as u8; len], transport, pid)
        })
        .collect()
}

#[test]
fn a_dense_lent_batch_is_queued_without_a_copy() {
    let tel = Arc::new(Telemetry::default());
    let q = PacketQueue::new(1 << 20, tel.clone());
    let mut buf = q.lend(LENT);
    assert_eq!(buf.len(), LENT);
    let lent_at = buf.as_ptr();
    // 21 datagrams of 7000 bytes (147,000 of 262,144: over half), one of them empty, one from a Unix
    // socket.
    let mut lens = vec![7000; 22];
    lens[5] = 0;
    let packets = received_into(&mut buf, &lens, Some(21));
    assert!(
        q.receive_lent(buf, &packets).is_none(),
        "the queue keeps a dense buffer"
    );
    // The queue counts the whole buffer, not the payload.
    assert!(tel.dogstatsd.queue_bytes.get() as usize >= LENT);
    let b = q.pop(Duration::ZERO).unwrap();
    assert_eq!(b.buf.as_ptr(), lent_at, "queued as it was received");
    assert_eq!(contents(&b), expected(&lens, Some(21)));
    assert_eq!(tel.dogstatsd.queue_bytes.get(), 0);
    q.recycle(b);
    // Lent again: the same buffer, at its length, not written again.
    let again = q.lend(LENT);
    assert_eq!(again.as_ptr(), lent_at);
    assert_eq!(again.len(), LENT);
    assert_eq!(again[0], b'a', "a buffer lent again is not zeroed again");
}

#[test]
fn a_sparse_lent_batch_is_copied_and_the_buffer_goes_back() {
    let tel = Arc::new(Telemetry::default());
    let q = PacketQueue::new(1 << 20, tel.clone());
    let mut buf = q.lend(LENT);
    let lent_at = buf.as_ptr();
    let lens = [5, 0, 9];
    let packets = received_into(&mut buf, &lens, Some(2));
    let back = q
        .receive_lent(buf, &packets)
        .expect("a sparse buffer goes back to the reader");
    assert_eq!((back.as_ptr(), back.len()), (lent_at, LENT));
    let b = q.pop(Duration::ZERO).unwrap();
    assert_ne!(b.buf.as_ptr(), lent_at);
    assert_eq!(b.buf.capacity(), 14, "copied into a right-sized buffer");
    assert_eq!(contents(&b), expected(&lens, Some(2)));
    // Nothing at all: nothing queued, the buffer back.
    assert!(q
        .receive_lent(back, &received_into(&mut [0; 0], &[], None))
        .is_some());
    assert!(q.pop(Duration::ZERO).is_none());
    // Kept from exactly half of the capacity; never when the buffer could not go back to the pool.
    assert!(PacketQueue::keeps(LENT, LENT / 2));
    assert!(!PacketQueue::keeps(LENT, LENT / 2 - 1));
    assert!(PacketQueue::keeps(POOL_BUFFER_MAX, POOL_BUFFER_MAX));
    assert!(!PacketQueue::keeps(
        2 * POOL_BUFFER_MAX,
        2 * POOL_BUFFER_MAX
    ));
}

#[test]
fn a_lent_batch_that_does_not_fit_is_counted_and_given_back() {
    let tel = Arc::new(Telemetry::default());
    // Less than one lent buffer.
    let q = PacketQueue::new(200_000, tel.clone());
    let mut buf = q.lend(LENT);
    let lent_at = buf.as_ptr();
    let packets = received_into(&mut buf, &[8000; 32], None);
    let mut back = q
        .receive_lent(buf, &packets)
        .expect("a rejected buffer goes back to the reader");
    assert_eq!((back.as_ptr(), back.len()), (lent_at, LENT));
    assert_eq!(
        tel.dogstatsd.dropped.snapshot().get("queue_full"),
        Some(&32)
    );
    assert!(q.pop(Duration::ZERO).is_none());
    assert_eq!(tel.dogstatsd.queue_bytes.get(), 0);
    // The reader goes on with it: a small batch is copied and fits.
    let packets = received_into(&mut back, &[100], None);
    let back = q.receive_lent(back, &packets).unwrap();
    assert_eq!(back.as_ptr(), lent_at);
    assert_eq!(
        contents(&q.pop(Duration::ZERO).unwrap()),
        expected(&[100], None)
    );
    assert_eq!(
        tel.dogstatsd.dropped.snapshot().get("queue_full"),
        Some(&32)
    );
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

/// A helper takes nothing while the queue holds less than the backlog (the first worker's share), takes the
/// oldest batches once it holds more, and is woken by the push that brings it there.
#[test]
fn a_helper_takes_batches_only_from_a_backlog() {
    let tel = Arc::new(Telemetry::default());
    let q = Arc::new(PacketQueue::new(8 << 20, tel));
    assert_eq!(q.help_bytes(), HELP_BYTES);
    let payload = vec![b'x'; 64 << 10];
    q.receive(&[dgram(&payload)]);
    let mut out = Vec::new();
    q.help_many(&mut out, Duration::ZERO, 1 << 20);
    assert!(out.is_empty(), "a helper took a batch below the backlog");
    // A helper waiting (for up to 30 s) is woken by the push that makes the backlog.
    let q2 = q.clone();
    let helper = std::thread::spawn(move || {
        let mut out = Vec::new();
        q2.help_many(&mut out, Duration::from_secs(30), 256 << 10);
        out.iter().map(|b| b.seq()).collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(50));
    let batches = HELP_BYTES / payload.len();
    for _ in 0..batches {
        q.receive(&[dgram(&payload)]);
    }
    let seqs = helper.join().unwrap();
    assert!(!seqs.is_empty() && seqs.len() <= 4, "{seqs:?}");
    assert_eq!(seqs[0], 0, "the oldest batch first: {seqs:?}");
    // The first worker takes the rest, backlog or not.
    q.pop_many(&mut out, Duration::ZERO, usize::MAX);
    assert_eq!(out.len(), batches + 1 - seqs.len());
}

/// A small queue's backlog is a quarter of it; a helper waiting for one stops waiting when the queue closes,
/// and then drains what is left.
#[test]
fn a_helper_drains_a_closed_queue() {
    let tel = Arc::new(Telemetry::default());
    let q = Arc::new(PacketQueue::new(64 << 10, tel));
    assert_eq!(q.help_bytes(), 16 << 10);
    q.receive(&[dgram(b"a:1|c")]);
    let q2 = q.clone();
    let helper = std::thread::spawn(move || {
        let (mut got, mut out) = (0, Vec::new());
        while !q2.is_finished() {
            q2.help_many(&mut out, Duration::from_secs(30), 1 << 20);
            got += out.drain(..).map(|b| b.len()).sum::<usize>();
        }
        got
    });
    std::thread::sleep(Duration::from_millis(50));
    q.close();
    assert_eq!(helper.join().unwrap(), 1);
}
