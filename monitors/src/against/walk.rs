//! The walk over the recorded hour: at each step (every recorded point time, and every flush interval in
//! between so that a group that stops reporting is seen), the monitor's window ending there is evaluated with
//! [`Rule::evaluate`], and every change of a group's state is kept.

use crate::alerting::{GroupStates, Points, Rule, State};
use std::collections::{BTreeMap, BTreeSet};

/// How far back the walk goes from its end: the agent keeps an hour.
pub const HOUR_SECS: i64 = 3600;

/// Most steps of one walk (one per second over an hour, and the recorded times).
const MAX_STEPS: usize = 8000;

/// One group's change of state.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub time: i64,
    pub group: String,
    /// The state before (None for the group's first evaluation).
    pub from: Option<State>,
    pub to: State,
    pub value: Option<f64>,
}

/// What a walk found.
#[derive(Debug, Clone, PartialEq)]
pub struct Walk {
    pub from: i64,
    pub to: i64,
    pub steps: usize,
    pub changes: Vec<Change>,
    /// Each group's state at the end.
    pub last: BTreeMap<String, State>,
}

/// The times to evaluate at, within `(end - HOUR_SECS, end]`: each recorded time, and a grid at the smallest
/// gap between recorded times (the flush interval) from the first one to `end`.
fn steps(series: &[Points], end: i64) -> Vec<i64> {
    let start = end - HOUR_SECS;
    let times: BTreeSet<i64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .filter(|t| *t > start && *t <= end)
        .collect();
    let Some(&first) = times.iter().next() else {
        return Vec::new();
    };
    let gap = times
        .iter()
        .zip(times.iter().skip(1))
        .map(|(a, b)| b - a)
        .min()
        .unwrap_or(1)
        .max(1)
        .max(HOUR_SECS / MAX_STEPS as i64);
    let mut all = times.clone();
    let mut t = first;
    while t <= end && all.len() < MAX_STEPS {
        all.insert(t);
        t += gap;
    }
    all.insert(end);
    all.into_iter().collect()
}

