//! Aggregator benchmarks: insert into an existing context (4 tags), inserts round-robin over 100k
//! contexts, and a flush of 100k contexts. Before the benchmarks it prints the memory held per context at
//! 100k contexts and the allocations per insert into existing contexts, measured with a counting
//! allocator.
//!
//! Run: `cargo bench -p kelpie-benches --bench aggregate -- --quick`

use criterion::{criterion_group, criterion_main, Criterion};
use kelpie_agent::aggregator::{Aggregator, AggregatorConfig};
use kelpie_agent::model::{MetricKind, MetricLine};
use kelpie_agent::telemetry::Telemetry;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counts live heap bytes and allocation calls.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Relaxed);
        ALLOCS.fetch_add(1, Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const CONTEXTS: usize = 100_000;

/// (name, tags) of `n` distinct contexts: 100 names x 4 tags, one of them unique per context.
fn contexts(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("app.request.metric_{}", i % 100),
                format!(
                    "env:prod,service:svc-{},version:1.{}.0,request_id:{}",
                    i % 50,
                    i % 7,
                    i
                ),
            )
        })
        .collect()
}

fn line<'a>(name: &'a str, tags: &'a str, kind: MetricKind) -> MetricLine<'a> {
    MetricLine {
        tags,
        ..MetricLine::new(name, "1", kind)
    }
}

fn new_agg() -> Aggregator {
    Aggregator::new(AggregatorConfig::default(), Arc::new(Telemetry::default()))
}

fn report_memory() {
    let ctx = contexts(CONTEXTS);
    for kind in [
        MetricKind::Counter,
        MetricKind::Gauge,
        MetricKind::Distribution,
    ] {
        let before = LIVE.load(Relaxed);
        let mut agg = new_agg();
        for (n, t) in &ctx {
            agg.insert(&line(n, t, kind), &[], 1_000);
        }
        let after = LIVE.load(Relaxed);
        let allocs0 = ALLOCS.load(Relaxed);
        for (n, t) in &ctx {
            agg.insert(&line(n, t, kind), &[], 1_001);
        }
        let allocs = ALLOCS.load(Relaxed) - allocs0;
        eprintln!(
            "{kind:?}: {} contexts hold {:.1} MiB = {} bytes/context (names/tags interned); \
             {} allocations in {} inserts into existing contexts",
            agg.contexts(),
            (after - before) as f64 / (1 << 20) as f64,
            (after - before) / CONTEXTS as isize,
            allocs,
            CONTEXTS
        );
        let allocs0 = ALLOCS.load(Relaxed);
        let batch = agg.flush(1_010, false);
        eprintln!(
            "{kind:?}: flush of {} contexts: {:.2} allocations per context",
            CONTEXTS,
            (ALLOCS.load(Relaxed) - allocs0) as f64 / CONTEXTS as f64
        );
        black_box((&agg, batch));
    }
}

fn bench(c: &mut Criterion) {
    report_memory();

    let mut g = c.benchmark_group("aggregate");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    g.bench_function("insert_existing_context_4_tags", |b| {
        let mut agg = new_agg();
        let l = line(
            "app.request.latency",
            "env:prod,service:api,version:1.2.0,region:eu-west-1",
            MetricKind::Counter,
        );
        b.iter(|| agg.insert(black_box(&l), &[], 1_000));
    });

    g.bench_function("insert_distribution_existing_context_4_tags", |b| {
        let mut agg = new_agg();
        let values: Vec<String> = (1..=1000).map(|v| v.to_string()).collect();
        let mut i = 0;
        b.iter(|| {
            // Made in the loop as the parser makes it, so reading the value is part of what is measured.
            let l = MetricLine {
                tags: "env:prod,service:api,version:1.2.0,region:eu-west-1",
                ..MetricLine::new("app.request.latency", &values[i], MetricKind::Distribution)
            };
            agg.insert(black_box(&l), &[], 1_000);
            i = (i + 1) % values.len();
        });
    });

    // Baseline in the same run: the naive way, a String key (name + sorted tags) in a std HashMap.
    g.bench_function("baseline_naive_string_key_hashmap", |b| {
        let mut map: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
        let l = line(
            "app.request.latency",
            "env:prod,service:api,version:1.2.0,region:eu-west-1",
            MetricKind::Counter,
        );
        b.iter(|| {
            let l = black_box(&l);
            let mut tags: Vec<&str> = l.tags().collect();
            tags.sort_unstable();
            let mut key = String::from(l.name);
            for t in tags {
                key.push('|');
                key.push_str(t);
            }
            let v: f64 = l.numbers().iter().sum();
            *map.entry(key).or_insert(0.0) += v;
        });
    });

    let ctx = contexts(CONTEXTS);
    let lines: Vec<MetricLine<'_>> = ctx
        .iter()
        .map(|(n, t)| line(n, t, MetricKind::Counter))
        .collect();
    g.bench_function("insert_100k_contexts_round_robin", |b| {
        let mut agg = new_agg();
        for l in &lines {
            agg.insert(l, &[], 1_000);
        }
        let mut i = 0;
        b.iter(|| {
            agg.insert(black_box(&lines[i]), &[], 1_000);
            i += 1;
            if i == lines.len() {
                i = 0;
            }
        });
    });

    g.sample_size(10);
    g.bench_function("flush_100k_contexts", |b| {
        let mut agg = new_agg();
        let mut now = 1_000;
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                for l in &lines {
                    agg.insert(l, &[], now);
                }
                now += 10;
                let t = Instant::now();
                let batch = agg.flush(now, false);
                total += t.elapsed();
                assert_eq!(batch.series.len(), CONTEXTS);
                drop(black_box(batch));
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
