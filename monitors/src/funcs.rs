//! Terraform's built-in functions that work offline, each with Terraform's documented semantics (`try` and
//! `can` are in [`crate::eval`], since they see their arguments' errors). Functions whose result changes from
//! run to run (`timestamp`, `uuid`, `bcrypt`) are left out: a monitor using them would never be in sync.
//! Relative file paths are read against the root module's directory, as Terraform (run there) reads them.

use crate::eval::{self, to_bool, Scope};
use hcl::{Map, Number, Value};
use std::cell::RefCell;
use std::path::{Path, PathBuf};

type R = Result<Value, String>;
type F = fn(&[Value], &Scope<'_>) -> R;

/// Largest file `file`, `templatefile`, ... read (monitor code has no business with bigger ones).
const MAX_FILE: u64 = 16 << 20;
/// Most files `fileset` lists and most elements `range` makes (Terraform's own limit for range).
const MAX_LIST: usize = 10_000;

thread_local! {
    static ROOT: RefCell<PathBuf> = RefCell::new(PathBuf::from("."));
}

/// Sets the directory relative paths are read against; returns the previous one.
pub fn set_root(dir: &Path) -> PathBuf {
    ROOT.with(|r| std::mem::replace(&mut *r.borrow_mut(), dir.to_path_buf()))
}

/// The directory relative paths are read against (the root module's).
pub fn root() -> PathBuf {
    ROOT.with(|r| r.borrow().clone())
}

fn resolve(p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        ROOT.with(|r| r.borrow().join(p))
    }
}

const FUNCS: &[(&str, F)] = &[
    // Numbers.
    ("abs", abs),
    ("ceil", ceil),
    ("floor", floor),
    ("log", log),
    ("max", max),
    ("min", min),
    ("parseint", parseint),
    ("pow", pow),
    ("signum", signum),
    // Strings.
    ("chomp", chomp),
    ("endswith", endswith),
    ("format", format),
    ("formatlist", formatlist),
    ("indent", indent),
    ("join", join),
    ("lower", lower),
    ("regex", regex),
    ("regexall", regexall),
    ("replace", replace),
    ("split", split),
    ("startswith", startswith),
    ("strcontains", strcontains),
    ("strrev", strrev),
    ("substr", substr),
    ("templatestring", templatestring),
    ("title", title),
    ("trim", trim),
    ("trimprefix", trimprefix),
    ("trimspace", trimspace),
    ("trimsuffix", trimsuffix),
    ("upper", upper),
    // Collections.
    ("alltrue", alltrue),
    ("anytrue", anytrue),
    ("chunklist", chunklist),
    ("coalesce", coalesce),
    ("coalescelist", coalescelist),
    ("compact", compact),
    ("concat", concat),
    ("contains", contains),
    ("distinct", distinct),
    ("element", element),
    ("flatten", flatten),
    ("index", index),
    ("keys", keys),
    ("length", length),
    ("lookup", lookup),
    ("matchkeys", matchkeys),
    ("merge", merge),
    ("one", one),
    ("range", range),
    ("reverse", reverse),
    ("setintersection", setintersection),
    ("setproduct", setproduct),
    ("setsubtract", setsubtract),
    ("setunion", setunion),
    ("slice", slice),
    ("sort", sort),
    ("sum", sum),
    ("transpose", transpose),
    ("values", values),
    ("zipmap", zipmap),
    // Encoding.
    ("base64decode", base64decode),
    ("base64encode", base64encode),
    ("csvdecode", csvdecode),
    ("jsondecode", jsondecode),
    ("jsonencode", jsonencode),
    ("urlencode", urlencode),
    ("yamldecode", yamldecode),
    ("yamlencode", yamlencode),
    // Files.
    ("abspath", abspath),
    ("basename", basename),
    ("dirname", dirname),
    ("file", file),
    ("filebase64", filebase64),
    ("fileexists", fileexists),
    ("fileset", fileset),
    ("pathexpand", pathexpand),
    ("templatefile", templatefile),
    // Hashes.
    ("base64sha256", base64sha256),
    ("base64sha512", base64sha512),
    ("sha256", sha256),
    ("sha512", sha512),
    // Types.
    ("issensitive", issensitive),
    ("nonsensitive", identity),
    ("sensitive", identity),
    ("tobool", tobool),
    ("tolist", tolist),
    ("tomap", tomap),
    ("tonumber", tonumber),
    ("toset", toset),
    ("tostring", tostring),
];

/// Names of every function (besides `try` and `can`).
pub fn names() -> impl Iterator<Item = &'static str> {
    FUNCS.iter().map(|(n, _)| *n).chain(["try", "can"])
}

/// Whether `name` is a function kelpie knows.
pub fn exists(name: &str) -> bool {
    FUNCS.iter().any(|(n, _)| *n == name)
}

/// Calls function `name`.
pub fn call(name: &str, args: &[Value], s: &Scope<'_>) -> R {
    match FUNCS.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => f(args, s),
        None => Err(format!("unknown function `{name}`")),
    }
}

fn want(args: &[Value], n: usize, name: &str) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "{name}() takes {n} argument(s), got {}",
            args.len()
        ));
    }
    Ok(())
}

fn want_min(args: &[Value], n: usize, name: &str) -> Result<(), String> {
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

fn as_list<'a>(v: &'a Value, name: &str) -> Result<&'a Vec<Value>, String> {
    v.as_array()
        .ok_or_else(|| format!("{name}() expects a list, got {}", type_name(v)))
}

fn as_map<'a>(v: &'a Value, name: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("{name}() expects a map, got {}", type_name(v)))
}

