//! Evaluation of Terraform expressions. hcl-rs parses them; this evaluator walks the tree itself so that it
//! can follow Terraform where hcl-rs's evaluator is stricter or has no hook: `try` and `can` see the errors
//! of their arguments, conditionals and `&&`/`||` evaluate only what they need, strings convert to bools
//! and numbers where Terraform converts them (`"true" && true`, `"5" + 1`), and an error names the
//! reference that failed (`module.scope has no output "filter"`) instead of echoing the whole expression.
//! String templates (`"${...}"`, `%{if}`, `%{for}`) are in template.rs.

mod template;
#[cfg(test)]
mod tests;

pub use template::{lift_templates, render_text, template_value, with_templates};

use template::{lifted_template, TEMPLATE_FN};

use crate::funcs::{self, to_str, type_name};
use hcl::expr::{
    BinaryOperator, Expression, ForExpr, ObjectKey, Operation, TraversalOperator, UnaryOperator,
};
use hcl::template::Template;
use hcl::{Map, Value};
use std::collections::HashMap;

/// How deep expressions and templates may nest (a template file that includes itself stops here).
const MAX_DEPTH: usize = 64;
/// Marker value of a module whose source kelpie does not read (registry, git): its outputs are unknown.
pub const EXTERNAL_MODULE: &str = "\u{0}kelpie-external-module";

/// Variables visible to an expression: `var`, `local`, `module`, `each`, `count`, `path`, ...
#[derive(Clone, Default)]
pub struct Scope<'a> {
    vars: HashMap<String, Value>,
    parent: Option<&'a Scope<'a>>,
    depth: usize,
}

impl<'a> Scope<'a> {
    pub fn new() -> Scope<'static> {
        Scope::default()
    }

    /// A scope that sees this one's variables and may add its own.
    pub fn child(&'a self) -> Scope<'a> {
        Scope {
            vars: HashMap::new(),
            parent: Some(self),
            depth: self.depth,
        }
    }

    pub fn set(&mut self, name: &str, value: Value) {
        self.vars.insert(name.to_string(), value);
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.vars
            .get(name)
            .or_else(|| self.parent.and_then(|p| p.get(name)))
    }
}

/// The scope with `terraform.workspace` and `path.root`/`path.cwd`.
pub fn base_scope() -> Scope<'static> {
    let mut s = Scope::new();
    let mut tf = Map::new();
    tf.insert("workspace".to_string(), Value::from("default"));
    s.set("terraform", Value::Object(tf));
    let mut path = Map::new();
    for k in ["module", "root", "cwd"] {
        path.insert(k.to_string(), Value::from("."));
    }
    s.set("path", Value::Object(path));
    s
}

/// An expression's value, or the error as one sentence.
type R = Result<Value, String>;

