//! End-to-end tests of `kelpie monitors` (the real binary) against the Monitors API stand-in.

use kelpie_standin::monitors_api::{MonitorsApi, MonitorsApiHandle, OutsideEdit};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monitors")
}

fn kelpie(api: &MonitorsApiHandle, args: &[&str]) -> (i32, String, String) {
    kelpie_env(api, args, &[])
}

fn kelpie_env(
    api: &MonitorsApiHandle,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kelpie"));
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
    let out = cmd.output().expect("run kelpie");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn writes(api: &MonitorsApiHandle) -> usize {
    api.request_log().iter().filter(|e| e.is_write()).count()
}

fn by_address(api: &MonitorsApiHandle, addr: &str) -> Option<Value> {
    let tag = format!("kelpie-address:{addr}");
    api.monitors().into_iter().find(|m| {
        m["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == &Value::from(tag.as_str()))
    })
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn example_plan_sync_and_second_sync_is_a_no_op() {
    let api = MonitorsApi::start();
    let dir = example_dir();
    let d = dir.to_str().unwrap();
    let (code, out, err) = kelpie(&api, &["plan", "--dir", d, "--project", "shop"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.contains("+ module.api.datadog_monitor_metric.errors"),
        "{out}"
    );
    assert!(
        out.contains("+ datadog_monitor.disk_space[\"warn_only\"]"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 11 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged."),
        "{out}"
    );
    assert!(
        err.contains(
            "ignored 2 resource(s) of other types (aws_cloudwatch_log_group, aws_sns_topic)"
        ),
        "{err}"
    );

    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    // --dry-run is plan, exit codes included, and writes nothing.
    let (code, out2, _) = kelpie(
        &api,
        &["sync", "--dry-run", "--dir", d, "--project", "shop"],
    );
    assert_eq!(code, 2);
    assert_eq!(out2, out);
    assert_eq!(writes(&api), 0);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "shop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Sync: 11 created, 0 updated, 0 replaced, 0 deleted, 0 failed."),
        "{out}"
    );
    assert_eq!(api.monitors().len(), 11);

    // The compact form became one metric alert with warning and critical and per-level notifications.
    let m =
        by_address(&api, "datadog_monitor_metric.app.internal_errors").expect("compact monitor");
    assert_eq!(m["type"], "query alert");
    assert_eq!(
        m["query"],
        "avg(last_5m):avg:app.5xx{env:prod} by {service} > 50"
    );
    assert_eq!(
        m["options"]["thresholds"],
        json!({"critical": 50.0, "warning": 10.0})
    );
    assert_eq!(m["options"]["notify_no_data"], true);
    let msg = m["message"].as_str().unwrap();
    assert!(msg.starts_with("App Internal Error Alerts\n{{#is_warning}}@slack-shop-alerts{{/is_warning}}\n{{#is_alert}}@slack-shop-alerts @pagerduty-shop{{/is_alert}}"), "{msg}");
    assert!(
        msg.contains("Managed by kelpie from main.tf (datadog_monitor_metric.app.internal_errors)"),
        "{msg}"
    );
    let tags = m["tags"].as_array().unwrap();
    for t in ["managed-by:kelpie", "kelpie-project:shop", "team:shop"] {
        assert!(tags.contains(&Value::from(t)), "{tags:?}");
    }
    let lat = by_address(&api, "module.worker.datadog_monitor.latency").expect("module monitor");
    assert_eq!(
        lat["options"]["thresholds"],
        json!({"critical": 30000.0, "warning": 24000.0})
    );
    assert!(lat["tags"]
        .as_array()
        .unwrap()
        .contains(&Value::from("queue:jobs")));

    // After the API's normalizations nothing differs: plan is clean and a second sync writes nothing.
    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "shop"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("No changes. 11 monitor(s) of project \"shop\" are up to date."),
        "{out}"
    );
    api.clear_log();
    let (code, out, _) = kelpie(&api, &["sync", "--dir", d, "--project", "shop"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(writes(&api), 0, "{:?}", api.request_log());
    // One list of the project's monitors (by its tag) and two searches that count the rest of the account.
    let log = api.request_log();
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log[0].query.contains("monitor_tags=kelpie-project%3Ashop"),
        "{log:?}"
    );
    assert!(
        log[1..].iter().all(|e| e.path == "/api/v1/monitor/search"),
        "{log:?}"
    );
}

#[test]
fn drift_in_the_ui_shows_in_plan_and_sync_puts_it_back() {
    let api = MonitorsApi::start();
    let d = example_dir();
    let d = d.to_str().unwrap();
    assert_eq!(
        kelpie(&api, &["sync", "--dir", d, "--project", "shop"]).0,
        0
    );
    let mut m = by_address(&api, "module.api.datadog_monitor.latency").unwrap();
    let id = m["id"].as_i64().unwrap();
    m["name"] = Value::from("Api: latency (edited in the UI)");
    m["query"] = Value::from(
        "avg(last_10m):avg:app.request.duration.95percentile{service:api,env:prod} > 900",
    );
    m["options"]["thresholds"] = json!({"critical": 900.0, "warning": 500.0});
    m["options"]["renotify_interval"] = json!(30); // not managed by the file: left alone
    api.insert_raw(m);

    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "shop"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(&format!("~ module.api.datadog_monitor.latency (id {id})")),
        "{out}"
    );
    assert!(
        out.contains(
            "name: \"Api: latency (edited in the UI)\" → \"Api: p95 latency above 400 ms\""
        ),
        "{out}"
    );
    assert!(out.contains("options.thresholds: { critical = 900, warning = 500 } → { critical = 400, warning = 320 }"), "{out}");
    assert!(
        out.contains("Plan: 0 to create, 1 to update, 0 to replace, 0 to delete, 10 unchanged."),
        "{out}"
    );

    let (code, out, _) = kelpie(&api, &["sync", "--dir", d, "--project", "shop"]);
    assert_eq!(code, 0, "{out}");
    let back = api.get(id).unwrap();
    assert_eq!(back["name"], "Api: p95 latency above 400 ms");
    assert_eq!(back["options"]["thresholds"]["critical"], json!(400.0));
    assert_eq!(back["options"]["renotify_interval"], json!(30));
    assert_eq!(
        kelpie(&api, &["plan", "--dir", d, "--project", "shop"]).0,
        0
    );

    // JSON plan for CI bots.
    let mut m = api.get(id).unwrap();
    m["message"] = Value::from("edited");
    api.insert_raw(m);
    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "shop", "--json"]);
    assert_eq!(code, 2);
    let plan: Value = serde_json::from_str(&out).expect("json plan");
    assert_eq!(plan["update"][0]["id"], json!(id));
    assert_eq!(plan["update"][0]["changes"][0]["field"], "message");
    assert_eq!(plan["unchanged"], 10);
}

