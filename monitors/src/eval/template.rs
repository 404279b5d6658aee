//! String templates: quoted templates are lifted out of an expression before hcl-rs sees them (its
//! printer loses nested escapes), and templates are rendered here with Terraform's strip markers (`~`),
//! `%{if}` and `%{for}` directives; `templatefile` and `templatestring` render text the same way.

use super::{eval, first_line, items, short_expr, to_bool, Scope, R};
use crate::funcs::{to_str, type_name};
use hcl::template::{Directive, Element, Template};
use hcl::{Map, Value};

/// The function name a lifted string template is called by (see [`lift_templates`]).
pub(super) const TEMPLATE_FN: &str = "__kelpie_template";

thread_local! {
    static TEMPLATES: std::cell::RefCell<Vec<Template>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Replaces every quoted string template in `expr` (innermost first) with a call `__kelpie_template(<n>)`
/// and returns the templates, converted structurally. hcl-rs would otherwise print each template back to
/// text and parse it again, and hcl-edit's printer loses the escapes of a string nested two levels deep
/// in interpolations (`"a${f("b${g("\"c\"")}\"")}"`), which public monitor modules do.
pub fn lift_templates(expr: &mut hcl::edit::expr::Expression) -> Vec<Template> {
    use hcl::edit::visit_mut::{visit_expr_mut, VisitMut};
    struct Lift(Vec<Template>);
    impl VisitMut for Lift {
        fn visit_expr_mut(&mut self, node: &mut hcl::edit::expr::Expression) {
            visit_expr_mut(self, node);
            if let hcl::edit::expr::Expression::StringTemplate(t) = node {
                let tpl: hcl::edit::template::Template = t.clone().into();
                let n = self.0.len();
                self.0.push(tpl.into());
                let call = hcl::edit::expr::FuncCall::new(
                    hcl::edit::Ident::new(TEMPLATE_FN),
                    hcl::edit::expr::FuncArgs::from(vec![hcl::edit::expr::Expression::from(
                        n as u64,
                    )]),
                );
                *node = hcl::edit::expr::Expression::from(call);
            }
        }
    }
    let mut lift = Lift(Vec::new());
    lift.visit_expr_mut(expr);
    lift.0
}

/// Runs `f` with the templates [`lift_templates`] took out of the expression it evaluates.
pub fn with_templates<T>(templates: Vec<Template>, f: impl FnOnce() -> T) -> T {
    let previous = TEMPLATES.with(|t| std::mem::replace(&mut *t.borrow_mut(), templates));
    let out = f();
    TEMPLATES.with(|t| *t.borrow_mut() = previous);
    out
}

/// The template [`lift_templates`] numbered `n`, while [`with_templates`] runs.
pub(super) fn lifted_template(n: usize) -> Option<Template> {
    TEMPLATES.with(|t| t.borrow().get(n).cloned())
}

/// Evaluates a template: a lone `${expr}` keeps its value's type, anything else is a string.
pub fn template_value(tpl: &Template, s: &Scope<'_>) -> R {
    let el = tpl.elements();
    if let [Element::Interpolation(i)] = el {
        return eval(&i.expr, s);
    }
    let mut out = String::new();
    render(&mut out, tpl, s, (false, false))?;
    Ok(Value::String(out))
}

/// (strips the space before it, strips the space after it)
fn strips(e: &Element) -> (bool, bool) {
    match e {
        Element::Literal(_) => (false, false),
        Element::Interpolation(i) => (i.strip.strip_start(), i.strip.strip_end()),
        Element::Directive(d) => match d.as_ref() {
            Directive::If(d) => (d.if_strip.strip_start(), d.endif_strip.strip_end()),
            Directive::For(d) => (d.for_strip.strip_start(), d.endfor_strip.strip_end()),
        },
    }
}

fn trim_literal(mut lit: &str, strip_start: bool, strip_end: bool) -> &str {
    let space = |c: char| c.is_whitespace() && c != '\r' && c != '\n';
    if strip_start {
        lit = lit.trim_start_matches(space);
        lit = lit
            .strip_prefix("\r\n")
            .or_else(|| lit.strip_prefix('\n'))
            .unwrap_or(lit);
    }
    if strip_end {
        lit = lit.trim_end_matches(space);
        lit = lit
            .strip_suffix("\r\n")
            .or_else(|| lit.strip_suffix('\n'))
            .unwrap_or(lit);
    }
    lit
}

/// Renders `tpl` into `out`; `outer` says whether the directive around it strips its first and last literal.
fn render(
    out: &mut String,
    tpl: &Template,
    s: &Scope<'_>,
    outer: (bool, bool),
) -> Result<(), String> {
    let el = tpl.elements();
    for (i, e) in el.iter().enumerate() {
        match e {
            Element::Literal(l) => {
                let before = if i == 0 {
                    outer.0
                } else {
                    strips(&el[i - 1]).1
                };
                let after = if i + 1 == el.len() {
                    outer.1
                } else {
                    strips(&el[i + 1]).0
                };
                out.push_str(trim_literal(l, before, after));
            }
            Element::Interpolation(x) => {
                let v = eval(&x.expr, s)?;
                match v {
                    Value::Null => {
                        return Err(format!(
                            "`{}` is null, and a null value cannot be part of a string",
                            short_expr(&x.expr)
                        ))
                    }
                    Value::Array(_) | Value::Object(_) => {
                        return Err(format!(
                        "`{}` is {}, which cannot be part of a string (use join() or jsonencode())",
                        short_expr(&x.expr),
                        type_name(&v)
                    ))
                    }
                    other => out.push_str(&to_str(&other)?),
                }
            }
            Element::Directive(dir) => match dir.as_ref() {
                Directive::If(d) => {
                    let c =
                        to_bool(&eval(&d.cond_expr, s)?).map_err(|e| format!("%{{if}}: {e}"))?;
                    if c {
                        let end = match &d.false_template {
                            Some(_) => d.else_strip.strip_start(),
                            None => d.endif_strip.strip_start(),
                        };
                        render(out, &d.true_template, s, (d.if_strip.strip_end(), end))?;
                    } else if let Some(f) = &d.false_template {
                        render(
                            out,
                            f,
                            s,
                            (d.else_strip.strip_end(), d.endif_strip.strip_start()),
                        )?;
                    }
                }
                Directive::For(d) => {
                    let coll = eval(&d.collection_expr, s)?;
                    let mut inner = s.child();
                    inner.depth += 1;
                    for (k, v) in items(coll, "%{for}")? {
                        if let Some(kv) = &d.key_var {
                            inner.set(kv.as_str(), k);
                        }
                        inner.set(d.value_var.as_str(), v);
                        render(
                            out,
                            &d.template,
                            &inner,
                            (d.for_strip.strip_end(), d.endfor_strip.strip_start()),
                        )?;
                    }
                }
            },
        }
    }
    Ok(())
}

/// Renders a template given as text (templatefile, templatestring) with `vars` as its only variables.
pub fn render_text(text: &str, vars: &Map<String, Value>, s: &Scope<'_>) -> R {
    let tpl: Template = text
        .parse()
        .map_err(|e: hcl::Error| format!("invalid template: {}", first_line(&e.to_string())))?;
    let mut inner = Scope::new();
    inner.depth = s.depth + 1;
    for (k, v) in vars {
        inner.set(k, v.clone());
    }
    let mut out = String::new();
    render(&mut out, &tpl, &inner, (false, false))?;
    Ok(Value::String(out))
}
