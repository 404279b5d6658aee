# Values given as strings that Terraform converts: bools from "true", numbers from "90".
variable "enabled" {
  default = "true"
}

variable "notify_no_data" {
  default = "false"
}

variable "critical" {
  default = "90"
}

variable "flag" {}

resource "datadog_monitor" "cpu" {
  count          = var.enabled ? 1 : 0
  name           = "CPU"
  type           = "metric alert"
  query          = "avg(last_5m):avg:system.cpu.user{*} > ${var.critical}"
  message        = "cpu"
  notify_no_data = var.notify_no_data && true
  priority       = "3"

  monitor_thresholds {
    critical = var.critical
    warning  = var.critical - 10
  }
}

resource "datadog_monitor" "flagged" {
  count   = var.flag ? 1 : 0
  name    = "Flagged"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.load.1{*} > 2"
  message = "flagged"
}
