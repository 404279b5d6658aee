//! Tests of the DogStatsD parser.

use super::*;
use crate::model::{Event, MetricKind, MetricLine, Numbers, Parsed, ServiceCheck};
use crate::telemetry::Telemetry;
use kelpie_container::tags::TagCardinality;

fn metric(line: &str) -> MetricLine<'_> {
    match parse(line.as_bytes()) {
        Ok(Parsed::Metric(m)) => m,
        other => panic!("{line:?} did not parse as a metric: {other:?}"),
    }
}

fn event(line: &str) -> Event {
    match parse(line.as_bytes()) {
        Ok(Parsed::Event(e)) => *e,
        other => panic!("{line:?} did not parse as an event: {other:?}"),
    }
}

fn check(line: &str) -> ServiceCheck {
    match parse(line.as_bytes()) {
        Ok(Parsed::ServiceCheck(c)) => *c,
        other => panic!("{line:?} did not parse as a service check: {other:?}"),
    }
}

/// [`parse_line`] with an arena that lives as long as the test.
fn parse(line: &[u8]) -> Result<Parsed<'_>, ParseError> {
    parse_line(line, Box::leak(Box::default()))
}

fn values(m: &MetricLine<'_>) -> Vec<f64> {
    m.numbers().to_vec()
}

#[test]
fn every_metric_type() {
    let cases = [
        ("a:1|c", MetricKind::Counter),
        ("a:1|g", MetricKind::Gauge),
        ("a:1|h", MetricKind::Histogram),
        ("a:1|d", MetricKind::Distribution),
        ("a:1|ms", MetricKind::Timer),
        ("a:1|s", MetricKind::Set),
    ];
    for (line, kind) in cases {
        let m = metric(line);
        assert_eq!(m.kind, kind, "{line}");
        assert_eq!(m.name, "a");
        assert_eq!(m.values, "1");
        assert_eq!(m.sample_rate, 1.0);
        assert_eq!(m.tags, "");
        assert_eq!(m.container_id, None);
        assert_eq!(m.timestamp, None);
    }
}

#[test]
fn typical_line_with_everything() {
    let m = metric(
        "page.views:12.5|c|@0.25|#env:prod,service:web,host:a,version:1.2|c:abc123|T1700000000",
    );
    assert_eq!(
        m,
        MetricLine {
            name: "page.views",
            values: "12.5",
            numbers: Numbers::One(12.5),
            kind: MetricKind::Counter,
            sample_rate: 0.25,
            tags: "env:prod,service:web,host:a,version:1.2",
            container_id: Some("abc123"),
            cardinality: None,
            timestamp: Some(1_700_000_000),
        }
    );
    assert_eq!(values(&m), vec![12.5]);
    assert_eq!(
        m.tags().collect::<Vec<_>>(),
        ["env:prod", "service:web", "host:a", "version:1.2"]
    );
}

#[test]
fn optional_fields_in_any_order() {
    let m = metric("x:3|c|T42|c:ci-99|#a,b|card:orchestrator|@0.5");
    assert_eq!(m.timestamp, Some(42));
    assert_eq!(m.container_id, Some("ci-99"));
    assert_eq!(m.tags, "a,b");
    assert_eq!(m.sample_rate, 0.5);
    assert_eq!(m.cardinality, Some(TagCardinality::Orchestrator));
    // A cardinality the agent does not know is ignored, as Datadog's does; the rest of the line is kept.
    let m = metric("x:3|c|card:medium|#a");
    assert_eq!((m.cardinality, m.tags), (None, "a"));
    assert_eq!(
        event("_e{1,1}:a|b|card:HIGH|c:ci-1").cardinality,
        Some(TagCardinality::High)
    );
    assert_eq!(
        check("_sc|x|0|card:none").cardinality,
        Some(TagCardinality::None)
    );
}

#[test]
fn packed_values() {
    let m = metric("lat:1:2.5:-3:1e3|h|#a:b");
    assert_eq!(m.values, "1:2.5:-3:1e3");
    assert_eq!(values(&m), vec![1.0, 2.5, -3.0, 1000.0]);
    // Empty entries are skipped, as the Datadog Agent does.
    let m = metric("lat:1::2:|d");
    assert_eq!(values(&m), vec![1.0, 2.0]);
}

