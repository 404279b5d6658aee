//! The Terraform functions kelpie's HCL evaluation supports. hcl-rs evaluates expressions but ships no
//! functions, so the subset that monitor files use is written here, each one with Terraform's semantics.

use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};
use hcl::{Map, Number, Value};

/// Names of every function declared by [`declare_all`], for error messages.
pub const NAMES: &[&str] = &[
    "format",
    "join",
    "lower",
    "upper",
    "replace",
    "concat",
    "merge",
    "lookup",
    "length",
    "tostring",
    "tonumber",
    "coalesce",
    "contains",
    "keys",
    "values",
    "jsonencode",
    "trimspace",
    "split",
    "title",
    "min",
    "max",
    "element",
    "flatten",
    "distinct",
    "toset",
    "tolist",
    "tomap",
    "abs",
    "floor",
    "ceil",
];

fn variadic(f: hcl::eval::Func) -> FuncDef {
    FuncDef::builder().variadic_param(ParamType::Any).build(f)
}

/// Declares every supported function in `ctx`.
pub fn declare_all(ctx: &mut Context<'_>) {
    for (name, f) in [
        ("format", format as hcl::eval::Func),
        ("join", join),
        ("lower", lower),
        ("upper", upper),
        ("replace", replace),
        ("concat", concat),
        ("merge", merge),
        ("lookup", lookup),
        ("length", length),
        ("tostring", tostring),
        ("tonumber", tonumber),
        ("coalesce", coalesce),
        ("contains", contains),
        ("keys", keys),
        ("values", values),
        ("jsonencode", jsonencode),
        ("trimspace", trimspace),
        ("split", split),
        ("title", title),
        ("min", min),
        ("max", max),
        ("element", element),
        ("flatten", flatten),
        ("distinct", distinct),
        ("toset", distinct),
        ("tolist", tolist),
        ("tomap", tomap),
        ("abs", abs),
        ("floor", floor),
        ("ceil", ceil),
    ] {
        ctx.declare_func(name, variadic(f));
    }
}

fn want(args: &FuncArgs, n: usize, name: &str) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "{name}() takes {n} argument(s), got {}",
            args.len()
        ));
    }
    Ok(())
}

fn want_min(args: &FuncArgs, n: usize, name: &str) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "{name}() takes at least {n} argument(s), got {}",
            args.len()
        ));
    }
    Ok(())
}

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

fn num_to_string(n: &Number) -> String {
    match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => i.to_string(),
        (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        (None, Some(f)) => f.to_string(),
        _ => n.to_string(),
    }
}

fn to_num(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "invalid number".to_string()),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("cannot convert \"{s}\" to a number")),
        other => Err(format!("cannot convert {} to a number", type_name(other))),
    }
}

fn num(f: f64) -> Value {
    if f.fract() == 0.0 && f.abs() < 9e15 {
        Value::Number(Number::from(f as i64))
    } else {
        Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn as_list<'a>(v: &'a Value, name: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{name}() expects a list, got {}", type_name(v)))
}

fn as_map<'a>(v: &'a Value, name: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{name}() expects a map, got {}", type_name(v)))
}

fn format(args: FuncArgs) -> Result<Value, String> {
    want_min(&args, 1, "format")?;
    let fmt = to_str(&args[0])?;
    let mut out = String::new();
    let mut next = 1;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        // Flags and width are accepted and ignored except for a precision on %f.
        let mut spec = String::new();
        while let Some(&p) = chars.peek() {
            if p.is_ascii_digit() || p == '.' || p == '-' || p == '+' || p == '#' || p == ' ' {
                spec.push(p);
                chars.next();
            } else {
                break;
            }
        }
        let verb = chars.next().ok_or("format string ends with a lone %")?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args.get(next).ok_or_else(|| {
            format!(
                "format string needs more arguments than the {} given",
                args.len() - 1
            )
        })?;
        next += 1;
        match verb {
            's' | 'v' => out.push_str(&match arg {
                Value::Array(_) | Value::Object(_) => jsonencode_value(arg)?,
                _ => to_str(arg)?,
            }),
            'q' => out.push_str(&serde_json::to_string(&to_str(arg)?).map_err(|e| e.to_string())?),
            'd' => out.push_str(&format!("{}", to_num(arg)?.trunc() as i64)),
            'f' | 'g' | 'e' => {
                let f = to_num(arg)?;
                match spec
                    .split_once('.')
                    .and_then(|(_, p)| p.parse::<usize>().ok())
                {
                    Some(p) => out.push_str(&format!("{f:.p$}", p = p.min(30))),
                    None if verb == 'f' => out.push_str(&format!("{f:.6}")),
                    None => out.push_str(&f.to_string()),
                }
            }
            't' => match arg {
                Value::Bool(b) => out.push_str(&b.to_string()),
                _ => return Err("format verb %t needs a bool".into()),
            },
            other => return Err(format!("format verb %{other} is not supported")),
        }
    }
    Ok(Value::String(out))
}

