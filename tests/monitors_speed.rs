//! Speed measurements of `kelpie monitors` (report only, no timing assertions). Run with
//! `cargo test --test monitors_speed -- --ignored --nocapture`.

use kelpie_standin::monitors_api::MonitorsApi;
use std::process::Command;
use std::time::{Duration, Instant};

fn many(n: usize) -> String {
    format!(
        r#"
resource "datadog_monitor_metric" "m" {{
  count       = {n}
  name        = "Service ${{count.index}} errors"
  message     = "errors"
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

fn run(url: &str, dir: &str, sub: &str, timed: bool) -> (i32, String, String) {
    let mut cmd = if timed {
        let mut c = Command::new("/usr/bin/time");
        c.args([
            "-f",
            "cpu_user=%U cpu_sys=%S wall=%e",
            env!("CARGO_BIN_EXE_kelpie"),
        ]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_kelpie"))
    };
    let out = cmd
        .args(["monitors", sub, "--dir", dir, "--project", "speed"])
        .env("DD_HOST", url)
        .env("DD_API_KEY", "k")
        .env("DD_APP_KEY", "a")
        .env("NO_COLOR", "1")
        .output()
        .expect("run kelpie");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore]
fn plan_over_1000_monitors() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("main.tf"), many(1000)).unwrap();
    let d = tmp.path().to_str().unwrap();
    assert_eq!(run(&api.url(), d, "sync", false).0, 0);
    api.clear_log();
    let has_time = std::path::Path::new("/usr/bin/time").exists();
    let (code, _, err) = run(&api.url(), d, "plan", has_time);
    assert_eq!(code, 0);
    let lists = api.request_log().len();
    println!(
        "plan over 1000 monitors: {lists} list request(s); {}",
        err.lines().last().unwrap_or("")
    );
}

fn sync_under(n: usize, limit: u64, period: Duration) {
    let api = MonitorsApi::start();
    api.set_rate_limit(limit, period);
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("main.tf"), many(n)).unwrap();
    let d = tmp.path().to_str().unwrap();
    let t = Instant::now();
    let (code, out, err) = run(&api.url(), d, "sync", false);
    let wall = t.elapsed();
    assert_eq!(code, 0, "{out}{err}");
    let log = api.request_log();
    let limited = log.iter().filter(|e| e.status == 429).count();
    let min_secs = ((n as u64 + 1).div_ceil(limit) - 1) as f64 * period.as_secs_f64();
    println!(
        "sync creating {n} monitors under {limit} req/{:?}: {} requests ({} answered 429, all retried), {:.1} s wall (the limit allows {} requests in no less than {:.1} s)",
        period,
        log.len(),
        limited,
        wall.as_secs_f64(),
        n + 1,
        min_secs
    );
}

#[test]
#[ignore]
fn sync_under_a_rate_limit_scaled_down() {
    // Scaled down 10x from 1,000 monitors under 100 requests / 10 s: 100 monitors under 10 requests / 1 s.
    sync_under(100, 10, Duration::from_secs(1));
}

#[test]
#[ignore]
fn sync_1000_under_100_per_10s() {
    sync_under(1000, 100, Duration::from_secs(10));
}