const ONE: &str = r#"
resource "datadog_monitor" "cpu" {
  name    = "CPU high"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.cpu.user{*} by {host} > 90"
  message = "CPU @slack-ops"
}
"#;

#[test]
fn rename_with_moved_keeps_the_monitor() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", ONE);
    assert_eq!(kelpie(&api, &["sync", "--dir", d, "--project", "p"]).0, 0);
    let id = by_address(&api, "datadog_monitor.cpu").unwrap()["id"]
        .as_i64()
        .unwrap();
    write(
        tmp.path(),
        "main.tf",
        &(ONE.replace("\"cpu\"", "\"cpu_user\"")
            + "moved {\n  from = datadog_monitor.cpu\n  to   = datadog_monitor.cpu_user\n}\n"),
    );
    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "p"]);
    assert_eq!(code, 2);
    assert!(
        out.contains(&format!(
            "~ datadog_monitor.cpu_user (id {id}, moved from datadog_monitor.cpu)"
        )),
        "{out}"
    );
    assert!(
        out.contains("0 to create") && out.contains("0 to delete"),
        "{out}"
    );
    assert_eq!(kelpie(&api, &["sync", "--dir", d, "--project", "p"]).0, 0);
    assert_eq!(api.monitors().len(), 1);
    assert_eq!(
        by_address(&api, "datadog_monitor.cpu_user").unwrap()["id"].as_i64(),
        Some(id)
    );
    assert_eq!(kelpie(&api, &["plan", "--dir", d, "--project", "p"]).0, 0);
}

fn many(n: usize) -> String {
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

#[test]
fn deletion_is_safe() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(6));
    assert_eq!(kelpie(&api, &["sync", "--dir", d, "--project", "p"]).0, 0);
    // Somebody else's monitors, and a composite referencing one of ours.
    let unmanaged = api.insert_raw(json!({"name": "hand made", "type": "query alert", "query": "avg(last_5m):avg:x{*} > 1", "tags": []}));
    let other = api.insert_raw(json!({"name": "other", "type": "query alert", "query": "avg(last_5m):avg:y{*} > 1",
        "tags": ["managed-by:kelpie", "kelpie-project:other", "kelpie-address:datadog_monitor.m.0"]}));
    let m5 = by_address(&api, "datadog_monitor.m.5").unwrap()["id"]
        .as_i64()
        .unwrap();
    let composite = api.insert_raw(json!({"name": "composite", "type": "composite", "query": format!("{m5} && {unmanaged}"), "tags": []}));

    // Deleting 4 of 6 is more than half: refused, nothing written.
    api.clear_log();
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p", "-var", "n=2"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("refusing to delete 4 of the 6 monitors of project \"p\" (more than half)"),
        "{err}"
    );
    assert_eq!(writes(&api), 0);
    // --no-delete plans no deletion at all.
    let (code, out, _) = kelpie(
        &api,
        &[
            "sync",
            "--dir",
            d,
            "--project",
            "p",
            "-var",
            "n=2",
            "--no-delete",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(api.monitors().len(), 9);

    // Allowed: deletes what can_delete allows, reports the composite-referenced one, exits 1.
    let (code, out, err) = kelpie(
        &api,
        &[
            "sync",
            "--dir",
            d,
            "--project",
            "p",
            "-var",
            "n=2",
            "--allow-mass-delete",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("not deleting datadog_monitor.m.5 (id {m5}): monitor [{m5},] is referenced in composite monitors: [{composite}]")), "{err}");
    assert!(
        out.contains("Sync: 0 created, 0 updated, 0 replaced, 3 deleted, 1 failed."),
        "{out}"
    );
    assert!(
        api.get(unmanaged).is_some() && api.get(other).is_some() && api.get(composite).is_some()
    );
    assert!(
        out.contains(
            "Left alone: 2 monitor(s) not managed by kelpie and 1 of other kelpie projects"
        ),
        "{out}"
    );
    let (_, out, _) = kelpie(
        &api,
        &[
            "plan",
            "--dir",
            d,
            "--project",
            "p",
            "-var",
            "n=2",
            "--show-unmanaged",
        ],
    );
    assert!(
        out.contains(&format!("unmanaged  {unmanaged:>10}  hand made")),
        "{out}"
    );
    assert!(
        out.contains(&format!("project other  {other:>10}  other")),
        "{out}"
    );
    let log = api.request_log();
    assert!(log.iter().any(|e| e.path == "/api/v1/monitor/can_delete"));
    assert!(!log.iter().any(|e| e.method == "DELETE"
        && (e.path.ends_with(&unmanaged.to_string()) || e.path.ends_with(&other.to_string()))));
}

#[test]
fn bad_files_get_exact_messages_all_at_once() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let p = |f: &str| tmp.path().join(f).display().to_string();
    write(
        tmp.path(),
        "a.tf",
        "resource \"datadog_monitor\" \"x\" {\n  name = \"x\"\n  query = \n}\n",
    );
    write(
        tmp.path(),
        "b.tf",
        r#"resource "datadog_monitor" "unknown_arg" {
  name    = "U"
  type    = "metric alert"
  query   = "avg(last_5m):avg:a{*} > 5"
  message = "m"
  colour  = "red"
}

resource "datadog_monitor" "mismatch" {
  name    = "M"
  type    = "metric alert"
  query   = "avg(last_5m):avg:a{*} > 50"
  message = "m"
  monitor_thresholds {
    critical = 40
    warning  = 60
  }
}

resource "datadog_monitor_metric" "dup" {
  name    = "M"
  message = "m"
  metric  = "a.b"
  time_window = "last_7m"
  critical {
    threshold = 5
    notify    = "slack-ops"
  }
}
"#,
    );
    let (code, out, err) = kelpie(&api, &["validate", "--dir", d]);
    assert_eq!(code, 1, "{out}");
    let want = [
        format!("error: {}:3:11: syntax error: invalid expression", p("a.tf")),
        format!("error: {}:6:3: datadog_monitor.unknown_arg: unsupported argument `colour` for datadog_monitor", p("b.tf")),
        format!("error: {}:14:3: datadog_monitor.mismatch: critical threshold (40) does not match the threshold in the query (50)", p("b.tf")),
        format!("error: {}:14:3: datadog_monitor.mismatch: warning threshold (60) must be below the critical threshold (50) for `>`", p("b.tf")),
        format!("error: {}:24:3: datadog_monitor_metric.dup: `time_window` is \"last_7m\"; expected one of", p("b.tf")),
        format!("error: {}:25:3: datadog_monitor_metric.dup: critical.notify: \"slack-ops\" is not a notification handle like @slack-channel or @user@example.com", p("b.tf")),
    ];
    for w in &want {
        assert!(err.contains(w.as_str()), "missing {w:?} in:\n{err}");
    }
    assert!(
        err.contains("error(s); nothing was sent to Datadog."),
        "{err}"
    );
    assert!(api.request_log().is_empty());

    // Duplicate names (which Terraform and Datadog accept) are a warning with both places, not an error.
    std::fs::remove_file(tmp.path().join("a.tf")).unwrap();
    write(
        tmp.path(),
        "b.tf",
        &(ONE.to_string() + &ONE.replace("\"cpu\"", "\"cpu2\"")),
    );
    let (code, _, err) = kelpie(&api, &["validate", "--dir", d]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("warning: {}:9:1: datadog_monitor.cpu2: duplicate name \"CPU high\": datadog_monitor.cpu at {}:2:1 has the same name", p("b.tf"), p("b.tf"))), "{err}");
}