#[test]
fn number_forms() {
    for (raw, want) in [
        ("0", 0.0),
        ("007", 7.0),
        ("123456789012345", 123_456_789_012_345.0),
        ("1234567890123456789", 1_234_567_890_123_456_789.0),
        ("-0.5", -0.5),
        (".5", 0.5),
        ("1.", 1.0),
        ("2.5e-3", 0.0025),
        ("1E2", 100.0),
    ] {
        let line = format!("n:{raw}|g");
        assert_eq!(values(&metric(&line)), vec![want], "{line}");
    }
}

#[test]
fn gauge_sign_is_not_relative() {
    // DogStatsD has no relative gauge updates: the sign belongs to the number.
    assert_eq!(values(&metric("temp:+5|g")), vec![5.0]);
    assert_eq!(values(&metric("temp:-5|g")), vec![-5.0]);
}

#[test]
fn set_values_are_taken_as_is() {
    let m = metric("users:alice|s|#a");
    assert_eq!(m.kind, MetricKind::Set);
    assert_eq!(m.values, "alice");
    assert_eq!(values(&m), Vec::<f64>::new());
    // A set member may contain colons and non-numbers.
    assert_eq!(metric("ids:a:b:c|s").values, "a:b:c");
    assert_eq!(metric("ids:nan|s").values, "nan");
}

#[test]
fn tags_last_field_wins_and_empty_entries_are_skipped() {
    let m = metric("a:1|c|#x:1|#y:2,,z");
    assert_eq!(m.tags, "y:2,,z");
    assert_eq!(m.tags().collect::<Vec<_>>(), ["y:2", "z"]);
    assert_eq!(metric("a:1|c|#").tags, "");
}

#[test]
fn container_id_forms() {
    assert_eq!(metric("a:1|c|c:ci-1234").container_id, Some("ci-1234"));
    assert_eq!(metric("a:1|c|c:in-5678").container_id, Some("in-5678"));
    assert_eq!(metric("a:1|c|c:ci-1,in-2").container_id, Some("ci-1,in-2"));
    assert_eq!(metric("a:1|c|c:").container_id, None);
    // `card:` is another field, not a container id.
    assert_eq!(metric("a:1|c|card:high").container_id, None);
}

#[test]
fn unknown_extension_fields_are_ignored() {
    let m = metric("a:1|c|e:it-false,cn-foo|x:whatever||#t|zzz|card:low");
    assert_eq!(m.tags, "t");
    assert_eq!(m.sample_rate, 1.0);
}

#[test]
fn name_may_hold_any_utf8_but_no_colon() {
    let m = metric("métrique.vitesse:2|g");
    assert_eq!(m.name, "métrique.vitesse");
    // The first `:` ends the name; `b` is then a bad value.
    assert_eq!(parse(b"a:b:1|c"), Err(ParseError::InvalidValue));
}

#[test]
fn events_basic_and_utf8_lengths_in_bytes() {
    let e = event("_e{5,4}:title|text");
    assert_eq!(
        e,
        Event {
            title: "title".into(),
            text: "text".into(),
            ..Event::default()
        }
    );
    // "héllo wörld" is 11 characters and 13 bytes; "日本" is 6 bytes.
    let e = event("_e{13,6}:héllo wörld|日本|#a:b");
    assert_eq!(e.title, "héllo wörld");
    assert_eq!(e.text, "日本");
    assert_eq!(e.tags, ["a:b"]);
    // A title or text may contain `|` since lengths delimit them.
    let e = event("_e{3,3}:a|b|c|d");
    assert_eq!((e.title.as_str(), e.text.as_str()), ("a|b", "c|d"));
    // Empty text is allowed.
    assert_eq!(event("_e{1,0}:t|").text, "");
}

#[test]
fn event_escaped_newlines() {
    let e = event(r"_e{10,12}:two\nlines|line1\nline2");
    assert_eq!(e.title, "two\nlines");
    assert_eq!(e.text, "line1\nline2");
}

