//! Terraform compatibility, errors: what kelpie cannot load is named by its root cause, once, at the place
//! that causes it (an unset variable used through locals, an unknown function, another provider's attribute,
//! a module's missing output, data sources and resources whose values only Terraform knows, a -var that does
//! not parse, `for_each` over null).

mod common;

use common::tfcompat::*;
use kelpie_monitors::load::LoadOptions;

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
