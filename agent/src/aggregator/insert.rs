//! The insert paths: the fast path that finds a context by the hash of its line's text, in groups of
//! [`GROUP`] lines whose memory reads overlap; the exact path that makes the context key from the tags (and
//! the context, when it is new); and applying a line's values to its context's open bucket.

use super::key::{alias_hash, key_hash, name_hash, origin_hash, recycle, sort_tags, LineTags};
use super::value::{apply, SetState, Value};
use super::{Aggregator, Context, GROUP, HOT_BYTES, SET_MEMBER_LIMIT};
use crate::mapper::MapResult;
use crate::model::{IStr, MetricKind, MetricLine, Numbers, TagSet};
use crate::prefetch::prefetch_span;
use crate::telemetry::DropReason;
use std::hash::BuildHasher;
use std::sync::Arc;

/// A line of the group [`Aggregator::insert_group`] is inserting.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pending {
    /// Index in the group.
    line: usize,
    /// Hash of the line's text.
    alias: (u64, u64),
    /// The context whose alias has the same fingerprint, if any; after the third pass, only a context whose
    /// alias is the line's.
    slot: Option<u32>,
}

/// A line's exact context key (see [`Aggregator::exact_key`]).
#[derive(Debug)]
struct ExactKey {
    hash: u64,
    hash2: u64,
    mapped: Option<Arc<MapResult>>,
}

/// A line whose name is on the blocklist (see [`Aggregator::map_line`]).
#[derive(Debug)]
pub(super) struct Blocked;

impl Aggregator {
    /// Inserts one parsed line received at `now` (unix seconds). `origin_tags` are extra tags from origin
    /// detection (may be empty). Never allocates for an existing context (steady state).
    pub fn insert(&mut self, line: &MetricLine<'_>, origin_tags: &[IStr], now: i64) {
        self.insert_group(std::slice::from_ref(line), origin_tags, now);
    }

