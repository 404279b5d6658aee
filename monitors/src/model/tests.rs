use super::*;
use crate::diag::Pos;
use hcl::Value;
use serde_json::json;

#[test]
fn address_tags_use_dotted_keys() {
    assert_eq!(
        address_tag(r#"module.api.datadog_monitor.errors["p95"]"#),
        "module.api.datadog_monitor.errors.p95"
    );
    assert_eq!(
        address_tag("datadog_monitor_metric.x[3]"),
        "datadog_monitor_metric.x.3"
    );
    assert_eq!(
        address_tag(r#"module.s["a b"].datadog_monitor.E"#),
        "module.s.a_b.datadog_monitor.e"
    );
    assert_eq!(
        address_tag("datadog_monitor_metric.app.internal_errors"),
        "datadog_monitor_metric.app.internal_errors"
    );
}

#[test]
fn normalization_hides_api_rewrites() {
    let want = json!({"name": "A ", "type": "metric alert", "query": "avg(last_5m):avg:a{*}  > 5",
            "message": "m\n", "tags": ["b", "a"], "options": {"thresholds": {"critical": 5}, "include_tags": true}});
    let have = json!({"name": "A", "type": "query alert", "query": "avg(last_5m):avg:a{*} > 5",
            "message": "m", "tags": ["a", "b"], "options": {"thresholds": {"critical": 5.0, "warning": null}}});
    let keys = vec!["thresholds".to_string(), "include_tags".to_string()];
    assert_eq!(
        managed_fields(&want, &keys, false, false),
        managed_fields(&have, &keys, false, false)
    );
    let changed = json!({"name": "A", "type": "query alert", "query": "avg(last_5m):avg:a{*} > 5",
            "message": "m", "tags": ["a", "b"], "options": {"thresholds": {"critical": 6.0}}});
    assert_ne!(
        managed_fields(&want, &keys, false, false),
        managed_fields(&changed, &keys, false, false)
    );
    let keys = vec!["notify_by".to_string(), "renotify_interval".to_string()];
    let a = json!({"restricted_roles": [], "options": {"notify_by": [], "renotify_interval": 0}});
    let b = json!({"restricted_roles": null, "options": {"renotify_interval": null}});
    assert_eq!(
        managed_fields(&a, &keys, false, true),
        managed_fields(&b, &keys, false, true)
    );
}

fn args(items: Vec<(&str, Value)>) -> Args {
    let mut a = Args::default();
    let mut errs = Vec::new();
    for (i, (k, v)) in items.into_iter().enumerate() {
        let pos = Pos {
            file: "t.tf".into(),
            line: i + 1,
            col: 3,
        };
        a.insert(k, v, pos, false, "x", &mut errs);
    }
    a
}

fn thresholds(pairs: &[(&str, f64)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::from(*v)))
            .collect(),
    )
}

#[test]
fn provider_form_checks_thresholds() {
    let base = |th: Value| {
        args(vec![
            ("name", Value::from("n")),
            ("type", Value::from("metric alert")),
            ("query", Value::from("avg(last_5m):avg:a{*} < 10")),
            ("message", Value::from("m")),
            ("monitor_thresholds", th),
            ("priority", Value::from("2")),
        ])
    };
    let ok = from_args(
        MONITOR_RESOURCE,
        "x",
        Pos::default(),
        &base(thresholds(&[("warning", 20.0), ("warning_recovery", 25.0)])),
    )
    .unwrap();
    assert_eq!(
        ok.options["thresholds"],
        json!({"warning": 20.0, "warning_recovery": 25.0, "critical": 10.0})
    );
    assert_eq!(ok.priority, Some(2));
    let errs = from_args(
        MONITOR_RESOURCE,
        "x",
        Pos::default(),
        &base(thresholds(&[("warning", 5.0), ("critical_recovery", 9.0)])),
    )
    .unwrap_err();
    let msgs: Vec<String> = errs.iter().map(|d| d.message.clone()).collect();
    assert_eq!(
            msgs,
            vec![
                "warning threshold (5) must be above the critical threshold (10) for `<`".to_string(),
                "critical_recovery (9) must be on the recovery side of the critical threshold (10) for `<`".to_string(),
            ]
        );
    assert_eq!(
        errs[0].to_string(),
        "t.tf:5:3: x: warning threshold (5) must be above the critical threshold (10) for `<`"
    );
}

#[test]
fn the_newest_monitor_types_are_accepted() {
    // Types the API added lately; their queries are only checked for balanced quotes and brackets.
    for t in ["data-quality alert", "network-path alert", "cost alert"] {
        let a = args(vec![
            ("name", Value::from("n")),
            ("type", Value::from(t)),
            ("query", Value::from("source(\"x\").last(\"1h\") > 1")),
            ("message", Value::from("m")),
        ]);
        assert!(
            from_args(MONITOR_RESOURCE, "x", Pos::default(), &a).is_ok(),
            "{t}"
        );
    }
    let a = args(vec![
        ("name", Value::from("n")),
        ("type", Value::from("quality alert")),
        ("query", Value::from("x > 1")),
        ("message", Value::from("m")),
    ]);
    assert!(from_args(MONITOR_RESOURCE, "x", Pos::default(), &a).is_err());
}
