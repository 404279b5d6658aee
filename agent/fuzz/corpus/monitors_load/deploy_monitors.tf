# Standard alerts of the kelpie agent daemon service, next to its deployment (main.tf): the same directory is
# applied by Terraform (aws_* resources) and synced by `kelpie monitors sync --dir deploy/terraform`
# (datadog_monitor_metric / datadog_monitor; kelpie ignores the aws_* resources). Unit tests:
# agent.monitortest.hcl (`kelpie monitors test --dir deploy/terraform`).

# A host whose agent stops reporting: every metric from it stops, so this one pages.
resource "datadog_monitor_metric" "kelpie_agent_down" {
  name        = "kelpie agent not reporting on {{host.name}}"
  message     = "The kelpie agent on {{host.name}} sent no datadog.agent.running for 10 minutes: no metrics, events or deploy notifications come from this host. Check the kelpie-agent ECS daemon task there."
  metric      = "datadog.agent.running"
  metric_tags = "*"
  keys        = ["host"]
  time_aggr   = "avg"
  time_window = "last_5m"
  space_aggr  = "avg"
  operator    = "<"
  critical {
    threshold = 1
    notify    = "${var.notify} ${var.page}"
  }
  notify_no_data    = true
  no_data_timeframe = 10
  tags              = ["service:kelpie-agent", "team:infra"]
}

# The agent close to its memory cap (memory_limit 256 MiB): it starts refusing new contexts there.
resource "datadog_monitor_metric" "kelpie_agent_memory" {
  name        = "kelpie agent memory near its cap on {{host.name}}"
  message     = "The kelpie agent uses most of its 256 MiB memory cap; near it, new metric contexts are refused (see kelpie status, dogstatsd.dropped.context_limit)."
  metric      = "docker.mem.rss"
  metric_tags = "ecs_container_name:kelpie-agent"
  keys        = ["host"]
  time_aggr   = "avg"
  time_window = "last_10m"
  space_aggr  = "max"
  operator    = ">"
  warning {
    threshold = 200000000
    notify    = var.notify
  }
  critical {
    threshold = 240000000
    notify    = "${var.notify} ${var.page}"
  }
  notify_no_data = false
  tags           = ["service:kelpie-agent", "team:infra"]
}

# Payloads the agent had to give up on (intake refused them, or the retry queue was full).
resource "datadog_monitor" "kelpie_forwarder_drops" {
  name    = "kelpie agent dropping payloads on {{host.name}}"
  type    = "metric alert"
  query   = "sum(last_15m):sum:kelpie.forwarder.dropped{*} by {host} > 10"
  message = "The kelpie agent on {{host.name}} dropped payloads it could not deliver to Datadog. `kelpie status` on the host shows the reasons. ${var.notify}"
  monitor_thresholds {
    warning  = 1
    critical = 10
  }
  notify_no_data      = false
  require_full_window = false
  tags                = ["service:kelpie-agent", "team:infra"]
}

# DogStatsD packets or samples the agent dropped (queue full, malformed lines, memory cap).
resource "datadog_monitor" "kelpie_dogstatsd_drops" {
  name    = "kelpie DogStatsD drops on {{host.name}}"
  type    = "metric alert"
  query   = "sum(last_15m):sum:kelpie.dogstatsd.dropped{*} by {host} > 10000"
  message = "The kelpie agent on {{host.name}} is dropping DogStatsD samples: services' metrics are incomplete. ${var.notify}"
  monitor_thresholds {
    warning  = 1000
    critical = 10000
  }
  notify_no_data      = false
  require_full_window = false
  tags                = ["service:kelpie-agent", "team:infra"]
}

# The example service's own alerts (examples/service, deploy/ecs/example-service-task.json), from the metrics it
# sends through kelpie-toolkit.
resource "datadog_monitor_metric" "example_service_errors" {
  name        = "example-service 5xx rate"
  message     = "example-service answers 5xx more often than usual."
  metric      = "example.requests"
  metric_tags = "service:example-service,status:500"
  keys        = ["env"]
  time_aggr   = "avg"
  time_window = "last_5m"
  space_aggr  = "sum"
  operator    = ">"
  warning {
    threshold = 0.5
    notify    = var.notify
  }
  critical {
    threshold = 2
    notify    = "${var.notify} ${var.page}"
  }
  notify_no_data = false
  tags           = ["service:example-service", "team:infra"]
}

resource "datadog_monitor_metric" "example_service_memory" {
  name        = "example-service memory on {{host.name}}"
  message     = "example-service's resident memory (runtime.rust.mem.rss) keeps growing."
  metric      = "runtime.rust.mem.rss"
  metric_tags = "service:example-service"
  keys        = ["host"]
  time_aggr   = "avg"
  time_window = "last_15m"
  space_aggr  = "max"
  operator    = ">"
  warning {
    threshold = 150000000
    notify    = var.notify
  }
  critical {
    threshold = 200000000
    notify    = "${var.notify} ${var.page}"
  }
  notify_no_data = false
  tags           = ["service:example-service", "team:infra"]
}