#[test]
fn remote_validation_uses_the_api() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    // Offline checks cannot know this type's query grammar; the API rejects the empty-looking query.
    write(
        tmp.path(),
        "main.tf",
        &ONE.replace("metric alert", "service check")
            .replace("avg(last_5m):avg:system.cpu.user{*} by {host} > 90", " "),
    );
    let (code, out, err) = kelpie(&api, &["validate", "--dir", d, "--remote"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("datadog_monitor.cpu: the Datadog API rejects it: The value provided for parameter 'query' is invalid"), "{err}");
    write(tmp.path(), "main.tf", ONE);
    let (code, out, _) = kelpie(&api, &["validate", "--dir", d, "--remote"]);
    assert_eq!(code, 0, "{out}");
    assert!(api
        .request_log()
        .iter()
        .any(|e| e.path == "/api/v1/monitor/validate" && e.status == 200));
    assert!(api.monitors().is_empty());
}

#[test]
fn failures_are_reported_and_the_next_sync_converges() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(5));
    // Two 503s are retried; one 400 fails one create.
    api.fail_next("POST /api/v1/monitor", 503, 2);
    let (code, out, _) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(api.monitors().len(), 5);
    write(tmp.path(), "main.tf", &many(8));
    api.fail_next("POST /api/v1/monitor", 400, 1);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("failed to create datadog_monitor.m["), "{err}");
    assert!(
        out.contains("Sync: 2 created, 0 updated, 0 replaced, 0 deleted, 1 failed."),
        "{out}"
    );
    assert_eq!(api.monitors().len(), 7);
    let (code, out, _) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Sync: 1 created"), "{out}");
    assert_eq!(api.monitors().len(), 8);
}

/// Monitors per `kelpie-address` tag: more than one is a duplicate.
fn duplicates(api: &MonitorsApiHandle) -> Vec<String> {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for m in api.monitors() {
        for t in m["tags"].as_array().unwrap() {
            if let Some(a) = t.as_str().and_then(|t| t.strip_prefix("kelpie-address:")) {
                *seen.entry(a.to_string()).or_default() += 1;
            }
        }
    }
    seen.into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(a, n)| format!("{a} x{n}"))
        .collect()
}

#[test]
fn rate_limits_are_honoured() {
    // 40 creates, then 40 updates, under 15 requests per 2 s: several windows each, with the Reset header
    // rounded down as Datadog sends it. The client spends each window's budget and waits until the window has
    // surely reset, so (alone on the account) no request is answered 429.
    let api = MonitorsApi::start();
    api.set_rate_limit(15, Duration::from_secs(2));
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(40));
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(api.monitors().len(), 40);
    assert!(out.contains("Sync: 40 created"), "{out}");
    // Plain progress lines when stdout is not a terminal: numbered, and the waits for the rate limit.
    assert!(out.contains("[1/40] created datadog_monitor.m["), "{out}");
    assert!(out.contains("[40/40] created datadog_monitor.m["), "{out}");
    assert!(
        out.contains("waiting for the rate limit until ")
            && out.contains("monitors: 15 requests per 2 s"),
        "{out}"
    );
    write(
        tmp.path(),
        "main.tf",
        &many(40).replace("message = \"m\"", "message = \"changed\""),
    );
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sync: 0 created, 40 updated"), "{out}");
    let log = api.request_log();
    let limited = log.iter().filter(|e| e.status == 429).count();
    assert!(log.len() >= 82, "{}", log.len());
    assert_eq!(
        limited,
        0,
        "{limited} of {} requests were answered 429",
        log.len()
    );
    assert_eq!(kelpie(&api, &["plan", "--dir", d, "--project", "p"]).0, 0);
}

