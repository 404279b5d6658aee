//! `kelpie monitors import`: writes readable HCL for existing monitors, each with a Terraform-style
//! `import { to, id }` block, so that the next sync adopts (tags) the monitor instead of creating a copy.

use crate::model::{
    option_default, Kind, FOOTER_MARK, OPTION_ARGS, TAG_ADDRESS, TAG_MANAGED, TAG_PROJECT,
};
use crate::query::fmt_num;
use serde_json::Value;
use std::collections::HashSet;

/// An HCL string literal: escapes quotes, backslashes, control characters and template markers.
pub fn hcl_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                o.push(c);
                o.push(c);
            }
            c if c.is_control() => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn slug(name: &str) -> String {
    let mut s: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    let s = s.trim_matches('_').to_string();
    let s = if s.is_empty() {
        "monitor".to_string()
    } else {
        s
    };
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("m_{s}")
    } else {
        s.chars().take(60).collect()
    }
}

fn strip_footer(msg: &str) -> String {
    match msg.find(FOOTER_MARK) {
        Some(i) => msg[..i].trim_end().to_string(),
        None => msg.to_string(),
    }
}

fn value_hcl(v: &Value) -> Option<String> {
    Some(match v {
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.as_f64().map(fmt_num)?,
        Value::String(s) => hcl_string(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .filter_map(value_hcl)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(o) => format!(
            "{{ {} }}",
            o.iter()
                .filter_map(|(k, v)| Some(format!("{k} = {}", value_hcl(v)?)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Null => return None,
    })
}

/// Renders monitors as `datadog_monitor` resources with import blocks.
pub fn render(monitors: &[Value]) -> String {
    let mut out = String::from("# Written by `kelpie monitors import`. Review, commit, then run `kelpie monitors plan`:\n# the import blocks make the next sync adopt these monitors instead of creating copies.\n");
    let mut used: HashSet<String> = HashSet::new();
    for m in monitors {
        let Some(id) = m.get("id").and_then(Value::as_i64) else {
            continue;
        };
        let name = m.get("name").and_then(Value::as_str).unwrap_or("");
        let mut rname = slug(name);
        if !used.insert(rname.clone()) {
            rname = format!("{rname}_{id}");
            used.insert(rname.clone());
        }
        let w = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        out.push_str(&format!("\nresource \"datadog_monitor\" \"{rname}\" {{\n"));
        out.push_str(&format!("  name    = {}\n", hcl_string(name.trim())));
        out.push_str(&format!("  type    = {}\n", hcl_string(&w("type"))));
        out.push_str(&format!("  query   = {}\n", hcl_string(w("query").trim())));
        out.push_str(&format!(
            "  message = {}\n",
            hcl_string(strip_footer(&w("message")).trim())
        ));
        let tags: Vec<String> = m
            .get("tags")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let tags: Vec<String> = tags
            .into_iter()
            .filter(|t| {
                t != TAG_MANAGED && !t.starts_with(TAG_PROJECT) && !t.starts_with(TAG_ADDRESS)
            })
            .map(|t| hcl_string(&t))
            .collect();
        if !tags.is_empty() {
            out.push_str(&format!("  tags    = [{}]\n", tags.join(", ")));
        }
        if let Some(p) = m.get("priority").and_then(Value::as_i64) {
            out.push_str(&format!("  priority = {p}\n"));
        }
        let opts = m.get("options").cloned().unwrap_or(Value::Null);
        if let Some(th) = opts.get("thresholds").and_then(Value::as_object) {
            let lines: Vec<String> = th
                .iter()
                .filter_map(|(k, v)| Some(format!("    {k} = {}\n", fmt_num(v.as_f64()?))))
                .collect();
            if !lines.is_empty() {
                out.push_str("\n  monitor_thresholds {\n");
                lines.iter().for_each(|l| out.push_str(l));
                out.push_str("  }\n");
            }
        }
        let mut first = true;
        for (key, kind) in OPTION_ARGS {
            let Some(v) = opts.get(*key).filter(|v| !v.is_null()) else {
                continue;
            };
            let default = option_default(key);
            let same = match (v.as_f64(), default.as_f64()) {
                (Some(a), Some(b)) => a == b,
                _ => *v == default,
            };
            if same || matches!(kind, Kind::StrList) && v.as_array().is_some_and(Vec::is_empty) {
                continue;
            }
            if let Some(h) = value_hcl(v) {
                if first {
                    out.push('\n');
                    first = false;
                }
                out.push_str(&format!("  {key} = {h}\n"));
            }
        }
        out.push_str("}\n");
        out.push_str(&format!(
            "\nimport {{\n  to = datadog_monitor.{rname}\n  id = \"{id}\"\n}}\n"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_for_hcl() {
        assert_eq!(
            hcl_string("a \"b\"\n${x} %{y} 50%"),
            r#""a \"b\"\n$${x} %%{y} 50%""#
        );
    }

    #[test]
    fn slugs_are_identifiers() {
        assert_eq!(slug("API: p95 latency > 1s"), "api_p95_latency_1s");
        assert_eq!(slug("5xx"), "m_5xx");
        assert_eq!(slug("!!!"), "monitor");
    }
}
