//! An example service: what a team's Rust service looks like once it sends its numbers to kelpie.
//!
//! It "handles requests" (a bit of CPU work each, paced to `--rate` per second) and records, through the
//! `metrics` facade and `kelpie-toolkit`:
//! - `example.requests` (counter, tags `route`, `status`),
//! - `example.request.duration` (histogram, seconds),
//! - `example.inflight` (gauge),
//!
//! plus the toolkit's `runtime.rust.*` numbers and, unless `DD_PROFILING_ENABLED=false`, a CPU profile posted to
//! the agent. It stops after `--requests N` requests (0 = never) or at SIGTERM/SIGINT, flushing on the way out,
//! and then prints `example-service: example.requests=<N> dropped_queue_full=<n> send_errors=<n>` on stdout.
//!
//! Where it sends is read like any Datadog client reads it: `DD_DOGSTATSD_URL`, `DD_DOGSTATSD_SOCKET` or
//! `DD_AGENT_HOST`; tags from `DD_SERVICE`, `DD_ENV`, `DD_VERSION`.

use anyhow::Context;
use clap::Parser;
use rand::Rng;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "An example service that reports to kelpie through kelpie-toolkit"
)]
struct Args {
    /// Requests to handle before exiting (0 = until SIGTERM).
    #[arg(long, env = "EXAMPLE_REQUESTS", default_value_t = 0)]
    requests: u64,
    /// Requests per second.
    #[arg(long, env = "EXAMPLE_RATE", default_value_t = 50)]
    rate: u32,
    /// CPU work per request, in rounds of a small hash loop (makes the CPU profile worth reading).
    #[arg(long, env = "EXAMPLE_WORK", default_value_t = 20_000)]
    work: u32,
}

const ROUTES: [&str; 3] = ["/users", "/orders", "/health"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let profiling = std::env::var("DD_PROFILING_ENABLED")
        .map(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "false" | "0" | "no" | "off"
            )
        })
        .unwrap_or(true);
    let guard = kelpie_toolkit::Builder::from_env()
        .profiling(profiling)
        .install()
        .context("cannot start the metrics toolkit")?;
    tracing::info!(
        requests = args.requests,
        rate = args.rate,
        profiling,
        "example service started"
    );

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut handled = 0u64;
    let mut checksum = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = sigterm.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = tokio::signal::ctrl_c() => { tracing::info!("SIGINT: stopping"); break; }
        }
        let route = ROUTES[(handled % ROUTES.len() as u64) as usize];
        metrics::gauge!("example.inflight").set(1.0);
        let started = Instant::now();
        checksum = checksum.wrapping_add(handle(route, args.work));
        let status = if rand::rng().random_ratio(1, 50) {
            "500"
        } else {
            "200"
        };
        metrics::histogram!("example.request.duration", "route" => route)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("example.requests", "route" => route, "status" => status).increment(1);
        metrics::gauge!("example.inflight").set(0.0);
        handled += 1;
        if args.requests > 0 && handled >= args.requests {
            break;
        }
    }
    tracing::info!(handled, checksum, stats = ?guard.stats(), "example service stopping");
    let stats = guard.stats();
    // Stops the background thread (posting the profile in progress) and flushes.
    guard.shutdown();
    // One plain line on stdout saying what was recorded, for whoever checks the totals at the intake
    // (tests/e2e_one_host.rs compares it with the sum of `example.requests` Datadog received).
    println!(
        "example-service: example.requests={handled} dropped_queue_full={} send_errors={}",
        stats.dropped_queue_full, stats.send_errors
    );
    Ok(())
}

/// The request's "work": a hash loop whose cost depends on the route, so the profile shows a shape.
fn handle(route: &str, work: u32) -> u64 {
    let rounds = match route {
        "/orders" => work * 3,
        "/users" => work,
        _ => work / 10,
    };
    let mut x = route.len() as u64;
    for i in 0..u64::from(rounds) {
        x = x.rotate_left(5) ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    std::hint::black_box(x)
}
