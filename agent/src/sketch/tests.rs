use super::*;

#[test]
fn config_matches_agent_default() {
    let p = params();
    // gamma = 1 + 2 * (1/128) = 1.015625; ln(1e-9) / ln(1.015625) = -20.7233 / 0.0155042 = -1336.63,
    // floor = -1337 = emin, so bias = -emin + 1 = 1338.
    assert_eq!(p.gamma, 1.015625);
    assert_eq!(p.bias, 1338);
    // norm.min = gamma^(1 - 1338) is just below 1e-9 (so 1e-9 itself gets key 1).
    assert!(p.norm_min <= 1e-9 && p.norm_min > 0.98e-9, "{}", p.norm_min);
}

#[test]
fn keys_match_agent_formula() {
    // key(v) = round_half_even(ln(v) / ln(1.015625)) + 1338
    assert_eq!(key(1.0), 1338); // ln(1) = 0
    assert_eq!(key(-1.0), -1338);
    assert_eq!(key(0.0), 0);
    assert_eq!(key(-0.0), 0);
    // ln(2) / 0.0155042 = 0.693147 / 0.0155042 = 44.7074 -> 45 -> 1383
    assert_eq!(key(2.0), 1383);
    // ln(10) / 0.0155042 = 2.302585 / 0.0155042 = 148.5137 -> 149 -> 1487
    assert_eq!(key(10.0), 1487);
    // ln(100) / 0.0155042 = 297.0274 -> 297 -> 1635
    assert_eq!(key(100.0), 1635);
    // ln(0.5) / 0.0155042 = -44.7074 -> -45 -> 1293
    assert_eq!(key(0.5), 1293);
    // 1e-9: -1336.63 -> -1337 -> 1 (the smallest positive key); half of it is below norm.min -> 0.
    assert_eq!(key(1e-9), 1);
    assert_eq!(key(5e-10), 0);
    assert_eq!(key(-5e-10), 0);
    // Past gamma^(32766 - 1338) ~ 1e211 values map to the +Inf key 32767.
    assert_eq!(key(1e300), 32767);
    assert_eq!(key(-1e300), -32767);
    // key(lower_bound(k)) == k (the reason the agent rounds half to even).
    for k in [1i16, 2, 500, 1338, 1383, 20000, 32766] {
        assert_eq!(key(key_lower_bound(k)), k, "k={k}");
    }
}

#[test]
fn key_edges_and_round_trip_like_the_agent_tests() {
    let p = params();
    let below = |v: f64| f64::from_bits(v.to_bits() - 1);
    let above = |v: f64| f64::from_bits(v.to_bits() + 1);
    // The agent's own expectations (pkg/quantile config_test.go): key(norm.min) = 1, just below = 0,
    // key(norm.min * gamma) = 2, key(norm.max) = maxKey.
    assert_eq!(key(p.norm_min), 1);
    assert_eq!(key(above(p.norm_min)), 1);
    assert_eq!(key(below(p.norm_min)), 0);
    assert_eq!(key(p.norm_min * p.gamma), 2);
    assert_eq!(key(key_lower_bound(MAX_KEY as i16)), MAX_KEY as i16);
    assert_eq!(key_lower_bound(INF_KEY as i16), f64::INFINITY);
    assert_eq!(key_lower_bound(-INF_KEY as i16), f64::NEG_INFINITY);
    // key(f64(k)) == k for every key, except near 1 where ln is least accurate and the key must at
    // least change between one ulp below and one ulp above.
    for k in -MAX_KEY..=MAX_KEY {
        let k = k as i16;
        let v = key_lower_bound(k);
        if key(v) == k {
            continue;
        }
        let (up, down) = if v > 0.0 {
            (above(v), below(v))
        } else {
            (below(v), above(v))
        };
        assert!(
            v.abs() <= 2.0 && v.abs() >= 0.5 && (key(up) - key(down)).abs() == 1,
            "k={k} v={v} key={}",
            key(v)
        );
    }
}

