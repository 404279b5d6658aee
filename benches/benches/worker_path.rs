//! The DogStatsD worker path without sockets or threads: the load generator's realistic mix (70% counters,
//! 10% gauges, 10% histograms, 5% distributions, 5% sets; 4 tags) over 100k contexts, packed into 8 KB
//! datagrams, handed to the agent's [`AggregatingSink::process`] 32 datagrams at a time (what a worker takes
//! from the queue) with the agent's shard count for two workers, then one flush into the real encoders.
//!
//! It prints the time per line, the heap held (live bytes, counted by a wrapping allocator) once every context
//! has a bucket's worth of samples, and the heap's peak during the flush. Deterministic apart from the clock,
//! so it is the A/B measure for changes to parsing, aggregation and flushing: under
//! `valgrind --tool=callgrind` its instruction count repeats exactly run after run.
//!
//! Run: `cargo bench -p kelpie-benches --bench worker_path` (`-- <rounds>`: samples per context, default 20).

use kelpie_agent::aggregator::shards::SHARDS_PER_WORKER;
use kelpie_agent::aggregator::{AggregatorConfig, Shards};
use kelpie_agent::dogstatsd::enrich::{AggregatingSink, ShardLines};
use kelpie_agent::dogstatsd::{Received, Transport};
use kelpie_agent::encode::{EncodeConfig, SeriesEncoder, SketchEncoder};
use kelpie_agent::model::{FlushSink, SeriesRef, SketchRef};
use kelpie_agent::telemetry::Telemetry;
use parking_lot::RwLock;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

/// Counts live heap bytes and keeps their peak.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

fn grew(by: isize) {
    let now = LIVE.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        grew(l.size() as isize);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        grew(new as isize - l.size() as isize);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const CONTEXTS: usize = 100_000;
const DATAGRAM: usize = 8192;
/// Datagrams per `process` call: a worker's take from the queue (256 KiB).
const TAKE: usize = 32;
const WORKERS: usize = 2;
/// One bucket of a day, so that no run crosses a bucket boundary (except at midnight UTC): every sample of
/// a context lands in one bucket, and the heap held is the same run after run.
const INTERVAL: i64 = 86_400;

/// The load generator's `--kind mix` lines (benches/src/main.rs), one per context.
fn lines() -> Vec<String> {
    (0..CONTEXTS)
        .map(|i| {
            let kind = match i % 20 {
                0..=13 => "c",
                14 | 15 => "g",
                16 | 17 => "h",
                18 => "d",
                _ => "s",
            };
            let value = if kind == "s" {
                format!("u{}", i % 7)
            } else {
                format!("{}", 1 + i % 3)
            };
            format!(
                "loadgen.metric.{}.{kind}:{value}|{kind}|#ctx:{i},tag1:value1,tag2:value2,tag3:value3\n",
                i % 100
            )
        })
        .collect()
}

/// The lines packed into datagrams of at most 8 KB, as the load generator sends them.
fn datagrams(lines: &[String]) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::with_capacity(DATAGRAM)];
    for l in lines {
        if out.last().unwrap().len() + l.len() > DATAGRAM {
            out.push(Vec::with_capacity(DATAGRAM));
        }
        out.last_mut().unwrap().extend_from_slice(l.as_bytes());
    }
    out
}

/// The flusher's encoders (series as protobuf, sketches), as when forwarding.
struct Encoders<'c> {
    series: SeriesEncoder<'c>,
    sketches: SketchEncoder<'c>,
}

impl FlushSink for Encoders<'_> {
    fn series(&mut self, s: SeriesRef<'_>) {
        self.series.push(s);
    }
    fn sketch(&mut self, s: SketchRef<'_>) {
        self.sketches.push(s);
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    let packets = datagrams(&lines());
    let telemetry = Arc::new(Telemetry::default());
    let (events, _ev) = tokio::sync::mpsc::channel(8);
    let (checks, _ck) = tokio::sync::mpsc::channel(8);
    let sink = AggregatingSink {
        agg: Arc::new(Shards::new(
            AggregatorConfig {
                interval_secs: INTERVAL,
                ..AggregatorConfig::default()
            },
            telemetry.clone(),
            WORKERS * SHARDS_PER_WORKER,
        )),
        telemetry: telemetry.clone(),
        origin: Arc::new(RwLock::new(None)),
        origin_detection: false,
        client_origin: false,
        no_tags: Arc::from([]),
        events,
        checks,
    };
    let base = LIVE.load(Relaxed);
    let mut scratch = ShardLines::default();
    let arrivals = vec![(0u64, 0u32); TAKE];
    let started = Instant::now();
    for _ in 0..rounds {
        for (i, chunk) in packets.chunks(TAKE).enumerate() {
            let received: Vec<Received<'_>> = chunk
                .iter()
                .map(|p| Received {
                    payload: p,
                    transport: Transport::Udp,
                    pid: None,
                })
                .collect();
            sink.process(&received, &arrivals[..received.len()], &mut scratch, i);
        }
    }
    let took = started.elapsed();
    let lines = (rounds * CONTEXTS) as f64;
    let held = LIVE.load(Relaxed) - base;
    let contexts = sink.agg.contexts();
    PEAK.store(LIVE.load(Relaxed), Relaxed);

    let cfg = EncodeConfig::default();
    let mut enc = Encoders {
        series: SeriesEncoder::new(&cfg),
        sketches: SketchEncoder::new(&cfg),
    };
    let flush_started = Instant::now();
    let now = kelpie_agent::clock::unix_now();
    sink.agg.flush_into(now + 2 * INTERVAL, false, &mut enc);
    let series = enc.series.finish().expect("series encode");
    let sketches = enc.sketches.finish().expect("sketches encode");
    let flush_took = flush_started.elapsed();
    let flush_peak = PEAK.load(Relaxed) - base;
    let mib = |b: isize| b as f64 / (1 << 20) as f64;
    println!(
        "{} contexts, {rounds} samples each: {:.1} ns per line ({} lines, {} parse errors)",
        contexts,
        took.as_nanos() as f64 / lines,
        lines,
        telemetry.dogstatsd.parse_errors.get()
    );
    println!(
        "heap held by the contexts: {:.1} MiB ({} bytes per context); peak during the flush {:.1} MiB",
        mib(held),
        held / CONTEXTS as isize,
        mib(flush_peak)
    );
    println!(
        "flush: {:.1} ms, {} series payloads, {} sketch payloads",
        flush_took.as_secs_f64() * 1e3,
        series.payloads.len(),
        sketches.payloads.len()
    );
}
