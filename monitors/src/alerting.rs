//! How a metric monitor turns points into a state, shared by the unit tests (`monitors test`, synthetic series
//! one value per minute) and `monitors test --against` (the points a local agent recorded, unix seconds): the
//! points of a window are combined across series with the space aggregator per timestamp, then over the window
//! with the time aggregator, per `by {…}` group, and compared with the critical and warning thresholds.

use crate::model::Monitor;
use crate::query::{self, Op, Simple};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    Ok,
    NoData,
    Warn,
    Alert,
}

impl State {
    pub fn parse(s: &str) -> Option<State> {
        Some(match s.trim().to_lowercase().as_str() {
            "ok" => State::Ok,
            "warn" | "warning" => State::Warn,
            "alert" | "critical" => State::Alert,
            "no data" | "no_data" | "nodata" => State::NoData,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warn => "warn",
            State::Alert => "alert",
            State::NoData => "no data",
        }
    }
}

/// One series' points: its tags and `(time, value)` sorted by time (minutes in unit tests, unix seconds
/// against recorded data).
#[derive(Debug, Clone, PartialEq)]
pub struct Points {
    pub metric: String,
    pub tags: Vec<String>,
    pub points: Vec<(i64, f64)>,
}

/// What of a monitor is needed to evaluate it offline.
#[derive(Debug, Clone)]
pub struct Rule {
    pub simple: Simple,
    pub time_aggr: String,
    pub window_minutes: u64,
    pub op: Op,
    pub critical: f64,
    pub warning: Option<f64>,
    /// `.as_count()`: recorded rates are read back as counts per interval.
    pub as_count: bool,
}

/// The state and value of each group at one time.
pub type GroupStates = BTreeMap<String, (State, Option<f64>)>;

impl Rule {
    /// The rule of `mon`, or why it cannot be evaluated offline.
    pub fn of(mon: &Monitor) -> Result<Rule, String> {
        if !matches!(mon.mtype.as_str(), "metric alert" | "query alert") {
            return Err(format!(
                "`{}` monitors cannot be evaluated offline (only metric monitors)",
                mon.mtype
            ));
        }
        let q = query::parse(&mon.query).map_err(|e| format!("invalid query: {e}"))?;
        let simple = q.simple.clone().ok_or(
            "only simple queries (`<aggr>:<metric>{scope} by {keys}`) can be evaluated offline",
        )?;
        if q.window.starts_with("current_") {
            return Err(format!(
                "a cumulative window (`{}`) cannot be evaluated offline",
                q.window
            ));
        }
        if !query::TIME_AGGRS.contains(&q.time_aggr.as_str()) {
            return Err(format!(
                "time aggregator `{}` cannot be evaluated offline",
                q.time_aggr
            ));
        }
        let th = mon.options.get("thresholds");
        let critical = th
            .and_then(|t| t.get("critical"))
            .and_then(|v| v.as_f64())
            .unwrap_or(q.threshold);
        let warning = th.and_then(|t| t.get("warning")).and_then(|v| v.as_f64());
        Ok(Rule {
            as_count: q.expr.replace(' ', "").contains(".as_count()"),
            simple,
            time_aggr: q.time_aggr,
            window_minutes: q.window_minutes,
            op: q.op,
            critical,
            warning,
        })
    }

    /// The group a series with `tags` belongs to: `*` without `by`, else `key:value,…` (`key:N/A` when
    /// the series lacks the key).
    pub fn group_of(&self, tags: &[String]) -> String {
        if self.simple.by.is_empty() {
            return "*".into();
        }
        let parts: Vec<String> = self
            .simple
            .by
            .iter()
            .map(|k| {
                tags.iter()
                    .find(|t| t.split_once(':').map(|(a, _)| a) == Some(k.as_str()))
                    .cloned()
                    .unwrap_or_else(|| format!("{k}:N/A"))
            })
            .collect();
        parts.join(",")
    }

    /// Whether a series is one the monitor reads (its metric, within its scope).
    pub fn reads(&self, p: &Points) -> bool {
        p.metric == self.simple.metric && scope_matches(&self.simple.scope, &p.tags)
    }

    /// The state of each group over the points with a time in `(from, to]`. Every group of a series the
    /// monitor reads is there, `no data` when it has no point in the window.
    pub fn evaluate(&self, series: &[Points], from: i64, to: i64) -> GroupStates {
        // group → time → values
        let mut groups: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
        if self.simple.by.is_empty() {
            groups.insert("*".into(), BTreeMap::new());
        }
        for s in series.iter().filter(|s| self.reads(s)) {
            let slots = groups.entry(self.group_of(&s.tags)).or_default();
            let lo = s.points.partition_point(|(t, _)| *t <= from);
            let hi = s.points.partition_point(|(t, _)| *t <= to);
            for &(t, v) in &s.points[lo..hi.max(lo)] {
                slots.entry(t).or_default().push(v);
            }
        }
        groups
            .into_iter()
            .map(|(g, slots)| {
                let per_time: Vec<f64> = slots
                    .values()
                    .map(|xs| aggregate(&self.simple.space_aggr, xs))
                    .collect();
                (g, self.judge(&per_time))
            })
            .collect()
    }

    /// The state of the time-aggregated values of one group's window.
    fn judge(&self, per_time: &[f64]) -> (State, Option<f64>) {
        if per_time.is_empty() {
            return (State::NoData, None);
        }
        let v = aggregate(&self.time_aggr, per_time);
        let st = if self.op.breaches(v, self.critical) {
            State::Alert
        } else if self.warning.is_some_and(|w| self.op.breaches(v, w)) {
            State::Warn
        } else {
            State::Ok
        };
        (st, Some(v))
    }
}

/// Whether `tags` satisfy every term of a scope (`env:prod`, `!env:dev`, `service:a*`).
pub fn scope_matches(scope: &[String], tags: &[String]) -> bool {
    scope.iter().all(|s| {
        let (neg, s) = match s.strip_prefix('!') {
            Some(r) => (true, r),
            None => (false, s.as_str()),
        };
        let hit = tags.iter().any(|t| match s.strip_suffix('*') {
            Some(prefix) => t.starts_with(prefix),
            None => t == s,
        });
        hit != neg
    })
}

/// `avg` (the default), `sum`, `min` or `max` of `xs` (not empty).
pub fn aggregate(how: &str, xs: &[f64]) -> f64 {
    match how {
        "sum" => xs.iter().sum(),
        "min" => xs.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        _ => xs.iter().sum::<f64>() / xs.len() as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let tags = vec!["env:prod".to_string(), "service:api".to_string()];
        assert!(scope_matches(&[], &tags));
        assert!(scope_matches(&["env:prod".into()], &tags));
        assert!(!scope_matches(&["!env:prod".into()], &tags));
        assert!(scope_matches(&["service:a*".into()], &tags));
    }
}
