//! Gauges and counters sent with a timestamp (`|T`): not aggregated. Each value is flushed once as its own
//! point with that timestamp, as the Agent's no-aggregation pipeline does: a gauge as a gauge, a counter as
//! a rate of `raw value / interval` with the interval set (no sample rate applied), which Datadog turns back
//! into the raw count. Such a line makes no context; its points wait for the next flush, at most this
//! aggregator's share of [`PASSTHROUGH_LIMIT`](super::PASSTHROUGH_LIMIT) (more are counted as
//! `timestamped_limit` drops).

use super::key::{recycle, sort_tags, LineTags};
use super::{Aggregator, State};
use crate::model::{FlushSink, IStr, MetricKind, MetricLine, Series, SeriesKind, TagSet};
use crate::telemetry::DropReason;

impl Aggregator {
    /// Queues the values of a gauge or counter with timestamp `ts` as points for the next flush.
    pub(super) fn insert_timestamped(
        &mut self,
        line: &MetricLine<'_>,
        ts: i64,
        origin_tags: &[IStr],
    ) {
        let Ok(mapped) = self.map_line(line) else {
            return;
        };
        let scratch = std::mem::take(&mut self.scratch);
        let LineTags {
            name,
            host,
            mut tags,
        } = LineTags::new(
            &self.cfg.extra_tags,
            line,
            mapped.as_deref(),
            origin_tags,
            scratch,
        );
        sort_tags(&mut tags);
        let interval = self.cfg.interval_secs;
        let (st, tel) = (&mut self.st, &*self.telemetry);
        // As the agent's no-aggregation pipeline: a counter becomes a rate (raw value / interval, sample
        // rate not applied) with the interval set, a gauge stays a gauge.
        let (kind, div, series_interval) = if line.kind == MetricKind::Counter {
            (SeriesKind::Rate, interval as f64, interval)
        } else {
            (SeriesKind::Gauge, 1.0, 0)
        };
        let mut shared: Option<(IStr, TagSet, IStr)> = None;
        for &v in line.numbers() {
            if st.passthrough.len() >= self.passthrough_limit {
                tel.count_drop(DropReason::TimestampedLimit, 1);
                continue;
            }
            let (n, t, h) = shared.get_or_insert_with(|| {
                (
                    st.interner.intern(name),
                    TagSet::new(tags.iter().copied()),
                    st.interner.intern(host),
                )
            });
            st.passthrough.push(Series {
                name: n.clone(),
                tags: t.clone(),
                host: h.clone(),
                kind,
                interval: series_interval,
                points: vec![(ts, v / div)],
            });
        }
        self.scratch = recycle(tags);
    }
}

/// Hands every queued timestamped point to `sink` and forgets them; true when there were any (their strings
/// are still held by the sink's batch, so the interner collects them at the next flush).
pub(super) fn flush_points(st: &mut State, sink: &mut dyn FlushSink) -> bool {
    let points = std::mem::take(&mut st.passthrough);
    for s in &points {
        sink.series(s.as_ref());
    }
    !points.is_empty()
}
