//! End-to-end tests of `kelpie monitors` (the real binary) against the Monitors API stand-in: plan and sync of
//! a directory. The example from plan to sync and a second sync that writes nothing, drift made in the UI put
//! back, a rename with `moved`, safe deletion, adoption of existing monitors (`import` and same name and
//! query), and variables from flags, the environment and files.

mod common;

use common::monitors::*;
use kelpie_standin::monitors_api::MonitorsApi;
use serde_json::{json, Value};

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