fn join(args: FuncArgs) -> Result<Value, String> {
    want_min(&args, 2, "join")?;
    let sep = to_str(&args[0])?;
    let mut parts = Vec::new();
    for list in &args[1..] {
        for v in as_list(list, "join")? {
            parts.push(to_str(v)?);
        }
    }
    Ok(Value::String(parts.join(&sep)))
}

fn lower(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "lower")?;
    Ok(Value::String(to_str(&args[0])?.to_lowercase()))
}

fn upper(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "upper")?;
    Ok(Value::String(to_str(&args[0])?.to_uppercase()))
}

fn title(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "title")?;
    let s = to_str(&args[0])?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    Ok(Value::String(out))
}

fn trimspace(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "trimspace")?;
    Ok(Value::String(to_str(&args[0])?.trim().to_string()))
}

fn replace(args: FuncArgs) -> Result<Value, String> {
    want(&args, 3, "replace")?;
    let s = to_str(&args[0])?;
    let from = to_str(&args[1])?;
    let to = to_str(&args[2])?;
    if from.len() > 2 && from.starts_with('/') && from.ends_with('/') {
        return Err(
            "replace() with a regular expression is not supported; use a plain substring".into(),
        );
    }
    if from.is_empty() {
        return Ok(Value::String(s));
    }
    Ok(Value::String(s.replace(&from, &to)))
}

fn split(args: FuncArgs) -> Result<Value, String> {
    want(&args, 2, "split")?;
    let sep = to_str(&args[0])?;
    let s = to_str(&args[1])?;
    if sep.is_empty() {
        return Err("split() needs a non-empty separator".into());
    }
    Ok(Value::Array(
        s.split(&sep)
            .map(|p| Value::String(p.to_string()))
            .collect(),
    ))
}

fn concat(args: FuncArgs) -> Result<Value, String> {
    let mut out = Vec::new();
    for list in args.iter() {
        out.extend(as_list(list, "concat")?.iter().cloned());
    }
    Ok(Value::Array(out))
}

fn merge(args: FuncArgs) -> Result<Value, String> {
    let mut out = Map::new();
    for m in args.iter() {
        if m.is_null() {
            continue;
        }
        for (k, v) in as_map(m, "merge")? {
            out.insert(k.clone(), v.clone());
        }
    }
    Ok(Value::Object(out))
}

fn lookup(args: FuncArgs) -> Result<Value, String> {
    if args.len() != 2 && args.len() != 3 {
        return Err(format!(
            "lookup() takes 2 or 3 arguments, got {}",
            args.len()
        ));
    }
    let m = as_map(&args[0], "lookup")?;
    let k = to_str(&args[1])?;
    match (m.get(&k), args.get(2)) {
        (Some(v), _) => Ok(v.clone()),
        (None, Some(d)) => Ok(d.clone()),
        (None, None) => Err(format!(
            "lookup(): the map has no key \"{k}\" and no default was given"
        )),
    }
}

fn length(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "length")?;
    let n = match &args[0] {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        Value::String(s) => s.chars().count(),
        other => return Err(format!("length() cannot take {}", type_name(other))),
    };
    Ok(Value::Number(Number::from(n as u64)))
}

fn tostring(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "tostring")?;
    if args[0].is_null() {
        return Ok(Value::Null);
    }
    Ok(Value::String(to_str(&args[0])?))
}

fn tonumber(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "tonumber")?;
    if args[0].is_null() {
        return Ok(Value::Null);
    }
    Ok(num(to_num(&args[0])?))
}

fn coalesce(args: FuncArgs) -> Result<Value, String> {
    args.iter()
        .find(|v| !v.is_null() && !matches!(v, Value::String(s) if s.is_empty()))
        .cloned()
        .ok_or_else(|| "coalesce(): no non-null, non-empty argument".to_string())
}

fn contains(args: FuncArgs) -> Result<Value, String> {
    want(&args, 2, "contains")?;
    Ok(Value::Bool(
        as_list(&args[0], "contains")?.contains(&args[1]),
    ))
}

fn keys(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "keys")?;
    let mut k: Vec<&String> = as_map(&args[0], "keys")?.keys().collect();
    k.sort();
    Ok(Value::Array(
        k.into_iter().map(|s| Value::String(s.clone())).collect(),
    ))
}

fn values(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "values")?;
    let m = as_map(&args[0], "values")?;
    let mut k: Vec<&String> = m.keys().collect();
    k.sort();
    Ok(Value::Array(
        k.into_iter().filter_map(|k| m.get(k).cloned()).collect(),
    ))
}

