//! Terraform compatibility, the Datadog provider: monitor types and their query grammar, newer provider
//! arguments (RUM variables, scheduling options, assets, dynamic thresholds, `datadog_monitor_json`) and
//! `lifecycle`. Each must load as the provider would send it (corpus directories under `tests/tf_corpus/`).

mod common;

use common::tfcompat::*;
use kelpie_monitors::load::LoadOptions;
use serde_json::json;

#[test]
fn query_grammar_and_other_monitor_types() {
    let l = load("monitor_types");
    assert_eq!(l.monitors.len(), 11);
    // The query's threshold becomes thresholds.critical where Datadog copies it.
    assert_eq!(
        get(&l, "datadog_monitor.load_change").options["thresholds"]["critical"],
        json!(2.0)
    );
    assert_eq!(
        get(&l, "datadog_monitor.disk_forecast").options["threshold_windows"],
        json!({"trigger_window": "last_30m", "recovery_window": "last_30m"})
    );
    let errs = errors_of(
        &[(
            "main.tf",
            r#"
resource "datadog_monitor" "l" {
  name    = "L"
  type    = "log alert"
  query   = "logs(\"status:error\").index(\"*\").rollup(\"count\").last(\"5m\") > 100"
  message = "m"
  monitor_thresholds {
    critical = 90
  }
}
resource "datadog_monitor" "c" {
  name    = "C"
  type    = "composite"
  query   = "123 && "
  message = "m"
}
"#,
        )],
        &LoadOptions::default(),
    );
    assert_eq!(
        errs,
        vec![
            "main.tf:7:3: datadog_monitor.l: critical threshold (90) does not match the threshold in the query (100)",
            "main.tf:14:3: datadog_monitor.c: invalid query: the composite query ends with an operator",
        ]
    );
}

#[test]
fn newer_provider_arguments_and_monitor_json() {
    let l = load("provider_args");
    let rum = get(&l, "datadog_monitor.rum_errors");
    assert_eq!(
        rum.options["variables"],
        json!([
            {"name": "query1", "data_source": "rum", "indexes": ["*"], "compute": {"aggregation": "count"},
             "search": {"query": "@type:error @application.name:shop"},
             "group_by": [{"facet": "@view.name", "limit": 10, "sort": {"aggregation": "count", "order": "desc"}}]},
            {"name": "query2", "data_source": "rum", "indexes": ["*"], "compute": {"aggregation": "count"},
             "search": {"query": "@type:view @application.name:shop"}}
        ])
    );
    assert_eq!(rum.extra["draft_status"], json!("published"));
    let batch = get(&l, "datadog_monitor.daily_batch");
    assert_eq!(
        batch.options["scheduling_options"],
        json!({"evaluation_window": {"day_starts": "04:00"},
               "custom_schedule": {"recurrences": [{"rrule": "FREQ=DAILY;INTERVAL=1",
                   "start": "2024-01-01T06:00:00", "timezone": "Europe/Paris"}]}})
    );
    assert_eq!(
        batch.extra["assets"],
        json!([
            {"name": "dashboard", "url": "https://app.datadoghq.com/dashboard/abc-def", "category": "dashboard"},
            {"name": "runbook", "url": "https://wiki.example.com/runbooks/batch", "category": "runbook"}
        ])
    );
    let dynamic = get(&l, "datadog_monitor.dynamic_threshold");
    assert_eq!(
        dynamic.options["thresholds"],
        json!({"critical_query": "formula(\"2 * query1\").rollup(\"avg\").last(\"1w\")",
               "critical_recovery_query": "formula(\"1.5 * query1\").rollup(\"avg\").last(\"1w\")"})
    );
    let j = get(&l, "datadog_monitor_json.from_json");
    assert_eq!(j.name, "Queue depth (JSON)");
    assert_eq!(j.tags, vec!["team:orders"]);
    assert_eq!(j.options["renotify_interval"], json!(30));
}

#[test]
fn lifecycle_ignore_changes_and_silenced() {
    let l = load("lifecycle");
    assert!(get(&l, "datadog_monitor.muted_by_hand")
        .options
        .get("silenced")
        .is_none());
    assert_eq!(
        get(&l, "datadog_monitor.silenced_map").options["silenced"],
        json!({})
    );
}