/// Walks the hour ending at `end` (the newest recorded point when None). `no_data_counts`: whether a group
/// with no point in its window changes state (the monitor notifies on no data); otherwise it keeps its last
/// state, as Datadog does. None when nothing was recorded in that hour.
pub fn walk(
    rule: &Rule,
    series: &[Points],
    end: Option<i64>,
    no_data_counts: bool,
) -> Option<Walk> {
    let newest = series
        .iter()
        .filter_map(|s| s.points.last())
        .map(|p| p.0)
        .max()?;
    let end = end.unwrap_or(newest);
    let times = steps(series, end);
    let mut last: BTreeMap<String, State> = BTreeMap::new();
    let mut changes = Vec::new();
    for &t in &times {
        let states: GroupStates = rule.evaluate(series, t, 60);
        for (group, (state, value)) in states {
            let before = last.get(&group).copied();
            if state == State::NoData && !no_data_counts {
                continue;
            }
            let state = rule.next_state(before, state, value);
            if before == Some(state) {
                continue;
            }
            last.insert(group.clone(), state);
            changes.push(Change {
                time: t,
                group,
                from: before,
                to: state,
                value,
            });
        }
    }
    Some(Walk {
        from: *times.first()?,
        to: end,
        steps: times.len(),
        changes,
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::against::record::{parse_answers, points_for};
    use crate::model::Monitor;

    fn rule(query: &str, warning: Option<f64>) -> Rule {
        let mut m = Monitor {
            mtype: "metric alert".into(),
            query: query.into(),
            ..Default::default()
        };
        if let Some(w) = warning {
            m.options
                .insert("thresholds".into(), serde_json::json!({ "warning": w }));
        }
        Rule::of(&m).unwrap()
    }

    /// A gauge recorded every 10 s from 1000 s: 10 for a minute, 100 for 30 s, 40 for 30 s, then 10.
    fn recorded() -> String {
        let mut pts = Vec::new();
        for i in 0..24 {
            let t = 1000 + i * 10;
            let v = match t {
                ..1060 => 10,
                1060..1090 => 100,
                1090..1120 => 40,
                _ => 10,
            };
            pts.push(format!("[{t},{v}]"));
        }
        format!(
            r#"{{"metric":"app.temp","series":[{{"host":"h1","kind":"gauge","metric":"app.temp","points":[{}],"tags":["room:a"]}}]}}"#,
            pts.join(",")
        )
    }

    #[test]
    fn a_gauge_over_the_threshold_alerts_warns_and_recovers_at_the_recorded_times() {
        let entries = parse_answers(&recorded()).unwrap();
        let r = rule("max(last_1m):avg:app.temp{room:a} > 50", Some(30.0));
        let pts = points_for(&r, &entries).unwrap();
        let w = walk(&r, &pts, None, false).unwrap();
        let seen: Vec<(i64, Option<State>, State)> =
            w.changes.iter().map(|c| (c.time, c.from, c.to)).collect();
        // The last 100 (at 1080) leaves the 1-minute window at 1140, the last 40 (1110) at 1170.
        assert_eq!(
            seen,
            vec![
                (1000, None, State::Ok),
                (1060, Some(State::Ok), State::Alert),
                (1140, Some(State::Alert), State::Warn),
                (1170, Some(State::Warn), State::Ok),
            ]
        );
        assert_eq!(w.changes[1].value, Some(100.0));
        assert_eq!(w.last.get("*"), Some(&State::Ok));
        assert_eq!((w.from, w.to), (1000, 1230));
    }

    #[test]
    fn groups_and_no_data() {
        let entries = parse_answers(&recorded()).unwrap();
        let r = rule("avg(last_1m):avg:app.temp{*} by {host} > 50", None);
        let pts = points_for(&r, &entries).unwrap();
        // Walked to 2 minutes after the last point: with no-data notifications the group goes silent.
        let w = walk(&r, &pts, Some(1350), true).unwrap();
        let last = w.changes.last().unwrap();
        assert_eq!(
            (last.time, last.group.as_str(), last.to),
            (1290, "host:h1", State::NoData)
        );
        // The window ending at 1080 holds 10, 10, 10, 100, 100, 100: average 55, the first alert.
        assert!(w
            .changes
            .iter()
            .any(|c| c.to == State::Alert && c.time == 1080));
        let w = walk(&r, &pts, Some(1350), false).unwrap();
        assert_eq!(w.last.get("host:h1"), Some(&State::Ok));
        assert!(walk(&r, &[], None, false).is_none());
    }

    #[test]
    fn require_full_window_waits_until_the_points_cover_the_window() {
        let entries = parse_answers(&recorded()).unwrap();
        let mut m = Monitor {
            mtype: "metric alert".into(),
            query: "avg(last_2m):avg:app.temp{*} > 30".into(),
            ..Default::default()
        };
        let r = Rule::of(&m).unwrap();
        let pts = points_for(&r, &entries).unwrap();
        // Without it the first window (1000 alone) is evaluated at once; at 1070 the average of six 10s
        // and two 100s is 32.5.
        let w = walk(&r, &pts, None, false).unwrap();
        assert_eq!(w.changes[0].time, 1000);
        assert_eq!((w.changes[1].time, w.changes[1].to), (1070, State::Alert));
        m.options
            .insert("require_full_window".into(), serde_json::json!(true));
        let r = Rule::of(&m).unwrap();
        // With it nothing is evaluated before 1110, the first window, (990, 1110], whose start the points
        // cover (within one 10-second step); it holds 10 ×6, 100 ×3, 40 ×3: average 40.
        let w = walk(&r, &pts, None, false).unwrap();
        assert_eq!(
            (w.changes[0].time, w.changes[0].from, w.changes[0].to),
            (1110, None, State::Alert)
        );
        assert_eq!(w.changes[0].value, Some(40.0));
    }
}
