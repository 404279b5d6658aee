use super::key::{byte_cmp, Commas};
use super::*;
use crate::dogstatsd::number::read_values;
use crate::mapper::MapperProfiles;
use crate::model::{FlushBatch, MetricKind, MetricLine, Numbers, SketchPoint};
use crate::sketch::Sketch;

fn line<'a>(
    name: &'a str,
    values: &'a str,
    kind: MetricKind,
    rate: f64,
    tags: &'a str,
) -> MetricLine<'a> {
    // Read as the parser reads them (packed numbers in memory that lives as long as the test).
    let numbers = match kind {
        MetricKind::Set => Numbers::None,
        _ => {
            let mut v = Vec::new();
            read_values(values.as_bytes(), |x| v.push(x)).expect("the test's values are numbers");
            match v[..] {
                [x] => Numbers::One(x),
                _ => Numbers::Packed(Box::leak(v.into_boxed_slice())),
            }
        }
    };
    MetricLine {
        sample_rate: rate,
        tags,
        ..MetricLine::with_numbers(name, values, numbers, kind)
    }
}

/// Parses a payload as the workers do and inserts its metric lines, received at `now`.
fn insert_text(a: &mut Aggregator, tel: &Telemetry, payload: &str, now: i64) {
    let arena = crate::dogstatsd::LineArena::new();
    crate::dogstatsd::for_each_line(payload.as_bytes(), &arena, tel, |p| {
        if let crate::model::Parsed::Metric(m) = p {
            a.insert(&m, &[], now);
        }
    });
}

fn agg_with(cfg: AggregatorConfig) -> (Aggregator, Arc<Telemetry>) {
    let tel = Arc::new(Telemetry::default());
    (Aggregator::new(cfg, tel.clone()), tel)
}

fn agg() -> (Aggregator, Arc<Telemetry>) {
    agg_with(AggregatorConfig::default())
}

fn find<'b>(batch: &'b FlushBatch, name: &str) -> &'b Series {
    let found: Vec<&Series> = batch.series.iter().filter(|s| &*s.name == name).collect();
    assert_eq!(found.len(), 1, "series {name} in {:#?}", batch.series);
    found[0]
}

fn tag_strs(s: &Series) -> Vec<&str> {
    s.tags.iter().collect()
}

#[test]
fn counter_sums_value_over_rate_and_sends_a_rate() {
    let (mut a, _) = agg();
    for i in 0..100 {
        a.insert(
            &line("hits", "1", MetricKind::Counter, 0.5, "a:b"),
            &[],
            1000 + i % 10,
        );
    }
    assert_eq!(a.contexts(), 1);
    let b = a.flush(1010, false);
    let s = find(&b, "hits");
    assert_eq!(s.kind, SeriesKind::Rate);
    assert_eq!(s.interval, 10);
    // 100 x 1 / 0.5 = 200 in 10 s -> 20/s, at the bucket's start.
    assert_eq!(s.points, vec![(1000, 20.0)]);
    assert_eq!(tag_strs(s), vec!["a:b"]);
    assert_eq!(&*s.host, "");
}

#[test]
fn packed_values_each_count() {
    let (mut a, _) = agg();
    a.insert(&line("hits", "1:2:3", MetricKind::Counter, 1.0, ""), &[], 5);
    let b = a.flush(10, false);
    assert_eq!(find(&b, "hits").points, vec![(0, 0.6)]);
}

#[test]
fn gauge_keeps_the_last_value() {
    let (mut a, _) = agg();
    a.insert(&line("temp", "3", MetricKind::Gauge, 1.0, ""), &[], 1);
    a.insert(&line("temp", "7.5", MetricKind::Gauge, 1.0, ""), &[], 2);
    a.insert(&line("temp", "-2", MetricKind::Gauge, 1.0, ""), &[], 3);
    let b = a.flush(10, false);
    let s = find(&b, "temp");
    assert_eq!(s.kind, SeriesKind::Gauge);
    assert_eq!(s.interval, 0);
    assert_eq!(s.points, vec![(0, -2.0)]);
}

#[test]
fn set_counts_distinct_members_with_a_bound() {
    let (mut a, tel) = agg();
    for m in ["alice", "bob", "alice", "carol", "bob"] {
        a.insert(&line("users", m, MetricKind::Set, 1.0, ""), &[], 1);
    }
    let b = a.flush(10, false);
    let s = find(&b, "users");
    assert_eq!(s.kind, SeriesKind::Gauge);
    assert_eq!(s.points, vec![(10 - 10, 3.0)]);

    let members: Vec<String> = (0..SET_MEMBER_LIMIT + 5).map(|i| format!("m{i}")).collect();
    for m in &members {
        a.insert(&line("many", m, MetricKind::Set, 1.0, ""), &[], 11);
    }
    // A member already counted is not a drop.
    a.insert(&line("many", "m0", MetricKind::Set, 1.0, ""), &[], 11);
    let b = a.flush(20, false);
    assert_eq!(find(&b, "many").points, vec![(10, SET_MEMBER_LIMIT as f64)]);
    assert_eq!(
        tel.dogstatsd.dropped.snapshot().get("set_member_limit"),
        Some(&5)
    );
}