#[test]
fn a_create_applied_but_not_answered_is_found_not_duplicated() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(6));
    // Datadog applies two creates but the answers are lost: one connection dropped, one 504 from a proxy.
    api.fail_after_apply("POST /api/v1/monitor", 0, 1);
    api.fail_after_apply("POST /api/v1/monitor", 504, 1);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sync: 6 created"), "{out}");
    let log = api.request_log();
    assert_eq!(
        log.iter()
            .filter(|e| e.status == 0 || e.status == 504)
            .count(),
        2,
        "{log:?}"
    );
    // Each lost answer was followed by a search by the ownership tags, which found the monitor.
    let searches: Vec<_> = log
        .iter()
        .filter(|e| e.method == "GET" && e.query.contains("kelpie-address"))
        .collect();
    assert_eq!(searches.len(), 2, "{log:?}");
    assert_eq!(api.monitors().len(), 6);
    assert!(duplicates(&api).is_empty(), "{:?}", duplicates(&api));
    assert_eq!(
        log.iter()
            .filter(|e| e.method == "POST" && e.path == "/api/v1/monitor")
            .count(),
        6,
        "no create was sent twice"
    );
    // A create that Datadog did not apply (a 503 before it) is searched for, not found, and sent again.
    write(tmp.path(), "main.tf", &many(7));
    api.fail_next("POST /api/v1/monitor", 503, 1);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(api.monitors().len(), 7);
    assert!(duplicates(&api).is_empty());
    assert_eq!(kelpie(&api, &["plan", "--dir", d, "--project", "p"]).0, 0);
}

#[test]
fn an_interrupted_sync_converges_without_duplicates() {
    let api = MonitorsApi::start();
    api.set_rate_limit(10, Duration::from_secs(2));
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(30));
    let mut child = Command::new(env!("CARGO_BIN_EXE_kelpie"))
        .args(["monitors", "sync", "--dir", d, "--project", "p"])
        .env("DD_HOST", api.url())
        .env("DD_API_KEY", "k")
        .env("DD_APP_KEY", "a")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Interrupt it once some monitors exist: SIGTERM, as a CI runner's cancel sends (SIGINT, Ctrl-C's, would do
    // the same, but a shell starts background jobs with SIGINT ignored, and children inherit that).
    let t = std::time::Instant::now();
    while api.monitors().len() < 8 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "interrupted before the end");
    let made = api.monitors().len();
    assert!((8..30).contains(&made), "{made}");
    // A create may also have been applied with its answer lost at the interruption: the next run finds them
    // all by their tags.
    api.fail_after_apply("POST /api/v1/monitor", 0, 1);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("Sync: {} created, 0 updated", 30 - made)),
        "{out}"
    );
    assert_eq!(api.monitors().len(), 30);
    assert!(duplicates(&api).is_empty(), "{:?}", duplicates(&api));
    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("No changes. 30 monitor(s)"), "{out}");
}

#[test]
fn import_writes_hcl_and_the_next_sync_adopts() {
    let api = MonitorsApi::start();
    let a = api.insert_raw(json!({"name": "Queue backlog", "type": "metric alert",
        "query": "max(last_10m):max:queue.depth{env:prod} by {queue} > 1000", "message": "Backlog ${x} @slack-infra",
        "tags": ["team:infra"], "priority": 2, "options": {"thresholds": {"critical": 1000, "warning": 500}, "renotify_interval": 60}}));
    let b = api.insert_raw(json!({"name": "Host down", "type": "service check", "query": "\"datadog.agent.up\".over(\"*\").by(\"host\").last(2).count_by_status()",
        "message": "down", "tags": ["team:infra"], "options": {"thresholds": {"critical": 1, "ok": 1}}}));
    let c = api.insert_raw(json!({"name": "Not ours", "type": "query alert", "query": "avg(last_5m):avg:z{*} > 1", "tags": ["team:web"]}));
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    let out_file = tmp.path().join("imported.tf");
    let (code, _, err) = kelpie(
        &api,
        &[
            "import",
            "--query",
            "tag:team:infra",
            "--out",
            out_file.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let hcl = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        hcl.contains("resource \"datadog_monitor\" \"queue_backlog\""),
        "{hcl}"
    );
    assert!(
        hcl.contains(&format!(
            "import {{\n  to = datadog_monitor.queue_backlog\n  id = \"{a}\"\n}}"
        )),
        "{hcl}"
    );
    assert!(
        hcl.contains("message = \"Backlog $${x} @slack-infra\""),
        "{hcl}"
    );
    assert!(hcl.contains("renotify_interval = 60"), "{hcl}");
    assert!(!hcl.contains("Not ours"));

    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "infra"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains(&format!("~ datadog_monitor.queue_backlog (id {a}, adopting an existing monitor by import block (id {a}))")), "{out}");
    assert!(out.contains("0 to create"), "{out}");
    assert_eq!(
        kelpie(&api, &["sync", "--dir", d, "--project", "infra"]).0,
        0
    );
    assert_eq!(api.monitors().len(), 3);
    for id in [a, b] {
        let tags = api.get(id).unwrap()["tags"].clone();
        assert!(
            tags.as_array()
                .unwrap()
                .contains(&Value::from("kelpie-project:infra")),
            "{tags}"
        );
    }
    assert_eq!(
        api.get(a).unwrap()["message"]
            .as_str()
            .unwrap()
            .lines()
            .next(),
        Some("Backlog ${x} @slack-infra")
    );
    assert!(!api.get(c).unwrap()["tags"]
        .as_array()
        .unwrap()
        .contains(&Value::from("managed-by:kelpie")));
    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "infra"]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn unmanaged_monitor_with_same_name_and_query_is_adopted() {
    let api = MonitorsApi::start();
    let id = api.insert_raw(json!({"name": "CPU high", "type": "metric alert",
        "query": "avg(last_5m):avg:system.cpu.user{*} by {host}  > 90", "message": "old", "tags": []}));
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", ONE);
    let (code, out, _) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "~ datadog_monitor.cpu (id {id}, adopting an existing monitor by same name and query)"
        )),
        "{out}"
    );
    assert_eq!(api.monitors().len(), 1);
    assert!(api.get(id).unwrap()["message"]
        .as_str()
        .unwrap()
        .starts_with("CPU @slack-ops"));
}

