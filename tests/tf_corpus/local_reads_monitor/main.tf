# Locals that read monitors' arguments (not only their id): Terraform evaluates them once the monitors they
# read are known, and the monitors that use them after that, whatever the order in the files.
locals {
  # Reads a monitor declared further down.
  base_title = upper(datadog_monitor.base.name)
  # Reads every instance of a for_each monitor.
  service_queries = { for k, m in datadog_monitor.svc : k => m.query }
  # Uses a local of the two above.
  summary = "${local.base_title}: ${join(" / ", sort(keys(local.service_queries)))}"
  # Only ids: the composite's children.
  child_ids = [for m in values(datadog_monitor.svc) : m.id]
  # An ordinary local, evaluated first as always.
  env = "prod"
}

resource "datadog_monitor" "overview" {
  name    = local.summary
  type    = "composite"
  message = "all down @ops"
  query   = join(" && ", local.child_ids)
}

resource "datadog_monitor" "base" {
  name    = "Disk full on ${local.env}"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.disk.in_use{env:${local.env}} by {host} > 0.9"
  message = "disk"
}

resource "datadog_monitor" "svc" {
  for_each = toset(["api", "web"])
  name     = "${each.key} latency"
  type     = "metric alert"
  query    = "avg(last_5m):avg:trace.http.request.duration{service:${each.key},env:${local.env}} > 2"
  message  = "slow"
}

resource "datadog_monitor" "echo" {
  name    = "echo of ${local.service_queries["web"]}"
  type    = "metric alert"
  query   = local.service_queries["api"]
  message = "copy"
}
