variable "env" {}
variable "critical" {
  type = number
}
variable "tags" {
  type = list(string)
}
variable "window" {
  default = "last_5m"
}

resource "datadog_monitor" "m" {
  name    = "Errors ${var.env}"
  type    = "metric alert"
  query   = "avg(${var.window}):avg:app.errors{env:${var.env}} > ${var.critical}"
  message = "errors"
  tags    = var.tags
}