#[test]
fn variables_from_flags_env_and_files() {
    let api = MonitorsApi::start();
    let d = example_dir();
    let d = d.to_str().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let vf = tmp.path().join("staging.tfvars");
    std::fs::write(&vf, "oncall = \"@pagerduty-staging\"\n").unwrap();
    let (code, out, err) = kelpie_env(
        &api,
        &[
            "sync",
            "--dir",
            d,
            "--project",
            "shop",
            "-var",
            "env=staging",
            "-var-file",
            vf.to_str().unwrap(),
        ],
        &[("TF_VAR_env", "ignored-because-var-wins")],
    );
    assert_eq!(code, 0, "{out}{err}");
    let m = by_address(&api, "datadog_monitor_metric.app.internal_errors").unwrap();
    assert_eq!(m["name"], "App Internal Errors (staging)");
    assert!(m["message"]
        .as_str()
        .unwrap()
        .contains("@pagerduty-staging"));
    let (code, _, err) = kelpie_env(&api, &["validate", "--dir", d, "-var", "nope=1"], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("-var sets \"nope\", but no variable \"nope\" is declared"),
        "{err}"
    );
}

#[test]
fn plan_pages_the_list() {
    let api = MonitorsApi::start();
    for i in 0..1500 {
        api.insert_raw(json!({"name": format!("hand {i}"), "type": "query alert", "query": "avg(last_5m):avg:x{*} > 1", "tags": []}));
    }
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "main.tf", ONE);
    let d = tmp.path().to_str().unwrap();
    let lists = |api: &MonitorsApiHandle| -> Vec<_> {
        api.request_log()
            .into_iter()
            .filter(|e| e.path == "/api/v1/monitor")
            .collect()
    };
    // --show-unmanaged lists the whole account, 1,000 per page.
    let (code, out, _) = kelpie(
        &api,
        &["plan", "--dir", d, "--project", "p", "--show-unmanaged"],
    );
    assert_eq!(code, 2);
    assert!(
        out.contains("Left alone: 1500 monitor(s) not managed by kelpie"),
        "{out}"
    );
    assert!(out.contains("    unmanaged        1001  hand 0\n"), "{out}");
    let l = lists(&api);
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(l[0].query.contains("page_size=1000"));
    // Without it: the project's monitors, one search by name for the monitor to create, and two counts.
    api.clear_log();
    let (code, out2, _) = kelpie(&api, &["plan", "--dir", d, "--project", "p"]);
    assert_eq!(code, 2);
    assert!(
        out2.contains("Left alone: 1500 monitor(s) not managed by kelpie and 0 of other kelpie projects (--show-unmanaged lists them)."),
        "{out2}"
    );
    let l = lists(&api);
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(
        l[0].query.contains("monitor_tags=kelpie-project%3Ap"),
        "{l:?}"
    );
    assert!(l[1].query.contains("name="), "{l:?}");
    assert_eq!(api.request_log().len(), 4);
}

#[test]
fn monitor_unit_tests_report_like_promtool() {
    let api = MonitorsApi::start();
    let (code, out, _) = kelpie(&api, &["test", "--dir", example_dir().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("PASS  api errors warn, then page, then recover"),
        "{out}"
    );
    assert!(out.contains("5 passed, 0 failed"), "{out}");
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "main.tf", ONE);
    write(
        tmp.path(),
        "cpu.monitortest.hcl",
        r#"test "cpu pages" {
  monitor = datadog_monitor.cpu
  series "system.cpu.user" {
    tags   = ["host:a"]
    values = "95x10"
  }
  series "system.cpu.user" {
    tags   = ["host:b"]
    values = "10x10"
  }
  expect {
    at    = "5m"
    group = "host:b"
    state = "alert"
  }
}
"#,
    );
    let (code, out, _) = kelpie(&api, &["test", "--dir", tmp.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  cpu pages: at 5m expected alert, got ok for group host:b, value 10"),
        "{out}"
    );
    assert!(out.contains("0 passed, 1 failed"), "{out}");
}

