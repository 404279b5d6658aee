//! Origin enrichment, the first thing a worker does with a batch of datagrams: which container sent each one
//! (by the Unix socket's peer pid, or the `|c:` field a client fills in) and which of its tags each line gets
//! (the cardinality asked with `|card:` or `dd.internal.card:`); then each payload is parsed and its metric
//! lines gathered per shard and inserted into the aggregator, events and service checks sent to the flush.
//! The worker threads that call it are in [`super::workers`].

use crate::aggregator::{name_hash, Aggregator, Shards};
use crate::clock::unix_now;
use crate::dogstatsd::cardinality;
use crate::dogstatsd::listen::{Received, Transport};
use crate::dogstatsd::parse::{for_each_line, LineArena, LineSink};
use crate::model::{Event, IStr, MetricLine, Parsed, ServiceCheck};
use crate::telemetry::{DropReason, Telemetry};
use kelpie_container::tags::TagCardinality;
use kelpie_container::{ContainerOrigin, OriginResolver, OriginTags};
use parking_lot::RwLock;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest a socket reader waits for the container collector to learn a container whose packets arrive
/// before Docker's `start` event was handled (once per container), so its first samples carry its tags.
const NEW_CONTAINER_WAIT: Duration = Duration::from_millis(100);

/// Lines a worker gathers for one shard before it takes the shard's lock to insert them.
const SHARD_BATCH: usize = 256;

/// What the workers do with each batch of datagrams: resolve the sender's origin, parse each payload, and
/// insert its metric lines into their shards (events and service checks go to the flusher's queues).
pub struct AggregatingSink {
    pub agg: Arc<Shards>,
    pub telemetry: Arc<Telemetry>,
    /// Filled once Docker answers (at start or on a later retry).
    pub origin: Arc<RwLock<Option<OriginResolver>>>,
    pub origin_detection: bool,
    /// Resolve the `|c:` field clients fill in (`dogstatsd_origin_detection_client`).
    pub client_origin: bool,
    /// The origin tags of a datagram from nobody known.
    pub no_tags: OriginTags,
    pub events: mpsc::Sender<(Arrival, Event)>,
    pub checks: mpsc::Sender<(Arrival, ServiceCheck)>,
}

/// Where a datagram stood in the order the readers received them: its batch's [`Batch::seq`](super::queue::Batch::seq)
/// and its index in the batch. Workers process batches concurrently, so events and service checks are sorted
/// by this before they are shown.
pub type Arrival = (u64, u32);

/// The last `|c:` field a sink looked up, and what it named: consecutive lines from one client carry the same.
type FieldCache<'a> = Option<(&'a str, Option<Arc<ContainerOrigin>>)>;

impl AggregatingSink {
    /// The origin tags of one line when they differ from its datagram's (`None`: use the datagram's): those
    /// of the container its `|c:` field names (when client origin detection is on), or the sender's at the
    /// cardinality the line asks for with `|card:`.
    fn line_origin<'a>(
        &self,
        origin: &Option<OriginResolver>,
        cache: &mut FieldCache<'a>,
        sender: Option<&ContainerOrigin>,
        field: Option<&'a str>,
        asked: Option<TagCardinality>,
        default: TagCardinality,
    ) -> Option<OriginTags> {
        let card = asked.unwrap_or(default);
        if let (true, Some(o), Some(field)) = (self.client_origin, origin, field) {
            let named = match cache {
                Some((f, named)) if *f == field => named.clone(),
                _ => {
                    let named = o.origin_for_container_field(field);
                    *cache = Some((field, named.clone()));
                    named
                }
            };
            if let Some(c) = named {
                return Some(c.at(card).clone());
            }
        }
        match sender {
            Some(s) if card != default => Some(s.at(card).clone()),
            _ => None,
        }
    }
}

