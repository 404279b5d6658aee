//! Fuzzes the DogStatsD parser with arbitrary datagrams: it must never panic, and whatever it accepts must
//! hold the parser's promises (non-empty names, a positive sample rate with a finite inverse, at least one
//! finite value).
#![no_main]

use kelpie_agent::dogstatsd::{for_each_line, parse_line, LineArena};
use kelpie_agent::model::{MetricKind, Parsed};
use kelpie_agent::telemetry::Telemetry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let telemetry = Telemetry::default();
    let arena = LineArena::new();
    let mut items = 0u64;
    for_each_line(data, &arena, &telemetry, |parsed| {
        items += 1;
        match parsed {
            Parsed::Metric(m) => {
                assert!(!m.name.is_empty());
                assert!(m.sample_rate > 0.0 && (1.0 / m.sample_rate).is_finite());
                assert!(m.timestamp.is_none_or(|t| t > 0));
                if m.kind != MetricKind::Set {
                    assert!(!m.numbers().is_empty());
                    assert!(m.numbers().iter().all(|v| v.is_finite()));
                }
            }
            Parsed::Event(e) => assert!(!e.title.is_empty()),
            Parsed::ServiceCheck(c) => {
                assert!(!c.check.is_empty());
                assert!(c.status <= 3);
            }
        }
    });
    let d = &telemetry.dogstatsd;
    assert!(
        items + d.parse_errors.get() <= data.iter().filter(|&&c| c == b'\n').count() as u64 + 1
    );
    // The whole input as one line, too.
    let _ = parse_line(data, &arena);
});
