//! The flush: closes every bucket that ended, hands one series per context and output to a [`FlushSink`]
//! (streaming, a slice of contexts at a time so the workers can insert in between), counts idle counters
//! as 0 until they expire, and forgets idle contexts.

use super::interner::Interner;
use super::passthrough;
use super::value::{HistSpec, Value};
use super::{Aggregator, Context};
use crate::model::{FlushBatch, FlushSink, IStr, SeriesKind, SeriesRef, SketchPoint, SketchRef};

/// Point buffers one context's flush fills, kept between contexts and flushes so a flush allocates nothing
/// per series.
#[derive(Debug, Default)]
pub(super) struct EmitBufs {
    rates: Vec<(i64, f64)>,
    gauges: Vec<(i64, f64)>,
    hists: Vec<Vec<(i64, f64)>>,
    hist_kinds: Vec<SeriesKind>,
    sketches: Vec<SketchPoint>,
}

impl Aggregator {
    /// Closes and returns every bucket that ended at or before `now` (all buckets when `force`, for
    /// shutdown). Forgets idle contexts and expired counters.
    pub fn flush(&mut self, now: i64, force: bool) -> FlushBatch {
        let mut batch = FlushBatch::default();
        self.flush_into(now, force, &mut batch);
        batch
    }

    /// Like [`Aggregator::flush`], handing each series to `sink` as it is made instead of collecting them.
    pub fn flush_into(&mut self, now: i64, force: bool, sink: &mut dyn FlushSink) {
        let mut f = self.begin_flush(now, force, sink);
        while !self.flush_step(&mut f, sink, usize::MAX) {}
        self.end_flush(f);
    }

    /// Starts a flush that [`Aggregator::flush_step`] carries out a slice of contexts at a time and
    /// [`Aggregator::end_flush`] finishes, so the caller can let samples in between (the listeners wait
    /// for the aggregator while it flushes). Samples inserted meanwhile go to the open bucket; a closed
    /// value they push aside is still flushed by this flush.
    pub fn begin_flush(&mut self, now: i64, force: bool, sink: &mut dyn FlushSink) -> FlushState {
        let interval = self.cfg.interval_secs;
        let cutoff = now.div_euclid(interval) * interval + if force { interval } else { 0 };
        let closed = |b: i64| force || b.saturating_add(interval) <= cutoff;
        let st = &mut self.st;

        let had_passthrough = passthrough::flush_points(st, sink);

        // Backlogged values that are now closed, grouped by context.
        let mut backlog = std::mem::take(&mut st.backlog);
        let (mut done, keep): (Vec<_>, Vec<_>) = backlog.drain(..).partition(|e| closed(e.1));
        st.backlog = keep;
        done.sort_by_key(|e| (e.0, e.1));

        // Buckets this flush closes, for the counters' zero points.
        let mut buckets: Vec<i64> = Vec::new();
        let mut note = |b: i64| {
            if !buckets.contains(&b) {
                buckets.push(b);
            }
        };
        for e in &done {
            note(e.1);
        }
        for c in st.slots.iter().flatten() {
            if c.has_value && closed(c.bucket) && !c.is_distribution() {
                note(c.bucket);
            }
        }
        if buckets.is_empty() && st.last_cutoff.saturating_add(interval) <= cutoff {
            buckets.push(cutoff - interval);
        }
        FlushState {
            cutoff,
            force,
            done,
            di: 0,
            backlog_seen: st.backlog.len(),
            buckets,
            next: 0,
            removed: 0,
            had_passthrough,
            vals: Vec::new(),
        }
    }

