//! Encoding functions: base64 (of text in several encodings, of gzip), CSV, JSON (with Terraform's jsonencode layout), URL and YAML.

use super::collections::sorted_keys;
use super::types::num_to_string;
use super::{num, str_arg, string, want, R};
use crate::eval::Scope;
use hcl::{Map, Value};

pub(super) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

pub(super) fn base64decode(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    want(a, 1, "base64decode")?;
    let bytes = b64()
        .decode(str_arg(a, 0, "base64decode")?.trim())
        .map_err(|e| format!("base64decode(): {e}"))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| "base64decode(): the result is not UTF-8 text".into())
}

pub(super) fn base64encode(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    want(a, 1, "base64encode")?;
    string(b64().encode(str_arg(a, 0, "base64encode")?))
}

pub(super) fn csvdecode(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "csvdecode")?;
    let text = str_arg(a, 0, "csvdecode")?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let (mut row, mut field, mut quoted, mut was_quoted) =
        (Vec::new(), String::new(), false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                other => field.push(other),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            ',' => {
                row.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                was_quoted = false;
            }
            other => field.push(other),
        }
    }
    if quoted {
        return Err("csvdecode(): a quoted field is not closed".into());
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    let mut it = rows.into_iter();
    let header = it.next().ok_or("csvdecode(): the text has no header row")?;
    let mut out = Vec::new();
    for (i, r) in it.enumerate() {
        if r.len() != header.len() {
            return Err(format!(
                "csvdecode(): row {} has {} fields, the header {}",
                i + 2,
                r.len(),
                header.len()
            ));
        }
        let mut o = Map::new();
        for (k, v) in header.iter().zip(r) {
            o.insert(k.clone(), Value::String(v));
        }
        out.push(Value::Object(o));
    }
    Ok(Value::Array(out))
}

/// Converts decoded JSON/YAML to a value (numbers stay numbers, keys stay strings).
pub fn from_json(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_f64().map(num))
            .unwrap_or(Value::Null),
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(a) => Value::Array(a.into_iter().map(from_json).collect()),
        serde_json::Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, v)| (k, from_json(v))).collect())
        }
    }
}

pub(super) fn jsondecode(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "jsondecode")?;
    let v: serde_json::Value = serde_json::from_str(&str_arg(a, 0, "jsondecode")?)
        .map_err(|e| format!("jsondecode(): {e}"))?;
    Ok(from_json(v))
}

/// Terraform's jsonencode: object keys in lexical order, whole numbers without a fraction, and `<`, `>`,
/// `&`, U+2028 and U+2029 escaped as Go does.
pub fn jsonencode_value(v: &Value) -> String {
    let mut out = String::new();
    encode_into(v, &mut out);
    out
}

pub(super) fn encode_into(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&num_to_string(n)),
        Value::String(s) => {
            let quoted = serde_json::to_string(s).unwrap_or_default();
            for c in quoted.chars() {
                match c {
                    '<' => out.push_str("\\u003c"),
                    '>' => out.push_str("\\u003e"),
                    '&' => out.push_str("\\u0026"),
                    '\u{2028}' => out.push_str("\\u2028"),
                    '\u{2029}' => out.push_str("\\u2029"),
                    other => out.push(other),
                }
            }
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_into(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, k) in sorted_keys(o).into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_into(&Value::String(k.clone()), out);
                out.push(':');
                encode_into(&o[k], out);
            }
            out.push('}');
        }
    }
}

pub(super) fn jsonencode(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "jsonencode")?;
    string(jsonencode_value(&a[0]))
}

pub(super) fn urlencode(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "urlencode")?;
    let mut out = String::new();
    for b in str_arg(a, 0, "urlencode")?.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    string(out)
}

pub(super) fn yamldecode(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "yamldecode")?;
    let text = str_arg(a, 0, "yamldecode")?;
    let err = |e: serde_yaml::Error| format!("yamldecode(): {e}");
    let v: serde_json::Value = if text.contains("<<") {
        // Merge keys (`<<: *defaults`), which Terraform's YAML decoder applies.
        let mut y: serde_yaml::Value = serde_yaml::from_str(&text).map_err(err)?;
        y.apply_merge().map_err(err)?;
        serde_yaml::from_value(y).map_err(err)?
    } else {
        serde_yaml::from_str(&text).map_err(err)?
    };
    Ok(from_json(v))
}

