//! Terraform compatibility, the language: functions, `file` and `templatefile`, dynamic blocks, conversions and
//! declared types of variables, variable files in Terraform's order, strings nested in interpolations, `for`
//! expressions broken across lines, provider functions, and the JSON syntax (`*.tf.json`). Each construct has
//! a corpus directory under `tests/tf_corpus/` (written for kelpie, modelled on how public monitor libraries
//! are built) or files written by the test, and must load with the values Terraform would compute.

mod common;

use common::tfcompat::*;
use kelpie_monitors::load::{load_dir, LoadOptions};
use serde_json::json;

#[test]
fn terraform_functions_files_and_templates() {
    let l = load("functions");
    let checkout = get(&l, r#"datadog_monitor.service["checkout"]"#);
    assert_eq!(checkout.name, "Checkout latency (STAG)");
    assert_eq!(
        checkout.query,
        "avg(last_5m):avg:trace.http.request.duration{service:checkout,env:staging} > 2.5"
    );
    assert_eq!(
        checkout.message,
        "Latency of checkout is above the threshold.\n@slack-ops\n@pagerduty-ops\nRunbook: https://wiki/checkout (has an SLO)\n"
    );
    assert_eq!(
        checkout.tags,
        vec!["env:staging", "team:core", "service:checkout"]
    );
    assert_eq!(checkout.priority, Some(2));
    assert_eq!(checkout.options["renotify_interval"], json!(60));
    assert_eq!(checkout.options["thresholds"]["warning"], json!(1.5));
    let search = get(&l, r#"datadog_monitor.service["search"]"#);
    assert_eq!(
        search.message,
        "Latency of search is above the threshold.\n@slack-search\nRunbook: https://wiki/search\n"
    );
    assert_eq!(search.priority, None);
    assert!(search.options["thresholds"].get("warning").is_none());
    let checks = get(&l, "datadog_monitor.checks[0]");
    assert_eq!(checks.name, "Checks 4 5 true");
    assert_eq!(
        checks.message,
        "The HTTP check failed on 2 windows.\nReverse: b,a"
    );
    let mp = get(&l, "datadog_monitor.module_path");
    assert_eq!(mp.query, "avg(last_5m):avg:system.load.1{*} > 4");
    assert_eq!(mp.message, "read from modules/svc/limits.json");
}

#[test]
fn dynamic_blocks_make_optional_blocks() {
    let l = load("dynamic_blocks");
    let cpu = get(&l, r#"datadog_monitor.generic["cpu"]"#);
    assert_eq!(
        cpu.options["thresholds"],
        json!({"critical": 90.0, "warning": 80.0})
    );
    let mem = get(&l, r#"datadog_monitor.generic["mem"]"#);
    assert_eq!(mem.options["thresholds"], json!({"critical": 0.1}));
    // for_each = [] makes no block: the threshold comes from the query.
    let none = get(&l, "datadog_monitor.no_thresholds_block");
    assert_eq!(none.options["thresholds"]["critical"], json!(4.0));
}

#[test]
fn strings_convert_to_bools_and_numbers_as_in_terraform() {
    let opts = LoadOptions {
        vars: vec!["flag=true".into()],
        ..Default::default()
    };
    let l = load_with("conversions", &opts);
    let cpu = get(&l, "datadog_monitor.cpu[0]");
    assert_eq!(
        cpu.options["thresholds"],
        json!({"critical": 90.0, "warning": 80.0})
    );
    assert_eq!(cpu.options["notify_no_data"], json!(false));
    assert_eq!(cpu.priority, Some(3));
    get(&l, "datadog_monitor.flagged[0]");
    let opts = LoadOptions {
        vars: vec!["flag=false".into(), "enabled=false".into()],
        ..Default::default()
    };
    assert!(load_with("conversions", &opts).monitors.is_empty());
}

#[test]
fn json_var_files_in_terraform_order() {
    // terraform.tfvars.json, then *.auto.tfvars.json, then -var-file, then -var.
    let l = load("var_files");
    let m = &l.monitors[0];
    assert_eq!(m.query, "avg(last_5m):avg:app.errors{env:json} > 7");
    assert_eq!(m.tags, vec!["a:1"]);
    let opts = LoadOptions {
        var_files: vec![corpus("var_files/extra.tfvars.json")],
        vars: vec!["env=cli".into()],
        ..Default::default()
    };
    let l = load_with("var_files", &opts);
    let m = &l.monitors[0];
    assert_eq!(m.query, "avg(last_10m):avg:app.errors{env:cli} > 7");
    assert_eq!(m.tags, vec!["b:2", "c:3"]);
}

#[test]
fn strings_nested_in_interpolations_keep_their_escapes() {
    // A service-check scope built as the filter-tag modules of public libraries build it: a quoted string
    // inside an interpolation inside a string inside an interpolation.
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("main.tf"),
        r#"
variable "including" { default = "env:prod,team:core" }
variable "excluding" { default = "host:a" }
locals {
  sep = ","
  service_check = ".over(\"${replace(var.including, "${local.sep}", "\"${local.sep}\"")}\")${var.excluding == "" ? "" : ".exclude(\"${replace(var.excluding, "${local.sep}", "\"${local.sep}\"")}\")"}"
}
resource "datadog_monitor" "http" {
  name    = "HTTP"
  type    = "service check"
  query   = "\"http.can_connect\"${local.service_check}.by(\"host\").last(2).count_by_status()"
  message = "m"
}
"#,
    )
    .unwrap();
    let l = load_dir(t.path(), &LoadOptions::default());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(
        l.monitors[0].query,
        r#""http.can_connect".over("env:prod","team:core").exclude("host:a").by("host").last(2).count_by_status()"#
    );
}