/// A set's members move from the inline array to a hash table past a few: every size across that boundary
/// counts each distinct member once, repeats in any order included, bucket after bucket.
#[test]
fn set_counts_distinct_members_across_the_inline_boundary() {
    let (mut a, _) = agg();
    for n in 1..=16i64 {
        // Bucket n: members 0..n, each sent three times, interleaved.
        for round in 0..3 {
            for i in 0..n {
                let m = format!("u{}", (i * 17 + round) % n);
                a.insert(&line("users", &m, MetricKind::Set, 1.0, ""), &[], n * 10);
            }
        }
        let b = a.flush(n * 10 + 10, false);
        assert_eq!(
            find(&b, "users").points,
            vec![(n * 10, n as f64)],
            "{n} members"
        );
    }
}

#[test]
fn histogram_aggregates_and_percentiles_like_the_agent() {
    let (mut a, _) = agg();
    // 1..=100 in a scrambled order.
    for i in 0..100 {
        let v = ((i * 37) % 100 + 1).to_string();
        a.insert(&line("lat", &v, MetricKind::Histogram, 1.0, ""), &[], 3);
    }
    let b = a.flush(10, false);
    assert_eq!(b.series.len(), 5);
    assert_eq!(find(&b, "lat.max").points, vec![(0, 100.0)]);
    // median: first sample whose cumulative weight passes (100 - 1) / 2 = 49 -> the 50th value.
    assert_eq!(find(&b, "lat.median").points, vec![(0, 50.0)]);
    assert_eq!(find(&b, "lat.avg").points, vec![(0, 50.5)]);
    let count = find(&b, "lat.count");
    assert_eq!(count.kind, SeriesKind::Rate);
    assert_eq!(count.interval, 10);
    assert_eq!(count.points, vec![(0, 10.0)]);
    // 95th: target (95 * 100 - 1) / 100 = 94 -> the 95th value.
    let p95 = find(&b, "lat.95percentile");
    assert_eq!(p95.kind, SeriesKind::Gauge);
    assert_eq!(p95.points, vec![(0, 95.0)]);
}

#[test]
fn histogram_weights_configured_aggregates_and_timers() {
    let cfg = AggregatorConfig {
        histogram_aggregates: ["min", "sum", "count", "bogus"].map(String::from).to_vec(),
        histogram_percentiles: vec![0.5, 0.99, 2.0],
        ..AggregatorConfig::default()
    };
    let (mut a, _) = agg_with(cfg);
    // Weight trunc(1/0.25) = 4 for 10, weight 1 for 20 and 30: count 6, sum 40 + 50 = 90.
    a.insert(&line("t", "10", MetricKind::Timer, 0.25, ""), &[], 1);
    a.insert(&line("t", "20:30", MetricKind::Timer, 1.0, ""), &[], 1);
    let b = a.flush(10, false);
    let names: Vec<&str> = b.series.iter().map(|s| &*s.name).collect();
    assert_eq!(
        names,
        vec![
            "t.min",
            "t.sum",
            "t.count",
            "t.50percentile",
            "t.99percentile"
        ]
    );
    assert_eq!(find(&b, "t.min").points, vec![(0, 10.0)]);
    assert_eq!(find(&b, "t.sum").points, vec![(0, 90.0)]);
    assert_eq!(find(&b, "t.count").points, vec![(0, 0.6)]);
    // 50th: target (50 * 6 - 1) / 100 = 2 -> weight of 10 reaches 4 > 2 -> 10.
    assert_eq!(find(&b, "t.50percentile").points, vec![(0, 10.0)]);
    // 99th: target (99 * 6 - 1) / 100 = 5 -> 10 (4), 20 (5), 30 (6 > 5) -> 30.
    assert_eq!(find(&b, "t.99percentile").points, vec![(0, 30.0)]);
}

/// 20,000 samples: exact percentiles within the histogram memory budget; past a tiny budget, the percentiles
/// come from the sketch (within 1%), the other aggregates stay exact, and the approximation is counted.
#[test]
fn large_histograms_stay_exact_within_the_memory_budget() {
    let run = |memory: HistogramMemory| {
        let (mut a, tel) = agg_with(AggregatorConfig {
            histogram_memory: memory.clone(),
            ..AggregatorConfig::default()
        });
        let n = 20_000;
        for i in 1..=n {
            a.insert(
                &line("big", &i.to_string(), MetricKind::Histogram, 1.0, ""),
                &[],
                1,
            );
        }
        let b = a.flush(10, false);
        assert_eq!(find(&b, "big.max").points, vec![(0, n as f64)]);
        assert_eq!(
            find(&b, "big.avg").points,
            vec![(0, (n as f64 + 1.0) / 2.0)]
        );
        assert_eq!(find(&b, "big.count").points, vec![(0, n as f64 / 10.0)]);
        // The flushed bucket gave its memory back, but for the little capacity kept for the next one.
        assert!(memory.used() <= 1024, "{}", memory.used());
        let median = find(&b, "big.median").points[0].1;
        let p95 = find(&b, "big.95percentile").points[0].1;
        (
            median,
            p95,
            tel.dogstatsd.histogram_samples_approximated.get(),
        )
    };
    // The Agent's ranks: (20000 - 1) / 2 = 9999 -> 10000; (95 * 20000 - 1) / 100 = 18999 -> 19000.
    assert_eq!(run(HistogramMemory::default()), (10_000.0, 19_000.0, 0));
    let (median, p95, approximated) = run(HistogramMemory::new(16 << 10));
    assert!((median - 10_000.0).abs() / 10_000.0 < 0.01, "{median}");
    assert!((p95 - 19_000.0).abs() / 19_000.0 < 0.01, "{p95}");
    assert!(approximated > 15_000, "{approximated}");
    // A context that goes away gives everything back.
    let memory = HistogramMemory::default();
    let (mut a, _) = agg_with(AggregatorConfig {
        histogram_memory: memory.clone(),
        ..AggregatorConfig::default()
    });
    a.insert(&line("h", "1:2:3", MetricKind::Timer, 1.0, ""), &[], 1);
    assert!(memory.used() > 0);
    drop(a);
    assert_eq!(memory.used(), 0);
}

