//! Cost of the container collector (report only, no assertions).
//!
//!   cargo run --release -p kelpie-container --example collect_cost -- cost [calls]
//!       CPU (user+sys of this process, and of dockerd) per `collect()` with whatever runs now
//!       (start containers first with testimages/start-many.sh N)
//!   cargo run --release -p kelpie-container --example collect_cost -- churn [cycles]
//!       RSS before/after many container start/stop cycles while collecting
use kelpie_container::{ContainerConfig, Containers};
use std::process::Command;
use std::time::{Duration, Instant};

fn self_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv =
        |t: libc::timeval| Duration::from_micros(t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn proc_cpu(pid: &str) -> Option<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = s[s.rfind(')')? + 2..].split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("cost");
    let n: usize = args.get(2).and_then(|v| v.parse().ok()).unwrap_or(50);
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let cfg = ContainerConfig {
        hostname: "bench".into(),
        ..ContainerConfig::default()
    };
    let cs = Containers::start(cfg, tx).await.expect("docker");
    cs.collect().await.expect("collect");
    let dockerd = String::from_utf8_lossy(
        &Command::new("pidof")
            .arg("dockerd")
            .output()
            .expect("pidof")
            .stdout,
    )
    .trim()
    .to_string();
    match mode {
        "cost" => {
            let running = cs.status().running;
            let (c0, d0, w0) = (self_cpu(), proc_cpu(&dockerd), Instant::now());
            let mut wall = Duration::ZERO;
            let mut points = 0;
            for _ in 0..n {
                let t = Instant::now();
                points = cs.collect().await.expect("collect").len();
                wall += t.elapsed();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let cpu = self_cpu() - c0;
            let dcpu = d0.and_then(|d0| Some(proc_cpu(&dockerd)? - d0));
            println!(
                "containers={running} calls={n} points/call={points} cpu/call={:.2} ms wall/call={:.2} ms dockerd cpu/call={} (elapsed {:.1} s, rss {} KiB)",
                cpu.as_secs_f64() * 1e3 / n as f64,
                wall.as_secs_f64() * 1e3 / n as f64,
                dcpu.map(|d| format!("{:.2} ms", d.as_secs_f64() * 1e3 / n as f64)).unwrap_or("n/a".into()),
                w0.elapsed().as_secs_f64(),
                rss_kib()
            );
        }
        "churn" => {
            let rss0 = rss_kib();
            for i in 0..n {
                let out = Command::new("docker")
                    .args([
                        "run",
                        "-d",
                        "--label",
                        "kelpie-test=1",
                        "kelpie-test/tool:latest",
                        "exit",
                        "0",
                        "100",
                    ])
                    .output()
                    .expect("docker run");
                let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
                cs.collect().await.expect("collect");
                let _ = Command::new("docker").args(["rm", "-f", &id]).output();
                if i % 50 == 49 {
                    println!(
                        "cycle {} rss {} KiB tracked {}",
                        i + 1,
                        rss_kib(),
                        cs.status().running
                    );
                }
            }
            cs.collect().await.expect("collect");
            println!(
                "churn cycles={n} rss before={rss0} KiB after={} KiB",
                rss_kib()
            );
        }
        other => eprintln!("unknown mode {other}: use cost or churn"),
    }
}
