use super::series::{kind_code, series_to_proto, write_series_record};
use super::sketch::write_field_record;
use super::*;
use crate::intake::{Limits, CONTENT_TYPE_JSON, CONTENT_TYPE_PROTOBUF, SERIES_LIMITS};
use crate::model::{Series, SeriesKind, SketchPoint, SketchSeries, TagSet};
use proptest::prelude::*;
use prost::Message;
use std::io::Read;

fn cfg() -> EncodeConfig {
    EncodeConfig {
        hostname: "agent-host".into(),
        host_tags: vec!["env:prod".into(), "team:infra".into()],
        use_protobuf: true,
    }
}

/// A whole batch of series through [`SeriesEncoder`], as the flush streams them, within `limits` (the
/// intake's when `None`).
fn encode_series(c: &EncodeConfig, series: &[Series], limits: Option<Limits>) -> EncodeOutcome {
    let mut enc = SeriesEncoder::with_limits(c, limits.unwrap_or(SERIES_LIMITS));
    for s in series {
        enc.push(s.as_ref());
    }
    enc.finish().unwrap()
}

fn decompress(p: &Payload) -> Vec<u8> {
    match p.content_encoding {
        Some("zstd") => zstd::stream::decode_all(&p.body[..]).expect("valid zstd"),
        Some("deflate") => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(&p.body[..])
                .read_to_end(&mut out)
                .expect("valid zlib");
            out
        }
        other => panic!("unexpected encoding {other:?}"),
    }
}

fn istrs(v: &[String]) -> TagSet {
    TagSet::from(v)
}

fn mk_series(
    name: &str,
    tags: &[String],
    host: &str,
    kind: SeriesKind,
    points: Vec<(i64, f64)>,
) -> Series {
    Series {
        name: name.into(),
        tags: istrs(tags),
        host: host.into(),
        kind,
        interval: 10,
        points,
    }
}

/// (name, tags, host, type, interval, points)
type Flat = (String, Vec<String>, String, i32, i64, Vec<(i64, f64)>);

/// The series as the intake should see them: host resolved and host tags appended.
fn expected(cfg: &EncodeConfig, s: &Series) -> Flat {
    let mut tags: Vec<String> = s.tags.iter().map(|t| t.to_string()).collect();
    for t in &cfg.host_tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let host = if s.host.is_empty() {
        cfg.hostname.clone()
    } else if &*s.host == crate::model::NO_HOST {
        String::new()
    } else {
        s.host.to_string()
    };
    (
        s.name.to_string(),
        tags,
        host,
        kind_code(s.kind),
        s.interval,
        s.points.clone(),
    )
}

