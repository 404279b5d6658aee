# A root that builds its monitors from values other modules compute: a module with no monitors
# (scope), outputs of a count module (service) and of a for_each module (team).
variable "env" {
  type    = string
  default = "prod"
}

variable "teams" {
  type = map(object({ handle = string, critical = number }))
  default = {
    payments = { handle = "@slack-payments", critical = 90 }
    search   = { handle = "@slack-search", critical = 80 }
  }
}

module "scope" {
  source = "./modules/scope"
  env    = var.env
}

module "service" {
  count  = 2
  source = "./modules/service"
  index  = count.index
}

module "team" {
  for_each = var.teams
  source   = "./modules/team"
  name     = each.key
  handle   = each.value.handle
}

locals {
  # A local that needs a module output, and one the next module call needs.
  base_tags = concat(module.scope.tags, ["owner:platform"])
  services  = module.service[*].name
}

resource "datadog_monitor" "cpu" {
  name    = "[${upper(var.env)}] CPU high"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.cpu.user{${module.scope.filter}} by {host} > 90"
  message = "CPU is high. ${module.team["payments"].notify}"
  tags    = local.base_tags

  monitor_thresholds {
    critical = 90
  }
}

resource "datadog_monitor" "service_errors" {
  for_each = toset(local.services)
  name     = "${each.key} errors"
  type     = "query alert"
  query    = "sum(last_10m):sum:trace.http.request.errors{service:${each.key},${module.scope.filter}}.as_count() > 10"
  message  = "Errors on ${each.key}. ${module.team["search"].notify}"
  tags     = local.base_tags
}

module "per_team" {
  source   = "./modules/team"
  name     = "all"
  handle   = join(" ", [for t in module.team : t.notify])
}

resource "datadog_monitor" "all_teams" {
  name    = "Disk full"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.disk.in_use{${module.scope.filter}} by {host} > 0.9"
  message = module.per_team.notify
}
