//! `kelpie`: the per-host agent and the monitors-as-code CLI in one binary. A thin dispatcher; the work is in
//! the `kelpie-agent` and `kelpie-monitors` crates.
//!
//! Docs are read with private items (`cargo doc -p kelpie --document-private-items`); the clap argument
//! docs are `--help` text, where `<NAME>` is a placeholder, not an HTML tag.
#![allow(rustdoc::private_intra_doc_links, rustdoc::invalid_html_tags)]

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kelpie",
    version,
    about = "A per-host DogStatsD, Docker and ECS agent for Datadog, and Datadog monitors as code",
    long_about = "kelpie agent runs on every host as the DogStatsD sink (UDP 8125 and Unix sockets), collects host \
                  and Docker container metrics, turns ECS task-definition changes into deploy events and forwards \
                  everything to Datadog. Without DD_API_KEY it runs in local mode and shows everything on its \
                  status page (http://127.0.0.1:5002/).\n\nkelpie monitors validates, unit-tests, plans and syncs \
                  Datadog monitors declared in Terraform-syntax files."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the per-host agent in the foreground until SIGTERM/SIGINT, then flush and exit 0.
    #[command(after_long_help = kelpie_agent::config::env_help())]
    Agent {
        /// YAML config file with the Datadog Agent's key names (default /etc/kelpie/kelpie.yaml; a missing
        /// default file is fine). Every key can be overridden by DD_<KEY> environment variables.
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
        /// Check the configuration, print it as `kelpie config` does, and exit (0 if valid).
        #[arg(long)]
        check_config: bool,
    },
    /// Print the agent's configuration in force (file, environment, defaults), secrets redacted, with where
    /// each value came from; exit 1 if it is invalid.
    Config {
        /// YAML config file (default /etc/kelpie/kelpie.yaml; a missing default file is fine).
        #[arg(long, short = 'c')]
        config: Option<PathBuf>,
    },
    /// Print a running agent's status, like `datadog-agent status`.
    Status {
        /// Print the status JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Exit 0 if the agent is running and its pipeline is alive, 1 otherwise (for HEALTHCHECK).
        #[arg(long)]
        health: bool,
        /// Status server address (default: KELPIE_STATUS_ADDR or 127.0.0.1:5002).
        #[arg(long)]
        addr: Option<String>,
        /// The metric names with the most contexts at the last flush and, for each, the tag keys with the most
        /// distinct values: to find a high-cardinality sender fast.
        #[arg(long)]
        top: bool,
        /// How many names --top prints.
        #[arg(long, default_value_t = 20, requires = "top")]
        limit: usize,
    },
    /// Datadog monitors as code: validate, test, plan, sync and import.
    Monitors(kelpie_monitors::cli::MonitorsArgs),
    /// Print the version, git commit and build target.
    Version,
}

/// Logs to stderr: readable text (coloured on a terminal), or one JSON object per line with `json`. `RUST_LOG`
/// (a `tracing` filter) wins over `level`.
fn init_logging(level: &str, json: bool) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|f| !f.trim().is_empty())
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

