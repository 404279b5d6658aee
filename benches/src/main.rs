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
    /// Metric type: c, g, h, d, ms, s.
    #[arg(long, default_value = "c")]
    kind: String,
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

fn status_samples(addr: &str) -> Option<u64> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut body = String::new();
    std::io::Read::read_to_string(&mut stream, &mut body).ok()?;
    let key = "\"metric_samples\":";
    let at = body.find(key)? + key.len();
    body[at..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
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
    let kind = match args.kind.as_str() {
        "c" | "g" | "h" | "d" | "ms" | "s" => args.kind.clone(),
        other => bail!("--kind {other:?} is not one of c g h d ms s"),
    };
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
            format!("loadgen.metric.{}:1|{kind}|#{tags}{field}\n", i % 100)
        })
        .collect();
    let before_cpu = args.pid.and_then(proc_cpu_seconds);
    let before_samples = args.status.as_deref().and_then(status_samples);

    let start = Instant::now();
    let end = start + Duration::from_secs(args.seconds);
    let mut sent: u64 = 0;
    let mut datagrams: u64 = 0;
    let mut send_errors: u64 = 0;
    let mut buf = Vec::with_capacity(args.packet_size);
    let mut next = 0usize;
    while Instant::now() < end {
        buf.clear();
        let mut in_packet = 0u64;
        while buf.len() + lines[next].len() <= args.packet_size {
            buf.extend_from_slice(lines[next].as_bytes());
            next = (next + 1) % lines.len();
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
        if args.rate > 0 {
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
    // Let the agent drain its socket buffers before reading its counters.
    std::thread::sleep(Duration::from_secs(2));
    if let (Some(b), Some(a)) = (
        before_samples,
        args.status.as_deref().and_then(status_samples),
    ) {
        let received = a.saturating_sub(b);
        let lost = sent.saturating_sub(received);
        println!(
            "agent received {received} metric samples: lost {lost} ({:.3}%)",
            100.0 * lost as f64 / sent.max(1) as f64
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
