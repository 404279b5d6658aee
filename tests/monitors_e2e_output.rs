//! End-to-end tests of `kelpie monitors` (the real binary) against the Monitors API stand-in: what the commands
//! print. `validate`'s messages (all the errors of all files at once, and the API's own verdict with
//! `--remote`), `test`'s report of monitor unit tests, and `plan`'s ownership tags, footer, Markdown form and
//! account of the monitors it leaves alone (listed page by page).

mod common;

use common::monitors::*;
use kelpie_standin::monitors_api::{MonitorsApi, MonitorsApiHandle};
use serde_json::json;

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
