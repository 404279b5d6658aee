//! List, map and set functions; sets are lists without duplicates in Terraform's order.

use super::{
    as_int, as_list, as_map, num, str_arg, to_num, to_str, type_name, want, want_min, MAX_LIST, R,
};
use crate::eval::{self, to_bool, Scope};
use hcl::{Map, Value};

pub(super) fn bools(a: &[Value], name: &str) -> Result<Vec<bool>, String> {
    want(a, 1, name)?;
    as_list(&a[0], name)?
        .iter()
        .map(|v| to_bool(v).map_err(|e| format!("{name}(): {e}")))
        .collect()
}

pub(super) fn alltrue(a: &[Value], _: &Scope<'_>) -> R {
    Ok(Value::Bool(bools(a, "alltrue")?.into_iter().all(|b| b)))
}

pub(super) fn anytrue(a: &[Value], _: &Scope<'_>) -> R {
    Ok(Value::Bool(bools(a, "anytrue")?.into_iter().any(|b| b)))
}

pub(super) fn chunklist(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "chunklist")?;
    let l = as_list(&a[0], "chunklist")?;
    let n = as_int(&a[1], "chunklist")?;
    if n < 0 {
        return Err("chunklist() needs a size of 0 or more".into());
    }
    if n == 0 {
        return Ok(Value::Array(vec![Value::Array(l.clone())]));
    }
    Ok(Value::Array(
        l.chunks(n as usize)
            .map(|c| Value::Array(c.to_vec()))
            .collect(),
    ))
}

pub(super) fn coalesce(a: &[Value], _: &Scope<'_>) -> R {
    a.iter()
        .find(|v| !v.is_null() && !matches!(v, Value::String(s) if s.is_empty()))
        .cloned()
        .ok_or_else(|| "coalesce(): no non-null, non-empty argument".to_string())
}

pub(super) fn coalescelist(a: &[Value], _: &Scope<'_>) -> R {
    for v in a {
        if !as_list(v, "coalescelist")?.is_empty() {
            return Ok(v.clone());
        }
    }
    Err("coalescelist(): no non-empty list".into())
}

pub(super) fn compact(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "compact")?;
    Ok(Value::Array(
        as_list(&a[0], "compact")?
            .iter()
            .filter(|v| !v.is_null() && !matches!(v, Value::String(s) if s.is_empty()))
            .cloned()
            .collect(),
    ))
}

pub(super) fn concat(a: &[Value], _: &Scope<'_>) -> R {
    let mut out = Vec::new();
    for list in a {
        out.extend(as_list(list, "concat")?.iter().cloned());
    }
    Ok(Value::Array(out))
}

pub(super) fn contains(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "contains")?;
    Ok(Value::Bool(
        as_list(&a[0], "contains")?
            .iter()
            .any(|v| eval::equal(v, &a[1])),
    ))
}

pub(super) fn dedup(l: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in l {
        if !out.iter().any(|o| eval::equal(o, v)) {
            out.push(v.clone());
        }
    }
    out
}

pub(super) fn distinct(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "distinct")?;
    Ok(Value::Array(dedup(as_list(&a[0], "distinct")?)))
}

pub(super) fn element(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "element")?;
    let list = as_list(&a[0], "element")?;
    if list.is_empty() {
        return Err("element() cannot index an empty list".into());
    }
    let i = as_int(&a[1], "element")?;
    let n = list.len() as i64;
    if i < 0 {
        return Err("element() needs a non-negative index".into());
    }
    Ok(list[(i % n) as usize].clone())
}

pub(super) fn flatten_into(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten_into(x, out)),
        other => out.push(other.clone()),
    }
}

pub(super) fn flatten(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "flatten")?;
    let mut out = Vec::new();
    for v in as_list(&a[0], "flatten")? {
        flatten_into(v, &mut out);
    }
    Ok(Value::Array(out))
}

pub(super) fn index(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "index")?;
    as_list(&a[0], "index")?
        .iter()
        .position(|v| eval::equal(v, &a[1]))
        .map(|i| Value::from(i as u64))
        .ok_or_else(|| "index(): the value is not in the list".to_string())
}

pub(super) fn sorted_keys(m: &Map<String, Value>) -> Vec<&String> {
    let mut k: Vec<&String> = m.keys().collect();
    k.sort();
    k
}