#[test]
fn plan_shows_ownership_tags_and_footer_and_prints_markdown() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(2));
    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "p"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("      ownership  managed-by:kelpie, kelpie-project:p, kelpie-address:datadog_monitor.m.0\n"),
        "{out}"
    );
    assert!(
        out.contains(r#"      footer     "---\nManaged by kelpie from main.tf (datadog_monitor.m[0]). Edits made in the Datadog UI will be overwritten by the next sync.""#),
        "{out}"
    );
    let (code, md, err) = kelpie(
        &api,
        &["plan", "--dir", d, "--project", "p", "--format", "markdown"],
    );
    assert_eq!(code, 2, "{md}{err}");
    assert!(
        md.starts_with("### kelpie monitors plan: project `p`\n"),
        "{md}"
    );
    assert!(
        md.contains("**Plan: 2 to create, 0 to update, 0 to replace, 0 to delete, 0 unchanged.**"),
        "{md}"
    );
    assert!(
        md.contains("| + create | `datadog_monitor.m[0]` | | name \"Monitor 0\" |"),
        "{md}"
    );
    assert!(
        md.contains("`managed-by:kelpie`, `kelpie-project:p`, `kelpie-address:<address>`"),
        "{md}"
    );
    assert!(
        md.contains("> Managed by kelpie from main.tf (datadog_monitor.m[0])."),
        "{md}"
    );
    assert!(
        md.contains("<details><summary>Full plan</summary>\n\n```diff\n+ datadog_monitor.m[0]\n"),
        "{md}"
    );
    // sync --dry-run takes it too; --json and --format markdown together are refused.
    let (code, md2, _) = kelpie(
        &api,
        &[
            "sync",
            "--dry-run",
            "--dir",
            d,
            "--project",
            "p",
            "--format",
            "markdown",
        ],
    );
    assert_eq!((code, &md2), (2, &md));
    let (code, _, err) = kelpie(
        &api,
        &[
            "plan",
            "--dir",
            d,
            "--project",
            "p",
            "--json",
            "--format",
            "markdown",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("--json and --format Markdown disagree"),
        "{err}"
    );
    assert_eq!(kelpie(&api, &["sync", "--dir", d, "--project", "p"]).0, 0);
    let (code, md, _) = kelpie(
        &api,
        &["plan", "--dir", d, "--project", "p", "--format", "markdown"],
    );
    assert_eq!(code, 0);
    assert!(
        md.contains("**No changes.** 2 monitor(s) of project `p` are up to date."),
        "{md}"
    );
    assert_eq!(writes(&api), 2);
}

#[test]
fn a_budget_shared_with_another_client_still_converges() {
    // Someone else spends part of every window (3 requests per second against 20 per 2 s): kelpie's count of
    // what remains is then sometimes too high, the API answers 429, and kelpie waits for the reset and retries.
    let api = MonitorsApi::start();
    api.set_rate_limit(20, Duration::from_secs(2));
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(40));
    let other_get = |addr: std::net::SocketAddr| {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            let _ = s.write_all(b"GET /api/v1/monitor/1 HTTP/1.1\r\nHost: x\r\nDD-API-KEY: k\r\nDD-APPLICATION-KEY: a\r\nConnection: close\r\n\r\n");
            let _ = s.read_to_end(&mut Vec::new());
        }
    };
    // The window kelpie starts in is already spent: its first request is answered 429. Windows are aligned to
    // multiples of 2 s since the epoch; start just after a boundary so that kelpie starts in the same window.
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 2000;
        if (20..300).contains(&now) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for _ in 0..25 {
        other_get(api.addr);
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (addr, stop) = (api.addr, stop.clone());
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                other_get(addr);
                sent += 1;
                std::thread::sleep(Duration::from_millis(333));
            }
            sent
        })
    };
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let others = other.join().unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(others > 0);
    assert!(out.contains("Sync: 40 created"), "{out}");
    assert_eq!(api.monitors().len(), 40);
    assert!(duplicates(&api).is_empty());
    let log = api.request_log();
    let mine: Vec<_> = log
        .iter()
        .filter(|e| e.path != "/api/v1/monitor/1")
        .collect();
    let limited = mine.iter().filter(|e| e.status == 429).count();
    eprintln!(
        "{limited} of {} kelpie requests answered 429; the other client sent {others}",
        mine.len()
    );
    // Far from one 429 per request in flight per window.
    assert!(limited >= 1, "the spent window was noticed");
    assert!(
        limited * 4 <= mine.len(),
        "{limited} of {} answered 429",
        mine.len()
    );
    assert_eq!(kelpie(&api, &["plan", "--dir", d, "--project", "p"]).0, 0);
}

// Issue 13 item 5, monitors sync faults: the API failing midway, rate-limited, refusing the keys, a monitor
// changed or deleted by someone else between plan and sync. Each test checks what is printed, the exit code,
// that the next run converges (plan: no changes) and that monitors kelpie does not own are not touched.

/// A directory of `n` monitors synced once, with monitors kelpie does not own added beside them (returned, to
/// check they are left alone).
fn synced_with_others(n: usize) -> (MonitorsApiHandle, tempfile::TempDir, Vec<Value>) {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(n));
    assert_eq!(kelpie(&api, &["sync", "--dir", d, "--project", "p"]).0, 0);
    let others = add_not_owned(&api);
    (api, tmp, others)
}

/// The three monitors of [`many`] with every message changed.
fn write_changed_messages(dir: &Path) {
    write(
        dir,
        "main.tf",
        &many(3).replace("message = \"m\"", "message = \"changed\""),
    );
}

/// Adds two monitors project `p` does not own (a hand-made one and one of another kelpie project) and returns
/// every monitor `p` does not own, in full, to compare after the faults: any write would change them
/// (`modified` included).
fn add_not_owned(api: &MonitorsApiHandle) -> Vec<Value> {
    api.insert_raw(
        json!({"name": "hand made", "type": "query alert", "query": "avg(last_5m):avg:x{*} > 1",
        "message": "by hand", "tags": ["team:web"]}),
    );
    api.insert_raw(json!({"name": "Monitor 1", "type": "query alert", "query": "avg(last_5m):avg:y{*} > 1",
        "message": "other project",
        "tags": ["managed-by:kelpie", "kelpie-project:other", "kelpie-address:datadog_monitor.m.1"]}));
    not_owned(api)
}

