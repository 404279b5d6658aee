//! Helpers for the tests of `kelpie monitors` against the Monitors API stand-in: run the real binary, read what
//! the stand-in holds, write Terraform files.

use kelpie_standin::monitors_api::MonitorsApiHandle;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The example directory the README shows (`examples/monitors`).
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monitors")
}

/// `kelpie monitors ARGS` against `api`: exit code, stdout and stderr.
pub fn kelpie(api: &MonitorsApiHandle, args: &[&str]) -> (i32, String, String) {
    kelpie_env(api, args, &[])
}

/// [`kelpie`] with `env` set on top (which may override the keys).
pub fn kelpie_env(
    api: &MonitorsApiHandle,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new(super::kelpie_bin());
    cmd.arg("monitors")
        .args(args)
        .env("DD_HOST", api.url())
        .env("DD_API_KEY", "test-api-key")
        .env("DD_APP_KEY", "test-app-key")
        .env("NO_COLOR", "1")
        .env_remove("DD_SITE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    super::outcome(cmd.output().expect("run kelpie"))
}

/// How many requests that change monitors the stand-in has answered.
pub fn writes(api: &MonitorsApiHandle) -> usize {
    api.request_log().iter().filter(|e| e.is_write()).count()
}

/// The monitor kelpie tagged with the address `addr`.
pub fn by_address(api: &MonitorsApiHandle, addr: &str) -> Option<Value> {
    let tag = format!("kelpie-address:{addr}");
    api.monitors().into_iter().find(|m| {
        m["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &Value::from(tag.as_str()))
    })
}

/// Writes `text` to the file `name` of `dir`.
pub fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// One monitor, `datadog_monitor.cpu`.
pub const ONE: &str = r#"
resource "datadog_monitor" "cpu" {
  name    = "CPU high"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.cpu.user{*} by {host} > 90"
  message = "CPU @slack-ops"
}
"#;

/// `n` monitors, `datadog_monitor.m[0]` to `m[n-1]`, from one resource with `count = var.n`.
pub fn many(n: usize) -> String {
    format!(
        r#"
variable "n" {{ default = {n} }}
resource "datadog_monitor" "m" {{
  count   = var.n
  name    = "Monitor ${{count.index}}"
  type    = "query alert"
  query   = "avg(last_5m):avg:app.m${{count.index}}{{*}} > 10"
  message = "m"
}}
"#
    )
}