pub(super) fn keys(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "keys")?;
    Ok(Value::Array(
        sorted_keys(as_map(&a[0], "keys")?)
            .into_iter()
            .map(|s| Value::String(s.clone()))
            .collect(),
    ))
}

pub(super) fn values(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "values")?;
    let m = as_map(&a[0], "values")?;
    Ok(Value::Array(
        sorted_keys(m)
            .into_iter()
            .filter_map(|k| m.get(k).cloned())
            .collect(),
    ))
}

pub(super) fn length(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "length")?;
    let n = match &a[0] {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        Value::String(s) => s.chars().count(),
        other => return Err(format!("length() cannot take {}", type_name(other))),
    };
    Ok(Value::from(n as u64))
}

pub(super) fn lookup(a: &[Value], _: &Scope<'_>) -> R {
    if a.len() != 2 && a.len() != 3 {
        return Err(format!("lookup() takes 2 or 3 arguments, got {}", a.len()));
    }
    let m = as_map(&a[0], "lookup")?;
    let k = str_arg(a, 1, "lookup")?;
    match (m.get(&k), a.get(2)) {
        (Some(v), _) => Ok(v.clone()),
        (None, Some(d)) => Ok(d.clone()),
        (None, None) => Err(format!(
            "lookup(): the map has no key \"{k}\" and no default was given"
        )),
    }
}

pub(super) fn matchkeys(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 3, "matchkeys")?;
    let vals = as_list(&a[0], "matchkeys")?;
    let keys = as_list(&a[1], "matchkeys")?;
    let search = as_list(&a[2], "matchkeys")?;
    if vals.len() != keys.len() {
        return Err("matchkeys(): the values and keys lists must have the same length".into());
    }
    Ok(Value::Array(
        vals.iter()
            .zip(keys)
            .filter(|(_, k)| search.iter().any(|s| eval::equal(s, k)))
            .map(|(v, _)| v.clone())
            .collect(),
    ))
}

pub(super) fn merge(a: &[Value], _: &Scope<'_>) -> R {
    let mut out = Map::new();
    for m in a {
        if m.is_null() {
            continue;
        }
        for (k, v) in as_map(m, "merge")? {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

pub(super) fn one(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "one")?;
    if a[0].is_null() {
        return Ok(Value::Null);
    }
    let l = as_list(&a[0], "one")?;
    match l.len() {
        0 => Ok(Value::Null),
        1 => Ok(l[0].clone()),
        n => Err(format!("one() needs a list of 0 or 1 elements, got {n}")),
    }
}

pub(super) fn range(a: &[Value], _: &Scope<'_>) -> R {
    let n: Vec<f64> = a.iter().map(to_num).collect::<Result<_, _>>()?;
    let (start, limit, step) = match n.as_slice() {
        [l] => (0.0, *l, 1.0),
        [s, l] => (*s, *l, if s <= l { 1.0 } else { -1.0 }),
        [s, l, st] => (*s, *l, *st),
        _ => return Err(format!("range() takes 1 to 3 arguments, got {}", a.len())),
    };
    if step == 0.0 {
        return Err("range(): the step must not be zero".into());
    }
    if (step > 0.0 && start > limit) || (step < 0.0 && start < limit) {
        return Err("range(): the step goes away from the limit".into());
    }
    let mut out = Vec::new();
    let mut v = start;
    while (step > 0.0 && v < limit) || (step < 0.0 && v > limit) {
        if out.len() >= 1024 {
            return Err("range() makes at most 1024 elements".into());
        }
        out.push(num(v));
        v += step;
    }
    Ok(Value::Array(out))
}

pub(super) fn reverse(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "reverse")?;
    Ok(Value::Array(
        as_list(&a[0], "reverse")?.iter().rev().cloned().collect(),
    ))
}

/// Terraform orders a set of strings lexically and a set of numbers numerically.
pub(super) fn set_order(mut l: Vec<Value>) -> Vec<Value> {
    if l.iter().all(|v| v.is_string()) {
        l.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    } else if l.iter().all(|v| v.is_number()) {
        l.sort_by(|a, b| {
            to_num(a)
                .unwrap_or(0.0)
                .total_cmp(&to_num(b).unwrap_or(0.0))
        });
    }
    l
}

pub(super) fn sets<'a>(a: &'a [Value], name: &str) -> Result<Vec<&'a Vec<Value>>, String> {
    want_min(a, 1, name)?;
    a.iter().map(|v| as_list(v, name)).collect()
}