    /// Flushes up to `max` more contexts; true when every context has been seen.
    pub fn flush_step(&mut self, f: &mut FlushState, sink: &mut dyn FlushSink, max: usize) -> bool {
        let interval = self.cfg.interval_secs;
        let expiry = self.cfg.expiry_secs;
        let (cutoff, force) = (f.cutoff, f.force);
        let closed = |b: i64| force || b.saturating_add(interval) <= cutoff;
        let st = &mut self.st;
        let spec = &self.hist;

        // Closed values that samples inserted since the last step pushed aside, for contexts still ahead.
        if st.backlog.len() > f.backlog_seen {
            let added = st.backlog.split_off(f.backlog_seen);
            let before = f.done.len();
            for e in added {
                if closed(e.1) && e.0 as usize >= f.next {
                    f.done.push(e);
                } else {
                    st.backlog.push(e);
                }
            }
            if f.done.len() > before {
                f.done[f.di..].sort_by_key(|e| (e.0, e.1));
            }
        }

        let end = f.next.saturating_add(max).min(st.slots.len());
        let (done, vals) = (&mut f.done, &mut f.vals);
        for idx in f.next..end {
            let Some(ctx) = st.slots[idx].as_mut() else {
                continue;
            };
            vals.clear();
            while f.di < done.len() && (done[f.di].0 as usize) < idx {
                f.di += 1;
            }
            while f.di < done.len() && done[f.di].0 as usize == idx {
                let (_, b, v) = std::mem::replace(&mut done[f.di], (0, 0, Value::Counter(0.0)));
                vals.push((b, v));
                f.di += 1;
            }
            let current = ctx.has_value && closed(ctx.bucket);
            let counter = matches!(ctx.value, Value::Counter(_));
            if vals.is_empty() && !current && !counter {
                // Idle (nothing closed in this flush).
            } else {
                emit(
                    ctx,
                    vals,
                    current,
                    &f.buckets,
                    interval,
                    expiry,
                    spec,
                    &mut st.interner,
                    &mut st.name_buf,
                    &mut st.hist_out,
                    &mut st.emit,
                    sink,
                );
                if current {
                    ctx.value.reset();
                    ctx.has_value = false;
                }
            }
            // Forget contexts: counters once expired, others after a whole bucket without a sample.
            let forget = !ctx.has_value
                && if counter {
                    ctx.last_seen.saturating_add(expiry) <= cutoff - interval
                } else {
                    ctx.last_seen < cutoff - interval
                }
                && !st.backlog.iter().any(|e| e.0 as usize == idx);
            if forget {
                let hash = ctx.hash;
                let alias = ctx.alias.0;
                let slots = &st.slots;
                st.table.remove(hash, idx as u32, |j| {
                    slots[j as usize].as_ref().map_or(0, |c| c.hash)
                });
                if alias != 0 {
                    st.aliases.remove(alias, idx as u32, |j| {
                        slots[j as usize].as_ref().map_or(0, |c| c.alias.0)
                    });
                }
                st.slots[idx] = None;
                st.free.push(idx as u32);
                st.live -= 1;
                f.removed += 1;
            }
        }
        f.next = end;
        f.backlog_seen = st.backlog.len();
        end >= st.slots.len()
    }

    /// Finishes a flush begun with [`Aggregator::begin_flush`] (after `flush_step` returned true).
    pub fn end_flush(&mut self, f: FlushState) {
        let st = &mut self.st;
        // Trailing empty slots can go.
        while matches!(st.slots.last(), Some(None)) {
            st.slots.pop();
        }
        if !st.free.is_empty() {
            let len = st.slots.len() as u32;
            st.free.retain(|&i| i < len);
        }
        if st.slots.capacity() > 1024 && st.slots.len() < st.slots.capacity() / 4 {
            st.slots.shrink_to(st.slots.len() * 2);
            st.free.shrink_to(st.free.len() * 2);
        }
        // Strings of timestamped points are still held by this batch: free them at the next flush.
        if f.removed > 0 || st.gc_next {
            st.interner.gc();
        }
        st.gc_next = f.had_passthrough;
        st.last_cutoff = f.cutoff;
        self.telemetry.dogstatsd.contexts.add(-(f.removed as i64));
    }
}

/// A flush in progress (see [`Aggregator::begin_flush`]).
#[derive(Debug)]
pub struct FlushState {
    cutoff: i64,
    force: bool,
    /// Closed backlogged values, sorted by context, consumed from `di`.
    done: Vec<(u32, i64, Value)>,
    di: usize,
    /// Backlog entries already looked at.
    backlog_seen: usize,
    buckets: Vec<i64>,
    /// Next context slot to flush.
    next: usize,
    removed: usize,
    had_passthrough: bool,
    vals: Vec<(i64, Value)>,
}

