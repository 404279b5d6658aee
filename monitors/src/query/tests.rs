use super::*;

#[test]
fn parses_the_compact_form_query() {
    let q = parse("avg(last_5m):avg:app.5xx{*} by {service,env} > 50").unwrap();
    assert_eq!(q.window_minutes, 5);
    assert_eq!(q.op, Op::Gt);
    assert_eq!(q.threshold, 50.0);
    let s = q.simple.unwrap();
    assert_eq!(s.metric, "app.5xx");
    assert!(s.scope.is_empty());
    assert_eq!(s.by, vec!["service", "env"]);
}

#[test]
fn parses_arithmetic_and_scopes() {
    let q = parse(
        "sum(last_1h):sum:a.errors{env:prod}.as_count() / sum:a.hits{env:prod}.as_count() >= 0.05",
    )
    .unwrap();
    assert_eq!(q.op, Op::Ge);
    assert_eq!(q.threshold, 0.05);
    assert!(q.simple.is_none());
    let q = parse("max(last_10m):max:disk.used{host:a,!env:dev} < 3").unwrap();
    assert_eq!(q.simple.unwrap().scope, vec!["host:a", "!env:dev"]);
}

#[test]
fn parses_change_forecast_anomalies_outliers() {
    let q = parse("change(max(last_5m),last_5m):avg:system.load.1{*} > 2").unwrap();
    assert_eq!((q.time_aggr.as_str(), q.window_minutes), ("change", 5));
    let q = parse("pct_change(avg(last_1h),1h_ago):sum:app.hits{*}.as_count() < -50").unwrap();
    assert_eq!(q.threshold, -50.0);
    let q =
        parse("max(next_1w):forecast(avg:system.disk.in_use{*} by {host}, 'linear', 1) >= 0.95")
            .unwrap();
    assert_eq!(q.window, "next_1w");
    parse("avg(last_4h):anomalies(avg:trace.http.request.hits{service:a}.as_count(), 'agile', 2, direction='above', alert_window='last_15m', interval=60, count_default_zero='true') >= 1").unwrap();
    parse("avg(last_30m):outliers(avg:system.cpu.user{role:db} by {host}, 'DBSCAN', 3) > 0")
        .unwrap();
    parse("percentile(last_5m):p99:trace.http.request.duration{service:a} > 2").unwrap();
    parse("sum(last_5m):(sum:a.errors{*}.as_count() / sum:a.hits{*}.as_count()) * 100 > 5")
        .unwrap();
    assert!(parse("avg(last_4h):anomalies(avg:a{*}, 'magic', 2) >= 1")
        .unwrap_err()
        .contains("'magic'"));
    assert!(parse("avg(next_1w):avg:a{*} > 1")
        .unwrap_err()
        .contains("future window"));
    assert!(parse("change(max(last_5m),yesterday):avg:a{*} > 1")
        .unwrap_err()
        .contains("time shift"));
}

#[test]
fn checks_other_monitor_types() {
    let ok = |t: &str, q: &str| check_typed(t, q).unwrap_or_else(|e| panic!("{q}: {e}"));
    assert_eq!(
        ok(
            "log alert",
            r#"logs("service:api status:error").index("*").rollup("count").by("host").last("5m") > 100"#
        ),
        Some((Op::Gt, 100.0))
    );
    ok(
        "service check",
        r#""http.can_connect".over("env:prod").by("host").last(2).count_by_status()"#,
    );
    ok(
        "slo alert",
        r#"burn_rate("abc123").over("30d").long_window("1h").short_window("5m") > 14.4"#,
    );
    ok("slo alert", r#"error_budget("abc123").over("7d") > 90"#);
    ok("composite", "${datadog_monitor.a.id} && !(123 || 456)");
    ok(
        "event-v2 alert",
        r#"events("source:deploy").rollup("count").last("1h") >= 1"#,
    );
    let err = |t: &str, q: &str| check_typed(t, q).unwrap_err();
    assert!(err(
        "log alert",
        r#"logs("x").index("*").rollup("count").last("5x") > 1"#
    )
    .contains("\"5x\""));
    assert!(err("log alert", r#"events("x").last("5m") > 1"#).contains("starts with logs("));
    assert!(err("log alert", r#"logs("x).last("5m") > 1"#).contains("never closed"));
    assert!(err("composite", "123 &&").contains("ends with an operator"));
    assert!(err("composite", "a && b").contains("unexpected `a`"));
    assert!(err("service check", r#""x".over("*").last(2)"#).contains("count_by_status"));
    assert!(err("slo alert", r#"burn_rate("x").over("30d") > 1"#).contains("long_window"));
}

#[test]
fn long_queries_are_not_echoed_whole() {
    let long = format!("avg(last_5m):{} > 1", "x".repeat(500));
    let e = parse(&long).unwrap_err();
    assert!(e.len() < 120, "{e}");
    assert!(e.contains("…"), "{e}");
}

#[test]
fn rejects_bad_queries() {
    assert!(parse("avg:app.5xx{*} > 5")
        .unwrap_err()
        .contains("time aggregator"));
    assert!(parse("median(last_5m):avg:a{*} > 5")
        .unwrap_err()
        .contains("median"));
    assert!(parse("avg(last_5x):avg:a{*} > 5")
        .unwrap_err()
        .contains("last_5x"));
    assert!(parse("avg(last_5m):avg:a{*}")
        .unwrap_err()
        .contains("comparator"));
    assert!(parse("avg(last_5m):avg:a{* > 5")
        .unwrap_err()
        .contains("unbalanced"));
    assert!(parse("avg(last_5m):avg:a{*} > x")
        .unwrap_err()
        .contains("not a number"));
    assert!(parse("avg(last_5m):median:a{*} > 1")
        .unwrap_err()
        .contains("space aggregator"));
}

#[test]
fn formats_numbers_like_datadog() {
    assert_eq!(fmt_num(10.0), "10");
    assert_eq!(fmt_num(2.5), "2.5");
    assert_eq!(
        normalize(" avg(last_5m):avg:a{*}   >  5 "),
        "avg(last_5m):avg:a{*} > 5"
    );
}
