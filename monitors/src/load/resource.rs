//! Monitor resources: each instance's arguments and blocks (`dynamic` ones included) evaluated and handed
//! to [`crate::model::from_args`].

use super::instances::{instance_ctx, instances};
use super::module::Module;
use super::parse::{attr, eval, label};
use super::Loaded;
use crate::diag::{Diag, Pos, Source};
use crate::eval::Scope;
use crate::model;
use hcl::edit::structure::{Block, Structure};
use hcl::edit::Span;
use hcl::{Map, Value};
use std::collections::BTreeMap;

/// Upper bound on monitors of one load (Datadog accounts hold far fewer).
const MAX_MONITORS: usize = 100_000;

const META_ARGS: &[&str] = &["count", "for_each", "depends_on", "provider", "lifecycle"];

/// One instance of a monitor resource that loaded: its address suffix, `each` and `count.index`, and the
/// arguments as other expressions see them (`datadog_monitor.a.name`): attributes by value, blocks as lists.
pub(super) type LoadedInstance = (
    String,
    Option<(Value, Value)>,
    Option<i64>,
    Map<String, Value>,
);

pub(super) fn load_resource(
    m: &Module,
    src: &Source,
    b: &Block,
    rtype: &str,
    rname: &str,
    ctx: &Scope<'_>,
    out: &mut Loaded,
) -> Vec<LoadedInstance> {
    let mut loaded = Vec::new();
    let base = format!("{}{}.{}", m.prefix, rtype, rname);
    let Some(insts) = instances(m, src, b, ctx, &base, out) else {
        return loaded;
    };
    if out.monitors.len() + insts.len() > MAX_MONITORS {
        out.errors.push(Diag::new(
            Some(src.span_pos(b.span())),
            Some(&base),
            format!("more than {MAX_MONITORS} monitors in one directory; check count, for_each and module nesting"),
        ));
        return loaded;
    }
    let ignored = ignored_changes(src, b);
    for (suffix, each, count) in insts {
        let address = format!("{base}{suffix}");
        let ictx = instance_ctx(ctx, &each, count);
        let Some((args, attrs)) = instance_args(m, src, b, &ictx, &address, &ignored, out) else {
            continue;
        };
        let pos = src.span_pos(b.span());
        match model::from_args(rtype, &address, pos, &args) {
            Ok(mon) => {
                out.monitors.push(mon);
                loaded.push((suffix, each, count, attrs));
            }
            Err(diags) => out.errors.extend(diags),
        }
    }
    loaded
}

/// One instance's arguments and blocks, evaluated in its scope: the arguments for [`model::from_args`] and the
/// values other expressions see; `None` (the errors reported) when one did not evaluate.
fn instance_args(
    m: &Module,
    src: &Source,
    b: &Block,
    ictx: &Scope<'_>,
    address: &str,
    ignored: &[String],
    out: &mut Loaded,
) -> Option<(model::Args, Map<String, Value>)> {
    let mut args = model::Args::default();
    let mut attrs = Map::new();
    let mut list_blocks: BTreeMap<String, (Pos, Vec<Value>)> = BTreeMap::new();
    let mut ok = true;
    for s in b.body.iter() {
        match s {
            Structure::Attribute(a) => {
                let key = a.key.as_str();
                if META_ARGS.contains(&key) || ignored.iter().any(|i| i == key) {
                    continue;
                }
                let pos = src.span_pos(a.span());
                match eval(&a.value, ictx) {
                    Ok(v) => {
                        attrs.insert(key.to_string(), v.clone());
                        args.insert(key, v, pos, false, address, &mut out.errors)
                    }
                    Err(msg) => {
                        ok = false;
                        let d = Diag::new(Some(pos), Some(address), format!("{key}: {msg}"));
                        m.fail(src.slice(a.span()), d, out);
                    }
                }
            }
            Structure::Block(inner) => {
                let key = inner.ident.as_str();
                if META_ARGS.contains(&key) {
                    continue;
                }
                let pos = src.span_pos(inner.span());
                let blocks = if key == "dynamic" {
                    dynamic_blocks(m, src, inner, ictx, address, out)
                } else {
                    block_object(m, src, inner, key, ictx, address, out)
                        .map(|o| vec![(key.to_string(), o)])
                };
                match blocks {
                    Some(blocks) => {
                        for (k, o) in blocks {
                            if let Value::Array(list) = attrs
                                .entry(k.clone())
                                .or_insert_with(|| Value::Array(Vec::new()))
                            {
                                list.push(Value::Object(o.clone()));
                            }
                            if model::LIST_BLOCKS.contains(&k.as_str()) {
                                list_blocks
                                    .entry(k)
                                    .or_insert_with(|| (pos.clone(), Vec::new()))
                                    .1
                                    .push(Value::Object(o));
                                continue;
                            }
                            args.insert(
                                &k,
                                Value::Object(o),
                                pos.clone(),
                                true,
                                address,
                                &mut out.errors,
                            );
                        }
                    }
                    None => ok = false,
                }
            }
        }
    }
    for (k, (p, items)) in list_blocks {
        args.insert(&k, Value::Array(items), p, true, address, &mut out.errors);
    }
    ok.then_some((args, attrs))
}

