//! `kelpie-loadgen`: blasts DogStatsD over UDP at a given rate, number of contexts and tags, and reports exactly
//! what it sent, so loss can be measured against the agent's own count (`kelpie status --json`).
//!
//! With `--pid` it also reads the agent's CPU time and peak RSS from /proc before and after the run and prints
//! CPU per metric delivered. Traffic goes only to the address given (default 127.0.0.1:8125), and every run is
//! bounded by `--seconds`.

use anyhow::{bail, Context};
use clap::Parser;
use std::io::Write;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "kelpie-loadgen",
    about = "DogStatsD load generator for kelpie benchmarks"
)]
struct Args {
    /// Where to send: a loopback address, or `unix:///path` for a Unix datagram socket (sent without
    /// blocking, as Datadog's clients do: a full socket counts as a send error, the client's drop).
    #[arg(long, default_value = "127.0.0.1:8125")]
    target: String,
    /// Metrics per second to send (0 = as fast as possible).
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Distinct contexts (metric name + tags) cycled through.
    #[arg(long, default_value_t = 1000)]
    contexts: u64,
    /// Tags per metric.
    #[arg(long, default_value_t = 4)]
    tags: usize,
    /// Datagram size in bytes (several metrics per datagram, newline-separated).
    #[arg(long, default_value_t = 8192)]
    packet_size: usize,
    /// How long to send.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Metric type: c, g, h, d, ms, s, or `mix` (by context: 70% c, 10% g, 10% h, 5% d, 5% s).
    #[arg(long, default_value = "c")]
    kind: String,
    /// Send every context exactly once, then stop (new contexts: a deploy's burst), instead of cycling for
    /// `--seconds`.
    #[arg(long)]
    once: bool,
    /// Send datagrams in bursts of this many, back to back, then wait `--burst-interval-ms` (0: no bursts).
    #[arg(long, default_value_t = 0)]
    burst: u64,
    /// Pause between bursts.
    #[arg(long, default_value_t = 100)]
    burst_interval_ms: u64,
    /// The agent's pid: report its CPU time and peak RSS over the run.
    #[arg(long)]
    pid: Option<u32>,
    /// The agent's status address: read metric_samples before and after to report loss exactly.
    #[arg(long)]
    status: Option<String>,
    /// Append `|c:<value>` to every line, as a containerised Datadog client does (`ci-<container id>`).
    #[arg(long)]
    container_field: Option<String>,
}

fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / hz)
}

fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The agent's DogStatsD counters this run compares: what it counted, and what it dropped.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    samples: u64,
    packets: u64,
    kernel: u64,
    queue_full: u64,
    queue_bytes: u64,
    rcvbuf_granted: u64,
}

fn status_counts(addr: &str) -> Option<Counts> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut stream, &mut body).ok()?;
    let json: serde_json::Value = serde_json::from_str(body.split_once("\r\n\r\n")?.1).ok()?;
    let d = &json["dogstatsd"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let p = &d["packets"];
    Some(Counts {
        samples: n(&d["metric_samples"]),
        packets: n(&p["udp"]) + n(&p["uds_dgram"]) + n(&p["uds_stream"]),
        kernel: n(&d["dropped"]["kernel"]),
        queue_full: n(&d["dropped"]["queue_full"]),
        queue_bytes: n(&d["queue_bytes"]),
        rcvbuf_granted: n(&d["udp_rcvbuf_granted"]),
    })
}

/// Where the datagrams go.
enum Sink {
    Udp(UdpSocket),
    Unix(std::os::unix::net::UnixDatagram),
}

impl Sink {
    fn open(target: &str) -> anyhow::Result<Sink> {
        if let Some(path) = target.strip_prefix("unix://") {
            let sock = std::os::unix::net::UnixDatagram::unbound()?;
            sock.connect(path)
                .with_context(|| format!("cannot connect to {path}"))?;
            sock.set_nonblocking(true)?;
            return Ok(Sink::Unix(sock));
        }
        let addr: std::net::SocketAddr = target.parse().context("--target is not an address")?;
        if !addr.ip().is_loopback() {
            bail!("--target must be a loopback address; the load generator never sends elsewhere");
        }
        let sock = UdpSocket::bind("127.0.0.1:0")?;
        sock.connect(addr)?;
        Ok(Sink::Udp(sock))
    }

