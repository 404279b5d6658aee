//! Provider-defined functions (`provider::<name>::<function>(…)`). kelpie runs no providers, so only the
//! built-in `terraform` provider's functions, which are pure, are available: `encode_expr`,
//! `encode_tfvars` and `decode_tfvars`, with Terraform's output layout (hclwrite's: object attributes in
//! name order, one per line, indented by two, `=` aligned over consecutive one-line attributes).

use super::types::{num_to_string, type_name};
use super::R;
use crate::eval::Scope;
use hcl::Value;

/// Calls `provider::<provider>::<name>` with evaluated arguments.
pub fn call(provider: &str, name: &str, args: &[Value]) -> R {
    let full = format!("provider::{provider}::{name}");
    let one = |args: &[Value]| -> Result<Value, String> {
        match args {
            [v] => Ok(v.clone()),
            _ => Err(format!("{full}() takes 1 argument, got {}", args.len())),
        }
    };
    match (provider, name) {
        ("terraform", "encode_expr") => {
            let v = one(args)?;
            Ok(Value::from(encode_expr(&v, 0).map_err(|e| format!("{full}(): {e}"))?))
        }
        ("terraform", "encode_tfvars") => {
            let v = one(args)?;
            Ok(Value::from(encode_tfvars(&v).map_err(|e| format!("{full}(): {e}"))?))
        }
        ("terraform", "decode_tfvars") => {
            let v = one(args)?;
            decode_tfvars(&v).map_err(|e| format!("{full}(): {e}"))
        }
        _ => Err(format!(
            "the provider function `{full}` cannot be evaluated offline (kelpie runs no providers; only provider::terraform::encode_expr, encode_tfvars and decode_tfvars are built in)"
        )),
    }
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_alphabetic() || f == '_')
        && c.all(|x| x.is_alphanumeric() || x == '_' || x == '-')
}

/// A quoted string literal, escaped as hclwrite escapes it (`${` and `%{` doubled).
fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn key_text(k: &str) -> String {
    if is_ident(k) {
        k.to_string()
    } else {
        quote(k)
    }
}

/// A value as an expression; `indent` is the indentation of the line it starts on.
fn encode_expr(v: &Value, indent: usize) -> Result<String, String> {
    Ok(match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => num_to_string(n),
        Value::String(s) => quote(s),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for x in items {
                let t = encode_expr(x, indent)?;
                if t.contains('\n') {
                    // hclwrite lays out objects inside lists in a way not reproduced here.
                    return Err("a list that holds objects cannot be encoded offline".into());
                }
                parts.push(t);
            }
            format!("[{}]", parts.join(", "))
        }
        Value::Object(o) if o.is_empty() => "{}".to_string(),
        Value::Object(o) => {
            let mut out = String::from("{\n");
            out.push_str(&attribute_lines(o, indent + 2)?);
            out.push_str(&" ".repeat(indent));
            out.push('}');
            out
        }
    })
}

/// `key = value` lines in key order, `=` aligned over each run of one-line values, as hclwrite formats.
fn attribute_lines(o: &hcl::Map<String, Value>, indent: usize) -> Result<String, String> {
    let mut keys: Vec<&String> = o.keys().collect();
    keys.sort();
    let mut lines: Vec<(String, String)> = Vec::with_capacity(keys.len());
    for k in keys {
        lines.push((key_text(k), encode_expr(&o[k.as_str()], indent)?));
    }
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].1.contains('\n') {
            let (k, v) = &lines[i];
            out.push_str(&format!("{}{k} = {v}\n", " ".repeat(indent)));
            i += 1;
            continue;
        }
        let end = (i..lines.len())
            .find(|&j| lines[j].1.contains('\n'))
            .unwrap_or(lines.len());
        let width = lines[i..end]
            .iter()
            .map(|(k, _)| k.chars().count())
            .max()
            .unwrap_or(0);
        for (k, v) in &lines[i..end] {
            let pad = width - k.chars().count();
            out.push_str(&format!(
                "{}{k}{} = {v}\n",
                " ".repeat(indent),
                " ".repeat(pad)
            ));
        }
        i = end;
    }
    Ok(out)
}

fn encode_tfvars(v: &Value) -> Result<String, String> {
    match v {
        Value::Null => Err("cannot encode a null value in tfvars syntax".into()),
        Value::Object(o) => {
            if let Some(bad) = o.keys().find(|k| !is_ident(k)) {
                return Err(format!("invalid variable name \"{bad}\": must be a valid identifier, per Terraform's rules for input variable declarations"));
            }
            attribute_lines(o, 0)
        }
        _ => Err("invalid value to encode: must be an object whose attribute names will become the encoded variable names".into()),
    }
}