#[test]
fn event_every_field() {
    let e = event(
        "_e{6,4}:Deploy|done|d:1700000000|h:web-1|k:deploy-42|p:low|s:jenkins|t:success|#env:prod,team:a|c:ci-1",
    );
    assert_eq!(
        e,
        Event {
            title: "Deploy".into(),
            text: "done".into(),
            timestamp: Some(1_700_000_000),
            hostname: Some("web-1".into()),
            aggregation_key: Some("deploy-42".into()),
            priority: Some("low".into()),
            source_type_name: Some("jenkins".into()),
            alert_type: Some("success".into()),
            tags: vec!["env:prod".into(), "team:a".into()],
            container: Some("ci-1".into()),
            cardinality: None,
        }
    );
    for t in ["error", "warning", "info", "success"] {
        assert_eq!(
            event(&format!("_e{{1,1}}:a|b|t:{t}")).alert_type.as_deref(),
            Some(t)
        );
    }
    assert_eq!(
        event("_e{1,1}:a|b|p:normal").priority.as_deref(),
        Some("normal")
    );
}

#[test]
fn event_invalid_optional_fields_are_ignored_like_the_agent() {
    let e = event("_e{1,1}:a|b|d:soon|p:urgent|t:fatal|h:|#x");
    assert_eq!(e.timestamp, None);
    assert_eq!(e.priority, None);
    assert_eq!(e.alert_type, None);
    assert_eq!(e.hostname, None);
    assert_eq!(e.tags, ["x"]);
}

#[test]
fn service_check_minimal_and_every_status() {
    for status in 0..=3u8 {
        let c = check(&format!("_sc|db.up|{status}"));
        assert_eq!(
            c,
            ServiceCheck {
                check: "db.up".into(),
                status,
                ..ServiceCheck::default()
            }
        );
    }
}

#[test]
fn service_check_every_field() {
    let c = check(
        "_sc|db.up|2|d:1700000000|h:db-1|#env:prod,role:db|c:ci-7|m:connection refused: port 5432",
    );
    assert_eq!(
        c,
        ServiceCheck {
            check: "db.up".into(),
            status: 2,
            timestamp: Some(1_700_000_000),
            hostname: Some("db-1".into()),
            message: Some("connection refused: port 5432".into()),
            tags: vec!["env:prod".into(), "role:db".into()],
            container: Some("ci-7".into()),
            cardinality: None,
        }
    );
    // Invalid optional fields are ignored, as the agent does.
    let c = check("_sc|x|0|d:later|h:");
    assert_eq!((c.timestamp, c.hostname), (None, None));
}

