# The generic-module pattern: optional blocks made with `dynamic`, settings with defaults.
variable "monitors" {
  type = map(object({
    query    = string
    critical = number
    warning  = optional(number)
  }))
  default = {
    cpu = {
      query    = "avg(last_5m):avg:system.cpu.user{*} by {host} > 90"
      critical = 90
      warning  = 80
    }
    mem = {
      query    = "avg(last_5m):avg:system.mem.pct_usable{*} by {host} < 0.1"
      critical = 0.1
      warning  = null
    }
  }
}

resource "datadog_monitor" "generic" {
  for_each = var.monitors
  name     = "Generic ${each.key}"
  type     = "metric alert"
  query    = each.value.query
  message  = "Generic ${each.key}"

  dynamic "monitor_thresholds" {
    for_each = [each.value]
    iterator = t
    content {
      critical = t.value.critical
      warning  = t.value.warning
    }
  }
}

resource "datadog_monitor" "no_thresholds_block" {
  name    = "No thresholds block"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.load.1{*} > 4"
  message = "load"

  dynamic "monitor_thresholds" {
    for_each = var.monitors.cpu.warning == null ? [1] : []
    content {
      critical = 4
    }
  }
}
