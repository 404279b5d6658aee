//! Variables: values from var files, `-var` and `TF_VAR_` (root module) or the module block (child
//! module), typed and converted to the declared type as Terraform does; a variable without a value is an
//! error only if a monitor uses it.

use super::module::Module;
use super::parse::{attr, eval, label, parse_diag, ParsedFile};
use super::Loaded;
use crate::diag::{Diag, Pos, Source};
use crate::eval::{base_scope, Scope};
use hcl::edit::structure::{Block, Structure};
use hcl::edit::Span;
use hcl::{Map, Value};
use std::path::Path;

#[derive(Clone, Debug)]
pub(super) enum Override {
    /// A value given as text (from `-var` or `TF_VAR_`), typed by the variable's declared type.
    Raw(String, Option<&'static str>),
    /// A value from a var file, already evaluated.
    Value(Value),
}

pub(super) fn read_var_file(
    path: &Path,
    overrides: &mut Vec<(String, Override)>,
    errors: &mut Vec<Diag>,
) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(Diag::new(
                None,
                None,
                format!("cannot read var file {}: {e}", path.display()),
            ));
            return;
        }
    };
    if path.to_string_lossy().ends_with(".json") {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(o)) => {
                for (k, v) in o {
                    overrides.push((k, Override::Value(crate::funcs::from_json(v))));
                }
            }
            Ok(_) => errors.push(Diag::new(
                None,
                None,
                format!("var file {}: must be a JSON object", path.display()),
            )),
            Err(e) => errors.push(Diag::new(
                Some(Pos {
                    file: path.display().to_string(),
                    line: e.line(),
                    col: e.column(),
                }),
                None,
                format!("invalid JSON: {e}"),
            )),
        }
        return;
    }
    let src = Source::new(path.display().to_string(), text);
    let body = match hcl::edit::parser::parse_body(&src.text) {
        Ok(b) => b,
        Err(e) => {
            errors.push(parse_diag(&src, &e));
            return;
        }
    };
    let scope = base_scope();
    for s in body.iter() {
        if let Structure::Attribute(a) = s {
            let pos = src.span_pos(a.span());
            match eval(&a.value, &scope) {
                Ok(v) => overrides.push((a.key.as_str().to_string(), Override::Value(v))),
                Err(msg) => errors.push(Diag::new(Some(pos), None, msg)),
            }
        }
    }
}

/// Evaluates a module's `variable` blocks into the values of `var.*`; a variable without a value is
/// deferred (an error only if a monitor uses it), a value for an undeclared variable is an error.
pub(super) fn bind_variables(
    m: &Module,
    files: &[ParsedFile],
    ctx: &Scope<'_>,
    out: &mut Loaded,
) -> Map<String, Value> {
    let mut vars = Map::new();
    let mut declared: Vec<String> = Vec::new();
    for f in files {
        for b in f
            .body
            .iter()
            .filter_map(Structure::as_block)
            .filter(|b| b.ident.as_str() == "variable")
        {
            let Some(name) = label(b, 0) else {
                out.errors.push(Diag::new(
                    Some(f.src.span_pos(b.span())),
                    None,
                    "a variable block needs a name",
                ));
                continue;
            };
            declared.push(name.to_string());
            let pos = f.src.span_pos(b.span());
            let errors_before = out.errors.len();
            match variable_value(m, &f.src, b, name, ctx, out) {
                Some(v) => {
                    vars.insert(name.to_string(), v);
                }
                // Its value was invalid and that was reported: a monitor using it says nothing more
                // (not also "is not set").
                None if out.errors.len() > errors_before => {
                    let d = out.errors[out.errors.len() - 1].clone();
                    m.deferred.borrow_mut().insert(format!("var.{name}"), (d, true));
                }
                None if m.failed_inputs.contains_key(name) => {
                    let d = m.failed_inputs.get(name).cloned();
                    if let Some(d) = d {
                        m.deferred.borrow_mut().insert(format!("var.{name}"), (d, false));
                    }
                }
                None => drop(m.deferred.borrow_mut().insert(format!("var.{name}"), (Diag::new(
                    Some(pos),
                    None,
                    if m.inputs.is_some() {
                        format!("variable \"{name}\" has no default and the module block does not set it")
                    } else {
                        format!("variable \"{name}\" is not set: give it a default, -var {name}=..., -var-file or TF_VAR_{name}")
                    },
                ), false))),
            }
        }
    }
    check_undeclared(m, &declared, out);
    vars
}

