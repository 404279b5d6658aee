# Older-provider arguments and lifecycle blocks as monitor libraries written for provider 1.x/2.x use them.
variable "silenced" {
  type    = map(number)
  default = {}
}

resource "datadog_monitor" "muted_by_hand" {
  name     = "Storage status"
  type     = "metric alert"
  query    = "avg(last_5m):avg:azure.storage.status{*} by {name} < 1"
  message  = "storage down"
  silenced = var.silenced

  lifecycle {
    ignore_changes = [silenced]
  }
}

resource "datadog_monitor" "silenced_map" {
  name     = "Queue length"
  type     = "metric alert"
  query    = "avg(last_5m):avg:azure.storage.queue.length{*} > 100"
  message  = "queue"
  silenced = {}

  lifecycle {
    create_before_destroy = true
  }
}
