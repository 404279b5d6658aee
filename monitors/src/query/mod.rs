//! The grammar of Datadog metric monitor queries:
//! `<time_aggr>(<time_window>):<expression> <comparator> <threshold>`, where the simple expression is
//! `<space_aggr>:<metric>{<scope>} [by {<keys>}]`. Used for offline validation and for `monitors test`.
//! This file holds the query types and the helpers both checks use; metric.rs parses metric queries,
//! typed.rs checks the queries of the other monitor types.

mod metric;
#[cfg(test)]
mod tests;
mod typed;

pub use metric::parse;
pub use typed::check_typed;

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

pub const SPACE_AGGRS: &[&str] = &["avg", "sum", "min", "max"];

/// The percentile of a distribution's percentile aggregator (`p95` → 95; `p99.9` → 99.9), None for others.
pub fn percentile_of(space_aggr: &str) -> Option<f64> {
    let n = space_aggr.strip_prefix('p')?;
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    n.parse::<f64>().ok().filter(|p| *p > 0.0 && *p <= 100.0)
}
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

/// What `change(<aggr>(<window>),<shift>)` and `pct_change(…)` compare: the value of each point minus (or
/// its change in percent from) the value `shift_minutes` earlier, reduced over the window with `aggr`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeSpec {
    pub pct: bool,
    pub aggr: String,
    pub shift_minutes: u64,
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
    /// For `change(…)` and `pct_change(…)`.
    pub change: Option<ChangeSpec>,
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

/// A cumulative window (`current_1h`, `current_1d`, `current_1w`, `current_1mo`): from the start of the
/// hour, day, week or month (set by `scheduling_options.evaluation_window`) until now. Its length in
/// minutes at most.
pub fn cumulative_window_minutes(w: &str) -> Option<u64> {
    match w.strip_prefix("current_")? {
        "1h" => Some(60),
        "1d" => Some(1440),
        "1w" => Some(10080),
        "1mo" => Some(31 * 1440),
        _ => None,
    }
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