fn decode_series(payloads: &[Payload]) -> Vec<Flat> {
    let mut out = Vec::new();
    for p in payloads {
        assert_eq!(p.endpoint, Endpoint::Series);
        assert_eq!(p.content_type, CONTENT_TYPE_PROTOBUF);
        let raw = decompress(p);
        assert_eq!(raw.len(), p.uncompressed_len);
        let msg = proto::MetricPayload::decode(&raw[..]).expect("valid MetricPayload");
        assert_eq!(msg.series.len(), p.items);
        for s in msg.series {
            // One host resource, or none for a series without a host.
            assert!(s.resources.len() <= 1);
            assert!(s
                .resources
                .iter()
                .all(|r| r.r#type == "host" && !r.name.is_empty()));
            out.push((
                s.metric,
                s.tags,
                s.resources
                    .first()
                    .map(|r| r.name.clone())
                    .unwrap_or_default(),
                s.r#type,
                s.interval,
                s.points.iter().map(|p| (p.timestamp, p.value)).collect(),
            ));
        }
    }
    out
}

fn arb_series() -> impl Strategy<Value = Series> {
    (
        "[a-z][a-z0-9_.]{0,30}",
        proptest::collection::vec("[a-z0-9_:./-]{1,40}", 0..8),
        prop_oneof![
            Just(String::new()),
            Just(crate::model::NO_HOST.to_string()),
            "[a-z][a-z0-9-]{0,20}"
        ],
        prop_oneof![
            Just(SeriesKind::Gauge),
            Just(SeriesKind::Rate),
            Just(SeriesKind::Count)
        ],
        proptest::collection::vec((0i64..2_000_000_000, -1e12f64..1e12), 0..4),
    )
        .prop_map(|(name, tags, host, kind, points)| mk_series(&name, &tags, &host, kind, points))
}

fn arb_sketch() -> impl Strategy<Value = SketchSeries> {
    let point = (
        0i64..2_000_000_000,
        proptest::collection::vec((any::<i16>(), 1u32..u32::MAX), 0..40),
        any::<f64>(),
    )
        .prop_map(|(ts, bins, x)| {
            let mut k: Vec<i32> = bins.iter().map(|(k, _)| i32::from(*k)).collect();
            k.sort_unstable();
            let n = bins.iter().map(|(_, n)| *n).collect();
            SketchPoint {
                ts,
                cnt: k.len() as i64,
                min: x,
                max: x,
                avg: x,
                sum: x,
                k,
                n,
            }
        });
    (
        "[a-z][a-z0-9_.]{0,30}",
        proptest::collection::vec("[a-z0-9_:]{1,20}", 0..5),
        prop_oneof![Just(String::new()), "[a-z]{1,10}"],
        proptest::collection::vec(point, 0..3),
    )
        .prop_map(|(name, tags, host, points)| SketchSeries {
            name: name.as_str().into(),
            tags: istrs(&tags),
            host: host.as_str().into(),
            interval: 10,
            points,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// encode → zstd decode → prost decode gives back every series exactly once, in order, with host and host
    /// tags applied; and every payload respects the (small, to force splitting) limits.
    #[test]
    fn series_round_trip_and_split(series in proptest::collection::vec(arb_series(), 0..120),
                                   max_c in 300usize..3000, max_u in 600usize..6000) {
        let c = cfg();
        let limits = Limits { max_compressed: max_c, max_uncompressed: max_u };
        let out = encode_series(&c, &series, Some(limits));
        for p in &out.payloads {
            prop_assert!(p.body.len() <= max_c, "compressed {} > {}", p.body.len(), max_c);
            prop_assert!(p.uncompressed_len <= max_u);
        }
        let got = decode_series(&out.payloads);
        // Every series that fits alone is there exactly once and in order; the others were dropped.
        let want: Vec<_> = series.iter().map(|s| expected(&c, s)).collect();
        prop_assert_eq!(got.len() + out.dropped_too_large, want.len());
        let mut wi = 0;
        for g in &got {
            while wi < want.len() && &want[wi] != g { wi += 1; }
            prop_assert!(wi < want.len(), "decoded series not found in order: {:?}", g);
            wi += 1;
        }
    }

    /// With real limits nothing is dropped and everything round-trips exactly.
    #[test]
    fn hand_written_series_record_equals_prost(s in arb_series(), host_tags in proptest::collection::vec("[a-z:]{0,6}", 0..3)) {
        let mut c = cfg();
        c.host_tags = host_tags;
        // Default values prost leaves out: timestamp 0, value 0.0 (and -0.0), interval 0.
        let mut s = s;
        s.points.extend([(0, 0.0), (5, -0.0), (0, f64::NAN)]);
        let mut ours = Vec::new();
        write_series_record(&c, &s.as_ref(), &mut ours);
        let mut theirs = Vec::new();
        write_field_record(1, &series_to_proto(&c, &s.as_ref()), &mut theirs);
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn series_round_trip_real_limits(series in proptest::collection::vec(arb_series(), 0..60)) {
        let c = cfg();
        let out = encode_series(&c, &series, None);
        prop_assert_eq!(out.dropped_too_large, 0);
        prop_assert_eq!(out.payloads.len(), usize::from(!series.is_empty()));
        let want: Vec<_> = series.iter().map(|s| expected(&c, s)).collect();
        prop_assert_eq!(decode_series(&out.payloads), want);
    }

    #[test]
    fn sketches_round_trip_and_split(sketches in proptest::collection::vec(arb_sketch(), 0..40),
                                     max_c in 400usize..4000) {
        let c = cfg();
        let limits = Limits { max_compressed: max_c, max_uncompressed: max_c * 3 };
        let mut enc = SketchEncoder::with_limits(&c, limits);
        for s in &sketches {
            enc.push(s.as_ref());
        }
        let out = enc.finish().unwrap();
        let mut got = Vec::new();
        for p in &out.payloads {
            prop_assert_eq!(p.endpoint, Endpoint::Sketches);
            prop_assert!(p.body.len() <= limits.max_compressed);
            prop_assert!(p.uncompressed_len <= limits.max_uncompressed);
            let raw = decompress(p);
            let msg = proto::SketchPayload::decode(&raw[..]).unwrap();
            prop_assert!(msg.metadata.is_some(), "metadata must always be present");
            prop_assert_eq!(msg.sketches.len(), p.items);
            got.extend(msg.sketches);
        }
        prop_assert_eq!(got.len() + out.dropped_too_large, sketches.len());
        let mut wi = 0;
        for g in &got {
            while wi < sketches.len() && sketches[wi].name.as_ref() != g.metric { wi += 1; }
            prop_assert!(wi < sketches.len());
            let s = &sketches[wi];
            let want_host = if s.host.is_empty() { "agent-host" } else { &s.host };
            prop_assert_eq!(&g.host, want_host);
            prop_assert!(c.host_tags.iter().all(|t| g.tags.contains(t)));
            prop_assert_eq!(g.dogsketches.len(), s.points.len());
            for (d, p) in g.dogsketches.iter().zip(&s.points) {
                prop_assert_eq!(d.ts, p.ts);
                prop_assert_eq!(d.cnt, p.cnt);
                prop_assert_eq!(&d.k, &p.k);
                prop_assert_eq!(&d.n, &p.n);
                // proto3 does not write 0.0, so -0.0 comes back as 0.0: compare as numbers (NaN stays NaN).
                prop_assert!(d.sum == p.sum || (d.sum.is_nan() && p.sum.is_nan()));
            }
            wi += 1;
        }
    }
}

#[test]
fn dogsketch_k_is_zigzag_and_n_is_plain_varint() {
    // Field 7 packed sint32: [-1, 1] → zigzag 1, 2. Field 8 packed uint32: [3].
    let d = proto::Dogsketch {
        k: vec![-1, 1],
        n: vec![3],
        ..Default::default()
    };
    let bytes = d.encode_to_vec();
    assert_eq!(bytes, vec![0x3a, 0x02, 0x01, 0x02, 0x42, 0x01, 0x03]);
}

#[test]
fn metric_series_field_numbers() {
    let s = proto::MetricSeries {
        resources: vec![proto::Resource {
            r#type: "host".into(),
            name: "h".into(),
        }],
        metric: "m".into(),
        tags: vec!["t".into()],
        points: vec![proto::MetricPoint {
            value: 1.0,
            timestamp: 2,
        }],
        r#type: 3,
        interval: 10,
        ..Default::default()
    };
    let b = s.encode_to_vec();
    // resources (1, LEN) = {type (1) "host", name (2) "h"}
    assert_eq!(
        &b[..11],
        &[0x0a, 0x09, 0x0a, 0x04, b'h', b'o', b's', b't', 0x12, 0x01, b'h']
    );
    // metric (2), tags (3)
    assert_eq!(&b[11..17], &[0x12, 0x01, b'm', 0x1a, 0x01, b't']);
    // points (4) = {value (1, fixed64) 1.0, timestamp (2, varint) 2}
    assert_eq!(b[17], 0x22);
    assert_eq!(b[18], 11);
    assert_eq!(b[19], 0x09);
    assert_eq!(&b[28..30], &[0x10, 0x02]);
    // type (5) = 3, interval (8) = 10
    assert_eq!(&b[30..], &[0x28, 0x03, 0x40, 0x0a]);
}

#[test]
fn json_series_body() {
    let c = EncodeConfig {
        use_protobuf: false,
        ..cfg()
    };
    let s = vec![
        mk_series(
            "a.b",
            &["x:1".into()],
            "",
            SeriesKind::Rate,
            vec![(100, 2.5), (110, f64::NAN)],
        ),
        mk_series("c", &[], "other", SeriesKind::Gauge, vec![(100, 1.0)]),
    ];
    let p = encode_series(&c, &s, None).payloads;
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].content_type, CONTENT_TYPE_JSON);
    let v: serde_json::Value = serde_json::from_slice(&decompress(&p[0])).unwrap();
    let arr = v["series"].as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0]["metric"], "a.b");
    assert_eq!(arr[0]["type"], 2);
    assert_eq!(arr[0]["interval"], 10);
    assert_eq!(
        arr[0]["points"],
        serde_json::json!([{"timestamp": 100, "value": 2.5}])
    );
    assert_eq!(
        arr[0]["resources"],
        serde_json::json!([{"type": "host", "name": "agent-host"}])
    );
    assert_eq!(
        arr[0]["tags"],
        serde_json::json!(["x:1", "env:prod", "team:infra"])
    );
    assert_eq!(arr[1]["resources"][0]["name"], "other");
    assert_eq!(arr[1]["type"], 3);
}

#[test]
fn json_series_split_is_valid_json_each() {
    let c = EncodeConfig {
        use_protobuf: false,
        ..cfg()
    };
    let series: Vec<Series> = (0..200)
        .map(|i| {
            mk_series(
                &format!("metric.{i}"),
                &[format!("i:{i}")],
                "",
                SeriesKind::Gauge,
                vec![(1, i as f64)],
            )
        })
        .collect();
    let out = encode_series(
        &c,
        &series,
        Some(Limits {
            max_compressed: 2000,
            max_uncompressed: 4000,
        }),
    );
    assert!(out.payloads.len() > 1);
    let mut names = Vec::new();
    for p in &out.payloads {
        let v: serde_json::Value = serde_json::from_slice(&decompress(p)).unwrap();
        for s in v["series"].as_array().unwrap() {
            names.push(s["metric"].as_str().unwrap().to_string());
        }
    }
    let want: Vec<String> = (0..200).map(|i| format!("metric.{i}")).collect();
    assert_eq!(names, want);
}

#[test]
fn oversized_series_is_dropped_and_counted() {
    let big: Vec<String> = (0..100)
        .map(|i| format!("tag{i}:{}", "x".repeat(50)))
        .collect();
    let series = vec![
        mk_series("small", &[], "", SeriesKind::Gauge, vec![(1, 1.0)]),
        mk_series("huge", &big, "", SeriesKind::Gauge, vec![(1, 1.0)]),
        mk_series("small2", &[], "", SeriesKind::Gauge, vec![(1, 1.0)]),
    ];
    let out = encode_series(
        &cfg(),
        &series,
        Some(Limits {
            max_compressed: 1000,
            max_uncompressed: 2000,
        }),
    );
    assert_eq!(out.dropped_too_large, 1);
    let names: Vec<String> = decode_series(&out.payloads)
        .into_iter()
        .map(|s| s.0)
        .collect();
    assert_eq!(names, vec!["small", "small2"]);
}

#[test]
fn incompressible_series_are_split_below_compressed_limit() {
    // Random-looking tags barely compress, so the size estimate is wrong at first and halving must kick in.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        format!("{x:016x}")
    };
    let series: Vec<Series> = (0..300)
        .map(|i| {
            let tags: Vec<String> = (0..4).map(|_| rnd()).collect();
            mk_series(
                &format!("m{i}"),
                &tags,
                "",
                SeriesKind::Gauge,
                vec![(1, 1.0)],
            )
        })
        .collect();
    let limits = Limits {
        max_compressed: 4096,
        max_uncompressed: 1 << 20,
    };
    let out = encode_series(&cfg(), &series, Some(limits));
    assert_eq!(out.dropped_too_large, 0);
    assert!(out.payloads.len() > 1);
    assert!(out.payloads.iter().all(|p| p.body.len() <= 4096));
    assert_eq!(decode_series(&out.payloads).len(), 300);
}

