//! What a module's expressions see of its monitors: `datadog_monitor.<name>.id` declared up front as a
//! reference that plan and sync replace with the real id, each monitor's arguments once it is loaded, and
//! which locals and monitors read those arguments (and so must wait for them). Its own file because this
//! is the one part of a load that knows how monitors are addressed; [`super::module`] only orders the steps.

use super::instances::MAX_INSTANCES;
use super::module::{all_locals, Module};
use super::parse::{attr, eval, label, references, ParsedFile};
use crate::eval::Scope;
use crate::model::{self, MONITOR_TYPES};
use hcl::edit::structure::Structure;
use hcl::{Map, Value};
use std::collections::BTreeMap;

/// The `<type>.<name>` of every monitor resource of the files.
pub(super) fn monitor_keys(files: &[ParsedFile]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| f.body.iter().filter_map(Structure::as_block))
        .filter(|b| b.ident.as_str() == "resource")
        .filter_map(|b| match (label(b, 0), label(b, 1)) {
            (Some(t), Some(n)) if MONITOR_TYPES.contains(&t) => Some(format!("{t}.{n}")),
            _ => None,
        })
        .collect()
}

/// The locals that Terraform can only evaluate once monitors are known: those that read a monitor's
/// arguments (`datadog_monitor.a.name`, not only its `.id`), and those that use such a local. They are
/// evaluated among the monitors (`load_blocks` in [`super::module`]), each once what it reads is loaded.
pub(super) fn late_locals(files: &[ParsedFile]) -> Vec<String> {
    let keys = monitor_keys(files);
    let locals = all_locals(files);
    let mut late: Vec<String> = locals
        .iter()
        .filter(|(_, _, _, text)| keys.iter().any(|k| reads_arguments(text, k)))
        .map(|(n, ..)| n.to_string())
        .collect();
    loop {
        let more: Vec<String> = locals
            .iter()
            .filter(|(n, ..)| !late.iter().any(|l| l == n))
            .filter(|(_, _, _, text)| late.iter().any(|l| references(text, &format!("local.{l}"))))
            .map(|(n, ..)| n.to_string())
            .collect();
        if more.is_empty() {
            return late;
        }
        late.extend(more);
    }
}

/// Whether `text` reads arguments of resource `key` (`datadog_monitor.a.name`, `datadog_monitor.a[0].query`,
/// the whole `datadog_monitor.a`), not only its `.id`.
pub(super) fn reads_arguments(text: &str, key: &str) -> bool {
    text.match_indices(key).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            return false;
        }
        let mut rest = &text[i + key.len()..];
        if rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
        {
            return false;
        }
        // Step over index and splat steps: `[0]`, `["k"]`, `[*]`, `.*`.
        loop {
            if let Some(r) = rest.strip_prefix(".*") {
                rest = r;
            } else if rest.starts_with('[') {
                let mut depth = 0;
                let end = rest.char_indices().find_map(|(j, c)| {
                    match c {
                        '[' => depth += 1,
                        ']' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(j + 1)
                });
                match end {
                    Some(e) => rest = &rest[e..],
                    None => return true,
                }
            } else {
                break;
            }
        }
        let only_id = rest.strip_prefix(".id").is_some_and(|r| {
            !r.chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
        });
        !only_id
    })
}

