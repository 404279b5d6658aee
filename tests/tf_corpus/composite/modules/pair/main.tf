variable "name" {}

resource "datadog_monitor" "a" {
  count   = 2
  name    = "${var.name} check ${count.index}"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.load.${count.index + 1}{service:${var.name}} > 4"
  message = "load"
}

resource "datadog_monitor" "both" {
  name    = "${var.name} both"
  type    = "composite"
  query   = "${datadog_monitor.a[0].id} && !${datadog_monitor.a[1].id}"
  message = "both"
}