fn as_int(v: &Value, name: &str) -> Result<i64, String> {
    let f = to_num(v).map_err(|e| format!("{name}(): {e}"))?;
    if f.fract() != 0.0 {
        return Err(format!("{name}() needs a whole number, got {f}"));
    }
    Ok(f as i64)
}

fn string(s: impl Into<String>) -> R {
    Ok(Value::String(s.into()))
}

fn str_arg(args: &[Value], i: usize, name: &str) -> Result<String, String> {
    to_str(&args[i]).map_err(|e| format!("{name}(): {e}"))
}

// ---------------------------------------------------------------- numbers

fn abs(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "abs")?;
    Ok(num(to_num(&a[0])?.abs()))
}

fn ceil(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "ceil")?;
    Ok(num(to_num(&a[0])?.ceil()))
}

fn floor(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "floor")?;
    Ok(num(to_num(&a[0])?.floor()))
}

fn log(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "log")?;
    Ok(num(to_num(&a[0])?.log(to_num(&a[1])?)))
}

fn pow(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "pow")?;
    Ok(num(to_num(&a[0])?.powf(to_num(&a[1])?)))
}

fn signum(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "signum")?;
    let f = to_num(&a[0])?;
    Ok(num(if f == 0.0 { 0.0 } else { f.signum() }))
}

fn nums(args: &[Value], name: &str) -> Result<Vec<f64>, String> {
    want_min(args, 1, name)?;
    args.iter().map(to_num).collect()
}

fn min(a: &[Value], _: &Scope<'_>) -> R {
    Ok(num(nums(a, "min")?
        .into_iter()
        .fold(f64::INFINITY, f64::min)))
}

fn max(a: &[Value], _: &Scope<'_>) -> R {
    Ok(num(nums(a, "max")?
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max)))
}

fn parseint(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "parseint")?;
    let s = str_arg(a, 0, "parseint")?;
    let base = as_int(&a[1], "parseint")?;
    if !(2..=62).contains(&base) {
        return Err("parseint() needs a base between 2 and 62".into());
    }
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(&s)),
    };
    if digits.is_empty() {
        return Err(format!(
            "parseint(): \"{s}\" is not a number in base {base}"
        ));
    }
    let mut n: i64 = 0;
    for c in digits.chars() {
        let d = match c {
            '0'..='9' => c as i64 - '0' as i64,
            'a'..='z' => c as i64 - 'a' as i64 + 10,
            'A'..='Z' if base <= 36 => c as i64 - 'A' as i64 + 10,
            'A'..='Z' => c as i64 - 'A' as i64 + 36,
            _ => 99,
        };
        if d >= base {
            return Err(format!(
                "parseint(): \"{s}\" is not a number in base {base}"
            ));
        }
        n = n
            .checked_mul(base)
            .and_then(|n| n.checked_add(d))
            .ok_or("parseint(): the number is too large")?;
    }
    Ok(Value::from(if neg { -n } else { n }))
}

// ---------------------------------------------------------------- strings

/// One `%` verb of `format`: flags, width, precision and the verb letter.
fn format_one(
    out: &mut String,
    flags: &str,
    width: Option<usize>,
    prec: Option<usize>,
    verb: char,
    arg: &Value,
) -> Result<(), String> {
    let text = match verb {
        'v' if flags.contains('#') => jsonencode_value(arg),
        's' | 'v' => match arg {
            Value::Array(_) | Value::Object(_) if verb == 'v' => jsonencode_value(arg),
            Value::Null => "null".to_string(),
            other => {
                let s = to_str(other).map_err(|e| format!("format(): %{verb}: {e}"))?;
                match prec {
                    Some(p) => s.chars().take(p).collect(),
                    None => s,
                }
            }
        },
        'q' => serde_json::to_string(&to_str(arg)?).map_err(|e| e.to_string())?,
        't' => to_bool(arg)
            .map_err(|e| format!("format(): %t: {e}"))?
            .to_string(),
        'd' | 'b' | 'o' | 'x' | 'X' | 'c' => {
            let f = to_num(arg).map_err(|e| format!("format(): %{verb}: {e}"))?;
            if f.fract() != 0.0 && verb != 'x' && verb != 'X' {
                return Err(format!("format(): %{verb} needs a whole number, got {f}"));
            }
            let i = f as i64;
            let sign = if flags.contains('+') && i >= 0 {
                "+"
            } else {
                ""
            };
            match verb {
                'd' => format!("{sign}{i}"),
                'b' => format!("{sign}{i:b}"),
                'o' => format!("{sign}{i:o}"),
                'x' => format!("{sign}{i:x}"),
                'X' => format!("{sign}{i:X}"),
                _ => char::from_u32(i as u32)
                    .map(String::from)
                    .unwrap_or_default(),
            }
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let f = to_num(arg).map_err(|e| format!("format(): %{verb}: {e}"))?;
            let sign = if flags.contains('+') && f >= 0.0 {
                "+"
            } else {
                ""
            };
            let body = match verb {
                'f' | 'F' => format!("{f:.p$}", p = prec.unwrap_or(6).min(30)),
                'e' | 'E' => {
                    let s = format!("{f:.p$e}", p = prec.unwrap_or(6).min(30));
                    let s = go_exponent(&s);
                    if verb == 'E' {
                        s.to_uppercase()
                    } else {
                        s
                    }
                }
                _ => match prec {
                    Some(p) => {
                        let p = p.clamp(1, 30);
                        let s = format!("{f:.p$e}", p = p - 1);
                        let back: f64 = s.parse().unwrap_or(f);
                        back.to_string()
                    }
                    None => num_to_string(&Number::from_f64(f).unwrap_or(Number::from(0))),
                },
            };
            format!("{sign}{body}")
        }
        other => return Err(format!("format(): the verb %{other} is not supported")),
    };
    let len = text.chars().count();
    match width {
        Some(w) if w > len => {
            let pad = w - len;
            if flags.contains('-') {
                out.push_str(&text);
                out.extend(std::iter::repeat_n(' ', pad));
            } else if flags.contains('0') && "dbxXofFeEgG".contains(verb) {
                let (sign, digits) = match text.strip_prefix('-') {
                    Some(d) => ("-", d),
                    None => ("", text.as_str()),
                };
                out.push_str(sign);
                out.extend(std::iter::repeat_n('0', pad));
                out.push_str(digits);
            } else {
                out.extend(std::iter::repeat_n(' ', pad));
                out.push_str(&text);
            }
        }
        _ => out.push_str(&text),
    }
    Ok(())
}

