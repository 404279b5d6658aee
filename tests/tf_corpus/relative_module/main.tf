# A reusable module at the top of its repository, with an example that calls it as `source = "../.."`.
variable "service" {
  type = string
}

variable "thresholds" {
  type = object({ critical = number, warning = number })
  default = {
    critical = 5
    warning  = 2
  }
}

resource "datadog_monitor" "latency" {
  name    = "${var.service} p99 latency"
  type    = "metric alert"
  query   = "avg(last_15m):avg:trace.http.request.duration{service:${var.service}} > ${var.thresholds.critical}"
  message = "p99 latency of ${var.service} is high"

  monitor_thresholds {
    critical = var.thresholds.critical
    warning  = var.thresholds.warning
  }
}

output "latency_id" {
  value = "latency-${var.service}"
}
