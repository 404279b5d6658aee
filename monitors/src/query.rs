//! The grammar of Datadog metric monitor queries:
//! `<time_aggr>(<time_window>):<expression> <comparator> <threshold>`, where the simple expression is
//! `<space_aggr>:<metric>{<scope>} [by {<keys>}]`. Used for offline validation and for `monitors test`.

/// Datadog's time windows for metric monitors (the UI's list; custom windows are also `last_<N><unit>`).
pub const TIME_WINDOWS: &[&str] = &[
    "last_1m", "last_5m", "last_10m", "last_15m", "last_30m", "last_1h", "last_2h", "last_4h",
    "last_12h", "last_1d", "last_2d", "last_1w",
];
pub const TIME_AGGRS: &[&str] = &["avg", "sum", "min", "max"];
pub const QUERY_TIME_AGGRS: &[&str] = &[
    "avg",
    "sum",
    "min",
    "max",
    "percentile",
    "change",
    "pct_change",
];
/// Algorithms of the functions whose monitors Datadog evaluates specially.
const ANOMALY_ALGOS: &[&str] = &["basic", "agile", "robust"];
const OUTLIER_ALGOS: &[&str] = &["dbscan", "mad", "scaleddbscan", "scaledmad"];
const FORECAST_ALGOS: &[&str] = &["linear", "seasonal"];
pub const SPACE_AGGRS: &[&str] = &["avg", "sum", "min", "max"];
pub const OPERATORS: &[&str] = &[">", ">=", "<", "<="];

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        Some(match s {
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            "==" => Op::Eq,
            "!=" => Op::Ne,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
    /// Whether `value` crosses `threshold` in this comparator's direction.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
            Op::Eq => value == threshold,
            Op::Ne => value != threshold,
        }
    }
    /// Whether the comparator alerts on high values.
    pub fn is_upward(self) -> bool {
        matches!(self, Op::Gt | Op::Ge)
    }
}

/// `<space_aggr>:<metric>{<scope>} [by {<keys>}]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Simple {
    pub space_aggr: String,
    pub metric: String,
    pub scope: Vec<String>,
    pub by: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricQuery {
    pub time_aggr: String,
    pub window: String,
    pub window_minutes: u64,
    pub expr: String,
    pub simple: Option<Simple>,
    pub op: Op,
    pub threshold: f64,
}

/// Minutes in a `last_<N><m|h|d|w>` window (`next_…` for forecasts).
pub fn window_minutes(w: &str) -> Option<u64> {
    let rest = w
        .strip_prefix("last_")
        .or_else(|| w.strip_prefix("next_"))?;
    let (n, mult) = if let Some(n) = rest.strip_suffix("mo") {
        (n, 30 * 1440)
    } else {
        let unit = rest.chars().last()?;
        let mult = match unit {
            'm' => 1,
            'h' => 60,
            'd' => 1440,
            'w' => 10080,
            _ => return None,
        };
        (&rest[..rest.len() - unit.len_utf8()], mult)
    };
    let n: u64 = n.parse().ok()?;
    let m = n.checked_mul(mult)?;
    (m > 0 && m <= 93 * 1440).then_some(m)
}