/// Rust writes `1.5e3`, Go `1.5e+03`.
fn go_exponent(s: &str) -> String {
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s.to_string(),
    }
}

fn format_str(fmt: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut next = 0;
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = String::new();
        while let Some(&p) = chars.peek() {
            if "+-# 0".contains(p) {
                flags.push(p);
                chars.next();
            } else {
                break;
            }
        }
        let digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
            let mut d = String::new();
            while let Some(&p) = chars.peek() {
                if p.is_ascii_digit() {
                    d.push(p);
                    chars.next();
                } else {
                    break;
                }
            }
            d.parse::<usize>().ok()
        };
        let width = digits(&mut chars);
        let prec = if chars.peek() == Some(&'.') {
            chars.next();
            Some(digits(&mut chars).unwrap_or(0))
        } else {
            None
        };
        let verb = chars
            .next()
            .ok_or("format(): the format string ends with a lone %")?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args.get(next).ok_or_else(|| {
            format!(
                "format(): the format string needs more arguments than the {} given",
                args.len()
            )
        })?;
        next += 1;
        format_one(&mut out, &flags, width, prec, verb, arg)?;
    }
    if next < args.len() {
        return Err(format!(
            "format(): {} argument(s) given but the format string uses {next}",
            args.len()
        ));
    }
    Ok(out)
}

fn format(a: &[Value], _: &Scope<'_>) -> R {
    want_min(a, 1, "format")?;
    string(format_str(&str_arg(a, 0, "format")?, &a[1..])?)
}

fn formatlist(a: &[Value], _: &Scope<'_>) -> R {
    want_min(a, 1, "formatlist")?;
    let fmt = str_arg(a, 0, "formatlist")?;
    let mut n: Option<usize> = None;
    for v in &a[1..] {
        if let Value::Array(l) = v {
            match n {
                Some(m) if m != l.len() => {
                    return Err("formatlist(): all list arguments must have the same length".into())
                }
                _ => n = Some(l.len()),
            }
        }
    }
    let n = n.unwrap_or(1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let row: Vec<Value> = a[1..]
            .iter()
            .map(|v| match v {
                Value::Array(l) => l[i].clone(),
                other => other.clone(),
            })
            .collect();
        out.push(Value::String(format_str(&fmt, &row)?));
    }
    Ok(Value::Array(out))
}

fn chomp(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "chomp")?;
    string(str_arg(a, 0, "chomp")?.trim_end_matches(['\n', '\r']))
}

fn endswith(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "endswith")?;
    Ok(Value::Bool(
        str_arg(a, 0, "endswith")?.ends_with(&str_arg(a, 1, "endswith")?),
    ))
}

fn startswith(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "startswith")?;
    Ok(Value::Bool(
        str_arg(a, 0, "startswith")?.starts_with(&str_arg(a, 1, "startswith")?),
    ))
}

fn strcontains(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "strcontains")?;
    Ok(Value::Bool(
        str_arg(a, 0, "strcontains")?.contains(&str_arg(a, 1, "strcontains")?),
    ))
}

fn indent(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "indent")?;
    let n = as_int(&a[0], "indent")?.clamp(0, 1000) as usize;
    let s = str_arg(a, 1, "indent")?;
    let pad = " ".repeat(n);
    string(s.replace('\n', &format!("\n{pad}")))
}

fn join(a: &[Value], _: &Scope<'_>) -> R {
    want_min(a, 2, "join")?;
    let sep = str_arg(a, 0, "join")?;
    let mut parts = Vec::new();
    for list in &a[1..] {
        for v in as_list(list, "join")? {
            parts.push(to_str(v).map_err(|e| format!("join(): {e}"))?);
        }
    }
    string(parts.join(&sep))
}

fn lower(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "lower")?;
    string(str_arg(a, 0, "lower")?.to_lowercase())
}

fn upper(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "upper")?;
    string(str_arg(a, 0, "upper")?.to_uppercase())
}

fn title(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "title")?;
    let s = str_arg(a, 0, "title")?;
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
    string(out)
}

fn strrev(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "strrev")?;
    string(str_arg(a, 0, "strrev")?.chars().rev().collect::<String>())
}

fn substr(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 3, "substr")?;
    let chars: Vec<char> = str_arg(a, 0, "substr")?.chars().collect();
    let len = chars.len() as i64;
    let mut off = as_int(&a[1], "substr")?;
    let n = as_int(&a[2], "substr")?;
    if off < 0 {
        off += len;
    }
    if off < 0 || off > len {
        return Err("substr(): the offset is outside the string".into());
    }
    let end = if n < 0 { len } else { (off + n).min(len) };
    string(chars[off as usize..end as usize].iter().collect::<String>())
}

fn trim(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "trim")?;
    let cut: Vec<char> = str_arg(a, 1, "trim")?.chars().collect();
    string(str_arg(a, 0, "trim")?.trim_matches(|c| cut.contains(&c)))
}

