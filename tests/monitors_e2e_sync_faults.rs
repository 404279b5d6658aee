//! End-to-end tests of `kelpie monitors` (the real binary) against the Monitors API stand-in: sync faults
//! (issue 13 item 5). The API failing midway, rate-limited, refusing the keys, a monitor changed or deleted by
//! someone else between plan and sync. Each test checks what is printed, the exit code, that the next run
//! converges (plan: no changes) and that monitors kelpie does not own are not touched.

mod common;

use common::monitors::*;
use kelpie_standin::monitors_api::{MonitorsApi, MonitorsApiHandle, OutsideEdit};
use serde_json::{json, Value};
use std::path::Path;

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
