//! Number functions: abs, ceil, floor, log, max, min, parseint, pow, signum.

use super::{as_int, num, str_arg, to_num, want, want_min, R};
use crate::eval::Scope;
use hcl::Value;

pub(super) fn abs(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "abs")?;
    Ok(num(to_num(&a[0])?.abs()))
}

pub(super) fn ceil(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "ceil")?;
    Ok(num(to_num(&a[0])?.ceil()))
}

pub(super) fn floor(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "floor")?;
    Ok(num(to_num(&a[0])?.floor()))
}

pub(super) fn log(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "log")?;
    Ok(num(to_num(&a[0])?.log(to_num(&a[1])?)))
}

pub(super) fn pow(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "pow")?;
    Ok(num(to_num(&a[0])?.powf(to_num(&a[1])?)))
}

pub(super) fn signum(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 1, "signum")?;
    let f = to_num(&a[0])?;
    Ok(num(if f == 0.0 { 0.0 } else { f.signum() }))
}

pub(super) fn nums(args: &[Value], name: &str) -> Result<Vec<f64>, String> {
    want_min(args, 1, name)?;
    args.iter().map(to_num).collect()
}

pub(super) fn min(a: &[Value], _: &Scope<'_>) -> R {
    Ok(num(nums(a, "min")?
        .into_iter()
        .fold(f64::INFINITY, f64::min)))
}

pub(super) fn max(a: &[Value], _: &Scope<'_>) -> R {
    Ok(num(nums(a, "max")?
        .into_iter()
        .fold(f64::NEG_INFINITY, f64::max)))
}

pub(super) fn parseint(a: &[Value], _: &Scope<'_>) -> R {
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