#[test]
fn distributions_become_agent_sketches() {
    let (mut a, _) = agg();
    let mut expected = Sketch::new();
    for i in 1..=1000 {
        let v = i.to_string();
        a.insert(
            &line("req.size", &v, MetricKind::Distribution, 1.0, "env:prod"),
            &[],
            21,
        );
        expected.insert(i as f64);
    }
    // Sample rate 0.5: weight 2.
    a.insert(
        &line(
            "req.size",
            "5000",
            MetricKind::Distribution,
            0.5,
            "env:prod",
        ),
        &[],
        22,
    );
    expected.insert_sampled(5000.0, 0.5);
    let b = a.flush(30, false);
    assert!(b.series.is_empty());
    assert_eq!(b.sketches.len(), 1);
    let s = &b.sketches[0];
    assert_eq!(&*s.name, "req.size");
    assert_eq!(s.interval, 10);
    assert_eq!(s.points.len(), 1);
    let p: &SketchPoint = &s.points[0];
    assert_eq!(p, &expected.to_point(20));
    assert_eq!(p.cnt, 1002);
    assert_eq!(p.min, 1.0);
    assert_eq!(p.max, 5000.0);
    assert_eq!(p.sum, 500_500.0 + 10_000.0);
    let p50 = expected.quantile(0.5).unwrap();
    assert!((p50 - 501.0).abs() / 501.0 < 0.01, "{p50}");
    let p99 = expected.quantile(0.99).unwrap();
    assert!((p99 - 991.0).abs() / 991.0 < 0.01, "{p99}");
}

#[test]
fn tag_order_and_duplicates_make_one_context() {
    let (mut a, _) = agg();
    a.insert(
        &line("m", "1", MetricKind::Counter, 1.0, "b:2,a:1,a:1"),
        &[],
        1,
    );
    a.insert(&line("m", "1", MetricKind::Counter, 1.0, "a:1,b:2"), &[], 1);
    a.insert(
        &line("m", "1", MetricKind::Counter, 1.0, "a:1,,b:2,b:2"),
        &[],
        1,
    );
    assert_eq!(a.contexts(), 1);
    a.insert(&line("m", "1", MetricKind::Counter, 1.0, "a:1"), &[], 1);
    assert_eq!(a.contexts(), 2);
    let b = a.flush(10, false);
    let s: Vec<&Series> = b.series.iter().filter(|s| s.tags.len() == 2).collect();
    assert_eq!(s.len(), 1);
    assert_eq!(tag_strs(s[0]), vec!["a:1", "b:2"]);
    assert_eq!(s[0].points, vec![(0, 0.3)]);
}

#[test]
fn host_tag_sets_the_host() {
    let (mut a, _) = agg();
    a.insert(
        &line("m", "1", MetricKind::Gauge, 1.0, "host:web1,a:1"),
        &[],
        1,
    );
    a.insert(
        &line("m", "2", MetricKind::Gauge, 1.0, "a:1,host:web2"),
        &[],
        1,
    );
    a.insert(&line("m", "3", MetricKind::Gauge, 1.0, "a:1"), &[], 1);
    a.insert(
        &line(
            "m",
            "4",
            MetricKind::Gauge,
            1.0,
            "a:1,dd.internal.entity_id:abc",
        ),
        &[],
        1,
    );
    // An empty `host:` tag: no host at all (its own context), not the agent's.
    a.insert(&line("m", "5", MetricKind::Gauge, 1.0, "host:,a:1"), &[], 1);
    assert_eq!(a.contexts(), 4);
    let mut b = a.flush(10, false);
    b.series.sort_by(|x, y| x.host.cmp(&y.host));
    let hosts: Vec<&str> = b.series.iter().map(|s| &*s.host).collect();
    assert_eq!(hosts, vec!["", crate::model::NO_HOST, "web1", "web2"]);
    for s in &b.series {
        assert_eq!(tag_strs(s), vec!["a:1"]);
    }
    assert_eq!(b.series[0].points, vec![(0, 4.0)]);
    assert_eq!(b.series[1].points, vec![(0, 5.0)]);
}