#[test]
fn variables_convert_to_their_declared_type() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(
        t.path().join("main.tf"),
        r#"
variable "critical" {
  type    = number
  default = "90"
}
variable "settings" {
  type = object({
    enabled  = optional(bool, true)
    window   = optional(string, "last_5m")
    warning  = optional(number)
    tags     = optional(list(string), [])
    renotify = number
  })
  default = { renotify = "60", tags = ["a:1"] }
}
resource "datadog_monitor" "m" {
  count   = var.settings.enabled ? 1 : 0
  name    = "M"
  type    = "metric alert"
  query   = "avg(${var.settings.window}):avg:system.cpu.user{*} > ${var.critical}"
  message = "m"
  tags    = var.settings.tags
  renotify_interval = var.settings.renotify + 0

  monitor_thresholds {
    critical = var.critical
    warning  = var.settings.warning
  }
}
"#,
    )
    .unwrap();
    let l = load_dir(t.path(), &LoadOptions::default());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let m = &l.monitors[0];
    assert_eq!(m.query, "avg(last_5m):avg:system.cpu.user{*} > 90");
    assert_eq!(m.tags, vec!["a:1"]);
    assert_eq!(m.options["renotify_interval"], json!(60));
    assert_eq!(m.options["thresholds"], json!({"critical": 90.0}));
    let bad = LoadOptions {
        vars: vec!["critical=ninety".into()],
        ..Default::default()
    };
    let errs: Vec<String> = load_dir(t.path(), &bad)
        .errors
        .iter()
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0]
            == "variable \"critical\": the value given (ninety) is not a valid number: unknown name `ninety`",
        "{errs:?}"
    );
}

#[test]
fn object_for_expressions_broken_across_lines_and_cumulative_windows() {
    let l = load("object_for_lines");
    assert_eq!(l.monitors.len(), 2);
    let spans = get(&l, "datadog_monitor.monthly_spans");
    assert_eq!(spans.name, "prod-checkout: monthly ingested spans");
    assert_eq!(spans.tags, vec!["env:prod", "service:checkout"]);
    assert_eq!(
        spans.query,
        "sum(current_1mo):sum:datadog.estimated_usage.apm.ingested_spans{*}.as_count() > 1000"
    );
    assert_eq!(
        spans.options["scheduling_options"],
        json!({"evaluation_window": {"day_starts": "00:00", "month_starts": 1}})
    );
    assert_eq!(
        get(&l, "datadog_monitor.daily_errors").options["thresholds"]["critical"],
        json!(500.0)
    );
    // A line after a joined expression keeps its number in messages.
    let errs = errors_of(
        &[(
            "main.tf",
            "locals {\n  m = { for k, v in { a = 1 } : k => v > 0 ? v :\n    0 }\n}\nresource \"datadog_monitor\" \"x\" {\n  name    = \"X\"\n  type    = \"metric alert\"\n  query   = \"avg(current_2d):avg:a{*} > 1\"\n  message = \"m ${local.m.a}\"\n}\n",
        )],
        &LoadOptions::default(),
    );
    assert_eq!(
        errs,
        vec!["main.tf:8:3: datadog_monitor.x: invalid query: invalid time window `current_2d` (expected e.g. last_5m, last_1h, last_1d, or a cumulative current_1d)"]
    );
}

