//! `import` blocks of a module: `to` and `id`, once per item with `for_each`, where `to` may name the instance
//! with an index expression. Its own file because an import block is loaded on its own, apart from the
//! passes that order locals, module calls and monitors (and `crate::import` is `kelpie monitors import`,
//! hence the name).

use super::module::Module;
use super::parse::{attr, eval, ParsedFile};
use super::{ImportHint, Loaded};
use crate::diag::{Diag, Pos};
use crate::eval::Scope;
use hcl::edit::structure::Block;
use hcl::edit::Span;
use hcl::Value;

/// An `import` block: `to` and `id`, once per item with `for_each` (Terraform 1.7), where `to` names the
/// instance with an index expression such as `datadog_monitor.m[each.key]`.
pub(super) fn load_import(
    m: &Module,
    f: &ParsedFile,
    b: &Block,
    pos: Pos,
    ctx: &Scope<'_>,
    out: &mut Loaded,
) {
    let (Some(to), Some(id_attr)) = (
        attr(b, "to").and_then(|a| f.src.slice(a.value.span())),
        attr(b, "id"),
    ) else {
        out.errors.push(Diag::new(
            Some(pos),
            None,
            "an import block needs `to` and `id`",
        ));
        return;
    };
    let Some(insts) = super::instances::instances(m, &f.src, b, ctx, "import", out) else {
        return;
    };
    for (_, each, count) in insts {
        let ictx = super::instances::instance_ctx(ctx, &each, count);
        let to = match import_address(to, &ictx) {
            Ok(t) => t,
            Err(msg) => {
                out.errors.push(Diag::new(
                    Some(pos.clone()),
                    None,
                    format!("import: to: {msg}"),
                ));
                continue;
            }
        };
        match eval(&id_attr.value, &ictx) {
            Ok(id) => match value_to_i64(&id) {
                Some(id) => out.imports.push(ImportHint {
                    to: format!("{}{}", m.prefix, to),
                    id,
                    pos: pos.clone(),
                }),
                None => out.errors.push(Diag::new(
                    Some(pos.clone()),
                    Some(&to),
                    "import: `id` must be a monitor id (a number)",
                )),
            },
            Err(msg) => {
                out.errors
                    .push(Diag::new(Some(pos.clone()), None, format!("import: {msg}")))
            }
        }
    }
}

/// An import block's `to` with each index expression evaluated: `datadog_monitor.m[each.key]` with
/// `each.key = "cpu"` is `datadog_monitor.m["cpu"]`; literal indexes are kept as written.
fn import_address(to: &str, ctx: &Scope<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = to.trim();
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let mut depth = 0;
        let close = rest[open..]
            .char_indices()
            .find_map(|(i, c)| {
                match c {
                    '[' => depth += 1,
                    ']' => depth -= 1,
                    _ => {}
                }
                (depth == 0).then_some(open + i)
            })
            .ok_or("an index `[` is never closed")?;
        let inner = rest[open + 1..close].trim();
        let literal = inner.parse::<i64>().is_ok()
            || (inner.len() >= 2
                && inner.starts_with('"')
                && inner.ends_with('"')
                && !inner.contains("${"));
        if literal {
            out.push_str(&rest[open..=close]);
        } else {
            let e = hcl::edit::parser::parse_expr(inner).map_err(|e| e.message().to_string())?;
            match eval(&e, ctx)? {
                Value::String(s) => out.push_str(&format!("[{}]", serde_json::Value::String(s))),
                Value::Number(n) => out.push_str(&format!("[{n}]")),
                other => {
                    return Err(format!(
                        "the index `{inner}` is {}, not a string or a number",
                        crate::funcs::type_name(&other)
                    ))
                }
            }
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