#[test]
fn extra_origin_and_mapper_tags_are_added() {
    let mapper = MapperProfiles::parse(
        r#"
- name: app
  prefix: "app."
  mappings:
    - match: "app.*.requests"
      name: "app.requests"
      tags: {service: "$1"}
    - match: 'app\.(\w+)\.db\.(\w+)'
      match_type: regex
      name: "app.db.${2}"
      tags: {service: "${1}"}
"#,
    )
    .unwrap();
    let cfg = AggregatorConfig {
        extra_tags: vec!["team:infra".into()],
        mapper: Some(mapper),
        ..AggregatorConfig::default()
    };
    let (mut a, _) = agg_with(cfg);
    let origin: Vec<IStr> = vec![Arc::from("container_name:api")];
    a.insert(
        &line(
            "app.checkout.requests",
            "1",
            MetricKind::Counter,
            1.0,
            "code:200",
        ),
        &origin,
        1,
    );
    a.insert(
        &line("app.cart.requests", "1", MetricKind::Counter, 1.0, ""),
        &[],
        1,
    );
    a.insert(
        &line("app.cart.db.queries", "1", MetricKind::Counter, 1.0, ""),
        &[],
        1,
    );
    a.insert(
        &line("other.metric", "1", MetricKind::Counter, 1.0, ""),
        &[],
        1,
    );
    let b = a.flush(10, false);
    let reqs: Vec<&Series> = b
        .series
        .iter()
        .filter(|s| &*s.name == "app.requests")
        .collect();
    assert_eq!(reqs.len(), 2);
    let checkout = reqs.iter().find(|s| s.tags.len() == 4).unwrap();
    assert_eq!(
        tag_strs(checkout),
        vec![
            "code:200",
            "container_name:api",
            "service:checkout",
            "team:infra"
        ]
    );
    assert_eq!(
        tag_strs(find(&b, "app.db.queries")),
        vec!["service:cart", "team:infra"]
    );
    assert_eq!(tag_strs(find(&b, "other.metric")), vec!["team:infra"]);
}

#[test]
fn timestamped_gauges_and_counters_pass_through() {
    let (mut a, _) = agg();
    let mut l = line("ts.count", "5", MetricKind::Counter, 0.5, "b,a");
    l.timestamp = Some(1_700_000_000);
    a.insert(&l, &[], 1_700_000_100);
    let mut g = line("ts.gauge", "1:2", MetricKind::Gauge, 1.0, "");
    g.timestamp = Some(1_700_000_001);
    a.insert(&g, &[], 1_700_000_100);
    assert_eq!(a.contexts(), 0);
    let b = a.flush(1_700_000_100, false);
    let c = find(&b, "ts.count");
    // The agent's no-aggregation pipeline: raw value 5 (rate ignored) as a rate over the interval.
    assert_eq!(c.kind, SeriesKind::Rate);
    assert_eq!(c.interval, 10);
    assert_eq!(c.points, vec![(1_700_000_000, 0.5)]);
    assert_eq!(tag_strs(c), vec!["a", "b"]);
    let gs: Vec<&Series> = b.series.iter().filter(|s| &*s.name == "ts.gauge").collect();
    assert_eq!(gs.len(), 2);
    assert!(gs.iter().all(|s| s.kind == SeriesKind::Gauge));
    assert_eq!(gs[0].points, vec![(1_700_000_001, 1.0)]);
    assert_eq!(gs[1].points, vec![(1_700_000_001, 2.0)]);
    drop(b);
    // Sent once, and their strings are released after.
    assert!(a.flush(1_700_000_110, false).series.is_empty());
    assert_eq!(a.st.interner.set.len(), 0);
}

#[test]
fn idle_counter_is_zero_filled_until_expiry_then_forgotten() {
    let cfg = AggregatorConfig {
        expiry_secs: 30,
        ..AggregatorConfig::default()
    };
    let (mut a, tel) = agg_with(cfg);
    a.insert(&line("c", "4", MetricKind::Counter, 1.0, "x:y"), &[], 5);
    assert_eq!(tel.dogstatsd.contexts.get(), 1);
    assert_eq!(find(&a.flush(10, false), "c").points, vec![(0, 0.4)]);
    // last sample 5: zero while 5 + 30 > bucket start.
    assert_eq!(find(&a.flush(20, false), "c").points, vec![(10, 0.0)]);
    assert_eq!(find(&a.flush(30, false), "c").points, vec![(20, 0.0)]);
    assert_eq!(find(&a.flush(40, false), "c").points, vec![(30, 0.0)]);
    assert_eq!(a.contexts(), 1);
    assert!(a.flush(50, false).series.is_empty());
    assert_eq!(a.contexts(), 0);
    assert_eq!(tel.dogstatsd.contexts.get(), 0);
    // Nothing keeps the interned strings any more.
    assert_eq!(a.st.interner.set.len(), 0);
    // A new sample brings it back.
    a.insert(&line("c", "1", MetricKind::Counter, 1.0, "x:y"), &[], 55);
    assert_eq!(find(&a.flush(60, false), "c").points, vec![(50, 0.1)]);
}

#[test]
fn idle_gauge_is_forgotten_after_a_bucket_without_samples() {
    let (mut a, tel) = agg();
    a.insert(
        &line("g", "1", MetricKind::Gauge, 1.0, "unique:tag"),
        &[],
        5,
    );
    assert_eq!(find(&a.flush(10, false), "g").points, vec![(0, 1.0)]);
    assert_eq!(a.contexts(), 1);
    assert!(a.flush(20, false).series.is_empty());
    assert_eq!(a.contexts(), 0);
    assert_eq!(tel.dogstatsd.contexts.get(), 0);
    assert_eq!(a.st.interner.set.len(), 0);
    assert!(a.st.slots.is_empty());
}

