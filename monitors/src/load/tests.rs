use super::*;

fn dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = t.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    t
}

const MON: &str = r#"
resource "datadog_monitor" "m" {
  name    = "M ${var.env}"
  type    = "metric alert"
  query   = "avg(last_5m):avg:a{env:${var.env}} > 1"
  message = "m"
}
"#;

#[test]
fn unrelated_terraform_is_ignored_without_errors() {
    let t = dir(&[
            (
                "infra.tf",
                r#"
variable "region" {}
variable "env" { default = "prod" }
locals {
  vpc = aws_vpc.main.id
  name = "x-${var.region}"
}
resource "aws_vpc" "main" { cidr_block = "10.0.0.0/16" }
module "vpc" {
  source = "terraform-aws-modules/vpc/aws"
  cidr   = local.vpc
}
module "alerts" {
  source = "./alerts"
  env    = var.env
  vpc    = aws_vpc.main.id
}
"#,
            ),
            ("main.tf", MON),
            ("alerts/main.tf", "variable \"env\" {}\nvariable \"vpc\" {}\nresource \"datadog_monitor_metric\" \"e\" {\n  name = \"E ${var.env}\"\n  message = \"m\"\n  metric = \"a.b\"\n  critical {\n    threshold = 1\n  }\n}\n"),
        ]);
    let l = load_dir(t.path(), &LoadOptions::default());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let addrs: Vec<&str> = l.monitors.iter().map(|m| m.address.as_str()).collect();
    assert_eq!(
        addrs,
        vec![
            "module.alerts.datadog_monitor_metric.e",
            "datadog_monitor.m"
        ]
    );
    assert_eq!(
            l.ignored_line().unwrap(),
            "ignored 1 resource(s) of other types (aws_vpc) and 1 module(s) with a non-local source (module.vpc)"
        );
}

#[test]
fn a_missing_variable_is_an_error_only_when_used() {
    let t = dir(&[("main.tf", &format!("variable \"env\" {{}}\n{MON}"))]);
    let l = load_dir(t.path(), &LoadOptions::default());
    let msgs: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(
            msgs,
            vec![format!(
                "{}:1:1: variable \"env\" is not set: give it a default, -var env=..., -var-file or TF_VAR_env",
                t.path().join("main.tf").display()
            )]
        );
    let opts = LoadOptions {
        env_vars: vec![("env".into(), "dev".into())],
        ..Default::default()
    };
    let l = load_dir(t.path(), &opts);
    assert!(l.errors.is_empty());
    assert_eq!(l.monitors[0].name, "M dev");
}

