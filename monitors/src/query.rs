//! The grammar of Datadog metric monitor queries:
//! `<time_aggr>(<time_window>):<expression> <comparator> <threshold>`, where the simple expression is
//! `<space_aggr>:<metric>{<scope>} [by {<keys>}]`. Used for offline validation and for `monitors test`.

/// Datadog's time windows for metric monitors (the UI's list; custom windows are also `last_<N><unit>`).
pub const TIME_WINDOWS: &[&str] = &[
    "last_1m", "last_5m", "last_10m", "last_15m", "last_30m", "last_1h", "last_2h", "last_4h",
    "last_12h", "last_1d", "last_2d", "last_1w",
];
pub const TIME_AGGRS: &[&str] = &["avg", "sum", "min", "max"];
pub const QUERY_TIME_AGGRS: &[&str] = &["avg", "sum", "min", "max", "change", "pct_change"];
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

/// Minutes in a `last_<N><m|h|d|w>` window.
pub fn window_minutes(w: &str) -> Option<u64> {
    let rest = w.strip_prefix("last_")?;
    let unit = rest.chars().last()?;
    let n: u64 = rest[..rest.len() - unit.len_utf8()].parse().ok()?;
    let mult = match unit {
        'm' => 1,
        'h' => 60,
        'd' => 1440,
        'w' => 10080,
        _ => return None,
    };
    let m = n.checked_mul(mult)?;
    (m > 0 && m <= 31 * 1440).then_some(m)
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
            "unknown time aggregator `{time_aggr}` (expected one of {})",
            QUERY_TIME_AGGRS.join(", ")
        ));
    }
    let close = q[open..]
        .find(')')
        .map(|i| open + i)
        .ok_or("the time window's `(` is never closed")?;
    let window = q[open + 1..close].trim().to_string();
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
            format!("the threshold `{thr_text}` at the end of the query is not a number")
        })?;
    let expr = rest[..ci].trim().to_string();
    if !expr.contains('{') || !expr.contains(':') {
        return Err(format!(
            "`{expr}` is not a metric expression like `avg:my.metric{{*}}`"
        ));
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
