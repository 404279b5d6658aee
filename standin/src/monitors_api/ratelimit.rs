//! Rate limits as Datadog answers them: buckets of `limit` requests per calendar-aligned window of
//! `period` seconds, the `X-RateLimit-*` headers on every answer and 429 once a window's budget is spent.

use super::routes::err;
use super::{Answer, Inner, MonitorsState};
use axum::http::StatusCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One rate-limit bucket: `limit` requests per calendar-aligned window of `period` seconds.
pub(super) struct Bucket {
    name: String,
    /// Methods it covers; empty: all.
    methods: Vec<String>,
    limit: u64,
    period: u64,
    window: u64,
    count: u64,
}

impl MonitorsState {
    /// See [`MonitorsApiHandle::set_rate_limit`](super::MonitorsApiHandle::set_rate_limit).
    pub fn set_rate_limit(&self, limit: u64, period: Duration) {
        self.inner.lock().buckets.clear();
        self.add_rate_limit("monitors", &[], limit, period);
    }
    /// See [`MonitorsApiHandle::add_rate_limit`](super::MonitorsApiHandle::add_rate_limit).
    pub fn add_rate_limit(&self, name: &str, methods: &[&str], limit: u64, period: Duration) {
        self.inner.lock().buckets.push(Bucket {
            name: name.to_string(),
            methods: methods.iter().map(|m| m.to_uppercase()).collect(),
            limit,
            period: period.as_secs().max(1),
            window: 0,
            count: 0,
        });
    }
}

/// Counts a request with `method` in the first bucket that covers it and adds the rate-limit headers for the
/// answer; the 429 answer once the window's budget is spent.
pub(super) fn rate_limit(
    inner: &mut Inner,
    method: &str,
    headers: &mut Vec<(&'static str, String)>,
) -> Option<Answer> {
    let b = inner
        .buckets
        .iter_mut()
        .find(|b| b.methods.is_empty() || b.methods.iter().any(|x| x == method))?;
    // Windows are aligned to the calendar: window n covers [n·period, (n+1)·period) since the epoch.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let window = (now / b.period as f64).floor() as u64;
    if window != b.window {
        b.window = window;
        b.count = 0;
    }
    b.count += 1;
    let left = (window + 1) as f64 * b.period as f64 - now;
    headers.push(("x-ratelimit-limit", b.limit.to_string()));
    headers.push(("x-ratelimit-period", b.period.to_string()));
    headers.push((
        "x-ratelimit-remaining",
        b.limit.saturating_sub(b.count).to_string(),
    ));
    // Whole seconds, rounded down, as Datadog sends it.
    headers.push(("x-ratelimit-reset", (left.max(0.0) as u64).to_string()));
    headers.push(("x-ratelimit-name", b.name.clone()));
    if b.count > b.limit {
        let (limit, period) = (b.limit, b.period);
        return Some(Answer::Json(
            StatusCode::TOO_MANY_REQUESTS,
            err(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Rate limit of {limit} requests in {period} seconds reached. Please try again later."),
            )
            .1,
        ));
    }
    None
}
