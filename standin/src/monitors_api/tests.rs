use super::normalize::{normalize, rfc3339};
use super::routes::percent_decode;
use super::validate::validate;
use serde_json::json;
use std::time::{Duration, UNIX_EPOCH};

#[test]
fn datadog_error_texts() {
    let m = json!({"type": "metric alert", "query": "avg(last_5m):avg:a{*} > 50", "options": {"thresholds": {"critical": 40}}});
    assert_eq!(
        validate(&m).unwrap_err(),
        "Alert threshold (40.0) does not match that used in the query (50.0)."
    );
    let m = json!({"type": "metric alert", "query": "avg(last_5m):avg:a{*} > 50", "options": {"thresholds": {"critical": 50, "warning": 60}}});
    assert_eq!(
        validate(&m).unwrap_err(),
        "Warning threshold (60.0) must be less than the alert threshold (50.0)."
    );
    let m = json!({"type": "metric alert", "query": "avg(last_5m):avg:a{*} > 50", "options": {"thresholds": {"warning": 10}}});
    assert_eq!(validate(&m).unwrap_err(), "Alert status is required.");
    let m = json!({"type": "metric alert", "query": "avg:a{*} > 50"});
    assert_eq!(
        validate(&m).unwrap_err(),
        "The value provided for parameter 'query' is invalid"
    );
    let m = json!({"type": "query alert", "query": "sum(last_1h):sum:a{x:y}.as_count() / sum:b{*}.as_count() >= 0.5"});
    assert!(validate(&m).is_ok());
    // Month windows, and cumulative windows (from the start of the hour, day, week or month).
    for w in ["last_1mo", "last_2mo", "current_1h", "current_1mo"] {
        let m =
            json!({"type": "query alert", "query": format!("sum({w}):sum:a{{*}}.as_count() > 5")});
        assert!(validate(&m).is_ok(), "{w}");
    }
    let m = json!({"type": "query alert", "query": "sum(current_2d):sum:a{*} > 5"});
    assert!(validate(&m).is_err());
}

#[test]
fn normalization() {
    let mut m = json!({"type": "metric alert", "name": " n ", "tags": ["b", "a", "a"], "options": {"thresholds": {"critical": 5}}});
    normalize(&mut m);
    assert_eq!(m["type"], "query alert");
    assert_eq!(m["name"], "n");
    assert_eq!(m["tags"], json!(["a", "b"]));
    assert_eq!(m["options"]["thresholds"]["critical"], json!(5.0));
    assert_eq!(m["options"]["new_host_delay"], json!(300));
    assert_eq!(m["options"]["include_tags"], json!(true));
    assert!(
        rfc3339(UNIX_EPOCH + Duration::from_secs(86_400 * 365)).starts_with("1971-01-01T00:00:00")
    );
}

#[test]
fn percent_decoding() {
    assert_eq!(
        percent_decode("managed-by%3Akelpie%2Ca+b"),
        "managed-by:kelpie,a b"
    );
    assert_eq!(percent_decode("100%"), "100%");
}
