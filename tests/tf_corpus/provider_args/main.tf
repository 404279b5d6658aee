# Newer arguments of the provider's datadog_monitor, and the datadog_monitor_json resource.
resource "datadog_monitor" "rum_errors" {
  name         = "RUM error rate"
  type         = "rum alert"
  query        = "formula(\"query1 / query2 * 100\").last(\"15m\") > 5"
  message      = "error rate"
  draft_status = "published"

  variables {
    event_query {
      name        = "query1"
      data_source = "rum"
      indexes     = ["*"]
      compute {
        aggregation = "count"
      }
      search {
        query = "@type:error @application.name:shop"
      }
      group_by {
        facet = "@view.name"
        limit = 10
        sort {
          aggregation = "count"
          order       = "desc"
        }
      }
    }
    event_query {
      name        = "query2"
      data_source = "rum"
      indexes     = ["*"]
      compute {
        aggregation = "count"
      }
      search {
        query = "@type:view @application.name:shop"
      }
    }
  }

  monitor_thresholds {
    critical = 5
  }
}

resource "datadog_monitor" "daily_batch" {
  name         = "Daily batch did not run"
  type         = "query alert"
  query        = "sum(last_1d):sum:batch.runs{job:nightly}.as_count() < 1"
  message      = "no nightly batch"
  draft_status = "draft"

  scheduling_options {
    evaluation_window {
      day_starts = "04:00"
    }
    custom_schedule {
      recurrence {
        rrule    = "FREQ=DAILY;INTERVAL=1"
        start    = "2024-01-01T06:00:00"
        timezone = "Europe/Paris"
      }
    }
  }

  dynamic "assets" {
    for_each = {
      runbook   = "https://wiki.example.com/runbooks/batch"
      dashboard = "https://app.datadoghq.com/dashboard/abc-def"
    }
    content {
      name     = assets.key
      url      = assets.value
      category = assets.key
    }
  }
}

resource "datadog_monitor_json" "from_json" {
  monitor = jsonencode({
    name    = "Queue depth (JSON)"
    type    = "query alert"
    query   = "avg(last_10m):avg:rabbitmq.queue.messages{queue:orders} > 1000"
    message = "queue is deep"
    tags    = ["team:orders"]
    options = {
      thresholds        = { critical = 1000, warning = 500 }
      notify_no_data    = false
      renotify_interval = 30
    }
  })
}

# A dynamic threshold: the critical level is a formula over the same variables, not a number.
resource "datadog_monitor" "dynamic_threshold" {
  name    = "RUM errors above twice their usual level"
  type    = "rum alert"
  query   = "formula(\"query1\").last(\"15m\") > 0"
  message = "errors above their baseline"

  variables {
    event_query {
      name        = "query1"
      data_source = "rum"
      indexes     = ["*"]
      compute {
        aggregation = "count"
      }
      search {
        query = "@type:error @application.name:shop"
      }
    }
  }

  monitor_thresholds {
    critical_query          = "formula(\"2 * query1\").rollup(\"avg\").last(\"1w\")"
    critical_recovery_query = "formula(\"1.5 * query1\").rollup(\"avg\").last(\"1w\")"
  }
}