#[test]
fn event_body_defaults_host_adds_tags_truncates() {
    let ev = Event {
        title: "t".repeat(150),
        text: "body".into(),
        tags: vec!["a:b".into(), "env:prod".into()],
        alert_type: Some("error".into()),
        ..Default::default()
    };
    let p = encode_event(&cfg(), &ev).unwrap();
    assert_eq!(p.endpoint, Endpoint::Events);
    assert_eq!(p.items, 1);
    let v: serde_json::Value = serde_json::from_slice(&decompress(&p)).unwrap();
    assert_eq!(v["host"], "agent-host");
    assert_eq!(v["title"].as_str().unwrap().chars().count(), 100);
    assert_eq!(v["text"], "body");
    assert_eq!(v["alert_type"], "error");
    assert_eq!(
        v["tags"],
        serde_json::json!(["a:b", "env:prod", "team:infra"])
    );

    let ev2 = Event {
        hostname: Some("elsewhere".into()),
        title: "é".repeat(101),
        ..Default::default()
    };
    let v: serde_json::Value =
        serde_json::from_slice(&decompress(&encode_event(&cfg(), &ev2).unwrap())).unwrap();
    assert_eq!(v["host"], "elsewhere");
    assert_eq!(v["title"].as_str().unwrap(), "é".repeat(100));
}