/// Appends a line's origin tags to an event's or service check's own. (Events and service checks are
/// rare: their `|c:` lookups skip the sink's field cache.)
fn add_origin_tags(tags: &mut Vec<String>, own: Option<&OriginTags>, datagram: &[IStr]) {
    let t: &[IStr] = own.map_or(datagram, |t| t);
    tags.extend(t.iter().map(|s| s.to_string()));
}

/// Lines waiting for their shard, gathered by one worker. The vectors are kept between batches; only their
/// allocations outlive a batch (see [`recycle_lines`]).
#[derive(Default)]
pub struct ShardLines {
    lines: Vec<Vec<MetricLine<'static>>>,
    /// The [`name_hash`] of each gathered line's name (it picked the shard; the aggregator seeds the line's
    /// text hash with it).
    hashes: Vec<Vec<u64>>,
    tags: Vec<OriginTags>,
}

/// Turns an emptied vector of lines into one of another lifetime, keeping its allocation (the standard library
/// collects `into_iter().map(..)` in place when the element types have the same layout).
fn recycle_lines<'b>(mut v: Vec<MetricLine<'_>>) -> Vec<MetricLine<'b>> {
    v.clear();
    v.into_iter()
        .map(|_| -> MetricLine<'b> { unreachable!() })
        .collect()
}

/// Inserts one shard's gathered lines (they share their origin tags), at the time they go in.
fn insert(
    agg: &mut Aggregator,
    lines: &mut Vec<MetricLine<'_>>,
    hashes: &mut Vec<u64>,
    tags: &OriginTags,
) {
    agg.insert_hashed(lines, hashes, tags, unix_now());
    lines.clear();
    hashes.clear();
}

/// One worker's pass over a batch of datagrams, as the parser's [`LineSink`]: each metric line is gathered
/// for its shard with its origin tags; events and service checks go to the flusher's queues.
struct Gather<'s, 'o, 'a> {
    sink: &'s AggregatingSink,
    origin: &'o Option<OriginResolver>,
    /// The origin cardinality lines get unless they ask for another.
    default: TagCardinality,
    cache: FieldCache<'a>,
    /// Per shard: lines gathered, their names' hashes, and the origin tags they share.
    lines: Vec<Vec<MetricLine<'a>>>,
    hashes: &'s mut Vec<Vec<u64>>,
    tags: &'s mut Vec<OriginTags>,
    /// The current datagram's sender (by its Unix socket peer) and place in arrival order.
    sender: Option<Arc<ContainerOrigin>>,
    arrival: Arrival,
}