#[test]
fn bucket_boundaries() {
    let (mut a, _) = agg();
    a.insert(&line("c", "1", MetricKind::Counter, 1.0, ""), &[], 9);
    a.insert(&line("c", "10", MetricKind::Counter, 1.0, ""), &[], 10);
    assert!(a.flush(9, false).series.is_empty());
    assert_eq!(find(&a.flush(10, false), "c").points, vec![(0, 0.1)]);
    // Bucket [10, 20) is still open at 19.
    assert!(a.flush(19, false).series.is_empty());
    assert_eq!(find(&a.flush(20, false), "c").points, vec![(10, 1.0)]);
    let (mut a, _) = agg();
    a.insert(&line("g", "1", MetricKind::Gauge, 1.0, ""), &[], 10);
    assert!(a.flush(19, false).series.is_empty());
    assert_eq!(find(&a.flush(20, false), "g").points, vec![(10, 1.0)]);
}

#[test]
fn late_flush_sends_every_closed_bucket_in_one_series() {
    let (mut a, _) = agg();
    a.insert(&line("c", "1", MetricKind::Counter, 1.0, ""), &[], 5);
    a.insert(&line("c", "2", MetricKind::Counter, 1.0, ""), &[], 15);
    a.insert(&line("c", "3", MetricKind::Counter, 1.0, ""), &[], 25);
    let b = a.flush(30, false);
    assert_eq!(find(&b, "c").points, vec![(0, 0.1), (10, 0.2), (20, 0.3)]);
    a.insert(&line("h", "1", MetricKind::Histogram, 1.0, ""), &[], 35);
    a.insert(&line("h", "5", MetricKind::Histogram, 1.0, ""), &[], 45);
    let b = a.flush(50, false);
    assert_eq!(find(&b, "h.max").points, vec![(30, 1.0), (40, 5.0)]);
}

#[test]
fn force_flush_closes_the_open_bucket() {
    let (mut a, _) = agg();
    a.insert(&line("g", "1", MetricKind::Gauge, 1.0, ""), &[], 5);
    a.insert(&line("d", "1", MetricKind::Distribution, 1.0, ""), &[], 5);
    let b = a.flush(6, true);
    assert_eq!(find(&b, "g").points, vec![(0, 1.0)]);
    assert_eq!(b.sketches.len(), 1);
    assert!(a.flush(6, true).sketches.is_empty());
}

#[test]
fn context_limit_refuses_new_contexts_and_counts() {
    let cfg = AggregatorConfig {
        max_contexts: 2,
        ..AggregatorConfig::default()
    };
    let (mut a, tel) = agg_with(cfg);
    a.insert(&line("a", "1", MetricKind::Gauge, 1.0, ""), &[], 1);
    a.insert(&line("b", "1", MetricKind::Gauge, 1.0, ""), &[], 1);
    a.insert(&line("c", "1", MetricKind::Gauge, 1.0, ""), &[], 1);
    a.insert(&line("c", "1", MetricKind::Gauge, 1.0, ""), &[], 1);
    // Existing contexts still take samples.
    a.insert(&line("a", "2", MetricKind::Gauge, 1.0, ""), &[], 1);
    assert_eq!(a.contexts(), 2);
    assert_eq!(tel.dogstatsd.contexts.get(), 2);
    assert_eq!(
        tel.dogstatsd.dropped.snapshot().get("context_limit"),
        Some(&2)
    );
    let b = a.flush(10, false);
    assert_eq!(b.series.len(), 2);
    assert_eq!(find(&b, "a").points, vec![(0, 2.0)]);
}

#[test]
fn bad_values_are_counted() {
    // NaN and infinities are dropped (counted) by the parser: the aggregator sees only finite numbers.
    let (mut a, tel) = agg();
    insert_text(&mut a, &tel, "g:1|g\ng:NaN|g\nd:inf|d\nh:1:nan:2|h", 1);
    let drops = tel.dogstatsd.dropped.snapshot();
    assert_eq!(drops.get("non_finite_value"), Some(&3));
    let b = a.flush(10, false);
    assert_eq!(find(&b, "g").points, vec![(0, 1.0)]);
    assert_eq!(find(&b, "h.count").points, vec![(0, 0.2)]);
    assert!(b.sketches.is_empty());
}