/// An empty `host:` tag on an event or service check means no host (as the Datadog Agent sends it), not the
/// agent's hostname.
#[test]
fn an_empty_host_is_sent_as_no_host() {
    let ev = Event {
        title: "t".into(),
        hostname: Some(String::new()),
        ..Default::default()
    };
    let v: serde_json::Value =
        serde_json::from_slice(&decompress(&encode_event(&cfg(), &ev).unwrap())).unwrap();
    assert_eq!(v["host"], "");
    let check = ServiceCheck {
        check: "c".into(),
        hostname: Some(String::new()),
        ..Default::default()
    };
    let p = encode_service_checks(&cfg(), &[check]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&decompress(&p[0])).unwrap();
    assert_eq!(v[0]["host_name"], "");
}

#[test]
fn service_checks_json_array() {
    let checks = vec![
        ServiceCheck {
            check: "app.ok".into(),
            status: 0,
            timestamp: Some(5),
            ..Default::default()
        },
        ServiceCheck {
            check: "app.bad".into(),
            status: 2,
            hostname: Some("h2".into()),
            message: Some("boom".into()),
            ..Default::default()
        },
    ];
    let p = encode_service_checks(&cfg(), &checks).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].endpoint, Endpoint::CheckRun);
    assert_eq!(p[0].items, 2);
    let v: serde_json::Value = serde_json::from_slice(&decompress(&p[0])).unwrap();
    assert_eq!(v[0]["check"], "app.ok");
    assert_eq!(v[0]["host_name"], "agent-host");
    assert_eq!(v[0]["timestamp"], 5);
    assert_eq!(v[0]["tags"], serde_json::json!(["env:prod", "team:infra"]));
    assert_eq!(v[1]["host_name"], "h2");
    assert_eq!(v[1]["status"], 2);
    assert_eq!(v[1]["message"], "boom");
    assert!(encode_service_checks(&cfg(), &[]).unwrap().is_empty());
}

#[test]
fn endpoint_names_round_trip() {
    for e in [
        Endpoint::Series,
        Endpoint::Sketches,
        Endpoint::Events,
        Endpoint::CheckRun,
        Endpoint::Profile,
    ] {
        assert_eq!(Endpoint::from_name(e.name()), Some(e));
        assert!(e.path().starts_with("/api/"));
    }
    assert_eq!(Endpoint::from_name("nope"), None);
}
