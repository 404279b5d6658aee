//! `kelpie-standin --listen 0.0.0.0:8080`: the Datadog API stand-in as a process (for tests that run the agent
//! in a container). Serves the intake (see `kelpie_standin::intake`) and `GET /_standin/received`.

use anyhow::Context;
use clap::Parser;
use kelpie_standin::intake::{Intake, IntakeConfig};
use std::net::SocketAddr;

/// A Datadog API stand-in: intake (series, sketches, events, checks, profiles) for kelpie's tests.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Only accept this API key (any non-empty key otherwise).
    #[arg(long, env = "STANDIN_API_KEY")]
    api_key: Option<String>,
    /// Rate-limit the Monitors API: LIMIT requests per SECONDS-long window, aligned to the clock, as Datadog
    /// does (e.g. `5/10`).
    #[arg(long, value_name = "LIMIT/SECONDS", value_parser = parse_rate)]
    monitors_rate_limit: Option<(u64, u64)>,
}

fn parse_rate(s: &str) -> Result<(u64, u64), String> {
    let err = || format!("expected LIMIT/SECONDS such as 5/10, got {s:?}");
    let (l, p) = s.split_once('/').ok_or_else(err)?;
    let l = l.trim().parse::<u64>().map_err(|_| err())?;
    let p = p.trim().parse::<u64>().map_err(|_| err())?;
    if l == 0 || p == 0 {
        return Err(err());
    }
    Ok((l, p))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    // The same server also plays Datadog's Monitors API (`/api/v1/monitor...`).
    let monitors = std::sync::Arc::new(kelpie_standin::monitors_api::MonitorsState::default());
    if let Some((limit, secs)) = args.monitors_rate_limit {
        monitors.set_rate_limit(limit, std::time::Duration::from_secs(secs));
    }
    let extra_routes = Some(kelpie_standin::monitors_api::routes(monitors));
    let intake = Intake::start_with(IntakeConfig {
        listen: args.listen,
        api_key: args.api_key,
        extra_routes,
    })
    .await
    .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!("kelpie-standin listening on {}", intake.url());
    // As PID 1 in a container, SIGTERM must be handled explicitly or `docker stop` waits for its timeout.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot listen for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        _ = term.recv() => {}
    }
    Ok(())
}
