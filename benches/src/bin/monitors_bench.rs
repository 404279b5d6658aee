//! `kelpie-monitors-bench`: `kelpie monitors` at scale against the Monitors API stand-in (in this process, on
//! 127.0.0.1), reporting counts and times; nothing is asserted.
//!
//! - `sync`: creates, then updates, then deletes N monitors (default 5,000) under a rate limit (default 500
//!   requests per 10 s, calendar-aligned windows, `Reset` rounded down as Datadog sends it), and prints for
//!   each phase the requests made, how many were answered 429, the elapsed time and the minimum the limit
//!   allows (requests ÷ limit × period).
//! - `plan`: an account of M monitors (default 20,000) of which K (default 1,000) are this project's; prints
//!   the number of list calls of `kelpie monitors plan` and its CPU time (user + system, from `getrusage`),
//!   with and without `--show-unmanaged` (which lists the whole account).
//!
//! The `kelpie` binary is `--kelpie` (default `target/release/kelpie`; build it first).

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use kelpie_standin::monitors_api::{MonitorsApi, MonitorsApiHandle};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(name = "kelpie-monitors-bench")]
struct Args {
    /// The kelpie binary to run.
    #[arg(long, default_value = "target/release/kelpie", global = true)]
    kelpie: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create, update and delete N monitors under a rate limit.
    Sync {
        #[arg(long, default_value_t = 5000)]
        monitors: usize,
        /// Requests per window.
        #[arg(long, default_value_t = 500)]
        limit: u64,
        /// Window length in whole seconds.
        #[arg(long, default_value_t = 10)]
        period: u64,
        /// Phases to run, of create,update,delete (update and delete need create first).
        #[arg(long, value_delimiter = ',', default_value = "create,update,delete")]
        phases: Vec<String>,
    },
    /// `plan` over an account of M monitors, K of them managed by the project.
    Plan {
        #[arg(long, default_value_t = 20_000)]
        account: usize,
        #[arg(long, default_value_t = 1000)]
        managed: usize,
    },
}

fn many(n: usize, message: &str) -> String {
    format!(
        r#"
resource "datadog_monitor_metric" "m" {{
  count       = {n}
  name        = "Service ${{count.index}} errors"
  message     = "{message}"
  metric      = "app.5xx"
  metric_tags = "service:s${{count.index}}"
  warning {{
    threshold = 10
    notify    = "@slack-a"
  }}
  critical {{
    threshold = 50
    notify    = "@pagerduty-a"
  }}
  tags = ["team:a"]
}}
"#
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    wall: Duration,
    cpu: Duration,
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn kelpie(bin: &Path, api: &MonitorsApiHandle, dir: &Path, args: &[&str]) -> anyhow::Result<Run> {
    let cpu0 = children_cpu();
    let t = Instant::now();
    let out = Command::new(bin)
        .arg("monitors")
        .args(args)
        .args(["--dir", dir.to_str().context("dir")?, "--project", "bench"])
        .env("DD_HOST", api.url())
        .env("DD_API_KEY", "k")
        .env("DD_APP_KEY", "a")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {}", bin.display()))?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        wall: t.elapsed(),
        cpu: children_cpu().saturating_sub(cpu0),
    })
}

fn sync_phase(
    bin: &Path,
    api: &MonitorsApiHandle,
    dir: &Path,
    what: &str,
    limit: u64,
    period: u64,
) -> anyhow::Result<()> {
    api.clear_log();
    let mut args = vec!["sync"];
    if what == "delete" {
        args.push("--allow-mass-delete");
    }
    let r = kelpie(bin, api, dir, &args)?;
    if r.code != 0 {
        bail!(
            "sync ({what}) exited {}: {}",
            r.code,
            r.stderr.lines().take(5).collect::<Vec<_>>().join("\n")
        );
    }
    let log = api.request_log();
    let limited = log.iter().filter(|e| e.status == 429).count();
    let writes = log.iter().filter(|e| e.is_write()).count();
    let min = log.len() as f64 / limit as f64 * period as f64;
    let waits = r
        .stdout
        .lines()
        .filter(|l| l.contains("waiting for the rate limit"))
        .count();
    println!(
        "| {what} | {} | {writes} | {limited} ({:.2}%) | {:.1} s | {min:.1} s | {:.2} | {:.2} s | {waits} |",
        log.len(),
        limited as f64 * 100.0 / log.len().max(1) as f64,
        r.wall.as_secs_f64(),
        r.wall.as_secs_f64() / min.max(0.001),
        r.cpu.as_secs_f64(),
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.kelpie.exists() {
        bail!(
            "{} does not exist: cargo build --release -p kelpie first, or pass --kelpie",
            args.kelpie.display()
        );
    }
    let tmp = std::env::temp_dir().join(format!("kelpie-monitors-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let result = run(&args, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run(args: &Args, tmp: &Path) -> anyhow::Result<()> {
    let api = MonitorsApi::start();
    let main_tf = tmp.join("main.tf");
    match &args.cmd {
        Cmd::Sync {
            monitors,
            limit,
            period,
            phases,
        } => {
            api.set_rate_limit(*limit, Duration::from_secs(*period));
            println!("sync of {monitors} monitors under {limit} requests per {period} s\n");
            println!("| phase | requests | writes | answered 429 | elapsed | requests ÷ limit × period | ratio | kelpie CPU | wait lines |");
            println!("|---|---|---|---|---|---|---|---|---|");
            for p in phases {
                match p.as_str() {
                    "create" => std::fs::write(&main_tf, many(*monitors, "errors"))?,
                    "update" => std::fs::write(&main_tf, many(*monitors, "errors, changed"))?,
                    "delete" => std::fs::write(&main_tf, "")?,
                    other => bail!("unknown phase {other}"),
                }
                sync_phase(&args.kelpie, &api, tmp, p, *limit, *period)?;
            }
            let left = api.monitors().len();
            println!("\nmonitors left in the account: {left}");
        }
        Cmd::Plan { account, managed } => {
            std::fs::write(&main_tf, many(*managed, "errors"))?;
            let r = kelpie(&args.kelpie, &api, tmp, &["sync"])?;
            if r.code != 0 {
                bail!("initial sync failed: {}", r.stderr);
            }
            for i in 0..account.saturating_sub(*managed) {
                api.insert_raw(json!({
                    "name": format!("hand-made {i}"),
                    "type": "query alert",
                    "query": format!("avg(last_5m):avg:other.m{i}{{*}} > 1"),
                    "message": "not managed",
                    "tags": ["team:other"],
                }));
            }
            println!(
                "plan over {} monitors, {managed} of them the project's\n",
                api.monitors().len()
            );
            println!(
                "| command | exit | list calls | other calls | kelpie CPU (user+sys) | wall |"
            );
            println!("|---|---|---|---|---|---|");
            for extra in [&[][..], &["--show-unmanaged"][..]] {
                api.clear_log();
                let mut a = vec!["plan"];
                a.extend_from_slice(extra);
                let r = kelpie(&args.kelpie, &api, tmp, &a)?;
                let log = api.request_log();
                let lists = log
                    .iter()
                    .filter(|e| e.method == "GET" && e.path == "/api/v1/monitor")
                    .count();
                println!(
                    "| `kelpie monitors {}` | {} | {lists} | {} | {:.2} s | {:.2} s |",
                    a.join(" "),
                    r.code,
                    log.len() - lists,
                    r.cpu.as_secs_f64(),
                    r.wall.as_secs_f64()
                );
                if r.code == 1 {
                    eprintln!("{}", r.stderr);
                }
            }
        }
    }
    Ok(())
}
