//! Metric monitor queries (`metric alert`, `query alert`): parsing, with a one-sentence error saying what
//! is wrong, and the checks of the functions Datadog evaluates specially.

use super::{
    cumulative_window_minutes, percentile_of, window_minutes, ChangeSpec, MetricQuery, Op, Simple,
    QUERY_TIME_AGGRS, SPACE_AGGRS, TIME_AGGRS,
};

/// Algorithms of the functions whose monitors Datadog evaluates specially.
const ANOMALY_ALGOS: &[&str] = &["basic", "agile", "robust"];
const OUTLIER_ALGOS: &[&str] = &["dbscan", "mad", "scaleddbscan", "scaledmad"];
const FORECAST_ALGOS: &[&str] = &["linear", "seasonal"];

fn is_metric_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Parses a metric monitor query; the error is one sentence saying what is wrong.
pub fn parse(q: &str) -> Result<MetricQuery, String> {
    let q = q.trim();
    let open = q.find('(').ok_or(
        "the query must start with `<time aggregator>(<time window>):`, e.g. `avg(last_5m):`",
    )?;
    let time_aggr = q[..open].trim().to_string();
    if !QUERY_TIME_AGGRS.contains(&time_aggr.as_str()) {
        return Err(format!(
            "unknown time aggregator `{}` (expected one of {})",
            short(&time_aggr),
            QUERY_TIME_AGGRS.join(", ")
        ));
    }
    let close = matching_paren(q, open).ok_or("the time window's `(` is never closed")?;
    let args = q[open + 1..close].trim();
    let (window, change) = if time_aggr == "change" || time_aggr == "pct_change" {
        let (w, spec) = change_window(&time_aggr, args)?;
        (w, Some(spec))
    } else {
        (args.to_string(), None)
    };
    let window_minutes = window_minutes(&window)
        .or_else(|| cumulative_window_minutes(&window).filter(|_| args == window))
        .ok_or_else(|| {
            format!("invalid time window `{window}` (expected e.g. last_5m, last_1h, last_1d, or a cumulative current_1d)")
        })?;
    let rest = q[close + 1..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or("expected `:` after the time window")?;
    let (ci, clen) = last_comparator(rest)?;
    let op = Op::parse(&rest[ci..ci + clen]).ok_or("invalid comparator")?;
    let thr_text = rest[ci + clen..].trim();
    let threshold: f64 = thr_text
        .parse()
        .ok()
        .filter(|f: &f64| f.is_finite())
        .ok_or_else(|| {
            format!(
                "the threshold `{}` at the end of the query is not a number",
                short(thr_text)
            )
        })?;
    let expr = rest[..ci].trim().to_string();
    if !expr.contains('{') || !expr.contains(':') {
        return Err(format!(
            "`{}` is not a metric expression like `avg:my.metric{{*}}`",
            short(&expr)
        ));
    }
    check_functions(&expr)?;
    let forecast = expr.starts_with("forecast(");
    if window.starts_with("next_") != forecast {
        return Err(if forecast {
            format!("a forecast query needs a future window like `next_1w`, not `{window}`")
        } else {
            format!("`{window}` is a future window, only for forecast queries")
        });
    }
    let simple = parse_simple(&expr);
    if let Some(s) = &simple {
        if !SPACE_AGGRS.contains(&s.space_aggr.as_str()) && percentile_of(&s.space_aggr).is_none() {
            return Err(format!(
                "unknown space aggregator `{}` (expected one of {}, or a distribution's percentile like p95)",
                s.space_aggr,
                SPACE_AGGRS.join(", ")
            ));
        }
    }
    Ok(MetricQuery {
        time_aggr,
        window,
        window_minutes,
        expr,
        simple,
        op,
        threshold,
        change,
    })
}

/// The window of `change(<aggr>(<window>),<shift>)` (and `pct_change`), checking the aggregator and the
/// shift (`last_<N>` or `<N><unit>_ago`): the window and what is compared.
fn change_window(time_aggr: &str, args: &str) -> Result<(String, ChangeSpec), String> {
    let (inner, shift) = args.rsplit_once(',').ok_or_else(|| {
        format!("{time_aggr}() takes `<aggregator>(<window>),<shift>`, e.g. {time_aggr}(avg(last_5m),last_5m)")
    })?;
    let inner = inner.trim();
    let (agg, w) = inner
        .strip_suffix(')')
        .and_then(|i| i.split_once('('))
        .ok_or_else(|| {
            format!("{time_aggr}() needs `<aggregator>(<window>)` first, got `{inner}`")
        })?;
    if !TIME_AGGRS.contains(&agg.trim()) {
        return Err(format!(
            "unknown time aggregator `{}` in {time_aggr}() (expected one of {})",
            agg.trim(),
            TIME_AGGRS.join(", ")
        ));
    }
    let shift = shift.trim();
    let shift_minutes = window_minutes(shift).or_else(|| {
        shift
            .strip_suffix("_ago")
            .and_then(|s| window_minutes(&format!("last_{s}")))
    });
    let Some(shift_minutes) = shift_minutes else {
        return Err(format!(
            "invalid time shift `{shift}` in {time_aggr}() (expected e.g. last_5m or 1h_ago)"
        ));
    };
    let spec = ChangeSpec {
        pct: time_aggr == "pct_change",
        aggr: agg.trim().to_string(),
        shift_minutes,
    };
    Ok((w.trim().to_string(), spec))
}

/// The place and length of the query's comparator: the last one outside braces and parentheses.
fn last_comparator(rest: &str) -> Result<(usize, usize), String> {
    let bytes = rest.as_bytes();
    let mut depth = 0i32;
    let mut cmp: Option<(usize, usize)> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'(' => depth += 1,
            b'}' | b')' => depth -= 1,
            b'>' | b'<' | b'=' | b'!' if depth == 0 => {
                let two = bytes.get(i + 1) == Some(&b'=');
                let len = if two { 2 } else { 1 };
                if Op::parse(&rest[i..i + len]).is_some() {
                    cmp = Some((i, len));
                    i += len;
                    continue;
                }
            }
            _ => {}
        }
        if depth < 0 {
            return Err("unbalanced `}` or `)` in the query".into());
        }
        i += 1;
    }
    if depth != 0 {
        return Err("unbalanced `{` or `(` in the query".into());
    }
    cmp.ok_or_else(|| "the query has no comparator and threshold (e.g. `> 50`) at its end".into())
}

