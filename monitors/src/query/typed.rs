//! Queries of the monitor types other than metric alerts (logs, events, RUM, traces, CI, audit, error
//! tracking, database monitoring, service checks, composites, ...), checked as far as Datadog's validate
//! endpoint would check them offline.

use super::{cumulative_window_minutes, window_minutes, Op};

/// The comparator and threshold ending a query, if it ends with one (outside brackets and quotes).
fn trailing_comparison(q: &str) -> Option<(usize, Op, f64)> {
    let bytes = q.as_bytes();
    let (mut depth, mut quote, mut found) = (0i32, None::<u8>, None);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(qc) if b == qc => quote = None,
            Some(_) if b == b'\\' => i += 1,
            Some(_) => {}
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'(' | b'{' | b'[' => depth += 1,
                b')' | b'}' | b']' => depth -= 1,
                b'>' | b'<' | b'=' | b'!' if depth == 0 => {
                    let len = if bytes.get(i + 1) == Some(&b'=') {
                        2
                    } else {
                        1
                    };
                    if let Some(op) = Op::parse(&q[i..i + len]) {
                        found = Some((i, len, op));
                        i += len;
                        continue;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    let (at, len, op) = found?;
    let thr: f64 = q[at + len..]
        .trim()
        .parse()
        .ok()
        .filter(|f: &f64| f.is_finite())?;
    Some((at, op, thr))
}

/// Whether brackets and quotes of `q` are balanced.
fn balanced(q: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut quote = None;
    let mut esc = false;
    for c in q.chars() {
        if let Some(qc) = quote {
            if esc {
                esc = false;
            } else if c == '\\' {
                esc = true;
            } else if c == qc {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '{' | '[' => stack.push(c),
            ')' | '}' | ']' => {
                let want = match c {
                    ')' => '(',
                    '}' => '{',
                    _ => '[',
                };
                if stack.pop() != Some(want) {
                    return Err(format!("unbalanced `{c}` in the query"));
                }
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("a quoted string in the query is never closed".into());
    }
    if let Some(c) = stack.pop() {
        return Err(format!("unbalanced `{c}` in the query"));
    }
    Ok(())
}

/// The source function each search-based monitor type's query starts with.
const SEARCH_SOURCES: &[(&str, &[&str])] = &[
    ("log alert", &["logs"]),
    ("event-v2 alert", &["events"]),
    ("rum alert", &["rum"]),
    ("trace-analytics alert", &["trace-analytics", "spans"]),
    ("ci-pipelines alert", &["ci-pipelines"]),
    ("ci-tests alert", &["ci-tests"]),
    ("audit alert", &["audits"]),
    (
        "error-tracking alert",
        &[
            "error-tracking-rum",
            "error-tracking-traces",
            "error-tracking-logs",
            "error-tracking",
        ],
    ),
    ("database-monitoring alert", &["database-monitoring"]),
];

/// Checks the query of a monitor type other than metric alerts as far as Datadog's validate endpoint
/// would offline; returns the comparator and threshold when the query ends with one.
pub fn check_typed(mtype: &str, q: &str) -> Result<Option<(Op, f64)>, String> {
    let q = q.trim();
    if let Some((_, sources)) = SEARCH_SOURCES.iter().find(|(t, _)| *t == mtype) {
        balanced(q)?;
        let src = q.split('(').next().unwrap_or("").trim();
        // formula("query1 / query2") uses the queries of the `variables` block.
        if !sources.contains(&src) && src != "formula" {
            return Err(format!(
                "a {mtype} query starts with {}(\"<search>\"), not `{src}`",
                sources[0]
            ));
        }
        let (at, op, thr) = trailing_comparison(q)
            .ok_or("the query has no comparator and threshold (e.g. `> 100`) at its end")?;
        let body = &q[..at];
        // `.last("5m")`, or `.current("1d")` for a cumulative window (scheduling_options.evaluation_window).
        let (at_fn, name, len) = match (body.rfind(".last("), body.rfind(".current(")) {
            (Some(l), Some(c)) if c > l => (c, "current", 9),
            (Some(l), _) => (l, "last", 6),
            (None, Some(c)) => (c, "current", 9),
            (None, None) => {
                return Err("the query needs `.last(\"<window>\")`, e.g. .last(\"5m\")".into())
            }
        };
        let w = body[at_fn + len..]
            .split(')')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if name == "last" && window_minutes(&format!("last_{w}")).is_none() {
            return Err(format!(
                "invalid window \"{w}\" in .last() (expected e.g. \"5m\", \"1h\", \"1d\")"
            ));
        }
        if name == "current" && cumulative_window_minutes(&format!("current_{w}")).is_none() {
            return Err(format!(
                "invalid cumulative window \"{w}\" in .current() (expected \"1h\", \"1d\", \"1w\" or \"1mo\")"
            ));
        }
        return Ok(Some((op, thr)));
    }
    match mtype {
        "service check" => {
            balanced(q)?;
            if !q.starts_with('"') {
                return Err("a service check query starts with the check name in quotes, e.g. \"http.can_connect\".over(\"*\")".into());
            }
            for part in [".over(", ".last("] {
                if !q.contains(part) {
                    return Err(format!(
                        "a service check query needs `{part}…)`, e.g. \"http.can_connect\".over(\"*\").by(\"host\").last(2).count_by_status()"
                    ));
                }
            }
            if !(q.ends_with(".count_by_status()") || q.ends_with(".pct_by_status()")) {
                return Err(
                    "a service check query ends with .count_by_status() or .pct_by_status()".into(),
                );
            }
            Ok(None)
        }
        "slo alert" => {
            balanced(q)?;
            let f = q.split('(').next().unwrap_or("");
            if f != "error_budget" && f != "burn_rate" {
                return Err(format!(
                    "an slo alert query starts with error_budget(\"<slo id>\") or burn_rate(\"<slo id>\"), not `{f}`"
                ));
            }
            let (_, op, thr) = trailing_comparison(q)
                .ok_or("the query has no comparator and threshold (e.g. `> 90`) at its end")?;
            if !q.contains(".over(") {
                return Err(
                    "an slo alert query needs .over(\"7d\"), .over(\"30d\") or .over(\"90d\")"
                        .into(),
                );
            }
            if f == "burn_rate" && !(q.contains(".long_window(") && q.contains(".short_window(")) {
                return Err(
                    "a burn_rate query needs .long_window(\"…\") and .short_window(\"…\")".into(),
                );
            }
            Ok(Some((op, thr)))
        }
        "composite" => {
            check_composite(q)?;
            Ok(None)
        }
        _ => {
            balanced(q)?;
            Ok(trailing_comparison(q).map(|(_, op, thr)| (op, thr)))
        }
    }
}

/// A composite query: monitor ids (or `${<address>.id}` references) joined with `&&`, `||`, `!` and
/// parentheses.
fn check_composite(q: &str) -> Result<(), String> {
    let mut rest = q.trim();
    let mut ids = 0;
    let mut depth = 0i32;
    let mut expect_operand = true;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("&&").or_else(|| rest.strip_prefix("||")) {
            if expect_operand {
                return Err(
                    "`&&` or `||` without a monitor before it in the composite query".into(),
                );
            }
            expect_operand = true;
            rest = r;
        } else if let Some(r) = rest.strip_prefix('!') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix('(') {
            depth += 1;
            rest = r;
        } else if let Some(r) = rest.strip_prefix(')') {
            depth -= 1;
            if depth < 0 {
                return Err("unbalanced `)` in the composite query".into());
            }
            rest = r;
        } else if rest.starts_with("${") {
            let end = rest
                .find('}')
                .ok_or("unclosed `${` in the composite query")?;
            ids += 1;
            expect_operand = false;
            rest = &rest[end + 1..];
        } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            ids += 1;
            expect_operand = false;
            rest = &rest[end..];
        } else if rest.starts_with(char::is_whitespace) {
            rest = rest.trim_start();
        } else {
            return Err(format!(
                "unexpected `{}` in the composite query (expected monitor ids joined with &&, || and !)",
                rest.chars().next().unwrap_or(' ')
            ));
        }
    }
    if depth != 0 {
        return Err("unbalanced `(` in the composite query".into());
    }
    if ids == 0 {
        return Err("a composite query names at least one monitor id".into());
    }
    if expect_operand {
        return Err("the composite query ends with an operator".into());
    }
    Ok(())
}