#[test]
fn tf_json_files_read_as_their_native_syntax() {
    // *.tf.json (Terraform's JSON syntax) next to a .tf file, and a local module written in it.
    let l = load("tf_json");
    assert_eq!(l.monitors.len(), 4, "{:?}", l.monitors);
    assert_eq!(l.ignored.get("aws_sqs_queue"), Some(&1));
    let cpu = get(&l, "datadog_monitor.cpu");
    assert_eq!(cpu.name, "CPU high on prod");
    assert_eq!(
        cpu.query,
        "avg(last_5m):avg:system.cpu.user{env:prod} by {host} > 90"
    );
    // Variable defaults are literal: `${…}` in one stays text.
    assert_eq!(
        cpu.message,
        "CPU is high. \"Check\" the hosts. cost ${not_a_template}"
    );
    assert_eq!(
        cpu.tags,
        vec!["env:prod", "managed:terraform", "team:infra"]
    );
    assert_eq!(cpu.options["thresholds"]["critical"], json!(90.0));
    assert_eq!(cpu.options["thresholds"]["warning"], json!(80.0));
    let web = get(&l, "datadog_monitor.errors[1]");
    assert_eq!(web.name, "Errors on web");
    assert_eq!(web.options["thresholds"]["critical"], json!(10.0));
    let svc = get(&l, "module.checkout.datadog_monitor.latency");
    assert_eq!(svc.name, "checkout latency");
    assert_eq!(svc.message, "@pagerduty");
    assert!(
        svc.query.contains("{service:checkout,env:prod}"),
        "{}",
        svc.query
    );
}

#[test]
fn tf_json_errors_name_the_json_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("m.tf.json"),
        "{\n  \"resource\": {\n    \"datadog_monitor\": {\n      \"m\": {\n        \"name\": \"x\",\n        \"type\": \"metric alert\",\n        \"query\": \"${var.missing}\",\n        \"message\": \"m\"\n      }\n    }\n  }\n}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.tf.json"), "{ \"locals\": [1, }").unwrap();
    let l = load_dir(dir.path(), &LoadOptions::default());
    let errors: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].contains("bad.tf.json:1:") && errors[0].contains("invalid JSON"),
        "{errors:#?}"
    );
    assert!(
        errors[1].contains("m.tf.json:7:") && errors[1].contains("variable \"missing\""),
        "{errors:#?}"
    );
}

#[test]
fn provider_functions_builtin_ones_work_others_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.tf"),
        r#"locals {
  unused = provider::aws::arn_parse("arn:aws:iam::444455556666:role/example")
  limits = provider::terraform::decode_tfvars("critical = 90\nwarning = 80")
}
resource "datadog_monitor" "ok" {
  name    = "limits ${provider::terraform::encode_expr([local.limits.critical, "x"])}"
  type    = "metric alert"
  query   = "avg(last_5m):avg:x{*} > ${local.limits.critical}"
  message = "m"
}
resource "datadog_monitor" "needs_aws" {
  name    = provider::aws::arn_parse("arn:aws:iam::444455556666:role/example").account_id
  type    = "metric alert"
  query   = "avg(last_5m):avg:x{*} > 1"
  message = "m"
}
"#,
    )
    .unwrap();
    let l = load_dir(dir.path(), &LoadOptions::default());
    let errors: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("datadog_monitor.needs_aws: name: the provider function `provider::aws::arn_parse` cannot be evaluated offline"),
        "{errors:#?}"
    );
    let ok = get(&l, "datadog_monitor.ok");
    assert_eq!(ok.name, r#"limits [90, "x"]"#);
    assert_eq!(ok.query, "avg(last_5m):avg:x{*} > 90");
}