    fn send(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Udp(s) => s.send(buf),
            Sink::Unix(s) => s.send(buf),
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sock = Sink::open(&args.target)?;
    let kind_of = |i: u64| -> &str {
        match args.kind.as_str() {
            "mix" => match i % 20 {
                0..=13 => "c",
                14 | 15 => "g",
                16 | 17 => "h",
                18 => "d",
                _ => "s",
            },
            k => k,
        }
    };
    if !matches!(
        args.kind.as_str(),
        "c" | "g" | "h" | "d" | "ms" | "s" | "mix"
    ) {
        bail!("--kind {:?} is not one of c g h d ms s mix", args.kind);
    }
    // Pre-render every context's line prefix once; values vary cheaply.
    let lines: Vec<String> = (0..args.contexts.max(1))
        .map(|i| {
            let mut tags = String::new();
            for t in 0..args.tags {
                if t > 0 {
                    tags.push(',');
                }
                if t == 0 {
                    tags.push_str(&format!("ctx:{i}"));
                } else {
                    tags.push_str(&format!("tag{t}:value{t}"));
                }
            }
            let field = args
                .container_field
                .as_deref()
                .map(|c| format!("|c:{c}"))
                .unwrap_or_default();
            let kind = kind_of(i);
            // Sets get a member that varies with the context; the other types a small number.
            let value = if kind == "s" {
                format!("u{}", i % 7)
            } else {
                format!("{}", 1 + i % 3)
            };
            format!(
                "loadgen.metric.{}.{kind}:{value}|{kind}|#{tags}{field}\n",
                i % 100
            )
        })
        .collect();
    let before_cpu = args.pid.and_then(proc_cpu_seconds);
    let before = args.status.as_deref().and_then(status_counts);

    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut sent: u64 = 0;
    let mut datagrams: u64 = 0;
    let mut send_errors: u64 = 0;
    let mut buf = Vec::with_capacity(args.packet_size);
    let mut next = 0usize;
    let mut wrapped = false;
    while if args.once {
        !wrapped
    } else {
        Instant::now() < end
    } {
        buf.clear();
        let mut in_packet = 0u64;
        while buf.len() + lines[next].len() <= args.packet_size && !wrapped {
            buf.extend_from_slice(lines[next].as_bytes());
            next = (next + 1) % lines.len();
            wrapped = args.once && next == 0;
            in_packet += 1;
        }
        if in_packet == 0 {
            bail!(
                "--packet-size {} is smaller than one line",
                args.packet_size
            );
        }
        match sock.send(&buf) {
            Ok(_) => {
                sent += in_packet;
                datagrams += 1;
            }
            Err(_) => send_errors += 1,
        }
        if args.burst > 0 && datagrams.is_multiple_of(args.burst) {
            std::thread::sleep(Duration::from_millis(args.burst_interval_ms));
        } else if args.rate > 0 && args.burst == 0 {
            let due = Duration::from_secs_f64(sent as f64 / args.rate as f64);
            let elapsed = start.elapsed();
            if due > elapsed {
                std::thread::sleep(due - elapsed);
            }
        }
    }
    let wall = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} metrics in {datagrams} datagrams over {wall:.2} s ({:.0} metrics/s), {send_errors} send errors",
        sent as f64 / wall
    );
    // One more datagram carries the UDP socket's drop counter (the kernel reports it with the next datagram);
    // then let the agent drain its queue before reading its counters.
    if sock.send(b"loadgen.done:1|c").is_ok() {
        sent += 1;
        datagrams += 1;
    }
    let status = args.status.as_deref();
    let mut after = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        after = status.and_then(status_counts);
        match (before, after) {
            (Some(b), Some(a))
                if a.queue_bytes == 0
                    && a.packets + a.kernel + a.queue_full
                        >= b.packets + b.kernel + b.queue_full + datagrams =>
            {
                break
            }
            _ => {}
        }
    }
    if let (Some(b), Some(a)) = (before, after) {
        let received = a.samples.saturating_sub(b.samples);
        let lost = sent.saturating_sub(received);
        println!(
            "agent received {received} metric samples: lost {lost} ({:.3}%)",
            100.0 * lost as f64 / sent.max(1) as f64
        );
        println!(
            "datagrams: sent {datagrams}, received {}, dropped by the kernel {}, dropped as queue_full {} \
             (receive buffer granted {} bytes)",
            a.packets - b.packets,
            a.kernel - b.kernel,
            a.queue_full - b.queue_full,
            a.rcvbuf_granted
        );
        if let (Some(pid), Some(cpu0)) = (args.pid, before_cpu) {
            if let Some(cpu1) = proc_cpu_seconds(pid) {
                let cpu = cpu1 - cpu0;
                println!(
                    "agent CPU {cpu:.2} s: {:.0} ns per metric received",
                    cpu * 1e9 / received.max(1) as f64
                );
            }
        }
    } else if let (Some(pid), Some(cpu0)) = (args.pid, before_cpu) {
        if let Some(cpu1) = proc_cpu_seconds(pid) {
            println!("agent CPU {:.2} s", cpu1 - cpu0);
        }
    }
    if let Some(pid) = args.pid {
        println!(
            "agent RSS now {} KiB, peak {} KiB",
            proc_kib(pid, "VmRSS:").unwrap_or(0),
            proc_kib(pid, "VmHWM:").unwrap_or(0)
        );
    }
    Ok(())
}