/// A variable's value: its default, overridden by the module block (child module) or by var files,
/// `-var` and `TF_VAR_` (root module), converted to its declared type; `None` if it has none or it is
/// invalid (reported).
fn variable_value(
    m: &Module,
    src: &Source,
    b: &Block,
    name: &str,
    ctx: &Scope<'_>,
    out: &mut Loaded,
) -> Option<Value> {
    let pos = src.span_pos(b.span());
    let ty = attr(b, "type")
        .and_then(|a| src.slice(a.value.span()))
        .unwrap_or("")
        .to_string();
    let mut value = None;
    if let Some(d) = attr(b, "default") {
        match eval(&d.value, ctx) {
            Ok(v) => value = Some(v),
            Err(msg) => out.errors.push(Diag::new(
                Some(pos.clone()),
                None,
                format!("variable \"{name}\": {msg}"),
            )),
        }
    }
    if let Some(inputs) = &m.inputs {
        if let Some((v, _)) = inputs.get(name) {
            value = Some(v.clone());
        }
    } else {
        for (k, o) in &m.overrides {
            if k != name {
                continue;
            }
            match o {
                Override::Value(v) => value = Some(v.clone()),
                Override::Raw(text, _) => match typed_raw(text, &ty) {
                    Ok(v) => value = Some(v),
                    Err(msg) => out.errors.push(Diag::new(
                        Some(pos.clone()),
                        None,
                        format!(
                            "variable \"{name}\": the value given ({text}) is not a valid {}: {}",
                            short_type(&ty),
                            // The hint about var./local. names is for expressions in files, not a -var.
                            msg.split(" (use var.").next().unwrap_or(&msg)
                        ),
                    )),
                },
            }
        }
    }
    // Terraform converts the value to the declared type: "5" to 5 for number, missing optional()
    // attributes of an object filled in with their default or null.
    let value = match (value, attr(b, "type")) {
        (Some(v), Some(t)) => {
            let t: hcl::Expression = t.value.clone().into();
            match convert_type(v, &t) {
                Ok(v) => Some(v),
                Err(msg) => {
                    out.errors.push(Diag::new(
                        Some(pos.clone()),
                        None,
                        format!("variable \"{name}\": the value does not match its type: {msg}"),
                    ));
                    None
                }
            }
        }
        (v, _) => v,
    };
    value
}

/// Values given for variables the module does not declare: by the module block (child module) or by
/// `-var` (root module; var files and `TF_VAR_` may set others, as Terraform allows).
fn check_undeclared(m: &Module, declared: &[String], out: &mut Loaded) {
    if let Some(inputs) = &m.inputs {
        for (k, (_, pos)) in inputs {
            if !declared.contains(k) {
                out.errors.push(Diag::new(
                    Some(pos.clone()),
                    None,
                    format!("module {} has no variable named \"{k}\"", m.dir.display()),
                ));
            }
        }
    } else {
        for (k, o) in &m.overrides {
            if let Override::Raw(_, Some(flag)) = o {
                if !declared.contains(k) {
                    out.errors.push(Diag::new(
                        None,
                        None,
                        format!("{flag} sets \"{k}\", but no variable \"{k}\" is declared"),
                    ));
                }
            }
        }
    }
}

/// Types `-var`/`TF_VAR_` text by the variable's declared type, as Terraform does: strings stay text,
/// other types are parsed as HCL expressions.
/// A type constraint for a one-line message: `map(object({ … }))` as `map(…)`.
fn short_type(ty: &str) -> String {
    let one_line = ty.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.find('(') {
        _ if one_line.is_empty() => "value".to_string(),
        Some(i) if one_line.len() > 40 => format!("{}(…)", &one_line[..i]),
        _ => one_line,
    }
}

fn typed_raw(text: &str, ty: &str) -> Result<Value, String> {
    // `"string"` is the quoted form of Terraform 0.11, read as the older files are.
    if ty.is_empty() || ty == "string" || ty == "\"string\"" {
        return Ok(Value::from(text));
    }
    let expr = hcl::edit::parser::parse_expr(text).map_err(|e| e.message().to_string())?;
    eval(&expr, &base_scope())
}

