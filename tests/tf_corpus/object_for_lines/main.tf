# A module whose object `for` expressions span lines, used for monitor names and tags; and cumulative
# (calendar-aligned) windows, metric and log, with the evaluation window they need.
module "naming" {
  source = "./naming"
  parts = {
    env     = "Prod"
    service = "Checkout"
    team    = ""
  }
}

locals {
  thresholds = { for name, t in {
    warn = 800, crit = 1000 } : name => t
  }
}

resource "datadog_monitor" "monthly_spans" {
  name    = "${module.naming.id}: monthly ingested spans"
  type    = "query alert"
  query   = "sum(current_1mo):sum:datadog.estimated_usage.apm.ingested_spans{*}.as_count() > ${local.thresholds.crit}"
  message = "Span budget nearly spent. @slack-observability"
  tags    = module.naming.tags

  monitor_thresholds {
    critical = local.thresholds.crit
    warning  = local.thresholds.warn
  }

  scheduling_options {
    evaluation_window {
      day_starts   = "00:00"
      month_starts = 1
    }
  }
}

resource "datadog_monitor" "daily_errors" {
  name    = "${module.naming.id}: errors today"
  type    = "log alert"
  query   = "logs(\"service:checkout status:error\").index(\"*\").rollup(\"count\").current(\"1d\") > 500"
  message = "Too many errors since midnight. @slack-checkout"
  tags    = module.naming.tags

  monitor_thresholds {
    critical = 500
  }

  scheduling_options {
    evaluation_window {
      day_starts = "00:00"
    }
  }
}
