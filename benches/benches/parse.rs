//! DogStatsD line parser throughput: `parse_line` on typical lines, and `for_each_line` on a full datagram.
//!
//! Run: `cargo bench -p kelpie-benches --bench parse` (add `-- --quick` for a short run).
//!
//! Times are this thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), not wall time: the benchmark machines are
//! shared, and wall time there mostly measures the neighbours. Each parser line comes with a naive baseline
//! (split into owned pieces) measured in the same run, so the ratio stays meaningful.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kelpie_agent::dogstatsd::{for_each_line, parse_line, LineArena};
use kelpie_agent::telemetry::Telemetry;
use std::time::Duration;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    // From the C library std already links; declared here to keep the benches crate free of a libc dependency.
    fn clock_gettime(clock: i32, tp: *mut Timespec) -> i32;
}

const CLOCK_THREAD_CPUTIME_ID: i32 = 3;

/// CPU time consumed by the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid out pointer (Linux x86_64/aarch64 layout of timespec).
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` `iters` times and returns the CPU time it took.
fn cpu_time<R>(iters: u64, mut f: impl FnMut() -> R) -> Duration {
    let start = thread_cpu();
    for _ in 0..iters {
        black_box(f());
    }
    thread_cpu() - start
}

const LINES: &[(&str, &str)] = &[
    ("counter", "page.views:1|c"),
    (
        "gauge_4_tags",
        "system.queue.depth:42.5|g|#env:prod,service:checkout,host:web-12,version:1.2.3",
    ),
    (
        "counter_4_tags_rate_container",
        "http.requests:1|c|@0.5|#env:prod,service:checkout,status:200,route:/api/cart|c:ci-4026531835",
    ),
    ("histogram_packed", "request.latency:12.5:3.2:40:7.75:1.5|h|#env:prod,service:api"),
    // A timestamp is kept on gauges and counters only, as in the Datadog Agent (SPEC §3).
    ("gauge_timestamp", "job.duration:1234|g|#env:prod|T1700000000"),
    (
        "event",
        "_e{22,34}:Deploy of checkout v42|Rolled out to 12 hosts\\nno errors.|t:success|#env:prod,service:checkout",
    ),
    ("service_check", "_sc|db.can_connect|2|h:db-1|#env:prod|m:connection refused"),
];

/// (name, values, type, sample rate, tags), all owned.
type NaiveLine = (String, Vec<f64>, String, f64, Vec<String>);

/// Baseline in the same run: the obvious way to parse a metric line (split into owned pieces, tags into a
/// Vec<String>), which is what `parse_line` avoids by borrowing.
fn naive_parse(line: &[u8]) -> Option<NaiveLine> {
    let s = std::str::from_utf8(line).ok()?;
    let fields: Vec<&str> = s.split('|').collect();
    let (name, values) = fields.first()?.split_once(':')?;
    let values: Vec<f64> = values
        .split(':')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let kind = fields.get(1)?.to_string();
    let mut rate = 1.0;
    let mut tags = Vec::new();
    for f in &fields[2..] {
        if let Some(r) = f.strip_prefix('@') {
            rate = r.parse().ok()?;
        } else if let Some(t) = f.strip_prefix('#') {
            tags = t.split(',').map(str::to_owned).collect();
        }
    }
    Some((name.to_owned(), values, kind, rate, tags))
}

fn bench_parse_line(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_line");
    group.throughput(Throughput::Elements(1));
    for (name, line) in LINES {
        let bytes = line.as_bytes();
        assert!(parse_line(bytes, &LineArena::new()).is_ok(), "{line}");
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                cpu_time(iters, || {
                    parse_line(black_box(bytes), &LineArena::new()).is_ok()
                })
            })
        });
        if !name.starts_with("event") && !name.starts_with("service") {
            assert!(naive_parse(bytes).is_some(), "{line}");
            group.bench_function(format!("{name}/naive_baseline"), |b| {
                b.iter_custom(|iters| cpu_time(iters, || naive_parse(black_box(bytes)).is_some()))
            });
        }
    }
    group.finish();
}

/// A full 8 KB datagram of 4-tag gauges over 1000 contexts, as the load generator sends, split and parsed.
fn bench_datagram(c: &mut Criterion) {
    let mut payload = String::new();
    let mut lines = 0u64;
    let mut i = 0;
    loop {
        let line = format!(
            "app.metric.{}:{}|g|#env:prod,service:svc{},host:web-{},version:1.{}\n",
            i % 1000,
            i,
            i % 10,
            i % 50,
            i % 7
        );
        if payload.len() + line.len() > 8192 {
            break;
        }
        payload.push_str(&line);
        lines += 1;
        i += 1;
    }
    let telemetry = Telemetry::default();
    let arena = LineArena::new();
    let mut group = c.benchmark_group("for_each_line");
    group.throughput(Throughput::Elements(lines));
    group.bench_function("8k_datagram_4_tag_gauges", |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut n = 0u32;
                for_each_line(black_box(payload.as_bytes()), &arena, &telemetry, |p| {
                    black_box(&p);
                    n += 1;
                });
                n
            })
        })
    });
    group.finish();
}

/// A machine-speed reference for this run: UTF-8 validation of the 4-tag gauge line, the least any parser
/// that hands out `&str` must do. Shared machines vary run to run; compare ratios to this, not raw numbers.
fn bench_reference(c: &mut Criterion) {
    let line = LINES[1].1.as_bytes();
    let mut group = c.benchmark_group("reference");
    group.bench_function("from_utf8_gauge_4_tags", |b| {
        b.iter_custom(|iters| cpu_time(iters, || std::str::from_utf8(black_box(line)).is_ok()))
    });
    group.finish();
}

criterion_group!(benches, bench_reference, bench_parse_line, bench_datagram);
criterion_main!(benches);