fn decode_tfvars(v: &Value) -> R {
    let text = match v {
        Value::Null => return Err("cannot decode tfvars from a null value".into()),
        Value::String(s) => s,
        other => return Err(format!("needs a string, got {}", type_name(other))),
    };
    let body: hcl::Body = hcl::parse(text).map_err(|e| {
        format!(
            "invalid tfvars syntax: {}",
            e.to_string().lines().next().unwrap_or("")
        )
    })?;
    let mut out = hcl::Map::new();
    for s in body.into_iter() {
        match s {
            hcl::Structure::Attribute(a) => {
                let value = crate::eval::eval(&a.expr, &Scope::new())
                    .map_err(|e| format!("invalid expression for variable \"{}\": {e}", a.key))?;
                out.insert(a.key.to_string(), value);
            }
            hcl::Structure::Block(b) => {
                return Err(format!(
                    "invalid tfvars syntax: a block (`{}`) where only arguments may be",
                    b.identifier
                ))
            }
        }
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Value {
        super::super::from_json(serde_json::from_str(s).unwrap())
    }

    #[test]
    fn encode_expr_as_terraform_writes_it() {
        let enc = |v: Value| call("terraform", "encode_expr", &[v]).unwrap();
        assert_eq!(enc(Value::from("hello")), Value::from(r#""hello""#));
        assert_eq!(
            enc(Value::from("hello\nworld\n")),
            Value::from(r#""hello\nworld\n""#)
        );
        assert_eq!(enc(Value::from("hel${lo")), Value::from(r#""hel$${lo""#));
        assert_eq!(enc(Value::from("hel%{lo")), Value::from(r#""hel%%{lo""#));
        assert_eq!(
            enc(Value::from(r"boop\boop")),
            Value::from(r#""boop\\boop""#)
        );
        assert_eq!(enc(Value::from(2)), Value::from("2"));
        assert_eq!(enc(Value::Bool(false)), Value::from("false"));
        assert_eq!(enc(j("{}")), Value::from("{}"));
        assert_eq!(enc(j("[]")), Value::from("[]"));
        assert_eq!(
            enc(j(r#"{"string": "...", "number": 5}"#)),
            Value::from("{\n  number = 5\n  string = \"...\"\n}")
        );
        assert_eq!(enc(j(r#"[5, "..."]"#)), Value::from(r#"[5, "..."]"#));
    }

    #[test]
    fn tfvars_encode_and_decode() {
        let v = j(
            r#"{"string": "hello", "number": 5, "bool": true, "set": ["beep", "boop"],
                     "list": ["bleep", "bloop"], "tuple": ["bibble", "wibble"], "map": {"one": 1},
                     "object": {"one": 1, "true": true}, "null": null}"#,
        );
        assert_eq!(
            call("terraform", "encode_tfvars", &[v]).unwrap(),
            Value::from(
                "bool = true\nlist = [\"bleep\", \"bloop\"]\nmap = {\n  one = 1\n}\nnull   = null\nnumber = 5\nobject = {\n  one  = 1\n  true = true\n}\nset    = [\"beep\", \"boop\"]\nstring = \"hello\"\ntuple  = [\"bibble\", \"wibble\"]\n"
            )
        );
        assert_eq!(
            call("terraform", "encode_tfvars", &[j("{}")]).unwrap(),
            Value::from("")
        );
        let e = call("terraform", "encode_tfvars", &[Value::from("nope")]).unwrap_err();
        assert!(e.contains("must be an object"), "{e}");
        assert_eq!(
            call(
                "terraform",
                "decode_tfvars",
                &[Value::from(
                    "string = \"hello\"\nnumber = 2\nl = [\"a\", 1]"
                )]
            )
            .unwrap(),
            j(r#"{"string": "hello", "number": 2, "l": ["a", 1]}"#)
        );
        let e = call(
            "terraform",
            "decode_tfvars",
            &[Value::from("foo = var.whatever")],
        )
        .unwrap_err();
        assert!(e.contains("invalid expression for variable \"foo\""), "{e}");
    }

    #[test]
    fn other_provider_functions_name_themselves() {
        let e = call("aws", "arn_parse", &[Value::from("arn:aws:iam::1:role/x")]).unwrap_err();
        assert!(
            e.starts_with(
                "the provider function `provider::aws::arn_parse` cannot be evaluated offline"
            ),
            "{e}"
        );
    }
}
