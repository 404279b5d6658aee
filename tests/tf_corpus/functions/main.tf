# Terraform's functions as monitor libraries use them: settings from YAML/JSON files, messages from
# templates, tags cleaned up with compact/distinct/sort, optional settings with try/can.
variable "env" {
  default = "staging"
}

variable "extra_tags" {
  type    = list(string)
  default = ["team:core", "", "team:core"]
}

variable "overrides" {
  type    = any
  default = {}
}

locals {
  settings      = yamldecode(file("${path.module}/config/settings.yaml"))
  service_files = fileset("${path.module}/config/services", "*.json")
  services = {
    for f in local.service_files :
    trimsuffix(f, ".json") => jsondecode(file("${path.module}/config/services/${f}"))
  }
  tags = sort(distinct(compact(concat(var.extra_tags, ["env:${var.env}"]))))
  # try() and can() see missing keys and failed regexes.
  renotify     = try(var.overrides.renotify, local.settings.defaults.renotify)
  has_version  = can(regex("^v[0-9]+", local.settings.version))
  major        = tonumber(regex("^v([0-9]+)", local.settings.version)[0])
  window_parts = regexall("[0-9]+[mh]", "last_5m and last_1h")
  pairs        = setproduct(["p95", "p99"], ["api", "web"])
  chunks       = chunklist(range(5), 2)
  hosts        = zipmap(["a", "b"], formatlist("host-%s.%s", ["a", "b"], var.env))
}

resource "datadog_monitor" "service" {
  for_each = local.services
  name     = format("%s latency (%s)", title(each.key), upper(substr(var.env, 0, 4)))
  type     = "metric alert"
  query    = "avg(last_${each.value.window}):avg:trace.http.request.duration{${join(",", formatlist("%s:%s", ["service", "env"], [each.key, var.env]))}} > ${each.value.critical}"
  message = templatefile("${path.module}/templates/message.tftpl", {
    service  = each.key
    handles  = coalescelist(lookup(each.value, "handles", []), local.settings.defaults.handles)
    runbook  = replace(each.value.runbook, "/^http:/", "https:")
    has_slo  = can(each.value.slo)
  })
  tags              = concat(local.tags, ["service:${each.key}"])
  renotify_interval = local.renotify
  priority          = one([for p in [each.value.priority] : p if p != null])

  monitor_thresholds {
    critical = each.value.critical
    warning  = try(each.value.warning, null)
  }
}

resource "datadog_monitor" "checks" {
  count   = local.has_version && alltrue([local.major >= 2, !anytrue([false])]) ? 1 : 0
  name    = "Checks ${length(local.pairs)} ${sum([for c in local.chunks : length(c)])} ${startswith(local.hosts.a, "host-") && endswith(local.hosts.b, var.env) && strcontains(local.hosts.a, "-a.")}"
  type    = "service check"
  query   = "\"http.can_connect\".over(\"${trimprefix("env:${var.env}", "")}\").by(\"host\").last(2).count_by_status()"
  message = trimspace(<<-EOT
    The HTTP check failed on ${length(local.window_parts)} windows.
    Reverse: ${join(",", reverse(slice(["a", "b", "c"], 0, 2)))}
  EOT
  )
  tags = local.tags

  monitor_thresholds {
    critical = 1
    ok       = 1
  }
}

module "svc" {
  source = "./modules/svc"
}

resource "datadog_monitor" "module_path" {
  name    = "Module path"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.load.1{*} > ${module.svc.limit}"
  message = module.svc.where
}
