//! Evaluated HCL values as the API's JSON: whole numbers stay integers, and the provider's nested blocks
//! (`scheduling_options`, `variables`) take the shape the API wants.

use hcl::Value;
use serde_json::{json, Map as JsonMap, Value as JsonValue};

/// An evaluated HCL value as JSON (whole numbers stay integers).
pub(super) fn to_json(v: &Value) -> JsonValue {
    match v {
        Value::Null => JsonValue::Null,
        Value::Bool(b) => JsonValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => JsonValue::from(i),
            None => n.as_f64().map(|f| json!(f)).unwrap_or(JsonValue::Null),
        },
        Value::String(s) => JsonValue::from(s.as_str()),
        Value::Array(a) => JsonValue::Array(a.iter().map(to_json).collect()),
        Value::Object(o) => {
            JsonValue::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

/// The one object of a block that may appear once (nested blocks arrive as lists of one).
fn single(v: Option<&Value>) -> Option<&hcl::Map<String, Value>> {
    match v? {
        Value::Array(a) => a.first().and_then(Value::as_object),
        Value::Object(o) => Some(o),
        _ => None,
    }
}

/// An object whose nested blocks named in `singles` become objects; other fields as they are.
fn shaped(m: &hcl::Map<String, Value>, singles: &[&str]) -> JsonMap<String, JsonValue> {
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| match single(Some(v)) {
            Some(o) if singles.contains(&k.as_str()) => {
                (k.clone(), JsonValue::Object(shaped(o, singles)))
            }
            _ => match v {
                Value::Array(a) if a.iter().all(Value::is_object) && !a.is_empty() => (
                    k.clone(),
                    JsonValue::Array(
                        a.iter()
                            .filter_map(Value::as_object)
                            .map(|o| JsonValue::Object(shaped(o, singles)))
                            .collect(),
                    ),
                ),
                other => (k.clone(), to_json(other)),
            },
        })
        .collect()
}

/// The provider's block layout of `scheduling_options` and `variables` turned into the API's JSON.
pub(super) fn shape_block(key: &str, o: &hcl::Map<String, Value>) -> JsonValue {
    match key {
        "variables" => {
            // variables { event_query { … } cloud_cost_query { … } } → one list of queries, in which
            // compute, search and sort are objects and group_by a list.
            let mut list = Vec::new();
            for kind in ["event_query", "cloud_cost_query", "data_quality_query"] {
                if let Some(Value::Array(a)) = o.get(kind) {
                    for q in a.iter().filter_map(Value::as_object) {
                        list.push(JsonValue::Object(shaped(q, &["compute", "search", "sort"])));
                    }
                }
            }
            JsonValue::Array(list)
        }
        _ => {
            // scheduling_options { evaluation_window { … } custom_schedule { recurrence { … } } }
            let mut out = shaped(o, &["evaluation_window"]);
            if let Some(cs) = single(o.get("custom_schedule")) {
                let recs = match cs.get("recurrence") {
                    Some(Value::Array(a)) => a.iter().map(to_json).collect(),
                    _ => Vec::new(),
                };
                out.insert("custom_schedule".into(), json!({ "recurrences": recs }));
            }
            JsonValue::Object(out)
        }
    }
}