/// Logging for the commands other than `agent`: `DD_LOG_LEVEL` when it is a level, else `info` (the agent,
/// which reads it as a setting, refuses a bad one).
fn init_cli_logging() {
    let level = std::env::var("DD_LOG_LEVEL")
        .ok()
        .and_then(|l| {
            kelpie_agent::config::Config::load_from(
                Some(std::path::Path::new("/dev/null")),
                [("DD_LOG_LEVEL".to_string(), l)].into_iter().collect(),
            )
            .ok()
        })
        .map_or_else(|| "info".to_string(), |c| c.log_level);
    init_logging(&level, false);
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run_agent(config: Option<PathBuf>, check: bool) -> anyhow::Result<ExitCode> {
    let cfg = kelpie_agent::config::Config::load(config.as_deref())?;
    if check {
        print_config(&cfg);
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(&cfg.log_level, cfg.log_format_json);
    let rt = runtime()?;
    rt.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            kelpie_agent::pipeline::wait_for_signal().await;
            s.cancel();
        });
        kelpie_agent::pipeline::run(cfg, shutdown, None).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `kelpie config`: every setting (YAML key, or the variable for kelpie's own), its value in force and where
/// it came from.
fn print_config(cfg: &kelpie_agent::config::Config) {
    use std::io::Write;
    let rows = cfg.effective();
    let w_key = rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    let w_val = rows
        .iter()
        .map(|(_, v, _)| v.len().min(40))
        .max()
        .unwrap_or(0);
    let mut out = format!("{:<w_key$}  {:<w_val$}  source\n", "setting", "value");
    for (key, value, source) in &rows {
        out.push_str(&format!("{key:<w_key$}  {value:<w_val$}  {source}\n"));
    }
    for w in cfg.unknown_key_warnings() {
        out.push_str(&format!("warning: {w}\n"));
    }
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
}

fn run_status(
    json: bool,
    health: bool,
    addr: Option<String>,
    top: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let addr = addr
        .or_else(|| std::env::var("KELPIE_STATUS_ADDR").ok())
        .unwrap_or_else(|| "127.0.0.1:5002".into());
    let addr = addr.replace("0.0.0.0", "127.0.0.1");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?;
        if health {
            return match client.get(format!("http://{addr}/health")).send().await {
                Ok(r) if r.status().is_success() => {
                    println!("healthy");
                    Ok(ExitCode::SUCCESS)
                }
                Ok(r) => {
                    eprintln!(
                        "unhealthy: {}",
                        r.text().await.unwrap_or_default().trim()
                    );
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => {
                    eprintln!("unhealthy: no agent answers at {addr}: {e}");
                    Ok(ExitCode::FAILURE)
                }
            };
        }
        if let Some(limit) = top {
            let view: kelpie_agent::top::TopView = client
                .get(format!("http://{addr}/api/top"))
                .send()
                .await
                .with_context(|| format!("no kelpie agent answers at {addr} (is it running? set --addr or KELPIE_STATUS_ADDR)"))?
                .json()
                .await
                .context("the agent's /api/top answer is not the expected JSON (an older agent?)")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else if view.flushed_at == 0 {
                println!("no flush yet: try again after the first flush interval");
            } else {
                print!("{}", kelpie_agent::top::render(&view, limit));
            }
            return Ok(ExitCode::SUCCESS);
        }
        let doc: serde_json::Value = client
            .get(format!("http://{addr}/status"))
            .send()
            .await
            .with_context(|| format!("no kelpie agent answers at {addr} (is it running? set --addr or KELPIE_STATUS_ADDR)"))?
            .json()
            .await
            .context("the agent's status answer is not JSON")?;
        if json {
            println!("{}", serde_json::to_string_pretty(&doc)?);
        } else {
            // Colours on a terminal only (and not with NO_COLOR), plain text in pipes and files.
            use std::io::IsTerminal;
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            print!("{}", kelpie_agent::status::render(&doc, color));
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn main() -> ExitCode {
    let args = kelpie_monitors::cli::preprocess_args(std::env::args_os());
    let cli = Cli::parse_from(args);
    if !matches!(
        cli.command,
        Command::Version | Command::Agent { .. } | Command::Config { .. }
    ) {
        init_cli_logging();
    }
    let result = match cli.command {
        Command::Agent {
            config,
            check_config,
        } => run_agent(config, check_config),
        Command::Config { config } => kelpie_agent::config::Config::load(config.as_deref())
            .map(|cfg| {
                print_config(&cfg);
                ExitCode::SUCCESS
            })
            .map_err(Into::into),
        Command::Status {
            json,
            health,
            addr,
            top,
            limit,
        } => run_status(json, health, addr, top.then_some(limit)),
        Command::Monitors(args) => runtime().and_then(|rt| {
            rt.block_on(kelpie_monitors::cli::run(args))
                .map(|code| ExitCode::from(code.clamp(0, 255) as u8))
        }),
        Command::Version => {
            println!(
                "kelpie {} (commit {}, target {})",
                env!("CARGO_PKG_VERSION"),
                option_env!("KELPIE_GIT_COMMIT").unwrap_or("unknown"),
                option_env!("KELPIE_BUILD_TARGET").unwrap_or(std::env::consts::ARCH)
            );
            Ok(ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kelpie: {e:#}");
            ExitCode::FAILURE
        }
    }
}
