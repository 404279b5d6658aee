//! Terraform compatibility through the API: every corpus directory under `tests/tf_corpus/` synced with the
//! real binary to the Monitors API stand-in plans clean right after (no spurious diff from the API's
//! normalizations), and composites get their children's real ids.

mod common;

use common::tfcompat::*;
use kelpie_standin::monitors_api::{MonitorsApi, MonitorsApiHandle};
use serde_json::json;

/// `kelpie monitors ARGS` against `api`: the exit code, and stdout followed by stderr.
fn kelpie(api: &MonitorsApiHandle, args: &[&str]) -> (i32, String) {
    let (code, out, err) = common::monitors::kelpie(api, args);
    (code, out + &err)
}

/// Syncs the corpus directory `dir` as project `dir` (with `extra` arguments), then checks that a plan right
/// after shows no changes.
fn sync_then_plan_clean(api: &MonitorsApiHandle, dir: &str, extra: &[&str]) {
    let d = corpus(dir);
    let mut args = vec!["sync", "--dir", d.to_str().unwrap(), "--project", dir];
    args.extend(extra.iter().copied());
    let (code, out) = kelpie(api, &args);
    assert_eq!(code, 0, "{dir}: {out}");
    args[0] = "plan";
    let (code, out) = kelpie(api, &args);
    assert_eq!(
        code, 0,
        "{dir}: a plan right after sync shows changes:\n{out}"
    );
}

fn remote_by_name(api: &MonitorsApiHandle, name: &str) -> serde_json::Value {
    api.monitors()
        .into_iter()
        .find(|m| m["name"] == json!(name))
        .unwrap_or_else(|| panic!("no monitor named {name}"))
}

#[test]
fn composites_get_their_childrens_real_ids() {
    let api = MonitorsApi::start();
    let d = corpus("composite");
    let d = d.to_str().unwrap();
    let (code, out) = kelpie(&api, &["plan", "--dir", d]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("+ datadog_monitor.api_down"), "{out}");
    assert!(out.contains("Plan: 8 to create"), "{out}");
    let (code, out) = kelpie(&api, &["sync", "--dir", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("8 created"), "{out}");
    let id = |name: &str| remote_by_name(&api, name)["id"].as_i64().unwrap();
    assert_eq!(
        remote_by_name(&api, "API down")["query"],
        json!(format!("{} && {}", id("API errors"), id("API p99 latency")))
    );
    assert_eq!(
        remote_by_name(&api, "API any latency")["query"],
        json!(format!(
            "{} || {}",
            id("API p95 latency"),
            id("API p99 latency")
        ))
    );
    assert_eq!(
        remote_by_name(&api, "worker both")["query"],
        json!(format!(
            "{} && !{}",
            id("worker check 0"),
            id("worker check 1")
        ))
    );
    let (code, out) = kelpie(&api, &["plan", "--dir", d]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("8 monitor(s) of project \"composite\" are up to date"),
        "{out}"
    );
}

#[test]
fn every_corpus_directory_plans_clean_after_sync() {
    let api = MonitorsApi::start();
    for (dir, extra) in [
        ("module_outputs", vec![]),
        ("relative_module/examples/use", vec![]),
        ("functions", vec![]),
        ("dynamic_blocks", vec![]),
        ("conversions", vec!["-var", "flag=true"]),
        ("var_files", vec![]),
        ("composite", vec![]),
        ("monitor_types", vec![]),
        ("provider_args", vec![]),
        ("lifecycle", vec![]),
        ("object_for_lines", vec![]),
    ] {
        sync_then_plan_clean(&api, dir, &extra);
    }
}

#[test]
fn new_corpus_directories_plan_clean_after_sync() {
    let api = MonitorsApi::start();
    for dir in ["tf_json", "monitor_attributes", "local_reads_monitor"] {
        sync_then_plan_clean(&api, dir, &[]);
    }
    let id = |name: &str| remote_by_name(&api, name)["id"].as_i64().unwrap();
    assert_eq!(
        remote_by_name(&api, "summary of disk 1 and web errors")["query"],
        json!(format!("{} && {}", id("CPU high"), id("api errors")))
    );
}
