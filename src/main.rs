//! The `kelpie` binary (minimal dispatcher on the monitors branch; the lead's main.rs replaces it).
use clap::Parser;

#[derive(Parser)]
#[command(name = "kelpie", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Datadog monitors as code.
    Monitors(kelpie_monitors::cli::MonitorsArgs),
}

fn main() {
    let cli = Cli::parse_from(kelpie_monitors::cli::preprocess_args(std::env::args_os()));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match cli.cmd {
        Cmd::Monitors(args) => rt.block_on(kelpie_monitors::cli::run(args)),
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
