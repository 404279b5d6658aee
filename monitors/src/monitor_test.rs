//! Unit tests of alert logic (`*.monitortest.hcl`), in the spirit of `promtool test rules`: synthetic series,
//! one value per minute, evaluated offline with the monitor's time and space aggregation, `by {…}` groups and
//! thresholds; each `expect` checks the state at a minute.

use crate::alerting::{GroupStates, Points, Rule, State};
use crate::diag::{Diag, Source};
use crate::eval::{base_scope, Scope};
use crate::load::{eval, parse_diag};
use crate::model::{address_tag, Monitor};
use crate::query::fmt_num;
use hcl::edit::structure::{Block, Structure};
use hcl::edit::Span;
use hcl::Value;
use std::path::{Path, PathBuf};

/// Longest series accepted (minutes), so that `0x99999999` cannot exhaust memory.
const MAX_POINTS: usize = 100_000;

/// The result of one test case.
#[derive(Debug)]
pub struct CaseResult {
    pub name: String,
    pub file: String,
    pub failure: Option<String>,
}

/// Parses promtool-style values: `1 2 _ 5x3 1+2x3 _x2`.
pub fn parse_values(s: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        let (base, times) = match tok.rsplit_once('x') {
            Some((b, n)) => (
                b,
                n.parse::<usize>()
                    .map_err(|_| format!("`{tok}`: the count after x must be a whole number"))?,
            ),
            None => (tok, 0),
        };
        if out.len() + times + 1 > MAX_POINTS {
            return Err(format!("series longer than {MAX_POINTS} points"));
        }
        if base == "_" {
            out.extend(std::iter::repeat_n(None, times + 1));
            continue;
        }
        // `a+b` / `a-b` (the sign after the first character) is a start and a step.
        let split = base
            .char_indices()
            .skip(1)
            .find(|(_, c)| *c == '+' || *c == '-')
            .map(|(i, _)| i);
        let (start, step) = match split {
            Some(i) if times > 0 => {
                let a: f64 = base[..i]
                    .parse()
                    .map_err(|_| format!("`{tok}` is not a number"))?;
                let b: f64 = base[i + 1..]
                    .parse()
                    .map_err(|_| format!("`{tok}` is not a number"))?;
                (a, if &base[i..i + 1] == "-" { -b } else { b })
            }
            _ => (
                base.parse::<f64>()
                    .map_err(|_| format!("`{tok}` is not a number"))?,
                0.0,
            ),
        };
        for i in 0..=times {
            out.push(Some(start + step * i as f64));
        }
    }
    Ok(out)
}

fn minutes(s: &str) -> Option<usize> {
    let s = s.trim();
    if let Ok(n) = s.parse::<usize>() {
        return Some(n);
    }
    let unit = s.chars().last()?;
    let n: usize = s[..s.len() - unit.len_utf8()].parse().ok()?;
    Some(match unit {
        'm' => n,
        'h' => n.checked_mul(60)?,
        'd' => n.checked_mul(1440)?,
        _ => return None,
    })
}

/// State (and value) of each group of `mon` at minute `at`: the window is minutes `at-N+1 … at`.
fn evaluate(mon: &Monitor, series: &[Points], at: usize) -> Result<GroupStates, String> {
    let rule = Rule::of(mon)?;
    let at = at as i64;
    Ok(rule.evaluate(series, at, 1))
}

fn test_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(".monitortest.hcl"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn attr<'a>(b: &'a Block, key: &str) -> Option<&'a hcl::edit::structure::Attribute> {
    b.body
        .iter()
        .find_map(|s| s.as_attribute().filter(|a| a.key.as_str() == key))
}

/// Runs every test of every `*.monitortest.hcl` in `dir` against `monitors`.
pub fn run(dir: &Path, monitors: &[Monitor]) -> Vec<CaseResult> {
    let mut results = Vec::new();
    let ctx = base_scope();
    for path in test_files(dir) {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                results.push(CaseResult {
                    name: path.display().to_string(),
                    file: path.display().to_string(),
                    failure: Some(format!("cannot read: {e}")),
                });
                continue;
            }
        };
        let src = Source::new(path.display().to_string(), text);
        let body = match hcl::edit::parser::parse_body(&src.text) {
            Ok(b) => b,
            Err(e) => {
                results.push(CaseResult {
                    name: src.name.clone(),
                    file: src.name.clone(),
                    failure: Some(parse_diag(&src, &e).to_string()),
                });
                continue;
            }
        };
        for b in body.iter().filter_map(Structure::as_block) {
            let pos = src.span_pos(b.span());
            let name = b
                .labels
                .first()
                .map(|l| l.as_str().to_string())
                .unwrap_or_else(|| pos.to_string());
            let failure = if b.ident.as_str() != "test" {
                Some(
                    Diag::new(
                        Some(pos),
                        None,
                        format!("unexpected block `{}` (expected `test`)", b.ident.as_str()),
                    )
                    .to_string(),
                )
            } else {
                run_case(&src, b, monitors, &ctx).err()
            };
            results.push(CaseResult {
                name,
                file: src.name.clone(),
                failure,
            });
        }
    }
    results
}

