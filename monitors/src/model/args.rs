//! Reading a resource's arguments as typed values (string, number, bool, list, map), each error naming the
//! argument and its place; all errors of a resource are collected, not just the first.

use super::shape::shape_block;
use crate::diag::{Diag, Pos};
use crate::funcs::type_name;
use hcl::Value;
use serde_json::{Map as JsonMap, Value as JsonValue};

#[derive(Clone, Copy)]
pub enum Kind {
    Bool,
    Int,
    Str,
    StrList,
    StrMap,
    /// A block passed on as JSON, shaped as the API wants it (scheduling_options, variables).
    Json,
}

/// Arguments that map one to one onto `options.<key>` in both resource forms.
pub const OPTION_ARGS: &[(&str, Kind)] = &[
    ("notify_no_data", Kind::Bool),
    ("no_data_timeframe", Kind::Int),
    ("renotify_interval", Kind::Int),
    ("renotify_occurrences", Kind::Int),
    ("renotify_statuses", Kind::StrList),
    ("evaluation_delay", Kind::Int),
    ("new_group_delay", Kind::Int),
    ("new_host_delay", Kind::Int),
    ("require_full_window", Kind::Bool),
    ("include_tags", Kind::Bool),
    ("notify_audit", Kind::Bool),
    ("timeout_h", Kind::Int),
    ("escalation_message", Kind::Str),
    ("locked", Kind::Bool),
    ("enable_logs_sample", Kind::Bool),
    ("groupby_simple_monitor", Kind::Bool),
    ("notify_by", Kind::StrList),
    ("on_missing_data", Kind::Str),
    ("threshold_windows", Kind::StrMap),
    // The provider's current name for threshold_windows.
    ("monitor_threshold_windows", Kind::StrMap),
    ("notification_preset_name", Kind::Str),
    ("enable_samples", Kind::Bool),
    ("group_retention_duration", Kind::Str),
    ("scheduling_options", Kind::Json),
    ("variables", Kind::Json),
    // Older providers: a map of scope to mute-until timestamp.
    ("silenced", Kind::Json),
];

/// A resource's evaluated arguments and blocks, with positions.
#[derive(Default, Debug)]
pub struct Args {
    items: Vec<(String, Value, Pos, bool)>,
}

impl Args {
    pub fn insert(
        &mut self,
        key: &str,
        v: Value,
        pos: Pos,
        is_block: bool,
        address: &str,
        errors: &mut Vec<Diag>,
    ) {
        if let Some((_, _, first, _)) = self.items.iter().find(|(k, ..)| k == key) {
            errors.push(Diag::new(
                Some(pos),
                Some(address),
                format!("`{key}` is set more than once (first at {first})"),
            ));
            return;
        }
        self.items.push((key.to_string(), v, pos, is_block));
    }

    fn get(&self, key: &str) -> Option<(&Value, &Pos)> {
        self.items
            .iter()
            .find(|(k, ..)| k == key)
            .map(|(_, v, p, _)| (v, p))
    }
}

/// A resource's arguments being read, with the errors found so far.
pub(super) struct Conv<'a> {
    pub(super) args: &'a Args,
    pub(super) address: &'a str,
    /// Where errors without a place of their own point (the resource block).
    pub(super) pos: Pos,
    pub(super) errors: Vec<Diag>,
}

impl<'a> Conv<'a> {
    pub(super) fn err(&mut self, pos: Option<&Pos>, msg: impl Into<String>) {
        let pos = pos.cloned().unwrap_or_else(|| self.pos.clone());
        self.errors
            .push(Diag::new(Some(pos), Some(self.address), msg));
    }

    pub(super) fn present(&self, key: &str) -> Option<(&'a Value, &'a Pos)> {
        self.args.get(key).filter(|(v, _)| !v.is_null())
    }

