//! The DogStatsD receive path of the real binary under bursts: readers that only read, a queue bounded in
//! bytes, workers that parse and aggregate, and every datagram either received or counted as dropped (by the
//! kernel or the queue). Also: one UDP port belongs to one agent.

mod common;

use common::*;
use serde_json::Value;
use std::net::UdpSocket;
use std::process::Command;
use std::time::Duration;

/// Datagrams of at most 8 KB holding `lines`, packed like a client's buffer.
fn pack(lines: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for l in lines {
        if !cur.is_empty() && cur.len() + 1 + l.len() > 8192 {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(l);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn dropped(status: &Value, reason: &str) -> u64 {
    status["dogstatsd"]["dropped"][reason].as_u64().unwrap_or(0)
}

/// A deploy's burst: 40,000 new counter contexts with 4 tags in 8 KB datagrams, sent as bursts of 40
/// datagrams every 100 ms, with the agent's default settings. Whatever happens, sent = received + counted
/// drops. With the receive buffer the agent asks for by default granted (4 MiB: root or CAP_NET_ADMIN, or
/// `net.core.rmem_max` that high), every datagram is received, every increment counted, every context made.
/// (With only the kernel's default of 208 KiB, about 25 such datagrams, a burst outruns a reader that the
/// scheduler keeps off a busy machine's CPU for a millisecond: see benches/README.md.)
#[test]
fn a_burst_of_new_contexts_is_received_whole() {
    let agent = AgentProc::spawn(&[
        // The harness asks for a buffer; this test uses the agent's default.
        ("DD_DOGSTATSD_SO_RCVBUF", "0"),
        // One flush for the whole burst: the contexts are all still there when counted.
        ("KELPIE_FLUSH_INTERVAL", "60s"),
    ]);
    let lines: Vec<String> = (0..40_000)
        .map(|i| {
            format!(
                "burst.requests.total.{}:1|c|#service:checkout-api,env:production,version:2026.12.02,ctx:{i}",
                i % 100
            )
        })
        .collect();
    let datagrams = pack(&lines);
    assert!(datagrams.len() > 400, "{} datagrams", datagrams.len());
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    for burst in datagrams.chunks(40) {
        for d in burst {
            client.send_to(d.as_bytes(), agent.udp).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // One more datagram carries the socket's drop counter (the kernel reports it with the next datagram).
    agent.send("burst.done:1|c");
    let sent = datagrams.len() as u64 + 1;
    let status = wait_for(Duration::from_secs(60), || {
        let s = agent.status_json();
        let d = &s["dogstatsd"];
        let accounted = d["packets"]["udp"].as_u64().unwrap_or(0)
            + dropped(&s, "kernel")
            + dropped(&s, "queue_full");
        (accounted >= sent && d["queue_bytes"].as_u64() == Some(0)).then_some(s)
    })
    .expect("every datagram received or counted within 60 s");
    let d = &status["dogstatsd"];
    let udp = d["packets"]["udp"].as_u64().unwrap();
    assert_eq!(
        udp + dropped(&status, "kernel") + dropped(&status, "queue_full"),
        sent,
        "{d}"
    );
    assert_eq!(dropped(&status, "queue_full"), 0, "{d}");
    let granted = d["udp_rcvbuf_granted"].as_u64().unwrap();
    if granted < 4 << 20 {
        eprintln!("only {granted} bytes of receive buffer granted: the no-loss part of this test is skipped");
        return;
    }
    assert_eq!(dropped(&status, "kernel"), 0, "{d}");
    assert_eq!(udp, sent);
    let samples = wait_for(Duration::from_secs(30), || {
        let s = agent.status_json();
        // Lines are counted when parsed and contexts when inserted: wait for both (a worker may still be
        // inserting its last lines when the last sample is counted).
        let n = s["dogstatsd"]["metric_samples"].as_u64().unwrap_or(0);
        let contexts = s["dogstatsd"]["contexts"].as_u64().unwrap_or(0);
        (n >= 40_001 && contexts >= 40_001).then_some(s)
    })
    .expect("every line parsed and inserted");
    assert_eq!(samples["dogstatsd"]["metric_samples"], 40_001);
    assert_eq!(samples["dogstatsd"]["contexts"], 40_001);
    assert_eq!(samples["dogstatsd"]["parse_errors"], 0);
    // The status names the queue and the workers.
    assert!(samples["dogstatsd"]["queue_max_bytes"].as_u64().unwrap() >= 4 << 20);
    assert!(samples["dogstatsd"]["pipelines"].as_u64().unwrap() >= 1);
    assert_eq!(samples["dogstatsd"]["udp_rcvbuf_requested"], 4 << 20);
}

/// One UDP port, one agent: a second agent on the same port stops at once with one clear line (it would
/// otherwise join the first one's SO_REUSEPORT group and take half of its traffic), and the first keeps
/// receiving everything.
#[test]
fn a_second_agent_on_the_same_port_is_refused() {
    let first = AgentProc::spawn(&[]);
    let out = Command::new(kelpie_bin())
        .args(["agent", "--config", "/dev/null"])
        .env("DD_DOGSTATSD_PORT", first.udp.port().to_string())
        .env(
            "KELPIE_STATUS_ADDR",
            format!("127.0.0.1:{}", free_tcp_port()),
        )
        .env("KELPIE_PROFILES_ADDR", "off")
        .env("DD_CONTAINER_COLLECTION", "false")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("kelpie:")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains(&format!("127.0.0.1:{}", first.udp.port()))
            && lines[0].contains("already in use"),
        "{err}"
    );
    for _ in 0..50 {
        first.send("second.agent.test:1|c");
    }
    first.wait_samples(50, Duration::from_secs(10));
    let s = first.status_json();
    assert_eq!(s["dogstatsd"]["packets"]["udp"], 50);
}
