# Monitors of the shop's services, kept next to the rest of the infrastructure's Terraform.
# `kelpie monitors plan --dir examples/monitors` reads the datadog_* resources below and ignores the others.

variable "env" {
  default = "prod"
}

variable "oncall" {
  description = "Who gets paged"
  default     = "@pagerduty-shop"
}

locals {
  team_channel = "@slack-shop-alerts"
  common_tags  = ["team:shop", "env:${var.env}"]
}

# One template of standard alerts per service.
module "api" {
  source          = "./modules/service_alerts"
  service         = "api"
  env             = var.env
  warn_channel    = local.team_channel
  page            = "${local.team_channel} ${var.oncall}"
  error_warning   = 5
  error_critical  = 20
  latency_p95_ms  = 400
  tags            = local.common_tags
}

module "web" {
  source         = "./modules/service_alerts"
  service        = "web"
  env            = var.env
  warn_channel   = local.team_channel
  page           = local.team_channel
  error_warning  = 10
  error_critical = 50
  latency_p95_ms = 800
  tags           = local.common_tags
}

module "worker" {
  source         = "./modules/service_alerts"
  service        = "worker"
  env            = var.env
  warn_channel   = local.team_channel
  page           = "${local.team_channel} ${var.oncall}"
  error_warning  = 1
  error_critical = 5
  latency_p95_ms = 30000
  tags           = concat(local.common_tags, ["queue:jobs"])
}

# The compact form of the original example, in its Terraform 0.6 style.
resource "datadog_monitor_metric" "app.internal_errors" {
  name        = "App Internal Errors (${var.env})"
  message     = "App Internal Error Alerts"
  metric      = "app.5xx"
  metric_tags = "env:${var.env}"
  keys        = ["service"]
  time_aggr   = "avg"
  time_window = "last_5m"
  space_aggr  = "avg"
  operator    = ">"

  warning {
    threshold = 10
    notify    = "${local.team_channel}"
  }

  critical {
    threshold = 50
    notify    = "${local.team_channel} ${var.oncall}"
  }

  tags {
    team = "shop"
  }
}

# Disk space on every host, per device.
resource "datadog_monitor" "disk_space" {
  for_each = {
    warn_only = 0.85
  }
  name    = "Disk almost full on {{host.name}} (${each.key})"
  type    = "metric alert"
  query   = "max(last_15m):max:system.disk.in_use{env:${var.env}} by {host,device} > 0.95"
  message = "Disk {{device.name}} on {{host.name}} is {{value}} full. ${local.team_channel}"

  monitor_thresholds {
    warning  = each.value
    critical = 0.95
  }

  notify_no_data    = false
  renotify_interval = 60
  tags              = local.common_tags
}

# Unrelated infrastructure in the same directory: ignored by kelpie.
resource "aws_sns_topic" "alerts" {
  name = "shop-alerts"
}

resource "aws_cloudwatch_log_group" "api" {
  name              = "/ecs/api"
  retention_in_days = 14
}