/// Every monitor that is not of project `p`.
fn not_owned(api: &MonitorsApiHandle) -> Vec<Value> {
    api.monitors()
        .into_iter()
        .filter(|m| {
            !m["tags"]
                .as_array()
                .unwrap()
                .contains(&Value::from("kelpie-project:p"))
        })
        .collect()
}

fn id_at(api: &MonitorsApiHandle, addr: &str) -> i64 {
    by_address(api, addr).unwrap()["id"].as_i64().unwrap()
}

/// Plan shows no changes for `many(n)` in project `p`.
fn converged(api: &MonitorsApiHandle, d: &str, n: usize) {
    let (code, out, err) = kelpie(api, &["plan", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("No changes. {n} monitor(s) of project \"p\"")),
        "{out}"
    );
    let mut addresses: Vec<Value> = api
        .monitors()
        .into_iter()
        .filter(|m| {
            m["tags"]
                .as_array()
                .unwrap()
                .contains(&Value::from("kelpie-project:p"))
        })
        .flat_map(|m| m["tags"].as_array().unwrap().clone())
        .filter(|t| t.as_str().unwrap().starts_with("kelpie-address:"))
        .collect();
    addresses.sort_by_key(|t| t.to_string());
    let n_addresses = addresses.len();
    addresses.dedup();
    assert_eq!(addresses.len(), n_addresses, "no duplicates: {addresses:?}");
    assert_eq!(n_addresses, n);
}

#[test]
fn a_monitor_deleted_by_someone_else_before_its_update_is_reported_then_created_again() {
    let (api, tmp, others) = synced_with_others(3);
    let d = tmp.path().to_str().unwrap();
    let gone = id_at(&api, "datadog_monitor.m.1");
    // The file changes every monitor; someone deletes m[1] after kelpie listed it, before its PUT.
    write_changed_messages(tmp.path());
    api.edit_before(
        &format!("PUT /api/v1/monitor/{gone}"),
        OutsideEdit::Delete(gone),
    );
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "error: 1 change(s) failed; run sync again once the cause is fixed:\n  failed to update \
             datadog_monitor.m[1] (id {gone}): it was deleted outside kelpie after this sync read it (HTTP \
             404); the next sync creates it again\n"
        )),
        "{err}"
    );
    assert!(
        out.contains("Sync: 0 created, 2 updated, 0 replaced, 0 deleted, 1 failed."),
        "{out}"
    );
    // As Terraform after its refresh finds the monitor gone: the next plan creates it.
    let (code, out, _) = kelpie(&api, &["plan", "--dir", d, "--project", "p"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("+ datadog_monitor.m[1]"), "{out}");
    assert!(
        out.contains("Plan: 1 to create, 0 to update, 0 to replace, 0 to delete, 2 unchanged."),
        "{out}"
    );
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sync: 1 created, 0 updated"), "{out}");
    converged(&api, d, 3);
    assert!(api.get(gone).is_none());
    assert_eq!(not_owned(&api), others);
}

#[test]
fn a_monitor_changed_by_someone_else_before_its_update_gets_the_files_version() {
    let (api, tmp, others) = synced_with_others(3);
    let d = tmp.path().to_str().unwrap();
    let id = id_at(&api, "datadog_monitor.m.0");
    write_changed_messages(tmp.path());
    // After kelpie read it and before its PUT, someone renames m[0], rewrites its message, sets an option the
    // file does not manage and takes kelpie's ownership tags off.
    let mut edited = api.get(id).unwrap();
    edited["name"] = Value::from("renamed in the UI meanwhile");
    edited["message"] = Value::from("theirs");
    edited["options"]["renotify_interval"] = json!(30);
    edited["tags"] = json!(["team:web"]);
    api.edit_before(
        &format!("PUT /api/v1/monitor/{id}"),
        OutsideEdit::Store(edited),
    );
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    // As with Terraform, the last write wins: the file's version, for what the file manages.
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Sync: 0 created, 3 updated, 0 replaced, 0 deleted, 0 failed."),
        "{out}"
    );
    let m = api.get(id).unwrap();
    assert_eq!(m["name"], "Monitor 0");
    assert!(m["message"].as_str().unwrap().starts_with("changed"), "{m}");
    // The Monitors API has no conditional write (no version or ETag to send with the PUT), so the update
    // carries the options as kelpie read them: an option the file does not manage, set between the read and
    // the write, is lost, as it is with Terraform. (Set before the read, it is kept: see the drift test.)
    assert!(m["options"]["renotify_interval"].is_null(), "{m}");
    let tags = m["tags"].as_array().unwrap();
    for t in [
        "managed-by:kelpie",
        "kelpie-project:p",
        "kelpie-address:datadog_monitor.m.0",
    ] {
        assert!(tags.contains(&Value::from(t)), "{tags:?}");
    }
    converged(&api, d, 3);
    assert_eq!(not_owned(&api), others);
}

#[test]
fn monitors_deleted_by_someone_else_before_sync_deletes_them_are_not_failures() {
    let (api, tmp, others) = synced_with_others(5);
    let d = tmp.path().to_str().unwrap();
    let (m3, m4) = (
        id_at(&api, "datadog_monitor.m.3"),
        id_at(&api, "datadog_monitor.m.4"),
    );
    // m[3] and m[4] leave the file. Someone deletes m[3] before kelpie asks whether it can be deleted (the
    // API then refuses it: not found), and m[4] between that check and kelpie's DELETE (404).
    write(tmp.path(), "main.tf", &many(3));
    api.edit_before("GET /api/v1/monitor/can_delete", OutsideEdit::Delete(m3));
    api.edit_before(
        &format!("DELETE /api/v1/monitor/{m4}"),
        OutsideEdit::Delete(m4),
    );
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "deleted datadog_monitor.m.3 (id {m3}, already gone)"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "deleted datadog_monitor.m.4 (id {m4}, already gone)"
        )),
        "{out}"
    );
    assert!(
        out.contains("Sync: 0 created, 0 updated, 0 replaced, 2 deleted, 0 failed."),
        "{out}"
    );
    converged(&api, d, 3);
    assert_eq!(not_owned(&api), others);
}