/// Appends a context's closed buckets (`vals`, plus its current value when `current`) to `batch`: one
/// series per output name and type, with a point per bucket (the agent's `dedupSerieBySerieSignature`).
/// A backlogged bucket may hold another type than the current one; each is flushed as its own type.
// One pass over the context's closed buckets fills a point buffer per output, then one series goes out per
// output: kept whole so the buffers are filled and drained in one place (~110 lines).
#[allow(clippy::too_many_arguments)]
fn emit(
    ctx: &mut Context,
    vals: &mut [(i64, Value)],
    current: bool,
    buckets: &[i64],
    interval: i64,
    expiry: i64,
    spec: &HistSpec,
    interner: &mut Interner,
    name_buf: &mut String,
    hist_out: &mut Vec<(f64, SeriesKind)>,
    bufs: &mut EmitBufs,
    sink: &mut dyn FlushSink,
) {
    let EmitBufs {
        rates,
        gauges,
        hists,
        hist_kinds,
        sketches,
    } = bufs;
    rates.clear();
    gauges.clear();
    sketches.clear();
    let n_out = spec.suffixes.len();
    let mut hist_names: Option<Box<[IStr]>> = None;
    let cur_bucket = ctx.bucket;
    let cur = current.then_some((cur_bucket, &mut ctx.value));
    let entries = vals.iter_mut().map(|(b, v)| (*b, v)).chain(cur);
    for (b, value) in entries {
        match value {
            Value::Counter(sum) => rates.push((b, *sum / interval as f64)),
            Value::Gauge(g) => gauges.push((b, *g)),
            Value::Set(s) => gauges.push((b, s.len() as f64)),
            Value::Distribution(s) => {
                if !s.is_empty() {
                    sketches.push(s.to_point(b));
                }
            }
            Value::Histogram(_) | Value::ClosedHistogram(_) => {
                // A closed histogram's outputs were computed when it was set aside; an open one's now.
                let (names, outputs): (&mut Box<[IStr]>, &[(f64, SeriesKind)]) = match value {
                    Value::Histogram(h) if !h.is_empty() => {
                        h.compute(spec, interval, hist_out);
                        (&mut h.names, &hist_out[..])
                    }
                    Value::ClosedHistogram(c) => (&mut c.names, &c.out),
                    _ => continue,
                };
                if outputs.len() != n_out {
                    continue;
                }
                if names.len() != n_out {
                    *names = spec
                        .suffixes
                        .iter()
                        .map(|s| {
                            name_buf.clear();
                            name_buf.push_str(&ctx.name);
                            name_buf.push_str(s);
                            interner.intern(name_buf)
                        })
                        .collect();
                }
                if hist_names.is_none() {
                    hist_names = Some(names.clone());
                    hists.resize_with(n_out, Vec::new);
                    hists.iter_mut().for_each(Vec::clear);
                    hist_kinds.clear();
                    hist_kinds.resize(n_out, SeriesKind::Gauge);
                }
                for (i, &(v, k)) in outputs.iter().enumerate() {
                    hists[i].push((b, v));
                    hist_kinds[i] = k;
                }
            }
        }
    }
    // Counters: a 0 for each closed bucket without a sample, until expiry.
    if matches!(ctx.value, Value::Counter(_)) {
        for &b in buckets {
            if ctx.last_seen.saturating_add(expiry) > b && !rates.iter().any(|p| p.0 == b) {
                rates.push((b, 0.0));
            }
        }
    }
    let mut push = |name: &IStr, kind: SeriesKind, points: &mut Vec<(i64, f64)>| {
        if points.is_empty() {
            return;
        }
        points.sort_by_key(|p| p.0);
        sink.series(SeriesRef {
            name,
            tags: &ctx.tags,
            host: &ctx.host,
            kind,
            interval: if kind == SeriesKind::Gauge {
                0
            } else {
                interval
            },
            points,
        });
    };
    push(&ctx.name, SeriesKind::Rate, rates);
    push(&ctx.name, SeriesKind::Gauge, gauges);
    if let Some(names) = hist_names {
        for ((name, &kind), points) in names.iter().zip(hist_kinds.iter()).zip(hists.iter_mut()) {
            push(name, kind, points);
        }
    }
    if !sketches.is_empty() {
        sketches.sort_by_key(|p| p.ts);
        sink.sketch(SketchRef {
            name: &ctx.name,
            tags: &ctx.tags,
            host: &ctx.host,
            interval,
            points: sketches,
        });
    }
}
