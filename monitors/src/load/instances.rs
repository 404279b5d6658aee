//! `count` and `for_each`: the instances of a resource or module block, and the scope each instance
//! is evaluated in (`count.index`, `each.key`, `each.value`).

use super::module::Module;
use super::parse::{attr, eval};
use super::Loaded;
use crate::diag::{Diag, Source};
use crate::eval::Scope;
use hcl::edit::structure::{Attribute, Block};
use hcl::edit::Span;
use hcl::{Map, Value};

/// Upper bound on instances of one `count`/`for_each`, so a typo cannot exhaust memory.
pub(super) const MAX_INSTANCES: usize = 10_000;

/// The instances of a block with `count`/`for_each`: (address suffix, each, count) per instance.
pub(super) type Instance = (String, Option<(Value, Value)>, Option<i64>);

/// The instances of a block: one for each `count` index or `for_each` item, or one without either;
/// `None` if `count`/`for_each` cannot be evaluated (reported).
pub(super) fn instances(
    m: &Module,
    src: &Source,
    b: &Block,
    ctx: &Scope<'_>,
    what: &str,
    out: &mut Loaded,
) -> Option<Vec<Instance>> {
    if let Some(c) = attr(b, "count") {
        let n = match eval(&c.value, ctx) {
            Ok(Value::Number(n)) => n.as_f64().unwrap_or(-1.0),
            Ok(Value::String(s)) => s.trim().parse::<f64>().unwrap_or(-1.0),
            Ok(_) => -1.0,
            Err(msg) => {
                let d = Diag::new(
                    Some(src.span_pos(c.span())),
                    Some(what),
                    format!("count: {msg}"),
                );
                m.fail(src.slice(c.span()), d, out);
                return None;
            }
        };
        if n < 0.0 || n.fract() != 0.0 || n as usize > MAX_INSTANCES {
            out.errors.push(Diag::new(
                Some(src.span_pos(c.span())),
                Some(what),
                format!("count must be a whole number between 0 and {MAX_INSTANCES}"),
            ));
            return None;
        }
        return Some(
            (0..n as i64)
                .map(|i| (format!("[{i}]"), None, Some(i)))
                .collect(),
        );
    }
    if let Some(fe) = attr(b, "for_each") {
        return for_each_instances(m, src, b, fe, ctx, what, out);
    }
    Some(vec![(String::new(), None, None)])
}

/// The instances of a block with `for_each` (a map, or a set of strings).
fn for_each_instances(
    m: &Module,
    src: &Source,
    b: &Block,
    fe: &Attribute,
    ctx: &Scope<'_>,
    what: &str,
    out: &mut Loaded,
) -> Option<Vec<Instance>> {
    let pos = src.span_pos(b.span());
    let v = match eval(&fe.value, ctx) {
        Ok(v) => v,
        Err(msg) => {
            let d = Diag::new(
                Some(src.span_pos(fe.span())),
                Some(what),
                format!("for_each: {msg}"),
            );
            m.fail(src.slice(fe.span()), d, out);
            return None;
        }
    };
    let items: Vec<(String, Value)> = match v {
        Value::Object(o) => o.into_iter().collect(),
        Value::Array(a) => {
            let mut items = Vec::new();
            for x in a {
                match x {
                    Value::String(s) => items.push((s.clone(), Value::String(s))),
                    _ => {
                        out.errors.push(Diag::new(
                            Some(src.span_pos(fe.span())),
                            Some(what),
                            "for_each over a list needs strings (use toset([...]) of strings, or a map)",
                        ));
                        return None;
                    }
                }
            }
            items.sort_by(|a, b| a.0.cmp(&b.0));
            items.dedup_by(|a, b| a.0 == b.0);
            items
        }
        other => {
            let expr = src.slice(fe.value.span()).unwrap_or("").trim();
            let got = match &other {
                Value::Null => format!("`{expr}` is null (give it a value)"),
                Value::Bool(_) => format!("`{expr}` is a bool"),
                Value::Number(_) => format!("`{expr}` is a number"),
                _ => format!("`{expr}` is a string"),
            };
            out.errors.push(Diag::new(
                Some(src.span_pos(fe.span())),
                Some(what),
                format!("for_each needs a map or a set of strings; {got}"),
            ));
            return None;
        }
    };
    if items.len() > MAX_INSTANCES {
        out.errors.push(Diag::new(
            Some(pos),
            Some(what),
            format!("for_each has more than {MAX_INSTANCES} items"),
        ));
        return None;
    }
    Some(
        items
            .into_iter()
            .map(|(k, v)| {
                (
                    format!("[{}]", serde_json::Value::String(k.clone())),
                    Some((Value::from(k), v)),
                    None,
                )
            })
            .collect(),
    )
}

/// The scope one instance is evaluated in: `each.key`/`each.value` or `count.index` set.
pub(super) fn instance_ctx<'a>(
    ctx: &'a Scope<'a>,
    each: &Option<(Value, Value)>,
    count: Option<i64>,
) -> Scope<'a> {
    let mut c = ctx.child();
    if let Some((k, v)) = each {
        let mut o = Map::new();
        o.insert("key".to_string(), k.clone());
        o.insert("value".to_string(), v.clone());
        c.set("each", Value::Object(o));
    }
    if let Some(i) = count {
        let mut o = Map::new();
        o.insert("index".to_string(), Value::from(i));
        c.set("count", Value::Object(o));
    }
    c
}