#[test]
fn a_monitor_not_owned_with_a_name_kelpie_wants_is_left_alone() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    add_not_owned(&api);
    // "Monitor 1" exists twice, neither ours: by hand with another query, and in project "other".
    api.insert_raw(
        json!({"name": "Monitor 1", "type": "query alert", "query": "avg(last_5m):avg:z{*} > 2",
        "message": "by hand", "tags": []}),
    );
    let others = not_owned(&api);
    write(tmp.path(), "main.tf", &many(3));
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    // Not adopted (another query; the other one is another project's): a monitor of its own.
    assert!(out.contains("+ datadog_monitor.m[1]"), "{out}");
    assert!(
        out.contains("Sync: 3 created, 0 updated, 0 replaced, 0 deleted, 0 failed."),
        "{out}"
    );
    assert_eq!(
        api.monitors()
            .iter()
            .filter(|m| m["name"] == "Monitor 1")
            .count(),
        3
    );
    converged(&api, d, 3);
    assert_eq!(not_owned(&api), others);
}

#[test]
fn the_api_failing_on_the_list_or_midway_is_reported_and_the_next_sync_converges() {
    let (api, tmp, others) = synced_with_others(3);
    let d = tmp.path().to_str().unwrap();
    write_changed_messages(tmp.path());
    // The list answers 500 to every attempt (6): nothing can be planned, nothing is written.
    api.clear_log();
    api.fail_next("GET /api/v1/monitor", 500, 6);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        err,
        "error: cannot list the account's monitors: GET /api/v1/monitor failed with HTTP 500: Internal Server Error\n"
    );
    let log = api.request_log();
    assert_eq!(log.len(), 6, "{log:?}");
    assert!(log.iter().all(|e| e.status == 500), "{log:?}");
    // The API fails midway: one update answered 500 to every attempt; the others are applied.
    let stuck = id_at(&api, "datadog_monitor.m.2");
    api.fail_next(&format!("PUT /api/v1/monitor/{stuck}"), 500, 6);
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!(
            "  failed to update datadog_monitor.m[2] (id {stuck}): Internal Server Error\n"
        )),
        "{err}"
    );
    assert!(
        out.contains("Sync: 0 created, 2 updated, 0 replaced, 0 deleted, 1 failed."),
        "{out}"
    );
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sync: 0 created, 1 updated"), "{out}");
    converged(&api, d, 3);
    assert_eq!(not_owned(&api), others);
}

#[test]
fn a_429_with_its_reset_is_waited_for_and_retried() {
    let (api, tmp, others) = synced_with_others(3);
    let d = tmp.path().to_str().unwrap();
    write_changed_messages(tmp.path());
    // A limit kelpie had not been told of (no headers until now): one update is answered 429 with the budget
    // spent and the window resetting in 1 s.
    let id = id_at(&api, "datadog_monitor.m.0");
    api.fail_next_with_headers(
        &format!("PUT /api/v1/monitor/{id}"),
        429,
        1,
        &[
            ("X-RateLimit-Limit", "10"),
            ("X-RateLimit-Period", "2"),
            ("X-RateLimit-Remaining", "0"),
            ("X-RateLimit-Reset", "1"),
            ("X-RateLimit-Name", "monitors"),
        ],
    );
    api.clear_log();
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Sync: 0 created, 3 updated, 0 replaced, 0 deleted, 0 failed."),
        "{out}"
    );
    assert!(
        out.contains("waiting for the rate limit until ")
            && out.contains("monitors: 10 requests per 2 s"),
        "{out}"
    );
    let log = api.request_log();
    let puts: Vec<_> = log.iter().filter(|e| e.method == "PUT").collect();
    assert_eq!(puts.len(), 4, "{log:?}");
    assert_eq!(
        puts.iter().filter(|e| e.status == 429).count(),
        1,
        "{log:?}"
    );
    assert_eq!(
        puts.iter()
            .filter(|e| e.path == format!("/api/v1/monitor/{id}"))
            .map(|e| e.status)
            .collect::<Vec<_>>(),
        [429, 200]
    );
    converged(&api, d, 3);
    assert_eq!(not_owned(&api), others);
}

#[test]
fn a_refused_key_says_what_to_check() {
    let api = MonitorsApi::start();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    write(tmp.path(), "main.tf", &many(3));
    let others = add_not_owned(&api);
    api.require_keys("test-api-key", "the-right-app-key");
    let (code, out, err) = kelpie(&api, &["sync", "--dir", d, "--project", "p"]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        err,
        format!(
            "error: cannot list the account's monitors: GET /api/v1/monitor failed with HTTP 403: Forbidden \
             (check that DD_API_KEY and DD_APP_KEY are keys of the account at {} and that the application \
             key may read and write monitors)\n",
            api.url()
        )
    );
    assert_eq!(writes(&api), 0);
    // A 403 is not retried: one request.
    assert_eq!(api.request_log().len(), 1, "{:?}", api.request_log());
    let right = [("DD_APP_KEY", "the-right-app-key")];
    let (code, out, err) = kelpie_env(&api, &["sync", "--dir", d, "--project", "p"], &right);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Sync: 3 created"), "{out}");
    let (code, out, _) = kelpie_env(&api, &["plan", "--dir", d, "--project", "p"], &right);
    assert_eq!(code, 0, "{out}");
    assert_eq!(not_owned(&api), others);
}
