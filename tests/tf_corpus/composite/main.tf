# Composite monitors naming their children by reference; sync creates the children first.
resource "datadog_monitor" "errors" {
  name    = "API errors"
  type    = "metric alert"
  query   = "sum(last_5m):sum:trace.http.request.errors{service:api}.as_count() > 50"
  message = "errors"
}

resource "datadog_monitor" "latency" {
  for_each = toset(["p95", "p99"])
  name     = "API ${each.key} latency"
  type     = "metric alert"
  query    = "avg(last_5m):avg:trace.http.request.duration.by.service.${each.key}{service:api} > 2"
  message  = "latency"
}

locals {
  both = "${datadog_monitor.errors.id} && ${datadog_monitor.latency["p99"].id}"
}

resource "datadog_monitor" "api_down" {
  name    = "API down"
  type    = "composite"
  query   = local.both
  message = "errors and latency together"
}

resource "datadog_monitor" "any_latency" {
  name    = "API any latency"
  type    = "composite"
  query   = join(" || ", [for m in datadog_monitor.latency : m.id])
  message = "one of the latency monitors"
}

module "pair" {
  source = "./modules/pair"
  name   = "worker"
}