impl<'a> LineSink<'a> for &mut Gather<'_, '_, 'a> {
    #[inline(always)]
    fn metric(&mut self, m: MetricLine<'a>) {
        let Gather {
            sink,
            origin,
            default,
            cache,
            lines,
            hashes,
            tags,
            sender,
            ..
        } = &mut **self;
        let shards = &*sink.agg;
        let sender = sender.as_deref();
        // From nobody known and naming no container (nearly every UDP line): no origin tags to choose from,
        // the datagram's (none) without a look at the line's fields.
        let own = if sender.is_none() && m.container_id.is_none() {
            None
        } else {
            // The `dd.internal.card:` tag asks the same as `|card:` (older clients).
            let asked = cardinality::asked_by_metric(m.cardinality, m.tags);
            sink.line_origin(origin, cache, sender, m.container_id, asked, *default)
        };
        let line_tags = match &own {
            Some(t) => t,
            None => sender.map_or(&sink.no_tags, |s| s.at(*default)),
        };
        let h = name_hash(m.name);
        let s = shards.shard_of_hash(h);
        // A shard's gathered lines share their origin tags: a line with others (`|c:`, `|card:`, another
        // sender) sends what was gathered first.
        if !Arc::ptr_eq(line_tags, &tags[s]) {
            if !lines[s].is_empty() {
                insert(&mut shards.lock(s), &mut lines[s], &mut hashes[s], &tags[s]);
            }
            tags[s] = line_tags.clone();
        }
        lines[s].push(m);
        hashes[s].push(h);
        if lines[s].len() >= SHARD_BATCH {
            insert(&mut shards.lock(s), &mut lines[s], &mut hashes[s], &tags[s]);
        }
    }

    fn other(&mut self, p: Parsed<'a>) {
        let Gather {
            sink,
            origin,
            default,
            sender,
            arrival,
            ..
        } = &mut **self;
        let sender = sender.as_deref();
        let datagram_tags: &OriginTags = sender.map_or(&sink.no_tags, |s| s.at(*default));
        match p {
            Parsed::Metric(m) => self.metric(m),
            Parsed::Event(mut e) => {
                let (field, card) = (e.container.as_deref(), e.cardinality);
                let own = sink.line_origin(origin, &mut None, sender, field, card, *default);
                add_origin_tags(&mut e.tags, own.as_ref(), datagram_tags);
                if sink.events.try_send((*arrival, *e)).is_err() {
                    sink.telemetry.count_drop(DropReason::EventQueueFull, 1);
                }
            }
            Parsed::ServiceCheck(mut c) => {
                let (field, card) = (c.container.as_deref(), c.cardinality);
                let own = sink.line_origin(origin, &mut None, sender, field, card, *default);
                add_origin_tags(&mut c.tags, own.as_ref(), datagram_tags);
                if c.timestamp.is_none() {
                    c.timestamp = Some(unix_now());
                }
                if sink.checks.try_send((*arrival, *c)).is_err() {
                    sink.telemetry
                        .count_drop(DropReason::ServiceCheckQueueFull, 1);
                }
            }
        }
    }
}