/// Sets `<rtype>.<rname>` in `ctx` to what the instances that loaded give other expressions: each one's
/// arguments (those not set are null, as in Terraform; set-typed ones sorted and without duplicates) and
/// its `id` reference; a list of them with `count`, a map with `for_each`.
pub(super) fn set_monitor_value(
    ctx: &mut Scope<'_>,
    rtype: &str,
    rname: &str,
    base: &str,
    loaded: Vec<super::resource::LoadedInstance>,
) {
    let mut by_type = match ctx.get(rtype) {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    let mut current = by_type.get(rname).cloned();
    let names = model::argument_names(rtype);
    for (suffix, each, count, mut attrs) in loaded {
        for n in &names {
            attrs.entry(n.to_string()).or_insert(Value::Null);
        }
        for set in ["tags", "restricted_roles", "notify_by", "renotify_statuses"] {
            if let Some(Value::Array(a)) = attrs.get_mut(set) {
                if a.iter().all(Value::is_string) {
                    a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                    a.dedup();
                }
            }
        }
        attrs.insert(
            "id".to_string(),
            Value::from(model::ref_token(&format!("{base}{suffix}"))),
        );
        let obj = Value::Object(attrs);
        current = Some(match (count, each, current) {
            (Some(i), _, cur) => {
                let mut list = match cur {
                    Some(Value::Array(a)) => a,
                    _ => Vec::new(),
                };
                let i = i as usize;
                while list.len() <= i {
                    let id = model::ref_token(&format!("{base}[{}]", list.len()));
                    list.push(Value::Object(Map::from_iter([(
                        "id".to_string(),
                        Value::from(id),
                    )])));
                }
                list[i] = obj;
                Value::Array(list)
            }
            (None, Some((key, _)), cur) => {
                let mut map = match cur {
                    Some(Value::Object(o)) => o,
                    _ => Map::new(),
                };
                let key = match key {
                    Value::String(s) => s,
                    other => crate::funcs::to_str(&other).unwrap_or_default(),
                };
                map.insert(key, obj);
                Value::Object(map)
            }
            (None, None, _) => obj,
        });
    }
    if let Some(v) = current {
        by_type.insert(rname.to_string(), v);
    }
    ctx.set(rtype, Value::Object(by_type));
}

/// Declares `datadog_monitor.<name>.id` (and the same for the other monitor resources) as a reference that
/// plan and sync replace with the monitor's real id (composite monitors name their children this way). A
/// resource with `count` is a list of them and one with `for_each` a map, when those can be evaluated yet.
pub(super) fn declare_monitor_refs(m: &Module, files: &[ParsedFile], ctx: &mut Scope<'_>) {
    let mut by_type: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for f in files {
        for b in f
            .body
            .iter()
            .filter_map(Structure::as_block)
            .filter(|b| b.ident.as_str() == "resource")
        {
            let (Some(rtype), Some(rname)) = (label(b, 0), label(b, 1)) else {
                continue;
            };
            if !MONITOR_TYPES.contains(&rtype) {
                continue;
            }
            let base = format!("{}{}.{}", m.prefix, rtype, rname);
            let one = |suffix: &str| {
                let mut o = Map::new();
                o.insert(
                    "id".to_string(),
                    Value::from(model::ref_token(&format!("{base}{suffix}"))),
                );
                Value::Object(o)
            };
            let v = if let Some(c) = attr(b, "count") {
                match eval(&c.value, ctx)
                    .ok()
                    .and_then(|v| crate::funcs::to_num(&v).ok())
                {
                    Some(n) if n >= 0.0 && (n as usize) <= MAX_INSTANCES => {
                        Value::Array((0..n as usize).map(|i| one(&format!("[{i}]"))).collect())
                    }
                    _ => continue,
                }
            } else if let Some(fe) = attr(b, "for_each") {
                let keys: Vec<String> = match eval(&fe.value, ctx) {
                    Ok(Value::Object(o)) => o.keys().cloned().collect(),
                    Ok(Value::Array(a)) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect(),
                    _ => continue,
                };
                Value::Object(
                    keys.into_iter()
                        .map(|k| {
                            let suffix = format!("[{}]", serde_json::Value::String(k.clone()));
                            (k, one(&suffix))
                        })
                        .collect(),
                )
            } else {
                one("")
            };
            by_type
                .entry(rtype)
                .or_default()
                .insert(rname.to_string(), v);
        }
    }
    for (t, v) in by_type {
        ctx.set(t, Value::Object(v));
    }
}