#[test]
fn malformed_lines_each_with_its_error() {
    use ParseError::*;
    let table: &[(&[u8], ParseError)] = &[
        (b"", Empty),
        (b"a:1|c\xff", NotUtf8),
        (b"\xc3(:1|c", NotUtf8),
        (b"a:1", MissingType),
        (b"plain garbage", MissingType),
        (b"a|c", MissingValue),
        (b":1|c", EmptyName),
        (b"a:|c", EmptyValue),
        (b"a::|c", EmptyValue),
        (b"a:x|c", InvalidValue),
        (b"a:1x|g", InvalidValue),
        (b"a:1:2:oops|h", InvalidValue),
        (b"a:nan|g", NonFiniteValue),
        (b"a:inf|c", NonFiniteValue),
        (b"a:-infinity|d", NonFiniteValue),
        (b"a:NaN:+Inf|h", NonFiniteValue),
        (b"a:+nan|g", InvalidValue),
        (b"a:infin|g", InvalidValue),
        (b"a:1e400|g", InvalidValue),
        (b"a: 1|g", InvalidValue),
        (b"a:0x10|g", InvalidValue),
        (b"a:1|", UnknownType),
        (b"a:1|x", UnknownType),
        (b"a:1|cc", UnknownType),
        (b"a:1|G", UnknownType),
        (b"a:1||c", UnknownType),
        (b"a:1|c|@-0.5", InvalidSampleRate),
        (b"a:1|c|@inf", InvalidSampleRate),
        (b"a:1|c|@1e-320", InvalidSampleRate),
        (b"a:1|c|@", InvalidSampleRate),
        (b"a:1|c|@abc", InvalidSampleRate),
        (b"a:1|c|@nan", InvalidSampleRate),
        (b"a:1|g|T", InvalidTimestamp),
        (b"a:1|g|T0", InvalidTimestamp),
        (b"a:1|g|T-5", InvalidTimestamp),
        (b"a:1|g|T12.5", InvalidTimestamp),
        (b"a:1|g|Tsoon", InvalidTimestamp),
        (b"a:1|h|T1700000000", TimestampUnsupportedType),
        (b"a:1|ms|T1700000000", TimestampUnsupportedType),
        (b"a:1|d|T1700000000", TimestampUnsupportedType),
        (b"a:x|s|T1700000000", TimestampUnsupportedType),
        (b"_e{", InvalidEventHeader),
        (b"_e{5,4:title|text", InvalidEventHeader),
        (b"_e{5}:title|text", InvalidEventHeader),
        (b"_e{a,4}:title|text", InvalidEventHeader),
        (b"_e{5,-4}:title|text", InvalidEventHeader),
        (b"_e{+5,4}:title|text", InvalidEventHeader),
        (b"_e{5,4}title|text", InvalidEventHeader),
        (b"_e{,}:", InvalidEventHeader),
        (b"_e{99999999999999999999999,1}:a|b", InvalidEventHeader),
        (b"_e{0,4}:|text", EmptyEventTitle),
        (b"_e{5,5}:title|text", EventTooShort),
        (b"_e{50,4}:title|text", EventTooShort),
        (
            b"_e{18446744073709551615,18446744073709551615}:a|b",
            EventTooShort,
        ),
        (b"_e{4,4}:title|text", EventLengthMismatch),
        (b"_e{5,3}:title|text", EventLengthMismatch),
        // Character lengths instead of byte lengths.
        ("_e{5,2}:héllo|ab".as_bytes(), EventLengthMismatch),
        (b"_sc|", InvalidServiceCheck),
        (b"_sc|name", InvalidServiceCheck),
        (b"_sc||0", EmptyServiceCheckName),
        (b"_sc|name|", InvalidServiceCheckStatus),
        (b"_sc|name|4", InvalidServiceCheckStatus),
        (b"_sc|name|ok", InvalidServiceCheckStatus),
        (b"_sc|name|00", InvalidServiceCheckStatus),
        (b"_sc|name|#a:b|0", InvalidServiceCheckStatus),
    ];
    for (line, want) in table {
        assert_eq!(
            parse(line),
            Err(*want),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn errors_read_as_one_sentence() {
    for err in [
        ParseError::InvalidValue,
        ParseError::EventLengthMismatch,
        ParseError::InvalidEventHeader,
    ] {
        let text = err.to_string();
        assert!(text.starts_with("the ") || text.starts_with("a "), "{text}");
        assert!(!text.contains('\n'));
    }
    assert_eq!(
        ParseError::InvalidEventHeader.to_string(),
        "the event header is not `_e{<title length>,<text length>}:`"
    );
}

/// Runs for_each_line and returns the items and the telemetry.
fn collect(payload: &[u8]) -> (Vec<Parsed<'_>>, Telemetry) {
    let telemetry = Telemetry::default();
    let arena: &'static LineArena = Box::leak(Box::default());
    let mut out = Vec::new();
    for_each_line(payload, arena, &telemetry, |p| out.push(p));
    (out, telemetry)
}

#[test]
fn for_each_line_splits_and_counts() {
    let payload = b"a:1|c\r\nb:1:2:3|h|#x\n\n_e{1,1}:t|x\n_sc|s|0\nbad line\nc:2|g\n";
    let (items, t) = collect(payload);
    let names: Vec<String> = items
        .iter()
        .map(|p| match p {
            Parsed::Metric(m) => m.name.to_owned(),
            Parsed::Event(e) => format!("event {}", e.title),
            Parsed::ServiceCheck(c) => format!("check {}", c.check),
        })
        .collect();
    assert_eq!(names, ["a", "b", "event t", "check s", "c"]);
    let d = &t.dogstatsd;
    assert_eq!(
        d.metric_samples.get(),
        1 + 3 + 1,
        "packed values count one sample each"
    );
    assert_eq!(d.events.get(), 1);
    assert_eq!(d.service_checks.get(), 1);
    assert_eq!(d.parse_errors.get(), 1);
}

#[test]
fn malformed_line_in_the_middle_does_not_stop_the_rest() {
    let (items, t) = collect(b"a:1|c\na:oops|c\n:1|c\nb:2|c");
    assert_eq!(items.len(), 2);
    assert_eq!(t.dogstatsd.parse_errors.get(), 2);
    assert_eq!(t.dogstatsd.metric_samples.get(), 2);
    match &items[1] {
        Parsed::Metric(m) => assert_eq!((m.name, m.values), ("b", "2")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn for_each_line_edge_payloads() {
    for payload in [&b""[..], b"\n", b"\r\n", b"\n\n\r\n"] {
        let (items, t) = collect(payload);
        assert!(items.is_empty());
        assert_eq!(t.dogstatsd.parse_errors.get(), 0);
    }
    // No trailing newline, and a lone `\r` inside a line is not a separator.
    let (items, t) = collect(b"a:1|c\rb:1|c");
    assert!(items.is_empty());
    assert_eq!(t.dogstatsd.parse_errors.get(), 1);
    let (items, _) = collect(b"a:1|c|#x\r");
    assert!(matches!(&items[..], [Parsed::Metric(m)] if m.tags == "x"));
}

#[test]
fn random_bytes_never_panic_and_counts_add_up() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6b656c706965);
    let seeds: &[&[u8]] = &[
        b"page.views:1.5|g|@0.5|#env:prod,service:web|c:ci-1|T1700000000",
        b"lat:1:2:3|h",
        b"_e{5,4}:title|text|d:1|h:h|k:k|p:low|s:s|t:error|#a",
        b"_sc|name|1|d:1|h:h|#a|m:msg",
        "_e{6,2}:héllo|ab".as_bytes(),
    ];
    const ALPHABET: &[u8] = b"0123456789:|#@,._e{}sc\n\r-+.Tcdghms \xc3\xa9\xff";
    for round in 0..20_000 {
        let mut payload: Vec<u8> = if round % 2 == 0 {
            // Pure noise over an alphabet rich in protocol characters.
            let len = rng.random_range(0..200);
            (0..len)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
                .collect()
        } else {
            // Mutated valid lines.
            let mut p = Vec::new();
            for _ in 0..rng.random_range(1..5) {
                p.extend_from_slice(seeds[rng.random_range(0..seeds.len())]);
                p.push(b'\n');
            }
            for _ in 0..rng.random_range(0..4) {
                let i = rng.random_range(0..p.len());
                match rng.random_range(0..3) {
                    0 => p[i] = rng.random(),
                    1 => {
                        p.remove(i);
                    }
                    _ => p.insert(i, ALPHABET[rng.random_range(0..ALPHABET.len())]),
                }
            }
            p
        };
        if round % 7 == 0 {
            payload.truncate(rng.random_range(0..=payload.len()));
        }
        let lines = payload
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty() && *l != b"\r")
            .count() as u64;
        let (items, t) = collect(&payload);
        let d = &t.dogstatsd;
        // Every line is an item, a parse error or (at least one) counted drop.
        let handled = items.len() as u64 + d.parse_errors.get();
        assert!(handled <= lines, "{payload:?}");
        assert!(handled + d.dropped.total() >= lines, "{payload:?}");
        for item in items {
            if let Parsed::Metric(m) = item {
                assert!(!m.name.is_empty());
                assert!(m.sample_rate > 0.0 && (1.0 / m.sample_rate).is_finite());
                if m.kind != MetricKind::Set {
                    assert!(!m.numbers().is_empty());
                    assert!(m.numbers().iter().all(|v| v.is_finite()));
                }
            }
        }
    }
}

mod generated {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    struct Line {
        name: String,
        kind: MetricKind,
        values: Vec<f64>,
        set_member: String,
        rate: Option<f64>,
        tags: Vec<String>,
        container: Option<String>,
        ts: Option<i64>,
    }

    fn kind() -> impl Strategy<Value = MetricKind> {
        prop_oneof![
            Just(MetricKind::Counter),
            Just(MetricKind::Gauge),
            Just(MetricKind::Histogram),
            Just(MetricKind::Distribution),
            Just(MetricKind::Timer),
            Just(MetricKind::Set),
        ]
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            (0u64..1_000_000).prop_map(|v| v as f64),
            (-1e12f64..1e12),
            any::<f64>().prop_filter("finite", |v| v.is_finite()),
        ]
    }

    fn line() -> impl Strategy<Value = Line> {
        (
            "[a-zA-Z_][a-zA-Z0-9_.é]{0,30}",
            kind(),
            prop::collection::vec(value(), 1..6),
            "[a-z0-9:]{1,10}",
            prop::option::of(0.0001f64..=1.0),
            prop::collection::vec("[a-z0-9_.:/-]{1,20}", 0..6),
            prop::option::of("(ci-|in-)?[0-9a-f]{1,64}"),
            prop::option::of(1i64..4_000_000_000),
        )
            .prop_map(
                |(name, kind, values, set_member, rate, tags, container, ts)| Line {
                    name,
                    kind,
                    values,
                    set_member,
                    rate,
                    tags,
                    container,
                    ts,
                },
            )
    }

    fn type_str(kind: MetricKind) -> &'static str {
        match kind {
            MetricKind::Counter => "c",
            MetricKind::Gauge => "g",
            MetricKind::Histogram => "h",
            MetricKind::Distribution => "d",
            MetricKind::Timer => "ms",
            MetricKind::Set => "s",
        }
    }

    fn render(l: &Line) -> String {
        let value = if l.kind == MetricKind::Set {
            l.set_member.clone()
        } else {
            l.values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(":")
        };
        let mut s = format!("{}:{}|{}", l.name, value, type_str(l.kind));
        if let Some(r) = l.rate {
            s += &format!("|@{r}");
        }
        if !l.tags.is_empty() {
            s += &format!("|#{}", l.tags.join(","));
        }
        if let Some(c) = &l.container {
            s += &format!("|c:{c}");
        }
        if let Some(ts) = l.ts {
            s += &format!("|T{ts}");
        }
        s
    }

    proptest! {
        #[test]
        fn generated_line_parses_back(l in line()) {
            let text = render(&l);
            if l.ts.is_some() && !matches!(l.kind, MetricKind::Counter | MetricKind::Gauge) {
                prop_assert_eq!(parse(text.as_bytes()), Err(ParseError::TimestampUnsupportedType));
                return Ok(());
            }
            let m = match parse(text.as_bytes()) {
                Ok(Parsed::Metric(m)) => m,
                other => return Err(TestCaseError::fail(format!("{text:?}: {other:?}"))),
            };
            prop_assert_eq!(m.name, l.name.as_str());
            prop_assert_eq!(m.kind, l.kind);
            if l.kind == MetricKind::Set {
                prop_assert_eq!(m.values, l.set_member.as_str());
            } else {
                prop_assert_eq!(m.numbers(), l.values.as_slice());
            }
            prop_assert_eq!(m.sample_rate, l.rate.unwrap_or(1.0));
            prop_assert_eq!(m.tags().collect::<Vec<_>>(), l.tags.iter().map(String::as_str).collect::<Vec<_>>());
            prop_assert_eq!(m.container_id, l.container.as_deref());
            prop_assert_eq!(m.timestamp, l.ts);

            // The same line inside a datagram with others counts its packed values.
            let payload = format!("{text}\nother:1|c\n");
            let telemetry = Telemetry::default();
            let mut n = 0;
            for_each_line(payload.as_bytes(), &LineArena::new(), &telemetry, |_| n += 1);
            prop_assert_eq!(n, 2);
            let samples = if l.kind == MetricKind::Set { 1 } else { l.values.len() as u64 };
            prop_assert_eq!(telemetry.dogstatsd.metric_samples.get(), samples + 1);
        }

        #[test]
        fn generated_event_parses_back(
            title in "[^\n|]{1,40}", text in "[^\n]{0,80}",
            host in prop::option::of("[a-z0-9.-]{1,20}"),
            tags in prop::collection::vec("[a-z0-9:]{1,10}", 0..4),
        ) {
            let mut line = format!("_e{{{},{}}}:{}|{}", title.len(), text.len(), title, text);
            if let Some(h) = &host {
                line += &format!("|h:{h}");
            }
            if !tags.is_empty() {
                line += &format!("|#{}", tags.join(","));
            }
            let e = match parse(line.as_bytes()) {
                Ok(Parsed::Event(e)) => *e,
                other => return Err(TestCaseError::fail(format!("{line:?}: {other:?}"))),
            };
            prop_assert_eq!(e.title, title.replace("\\n", "\n"));
            prop_assert_eq!(e.text, text.replace("\\n", "\n"));
            prop_assert_eq!(e.hostname, host);
            prop_assert_eq!(e.tags, tags);
        }
    }
}

#[test]
fn decimal_fast_path_matches_the_standard_parser() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let check = |text: &str| {
        let want = text.parse::<f64>().ok().filter(|v| v.is_finite());
        let got = parse_f64(text.as_bytes());
        assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "{text:?}");
    };
    for text in [
        "0",
        "-0",
        "+0",
        "0.0",
        ".5",
        "5.",
        "-.5",
        "+.5",
        ".",
        "-",
        "+",
        "",
        "1.2.3",
        "--1",
        "+-1",
        "1-",
        "999999999999999",
        "9999999999999999",
        "0.000000000000001",
        "123456789.012345",
        "1234567890.123456",
        "0.1",
        "0.2",
        "0.3",
        "2.675",
        "1e5",
        "1E-5",
        "inf",
        "NaN",
        "1_0",
        " 1",
        "1 ",
        "0x10",
        "٣",
    ] {
        check(text);
    }
    for _ in 0..100_000 {
        let digits = rng.random_range(1..=17);
        let mut text: String = (0..digits)
            .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
            .collect();
        if rng.random_bool(0.7) {
            let at = rng.random_range(0..=text.len());
            text.insert(at, '.');
        }
        if rng.random_bool(0.3) {
            text.insert(0, '-');
        }
        check(&text);
    }
}