#[test]
fn first_sample_of_a_bucket_sets_its_type() {
    let (mut a, _) = agg();
    // Same bucket: the counter sample is applied to the gauge as a gauge sample (last value).
    a.insert(&line("x", "1", MetricKind::Gauge, 1.0, ""), &[], 1);
    a.insert(&line("x", "2", MetricKind::Counter, 0.5, ""), &[], 2);
    // A set member sent to a counter counts as 0; numbers sent to a set are members.
    a.insert(&line("y", "3", MetricKind::Counter, 1.0, ""), &[], 1);
    a.insert(&line("y", "member", MetricKind::Set, 1.0, ""), &[], 1);
    a.insert(&line("z", "a", MetricKind::Set, 1.0, ""), &[], 1);
    a.insert(&line("z", "1:2", MetricKind::Gauge, 1.0, ""), &[], 1);
    let b = a.flush(10, false);
    let x = find(&b, "x");
    assert_eq!(
        (x.kind, x.points.clone()),
        (SeriesKind::Gauge, vec![(0, 2.0)])
    );
    let y = find(&b, "y");
    assert_eq!(
        (y.kind, y.points.clone()),
        (SeriesKind::Rate, vec![(0, 0.3)])
    );
    assert_eq!(find(&b, "z").points, vec![(0, 3.0)]);
    // Next bucket: the context takes the new type.
    a.insert(&line("x", "5", MetricKind::Counter, 1.0, ""), &[], 12);
    let b = a.flush(20, false);
    let x = find(&b, "x");
    assert_eq!(
        (x.kind, x.points.clone()),
        (SeriesKind::Rate, vec![(10, 0.5)])
    );
}

#[test]
fn distribution_and_gauge_with_same_name_are_separate() {
    let (mut a, _) = agg();
    a.insert(&line("x", "1", MetricKind::Gauge, 1.0, ""), &[], 1);
    a.insert(&line("x", "1", MetricKind::Distribution, 1.0, ""), &[], 1);
    assert_eq!(a.contexts(), 2);
    let b = a.flush(10, false);
    assert_eq!(b.series.len(), 1);
    assert_eq!(b.sketches.len(), 1);
}

#[test]
fn scratch_keeps_its_allocation() {
    let (mut a, _) = agg();
    a.insert(&line("m", "1", MetricKind::Counter, 1.0, "a,b,c,d"), &[], 1);
    let cap = a.scratch.capacity();
    assert!(cap >= 4);
    a.insert(&line("m", "1", MetricKind::Counter, 1.0, "a,b,c,d"), &[], 1);
    assert_eq!(a.scratch.capacity(), cap);
}

#[test]
fn a_new_bucket_without_valid_values_sends_nothing_for_it() {
    let (mut a, tel) = agg();
    insert_text(&mut a, &tel, "g:1|g", 5);
    // Next bucket, before the flush: only a NaN.
    insert_text(&mut a, &tel, "g:NaN|g", 15);
    let b = a.flush(20, false);
    assert_eq!(find(&b, "g").points, vec![(0, 1.0)]);
    assert_eq!(
        tel.dogstatsd.dropped.snapshot().get("non_finite_value"),
        Some(&1)
    );
}

#[test]
fn aggregator_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Aggregator>();
}

#[test]
fn tag_splitting_and_ordering_helpers_match_std() {
    for raw in ["", ",", "a", "a,b", ",a,,b,", "é:1,ü,,z", "x,"] {
        let ours: Vec<&str> = Commas::new(raw).collect();
        let std: Vec<&str> = raw.split(',').filter(|t| !t.is_empty()).collect();
        assert_eq!(ours, std, "{raw:?}");
    }
    let words = ["", "a", "ab", "b", "a:1", "a:10", "é", "z", "A"];
    for x in words {
        for y in words {
            assert_eq!(byte_cmp(x, y), x.cmp(y), "{x:?} {y:?}");
        }
    }
}

#[test]
fn a_late_flush_keeps_a_bucket_of_another_type() {
    let (mut a, _) = agg();
    a.insert(&line("x", "7", MetricKind::Gauge, 1.0, ""), &[], 5);
    a.insert(&line("x", "1", MetricKind::Counter, 1.0, ""), &[], 15);
    let b = a.flush(20, false);
    let gauge: Vec<&Series> = b
        .series
        .iter()
        .filter(|s| s.kind == SeriesKind::Gauge)
        .collect();
    let rate: Vec<&Series> = b
        .series
        .iter()
        .filter(|s| s.kind == SeriesKind::Rate)
        .collect();
    assert_eq!(gauge.len(), 1);
    assert_eq!(gauge[0].points, vec![(0, 7.0)]);
    assert_eq!(rate.len(), 1);
    // The counter, new in bucket 10, is also zero-filled for the other bucket this flush closes (as the
    // agent zero-fills every live counter for every closed bucket).
    assert_eq!(rate[0].points, vec![(0, 0.0), (10, 0.1)]);
}

