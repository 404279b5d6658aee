use super::*;
use crate::intake::Endpoint;

#[test]
fn urls() {
    let api = "https://api.datadoghq.eu/";
    let local = "http://127.0.0.1:8080";
    for (base, endpoint, url) in [
        (
            api,
            Endpoint::Series,
            "https://api.datadoghq.eu/api/v2/series",
        ),
        (
            api,
            Endpoint::Profile,
            "https://intake.profile.datadoghq.eu/api/v2/profile",
        ),
        (
            local,
            Endpoint::Profile,
            "http://127.0.0.1:8080/api/v2/profile",
        ),
        (
            local,
            Endpoint::Sketches,
            "http://127.0.0.1:8080/api/beta/sketches",
        ),
    ] {
        assert_eq!(endpoint_url(base, endpoint), url);
    }
}

#[test]
fn backoff_grows_with_jitter_and_is_capped() {
    let inner_cfg = ForwarderConfig {
        backoff_base: Duration::from_secs(2),
        backoff_max: Duration::from_secs(64),
        ..ForwarderConfig::default()
    };
    let inner = Inner::new(inner_cfg, Arc::new(Telemetry::default()), None);
    for (attempt, full) in [
        (1u32, 2.0f64),
        (2, 4.0),
        (3, 8.0),
        (6, 64.0),
        (7, 64.0),
        (1000, 64.0),
    ] {
        for _ in 0..20 {
            let d = inner.backoff(attempt).as_secs_f64();
            assert!(
                d >= full / 2.0 - 1e-9 && d <= full + 1e-9,
                "attempt {attempt}: {d}"
            );
        }
    }
}
