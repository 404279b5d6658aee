# Unit tests of the alert logic: `kelpie monitors test --dir examples/monitors`.

test "api errors warn, then page, then recover" {
  monitor = module.api.datadog_monitor_metric.errors
  series "app.5xx" {
    tags   = ["service:api", "env:prod", "host:a"]
    values = "0 0 5 20 60x4 0x6"
  }
  expect {
    at    = "4m"    # minutes 0-4: avg 17 > 5 (warning), not > 20
    state = "warn"
  }
  expect {
    at    = "8m"    # minutes 4-8: avg 60 > 20
    state = "alert"
  }
  expect {
    at    = "15m"
    state = "ok"
  }
}

test "errors of another service do not count" {
  monitor = module.api.datadog_monitor_metric.errors
  series "app.5xx" {
    tags   = ["service:web", "env:prod"]
    values = "100x10"
  }
  expect {
    at    = "9m"
    state = "no data"
  }
}

test "space aggregation sums hosts" {
  monitor = module.worker.datadog_monitor_metric.errors
  series "app.5xx" {
    tags   = ["service:worker", "env:prod", "host:a"]
    values = "3x9"
  }
  series "app.5xx" {
    tags   = ["service:worker", "env:prod", "host:b"]
    values = "3x9"
  }
  expect {
    at    = "9m"    # 3 + 3 = 6 > 5
    state = "alert"
  }
}

test "the original example groups by service" {
  monitor = datadog_monitor_metric.app.internal_errors
  series "app.5xx" {
    tags   = ["service:api", "env:prod"]
    values = "60x9"
  }
  series "app.5xx" {
    tags   = ["service:web", "env:prod"]
    values = "20x9"
  }
  expect {
    at    = "9m"
    group = "service:web"
    state = "warn"
  }
  expect {
    at    = "9m"
    state = "alert"   # the worst group
  }
}

test "latency warns at 80 percent" {
  monitor = module.web.datadog_monitor.latency
  series "app.request.duration.95percentile" {
    tags   = ["service:web", "env:prod"]
    values = "700x20"
  }
  expect {
    at    = "15m"
    state = "warn"
  }
}