// Over 100 lines on purpose (just): one test case read from its block, evaluated and compared, in the order the
// file states them; splitting would pass the case's half-read state between functions.
fn run_case(src: &Source, b: &Block, monitors: &[Monitor], ctx: &Scope<'_>) -> Result<(), String> {
    let pos = src.span_pos(b.span());
    let err = |p: &crate::diag::Pos, m: String| Diag::new(Some(p.clone()), None, m).to_string();
    let target = attr(b, "monitor")
        .and_then(|a| src.slice(a.value.span()))
        .map(|s| s.trim_matches('"').to_string())
        .ok_or_else(|| err(&pos, "a test needs `monitor = <resource address>`".into()))?;
    let mon = monitors
        .iter()
        .find(|m| m.address == target || address_tag(&m.address) == address_tag(&target))
        .ok_or_else(|| {
            err(
                &pos,
                format!("no monitor with address {target} in the directory"),
            )
        })?;
    let mut series = Vec::new();
    let mut expects = Vec::new();
    for inner in b.body.iter().filter_map(Structure::as_block) {
        let ipos = src.span_pos(inner.span());
        let get = |key: &str| -> Result<Option<Value>, String> {
            match attr(inner, key) {
                None => Ok(None),
                Some(a) => eval(&a.value, ctx)
                    .map(Some)
                    .map_err(|m| err(&src.span_pos(a.span()), format!("{key}: {m}"))),
            }
        };
        match inner.ident.as_str() {
            "series" => {
                let metric = inner
                    .labels
                    .first()
                    .map(|l| l.as_str().to_string())
                    .ok_or_else(|| {
                        err(
                            &ipos,
                            "a series block needs the metric name as its label".into(),
                        )
                    })?;
                let tags = match get("tags")? {
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|t| t.as_str().map(str::to_string))
                        .collect(),
                    Some(Value::String(s)) => vec![s],
                    _ => Vec::new(),
                };
                let values = match get("values")? {
                    Some(Value::String(s)) => {
                        parse_values(&s).map_err(|m| err(&ipos, format!("values: {m}")))?
                    }
                    _ => return Err(err(&ipos, "a series needs `values = \"...\"`".into())),
                };
                let points = values
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i as i64, v)))
                    .collect();
                series.push(Points {
                    metric,
                    tags,
                    points,
                });
            }
            "expect" => {
                let at = match get("at")? {
                    Some(Value::String(s)) => minutes(&s),
                    Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
                    _ => None,
                }
                .ok_or_else(|| err(&ipos, "an expect needs `at = \"<N>m\"`".into()))?;
                let state = match get("state")? {
                    Some(Value::String(s)) => State::parse(&s),
                    _ => None,
                }
                .ok_or_else(|| {
                    err(
                        &ipos,
                        "an expect needs `state` = \"ok\", \"warn\", \"alert\" or \"no data\""
                            .into(),
                    )
                })?;
                let group = match get("group")? {
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                };
                expects.push((at, state, group));
            }
            other => {
                return Err(err(
                    &ipos,
                    format!("unexpected block `{other}` in a test (expected series or expect)"),
                ))
            }
        }
    }
    if expects.is_empty() {
        return Err(err(&pos, "the test has no expect block".into()));
    }
    check_expects(mon, &series, expects, &pos)
}

/// Compares each `expect` with the state the monitor evaluates to at its minute: the named group's, or
/// the worst group's.
fn check_expects(
    mon: &Monitor,
    series: &[Points],
    expects: Vec<(usize, State, Option<String>)>,
    pos: &crate::diag::Pos,
) -> Result<(), String> {
    let err = |p: &crate::diag::Pos, m: String| Diag::new(Some(p.clone()), None, m).to_string();
    for (at, want, group) in expects {
        let states =
            evaluate(mon, series, at).map_err(|m| err(pos, format!("{}: {m}", mon.address)))?;
        let (got, value, label) = match &group {
            Some(g) => {
                let key = g.split(',').map(str::trim).collect::<Vec<_>>().join(",");
                let (s, v) = states.get(&key).copied().unwrap_or((State::NoData, None));
                (s, v, format!(" for group {key}"))
            }
            None => {
                let worst = states.iter().max_by_key(|(_, (s, _))| *s);
                match worst {
                    Some((g, (s, v))) if g != "*" => (*s, *v, format!(" (worst group {g})")),
                    Some((_, (s, v))) => (*s, *v, String::new()),
                    None => (State::NoData, None, String::new()),
                }
            }
        };
        if got != want {
            let v = value
                .map(|v| format!(", value {}", fmt_num((v * 1000.0).round() / 1000.0)))
                .unwrap_or_default();
            return Err(format!(
                "at {at}m expected {}, got {}{label}{v}",
                want.as_str(),
                got.as_str()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtool_values() {
        assert_eq!(
            parse_values("0 5x2 _ 1+2x2").unwrap(),
            vec![
                Some(0.0),
                Some(5.0),
                Some(5.0),
                Some(5.0),
                None,
                Some(1.0),
                Some(3.0),
                Some(5.0)
            ]
        );
        assert_eq!(
            parse_values("10-5x2").unwrap(),
            vec![Some(10.0), Some(5.0), Some(0.0)]
        );
        assert!(parse_values("a").is_err());
        assert!(parse_values("1x999999999").is_err());
    }
}

#[cfg(test)]
mod more_tests {
    #[test]
    fn odd_inputs_do_not_panic() {
        assert_eq!(super::minutes("5é"), None);
        assert_eq!(super::minutes("99999999999999999999d"), None);
        assert_eq!(super::minutes("2h"), Some(120));
        assert!(crate::query::parse("avg(last_5é):avg:a{*} > 1").is_err());
    }
}