/// `lifecycle { ignore_changes = [silenced, tags] }`: those arguments are left to whoever changes them.
fn ignored_changes(src: &Source, b: &Block) -> Vec<String> {
    b.body
        .iter()
        .filter_map(Structure::as_block)
        .filter(|l| l.ident.as_str() == "lifecycle")
        .filter_map(|l| attr(l, "ignore_changes"))
        .filter_map(|a| src.slice(a.value.span()))
        .flat_map(|t| {
            t.trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .map(|x| x.trim().trim_matches('"').to_string())
                .filter(|x| !x.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The attributes of a block as an object; `None` (errors reported) if one fails.
fn block_object(
    m: &Module,
    src: &Source,
    inner: &Block,
    key: &str,
    scope: &Scope<'_>,
    address: &str,
    out: &mut Loaded,
) -> Option<Map<String, Value>> {
    let mut obj = Map::new();
    let mut ok = true;
    for a in inner.body.iter().filter_map(Structure::as_attribute) {
        match eval(&a.value, scope) {
            Ok(v) => {
                obj.insert(a.key.as_str().to_string(), v);
            }
            Err(msg) => {
                ok = false;
                let d = Diag::new(
                    Some(src.span_pos(a.span())),
                    Some(address),
                    format!("{key}.{}: {msg}", a.key.as_str()),
                );
                m.fail(src.slice(a.span()), d, out);
            }
        }
    }
    // Nested blocks (scheduling_options { evaluation_window { … } }, variables { event_query { … } }) are
    // lists of objects under their name; the model shapes them as the API wants.
    for nested in inner.body.iter().filter_map(Structure::as_block) {
        let nkey = nested.ident.as_str();
        let made = if nkey == "dynamic" {
            dynamic_blocks(m, src, nested, scope, address, out)
        } else {
            block_object(m, src, nested, nkey, scope, address, out)
                .map(|o| vec![(nkey.to_string(), o)])
        };
        match made {
            Some(blocks) => {
                for (k, o) in blocks {
                    if let Value::Array(a) =
                        obj.entry(k).or_insert_with(|| Value::Array(Vec::new()))
                    {
                        a.push(Value::Object(o));
                    }
                }
            }
            None => ok = false,
        }
    }
    ok.then_some(obj)
}

/// The blocks a `dynamic "<name>" { for_each = ... iterator = ... content { ... } }` makes: one per item,
/// with `<iterator>.key` and `<iterator>.value` (the iterator defaults to the block's name).
fn dynamic_blocks(
    m: &Module,
    src: &Source,
    d: &Block,
    scope: &Scope<'_>,
    address: &str,
    out: &mut Loaded,
) -> Option<Vec<(String, Map<String, Value>)>> {
    let pos = src.span_pos(d.span());
    let Some(name) = label(d, 0) else {
        out.errors.push(Diag::new(
            Some(pos),
            Some(address),
            "a dynamic block needs the name of the block it makes: dynamic \"monitor_thresholds\" { ... }",
        ));
        return None;
    };
    let iterator = match attr(d, "iterator") {
        Some(a) => src.slice(a.value.span()).unwrap_or(name).to_string(),
        None => name.to_string(),
    };
    let Some(content) = d
        .body
        .iter()
        .filter_map(Structure::as_block)
        .find(|b| b.ident.as_str() == "content")
    else {
        out.errors.push(Diag::new(
            Some(pos),
            Some(address),
            format!("dynamic \"{name}\" needs a `content {{ ... }}` block"),
        ));
        return None;
    };
    let Some(fe) = attr(d, "for_each") else {
        out.errors.push(Diag::new(
            Some(pos),
            Some(address),
            format!("dynamic \"{name}\" needs `for_each`"),
        ));
        return None;
    };
    let coll = match eval(&fe.value, scope) {
        Ok(v) => v,
        Err(msg) => {
            let diag = Diag::new(
                Some(src.span_pos(fe.value.span())),
                Some(address),
                format!("dynamic \"{name}\" for_each: {msg}"),
            );
            m.fail(src.slice(fe.span()), diag, out);
            return None;
        }
    };
    let items: Vec<(Value, Value)> = match coll {
        Value::Null => Vec::new(),
        Value::Array(a) => a
            .into_iter()
            .enumerate()
            .map(|(i, v)| (Value::from(i as u64), v))
            .collect(),
        Value::Object(o) => {
            let mut v: Vec<(String, Value)> = o.into_iter().collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.into_iter().map(|(k, v)| (Value::from(k), v)).collect()
        }
        other => {
            out.errors.push(Diag::new(
                Some(src.span_pos(fe.value.span())),
                Some(address),
                format!(
                    "dynamic \"{name}\" for_each needs a list, set or map, got {}",
                    crate::funcs::type_name(&other)
                ),
            ));
            return None;
        }
    };
    let mut blocks = Vec::new();
    for (k, v) in items {
        let mut inner = scope.child();
        let mut it = Map::new();
        it.insert("key".to_string(), k);
        it.insert("value".to_string(), v);
        inner.set(&iterator, Value::Object(it));
        blocks.push((
            name.to_string(),
            block_object(m, src, content, name, &inner, address, out)?,
        ));
    }
    Some(blocks)
}
