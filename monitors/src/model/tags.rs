//! Ownership: the tags kelpie puts on every monitor it manages (so that only this project's monitors are
//! ever touched), the message footer, and `${….id}` references between monitors.

use serde_json::Value as JsonValue;
use std::collections::HashMap;

pub const TAG_MANAGED: &str = "managed-by:kelpie";
pub const TAG_PROJECT: &str = "kelpie-project:";
pub const TAG_ADDRESS: &str = "kelpie-address:";
/// The first line of the footer kelpie appends to every managed monitor's message.
pub const FOOTER_MARK: &str = "---\nManaged by kelpie";

/// What `datadog_monitor.<name>.id` evaluates to before the monitor exists: `${<address tag>.id}`, replaced
/// with the real id by plan and sync.
pub fn ref_token(address: &str) -> String {
    format!("${{{}.id}}", address_tag(address))
}

/// `text` with every [`ref_token`] whose address has an id in `ids` (keyed by address tag) replaced by it;
/// also says whether a reference is left.
pub fn resolve_refs(text: &str, ids: &HashMap<String, i64>) -> (String, bool) {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut left = false;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(".id}") {
            Some(j) if !after[..j].contains(['{', '}', ' ']) => {
                let tag = &after[..j];
                match ids.get(tag) {
                    Some(id) => out.push_str(&id.to_string()),
                    None => {
                        left = true;
                        out.push_str(&rest[i..i + 2 + j + 4]);
                    }
                }
                rest = &after[j + 4..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    (out, left)
}

/// The address as a tag value: index keys become dotted parts, characters Datadog does not allow in tags
/// become `_`, lower case (Datadog lower-cases tags).
pub fn address_tag(address: &str) -> String {
    let mut s = String::with_capacity(address.len());
    let mut chars = address.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '[' {
            s.push('.');
            let mut key = String::new();
            for k in chars.by_ref() {
                if k == ']' {
                    break;
                }
                key.push(k);
            }
            s.push_str(key.trim().trim_matches('"'));
        } else {
            s.push(ch);
        }
    }
    s.chars()
        .map(|ch| {
            if ch.is_alphanumeric() || "_-:./".contains(ch) {
                ch
            } else {
                '_'
            }
        })
        .collect::<String>()
        .to_lowercase()
}

/// Tags of a monitor returned by the API.
pub fn remote_tags(m: &JsonValue) -> Vec<String> {
    m.get("tags")
        .and_then(JsonValue::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(|s| s.trim().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The value of the first tag with `prefix`.
pub fn tag_value(tags: &[String], prefix: &str) -> Option<String> {
    tags.iter()
        .find_map(|t| t.strip_prefix(prefix).map(str::to_string))
}