fn jsonencode_value(v: &Value) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| e.to_string())
}

fn jsonencode(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "jsonencode")?;
    Ok(Value::String(jsonencode_value(&args[0])?))
}

fn nums(args: &FuncArgs, name: &str) -> Result<Vec<f64>, String> {
    want_min(args, 1, name)?;
    args.iter().map(to_num).collect()
}

fn min(args: FuncArgs) -> Result<Value, String> {
    Ok(num(nums(&args, "min")?
        .into_iter()
        .fold(f64::INFINITY, f64::min)))
}

fn max(args: FuncArgs) -> Result<Value, String> {
    Ok(num(nums(&args, "max")?
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max)))
}

fn abs(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "abs")?;
    Ok(num(to_num(&args[0])?.abs()))
}

fn floor(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "floor")?;
    Ok(num(to_num(&args[0])?.floor()))
}

fn ceil(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "ceil")?;
    Ok(num(to_num(&args[0])?.ceil()))
}

fn element(args: FuncArgs) -> Result<Value, String> {
    want(&args, 2, "element")?;
    let list = as_list(&args[0], "element")?;
    if list.is_empty() {
        return Err("element() cannot index an empty list".into());
    }
    let i = to_num(&args[1])?;
    if i < 0.0 {
        return Err("element() needs a non-negative index".into());
    }
    Ok(list[(i as usize) % list.len()].clone())
}

fn flatten_into(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten_into(x, out)),
        other => out.push(other.clone()),
    }
}

fn flatten(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "flatten")?;
    let mut out = Vec::new();
    for v in as_list(&args[0], "flatten")? {
        flatten_into(v, &mut out);
    }
    Ok(Value::Array(out))
}

fn distinct(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "distinct")?;
    let mut out: Vec<Value> = Vec::new();
    for v in as_list(&args[0], "distinct")? {
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    Ok(Value::Array(out))
}

fn tolist(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "tolist")?;
    Ok(Value::Array(as_list(&args[0], "tolist")?.clone()))
}

fn tomap(args: FuncArgs) -> Result<Value, String> {
    want(&args, 1, "tomap")?;
    Ok(Value::Object(as_map(&args[0], "tomap")?.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hcl::eval::Evaluate;

    fn eval(src: &str) -> Result<Value, String> {
        let mut ctx = Context::new();
        declare_all(&mut ctx);
        let e: hcl::Expression = src.parse().map_err(|e: hcl::Error| e.to_string())?;
        e.evaluate(&ctx).map_err(|e| e.to_string())
    }

    #[test]
    fn string_functions() {
        assert_eq!(
            eval(r#"format("%s-%d-%.1f", "a", 3, 2.25)"#),
            Ok(Value::from("a-3-2.2"))
        );
        assert_eq!(eval(r#"join(",", ["a", "b"])"#), Ok(Value::from("a,b")));
        assert_eq!(eval(r#"upper(lower("AbC"))"#), Ok(Value::from("ABC")));
        assert_eq!(
            eval(r#"replace("a-b-c", "-", "_")"#),
            Ok(Value::from("a_b_c"))
        );
        assert_eq!(eval(r#"tostring(5)"#), Ok(Value::from("5")));
        assert_eq!(eval(r#"tonumber("2.5")"#), Ok(Value::from(2.5)));
        assert_eq!(
            eval(r#"jsonencode({a = [1, "x"]})"#),
            Ok(Value::from(r#"{"a":[1,"x"]}"#))
        );
    }

    #[test]
    fn collection_functions() {
        assert_eq!(
            eval(r#"length(concat(["a"], ["b", "c"]))"#),
            Ok(Value::from(3))
        );
        assert_eq!(
            eval(r#"lookup(merge({a = 1}, {b = 2}), "b", 0)"#),
            Ok(Value::from(2))
        );
        assert_eq!(eval(r#"lookup({a = 1}, "z", 7)"#), Ok(Value::from(7)));
        assert_eq!(eval(r#"coalesce(null, "", "x")"#), Ok(Value::from("x")));
        assert_eq!(eval(r#"contains(["a", "b"], "b")"#), Ok(Value::Bool(true)));
        assert_eq!(
            eval(r#"keys({b = 1, a = 2})"#),
            Ok(Value::from(vec!["a", "b"]))
        );
        assert_eq!(
            eval(r#"values({b = 1, a = 2})"#),
            Ok(Value::from(vec![2, 1]))
        );
    }

    #[test]
    fn errors_are_sentences() {
        assert!(eval(r#"lookup({a = 1}, "z")"#)
            .unwrap_err()
            .contains("no key \"z\""));
        assert!(eval(r#"tonumber("x")"#)
            .unwrap_err()
            .contains("cannot convert"));
    }
}
