//! The Terraform constructs of public monitor libraries, one corpus directory per construct under
//! `tests/tf_corpus/` (written for kelpie, modelled on how those libraries are built): each must load with
//! the values Terraform would compute.

use kelpie_monitors::load::{load_dir, LoadOptions, Loaded};
use kelpie_monitors::model::Monitor;
use kelpie_standin::monitors_api::{MonitorsApi, MonitorsApiHandle};
use serde_json::json;
use std::path::{Path, PathBuf};

fn corpus(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tf_corpus")
        .join(dir)
}

fn load_with(dir: &str, opts: &LoadOptions) -> Loaded {
    let l = load_dir(&corpus(dir), opts);
    let errors: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{dir}: {errors:#?}");
    l
}

fn load(dir: &str) -> Loaded {
    load_with(dir, &LoadOptions::default())
}

fn get<'a>(l: &'a Loaded, address: &str) -> &'a Monitor {
    l.monitors
        .iter()
        .find(|m| m.address == address)
        .unwrap_or_else(|| {
            let all: Vec<&str> = l.monitors.iter().map(|m| m.address.as_str()).collect();
            panic!("no monitor {address}; have {all:?}")
        })
}

#[test]
fn module_outputs_of_plain_count_and_for_each_modules() {
    let l = load("module_outputs");
    assert_eq!(l.monitors.len(), 4);
    let cpu = get(&l, "datadog_monitor.cpu");
    assert_eq!(
        cpu.query,
        "avg(last_5m):avg:system.cpu.user{env:prod} by {host} > 90"
    );
    assert_eq!(cpu.message, "CPU is high. @slack-payments (team payments)");
    assert_eq!(
        cpu.tags,
        vec!["env:prod", "managed:terraform", "owner:platform"]
    );
    let cart = get(&l, r#"datadog_monitor.service_errors["cart"]"#);
    assert_eq!(
        cart.query,
        "sum(last_10m):sum:trace.http.request.errors{service:cart,env:prod}.as_count() > 10"
    );
    assert_eq!(cart.message, "Errors on cart. @slack-search (team search)");
    get(&l, r#"datadog_monitor.service_errors["checkout"]"#);
    // A module call whose input needs another module's outputs (a for over a for_each module).
    assert_eq!(
        get(&l, "datadog_monitor.all_teams").message,
        "@slack-payments (team payments) @slack-search (team search) (team all)"
    );
}

#[test]
fn module_source_relative_to_the_directory_given() {
    // `--dir examples/use` with `source = "../.."`, as module repositories ship their examples.
    let l = load("relative_module/examples/use");
    let api = get(&l, "module.api.datadog_monitor.latency");
    assert_eq!(
        api.query,
        "avg(last_15m):avg:trace.http.request.duration{service:api} > 5"
    );
    let web = get(&l, "module.web.datadog_monitor.latency");
    assert_eq!(web.options["thresholds"]["warning"], json!(4.0));
    // The module itself is a root too (its terraform.tfvars sets the service).
    let root = load("relative_module");
    assert_eq!(root.monitors[0].name, "standalone p99 latency");
}

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

/// The errors of loading `files` (name, text), with the temporary directory's path cut off.
fn errors_of(files: &[(&str, &str)], opts: &LoadOptions) -> Vec<String> {
    let t = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = t.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let prefix = format!("{}/", t.path().display());
    load_dir(t.path(), opts)
        .errors
        .iter()
        .map(|d| d.to_string().replace(&prefix, ""))
        .collect()
}

const MON: &str = r#"
resource "datadog_monitor" "m" {
  name    = "M"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.cpu.user{*} > 90"
  message = "m"
  tags    = local.all_tags.base_tags
}
"#;

#[test]
fn an_unset_variable_used_through_locals_is_named_once() {
    let vars = r#"
variable "team" {}
locals {
  base     = ["team:${var.team}"]
  all_tags = { base_tags = local.base, extra = [] }
}
"#;
    let errs = errors_of(
        &[("vars.tf", vars), ("main.tf", MON)],
        &LoadOptions::default(),
    );
    assert_eq!(
        errs,
        vec!["vars.tf:2:1: variable \"team\" is not set: give it a default, -var team=..., -var-file or TF_VAR_team"]
    );
}

#[test]
fn errors_name_the_root_cause() {
    // An unknown function is reported as such, where it is called, with a suggestion.
    let errs = errors_of(
        &[(
            "main.tf",
            r#"
locals {
  all_tags = { base_tags = [lenght("x")] }
}
resource "datadog_monitor" "m" {
  name    = "M"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.cpu.user{*} > 90"
  message = "m"
  tags    = local.all_tags.base_tags
}
"#,
        )],
        &LoadOptions::default(),
    );
    assert_eq!(
        errs,
        vec!["main.tf:3:3: local.all_tags: unknown function `lenght`; did you mean \"length\"?"]
    );
    // Another provider's resource, only when a monitor needs it; an unknown argument with a suggestion.
    let errs = errors_of(
        &[(
            "main.tf",
            r#"
resource "aws_sqs_queue" "dlq" { name = "dlq" }
locals { unused = aws_sqs_queue.dlq.arn }
resource "datadog_monitor" "m" {
  name    = "M"
  type    = "metric alert"
  query   = "avg(last_5m):avg:aws.sqs.approximate_number_of_messages_visible{queuename:${aws_sqs_queue.dlq.name}} > 90"
  mesage  = "m"
}
"#,
        )],
        &LoadOptions::default(),
    );
    assert_eq!(
        errs,
        vec!["main.tf:7:3: datadog_monitor.m: query: `aws_sqs_queue.dlq.name` is an attribute of a resource that kelpie does not read; only Terraform knows its value"]
    );
    // A module's missing output; a count module's repeated error is reported once.
    let errs = errors_of(
        &[
            (
                "main.tf",
                r#"
module "scope" {
  source = "./scope"
}
module "svc" {
  count  = 3
  source = "./svc"
}
resource "datadog_monitor" "m" {
  name    = "M"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.cpu.user{${module.scope.filtre}} > 90"
  message = "m"
}
"#,
            ),
            ("scope/main.tf", "output \"filter\" { value = \"env:prod\" }\n"),
            (
                "svc/main.tf",
                "resource \"datadog_monitor\" \"m\" {\n  name = \"S\"\n  type = \"metric alert\"\n  query = \"avg(last_5m):avg:a{*} > 1\"\n  message = \"m\"\n  nope = 1\n}\n",
            ),
        ],
        &LoadOptions::default(),
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert_eq!(
        errs[0],
        "svc/main.tf:6:3: module.svc[0].datadog_monitor.m: unsupported argument `nope` for datadog_monitor (and 2 more instance(s) of this line)"
    );
    assert_eq!(
        errs[1],
        "main.tf:12:3: datadog_monitor.m: query: `module.scope` has no output \"filtre\"; did you mean \"filter\"?"
    );
}

fn kelpie(api: &MonitorsApiHandle, args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kelpie"))
        .arg("monitors")
        .args(args)
        .env("DD_HOST", api.url())
        .env("DD_API_KEY", "k")
        .env("DD_APP_KEY", "k")
        .env("NO_COLOR", "1")
        .env_remove("DD_SITE")
        .output()
        .expect("run kelpie");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
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
        let d = corpus(dir);
        let mut args = vec!["sync", "--dir", d.to_str().unwrap(), "--project", dir];
        args.extend(extra.iter().copied());
        let (code, out) = kelpie(&api, &args);
        assert_eq!(code, 0, "{dir}: {out}");
        args[0] = "plan";
        let (code, out) = kelpie(&api, &args);
        assert_eq!(
            code, 0,
            "{dir}: a plan right after sync shows changes:\n{out}"
        );
    }
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
fn registry_modules_are_read_where_terraform_init_put_them() {
    let t = tempfile::tempdir().unwrap();
    let w = |p: &str, text: &str| {
        let p = t.path().join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w(
        "main.tf",
        r#"
module "this" {
  source  = "example/label/null"
  version = "0.25.0"
  env     = "prod"
}
module "gone" {
  source = "example/other/null"
}
resource "datadog_monitor" "m" {
  count   = module.this.enabled ? 1 : 0
  name    = "CPU ${module.this.id}"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.cpu.user{env:${module.this.env}} > 90"
  message = "m"
}
"#,
    );
    w(
        ".terraform/modules/modules.json",
        r#"{"Modules":[{"Key":"","Source":"","Dir":"."},{"Key":"this","Source":"registry.terraform.io/example/label/null","Version":"0.25.0","Dir":".terraform/modules/this"}]}"#,
    );
    w(
        ".terraform/modules/this/main.tf",
        "variable \"env\" {}\noutput \"enabled\" { value = true }\noutput \"id\" { value = \"label-${var.env}\" }\noutput \"env\" { value = var.env }\n",
    );
    let l = load_dir(t.path(), &LoadOptions::default());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.monitors[0].name, "CPU label-prod");
    assert_eq!(l.ignored_modules, vec!["module.gone"]);
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
fn failed_module_outputs_and_locals_name_their_cause_where_another_module_uses_them() {
    let mon = "variable \"monitors\" {}\nresource \"datadog_monitor\" \"m\" {\n  for_each = var.monitors\n  name     = each.key\n  type     = \"metric alert\"\n  query    = \"avg(last_5m):avg:a{*} > 1\"\n  message  = \"m\"\n}\n";
    // An output computed by a data source (a YAML deep-merge provider), passed to a module.
    let errs = errors_of(
        &[
            (
                "main.tf",
                "module \"config\" {\n  source = \"./config\"\n}\nmodule \"alerts\" {\n  source   = \"./alerts\"\n  monitors = module.config.merged\n}\n",
            ),
            (
                "config/main.tf",
                "data \"yaml_merge\" \"all\" {\n  inputs = []\n}\noutput \"merged\" {\n  value = data.yaml_merge.all.result\n}\n",
            ),
            ("alerts/main.tf", mon),
        ],
        &LoadOptions::default(),
    );
    assert_eq!(
        errs,
        vec!["config/main.tf:5:3: output \"merged\" of module module.config: `data.yaml_merge.all` is a data source, read by Terraform when it runs; kelpie cannot know its value"]
    );
    // A local needing another resource type's attribute, passed to a module.
    let errs = errors_of(
        &[
            (
                "main.tf",
                "resource \"datadog_service_level_objective\" \"slo\" {\n  name = \"s\"\n}\nlocals {\n  by_slo = { (datadog_service_level_objective.slo.id) = 1 }\n}\nmodule \"alerts\" {\n  source   = \"./alerts\"\n  monitors = local.by_slo\n}\n",
            ),
            ("alerts/main.tf", mon),
        ],
        &LoadOptions::default(),
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].starts_with("main.tf:5:3: local.by_slo: `datadog_service_level_objective.slo.id` is an attribute of a resource that kelpie does not read"),
        "{errs:#?}"
    );
    // A -var value that does not parse is reported once (not also as "not set").
    let opts = LoadOptions {
        vars: vec!["monitors=oops".into()],
        ..LoadOptions::default()
    };
    let errs = errors_of(
        &[(
            "main.tf",
            &mon.replace(
                "variable \"monitors\" {}",
                "variable \"monitors\" {\n  type = map(any)\n}\nlocals {\n  all = var.monitors\n  n   = length(local.all)\n}",
            )
            .replace("message  = \"m\"", "message  = \"${local.n} in all\"")
            .replace("for_each = var.monitors", "for_each = toset([\"a\"])"),
        )],
        &opts,
    );
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].ends_with("the value given (oops) is not a valid map(any): unknown name `oops`"),
        "{errs:#?}"
    );
    // for_each over a variable left null says so.
    let errs = errors_of(
        &[(
            "main.tf",
            &mon.replace(
                "variable \"monitors\" {}",
                "variable \"monitors\" {\n  default = null\n}",
            ),
        )],
        &LoadOptions::default(),
    );
    assert_eq!(
        errs,
        vec!["main.tf:5:3: datadog_monitor.m: for_each needs a map or a set of strings; `var.monitors` is null (give it a value)"]
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
fn monitors_read_other_monitors_arguments() {
    let l = load("monitor_attributes");
    let copy = get(&l, "datadog_monitor.copy");
    assert_eq!(copy.name, "CPU high (copy)");
    assert_eq!(copy.mtype, "metric alert");
    assert_eq!(
        copy.query,
        "avg(last_5m):avg:system.cpu.user{*} by {host} > 95"
    );
    assert_eq!(copy.message, "critical at 90; no priority");
    // `tags` is a set in the provider: sorted, without duplicates.
    assert_eq!(copy.tags, vec!["env:prod", "team:infra"]);
    let summary = get(&l, "datadog_monitor.summary");
    assert_eq!(summary.name, "summary of disk 1 and web errors");
    assert_eq!(
        summary.message,
        "api=sum(last_5m):sum:trace.http.request.errors{service:api}.as_count() > 10, \
         web=sum(last_5m):sum:trace.http.request.errors{service:web}.as_count() > 10"
    );
    let m = get(&l, "datadog_monitor.from_module");
    assert_eq!(m.name, "after child memory");
    assert_eq!(m.query, "avg(last_5m):avg:system.mem.used{*} > 200");
    // A monitor's id is still the reference sync fills in.
    assert!(
        summary.query.contains("datadog_monitor.base.id}"),
        "{}",
        summary.query
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("main.tf"),
        "resource \"datadog_monitor\" \"a\" {\n  name = \"a\"\n  type = \"metric alert\"\n  query = \"avg(last_5m):avg:x{*} > 1\"\n  message = datadog_monitor.b.nonsense\n}\nresource \"datadog_monitor\" \"b\" {\n  name = \"b\"\n  type = \"metric alert\"\n  query = \"avg(last_5m):avg:x{*} > 1\"\n  message = \"b\"\n}\n",
    )
    .unwrap();
    let l = load_dir(dir.path(), &LoadOptions::default());
    let errors: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains("no attribute \"nonsense\""),
        "{errors:#?}"
    );
}

#[test]
fn locals_read_monitors_arguments() {
    let l = load("local_reads_monitor");
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let overview = get(&l, "datadog_monitor.overview");
    assert_eq!(overview.name, "DISK FULL ON PROD: api / web");
    // The ids are still references that plan and sync fill in.
    assert_eq!(
        overview.query,
        "${datadog_monitor.svc.api.id} && ${datadog_monitor.svc.web.id}"
    );
    let echo = get(&l, "datadog_monitor.echo");
    assert_eq!(
        echo.query,
        "avg(last_5m):avg:trace.http.request.duration{service:api,env:prod} > 2"
    );
    assert_eq!(
        echo.name,
        "echo of avg(last_5m):avg:trace.http.request.duration{service:web,env:prod} > 2"
    );
}

#[test]
fn new_corpus_directories_plan_clean_after_sync() {
    let api = MonitorsApi::start();
    for dir in ["tf_json", "monitor_attributes", "local_reads_monitor"] {
        let d = corpus(dir);
        let mut args = vec!["sync", "--dir", d.to_str().unwrap(), "--project", dir];
        let (code, out) = kelpie(&api, &args);
        assert_eq!(code, 0, "{dir}: {out}");
        args[0] = "plan";
        let (code, out) = kelpie(&api, &args);
        assert_eq!(
            code, 0,
            "{dir}: a plan right after sync shows changes:\n{out}"
        );
    }
    let id = |name: &str| remote_by_name(&api, name)["id"].as_i64().unwrap();
    assert_eq!(
        remote_by_name(&api, "summary of disk 1 and web errors")["query"],
        json!(format!("{} && {}", id("CPU high"), id("api errors")))
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
