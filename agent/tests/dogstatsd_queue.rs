//! The agent's queue behind a real datagram reader: the reader receives into buffers the queue lends, the
//! queue keeps the full ones as they are, and every datagram comes out as it was sent.

use kelpie_agent::dogstatsd::queue::PacketQueue;
use kelpie_agent::dogstatsd::{DatagramSink, LentPacket, ListenerConfig, Listeners, Received};
use kelpie_agent::telemetry::Telemetry;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

/// Hands everything to the agent's queue, holding the reader on its first batch so that the next ones fill
/// the buffer the queue lent; counts the buffers the queue kept.
struct HeldQueue {
    queue: PacketQueue,
    held: AtomicBool,
    kept: AtomicUsize,
}

impl DatagramSink for HeldQueue {
    fn receive(&self, batch: &[Received<'_>]) {
        self.queue.receive(batch);
    }

    fn lend(&self, len: usize) -> Vec<u8> {
        self.queue.lend(len)
    }

    fn receive_lent(&self, buf: Vec<u8>, packets: &[LentPacket]) -> Option<Vec<u8>> {
        if !self.held.swap(true, Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(300));
        }
        let back = self.queue.receive_lent(buf, packets);
        if back.is_none() {
            self.kept.fetch_add(1, Ordering::SeqCst);
        }
        back
    }
}

/// Full batches are queued in the buffer they were received into, and the reader receives the next ones into
/// another: every datagram comes out of the queue as sent, in order.
#[test]
fn the_queue_keeps_full_lent_buffers_and_every_datagram_comes_out_intact() {
    let telemetry = Arc::new(Telemetry::default());
    let sink = Arc::new(HeldQueue {
        queue: PacketQueue::new(16 << 20, telemetry.clone()),
        held: false.into(),
        kept: 0.into(),
    });
    // `udp_port: 0` turns UDP off: a free port is asked for first (the probing socket closed before binding).
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listeners = Listeners::start(
        ListenerConfig {
            udp_port: port,
            bind_host: "127.0.0.1".into(),
            // Slots of 1 KiB: a lent buffer of 32 KiB, kept from 16 datagrams of 1000 bytes.
            buffer_size: 1024,
            so_rcvbuf: 1 << 20,
            udp_sockets: 1,
            ..ListenerConfig::default()
        },
        telemetry.clone(),
        sink.clone(),
    )
    .unwrap();
    let addr = listeners.udp_local_addr().expect("UDP is on");
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let datagram = |k: usize| {
        let mut d = format!("{k:04}").into_bytes();
        d.resize(1000, b'a' + (k % 26) as u8);
        d
    };
    client.send_to(&datagram(0), addr).unwrap();
    // While the reader is held on the first datagram, 63 more wait in the socket: two full batches follow.
    let deadline = Instant::now() + WAIT;
    while !sink.held.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the first datagram never came");
        std::thread::sleep(Duration::from_millis(1));
    }
    for k in 1..64 {
        client.send_to(&datagram(k), addr).unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 64 {
        assert!(
            Instant::now() < deadline,
            "only {} datagrams came",
            got.len()
        );
        if let Some(b) = sink.queue.pop(Duration::from_millis(100)) {
            got.extend(b.received().map(|r| r.payload.to_vec()));
        }
    }
    listeners.shutdown();
    assert_eq!(got.len(), 64);
    for (k, payload) in got.iter().enumerate() {
        assert!(*payload == datagram(k), "datagram {k} changed");
    }
    assert!(
        sink.kept.load(Ordering::SeqCst) >= 2,
        "kept {} lent buffers",
        sink.kept.load(Ordering::SeqCst)
    );
}
