//! A line's tags and its context's identity: splitting the raw tag field, taking out the tags the Agent
//! strips (`host:` sets the host; the `dd.internal.*` ones, see `dogstatsd::cardinality`), sorting, and the
//! hashes that find a context: the exact key (name, tags, host) and the line-text alias of the fast path.

use crate::dogstatsd::cardinality;
use crate::mapper::MapResult;
use crate::model::{IStr, MetricKind, MetricLine, NO_HOST};

/// Turns an emptied vector of borrowed strings into one of another lifetime, keeping its allocation
/// (the standard library collects a vector's `into_iter().map(..)` in place when the element types have
/// the same layout).
pub(super) fn recycle<'b>(mut v: Vec<&str>) -> Vec<&'b str> {
    v.clear();
    v.into_iter()
        .map(|_| -> &'b str { unreachable!() })
        .collect()
}

/// The non-empty `,`-separated parts of a raw tag field (as `MetricLine::tags`, with a byte search: tags are
/// short, and measured end to end this loop beat memchr's SIMD search, whose per-call setup costs more than
/// it saves on ten bytes).
pub(super) struct Commas<'a>(&'a str);

impl<'a> Commas<'a> {
    pub(super) fn new(raw: &'a str) -> Self {
        Commas(raw)
    }
}

impl<'a> Iterator for Commas<'a> {
    type Item = &'a str;
    #[inline]
    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.0.is_empty() {
                return None;
            }
            let (tag, rest) = match self.0.as_bytes().iter().position(|&b| b == b',') {
                Some(i) => (&self.0[..i], &self.0[i + 1..]),
                None => (self.0, ""),
            };
            self.0 = rest;
            if !tag.is_empty() {
                return Some(tag);
            }
        }
    }
}

/// `str` ordering (bytewise), inlined: tags are short and a `memcmp` call per comparison costs more.
#[inline]
pub(super) fn byte_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    for (x, y) in a.iter().zip(b) {
        if x != y {
            return x.cmp(y);
        }
    }
    a.len().cmp(&b.len())
}

/// Adds `tag` to `out`, leaving out (and taking the host from) the tags the agent strips.
#[inline]
fn classify<'a>(tag: &'a str, host: &mut &'a str, out: &mut Vec<&'a str>) {
    match tag.as_bytes().first() {
        Some(b'h') => {
            if let Some(h) = tag.strip_prefix("host:") {
                *host = if h.is_empty() { NO_HOST } else { h };
                return;
            }
        }
        Some(b'd') if cardinality::is_internal_tag(tag) => return,
        _ => {}
    }
    out.push(tag);
}

/// Sorts tags bytewise and drops duplicates (the order a context's tags are stored and flushed in).
pub(super) fn sort_tags(tags: &mut Vec<&str>) {
    tags.sort_unstable_by(|a, b| byte_cmp(a, b));
    tags.dedup();
}

/// The context key's 128-bit hash (xxh3-128, one pass): name, the tags' hashes (sorted, de-duplicated),
/// host and whether it is a distribution. `buf` is scratch space.
pub(super) fn key_hash(
    buf: &mut Vec<u8>,
    name: &str,
    tag_hashes: &[u64],
    host: &str,
    dist: bool,
) -> (u64, u64) {
    buf.clear();
    buf.extend_from_slice(name.as_bytes());
    buf.push(0xff);
    for t in tag_hashes {
        buf.extend_from_slice(&t.to_le_bytes());
    }
    buf.extend_from_slice(host.as_bytes());
    buf.push(0xff);
    buf.push(dist as u8);
    let h = xxhash_rust::xxh3::xxh3_128_with_seed(buf, 0x6b65_6c70_6965);
    (h as u64, (h >> 64) as u64)
}

/// A hash of origin tags (0 when there are none), part of a line's text hash.
pub(super) fn origin_hash(origin_tags: &[IStr]) -> u64 {
    if origin_tags.is_empty() {
        return 0;
    }
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    for t in origin_tags {
        h.update(t.as_bytes());
        h.update(&[0xff]);
    }
    h.digest() | 1
}

/// The hash of a metric name as sent, computed once per line by the worker that gathers it: it picks the
/// line's shard ([`Shards::shard_of`](super::Shards::shard_of)) and seeds the hash of its text
/// ([`alias_hash`]).
#[inline]
pub fn name_hash(name: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    const NAMES: foldhash::fast::FixedState =
        foldhash::fast::FixedState::with_seed(0x7368_6172_6473);
    // The bytes alone: `Hash for str` would add a 0xff byte after them (one more mixing step), which only
    // matters where several strings are hashed in a row.
    let mut h = NAMES.build_hasher();
    h.write(name.as_bytes());
    h.finish()
}

/// 128-bit hash of what determines a line's context as sent: name, raw tag field, distribution or not, and
/// the origin tags' hash (the mapper, `dogstatsd_tags` and host rules are fixed for the aggregator's life).
/// The name's hash (`name_hash`, already made to pick the shard), kind and origin seed the hash of the tag
/// field, so the line's text is hashed where it lies, without copying it, and the name is not hashed twice.
pub(super) fn alias_hash(line: &MetricLine<'_>, name_hash: u64, origin: u64) -> (u64, u64) {
    let dist = (line.kind == MetricKind::Distribution) as u64;
    let seed = name_hash ^ origin.rotate_left(1) ^ dist ^ 0x0061_6c69_6173;
    let h = xxhash_rust::xxh3::xxh3_128_with_seed(line.tags.as_bytes(), seed);
    // (0, 0) means "no alias" in a context.
    ((h as u64) | 1, (h >> 64) as u64)
}

/// What a line's context is made of before sorting and hashing: its name (after the mapper), its tags
/// (its own, the mapper's, `dogstatsd_tags` and the origin tags, without the ones the agent strips) and its
/// host (the last `host:` tag).
pub(super) struct LineTags<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub tags: Vec<&'a str>,
}

impl<'a> LineTags<'a> {
    /// `scratch` lends its allocation to `tags` (hand it back with [`recycle`]).
    pub fn new(
        extra_tags: &'a [String],
        line: &MetricLine<'a>,
        mapped: Option<&'a MapResult>,
        origin_tags: &'a [IStr],
        scratch: Vec<&str>,
    ) -> Self {
        let mut tags = recycle(scratch);
        let mut host: &str = "";
        for t in Commas::new(line.tags) {
            classify(t, &mut host, &mut tags);
        }
        if let Some(r) = mapped {
            for t in &r.tags {
                classify(t, &mut host, &mut tags);
            }
        }
        tags.extend(extra_tags.iter().map(String::as_str));
        tags.extend(origin_tags.iter().map(|t| &**t));
        LineTags {
            name: mapped.map_or(line.name, |r| r.name.as_str()),
            host,
            tags,
        }
    }
}