/// Evaluates `expr`; the error is one sentence naming what failed.
pub fn eval(expr: &Expression, s: &Scope<'_>) -> R {
    if s.depth > MAX_DEPTH {
        return Err(format!("expressions nest deeper than {MAX_DEPTH} levels"));
    }
    match expr {
        Expression::Null => Ok(Value::Null),
        Expression::Bool(b) => Ok(Value::Bool(*b)),
        Expression::Number(n) => Ok(Value::Number(*n)),
        Expression::String(v) => Ok(Value::String(v.clone())),
        Expression::Array(items) => items
            .iter()
            .map(|e| eval(e, s))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Expression::Object(obj) => {
            let mut out = Map::new();
            for (k, v) in obj {
                let key = match k {
                    ObjectKey::Identifier(id) => id.to_string(),
                    ObjectKey::Expression(e) => match eval(e, s)? {
                        Value::Null => return Err("an object key is null".into()),
                        other => to_str(&other).map_err(|e| format!("object key: {e}"))?,
                    },
                    other => other.to_string(),
                };
                out.insert(key, eval(v, s)?);
            }
            Ok(Value::Object(out))
        }
        Expression::TemplateExpr(t) => {
            let tpl = Template::from_expr(t).map_err(|e| format!("invalid template: {e}"))?;
            template_value(&tpl, s)
        }
        Expression::Variable(v) => lookup(v.as_str(), s),
        Expression::Traversal(t) => {
            let (root, mut path) = match &t.expr {
                Expression::Variable(v) => (
                    lookup_traversal(v.as_str(), &t.operators, s)?,
                    v.to_string(),
                ),
                other => (eval(other, s)?, String::from("(value)")),
            };
            traverse(root, &t.operators, &mut path, s)
        }
        Expression::FuncCall(f) => call(f, s),
        Expression::Parenthesis(e) => eval(e, s),
        Expression::Conditional(c) => {
            let cond = eval(&c.cond_expr, s)?;
            let (taken, other) = if to_bool(&cond).map_err(|e| format!("condition: {e}"))? {
                (&c.true_expr, &c.false_expr)
            } else {
                (&c.false_expr, &c.true_expr)
            };
            let v = eval(taken, s)?;
            // Terraform gives both results one type (`false ? "a" : 1` is the string "1"); an error
            // in the other result only leaves its type unknown, as in Terraform.
            match eval(other, s) {
                Ok(o) => unify_conditional(v, &o),
                Err(_) => Ok(v),
            }
        }
        Expression::Operation(op) => operation(op, s),
        Expression::ForExpr(f) => for_expr(f, s),
        other => Err(format!("unsupported expression `{}`", short_expr(other))),
    }
}

/// The taken result of a conditional converted to the type both results unify to, as Terraform's
/// conditional does (cty's unification): a string with a number or a bool makes both strings; a number
/// with a bool is an error; tuples of one length and objects with the same attributes unify element by
/// element, lists of other lengths to one element type. A null result takes the other's type. Where kelpie
/// cannot tell Terraform's types apart (a list from a tuple, a map from an object), the value is kept.
fn unify_conditional(v: Value, other: &Value) -> R {
    match (v, other) {
        (v @ Value::Null, _) | (v, Value::Null) => Ok(v),
        (v @ (Value::Number(_) | Value::Bool(_)), Value::String(_)) => {
            Ok(Value::String(crate::funcs::to_str(&v)?))
        }
        (v @ Value::Number(_), Value::Bool(_)) | (v @ Value::Bool(_), Value::Number(_)) => {
            Err(format!(
                "the true and false results of a conditional must have consistent types, and {} and {} have none in common",
                crate::funcs::type_name(&v),
                crate::funcs::type_name(other)
            ))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => Ok(Value::Array(
            a.into_iter()
                .zip(b)
                .map(|(x, y)| unify_conditional(x.clone(), y).unwrap_or(x))
                .collect(),
        )),
        (Value::Array(a), Value::Array(b)) => {
            let all = a.iter().chain(b);
            let strings = all.clone().any(Value::is_string);
            let others = all
                .clone()
                .any(|x| matches!(x, Value::Number(_) | Value::Bool(_)));
            let primitive = all.clone().all(|x| {
                matches!(
                    x,
                    Value::Null | Value::String(_) | Value::Number(_) | Value::Bool(_)
                )
            });
            if strings && others && primitive {
                Ok(Value::Array(
                    a.into_iter()
                        .map(|x| match x {
                            Value::Null => Value::Null,
                            x => crate::funcs::to_str(&x).map(Value::String).unwrap_or(x),
                        })
                        .collect(),
                ))
            } else {
                Ok(Value::Array(a))
            }
        }
        (Value::Object(a), Value::Object(b))
            if a.len() == b.len() && a.keys().all(|k| b.contains_key(k)) =>
        {
            Ok(Value::Object(
                a.into_iter()
                    .map(|(k, x)| {
                        let y = &b[&k];
                        let u = unify_conditional(x.clone(), y).unwrap_or(x);
                        (k, u)
                    })
                    .collect(),
            ))
        }
        (v, _) => Ok(v),
    }
}

fn lookup(name: &str, s: &Scope<'_>) -> R {
    s.get(name).cloned().ok_or_else(|| unknown_root(name, &[]))
}

/// The value of a traversal's root variable; an unknown root is explained with the whole reference.
fn lookup_traversal(name: &str, ops: &[TraversalOperator], s: &Scope<'_>) -> R {
    s.get(name).cloned().ok_or_else(|| unknown_root(name, ops))
}

fn unknown_root(name: &str, ops: &[TraversalOperator]) -> String {
    let mut path = name.to_string();
    for op in ops.iter().take(2) {
        match op {
            TraversalOperator::GetAttr(a) => {
                path.push('.');
                path.push_str(a.as_str());
            }
            _ => break,
        }
    }
    match name {
        "each" => "`each` is only available in a block with for_each".into(),
        "count" => "`count.index` is only available in a block with count".into(),
        "self" => "`self` is only available in provisioner and connection blocks".into(),
        "data" => format!(
            "`{path}` is a data source, read by Terraform when it runs; kelpie cannot know its value"
        ),
        _ if ops.is_empty() => format!(
            "unknown name `{name}` (use var.<name>, local.<name>, module.<name>.<output>, each.key, each.value or count.index)"
        ),
        _ => format!(
            "`{path}` is an attribute of a resource that kelpie does not read; only Terraform knows its value"
        ),
    }
}

fn index_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("[{}]", serde_json::Value::String(s.clone())),
        other => format!("[{}]", to_str(other).unwrap_or_default()),
    }
}