fn trimprefix(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "trimprefix")?;
    let s = str_arg(a, 0, "trimprefix")?;
    let p = str_arg(a, 1, "trimprefix")?;
    string(s.strip_prefix(&p).unwrap_or(&s))
}

fn trimsuffix(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "trimsuffix")?;
    let s = str_arg(a, 0, "trimsuffix")?;
    let p = str_arg(a, 1, "trimsuffix")?;
    string(s.strip_suffix(&p).unwrap_or(&s))
}

fn trimspace(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "trimspace")?;
    string(str_arg(a, 0, "trimspace")?.trim())
}

fn split(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "split")?;
    let sep = str_arg(a, 0, "split")?;
    let s = str_arg(a, 1, "split")?;
    if s.is_empty() {
        return Ok(Value::Array(vec![Value::from("")]));
    }
    if sep.is_empty() {
        return Ok(Value::Array(
            s.chars().map(|c| Value::String(c.to_string())).collect(),
        ));
    }
    Ok(Value::Array(
        s.split(&sep)
            .map(|p| Value::String(p.to_string()))
            .collect(),
    ))
}

fn compile(pattern: &str, name: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| {
            format!(
                "{name}(): invalid regular expression: {}",
                e.to_string().lines().last().unwrap_or("").trim()
            )
        })
}

/// What `regex` returns for one match: the match, a list of the groups, or an object of named groups.
fn captures_value(re: &regex::Regex, c: &regex::Captures<'_>) -> Value {
    let text = |i: usize| Value::from(c.get(i).map(|m| m.as_str()).unwrap_or(""));
    let named: Vec<&str> = re.capture_names().flatten().collect();
    if !named.is_empty() {
        let mut o = Map::new();
        for n in named {
            o.insert(
                n.to_string(),
                Value::from(c.name(n).map(|m| m.as_str()).unwrap_or("")),
            );
        }
        Value::Object(o)
    } else if re.captures_len() > 1 {
        Value::Array((1..re.captures_len()).map(text).collect())
    } else {
        text(0)
    }
}

fn regex(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "regex")?;
    let re = compile(&str_arg(a, 0, "regex")?, "regex")?;
    let s = str_arg(a, 1, "regex")?;
    match re.captures(&s) {
        Some(c) => Ok(captures_value(&re, &c)),
        None => Err("regex(): the pattern did not match (use regexall() or can() to test)".into()),
    }
}

fn regexall(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "regexall")?;
    let re = compile(&str_arg(a, 0, "regexall")?, "regexall")?;
    let s = str_arg(a, 1, "regexall")?;
    Ok(Value::Array(
        re.captures_iter(&s)
            .map(|c| captures_value(&re, &c))
            .collect(),
    ))
}

fn replace(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 3, "replace")?;
    let s = str_arg(a, 0, "replace")?;
    let from = str_arg(a, 1, "replace")?;
    let to = str_arg(a, 2, "replace")?;
    if from.len() > 1 && from.starts_with('/') && from.ends_with('/') {
        let re = compile(&from[1..from.len() - 1], "replace")?;
        return string(re.replace_all(&s, to.as_str()).into_owned());
    }
    if from.is_empty() {
        return string(s);
    }
    string(s.replace(&from, &to))
}

fn templatestring(a: &[Value], s: &Scope<'_>) -> R {
    want(a, 2, "templatestring")?;
    let text = str_arg(a, 0, "templatestring")?;
    eval::render_text(&text, as_map(&a[1], "templatestring")?, s)
}

// ---------------------------------------------------------------- collections

fn bools(a: &[Value], name: &str) -> Result<Vec<bool>, String> {
    want(a, 1, name)?;
    as_list(&a[0], name)?
        .iter()
        .map(|v| to_bool(v).map_err(|e| format!("{name}(): {e}")))
        .collect()
}

fn alltrue(a: &[Value], _: &Scope<'_>) -> R {
    Ok(Value::Bool(bools(a, "alltrue")?.into_iter().all(|b| b)))
}

fn anytrue(a: &[Value], _: &Scope<'_>) -> R {
    Ok(Value::Bool(bools(a, "anytrue")?.into_iter().any(|b| b)))
}

fn chunklist(a: &[Value], _: &Scope<'_>) -> R {
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

fn coalesce(a: &[Value], _: &Scope<'_>) -> R {
    a.iter()
        .find(|v| !v.is_null() && !matches!(v, Value::String(s) if s.is_empty()))
        .cloned()
        .ok_or_else(|| "coalesce(): no non-null, non-empty argument".to_string())
}

fn coalescelist(a: &[Value], _: &Scope<'_>) -> R {
    for v in a {
        if !as_list(v, "coalescelist")?.is_empty() {
            return Ok(v.clone());
        }
    }
    Err("coalescelist(): no non-empty list".into())
}

fn compact(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "compact")?;
    Ok(Value::Array(
        as_list(&a[0], "compact")?
            .iter()
            .filter(|v| !v.is_null() && !matches!(v, Value::String(s) if s.is_empty()))
            .cloned()
            .collect(),
    ))
}

fn concat(a: &[Value], _: &Scope<'_>) -> R {
    let mut out = Vec::new();
    for list in a {
        out.extend(as_list(list, "concat")?.iter().cloned());
    }
    Ok(Value::Array(out))
}

fn contains(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "contains")?;
    Ok(Value::Bool(
        as_list(&a[0], "contains")?
            .iter()
            .any(|v| eval::equal(v, &a[1])),
    ))
}

fn dedup(l: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in l {
        if !out.iter().any(|o| eval::equal(o, v)) {
            out.push(v.clone());
        }
    }
    out
}

fn distinct(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "distinct")?;
    Ok(Value::Array(dedup(as_list(&a[0], "distinct")?)))
}

