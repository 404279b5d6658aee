# The query grammar beyond simple metric alerts, and the other monitor types.
resource "datadog_monitor" "load_change" {
  name    = "Load jumped"
  type    = "query alert"
  query   = "change(max(last_5m),last_5m):avg:system.load.1{env:prod} by {host} > 2"
  message = "load jumped"
}

resource "datadog_monitor" "hits_drop" {
  name    = "Hits dropped"
  type    = "query alert"
  query   = "pct_change(avg(last_1h),1h_ago):sum:trace.http.request.hits{service:api}.as_count() < -50"
  message = "traffic dropped"

  monitor_thresholds {
    critical = -50
    warning  = -30
  }
}

resource "datadog_monitor" "disk_forecast" {
  name    = "Disk will fill"
  type    = "query alert"
  query   = "max(next_1w):forecast(avg:system.disk.in_use{*} by {host,device}, 'linear', 1, interval='60m', history='1w', model='default') >= 0.95"
  message = "disk fills within a week"

  monitor_thresholds {
    critical          = 0.95
    critical_recovery = 0.9
  }
  monitor_threshold_windows {
    trigger_window  = "last_30m"
    recovery_window = "last_30m"
  }
}

resource "datadog_monitor" "hits_anomaly" {
  name    = "Hits anomaly"
  type    = "query alert"
  query   = "avg(last_4h):anomalies(sum:trace.http.request.hits{service:api}.as_count(), 'agile', 2, direction='both', alert_window='last_15m', interval=60, count_default_zero='true') >= 1"
  message = "anomaly"

  monitor_thresholds {
    critical          = 1
    critical_recovery = 0
  }
  monitor_threshold_windows {
    trigger_window  = "last_15m"
    recovery_window = "last_15m"
  }
}

resource "datadog_monitor" "db_outlier" {
  name    = "DB outlier"
  type    = "query alert"
  query   = "avg(last_30m):outliers(avg:system.cpu.user{role:db} by {host}, 'DBSCAN', 3) > 0"
  message = "one db host differs"
}

resource "datadog_monitor" "error_rate" {
  name    = "Error rate"
  type    = "query alert"
  query   = "sum(last_10m):(sum:trace.http.request.errors{service:api}.as_count() / sum:trace.http.request.hits{service:api}.as_count()) * 100 > 5"
  message = "error rate"
}

resource "datadog_monitor" "p99" {
  name    = "p99 latency"
  type    = "query alert"
  query   = "percentile(last_5m):p99:trace.http.request.duration{service:api} > 2"
  message = "slow"
}

resource "datadog_monitor" "logs" {
  name    = "Error logs"
  type    = "log alert"
  query   = "logs(\"service:api status:error\").index(\"*\").rollup(\"count\").by(\"host\").last(\"5m\") > 100"
  message = "error logs"

  monitor_thresholds {
    critical = 100
    warning  = 50
  }
  enable_logs_sample = true
}

resource "datadog_monitor" "http_check" {
  name    = "HTTP check"
  type    = "service check"
  query   = "\"http.can_connect\".over(\"env:prod\").by(\"host\",\"instance\").last(3).count_by_status()"
  message = "down"

  monitor_thresholds {
    warning  = 1
    critical = 2
    ok       = 1
  }
}

resource "datadog_monitor" "slo_burn" {
  name    = "SLO burn"
  type    = "slo alert"
  query   = "burn_rate(\"0123456789abcdef0123456789abcdef\").over(\"30d\").long_window(\"1h\").short_window(\"5m\") > 14.4"
  message = "burning"

  monitor_thresholds {
    critical = 14.4
  }
}

resource "datadog_monitor" "both" {
  name    = "Errors with slow"
  type    = "composite"
  query   = "${datadog_monitor.error_rate.id} && (${datadog_monitor.p99.id} || !${datadog_monitor.load_change.id})"
  message = "both"
}