fn traverse(mut v: Value, ops: &[TraversalOperator], path: &mut String, s: &Scope<'_>) -> R {
    for (i, op) in ops.iter().enumerate() {
        match op {
            TraversalOperator::GetAttr(a) => {
                v = get_attr(v, a.as_str(), path)?;
                path.push('.');
                path.push_str(a.as_str());
            }
            TraversalOperator::Index(e) => {
                let k = eval(e, s)?;
                v = index(v, &k, path)?;
                path.push_str(&index_text(&k));
            }
            TraversalOperator::LegacyIndex(n) => {
                let k = Value::from(*n);
                v = index(v, &k, path)?;
                path.push_str(&index_text(&k));
            }
            TraversalOperator::AttrSplat | TraversalOperator::FullSplat => {
                let items = match v {
                    Value::Null => Vec::new(),
                    Value::Array(a) => a,
                    other => vec![other],
                };
                let rest = &ops[i + 1..];
                path.push_str("[*]");
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let mut p = path.clone();
                    out.push(traverse(item, rest, &mut p, s)?);
                }
                return Ok(Value::Array(out));
            }
        }
    }
    Ok(v)
}

fn get_attr(v: Value, name: &str, path: &str) -> R {
    match v {
        Value::Object(mut o) => match o.swap_remove(name) {
            Some(x) => Ok(x),
            None => Err(missing_attr(&o, name, path)),
        },
        Value::String(m) if m == EXTERNAL_MODULE => Err(format!(
            "`{path}` is a module with a registry or git source, which kelpie does not read; its output \"{name}\" is unknown"
        )),
        Value::Null => Err(format!("`{path}` is null, so it has no attribute \"{name}\"")),
        Value::Array(_) => Err(format!(
            "`{path}` is a list: pick an element (`{path}[0].{name}`) or use a splat (`{path}[*].{name}`)"
        )),
        other => Err(format!(
            "`{path}` is {}, so it has no attribute \"{name}\"",
            type_name(&other)
        )),
    }
}

fn missing_attr(o: &Map<String, Value>, name: &str, path: &str) -> String {
    let hint = crate::diag::did_you_mean(name, o.keys().map(String::as_str));
    match path {
        "var" => {
            format!("there is no variable \"{name}\" (declare it with a variable block){hint}")
        }
        "local" => format!("there is no local value \"{name}\"{hint}"),
        "module" => format!("there is no module \"{name}\" with a local source here{hint}"),
        p if p.starts_with("module.") && !p[7..].contains(['.', '[']) => {
            format!("`{p}` has no output \"{name}\"{hint}")
        }
        p => format!("`{p}` has no attribute \"{name}\"{hint}"),
    }
}