/// Converts `v` to the Terraform type constraint `ty` as Terraform does for variables.
fn convert_type(v: Value, ty: &hcl::Expression) -> Result<Value, String> {
    use hcl::Expression as E;
    if v.is_null() {
        return Ok(v);
    }
    let call = |name: &str| match ty {
        E::FuncCall(f) if f.name.name.as_str() == name => Some(&f.args),
        _ => None,
    };
    match ty {
        E::Variable(t) => match t.as_str() {
            "string" => match v {
                Value::String(_) => Ok(v),
                Value::Number(_) | Value::Bool(_) => crate::funcs::to_str(&v).map(Value::from),
                other => Err(format!(
                    "expected a string, got {}",
                    crate::funcs::type_name(&other)
                )),
            },
            "number" => crate::funcs::to_num(&v).map(crate::funcs::num),
            "bool" => crate::eval::to_bool(&v).map(Value::Bool),
            _ => Ok(v),
        },
        _ => {
            if let Some(args) = call("optional") {
                return match args.first() {
                    Some(t) => convert_type(v, t),
                    None => Ok(v),
                };
            }
            if let Some(args) = call("list").or_else(|| call("set")) {
                let Value::Array(items) = v else {
                    return Err(format!(
                        "expected a list, got {}",
                        crate::funcs::type_name(&v)
                    ));
                };
                let t = args
                    .first()
                    .cloned()
                    .unwrap_or(E::Variable(hcl::Variable::unchecked("any")));
                let items: Vec<Value> = items
                    .into_iter()
                    .map(|x| convert_type(x, &t))
                    .collect::<Result<_, _>>()?;
                return Ok(Value::Array(items));
            }
            if let Some(args) = call("map") {
                let Value::Object(o) = v else {
                    return Err(format!(
                        "expected a map, got {}",
                        crate::funcs::type_name(&v)
                    ));
                };
                let t = args
                    .first()
                    .cloned()
                    .unwrap_or(E::Variable(hcl::Variable::unchecked("any")));
                let mut out = Map::new();
                for (k, x) in o {
                    out.insert(k, convert_type(x, &t)?);
                }
                return Ok(Value::Object(out));
            }
            if let Some(args) = call("object") {
                return convert_object(v, args);
            }
            Ok(v)
        }
    }
}

/// Converts `v` to `object({...})` with the attribute types in `args`: each attribute converted, missing
/// `optional()` ones filled in with their default or null.
fn convert_object(v: Value, args: &[hcl::Expression]) -> Result<Value, String> {
    use hcl::Expression as E;
    let Value::Object(mut o) = v else {
        return Err(format!(
            "expected an object, got {}",
            crate::funcs::type_name(&v)
        ));
    };
    let Some(E::Object(attrs)) = args.first() else {
        return Ok(Value::Object(o));
    };
    let mut out = Map::new();
    for (k, t) in attrs {
        let key = match k {
            hcl::ObjectKey::Identifier(i) => i.to_string(),
            hcl::ObjectKey::Expression(E::String(s)) => s.clone(),
            other => other.to_string(),
        };
        let optional = matches!(t, E::FuncCall(f) if f.name.name.as_str() == "optional");
        match o.swap_remove(&key) {
            Some(x) if !x.is_null() => {
                out.insert(key, convert_type(x, t)?);
            }
            _ if optional => {
                let default = match t {
                    E::FuncCall(f) => match f.args.get(1) {
                        Some(d) => crate::eval::eval(d, &base_scope())?,
                        None => Value::Null,
                    },
                    _ => Value::Null,
                };
                let inner = match t {
                    E::FuncCall(f) => f.args.first().cloned(),
                    _ => None,
                };
                let default = match inner {
                    Some(it) if !default.is_null() => convert_type(default, &it)?,
                    _ => default,
                };
                out.insert(key, default);
            }
            Some(x) => drop(out.insert(key, x)),
            None => return Err(format!("attribute \"{key}\" is required")),
        }
    }
    Ok(Value::Object(out))
}