/// Grouped insertion (three passes over up to `GROUP` lines) gives exactly what inserting line by line
/// gives, for lines that repeat contexts within a group, make new ones, mix types and hit the context limit.
#[test]
fn insert_group_equals_one_by_one() {
    let kinds = [
        MetricKind::Counter,
        MetricKind::Gauge,
        MetricKind::Set,
        MetricKind::Histogram,
        MetricKind::Distribution,
    ];
    let mut owned: Vec<(String, String, MetricKind, String)> = Vec::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..600u64 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let ctx = rng % 40;
        let kind = kinds[(rng >> 8) as usize % kinds.len()];
        let tags = match ctx % 4 {
            0 => format!("b:{ctx},a:1"),
            1 => format!("a:1,b:{ctx},a:1"),
            2 => format!("host:h{ctx},x:y"),
            _ => String::new(),
        };
        owned.push((format!("m{}", ctx % 7), format!("{}", i % 13), kind, tags));
    }
    let lines: Vec<MetricLine<'_>> = owned
        .iter()
        .map(|(n, v, k, t)| line(n, v, *k, 1.0, t))
        .collect();
    let cfg = AggregatorConfig {
        max_contexts: 30,
        ..AggregatorConfig::default()
    };
    let (mut one, tel_one) = agg_with(cfg.clone());
    let (mut grouped, tel_grouped) = agg_with(cfg);
    let origin: Vec<IStr> = vec![IStr::from("container_name:web")];
    for (i, l) in lines.iter().enumerate() {
        one.insert(l, &origin, 1000 + (i as i64) / 50);
    }
    for (i, chunk) in lines.chunks(50).enumerate() {
        grouped.insert_group(chunk, &origin, 1000 + i as i64);
    }
    assert_eq!(one.contexts(), grouped.contexts());
    let canon = |b: FlushBatch| {
        let mut s: Vec<String> = b.series.iter().map(|s| format!("{s:?}")).collect();
        s.extend(b.sketches.iter().map(|s| format!("{s:?}")));
        s.sort();
        s
    };
    let a = canon(one.flush(1100, false));
    assert!(a.len() > 20, "{} series", a.len());
    assert!(tel_one
        .dogstatsd
        .dropped
        .snapshot()
        .contains_key("context_limit"));
    assert_eq!(a, canon(grouped.flush(1100, false)));
    assert_eq!(
        tel_one.dogstatsd.dropped.snapshot(),
        tel_grouped.dogstatsd.dropped.snapshot()
    );
}

/// The line-text fast path: the same context sent with its tags in several orders (and duplicated) stays one
/// context with every sample counted; the same text from two origins is two contexts; contexts forgotten
/// and made again (slots reused) are found again.
#[test]
fn one_context_whatever_the_tag_order_and_origin_separates() {
    let (mut a, _) = agg();
    let forms = ["a:1,b:2", "b:2,a:1", "a:1,b:2,a:1", "b:2,,a:1"];
    let web = [IStr::from("container_name:web")];
    let db = [IStr::from("container_name:db")];
    for i in 0..400 {
        let l = line(
            "hits",
            "1",
            MetricKind::Counter,
            1.0,
            forms[i % forms.len()],
        );
        a.insert_group(
            std::slice::from_ref(&l),
            if i % 2 == 0 { &web } else { &db },
            1000,
        );
    }
    assert_eq!(a.contexts(), 2);
    let b = a.flush(1010, false);
    type TagsAndPoints<'a> = (Vec<&'a str>, Vec<(i64, f64)>);
    let mut got: Vec<TagsAndPoints<'_>> = b
        .series
        .iter()
        .map(|s| (tag_strs(s), s.points.clone()))
        .collect();
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        vec![
            (vec!["a:1", "b:2", "container_name:db"], vec![(1000, 20.0)]),
            (vec!["a:1", "b:2", "container_name:web"], vec![(1000, 20.0)]),
        ]
    );
    // Gauges that come and go: each round the previous round's contexts are forgotten and their slots
    // reused by contexts with other names.
    for round in 0..6i64 {
        let t = 2000 + round * 20;
        let names: Vec<String> = (0..50).map(|i| format!("g{round}.{i}")).collect();
        let lines: Vec<MetricLine<'_>> = names
            .iter()
            .map(|n| line(n, "3", MetricKind::Gauge, 1.0, "x:y"))
            .collect();
        a.insert_group(&lines, &[], t);
        a.insert_group(&lines, &[], t);
        let b = a.flush(t + 10, false);
        let gauges: Vec<&Series> = b
            .series
            .iter()
            .filter(|s| s.name.starts_with('g'))
            .collect();
        assert_eq!(gauges.len(), 50, "round {round}");
        assert!(gauges
            .iter()
            .all(|s| s.name.starts_with(&format!("g{round}."))));
        a.flush(t + 20, false);
    }
}

/// A flush carried out a few contexts at a time, with samples for the next bucket arriving between the
/// steps (as the listeners do while the agent flushes), sends every closed value once, and the new samples
/// in the next flush.
#[test]
fn stepped_flush_with_samples_in_between_loses_and_repeats_nothing() {
    let (mut a, _) = agg();
    let names: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
    let lines: Vec<MetricLine<'_>> = names
        .iter()
        .map(|n| line(n, "1", MetricKind::Counter, 1.0, "t:1"))
        .collect();
    for _ in 0..5 {
        a.insert_group(&lines, &[], 1005);
    }
    let mut batch = FlushBatch::default();
    let mut f = a.begin_flush(1010, false, &mut batch);
    let mut steps = 0;
    while !a.flush_step(&mut f, &mut batch, 7) {
        steps += 1;
        // Two samples per context for the open bucket [1010, 1020), before and after its turn.
        a.insert_group(&lines, &[], 1012);
        a.insert_group(&lines, &[], 1013);
    }
    a.end_flush(f);
    assert!(steps >= 5, "{steps} steps");
    assert_eq!(batch.series.len(), 40);
    for s in &batch.series {
        assert_eq!(s.points, vec![(1000, 0.5)], "{}", s.name);
    }
    // Every context got 2 samples per step in [1010, 1020).
    let next = a.flush(1020, false);
    assert_eq!(next.series.len(), 40);
    for s in &next.series {
        assert_eq!(
            s.points,
            vec![(1010, steps as f64 * 2.0 / 10.0)],
            "{}",
            s.name
        );
    }
}