    /// Inserts lines that share their origin tags (e.g. one datagram's), with the same result as inserting
    /// them one by one.
    ///
    /// Fast path: a client sends a context's line with the same bytes every time, so a line's text (name,
    /// raw tag field, whether it is a distribution, and a hash of the origin tags) is hashed (xxh3-128) and
    /// looked up among the texts contexts were last seen with; on a match the value is applied without
    /// splitting, classifying or hashing the tags. Lines are taken [`GROUP`] at a time in three passes (hash
    /// and prefetch the probe, find and prefetch the context, apply) so the cache misses of a group overlap.
    /// Anything else (a new context, a context sent with its tags in another order) takes the exact path: the
    /// context key is made from the tags and the line's text is recorded for next time. Timestamped gauges
    /// and counters make no context: they go to [`Aggregator::insert_timestamped`] (passthrough.rs).
    pub fn insert_group(&mut self, lines: &[MetricLine<'_>], origin_tags: &[IStr], now: i64) {
        let mut hashes = std::mem::take(&mut self.name_hashes);
        hashes.clear();
        hashes.extend(lines.iter().map(|l| name_hash(l.name)));
        self.insert_hashed(lines, &hashes, origin_tags, now);
        self.name_hashes = hashes;
    }

    /// [`Aggregator::insert_group`] of lines whose names' [`name_hash`]es are `name_hashes` (the workers
    /// made them to pick the shard).
    pub fn insert_hashed(
        &mut self,
        lines: &[MetricLine<'_>],
        name_hashes: &[u64],
        origin_tags: &[IStr],
        now: i64,
    ) {
        debug_assert_eq!(lines.len(), name_hashes.len());
        let origin = origin_hash(origin_tags);
        // One division for the whole group: every line is received at `now`.
        let interval = self.cfg.interval_secs;
        let bucket = now.div_euclid(interval) * interval;
        let mut pending = std::mem::take(&mut self.pending);
        for (chunk, hashes) in lines.chunks(GROUP).zip(name_hashes.chunks(GROUP)) {
            pending.clear();
            for (i, (line, &nh)) in chunk.iter().zip(hashes).enumerate() {
                if let (Some(ts), MetricKind::Counter | MetricKind::Gauge) =
                    (line.timestamp, line.kind)
                {
                    // No context: its own point at the next flush (see passthrough.rs).
                    self.insert_timestamped(line, ts, origin_tags);
                    continue;
                }
                let alias = alias_hash(line, nh, origin);
                self.st.aliases.prefetch(alias.0);
                pending.push(Pending {
                    line: i,
                    alias,
                    slot: None,
                });
            }
            for p in pending.iter_mut() {
                p.slot = self.st.aliases.find(p.alias.0, |_| true);
                if let Some(idx) = p.slot {
                    // The fields a sample reads span two cache lines of a context (see `Context`).
                    let ctx: *const Option<Context> = &self.st.slots[idx as usize];
                    prefetch_span(ctx.cast(), HOT_BYTES);
                }
            }
            // A found context whose alias matches is the line's; its value's boxed state (a set's members, a
            // histogram's samples, a sketch's bins) is one or two more reads away: asked for here, in two
            // passes, so that those misses overlap too.
            for p in pending.iter_mut() {
                let found = p.slot.and_then(|idx| self.st.slots[idx as usize].as_ref());
                match found.filter(|c| c.alias == p.alias) {
                    Some(c) => c.value.prefetch(),
                    None => p.slot = None,
                }
            }
            for p in pending.iter() {
                if let Some(c) = p.slot.and_then(|idx| self.st.slots[idx as usize].as_ref()) {
                    c.value.prefetch_inner();
                }
            }
            for p in pending.iter() {
                let line = &chunk[p.line];
                match p.slot {
                    Some(idx) => self.apply_line(idx, line, now, bucket),
                    None => self.insert_exact(line, origin_tags, now, bucket, p.alias),
                }
            }
        }
        self.pending = pending;
    }

    /// The exact path: finds or makes the line's context from its key, records `alias` (the line's text
    /// hash) on it, and applies the line.
    fn insert_exact(
        &mut self,
        line: &MetricLine<'_>,
        origin_tags: &[IStr],
        now: i64,
        bucket: i64,
        alias: (u64, u64),
    ) {
        let Some(p) = self.exact_key(line, origin_tags) else {
            return;
        };
        let slots = &self.st.slots;
        let found = self.st.table.find(p.hash, |j| {
            slots[j as usize]
                .as_ref()
                .is_some_and(|c| c.hash == p.hash && c.hash2 == p.hash2)
        });
        let Some(idx) = found.or_else(|| self.create(line, &p, origin_tags, now)) else {
            return;
        };
        let st = &mut self.st;
        if let Some(ctx) = st.slots[idx as usize].as_mut() {
            if ctx.alias != alias {
                let old = std::mem::replace(&mut ctx.alias, alias);
                let slots = &st.slots;
                let alias_of = |j: u32| slots[j as usize].as_ref().map_or(0, |c| c.alias.0);
                if old != (0, 0) {
                    st.aliases.remove(old.0, idx, alias_of);
                }
                st.aliases.insert(alias.0, idx, alias_of);
            }
        }
        self.apply_line(idx, line, now, bucket);
    }

    /// The mapper's result for a line (None: no profile matched it), or `Err(Blocked)` when its name, after
    /// mapping, is on the blocklist (counted). Blocked lines make no context, so each comes here: the name is
    /// checked before any tag work.
    pub(super) fn map_line(
        &self,
        line: &MetricLine<'_>,
    ) -> Result<Option<Arc<MapResult>>, Blocked> {
        let mapped: Option<Arc<MapResult>> = match &self.cfg.mapper {
            Some(m) => m.map_shared(line.name),
            None => None,
        };
        let name: &str = mapped.as_deref().map_or(line.name, |r| r.name.as_str());
        if self.cfg.blocklist.blocks(name) {
            self.telemetry.count_drop(DropReason::MetricBlocklist, 1);
            return Err(Blocked);
        }
        Ok(mapped)
    }

    /// Hashes a line's exact context key; None for a blocklisted line (counted).
    fn exact_key(&mut self, line: &MetricLine<'_>, origin_tags: &[IStr]) -> Option<ExactKey> {
        let mapped = self.map_line(line).ok()?;
        let scratch = std::mem::take(&mut self.scratch);
        let lt = LineTags::new(
            &self.cfg.extra_tags,
            line,
            mapped.as_deref(),
            origin_tags,
            scratch,
        );
        let kind = line.kind;
        // The key is hashed from the tags' hashes, sorted and de-duplicated, so the tag strings are neither
        // sorted nor compared for a context that exists: a tag set is identified by its tags' 64-bit hashes,
        // as the Datadog Agent's context keys are, and the context by a 128-bit hash of those.
        let hashes = &mut self.tag_hashes;
        hashes.clear();
        hashes.extend(lt.tags.iter().map(|t| self.hasher.hash_one(t)));
        hashes.sort_unstable();
        hashes.dedup();
        let dist = kind == MetricKind::Distribution;
        let (hash, hash2) = key_hash(&mut self.key_buf, lt.name, hashes, lt.host, dist);
        self.scratch = recycle(lt.tags);
        Some(ExactKey {
            hash,
            hash2,
            mapped,
        })
    }

    /// Makes the context of a line whose key is not in the table; None when the context limit refuses it
    /// (counted).
    fn create(
        &mut self,
        line: &MetricLine<'_>,
        p: &ExactKey,
        origin_tags: &[IStr],
        now: i64,
    ) -> Option<u32> {
        let st = &mut self.st;
        let tel = &*self.telemetry;
        // The limit is the agent's, over every shard: the gauge counts all their contexts.
        if tel.dogstatsd.contexts.get().max(0) as usize >= self.cfg.max_contexts {
            tel.count_drop(DropReason::ContextLimit, 1);
            return None;
        }
        let scratch = std::mem::take(&mut self.scratch);
        let mapped = p.mapped.as_deref();
        let LineTags {
            name,
            host,
            mut tags,
        } = LineTags::new(&self.cfg.extra_tags, line, mapped, origin_tags, scratch);
        sort_tags(&mut tags);
        let ctx = Context {
            hash: p.hash,
            hash2: p.hash2,
            alias: (0, 0),
            bucket: 0,
            last_seen: now,
            value: Value::new(line.kind, &self.cfg.histogram_memory),
            has_value: false,
            name: st.interner.intern(name),
            tags: TagSet::new(tags.iter().copied()),
            host: st.interner.intern(host),
        };
        self.scratch = recycle(tags);
        let i = match st.free.pop() {
            Some(i) => {
                st.slots[i as usize] = Some(ctx);
                i
            }
            None => {
                // Grown by a quarter rather than doubled: at 100k contexts a doubled vector leaves ~30k empty
                // slots of 120 bytes (3.7 MB) held for nothing; a large vector is reallocated by remapping its
                // pages, not by copying.
                if st.slots.len() == st.slots.capacity() {
                    st.slots.reserve_exact((st.slots.len() / 4).max(64));
                }
                st.slots.push(Some(ctx));
                (st.slots.len() - 1) as u32
            }
        };
        let slots = &st.slots;
        st.table.insert(p.hash, i, |j| {
            slots[j as usize].as_ref().map_or(0, |c| c.hash)
        });
        st.live += 1;
        tel.dogstatsd.contexts.add(1);
        Some(i)
    }

    /// Adds a line's values, received at `now` (in the bucket starting at `bucket`), to its context's open
    /// bucket.
    fn apply_line(&mut self, idx: u32, line: &MetricLine<'_>, now: i64, mut bucket: i64) {
        let st = &mut self.st;
        let tel = &*self.telemetry;
        let kind = line.kind;
        let Some(ctx) = st.slots[idx as usize].as_mut() else {
            return;
        };
        if ctx.has_value && bucket != ctx.bucket {
            if bucket > ctx.bucket {
                if st.backlog.len() >= self.backlog_limit {
                    tel.count_drop(DropReason::BucketBacklog, 1);
                    ctx.value.reset();
                } else {
                    let fresh = ctx.value.fresh();
                    let old = std::mem::replace(&mut ctx.value, fresh);
                    let interval = self.cfg.interval_secs;
                    let old = old.close(&self.hist, interval, &mut st.hist_out);
                    st.backlog.push((idx, ctx.bucket, old));
                }
                ctx.has_value = false;
            } else {
                // A sample older than the context's open bucket (clock step): keep it in the open one.
                bucket = ctx.bucket;
            }
        }
        ctx.bucket = bucket;
        ctx.last_seen = ctx.last_seen.max(now);
        // The type of a bucket's value is set by its first sample; a sample of another type in the same
        // bucket is applied to it as that type, as the agent's `ContextMetrics.AddSample` does.
        if !ctx.has_value && !ctx.value.matches(kind) {
            ctx.value = Value::new(kind, &self.cfg.histogram_memory);
        }

        // The parser hands out positive rates (above 1 too: a counter counts `value / rate`, as the Agent's);
        // histograms and sketches treat a rate above 1 as 1.
        let rate = if line.sample_rate > 0.0 {
            line.sample_rate
        } else {
            1.0
        };
        let hasher = &self.hasher;
        let add_member = |s: &mut SetState, m: &str| -> bool {
            let h = hasher.hash_one(m);
            if s.len() >= SET_MEMBER_LIMIT && !s.contains(h) {
                tel.count_drop(DropReason::SetMemberLimit, 1);
                false
            } else {
                s.insert(h);
                true
            }
        };
        let mut any = false;
        match (&mut ctx.value, kind) {
            (Value::Set(s), MetricKind::Set) => any = add_member(s, line.values),
            // Numbers sent to a set: each is a member, as written.
            (Value::Set(s), _) => {
                for m in line.values.split(':').filter(|m| !m.is_empty()) {
                    any |= add_member(s, m);
                }
            }
            // A set member sent to a numeric context counts as the value 0 (its numeric value in the agent).
            (value, MetricKind::Set) => {
                apply(value, 0.0, 1.0, tel);
                any = true;
            }
            // The numbers the parser read (finite): nearly always one.
            (value, _) => match line.numbers {
                Numbers::One(v) => any = apply(value, v, rate, tel),
                _ => {
                    for &v in line.numbers() {
                        any |= apply(value, v, rate, tel);
                    }
                }
            },
        }
        if any {
            ctx.has_value = true;
        }
    }
}