fn element(a: &[Value], _: &Scope<'_>) -> R {
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

fn flatten_into(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten_into(x, out)),
        other => out.push(other.clone()),
    }
}

fn flatten(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "flatten")?;
    let mut out = Vec::new();
    for v in as_list(&a[0], "flatten")? {
        flatten_into(v, &mut out);
    }
    Ok(Value::Array(out))
}

fn index(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "index")?;
    as_list(&a[0], "index")?
        .iter()
        .position(|v| eval::equal(v, &a[1]))
        .map(|i| Value::from(i as u64))
        .ok_or_else(|| "index(): the value is not in the list".to_string())
}

fn sorted_keys(m: &Map<String, Value>) -> Vec<&String> {
    let mut k: Vec<&String> = m.keys().collect();
    k.sort();
    k
}

fn keys(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "keys")?;
    Ok(Value::Array(
        sorted_keys(as_map(&a[0], "keys")?)
            .into_iter()
            .map(|s| Value::String(s.clone()))
            .collect(),
    ))
}

fn values(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "values")?;
    let m = as_map(&a[0], "values")?;
    Ok(Value::Array(
        sorted_keys(m)
            .into_iter()
            .filter_map(|k| m.get(k).cloned())
            .collect(),
    ))
}

fn length(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "length")?;
    let n = match &a[0] {
        Value::Array(a) => a.len(),
        Value::Object(o) => o.len(),
        Value::String(s) => s.chars().count(),
        other => return Err(format!("length() cannot take {}", type_name(other))),
    };
    Ok(Value::from(n as u64))
}

fn lookup(a: &[Value], _: &Scope<'_>) -> R {
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

fn matchkeys(a: &[Value], _: &Scope<'_>) -> R {
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

fn merge(a: &[Value], _: &Scope<'_>) -> R {
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

fn one(a: &[Value], _: &Scope<'_>) -> R {
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

fn range(a: &[Value], _: &Scope<'_>) -> R {
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

fn reverse(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "reverse")?;
    Ok(Value::Array(
        as_list(&a[0], "reverse")?.iter().rev().cloned().collect(),
    ))
}

/// Terraform orders a set of strings lexically and a set of numbers numerically.
fn set_order(mut l: Vec<Value>) -> Vec<Value> {
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

fn sets<'a>(a: &'a [Value], name: &str) -> Result<Vec<&'a Vec<Value>>, String> {
    want_min(a, 1, name)?;
    a.iter().map(|v| as_list(v, name)).collect()
}

fn setintersection(a: &[Value], _: &Scope<'_>) -> R {
    let s = sets(a, "setintersection")?;
    let out: Vec<Value> = dedup(s[0])
        .into_iter()
        .filter(|v| s[1..].iter().all(|o| o.iter().any(|x| eval::equal(x, v))))
        .collect();
    Ok(Value::Array(set_order(out)))
}

fn setsubtract(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "setsubtract")?;
    let s = sets(a, "setsubtract")?;
    let out: Vec<Value> = dedup(s[0])
        .into_iter()
        .filter(|v| !s[1].iter().any(|x| eval::equal(x, v)))
        .collect();
    Ok(Value::Array(set_order(out)))
}

fn setunion(a: &[Value], _: &Scope<'_>) -> R {
    let s = sets(a, "setunion")?;
    let all: Vec<Value> = s.into_iter().flatten().cloned().collect();
    Ok(Value::Array(set_order(dedup(&all))))
}

fn setproduct(a: &[Value], _: &Scope<'_>) -> R {
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

fn slice(a: &[Value], _: &Scope<'_>) -> R {
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

fn sort(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "sort")?;
    let mut s: Vec<String> = as_list(&a[0], "sort")?
        .iter()
        .map(|v| to_str(v).map_err(|e| format!("sort(): {e}")))
        .collect::<Result<_, _>>()?;
    s.sort();
    Ok(Value::Array(s.into_iter().map(Value::String).collect()))
}

fn sum(a: &[Value], _: &Scope<'_>) -> R {
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

fn transpose(a: &[Value], _: &Scope<'_>) -> R {
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

fn zipmap(a: &[Value], _: &Scope<'_>) -> R {
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

// ---------------------------------------------------------------- encoding

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn base64decode(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    want(a, 1, "base64decode")?;
    let bytes = b64()
        .decode(str_arg(a, 0, "base64decode")?.trim())
        .map_err(|e| format!("base64decode(): {e}"))?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| "base64decode(): the result is not UTF-8 text".into())
}

fn base64encode(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    want(a, 1, "base64encode")?;
    string(b64().encode(str_arg(a, 0, "base64encode")?))
}

fn csvdecode(a: &[Value], _: &Scope<'_>) -> R {
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

fn jsondecode(a: &[Value], _: &Scope<'_>) -> R {
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

fn encode_into(v: &Value, out: &mut String) {
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

fn jsonencode(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "jsonencode")?;
    string(jsonencode_value(&a[0]))
}

fn urlencode(a: &[Value], _: &Scope<'_>) -> R {
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

fn yamldecode(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "yamldecode")?;
    let v: serde_json::Value = serde_yaml::from_str(&str_arg(a, 0, "yamldecode")?)
        .map_err(|e| format!("yamldecode(): {e}"))?;
    Ok(from_json(v))
}

fn yamlencode(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "yamlencode")?;
    let json: serde_json::Value =
        serde_json::from_str(&jsonencode_value(&a[0])).map_err(|e| e.to_string())?;
    serde_yaml::to_string(&json)
        .map(Value::String)
        .map_err(|e| format!("yamlencode(): {e}"))
}

// ---------------------------------------------------------------- files

fn read(path: &str, name: &str) -> Result<Vec<u8>, String> {
    let p = resolve(path);
    let meta = std::fs::metadata(&p).map_err(|e| format!("{name}(): cannot read {path}: {e}"))?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{name}(): {path} is larger than {} MiB",
            MAX_FILE >> 20
        ));
    }
    std::fs::read(&p).map_err(|e| format!("{name}(): cannot read {path}: {e}"))
}

fn read_text(path: &str, name: &str) -> Result<String, String> {
    String::from_utf8(read(path, name)?)
        .map_err(|_| format!("{name}(): {path} is not UTF-8 text (use filebase64)"))
}

fn file(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "file")?;
    string(read_text(&str_arg(a, 0, "file")?, "file")?)
}

fn filebase64(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    want(a, 1, "filebase64")?;
    string(b64().encode(read(&str_arg(a, 0, "filebase64")?, "filebase64")?))
}

fn fileexists(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "fileexists")?;
    Ok(Value::Bool(
        resolve(&str_arg(a, 0, "fileexists")?).is_file(),
    ))
}

fn templatefile(a: &[Value], s: &Scope<'_>) -> R {
    want(a, 2, "templatefile")?;
    let path = str_arg(a, 0, "templatefile")?;
    let text = read_text(&path, "templatefile")?;
    eval::render_text(&text, as_map(&a[1], "templatefile")?, s)
        .map_err(|e| format!("templatefile({path}): {e}"))
}

fn abspath(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "abspath")?;
    let p = resolve(&str_arg(a, 0, "abspath")?);
    let p = std::path::absolute(&p).unwrap_or(p);
    string(p.to_string_lossy().replace('\\', "/"))
}