fn index(v: Value, k: &Value, path: &str) -> R {
    match v {
        Value::Array(mut a) => {
            let i = funcs::to_num(k).map_err(|e| format!("index into `{path}`: {e}"))?;
            if i < 0.0 || i.fract() != 0.0 || i as usize >= a.len() {
                return Err(format!(
                    "index {} is out of range for `{path}`, which has {} element(s)",
                    to_str(k).unwrap_or_default(),
                    a.len()
                ));
            }
            Ok(a.swap_remove(i as usize))
        }
        Value::Object(mut o) => {
            let key = to_str(k).map_err(|e| format!("key into `{path}`: {e}"))?;
            match o.swap_remove(&key) {
                Some(x) => Ok(x),
                None => Err(format!(
                    "`{path}` has no key \"{key}\"{}",
                    crate::diag::did_you_mean(&key, o.keys().map(String::as_str))
                )),
            }
        }
        Value::Null => Err(format!("`{path}` is null, so it cannot be indexed")),
        other => Err(format!(
            "`{path}` is {}, which cannot be indexed",
            type_name(&other)
        )),
    }
}

/// Terraform's conversion to bool: a bool, or the strings "true" and "false".
pub fn to_bool(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        Value::Null => Err("a null value cannot be used as a bool".into()),
        other => Err(format!("{} cannot be used as a bool", describe(other))),
    }
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.chars().count() <= 40 => format!("the string \"{s}\""),
        other => type_name(other).to_string(),
    }
}

fn num_value(f: f64) -> R {
    if !f.is_finite() {
        return Err("the result is not a finite number".into());
    }
    Ok(funcs::num(f))
}

fn operation(op: &Operation, s: &Scope<'_>) -> R {
    match op {
        Operation::Unary(u) => {
            let v = eval(&u.expr, s)?;
            match u.operator {
                UnaryOperator::Not => Ok(Value::Bool(!to_bool(&v)?)),
                UnaryOperator::Neg => num_value(-funcs::to_num(&v)?),
            }
        }
        Operation::Binary(b) => {
            use BinaryOperator::*;
            let lhs = eval(&b.lhs_expr, s)?;
            match b.operator {
                And | Or => {
                    let l = to_bool(&lhs)?;
                    if (b.operator == And && !l) || (b.operator == Or && l) {
                        return Ok(Value::Bool(l));
                    }
                    Ok(Value::Bool(to_bool(&eval(&b.rhs_expr, s)?)?))
                }
                Eq | NotEq => {
                    let rhs = eval(&b.rhs_expr, s)?;
                    let same = equal(&lhs, &rhs);
                    Ok(Value::Bool(if b.operator == Eq { same } else { !same }))
                }
                _ => {
                    let rhs = eval(&b.rhs_expr, s)?;
                    let (l, r) = (funcs::to_num(&lhs)?, funcs::to_num(&rhs)?);
                    match b.operator {
                        Less => Ok(Value::Bool(l < r)),
                        LessEq => Ok(Value::Bool(l <= r)),
                        Greater => Ok(Value::Bool(l > r)),
                        GreaterEq => Ok(Value::Bool(l >= r)),
                        Plus => num_value(l + r),
                        Minus => num_value(l - r),
                        Mul => num_value(l * r),
                        Div if r == 0.0 => Err("division by zero".into()),
                        Div => num_value(l / r),
                        Mod if r == 0.0 => Err("modulo by zero".into()),
                        Mod => num_value(l % r),
                        _ => unreachable!("handled above"),
                    }
                }
            }
        }
    }
}

/// Terraform's `==`: numbers by value, everything else structurally (no conversion between types).
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

/// The items a `for` iterates: (key, value), lists by index and maps in key order.
pub(super) fn items(v: Value, what: &str) -> Result<Vec<(Value, Value)>, String> {
    match v {
        Value::Array(a) => Ok(a
            .into_iter()
            .enumerate()
            .map(|(i, x)| (Value::from(i as u64), x))
            .collect()),
        Value::Object(o) => {
            let mut items: Vec<(String, Value)> = o.into_iter().collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(items
                .into_iter()
                .map(|(k, v)| (Value::from(k), v))
                .collect())
        }
        Value::Null => Err(format!("{what} cannot iterate over null")),
        other => Err(format!("{what} cannot iterate over {}", type_name(&other))),
    }
}

