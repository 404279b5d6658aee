test "agent memory near its cap warns, then alerts" {
  monitor = datadog_monitor_metric.kelpie_agent_memory
  series "docker.mem.rss" {
    tags   = ["ecs_container_name:kelpie-agent", "host:i-0abc"]
    values = "100000000x10 220000000x10 250000000x10"
  }
  expect {
    at    = "9m"
    state = "ok"
  }
  expect {
    at    = "19m"
    state = "warn"
  }
  expect {
    at    = "29m"
    state = "alert"
  }
}

test "one busy host is enough to alert" {
  monitor = datadog_monitor_metric.kelpie_agent_memory
  series "docker.mem.rss" {
    tags   = ["ecs_container_name:kelpie-agent", "host:i-0abc"]
    values = "100000000x20"
  }
  series "docker.mem.rss" {
    tags   = ["ecs_container_name:kelpie-agent", "host:i-0def"]
    values = "100000000x5 260000000x15"
  }
  expect {
    at    = "19m"
    group = "host:i-0def"
    state = "alert"
  }
  expect {
    at    = "19m"
    group = "host:i-0abc"
    state = "ok"
  }
}

test "example-service errors" {
  monitor = datadog_monitor_metric.example_service_errors
  series "example.requests" {
    tags   = ["service:example-service", "status:500", "env:prod"]
    values = "0x5 1x5 5x5"
  }
  expect {
    at    = "4m"
    state = "ok"
  }
  expect {
    at    = "9m"
    state = "warn"
  }
  expect {
    at    = "14m"
    state = "alert"
  }
}