fn basename(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "basename")?;
    let s = str_arg(a, 0, "basename")?;
    let t = s.trim_end_matches('/');
    if t.is_empty() {
        return string(if s.is_empty() { "." } else { "/" });
    }
    string(t.rsplit('/').next().unwrap_or(t))
}

fn dirname(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "dirname")?;
    let s = str_arg(a, 0, "dirname")?;
    let t = s.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) => string("/"),
        Some(i) => string(t[..i].trim_end_matches('/')),
        None if s.starts_with('/') => string("/"),
        None => string("."),
    }
}

fn pathexpand(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "pathexpand")?;
    let s = str_arg(a, 0, "pathexpand")?;
    match (s.strip_prefix('~'), std::env::var("HOME")) {
        (Some(rest), Ok(home)) if rest.is_empty() || rest.starts_with('/') => {
            string(format!("{home}{rest}"))
        }
        _ => string(s),
    }
}

/// Whether `name` matches the glob `pat` (`*`, `?`, `[abc]`, `{a,b}`; `*` does not cross `/`, `**` does).
fn glob_match(pat: &[char], name: &[char]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some('*') if pat.get(1) == Some(&'*') => {
            let rest = &pat[2..];
            let rest_nosep = rest.strip_prefix(&['/']).unwrap_or(rest);
            (0..=name.len()).any(|i| {
                glob_match(rest, &name[i..])
                    || ((i == 0 || name[i - 1] == '/') && glob_match(rest_nosep, &name[i..]))
            })
        }
        Some('*') => (0..=name.len())
            .take_while(|&i| i == 0 || name[i - 1] != '/')
            .any(|i| glob_match(&pat[1..], &name[i..])),
        Some('?') => name.first().is_some_and(|c| *c != '/') && glob_match(&pat[1..], &name[1..]),
        Some('[') => {
            let Some(end) = pat.iter().position(|c| *c == ']') else {
                return name.first() == Some(&'[') && glob_match(&pat[1..], &name[1..]);
            };
            let Some(c) = name.first() else { return false };
            let class = &pat[1..end];
            let (neg, class) = match class.first() {
                Some('^') | Some('!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= *c && *c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == *c;
                    i += 1;
                }
            }
            hit != neg && glob_match(&pat[end + 1..], &name[1..])
        }
        Some('{') => {
            let Some(end) = pat.iter().position(|c| *c == '}') else {
                return name.first() == Some(&'{') && glob_match(&pat[1..], &name[1..]);
            };
            pat[1..end].split(|c| *c == ',').any(|alt| {
                let mut p = alt.to_vec();
                p.extend_from_slice(&pat[end + 1..]);
                glob_match(&p, name)
            })
        }
        Some('\\') if pat.len() > 1 => {
            name.first() == Some(&pat[1]) && glob_match(&pat[2..], &name[1..])
        }
        Some(c) => name.first() == Some(c) && glob_match(&pat[1..], &name[1..]),
    }
}

fn fileset(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "fileset")?;
    let base = str_arg(a, 0, "fileset")?;
    // Terraform globs path/pattern joined and cleaned, so "./x/*.yaml" matches "x/a.yaml".
    let raw = str_arg(a, 1, "fileset")?;
    let mut clean = raw.as_str();
    while let Some(rest) = clean.strip_prefix("./") {
        clean = rest.trim_start_matches('/');
    }
    let pat: Vec<char> = clean.chars().collect();
    let root = resolve(&base);
    let mut found = Vec::new();
    let mut stack = vec![(root.clone(), String::new())];
    let mut seen = 0usize;
    while let Some((dir, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            seen += 1;
            if seen > MAX_LIST {
                return Err(format!(
                    "fileset(): more than {MAX_LIST} files under {base}"
                ));
            }
            let name = e.file_name().to_string_lossy().to_string();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push((e.path(), r));
            } else if ft.is_file() {
                let chars: Vec<char> = r.chars().collect();
                if glob_match(&pat, &chars) {
                    found.push(r);
                }
            }
        }
    }
    found.sort();
    Ok(Value::Array(found.into_iter().map(Value::String).collect()))
}