fn for_expr(f: &ForExpr, s: &Scope<'_>) -> R {
    let coll = eval(&f.collection_expr, s)?;
    let mut obj = Map::new();
    let mut list = Vec::new();
    let mut inner = s.child();
    inner.depth += 1;
    for (k, v) in items(coll, "a for expression")? {
        if let Some(kv) = &f.key_var {
            inner.set(kv.as_str(), k);
        }
        inner.set(f.value_var.as_str(), v);
        if let Some(c) = &f.cond_expr {
            if !to_bool(&eval(c, &inner)?).map_err(|e| format!("for condition: {e}"))? {
                continue;
            }
        }
        let value = eval(&f.value_expr, &inner)?;
        match &f.key_expr {
            Some(ke) => {
                let key = to_str(&eval(ke, &inner)?).map_err(|e| format!("for key: {e}"))?;
                if f.grouping {
                    if let Value::Array(a) =
                        obj.entry(key).or_insert_with(|| Value::Array(Vec::new()))
                    {
                        a.push(value);
                    }
                } else if obj.contains_key(&key) {
                    return Err(format!(
                        "the for expression makes the key \"{key}\" twice (add `...` after the value to group them)"
                    ));
                } else {
                    obj.insert(key, value);
                }
            }
            None => list.push(value),
        }
    }
    Ok(match f.key_expr {
        Some(_) => Value::Object(obj),
        None => Value::Array(list),
    })
}

fn call(f: &hcl::expr::FuncCall, s: &Scope<'_>) -> R {
    let name = f.name.name.as_str();
    if f.name.is_namespaced() {
        let ns: Vec<&str> = f.name.namespace.iter().map(|i| i.as_str()).collect();
        let provider = match ns.as_slice() {
            ["provider", p] => *p,
            _ => return Err(format!("unknown function `{}`", f.name)),
        };
        let mut args = Vec::with_capacity(f.args.len());
        for a in &f.args {
            args.push(eval(a, s)?);
        }
        return funcs::provider::call(provider, name, &args);
    }
    match name {
        TEMPLATE_FN => {
            let n = match f.args.first() {
                Some(Expression::Number(n)) => n.as_u64().unwrap_or(u64::MAX) as usize,
                _ => usize::MAX,
            };
            let tpl = lifted_template(n);
            return match tpl {
                Some(tpl) => template_value(&tpl, s),
                None => Err("internal error: a string template was lost".into()),
            };
        }
        "try" => {
            let mut last = String::from("try() needs at least one argument");
            for a in &f.args {
                match eval(a, s) {
                    Ok(v) => return Ok(v),
                    Err(e) => last = e,
                }
            }
            return Err(format!(
                "try(): no argument could be evaluated; the last error: {last}"
            ));
        }
        "can" => {
            if f.args.len() != 1 {
                return Err(format!("can() takes 1 argument, got {}", f.args.len()));
            }
            return Ok(Value::Bool(eval(&f.args[0], s).is_ok()));
        }
        _ => {}
    }
    if !funcs::exists(name) {
        return Err(format!(
            "unknown function `{name}`{}",
            crate::diag::did_you_mean(name, funcs::names())
        ));
    }
    let mut args = Vec::with_capacity(f.args.len());
    for a in &f.args {
        args.push(eval(a, s)?);
    }
    if f.expand_final {
        match args.pop() {
            Some(Value::Array(a)) => args.extend(a),
            Some(other) => {
                return Err(format!(
                    "{name}(): the argument before `...` must be a list, got {}",
                    type_name(&other)
                ))
            }
            None => {}
        }
    }
    let mut inner = s.child();
    inner.depth += 1;
    funcs::call(name, &args, &inner)
}

/// An expression as text, shortened for messages.
pub fn short_expr(e: &Expression) -> String {
    let text = e.to_string();
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 60 {
        format!("{}…", one_line.chars().take(57).collect::<String>())
    } else {
        one_line
    }
}

pub(super) fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}