pub(super) fn setintersection(a: &[Value], _: &Scope<'_>) -> R {
    let s = sets(a, "setintersection")?;
    let out: Vec<Value> = dedup(s[0])
        .into_iter()
        .filter(|v| s[1..].iter().all(|o| o.iter().any(|x| eval::equal(x, v))))
        .collect();
    Ok(Value::Array(set_order(out)))
}

pub(super) fn setsubtract(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "setsubtract")?;
    let s = sets(a, "setsubtract")?;
    let out: Vec<Value> = dedup(s[0])
        .into_iter()
        .filter(|v| !s[1].iter().any(|x| eval::equal(x, v)))
        .collect();
    Ok(Value::Array(set_order(out)))
}

pub(super) fn setunion(a: &[Value], _: &Scope<'_>) -> R {
    let s = sets(a, "setunion")?;
    let all: Vec<Value> = s.into_iter().flatten().cloned().collect();
    Ok(Value::Array(set_order(dedup(&all))))
}

pub(super) fn setproduct(a: &[Value], _: &Scope<'_>) -> R {
    let s = sets(a, "setproduct")?;
    let mut out: Vec<Vec<Value>> = vec![Vec::new()];
    for set in s {
        let mut next = Vec::new();
        for prefix in &out {
            for v in set {
                let mut p = prefix.clone();
                p.push(v.clone());
                next.push(p);
            }
        }
        if next.len() > MAX_LIST {
            return Err(format!(
                "setproduct() would make more than {MAX_LIST} elements"
            ));
        }
        out = next;
    }
    Ok(Value::Array(out.into_iter().map(Value::Array).collect()))
}

pub(super) fn slice(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 3, "slice")?;
    let l = as_list(&a[0], "slice")?;
    let start = as_int(&a[1], "slice")?;
    let end = as_int(&a[2], "slice")?;
    if start < 0 || end > l.len() as i64 || start > end {
        return Err(format!(
            "slice(): indexes {start}..{end} do not fit a list of {} element(s)",
            l.len()
        ));
    }
    Ok(Value::Array(l[start as usize..end as usize].to_vec()))
}

pub(super) fn sort(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "sort")?;
    let mut s: Vec<String> = as_list(&a[0], "sort")?
        .iter()
        .map(|v| to_str(v).map_err(|e| format!("sort(): {e}")))
        .collect::<Result<_, _>>()?;
    s.sort();
    Ok(Value::Array(s.into_iter().map(Value::String).collect()))
}

pub(super) fn sum(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "sum")?;
    let l = as_list(&a[0], "sum")?;
    if l.is_empty() {
        return Err("sum() cannot sum an empty list".into());
    }
    let mut t = 0.0;
    for v in l {
        t += to_num(v).map_err(|e| format!("sum(): {e}"))?;
    }
    Ok(num(t))
}

pub(super) fn transpose(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "transpose")?;
    let mut out: Map<String, Value> = Map::new();
    let m = as_map(&a[0], "transpose")?;
    for k in sorted_keys(m) {
        for v in as_list(&m[k], "transpose")? {
            let v = to_str(v).map_err(|e| format!("transpose(): {e}"))?;
            if let Value::Array(l) = out.entry(v).or_insert_with(|| Value::Array(Vec::new())) {
                l.push(Value::String(k.clone()));
            }
        }
    }
    Ok(Value::Object(out))
}

pub(super) fn zipmap(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "zipmap")?;
    let k = as_list(&a[0], "zipmap")?;
    let v = as_list(&a[1], "zipmap")?;
    if k.len() != v.len() {
        return Err(format!("zipmap(): {} keys but {} values", k.len(), v.len()));
    }
    let mut out = Map::new();
    for (k, v) in k.iter().zip(v) {
        out.insert(to_str(k).map_err(|e| format!("zipmap(): {e}"))?, v.clone());
    }
    Ok(Value::Object(out))
}