// ---------------------------------------------------------------- hashes

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(a: &[Value], _: &Scope<'_>) -> R {
    use sha2::Digest;
    want(a, 1, "sha256")?;
    string(hex(&sha2::Sha256::digest(str_arg(a, 0, "sha256")?)))
}

fn sha512(a: &[Value], _: &Scope<'_>) -> R {
    use sha2::Digest;
    want(a, 1, "sha512")?;
    string(hex(&sha2::Sha512::digest(str_arg(a, 0, "sha512")?)))
}

fn base64sha256(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    use sha2::Digest;
    want(a, 1, "base64sha256")?;
    string(b64().encode(sha2::Sha256::digest(str_arg(a, 0, "base64sha256")?)))
}

fn base64sha512(a: &[Value], _: &Scope<'_>) -> R {
    use base64::Engine;
    use sha2::Digest;
    want(a, 1, "base64sha512")?;
    string(b64().encode(sha2::Sha512::digest(str_arg(a, 0, "base64sha512")?)))
}

// ---------------------------------------------------------------- types

fn identity(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "sensitive")?;
    Ok(a[0].clone())
}

fn issensitive(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "issensitive")?;
    Ok(Value::Bool(false))
}

fn tobool(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tobool")?;
    if a[0].is_null() {
        return Ok(Value::Null);
    }
    Ok(Value::Bool(
        to_bool(&a[0]).map_err(|e| format!("tobool(): {e}"))?,
    ))
}

fn tostring(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tostring")?;
    if a[0].is_null() {
        return Ok(Value::Null);
    }
    string(str_arg(a, 0, "tostring")?)
}

fn tonumber(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tonumber")?;
    if a[0].is_null() {
        return Ok(Value::Null);
    }
    Ok(num(to_num(&a[0]).map_err(|e| format!("tonumber(): {e}"))?))
}

fn tolist(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tolist")?;
    Ok(Value::Array(as_list(&a[0], "tolist")?.clone()))
}

fn toset(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "toset")?;
    Ok(Value::Array(set_order(dedup(as_list(&a[0], "toset")?))))
}