#[test]
fn modules_with_for_each_and_typed_tf_vars() {
    let t = dir(&[
            (
                "main.tf",
                r#"
variable "services" { type = list(string) }
module "svc" {
  for_each = toset(var.services)
  source   = "./svc"
  name     = each.key
}
"#,
            ),
            ("svc/main.tf", "variable \"name\" {}\nresource \"datadog_monitor\" \"errors\" {\n  count = 2\n  name = format(\"%s errors %d\", upper(var.name), count.index)\n  type = \"query alert\"\n  query = \"avg(last_5m):avg:e{service:${var.name}} > ${10 * (count.index + 1)}\"\n  message = join(\" \", [\"a\", \"b\"])\n}\n"),
        ]);
    let opts = LoadOptions {
        env_vars: vec![("services".into(), r#"["web", "api"]"#.into())],
        ..Default::default()
    };
    let l = load_dir(t.path(), &opts);
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let addrs: Vec<&str> = l.monitors.iter().map(|m| m.address.as_str()).collect();
    assert_eq!(
        addrs,
        vec![
            r#"module.svc["api"].datadog_monitor.errors[0]"#,
            r#"module.svc["api"].datadog_monitor.errors[1]"#,
            r#"module.svc["web"].datadog_monitor.errors[0]"#,
            r#"module.svc["web"].datadog_monitor.errors[1]"#,
        ]
    );
    assert_eq!(l.monitors[1].name, "API errors 1");
    assert_eq!(l.monitors[1].query, "avg(last_5m):avg:e{service:api} > 20");
    assert_eq!(
        l.monitors[1].options["thresholds"]["critical"],
        serde_json::json!(20.0)
    );
}

#[test]
fn unknown_functions_and_module_inputs_are_named() {
    let t = dir(&[
            (
                "main.tf",
                "resource \"datadog_monitor\" \"m\" {\n  name = bcrypt(\"x\")\n  type = \"query alert\"\n  query = \"avg(last_5m):avg:a{*} > 1\"\n  message = \"m\"\n}\nmodule \"x\" {\n  source = \"./x\"\n  nope = 1\n}\n",
            ),
            ("x/main.tf", "# nothing\n"),
        ]);
    let l = load_dir(t.path(), &LoadOptions::default());
    let msgs: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[1].ends_with("datadog_monitor.m: name: unknown function `bcrypt`"),
        "{}",
        msgs[1]
    );
    assert!(msgs[1].contains("main.tf:2:3: "), "{}", msgs[1]);
    assert!(msgs[0].contains("main.tf:9:3: module "), "{}", msgs[0]);
    assert!(
        msgs[0].ends_with("has no variable named \"nope\""),
        "{}",
        msgs[0]
    );
}

#[test]
fn terraform_0_6_style() {
    let t = dir(&[(
        "old.tf",
        r#"
variable "team" { default = "infra" }
resource "datadog_monitor_metric" "app.internal_errors" {
  name = "App Internal Errors"
  message = "${var.team} errors"
  metric = "app.5xx"
  metric_key = "service"
  critical {
    threshold = "50"
    notify = "@slack-${var.team}"
  }
  tags {
    team = "${var.team}"
  }
}
"#,
    )]);
    let l = load_dir(t.path(), &LoadOptions::default());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let m = &l.monitors[0];
    assert_eq!(m.address, "datadog_monitor_metric.app.internal_errors");
    assert_eq!(m.query, "avg(last_5m):avg:app.5xx{*} by {service} > 50");
    assert_eq!(m.tags, vec!["team:infra"]);
    assert_eq!(
        m.message,
        "infra errors\n{{#is_alert}}@slack-infra{{/is_alert}}"
    );
}

#[test]
fn dynamic_thresholds_are_checked_as_datadog_checks_them() {
    let with = |thresholds: &str, variables: bool| {
        let vars = if variables {
            r#"variables {
    event_query {
      name        = "query1"
      data_source = "rum"
      indexes     = ["*"]
      compute {
        aggregation = "count"
      }
    }
  }"#
        } else {
            ""
        };
        let text = format!(
            r#"
resource "datadog_monitor" "m" {{
  name    = "M"
  type    = "rum alert"
  query   = "formula(\"query1\").last(\"15m\") > 0"
  message = "m"
  {vars}
  monitor_thresholds {{
    {thresholds}
  }}
}}
"#
        );
        let t = dir(&[("main.tf", &text)]);
        let l = load_dir(t.path(), &LoadOptions::default());
        l.errors.iter().map(|d| d.to_string()).collect::<Vec<_>>()
    };
    let q = r#"critical_query = "formula(\"2 * query1\").last(\"1w\")""#;
    assert_eq!(with(q, true), Vec::<String>::new());
    let errs = with(&format!("{q}\n    critical = 0"), true);
    assert!(
        errs.len() == 1
            && errs[0].contains(
                "`critical_query` cannot be combined with the static `critical` threshold"
            ),
        "{errs:?}"
    );
    let errs = with(q, false);
    assert!(
        errs.len() == 1
            && errs[0].contains("needs a formula query")
            && errs[0].contains("`variables` block"),
        "{errs:?}"
    );
    let errs = with(r#"critical_recovery_query = "query1 * 2""#, true);
    assert!(
        errs.len() == 1 && errs[0].contains("`critical_recovery_query` must be a formula query"),
        "{errs:?}"
    );
    let errs = with("critical_query = 5", true);
    assert!(
        errs.len() == 1 && errs[0].contains("must be a non-empty query string"),
        "{errs:?}"
    );
}

#[test]
fn files_saved_by_windows_editors_load() {
    // A UTF-8 byte order mark, CRLF line ends and tabs, in a .tf and a .tfvars file.
    let t = dir(&[
        (
            "main.tf",
            "\u{feff}variable \"env\" {}\r\nresource \"datadog_monitor\" \"m\" {\r\n\tname    = \"M ${var.env}\"\r\n\ttype    = \"metric alert\"\r\n\tquery   = \"avg(last_5m):avg:a{env:${var.env}} > 1\"\r\n\tmessage = <<-EOT\r\n\t\tPaging.\r\n\tEOT\r\n}\r\n",
        ),
        ("terraform.tfvars", "\u{feff}env = \"prod\"\r\n"),
    ]);
    let l = load_dir(t.path(), &LoadOptions::default());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.monitors[0].name, "M prod");
    assert!(l.monitors[0].message.starts_with("Paging."));
}

#[test]
fn a_var_given_for_a_quoted_string_type_is_a_string() {
    // Terraform 0.11 files quote the type: `-var env=prod` is the string "prod" there too.
    let t = dir(&[(
        "main.tf",
        &format!("variable \"env\" {{\n  type = \"string\"\n}}\n{MON}"),
    )]);
    let opts = LoadOptions {
        vars: vec!["env=prod".into()],
        ..LoadOptions::default()
    };
    let l = load_dir(t.path(), &opts);
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    assert_eq!(l.monitors[0].name, "M prod");
}

#[test]
fn import_blocks_with_for_each_name_each_instance() {
    let t = dir(&[(
        "main.tf",
        r#"
locals {
  existing = { cpu = "101", disk = 102 }
}
resource "datadog_monitor" "m" {
  for_each = local.existing
  name     = "M ${each.key}"
  type     = "metric alert"
  query    = "avg(last_5m):avg:system.${each.key}{*} > 1"
  message  = "m"
}
import {
  for_each = local.existing
  to       = datadog_monitor.m[each.key]
  id       = each.value
}
import {
  to = datadog_monitor.m["cpu"]
  id = "101"
}
"#,
    )]);
    let l = load_dir(t.path(), &LoadOptions::default());
    assert!(l.errors.is_empty(), "{:?}", l.errors);
    let got: Vec<(String, i64)> = l.imports.iter().map(|i| (i.to.clone(), i.id)).collect();
    assert_eq!(
        got,
        vec![
            (r#"datadog_monitor.m["cpu"]"#.to_string(), 101),
            (r#"datadog_monitor.m["disk"]"#.to_string(), 102),
            (r#"datadog_monitor.m["cpu"]"#.to_string(), 101),
        ]
    );
}

#[test]
fn an_invalid_var_for_a_long_type_is_one_line() {
    let t = dir(&[(
        "main.tf",
        &format!(
            "variable \"env\" {{\n  type = map(object({{\n    name  = string\n    query = string\n  }}))\n}}\n{}",
            MON.replace("${var.env}", "x")
        ),
    )]);
    let opts = LoadOptions {
        vars: vec!["env=metric alert".into()],
        ..LoadOptions::default()
    };
    let errs: Vec<String> = load_dir(t.path(), &opts)
        .errors
        .iter()
        .map(|d| d.message.clone())
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "variable \"env\": the value given (metric alert) is not a valid map(…): "
        ) && !errs[0].contains('\n'),
        "{errs:?}"
    );
}