#[test]
fn quantiles_within_one_percent() {
    let mut s = Sketch::new();
    for i in 1..=10_000 {
        assert!(s.insert(i as f64));
    }
    assert_eq!(s.count(), 10_000);
    assert_eq!(s.min(), 1.0);
    assert_eq!(s.max(), 10_000.0);
    assert_eq!(s.sum(), 50_005_000.0);
    assert!((s.avg() - 5000.5).abs() < 1e-6);
    for q in [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999] {
        let exact = (q * 9_999.0_f64).round() + 1.0;
        let got = s.quantile(q).unwrap();
        let err = (got - exact).abs() / exact;
        assert!(err <= 0.01, "q={q} got={got} exact={exact} err={err}");
    }
    assert_eq!(s.quantile(0.0), Some(1.0));
    assert_eq!(s.quantile(1.0), Some(10_000.0));
    assert_eq!(Sketch::new().quantile(0.5), None);
    let p = s.to_point(42);
    assert_eq!(p.ts, 42);
    assert_eq!(p.cnt, 10_000);
    assert_eq!(p.k.len(), p.n.len());
    assert!(p.k.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(p.n.iter().map(|&n| n as i64).sum::<i64>(), 10_000);
}

#[test]
fn negative_and_zero_values() {
    let mut s = Sketch::new();
    for v in [-5.0, -1.0, 0.0, 1.0, 5.0] {
        s.insert(v);
    }
    let p = s.to_point(0);
    assert_eq!(p.k, vec![key(-5.0) as i32, -1338, 0, 1338, key(5.0) as i32]);
    assert!(p.k.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(p.n, vec![1; 5]);
    assert_eq!(s.min(), -5.0);
    assert_eq!(s.quantile(0.5).map(|v| v.abs() < 1e-9), Some(true));
}

#[test]
fn merge_equals_inserting_all() {
    let mut a = Sketch::new();
    let mut b = Sketch::new();
    let mut all = Sketch::new();
    for i in 0..5000 {
        let v = (i as f64 * 0.37).sin() * 1000.0;
        if i % 3 == 0 {
            a.insert(v);
        } else {
            b.insert(v);
        }
        all.insert(v);
    }
    a.merge(&b);
    assert_eq!(a.bins, all.bins);
    assert_eq!(a.count(), all.count());
    assert_eq!(a.min(), all.min());
    assert_eq!(a.max(), all.max());
    assert!((a.sum() - all.sum()).abs() < 1e-6);
    assert!((a.avg() - all.avg()).abs() < 1e-9);
    let (pa, pall) = (a.to_point(1), all.to_point(1));
    assert_eq!(pa.k, pall.k);
    assert_eq!(pa.n, pall.n);
}

#[test]
fn weights_from_sample_rates() {
    let mut s = Sketch::new();
    // rate 0.5 -> weight 2; rate 0.3 -> trunc(3.33) = 3 in bins and count, 3.33 * v in the sum.
    s.insert_sampled(10.0, 0.5);
    s.insert_sampled(10.0, 0.3);
    assert_eq!(s.count(), 5);
    assert!((s.sum() - (20.0 + 10.0 / 0.3)).abs() < 1e-9);
    let p = s.to_point(0);
    assert_eq!(p.k, vec![key(10.0) as i32]);
    assert_eq!(p.n, vec![5]);
    // A rate outside (0, 1] counts as 1.
    s.insert_sampled(10.0, 0.0);
    s.insert_sampled(10.0, 7.0);
    assert_eq!(s.count(), 7);
    // insert_n is n inserts.
    let mut a = Sketch::new();
    let mut b = Sketch::new();
    a.insert_n(3.5, 4);
    for _ in 0..4 {
        b.insert(3.5);
    }
    assert_eq!(a.bins, b.bins);
    assert_eq!(a.count(), b.count());
    assert_eq!(a.sum(), b.sum());
}

#[test]
fn bin_counts_overflow_into_bins_with_the_same_key() {
    let mut s = Sketch::new();
    assert!(s.insert_n(1.0, 65_535));
    s.insert(2.0);
    assert!(s.insert_n(1.0, 2));
    // 65537 of key 1338: the agent's appendSafe writes the remainder first, then a full bin.
    let p = s.to_point(0);
    assert_eq!(p.k, vec![1338, 1338, 1383]);
    assert_eq!(p.n, vec![2, 65_535, 1]);
    assert_eq!(s.count(), 65_538);
    // More of the same key goes into the first bin with that key.
    s.insert(1.0);
    assert_eq!(s.to_point(0).n, vec![3, 65_535, 1]);
}

#[test]
fn bins_are_limited_by_collapsing_the_lowest() {
    let mut s = Sketch::new();
    // Keys 1..=5000 (one value per bin boundary), far more distinct keys than the limit.
    for k in 1..=5000i16 {
        s.insert(key_lower_bound(k));
    }
    let p = s.to_point(0);
    assert_eq!(p.k.len(), BIN_LIMIT);
    // The 904 lowest keys were folded into the lowest kept key 905.
    assert_eq!(p.k[0], 905);
    assert_eq!(p.n[0], 905);
    assert_eq!(*p.k.last().unwrap(), 5000);
    assert_eq!(p.n.iter().map(|&n| n as i64).sum::<i64>(), 5000);
    assert_eq!(s.count(), 5000);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    #[test]
    fn merge_is_inserting_all(
        xs in proptest::collection::vec(-1e6f64..1e6, 0..400),
        ys in proptest::collection::vec(-1e6f64..1e6, 0..400),
    ) {
        let (mut a, mut b, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        for &x in &xs { a.insert(x); all.insert(x); }
        for &y in &ys { b.insert(y); all.insert(y); }
        a.merge(&b);
        proptest::prop_assert_eq!(&a.bins, &all.bins);
        proptest::prop_assert_eq!(a.count(), all.count());
        proptest::prop_assert!(a.bins.windows(2).all(|w| w[0].k <= w[1].k));
    }

    #[test]
    fn counts_are_kept_and_bins_bounded(
        xs in proptest::collection::vec(
            proptest::prop_oneof![-1e200f64..-1e-8, 1e-8f64..1e200], 0..6000),
    ) {
        let mut s = Sketch::new();
        for &x in &xs { s.insert(x); }
        let p = s.to_point(0);
        proptest::prop_assert!(p.k.len() <= BIN_LIMIT);
        proptest::prop_assert_eq!(p.n.iter().map(|&n| n as i64).sum::<i64>(), xs.len() as i64);
        proptest::prop_assert!(p.k.windows(2).all(|w| w[0] <= w[1]));
    }
}

#[test]
fn rejects_non_finite_and_past_max_count() {
    let mut s = Sketch::new();
    assert!(!s.insert(f64::NAN));
    assert!(!s.insert(f64::INFINITY));
    assert!(s.is_empty());
    assert!(!s.insert_sampled(1.0, 1e-12));
    assert!(s.is_empty());
}