impl AggregatingSink {
    /// Processes datagrams taken together (called by a worker; `arrivals[i]` is where `batch[i]` stood in
    /// arrival order; `start` is where this worker begins its round of the shards, so that workers do not
    /// queue up behind the same lock).
    pub fn process(
        &self,
        batch: &[Received<'_>],
        arrivals: &[Arrival],
        scratch: &mut ShardLines,
        start: usize,
    ) {
        let shards = &*self.agg;
        let n = shards.len();
        // Packed numbers and repaired copies of lines that are not UTF-8 (allocates only for such lines).
        let arena = LineArena::new();
        let mut lines: Vec<Vec<MetricLine<'_>>> =
            scratch.lines.drain(..).map(recycle_lines).collect();
        lines.resize_with(n, Vec::new);
        scratch.hashes.resize_with(n, Vec::new);
        scratch.tags.resize_with(n, || self.no_tags.clone());
        let origin_guard = self.origin.read();
        let origin = &*origin_guard;
        let mut gather = Gather {
            sink: self,
            origin,
            default: origin
                .as_ref()
                .map_or(TagCardinality::Low, OriginResolver::cardinality),
            cache: None,
            lines,
            hashes: &mut scratch.hashes,
            tags: &mut scratch.tags,
            sender: None,
            arrival: (0, 0),
        };
        for (r, &arrival) in batch.iter().zip(arrivals) {
            gather.sender = match (origin, r.pid) {
                (Some(o), Some(pid)) if self.origin_detection && r.transport != Transport::Udp => {
                    o.origin_for_pid_waiting(pid, NEW_CONTAINER_WAIT)
                }
                _ => None,
            };
            gather.arrival = arrival;
            for_each_line(r.payload, &arena, &self.telemetry, &mut gather);
        }
        let Gather {
            mut lines,
            hashes,
            tags,
            ..
        } = gather;
        drop(origin_guard);
        // What is left: first every shard whose lock is free, from this worker's starting point, then the rest,
        // waiting for their locks.
        let mut busy = Vec::new();
        for i in 0..n {
            let s = (start + i) % n;
            if lines[s].is_empty() {
                continue;
            }
            match shards.try_lock(s) {
                Some(mut agg) => insert(&mut agg, &mut lines[s], &mut hashes[s], &tags[s]),
                None => busy.push(s),
            }
        }
        for s in busy {
            insert(&mut shards.lock(s), &mut lines[s], &mut hashes[s], &tags[s]);
        }
        // Let go of the origin tags (a container that went away should not be kept alive by a worker).
        for t in tags.iter_mut() {
            *t = self.no_tags.clone();
        }
        scratch.lines = lines.into_iter().map(recycle_lines).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregator::AggregatorConfig;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn sink(client_origin: bool) -> (AggregatingSink, mpsc::Receiver<(Arrival, Event)>) {
        let telemetry = Arc::new(Telemetry::default());
        let resolver = OriginResolver::new("/nonexistent".into(), None);
        resolver.insert(A, &["container_name:a".into(), "image_name:img-a".into()]);
        resolver.insert(B, &["container_name:b".into(), "image_name:img-b".into()]);
        let (events, ev_rx) = mpsc::channel(8);
        let (checks, _) = mpsc::channel(8);
        let sink = AggregatingSink {
            agg: Arc::new(Shards::new(
                AggregatorConfig::default(),
                telemetry.clone(),
                4,
            )),
            telemetry,
            origin: Arc::new(RwLock::new(Some(
                resolver.with_cardinality(TagCardinality::Low),
            ))),
            origin_detection: true,
            client_origin,
            no_tags: OriginTags::from([]),
            events,
            checks,
        };
        (sink, ev_rx)
    }

    /// Processes one UDP datagram.
    fn udp(sink: &AggregatingSink, payload: &str) {
        let received = Received {
            payload: payload.as_bytes(),
            transport: Transport::Udp,
            pid: None,
        };
        sink.process(&[received], &[(0, 0)], &mut ShardLines::default(), 0);
    }

    /// Counter totals per tag set after one flush.
    fn totals(sink: &AggregatingSink) -> Vec<(Vec<String>, f64)> {
        let mut b = crate::model::FlushBatch::default();
        sink.agg.flush_into(i64::MAX / 2, true, &mut b);
        let mut got: Vec<(Vec<String>, f64)> = b
            .series
            .iter()
            .map(|s| {
                let tags = s.tags.iter().map(|t| t.to_string()).collect();
                (tags, s.points.iter().map(|p| p.1).sum::<f64>() * 10.0)
            })
            .collect();
        got.sort_by(|x, y| x.0.cmp(&y.0));
        got
    }

    /// One datagram mixing lines without origin, with `|c:` fields (known, unknown, in a row) and a
    /// `|card:` request: each sample lands in its own container's context, in any grouping.
    #[test]
    fn lines_of_one_datagram_take_their_own_container_field_and_cardinality() {
        let payload = format!(
            "m:1|c\nm:1|c|c:ci-{A}\nm:2|c|c:ci-{A}\nm:16|c|c:in-999\nm:4|c|c:ci-{B}|card:high\nm:8|c\n\
             m:32|c|#dd.internal.card:high|c:ci-{A}\n_e{{1,1}}:t|x|c:ci-{B}"
        );
        let (s, mut ev) = sink(true);
        udp(&s, &payload);
        assert_eq!(
            totals(&s),
            [
                (vec![], 25.0),
                (
                    vec![
                        "container_name:a".to_string(),
                        "image_name:img-a".to_string()
                    ],
                    32.0
                ),
                (
                    vec![
                        "container_name:b".to_string(),
                        "image_name:img-b".to_string()
                    ],
                    4.0
                ),
                (vec!["image_name:img-a".to_string()], 3.0),
            ]
        );
        assert_eq!(ev.try_recv().unwrap().1.tags, ["image_name:img-b"]);
        // Client origin detection off: the fields are ignored, everything in one context.
        let (s, _) = sink(false);
        udp(&s, &payload);
        assert_eq!(totals(&s), [(vec![], 64.0)]);
    }
}
