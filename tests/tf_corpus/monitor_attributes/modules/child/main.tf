resource "datadog_monitor" "m" {
  name    = "child memory"
  type    = "metric alert"
  query   = "avg(last_5m):avg:system.mem.used{*} > 100"
  message = "mem"
}

output "name" {
  value = datadog_monitor.m.name
}

output "query" {
  value = replace(datadog_monitor.m.query, "100", "200")
}
