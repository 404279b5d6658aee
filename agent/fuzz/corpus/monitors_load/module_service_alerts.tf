# Standard alerts every service gets for free: errors, latency, and traffic that stopped.

variable "service" {}
variable "env" {}
variable "warn_channel" {}
variable "page" {}
variable "error_warning" {
  default = 5
}
variable "error_critical" {
  default = 20
}
variable "latency_p95_ms" {
  default = 500
}
variable "tags" {
  default = []
}

locals {
  scope = "service:${var.service},env:${var.env}"
  tags  = concat(var.tags, ["service:${var.service}"])
}

resource "datadog_monitor_metric" "errors" {
  name        = "${title(var.service)}: 5xx errors"
  message     = "The ${var.service} service answers with errors."
  metric      = "app.5xx"
  metric_tags = local.scope
  time_aggr   = "avg"
  time_window = "last_5m"
  space_aggr  = "sum"
  operator    = ">"

  warning {
    threshold = var.error_warning
    notify    = var.warn_channel
  }

  critical {
    threshold = var.error_critical
    notify    = var.page
  }

  tags = local.tags
}

resource "datadog_monitor" "latency" {
  name    = "${title(var.service)}: p95 latency above ${var.latency_p95_ms} ms"
  type    = "metric alert"
  query   = "avg(last_10m):avg:app.request.duration.95percentile{${local.scope}} > ${var.latency_p95_ms}"
  message = <<-EOT
    p95 latency of ${var.service} is {{value}} ms.
    {{#is_warning}}${var.warn_channel}{{/is_warning}}
    {{#is_alert}}${var.page}{{/is_alert}}
  EOT

  monitor_thresholds {
    warning  = var.latency_p95_ms * 0.8
    critical = var.latency_p95_ms
  }

  require_full_window = false
  tags                = local.tags
}

resource "datadog_monitor" "no_traffic" {
  name    = "${title(var.service)}: no traffic"
  type    = "metric alert"
  query   = "sum(last_15m):sum:app.requests{${local.scope}}.as_count() < 1"
  message = "${var.service} received no request for 15 minutes. ${var.page}"

  notify_no_data    = true
  no_data_timeframe = 30
  priority          = 2
  tags              = local.tags
}