pub(super) fn yamlencode(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "yamlencode")?;
    let json: serde_json::Value =
        serde_json::from_str(&jsonencode_value(&a[0])).map_err(|e| e.to_string())?;
    serde_yaml::to_string(&json)
        .map(Value::String)
        .map_err(|e| format!("yamlencode(): {e}"))
}

/// The text encodings `textencodebase64` and `textdecodebase64` know, by their IANA names.
#[derive(Clone, Copy)]
enum Text {
    Utf8,
    Utf16Le,
    Utf16Be,
    Latin1,
    Ascii,
}

fn text_encoding(a: &[Value], name: &str) -> Result<Text, String> {
    let e = str_arg(a, 1, name)?;
    Ok(match e.to_ascii_uppercase().replace('_', "-").as_str() {
        "UTF-8" | "UTF8" => Text::Utf8,
        "UTF-16LE" => Text::Utf16Le,
        "UTF-16BE" => Text::Utf16Be,
        "ISO-8859-1" | "LATIN1" => Text::Latin1,
        "US-ASCII" | "ASCII" => Text::Ascii,
        _ => {
            return Err(format!(
                "{name}(): kelpie knows the encodings UTF-8, UTF-16LE, UTF-16BE, ISO-8859-1 and US-ASCII, not {e:?}"
            ))
        }
    })
}

/// The string in a one-byte encoding whose code points go up to `max`.
fn narrow(s: &str, max: u32) -> Result<Vec<u8>, String> {
    s.chars()
        .map(|c| {
            (c as u32 <= max).then_some(c as u8).ok_or_else(|| {
                format!("textencodebase64(): {c:?} cannot be written in that encoding")
            })
        })
        .collect()
}

pub(super) fn textencodebase64(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    want(a, 2, "textencodebase64")?;
    let s = str_arg(a, 0, "textencodebase64")?;
    let bytes: Vec<u8> = match text_encoding(a, "textencodebase64")? {
        Text::Utf8 => s.into_bytes(),
        Text::Utf16Le => s.encode_utf16().flat_map(u16::to_le_bytes).collect(),
        Text::Utf16Be => s.encode_utf16().flat_map(u16::to_be_bytes).collect(),
        Text::Latin1 => narrow(&s, 0xff)?,
        Text::Ascii => narrow(&s, 0x7f)?,
    };
    string(b64().encode(bytes))
}

pub(super) fn textdecodebase64(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    want(a, 2, "textdecodebase64")?;
    let enc = text_encoding(a, "textdecodebase64")?;
    let bytes = b64()
        .decode(str_arg(a, 0, "textdecodebase64")?.trim())
        .map_err(|e| format!("textdecodebase64(): {e}"))?;
    let bad = || "textdecodebase64(): the bytes are not valid text in that encoding".to_string();
    let units = |f: fn([u8; 2]) -> u16| -> Result<Vec<u16>, String> {
        if bytes.len() % 2 != 0 {
            return Err(bad());
        }
        Ok(bytes.chunks(2).map(|c| f([c[0], c[1]])).collect())
    };
    let s = match enc {
        Text::Utf8 => String::from_utf8(bytes.clone()).map_err(|_| bad())?,
        Text::Utf16Le => String::from_utf16(&units(u16::from_le_bytes)?).map_err(|_| bad())?,
        Text::Utf16Be => String::from_utf16(&units(u16::from_be_bytes)?).map_err(|_| bad())?,
        Text::Latin1 => bytes.iter().map(|&b| b as char).collect(),
        Text::Ascii if bytes.is_ascii() => bytes.iter().map(|&b| b as char).collect(),
        Text::Ascii => return Err(bad()),
    };
    string(s)
}

/// Gzip-compresses the UTF-8 bytes of a string and encodes the result in base64.
pub(super) fn base64gzip(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    use std::io::Write;
    want(a, 1, "base64gzip")?;
    let s = str_arg(a, 0, "base64gzip")?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(s.as_bytes())
        .map_err(|e| format!("base64gzip(): {e}"))?;
    let bytes = gz.finish().map_err(|e| format!("base64gzip(): {e}"))?;
    string(b64().encode(bytes))
}