    pub(super) fn string(&mut self, key: &str) -> Option<String> {
        let (v, p) = self.present(key)?;
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                self.err(
                    Some(p),
                    format!("`{key}` must be a string, got {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn required(&mut self, key: &str) -> String {
        match self.string(key) {
            Some(s) => s,
            None => {
                if self.present(key).is_none() {
                    self.err(None, format!("the required argument `{key}` is missing"));
                }
                String::new()
            }
        }
    }

    pub(super) fn number_of(&mut self, v: &Value, p: &Pos, what: &str) -> Option<f64> {
        match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Some(f),
                _ => {
                    self.err(Some(p), format!("`{what}` must be a number, got \"{s}\""));
                    None
                }
            },
            other => {
                self.err(
                    Some(p),
                    format!("`{what}` must be a number, got {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn int(&mut self, key: &str) -> Option<i64> {
        let (v, p) = self.present(key)?;
        let f = self.number_of(v, p, key)?;
        if f.fract() != 0.0 {
            self.err(Some(p), format!("`{key}` must be a whole number, got {f}"));
            return None;
        }
        Some(f as i64)
    }

    pub(super) fn boolean(&mut self, key: &str) -> Option<bool> {
        let (v, p) = self.present(key)?;
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            other => {
                self.err(
                    Some(p),
                    format!("`{key}` must be true or false, got {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn str_list(&mut self, key: &str) -> Option<Vec<String>> {
        let (v, p) = self.present(key)?;
        match v {
            Value::Array(a) => {
                let mut out = Vec::new();
                for x in a {
                    match x {
                        Value::String(s) => out.push(s.clone()),
                        Value::Number(n) => out.push(n.to_string()),
                        other => {
                            self.err(
                                Some(p),
                                format!(
                                    "`{key}` must be a list of strings, found {}",
                                    type_name(other)
                                ),
                            );
                            return None;
                        }
                    }
                }
                Some(out)
            }
            // Terraform 0.6 style: `tags { team = "infra" }` means ["team:infra"].
            Value::Object(o) => Some(
                o.iter()
                    .map(|(k, v)| match v {
                        Value::String(s) if s.is_empty() => k.clone(),
                        Value::String(s) => format!("{k}:{s}"),
                        other => format!("{k}:{other}"),
                    })
                    .collect(),
            ),
            Value::String(s) => Some(
                s.split(',')
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .collect(),
            ),
            other => {
                self.err(
                    Some(p),
                    format!(
                        "`{key}` must be a list of strings, got {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    pub(super) fn object(&mut self, key: &str) -> Option<(&'a hcl::Map<String, Value>, &'a Pos)> {
        let (v, p) = self.present(key)?;
        match v {
            Value::Object(o) => Some((o, p)),
            other => {
                self.err(
                    Some(p),
                    format!("`{key}` must be a block or a map, got {}", type_name(other)),
                );
                None
            }
        }
    }

    pub(super) fn options(&mut self, opts: &mut JsonMap<String, JsonValue>) {
        for (key, kind) in OPTION_ARGS {
            let v = match kind {
                Kind::Bool => self.boolean(key).map(JsonValue::from),
                Kind::Int => self.int(key).map(JsonValue::from),
                Kind::Str => self.string(key).map(JsonValue::from),
                Kind::StrList => self.str_list(key).map(JsonValue::from),
                Kind::Json => self.object(key).map(|(o, _)| shape_block(key, o)),
                Kind::StrMap => self.object(key).map(|(o, _)| {
                    JsonValue::Object(
                        o.iter()
                            .map(|(k, v)| {
                                (k.clone(), JsonValue::from(v.as_str().unwrap_or_default()))
                            })
                            .collect(),
                    )
                }),
            };
            if let Some(v) = v {
                let option = if *key == "monitor_threshold_windows" {
                    "threshold_windows"
                } else {
                    key
                };
                if opts.contains_key(option) {
                    let at = self.present(key).map(|(_, p)| p.clone());
                    self.err(
                        at.as_ref(),
                        format!("`{key}` sets the same option as another argument"),
                    );
                }
                opts.insert(option.to_string(), v);
            }
        }
    }

    pub(super) fn unsupported(&mut self, resource: &str, allowed: &[&str]) {
        let items: Vec<(String, Pos)> = self
            .args
            .items
            .iter()
            .map(|(k, _, p, _)| (k.clone(), p.clone()))
            .collect();
        for (k, p) in items {
            if !allowed.contains(&k.as_str()) && !OPTION_ARGS.iter().any(|(o, _)| *o == k) {
                let hint = crate::diag::did_you_mean(
                    &k,
                    allowed
                        .iter()
                        .copied()
                        .chain(OPTION_ARGS.iter().map(|(o, _)| *o)),
                );
                self.err(
                    Some(&p),
                    format!("unsupported argument `{k}` for {resource}{hint}"),
                );
            }
        }
    }
}
