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
    /// `critical_recovery`: a group in ALERT leaves it only once its value passes this (Datadog's recovery
    /// condition: `<=` for `>`, `<` for `>=`, `>=` for `<`, `>` for `<=`).
    pub critical_recovery: Option<f64>,
    /// `warning_recovery`: the same for a group in WARN.
    pub warning_recovery: Option<f64>,
    /// `.as_count()`: recorded rates are read back as counts per interval.
    pub as_count: bool,
    /// `.as_rate()`: recorded counts are read back as rates per second.
    pub as_rate: bool,
    /// `change(…)` / `pct_change(…)`: the shifted comparison replaces the plain time aggregation.
    pub change: Option<query::ChangeSpec>,
    /// `require_full_window = true`: a group is not evaluated until its points cover the whole window.
    pub require_full_window: bool,
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
        let percentile_time = q.time_aggr == "percentile";
        if percentile_time && query::percentile_of(&simple.space_aggr).is_none() {
            return Err(format!(
                "`percentile(…)` needs a percentile aggregator like `p95:`, not `{}:`",
                simple.space_aggr
            ));
        }
        if q.change.is_none()
            && !percentile_time
            && !query::TIME_AGGRS.contains(&q.time_aggr.as_str())
        {
            return Err(format!(
                "time aggregator `{}` cannot be evaluated offline",
                q.time_aggr
            ));
        }
        let th = mon.options.get("thresholds");
        let num = |k: &str| th.and_then(|t| t.get(k)).and_then(|v| v.as_f64());
        let flat = q.expr.replace(' ', "");
        Ok(Rule {
            as_count: flat.contains(".as_count()"),
            as_rate: flat.contains(".as_rate()"),
            simple,
            time_aggr: q.time_aggr,
            window_minutes: q.window_minutes,
            op: q.op,
            critical: num("critical").unwrap_or(q.threshold),
            warning: num("warning"),
            critical_recovery: num("critical_recovery"),
            warning_recovery: num("warning_recovery"),
            change: q.change,
            require_full_window: mon
                .options
                .get("require_full_window")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
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

    /// How the values of one timestamp combine across series: the space aggregator; a percentile of
    /// several series is taken as the largest of theirs (an upper bound: the agent keeps no sketches).
    fn space_combine(&self, xs: &[f64]) -> f64 {
        if query::percentile_of(&self.simple.space_aggr).is_some() {
            aggregate("max", xs)
        } else {
            aggregate(&self.simple.space_aggr, xs)
        }
    }

    /// The state of each group at `to`, over the window that ends there; `minute` is the length of a minute
    /// in the series' time unit (1 for the unit tests' minutes, 60 for unix seconds). Every group of a
    /// series the monitor reads is there, `no data` when it has no point in the window; a group whose
    /// points do not yet cover the window is left out when the monitor requires a full window.
    pub fn evaluate(&self, series: &[Points], to: i64, minute: i64) -> GroupStates {
        let window = self.window_minutes as i64 * minute;
        let shift = self
            .change
            .as_ref()
            .map_or(0, |c| c.shift_minutes as i64 * minute);
        // Points older than the window are read only to compare with (change, pct_change).
        let from = to - window - if shift > 0 { shift + window } else { 0 };
        // group → time → values
        let mut groups: BTreeMap<String, BTreeMap<i64, Vec<f64>>> = BTreeMap::new();
        if self.simple.by.is_empty() {
            groups.insert("*".into(), BTreeMap::new());
        }
        let mut first_seen: BTreeMap<String, i64> = BTreeMap::new();
        for s in series.iter().filter(|s| self.reads(s)) {
            let g = self.group_of(&s.tags);
            if let Some(&(t0, _)) = s.points.first() {
                let e = first_seen.entry(g.clone()).or_insert(t0);
                *e = (*e).min(t0);
            }
            let slots = groups.entry(g).or_default();
            let lo = s.points.partition_point(|(t, _)| *t <= from);
            let hi = s.points.partition_point(|(t, _)| *t <= to);
            for &(t, v) in &s.points[lo..hi.max(lo)] {
                slots.entry(t).or_default().push(v);
            }
        }
        let mut out = GroupStates::new();
        for (g, slots) in groups {
            let per_time: Vec<(i64, f64)> = slots
                .iter()
                .map(|(t, xs)| (*t, self.space_combine(xs)))
                .collect();
            let start = to - window;
            let in_window: Vec<(i64, f64)> =
                per_time.iter().copied().filter(|p| p.0 > start).collect();
            if self.require_full_window && !in_window.is_empty() {
                // Full: the group reported from the window's start on (within one step of it).
                let step = smallest_gap(&per_time).unwrap_or(minute).max(1);
                let covered = first_seen.get(&g).is_some_and(|t0| *t0 <= start + step);
                if !covered {
                    continue;
                }
            }
            let values: Vec<f64> = match &self.change {
                None => in_window.iter().map(|p| p.1).collect(),
                Some(c) => shifted_changes(&per_time, &in_window, shift, c.pct),
            };
            out.insert(g, self.judge(&values));
        }
        out
    }

    /// The state of the time-aggregated values of one group's window (without the recovery thresholds,
    /// which depend on the state before: see [`Rule::next_state`]).
    fn judge(&self, per_time: &[f64]) -> (State, Option<f64>) {
        if per_time.is_empty() {
            return (State::NoData, None);
        }
        let how = match &self.change {
            Some(c) => c.aggr.as_str(),
            // A percentile over the window: the largest of the recorded ones (an upper bound).
            None if self.time_aggr == "percentile" => "max",
            None => self.time_aggr.as_str(),
        };
        let v = aggregate(how, per_time);
        (self.raw_state(v), Some(v))
    }

    fn raw_state(&self, v: f64) -> State {
        if self.op.breaches(v, self.critical) {
            State::Alert
        } else if self.warning.is_some_and(|w| self.op.breaches(v, w)) {
            State::Warn
        } else {
            State::Ok
        }
    }

    /// Whether `v` passes a recovery threshold: strictly beyond it on the side away from the alert, or on
    /// it when the alert condition is strict (`>` recovers at `<=`, `>=` at `<`, `<` at `>=`, `<=` at `>`).
    fn recovers(&self, v: f64, threshold: f64) -> bool {
        match self.op {
            Op::Gt => v <= threshold,
            Op::Ge => v < threshold,
            Op::Lt => v >= threshold,
            Op::Le => v > threshold,
            Op::Eq | Op::Ne => !self.op.breaches(v, threshold),
        }
    }

    /// The state a group moves to from `before` given its evaluated `state` and `value`: a group in ALERT
    /// stays there until the value passes `critical_recovery`, one in WARN until it passes
    /// `warning_recovery` (without them it recovers as soon as the threshold is no longer crossed).
    pub fn next_state(&self, before: Option<State>, state: State, value: Option<f64>) -> State {
        let Some(v) = value else { return state };
        match before {
            Some(State::Alert) if state != State::Alert => match self.critical_recovery {
                Some(r) if !self.recovers(v, r) => State::Alert,
                _ if state == State::Ok => self.after_warning(v),
                _ => state,
            },
            Some(State::Warn) if state == State::Ok => self.after_warning(v),
            _ => state,
        }
    }

    /// WARN while the value has not passed `warning_recovery` (and still crosses nothing), else OK.
    fn after_warning(&self, v: f64) -> State {
        match (self.warning, self.warning_recovery) {
            (Some(_), Some(r)) if !self.recovers(v, r) => State::Warn,
            _ => State::Ok,
        }
    }
}

/// The smallest gap between consecutive times.
fn smallest_gap(points: &[(i64, f64)]) -> Option<i64> {
    points.windows(2).map(|w| w[1].0 - w[0].0).min()
}

/// For each point of the window, its change from the value `shift` earlier (the newest point at or before
/// that time, within one step of it): the difference, or the change in percent of the earlier value. Points
/// without an earlier value (or, in percent, an earlier 0) are left out.
fn shifted_changes(all: &[(i64, f64)], window: &[(i64, f64)], shift: i64, pct: bool) -> Vec<f64> {
    let step = smallest_gap(all).unwrap_or(1).max(1);
    window
        .iter()
        .filter_map(|&(t, v)| {
            let at = t - shift;
            let i = all.partition_point(|p| p.0 <= at);
            let &(pt, past) = all[..i].last()?;
            if at - pt >= step {
                return None;
            }
            if pct {
                (past != 0.0).then(|| (v - past) / past.abs() * 100.0)
            } else {
                Some(v - past)
            }
        })
        .collect()
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
