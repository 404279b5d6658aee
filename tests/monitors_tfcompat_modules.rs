//! Terraform compatibility, modules and references: module outputs of plain, `count` and `for_each` modules,
//! module sources relative to the directory given, registry modules where `terraform init` put them, and
//! monitors and locals that read other monitors' arguments. Each must load with the values Terraform would
//! compute (corpus directories under `tests/tf_corpus/`, written for kelpie, modelled on public monitor
//! libraries).

mod common;

use common::tfcompat::*;
use kelpie_monitors::load::{load_dir, LoadOptions};
use serde_json::json;

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