fn tomap(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "tomap")?;
    Ok(Value::Object(as_map(&a[0], "tomap")?.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(src: &str) -> R {
        let e: hcl::Expression = src.parse().map_err(|e: hcl::Error| e.to_string())?;
        eval::eval(&e, &eval::base_scope())
    }

    fn ok(src: &str, want: Value) {
        assert_eq!(ev(src), Ok(want), "{src}");
    }

    fn j(s: &str) -> Value {
        from_json(serde_json::from_str(s).unwrap())
    }

    #[test]
    fn string_functions() {
        ok(
            r#"format("%s-%d-%.1f", "a", 3, 2.25)"#,
            Value::from("a-3-2.2"),
        );
        ok(
            r#"format("%5s|%-4d|%03d|%t|%q", "ab", 7, 5, true, "x")"#,
            Value::from("   ab|7   |005|true|\"x\""),
        );
        ok(r#"format("%v %#v", [1], "s")"#, Value::from("[1] \"s\""));
        ok(
            r#"formatlist("%s=%s", ["a", "b"], "x")"#,
            j(r#"["a=x","b=x"]"#),
        );
        ok(r#"join(",", ["a", "b"], ["c"])"#, Value::from("a,b,c"));
        ok(r#"upper(lower("AbC"))"#, Value::from("ABC"));
        ok(r#"replace("a-b-c", "-", "_")"#, Value::from("a_b_c"));
        ok(
            r#"replace("hello world", "/w(or)ld/", "$1")"#,
            Value::from("hello or"),
        );
        ok(r#"regex("[a-z]+", "53454 abc 32")"#, Value::from("abc"));
        ok(
            r#"regex("(\\d\\d\\d\\d)-(\\d\\d)", "2019-02-01")"#,
            j(r#"["2019","02"]"#),
        );
        ok(
            r#"regex("(?P<y>\\d+)-(?P<m>\\d+)", "2019-02")"#,
            j(r#"{"m":"02","y":"2019"}"#),
        );
        ok(
            r#"regexall("[a-z]+", "1234abcd5678efgh9")"#,
            j(r#"["abcd","efgh"]"#),
        );
        ok(r#"length(regexall("x", "abc")) > 0"#, Value::Bool(false));
        ok(r#"substr("hello world", 1, 4)"#, Value::from("ello"));
        ok(r#"substr("hello world", -5, -1)"#, Value::from("world"));
        ok(r#"trim("?!hello?!", "!?")"#, Value::from("hello"));
        ok(r#"trimprefix("helloworld", "hello")"#, Value::from("world"));
        ok(r#"trimsuffix("helloworld", "world")"#, Value::from("hello"));
        ok(r#"chomp("hello\n\n")"#, Value::from("hello"));
        ok(r#"indent(2, "a\nb")"#, Value::from("a\n  b"));
        ok(
            r#"startswith("hello", "he") && endswith("hello", "lo") && strcontains("hello", "ll")"#,
            Value::Bool(true),
        );
        ok(r#"strrev("abc")"#, Value::from("cba"));
        ok(r#"title("hello world")"#, Value::from("Hello World"));
        ok(r#"split(",", "a,b")"#, j(r#"["a","b"]"#));
        ok(
            r#"templatestring("Hi $${n}", { n = "x" })"#,
            Value::from("Hi x"),
        );
    }

    #[test]
    fn collection_functions() {
        ok(r#"compact(["a", "", null, "b"])"#, j(r#"["a","b"]"#));
        ok(r#"coalescelist([], ["a"])"#, j(r#"["a"]"#));
        ok(r#"coalesce(null, "", "x")"#, Value::from("x"));
        ok(r#"zipmap(["a", "b"], [1, 2])"#, j(r#"{"a":1,"b":2}"#));
        ok(r#"range(3)"#, j("[0,1,2]"));
        ok(r#"range(1, 8, 2)"#, j("[1,3,5,7]"));
        ok(r#"range(3, 0)"#, j("[3,2,1]"));
        ok(r#"sort(["b", "a", "c"])"#, j(r#"["a","b","c"]"#));
        ok(r#"reverse([1, 2])"#, j("[2,1]"));
        ok(r#"slice(["a", "b", "c"], 1, 3)"#, j(r#"["b","c"]"#));
        ok(r#"one([])"#, Value::Null);
        ok(r#"one(["x"])"#, Value::from("x"));
        assert!(ev(r#"one(["x", "y"])"#).is_err());
        ok(r#"sum([1, 2.5, "3"])"#, Value::from(6.5));
        ok(
            r#"alltrue(["true", true]) && !anytrue([])"#,
            Value::Bool(true),
        );
        ok(r#"alltrue([])"#, Value::Bool(true));
        ok(r#"setproduct(["a", "b"], [1])"#, j(r#"[["a",1],["b",1]]"#));
        ok(
            r#"chunklist(["a", "b", "c"], 2)"#,
            j(r#"[["a","b"],["c"]]"#),
        );
        ok(r#"tobool("true")"#, Value::Bool(true));
        ok(r#"toset(["b", "a", "b"])"#, j(r#"["a","b"]"#));
        ok(r#"setunion(["b"], ["a", "b"])"#, j(r#"["a","b"]"#));
        ok(r#"setintersection(["a", "b"], ["b", "c"])"#, j(r#"["b"]"#));
        ok(r#"setsubtract(["a", "b"], ["b"])"#, j(r#"["a"]"#));
        ok(r#"index(["a", "b"], "b")"#, Value::from(1));
        ok(
            r#"matchkeys(["i-1", "i-2"], ["us", "eu"], ["eu"])"#,
            j(r#"["i-2"]"#),
        );
        ok(
            r#"transpose({ a = ["1", "2"], b = ["2"] })"#,
            j(r#"{"1":["a"],"2":["a","b"]}"#),
        );
        ok(r#"lookup(merge({a = 1}, {b = 2}), "b", 0)"#, Value::from(2));
        ok(r#"keys({b = 1, a = 2})"#, j(r#"["a","b"]"#));
        ok(r#"values({b = 1, a = 2})"#, j("[2,1]"));
        ok(r#"flatten([["a"], [["b"]], []])"#, j(r#"["a","b"]"#));
        ok(r#"element(["a", "b"], 3)"#, Value::from("b"));
        ok(r#"max([3, 9]...)"#, Value::from(9));
        ok(
            r#"parseint("ff", 16) + pow(2, 3) + signum(-4)"#,
            Value::from(262),
        );
    }

    #[test]
    fn encoding_functions() {
        ok(
            r#"jsonencode({b = [1, "x<"], a = true})"#,
            Value::from(r#"{"a":true,"b":[1,"x\u003c"]}"#),
        );
        ok(r#"jsondecode("{\"a\": [1, 2.5]}")"#, j(r#"{"a":[1,2.5]}"#));
        ok(
            r#"yamldecode("a: 1\nb: [x, y]\n")"#,
            j(r#"{"a":1,"b":["x","y"]}"#),
        );
        ok(
            r#"csvdecode("a,b\n1,\"x,y\"\n")"#,
            j(r#"[{"a":"1","b":"x,y"}]"#),
        );
        ok(
            r#"urlencode("Hello World!")"#,
            Value::from("Hello+World%21"),
        );
        ok(r#"base64decode(base64encode("hi"))"#, Value::from("hi"));
        ok(
            r#"sha256("hello")"#,
            Value::from("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
        );
    }

    #[test]
    fn paths_and_globs() {
        ok(r#"basename("foo/bar/baz.txt")"#, Value::from("baz.txt"));
        ok(r#"dirname("foo/bar/baz.txt")"#, Value::from("foo/bar"));
        ok(r#"dirname("baz.txt")"#, Value::from("."));
        let g = |p: &str, n: &str| {
            glob_match(
                &p.chars().collect::<Vec<_>>(),
                &n.chars().collect::<Vec<_>>(),
            )
        };
        assert!(g("*.yaml", "a.yaml"));
        assert!(!g("*.yaml", "d/a.yaml"));
        assert!(g("**/*.yaml", "a.yaml"));
        assert!(g("**/*.yaml", "d/e/a.yaml"));
        assert!(g("{a,b}.[jy]son", "b.json"));
        assert!(g("m?.tf", "m1.tf"));
    }

    #[test]
    fn fileset_reads_against_the_root_and_cleans_the_pattern() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("m/deep")).unwrap();
        for f in ["m/a.yaml", "m/b.json", "m/deep/c.yaml"] {
            std::fs::write(t.path().join(f), "x: 1\n").unwrap();
        }
        let before = set_root(t.path());
        let got = (
            ev(r#"fileset(".", "./m/*.yaml")"#),
            ev(r#"fileset("m", "**/*.yaml")"#),
        );
        set_root(&before);
        assert_eq!(got.0, Ok(j(r#"["m/a.yaml"]"#)));
        assert_eq!(got.1, Ok(j(r#"["a.yaml","deep/c.yaml"]"#)));
    }

    #[test]
    fn errors_are_sentences() {
        assert!(ev(r#"lookup({a = 1}, "z")"#)
            .unwrap_err()
            .contains("no key \"z\""));
        assert!(ev(r#"tonumber("x")"#)
            .unwrap_err()
            .contains("cannot convert"));
        assert!(ev(r#"regex("(", "x")"#)
            .unwrap_err()
            .starts_with("regex(): invalid regular expression"));
    }
}