#[test]
fn blocklist_drops_and_counts_by_exact_name_or_prefix_after_mapping() {
    let bl = MetricBlocklist::new(
        ["app.debug", "app.noisy.", "zz"].map(String::from).to_vec(),
        false,
    );
    assert!(bl.blocks("app.debug"));
    assert!(!bl.blocks("app.debug.more"));
    assert!(!bl.blocks("app.noisy.x"));
    let bl = MetricBlocklist::new(
        ["app.debug", "app.noisy.", "b", "zz"]
            .map(String::from)
            .to_vec(),
        true,
    );
    for (name, blocked) in [
        ("app.debug", true),
        ("app.debug.more", true),
        ("app.noisy.x", true),
        ("app.noisy", false),
        ("app.deb", false),
        ("apple", false),
        ("b", true),
        ("bz.anything", true),
        ("a", false),
        ("zz.top", true),
        ("z", false),
        ("", false),
    ] {
        assert_eq!(bl.blocks(name), blocked, "{name}");
    }
    assert!(!MetricBlocklist::default().blocks("x"));

    // In the aggregator: blocked lines (also timestamped ones) make no context and are counted, again and
    // again; others aggregate as usual.
    let (mut a, tel) = agg_with(AggregatorConfig {
        blocklist: MetricBlocklist::new(vec!["app.noisy".into()], true),
        ..AggregatorConfig::default()
    });
    for _ in 0..3 {
        let lines = [
            line("app.noisy.q", "1", MetricKind::Counter, 1.0, "a:1"),
            line("app.kept", "2", MetricKind::Counter, 1.0, "a:1"),
        ];
        a.insert_group(&lines, &[], 1000);
    }
    let mut ts = line("app.noisy.t", "5", MetricKind::Gauge, 1.0, "");
    ts.timestamp = Some(990);
    a.insert(&ts, &[], 1000);
    assert_eq!(a.contexts(), 1);
    let b = a.flush(1010, false);
    assert_eq!(b.series.len(), 1);
    assert_eq!(find(&b, "app.kept").points, vec![(1000, 0.6)]);
    let drops = tel.dogstatsd.dropped.snapshot();
    assert_eq!(drops.get("metric_blocklist").copied(), Some(4), "{drops:?}");
}

/// A context's slot stays within two cache lines (the insert path reads its first one; 100k contexts are
/// 100k slots).
#[test]
fn a_context_slot_fits_two_cache_lines() {
    let size = std::mem::size_of::<Option<super::Context>>();
    eprintln!("slot: {size} bytes");
    assert!(size <= 128, "{size}");
}

/// A histogram's and a set's closed bucket, set aside because a sample of the next bucket came before the
/// flush (reduced to its outputs then, see `Value::close`), flushes the same series as when the flush finds
/// it open.
#[test]
fn a_bucket_set_aside_flushes_the_same_series() {
    fn feed(a: &mut Aggregator) {
        for (i, v) in ["3", "1", "4", "1", "5", "9", "2", "6", "5", "3"]
            .into_iter()
            .enumerate()
        {
            let rate = if i % 3 == 0 { 0.5 } else { 1.0 };
            a.insert(
                &line("h", v, MetricKind::Histogram, rate, "x:y"),
                &[],
                1 + i as i64 % 5,
            );
        }
        for m in ["a", "b", "a", "c"] {
            a.insert(&line("s", m, MetricKind::Set, 1.0, ""), &[], 2);
        }
    }
    type Flushed = Vec<(String, SeriesKind, Vec<(i64, f64)>)>;
    fn series(b: &FlushBatch) -> Flushed {
        let mut out: Vec<_> = b
            .series
            .iter()
            .map(|s| (s.name.to_string(), s.kind, s.points.clone()))
            .collect();
        out.sort_by(|x, y| x.0.cmp(&y.0));
        out
    }
    let (mut open, _) = agg();
    feed(&mut open);
    let want = series(&open.flush(10, false));
    assert_eq!(want.len(), 6, "{want:?}");
    assert!(want.iter().any(|s| s.0 == "h.95percentile"));
    assert!(want.contains(&("s".to_string(), SeriesKind::Gauge, vec![(0, 3.0)])));

    let (mut aside, _) = agg();
    feed(&mut aside);
    // The next bucket starts before the flush: both contexts set their bucket aside.
    aside.insert(
        &line("h", "100", MetricKind::Histogram, 1.0, "x:y"),
        &[],
        12,
    );
    aside.insert(&line("s", "z", MetricKind::Set, 1.0, ""), &[], 12);
    assert_eq!(series(&aside.flush(10, false)), want);
    // The new bucket is still there, on its own.
    let next = series(&aside.flush(20, false));
    assert!(
        next.contains(&("h.max".to_string(), SeriesKind::Gauge, vec![(10, 100.0)])),
        "{next:?}"
    );
    assert!(
        next.contains(&("s".to_string(), SeriesKind::Gauge, vec![(10, 1.0)])),
        "{next:?}"
    );
}
