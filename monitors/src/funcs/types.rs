//! Type conversions: Terraform's conversion of values to strings, numbers and bools, the type
//! functions (`tobool`, `tolist`, ...) and how a value's type is named in errors.

use super::collections::{dedup, set_order};
use super::{as_list, as_map, str_arg, string, want, R};
use crate::eval::{to_bool, Scope};
use hcl::{Number, Value};

/// Terraform's string conversion of a primitive value.
pub fn to_str(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(num_to_string(n)),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err("cannot convert null to a string".into()),
        Value::Array(_) => Err("cannot convert a list to a string".into()),
        Value::Object(_) => Err("cannot convert an object to a string".into()),
    }
}

/// Terraform's number-to-string conversion, as far as an f64 can follow it. Terraform keeps numbers as
/// 512-bit binary floats and writes the shortest decimal that identifies one (Go's `Text('f', -1)`): no
/// exponent, whole numbers without a point, and arithmetic on short decimals exact in practice
/// (`100 * 1.1` is `110`, `0.1 + 0.2` is `0.3`). An f64 carries rounding noise in its 16th and 17th
/// digits, so a fraction is written with at most 15 significant digits (trailing zeros dropped); a
/// value whose 512-bit result is itself inexact (`1 / 3`, `3 * 1.1`) Terraform writes with ~155 digits,
/// which no f64 has, and kelpie writes the 15-digit form.
pub(super) fn num_to_string(n: &Number) -> String {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => i.to_string(),
        (None, Some(f)) => f64_to_string(f),
        _ => n.to_string(),
    }
}

/// [`num_to_string`] of an f64.
pub(super) fn f64_to_string(f: f64) -> String {
    if !f.is_finite() {
        return f.to_string();
    }
    if f == 0.0 {
        return "0".to_string();
    }
    if f.fract() == 0.0 && f.abs() < 1e15 {
        return format!("{}", f as i64);
    }
    // Whole numbers past 2^53 are exact binary values: Terraform writes all their digits, as Display does.
    if f.fract() == 0.0 {
        return format!("{f}");
    }
    // The nearest f64 to the 15-digit decimal prints as that decimal (any 15-digit decimal round-trips).
    let rounded: f64 = format!("{f:.14e}").parse().unwrap_or(f);
    format!("{rounded}")
}

/// Terraform's conversion to a number: a number, or a string that reads as one.
pub fn to_num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "invalid number".to_string()),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .ok_or_else(|| format!("cannot convert \"{s}\" to a number")),
        other => Err(format!("cannot convert {} to a number", type_name(other))),
    }
}

/// A number value, whole numbers as integers.
pub fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::Number(Number::from(f as i64))
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// How a value's type is named in errors ("got a list").
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub(super) fn identity(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "sensitive")?;
    Ok(a[0].clone())
}

pub(super) fn issensitive(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "issensitive")?;
    Ok(Value::Bool(false))
}

pub(super) fn tobool(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tobool")?;
    if a[0].is_null() {
        return Ok(Value::Null);
    }
    Ok(Value::Bool(
        to_bool(&a[0]).map_err(|e| format!("tobool(): {e}"))?,
    ))
}

pub(super) fn tostring(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tostring")?;
    if a[0].is_null() {
        return Ok(Value::Null);
    }
    string(str_arg(a, 0, "tostring")?)
}

pub(super) fn tonumber(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tonumber")?;
    if a[0].is_null() {
        return Ok(Value::Null);
    }
    Ok(num(to_num(&a[0]).map_err(|e| format!("tonumber(): {e}"))?))
}

pub(super) fn tolist(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tolist")?;
    Ok(Value::Array(as_list(&a[0], "tolist")?.clone()))
}

pub(super) fn toset(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "toset")?;
    Ok(Value::Array(set_order(dedup(as_list(&a[0], "toset")?))))
}

/// `list(a, b, …)` of Terraform 0.11: the list of its arguments.
pub(super) fn legacy_list(a: &[Value], _: &Scope<'_>) -> R {
    Ok(Value::Array(a.to_vec()))
}

/// `map(k1, v1, k2, v2, …)` of Terraform 0.11: keys and values in turn (a later key wins).
pub(super) fn legacy_map(a: &[Value], _: &Scope<'_>) -> R {
    if !a.len().is_multiple_of(2) {
        return Err(format!(
            "map() takes keys and values in pairs, got {} argument(s)",
            a.len()
        ));
    }
    let mut m = hcl::Map::new();
    for pair in a.chunks(2) {
        m.insert(super::to_str(&pair[0])?, pair[1].clone());
    }
    Ok(Value::Object(m))
}

pub(super) fn tomap(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tomap")?;
    Ok(Value::Object(as_map(&a[0], "tomap")?.clone()))
}
