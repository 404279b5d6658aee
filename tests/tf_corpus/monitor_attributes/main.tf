# Monitors that read other monitors' arguments, not only their id. `copy` comes first in the file and
# still sees what `base` evaluates to.
resource "datadog_monitor" "copy" {
  name    = "${datadog_monitor.base.name} (copy)"
  type    = datadog_monitor.base.type
  query   = replace(datadog_monitor.base.query, "> 90", "> 95")
  message = "critical at ${datadog_monitor.base.monitor_thresholds[0].critical}; ${datadog_monitor.base.priority == null ? "no priority" : "prioritised"}"
  tags    = datadog_monitor.base.tags

  monitor_thresholds {
    critical = 95
  }
}

resource "datadog_monitor" "base" {
  name    = "CPU high"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.cpu.user{*} by {host} > 90"
  message = "cpu"
  tags    = ["team:infra", "env:prod", "team:infra"]

  monitor_thresholds {
    critical = 90
    warning  = 80
  }
}

resource "datadog_monitor" "per" {
  count   = 2
  name    = "disk ${count.index}"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.disk.in_use{device:sd${count.index}} > 0.9"
  message = "disk"
}

resource "datadog_monitor" "svc" {
  for_each = toset(["api", "web"])
  name     = "${each.key} errors"
  type     = "metric alert"
  query    = "sum(last_5m):sum:trace.http.request.errors{service:${each.key}}.as_count() > 10"
  message  = "errors"
}

resource "datadog_monitor" "summary" {
  name    = "summary of ${datadog_monitor.per[1].name} and ${datadog_monitor.svc["web"].name}"
  type    = "composite"
  query   = "${datadog_monitor.base.id} && ${datadog_monitor.svc["api"].id}"
  message = join(", ", [for k, m in datadog_monitor.svc : "${k}=${m.query}"])
}

module "child" {
  source = "./modules/child"
}

resource "datadog_monitor" "from_module" {
  name    = "after ${module.child.name}"
  type    = "metric alert"
  query   = module.child.query
  message = "from the module's outputs"
}