/// Checks the algorithm argument of anomalies(), outliers() and forecast() where they wrap the query.
fn check_functions(expr: &str) -> Result<(), String> {
    for (name, algos) in [
        ("anomalies", ANOMALY_ALGOS),
        ("outliers", OUTLIER_ALGOS),
        ("forecast", FORECAST_ALGOS),
    ] {
        let mut from = 0;
        while let Some(i) = expr[from..].find(&format!("{name}(")).map(|i| from + i) {
            from = i + name.len();
            if expr[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            {
                continue;
            }
            let open = i + name.len();
            let close =
                matching_paren(expr, open).ok_or_else(|| format!("{name}( is never closed"))?;
            let args = &expr[open + 1..close];
            let algo = split_top(args)
                .get(1)
                .copied()
                .map(|a| a.trim().trim_matches(|c| c == '\'' || c == '"'))
                .ok_or_else(|| {
                    format!("{name}() needs the algorithm as its second argument, e.g. {name}(<query>, '{}', …)", algos[0])
                })?;
            if !algos.contains(&algo.to_ascii_lowercase().as_str()) {
                return Err(format!(
                    "unknown {name}() algorithm '{algo}' (expected one of {})",
                    algos.join(", ")
                ));
            }
        }
    }
    Ok(())
}

fn parse_simple(expr: &str) -> Option<Simple> {
    let (space, rest) = expr.split_once(':')?;
    let space = space.trim();
    if space.is_empty()
        || !(space.chars().all(|c| c.is_ascii_alphabetic()) || percentile_of(space).is_some())
    {
        return None;
    }
    let brace = rest.find('{')?;
    let metric = rest[..brace].trim();
    if metric.is_empty() || !metric.chars().all(is_metric_char) {
        return None;
    }
    let end = rest[brace..].find('}')? + brace;
    let scope: Vec<String> = rest[brace + 1..end]
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "*")
        .collect();
    let mut tail = rest[end + 1..].trim();
    for f in [".as_count()", ".as_rate()"] {
        tail = tail.strip_prefix(f).unwrap_or(tail).trim();
    }
    let by = if tail.is_empty() {
        Vec::new()
    } else {
        let inner = tail
            .strip_prefix("by")?
            .trim()
            .strip_prefix('{')?
            .strip_suffix('}')?;
        inner
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    Some(Simple {
        space_aggr: space.to_string(),
        metric: metric.to_string(),
        scope,
        by,
    })
}

/// Part of a query for a message: one line, at most 60 characters (a heredoc query is not echoed whole).
fn short(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 60 {
        format!("{}…", one.chars().take(57).collect::<String>())
    } else {
        one
    }
}

/// `s` split at the commas outside brackets and quotes.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut quote, mut start) = (0i32, None, 0);
    let mut out = Vec::new();
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '(' | '{' | '[' => depth += 1,
                ')' | '}' | ']' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            },
        }
    }
    out.push(&s[start..]);
    out
}

/// The index of the `)` that closes the `(` at `open`.
fn matching_paren(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, c) in s[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}