#[test]
fn find_matches_a_plain_search() {
    // One needle at every position (or none) of every length: each chunk and the overlapping last one.
    for len in 0..72 {
        for at in 0..=len {
            let mut hay = vec![b'a'; len];
            if at < len {
                hay[at] = b'|';
            }
            let want = (at < len).then_some(at);
            assert_eq!(find(&hay, b'|'), want, "{len} {at}");
            assert_eq!(find_words(&hay, b'|'), want, "{len} {at}");
        }
    }
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..50_000 {
        // Below 16 bytes (a word at a time), 16 at a time with and without an overlapping last load.
        let len = rng.random_range(0..72);
        // Few distinct bytes, including the needle's neighbours, so borrows across bytes are exercised.
        let hay: Vec<u8> = (0..len)
            .map(|_| [b'|', b'{', b'}', 0, 1, 0x80, 0xff, b'a'][rng.random_range(0..8)])
            .collect();
        for needle in [b'|', b'{', 0u8, 0xff, 0x80] {
            let want = hay.iter().position(|&c| c == needle);
            assert_eq!(find(&hay, needle), want, "{hay:?} {needle}");
            assert_eq!(find_words(&hay, needle), want, "{hay:?} {needle}");
        }
    }
}

#[test]
fn ascii_check_matches_the_standard_library() {
    for len in 0..40 {
        let mut line = vec![b'a'; len];
        assert!(is_ascii(&line));
        for i in 0..len {
            line[i] = 0x80;
            assert!(!is_ascii(&line), "{len} {i}");
            line[i] = b'a';
        }
    }
}

/// The 64-byte-block line splitter hands out the same lines as a split on `\n`, for payloads of every length
/// around the block size and newlines anywhere (at block edges, in a row, first and last).
#[test]
fn lines_are_split_as_a_plain_split_on_newlines_does() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for len in (0..200).chain([255, 256, 257, 1000, 8192]) {
        for density in [2u64, 7, 40, 200] {
            let payload: Vec<u8> = (0..len)
                .map(|_| match next() % density {
                    0 => b'\n',
                    r => b'a' + (r % 26) as u8,
                })
                .collect();
            let got: Vec<&[u8]> = super::Lines::new(&payload).collect();
            let mut want: Vec<&[u8]> = payload.split(|&b| b == b'\n').collect();
            // A payload ending with a newline (or empty) has no line after it.
            if want.last().is_some_and(|l| l.is_empty()) {
                want.pop();
            }
            assert_eq!(got, want, "len {len}, density {density}");
        }
    }
}
