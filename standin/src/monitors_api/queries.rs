//! The read endpoints: the paged list with its filters, search, and `can_delete` with the composite
//! monitors that still reference a monitor.

use super::routes::err;
use super::{Inner, MAX_PAGE_SIZE};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn tags_of(m: &Value) -> Vec<String> {
    m.get("tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn list(inner: &Inner, q: &BTreeMap<String, String>) -> (StatusCode, Value) {
    let want_tags: Vec<&str> = q
        .get("monitor_tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let name = q.get("name").map(|n| n.to_lowercase());
    let mut items: Vec<&Value> = inner
        .monitors
        .values()
        .filter(|m| {
            let tags = tags_of(m);
            want_tags.iter().all(|w| tags.iter().any(|t| t == w))
        })
        .filter(|m| match &name {
            Some(n) => m
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|s| s.to_lowercase().contains(n)),
            None => true,
        })
        .collect();
    if let Some(off) = q.get("id_offset").and_then(|s| s.parse::<i64>().ok()) {
        items.retain(|m| m.get("id").and_then(Value::as_i64).is_some_and(|i| i > off));
    }
    if let Some(page) = q.get("page") {
        let Ok(page) = page.parse::<usize>() else {
            return err(
                StatusCode::BAD_REQUEST,
                "The value provided for parameter 'page' is invalid",
            );
        };
        let size = match q.get("page_size").map(|s| s.parse::<usize>()) {
            None => 100,
            Some(Ok(s)) if (1..=MAX_PAGE_SIZE).contains(&s) => s,
            Some(_) => return err(StatusCode::BAD_REQUEST, "The value provided for parameter 'page_size' is invalid: it must be between 1 and 1000"),
        };
        items = items
            .into_iter()
            .skip(page.saturating_mul(size))
            .take(size)
            .collect();
    }
    (
        StatusCode::OK,
        Value::Array(items.into_iter().cloned().collect()),
    )
}

/// `GET /api/v1/monitor/search`: `query` terms `tag:"k:v"` (or `tag:k:v`) must all match, other words match
/// the name (case-insensitive); the answer holds `monitors` (summaries), `metadata` (`page`, `page_count`,
/// `per_page`, `total_count`) and `counts`, as Datadog's.
pub(super) fn search(inner: &Inner, q: &BTreeMap<String, String>) -> (StatusCode, Value) {
    let query = q.get("query").cloned().unwrap_or_default();
    let mut tags = Vec::new();
    let mut words = Vec::new();
    for term in query.split_whitespace() {
        match term.strip_prefix("tag:") {
            Some(t) => tags.push(t.trim_matches('"').to_string()),
            None => words.push(term.trim_matches('"').to_lowercase()),
        }
    }
    let per_page = match q.get("per_page").map(|s| s.parse::<usize>()) {
        None => 30,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return err(
                StatusCode::BAD_REQUEST,
                "The value provided for parameter 'per_page' is invalid",
            )
        }
    };
    let page = match q.get("page").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return err(
                StatusCode::BAD_REQUEST,
                "The value provided for parameter 'page' is invalid",
            )
        }
    };
    let found: Vec<&Value> = inner
        .monitors
        .values()
        .filter(|m| {
            let mt = tags_of(m);
            tags.iter().all(|t| mt.iter().any(|x| x == t))
        })
        .filter(|m| {
            let name = m
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase();
            words.iter().all(|w| name.contains(w.as_str()))
        })
        .collect();
    let total = found.len();
    let monitors: Vec<Value> = found
        .iter()
        .skip(page.saturating_mul(per_page))
        .take(per_page)
        .map(|m| {
            json!({
                "id": m.get("id"),
                "name": m.get("name"),
                "tags": m.get("tags"),
                "type": m.get("type"),
                "query": m.get("query"),
                "status": m.get("overall_state"),
            })
        })
        .collect();
    (
        StatusCode::OK,
        json!({
            "counts": {"status": [], "muted": [], "tag": [], "type": []},
            "metadata": {"page": page, "page_count": total.div_ceil(per_page), "per_page": per_page, "total_count": total},
            "monitors": monitors,
        }),
    )
}

pub(super) fn referenced_by(inner: &Inner, id: i64) -> Option<String> {
    let needle = id.to_string();
    let refs: Vec<String> = inner
        .monitors
        .iter()
        .filter(|(other, m)| {
            **other != id
                && m.get("type").and_then(Value::as_str) == Some("composite")
                && m.get("query").and_then(Value::as_str).is_some_and(|q| {
                    q.split(|c: char| !c.is_ascii_digit())
                        .any(|tok| tok == needle)
                })
        })
        .map(|(o, _)| o.to_string())
        .collect();
    (!refs.is_empty()).then(|| {
        format!(
            "monitor [{id},] is referenced in composite monitors: [{}]",
            refs.join(", ")
        )
    })
}

pub(super) fn can_delete(inner: &Inner, q: &BTreeMap<String, String>) -> (StatusCode, Value) {
    let Some(ids) = q.get("monitor_ids") else {
        return err(
            StatusCode::BAD_REQUEST,
            "The value provided for parameter 'monitor_ids' is invalid",
        );
    };
    let mut ok = Vec::new();
    let mut errors = Map::new();
    for s in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Ok(id) = s.parse::<i64>() else {
            return err(
                StatusCode::BAD_REQUEST,
                "The value provided for parameter 'monitor_ids' is invalid",
            );
        };
        if !inner.monitors.contains_key(&id) {
            errors.insert(id.to_string(), json!(["Monitor not found"]));
        } else if let Some(why) = referenced_by(inner, id) {
            errors.insert(id.to_string(), json!([why]));
        } else {
            ok.push(id);
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::CONFLICT
    };
    let errors = if errors.is_empty() {
        Value::Null
    } else {
        Value::Object(errors)
    };
    (status, json!({ "data": { "ok": ok }, "errors": errors }))
}
