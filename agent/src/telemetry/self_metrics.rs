//! The agent's own metrics, sent with every flush: `datadog.agent.running`, the `kelpie.*` metrics of
//! [`STATS`] and of every drop reason (counters as the change since the previous flush), and the agent's RSS.

use super::stats::{Kind, STATS};
use super::{DropSection, Telemetry};
use crate::model::{IStr, Series, SeriesKind};
use std::collections::HashMap;

/// Remembers each counter's total at the previous flush, to send the change.
#[derive(Default)]
pub struct SelfMetrics {
    /// By metric name and its one tag (the reason, for drops).
    last: HashMap<(&'static str, &'static str), u64>,
}

impl SelfMetrics {
    /// The series of this flush at `now`; counters cover `interval` seconds.
    pub fn series(&mut self, t: &Telemetry, now: i64, interval: i64) -> Vec<Series> {
        let series = |name: &str, tags: &[&str], kind, interval, v: f64| Series {
            name: IStr::from(name),
            tags: tags
                .iter()
                .map(|t| IStr::from(*t))
                .collect::<Vec<_>>()
                .into(),
            host: IStr::from(""),
            kind,
            interval,
            points: vec![(now, v)],
        };
        let mut delta = |name: &'static str, tag: &'static str, total: u64| {
            let prev = self.last.insert((name, tag), total).unwrap_or(0);
            total.saturating_sub(prev) as f64
        };
        let mut out = vec![series(
            "datadog.agent.running",
            &["version:kelpie"],
            SeriesKind::Gauge,
            0,
            1.0,
        )];
        for s in STATS {
            let Some(m) = s.metric else { continue };
            let v = (s.read)(t);
            out.push(match s.kind {
                Kind::Counter => {
                    let tag = m.tags.first().copied().unwrap_or("");
                    let d = delta(m.name, tag, v.max(0) as u64);
                    series(m.name, m.tags, SeriesKind::Count, interval, d * m.scale)
                }
                Kind::Gauge => series(m.name, m.tags, SeriesKind::Gauge, 0, v as f64 * m.scale),
            });
        }
        for section in DropSection::ALL {
            for (key, n) in t.dropped(section).shown(section) {
                let d = delta(section.metric(), key, n);
                let tag = format!("reason:{key}");
                out.push(series(
                    section.metric(),
                    &[&tag],
                    SeriesKind::Count,
                    interval,
                    d,
                ));
            }
        }
        out.push(series(
            "kelpie.memory.rss",
            &[],
            SeriesKind::Gauge,
            0,
            self_rss_bytes() as f64,
        ));
        out
    }
}

/// The agent's own RSS in bytes, from /proc/self/statm.
pub fn self_rss_bytes() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(4096) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::DropReason;

    #[test]
    fn every_drop_reason_is_sent_as_its_sections_dropped_metric() {
        let telemetry = Telemetry::default();
        for (i, &r) in DropReason::ALL.iter().enumerate() {
            telemetry.count_drop(r, 1000 + i as u64);
        }
        let mut m = SelfMetrics::default();
        let series = m.series(&telemetry, 100, 10);
        for (i, &r) in DropReason::ALL.iter().enumerate() {
            let tag = format!("reason:{}", r.key());
            let found = series
                .iter()
                .find(|s| &*s.name == r.section().metric() && s.tags.iter().any(|t| t == tag));
            let found = found.unwrap_or_else(|| panic!("no {}{{{tag}}}", r.section().metric()));
            assert_eq!(found.points, [(100, 1000.0 + i as f64)], "{r}");
        }
        // The next flush sends the change: none.
        let series = m.series(&telemetry, 110, 10);
        let kernel = series
            .iter()
            .find(|s| s.tags.iter().any(|t| t == "reason:kernel"))
            .unwrap();
        assert_eq!(kernel.points, [(110, 0.0)]);
    }

    #[test]
    fn every_stat_with_a_metric_is_sent_once() {
        let telemetry = Telemetry::default();
        telemetry.dogstatsd.packets_uds_dgram.add(7);
        telemetry.flush.last_duration_us.set(1_500_000);
        let series = SelfMetrics::default().series(&telemetry, 100, 10);
        for s in STATS {
            let Some(m) = s.metric else { continue };
            let n = series
                .iter()
                .filter(|x| &*x.name == m.name && x.tags.iter().eq(m.tags.iter().copied()))
                .count();
            assert_eq!(n, 1, "{} {:?}", m.name, m.tags);
        }
        let get = |name: &str, tag: &str| {
            series
                .iter()
                .find(|x| &*x.name == name && (tag.is_empty() || x.tags.iter().any(|t| t == tag)))
                .map(|x| x.points[0].1)
        };
        assert_eq!(
            get("kelpie.dogstatsd.packets", "transport:uds_dgram"),
            Some(7.0)
        );
        assert_eq!(get("kelpie.flush.duration", ""), Some(1.5));
        assert_eq!(get("datadog.agent.running", ""), Some(1.0));
    }
}