/// Formats a threshold as Datadog shows it in queries: `10`, `2.5`.
pub fn fmt_num(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Collapses runs of whitespace, as Datadog does when it stores a query.
pub fn normalize(q: &str) -> String {
    q.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A query with all insignificant differences removed (whitespace, `50` vs `50.0` at the end), for
/// comparing what the files say with what the API returns.
pub fn canonical(q: &str) -> String {
    let mut s: String = q.chars().filter(|c| !c.is_whitespace()).collect();
    let tail = s.len()
        - s.chars()
            .rev()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
            .map(char::len_utf8)
            .sum::<usize>();
    if let Ok(f) = s[tail..].parse::<f64>() {
        s.truncate(tail);
        s.push_str(&fmt_num(f));
    }
    s
}

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
    let window = if time_aggr == "change" || time_aggr == "pct_change" {
        // change(<aggr>(<window>),<shift>): the shift is `last_<N>` or `<N><unit>_ago`.
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
        let shift_ok = window_minutes(shift).is_some()
            || shift
                .strip_suffix("_ago")
                .is_some_and(|s| window_minutes(&format!("last_{s}")).is_some());
        if !shift_ok {
            return Err(format!(
                "invalid time shift `{shift}` in {time_aggr}() (expected e.g. last_5m or 1h_ago)"
            ));
        }
        w.trim().to_string()
    } else {
        args.to_string()
    };
    let window_minutes = window_minutes(&window).ok_or_else(|| {
        format!("invalid time window `{window}` (expected e.g. last_5m, last_1h, last_1d)")
    })?;
    let rest = q[close + 1..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or("expected `:` after the time window")?;
    // The comparator is the last one outside braces and parentheses.
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
    let (ci, clen) =
        cmp.ok_or("the query has no comparator and threshold (e.g. `> 50`) at its end")?;
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
        if !SPACE_AGGRS.contains(&s.space_aggr.as_str()) {
            return Err(format!(
                "unknown space aggregator `{}` (expected one of {})",
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
    })
}

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
        let last = body
            .rfind(".last(")
            .ok_or("the query needs `.last(\"<window>\")`, e.g. .last(\"5m\")")?;
        let w = body[last + 6..]
            .split(')')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if window_minutes(&format!("last_{w}")).is_none() {
            return Err(format!(
                "invalid window \"{w}\" in .last() (expected e.g. \"5m\", \"1h\", \"1d\")"
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
    if space.is_empty() || !space.chars().all(|c| c.is_ascii_alphabetic()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_compact_form_query() {
        let q = parse("avg(last_5m):avg:app.5xx{*} by {service,env} > 50").unwrap();
        assert_eq!(q.window_minutes, 5);
        assert_eq!(q.op, Op::Gt);
        assert_eq!(q.threshold, 50.0);
        let s = q.simple.unwrap();
        assert_eq!(s.metric, "app.5xx");
        assert!(s.scope.is_empty());
        assert_eq!(s.by, vec!["service", "env"]);
    }

    #[test]
    fn parses_arithmetic_and_scopes() {
        let q = parse("sum(last_1h):sum:a.errors{env:prod}.as_count() / sum:a.hits{env:prod}.as_count() >= 0.05")
            .unwrap();
        assert_eq!(q.op, Op::Ge);
        assert_eq!(q.threshold, 0.05);
        assert!(q.simple.is_none());
        let q = parse("max(last_10m):max:disk.used{host:a,!env:dev} < 3").unwrap();
        assert_eq!(q.simple.unwrap().scope, vec!["host:a", "!env:dev"]);
    }

    #[test]
    fn parses_change_forecast_anomalies_outliers() {
        let q = parse("change(max(last_5m),last_5m):avg:system.load.1{*} > 2").unwrap();
        assert_eq!((q.time_aggr.as_str(), q.window_minutes), ("change", 5));
        let q = parse("pct_change(avg(last_1h),1h_ago):sum:app.hits{*}.as_count() < -50").unwrap();
        assert_eq!(q.threshold, -50.0);
        let q = parse(
            "max(next_1w):forecast(avg:system.disk.in_use{*} by {host}, 'linear', 1) >= 0.95",
        )
        .unwrap();
        assert_eq!(q.window, "next_1w");
        parse("avg(last_4h):anomalies(avg:trace.http.request.hits{service:a}.as_count(), 'agile', 2, direction='above', alert_window='last_15m', interval=60, count_default_zero='true') >= 1").unwrap();
        parse("avg(last_30m):outliers(avg:system.cpu.user{role:db} by {host}, 'DBSCAN', 3) > 0")
            .unwrap();
        parse("percentile(last_5m):p99:trace.http.request.duration{service:a} > 2").unwrap();
        parse("sum(last_5m):(sum:a.errors{*}.as_count() / sum:a.hits{*}.as_count()) * 100 > 5")
            .unwrap();
        assert!(parse("avg(last_4h):anomalies(avg:a{*}, 'magic', 2) >= 1")
            .unwrap_err()
            .contains("'magic'"));
        assert!(parse("avg(next_1w):avg:a{*} > 1")
            .unwrap_err()
            .contains("future window"));
        assert!(parse("change(max(last_5m),yesterday):avg:a{*} > 1")
            .unwrap_err()
            .contains("time shift"));
    }

    #[test]
    fn checks_other_monitor_types() {
        let ok = |t: &str, q: &str| check_typed(t, q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(
            ok(
                "log alert",
                r#"logs("service:api status:error").index("*").rollup("count").by("host").last("5m") > 100"#
            ),
            Some((Op::Gt, 100.0))
        );
        ok(
            "service check",
            r#""http.can_connect".over("env:prod").by("host").last(2).count_by_status()"#,
        );
        ok(
            "slo alert",
            r#"burn_rate("abc123").over("30d").long_window("1h").short_window("5m") > 14.4"#,
        );
        ok("slo alert", r#"error_budget("abc123").over("7d") > 90"#);
        ok("composite", "${datadog_monitor.a.id} && !(123 || 456)");
        ok(
            "event-v2 alert",
            r#"events("source:deploy").rollup("count").last("1h") >= 1"#,
        );
        let err = |t: &str, q: &str| check_typed(t, q).unwrap_err();
        assert!(err(
            "log alert",
            r#"logs("x").index("*").rollup("count").last("5x") > 1"#
        )
        .contains("\"5x\""));
        assert!(err("log alert", r#"events("x").last("5m") > 1"#).contains("starts with logs("));
        assert!(err("log alert", r#"logs("x).last("5m") > 1"#).contains("never closed"));
        assert!(err("composite", "123 &&").contains("ends with an operator"));
        assert!(err("composite", "a && b").contains("unexpected `a`"));
        assert!(err("service check", r#""x".over("*").last(2)"#).contains("count_by_status"));
        assert!(err("slo alert", r#"burn_rate("x").over("30d") > 1"#).contains("long_window"));
    }

    #[test]
    fn long_queries_are_not_echoed_whole() {
        let long = format!("avg(last_5m):{} > 1", "x".repeat(500));
        let e = parse(&long).unwrap_err();
        assert!(e.len() < 120, "{e}");
        assert!(e.contains("…"), "{e}");
    }

    #[test]
    fn rejects_bad_queries() {
        assert!(parse("avg:app.5xx{*} > 5")
            .unwrap_err()
            .contains("time aggregator"));
        assert!(parse("median(last_5m):avg:a{*} > 5")
            .unwrap_err()
            .contains("median"));
        assert!(parse("avg(last_5x):avg:a{*} > 5")
            .unwrap_err()
            .contains("last_5x"));
        assert!(parse("avg(last_5m):avg:a{*}")
            .unwrap_err()
            .contains("comparator"));
        assert!(parse("avg(last_5m):avg:a{* > 5")
            .unwrap_err()
            .contains("unbalanced"));
        assert!(parse("avg(last_5m):avg:a{*} > x")
            .unwrap_err()
            .contains("not a number"));
        assert!(parse("avg(last_5m):median:a{*} > 1")
            .unwrap_err()
            .contains("space aggregator"));
    }

    #[test]
    fn formats_numbers_like_datadog() {
        assert_eq!(fmt_num(10.0), "10");
        assert_eq!(fmt_num(2.5), "2.5");
        assert_eq!(
            normalize(" avg(last_5m):avg:a{*}   >  5 "),
            "avg(last_5m):avg:a{*} > 5"
        );
    }
}
