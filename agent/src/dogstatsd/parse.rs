//! The DogStatsD line parser.
//!
//! Accepts what the Datadog Agent 7 accepts (its `comp/dogstatsd/server` parser was the reference for every rule
//! below), with a few deliberate differences, each one a clear error instead of silently odd data:
//! sample rates must be in (0, 1], metric values must be finite, and an event's title and text lengths must land
//! on the `|` separators (they are byte lengths; a client that counts characters gets an error, not a cut title).
//!
//! * metric: `<name>:<value>[:<value>...]|<type>[|@<rate>][|#<tags>][|c:<container id>][|T<unix secs>]`,
//!   where unknown `|x...` extension fields are ignored and, when a field repeats, the last one wins. A set's
//!   value is taken as is; every other type's values are `:`-packed finite numbers (empty entries such as
//!   `1::2` are skipped, like the agent does). A leading `+` or `-` is the number's sign: gauges have no
//!   relative `+n`/`-n` updates in DogStatsD, `+5|g` sets the gauge to 5.
//! * event: `_e{<title bytes>,<text bytes>}:<title>|<text>[|d:<ts>][|h:<host>][|k:<key>][|p:<low|normal>]`
//!   `[|s:<source>][|t:<error|warning|info|success>][|#<tags>]`; `\n` (backslash, n) in the title or text is a
//!   newline. An invalid optional field (bad `d:`, `p:`, `t:`) is ignored, as the agent does.
//! * service check: `_sc|<name>|<0|1|2|3>[|d:<ts>][|h:<host>][|#<tags>][|m:<message>]`; invalid optional fields
//!   are ignored.
//!
//! Metric lines are parsed without allocating: [`MetricLine`] borrows the name, values and raw tags from the
//! datagram. Events and service checks are rare and own their strings.

use crate::model::{Event, MetricKind, MetricLine, Parsed, ServiceCheck};
use crate::telemetry::Telemetry;
use memchr::memchr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a DogStatsD line was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the line is empty")]
    Empty,
    #[error("the line is not valid UTF-8")]
    NotUtf8,
    #[error("the metric line has no `|<type>` field after its value")]
    MissingType,
    #[error("the metric line has no `:` between its name and its value")]
    MissingValue,
    #[error("the metric name is empty")]
    EmptyName,
    #[error("the metric value is empty")]
    EmptyValue,
    #[error("a metric value is not a finite number")]
    InvalidValue,
    #[error("the metric type is not one of c, g, h, d, s, ms")]
    UnknownType,
    #[error("the sample rate is not a number in (0, 1]")]
    InvalidSampleRate,
    #[error("the `T` timestamp is not a positive integer of unix seconds")]
    InvalidTimestamp,
    #[error("the event header is not `_e{{<title length>,<text length>}}:`")]
    InvalidEventHeader,
    #[error("the event title is empty")]
    EmptyEventTitle,
    #[error("the event is shorter than the title and text lengths in its header")]
    EventTooShort,
    #[error("the event's title or text length does not end at a `|` (lengths are in bytes)")]
    EventLengthMismatch,
    #[error("the service check is not `_sc|<name>|<status>`")]
    InvalidServiceCheck,
    #[error("the service check name is empty")]
    EmptyServiceCheckName,
    #[error("the service check status is not 0, 1, 2 or 3")]
    InvalidServiceCheckStatus,
}

/// Parses one DogStatsD line (without its trailing newline).
pub fn parse_line(line: &[u8]) -> Result<Parsed<'_>, ParseError> {
    parse_counted(line).map(|(parsed, _)| parsed)
}

/// Splits a datagram (or stream frame) into lines on `\n` (a `\r` before it is dropped, empty lines are
/// skipped), parses each and calls `f` for every good one. A malformed line is counted in
/// `telemetry.dogstatsd.parse_errors`, logged (debug, plus a warn at most every 10 s) and skipped; the rest of
/// the payload is still used. Good items are counted in `metric_samples` (one per packed value), `events` and
/// `service_checks`. Counters are updated once per payload, not per line, to keep shared cache lines quiet.
pub fn for_each_line<'a>(payload: &'a [u8], telemetry: &Telemetry, mut f: impl FnMut(Parsed<'a>)) {
    let (mut samples, mut events, mut checks, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut rest = payload;
    while !rest.is_empty() {
        let line = match memchr(b'\n', rest) {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                line
            }
            None => std::mem::take(&mut rest),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        match parse_counted(line) {
            Ok((parsed, n)) => {
                match parsed {
                    Parsed::Metric(_) => samples += n,
                    Parsed::Event(_) => events += 1,
                    Parsed::ServiceCheck(_) => checks += 1,
                }
                f(parsed);
            }
            Err(err) => {
                errors += 1;
                report_parse_error(err, line);
            }
        }
    }
    let d = &telemetry.dogstatsd;
    if samples > 0 {
        d.metric_samples.add(samples);
    }
    if events > 0 {
        d.events.add(events);
    }
    if checks > 0 {
        d.service_checks.add(checks);
    }
    if errors > 0 {
        d.parse_errors.add(errors);
    }
}

/// Unix seconds of the last parse-error warn; warns are at most one per [`WARN_EVERY_SECS`].
static LAST_WARN_SECS: AtomicU64 = AtomicU64::new(0);
const WARN_EVERY_SECS: u64 = 10;
/// How much of a bad line goes into a log message.
const LOGGED_LINE_BYTES: usize = 200;

fn report_parse_error(err: ParseError, line: &[u8]) {
    let shown = String::from_utf8_lossy(&line[..line.len().min(LOGGED_LINE_BYTES)]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST_WARN_SECS.load(Ordering::Relaxed);
    if now >= last.saturating_add(WARN_EVERY_SECS)
        && LAST_WARN_SECS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            line = %shown,
            "dropped a malformed DogStatsD line: {err} (further parse errors for {WARN_EVERY_SECS} s are \
             logged at debug level and counted in dogstatsd.parse_errors)"
        );
    } else {
        tracing::debug!(line = %shown, "dropped a malformed DogStatsD line: {err}");
    }
}

/// Parses a line and also returns how many samples it holds (packed values of a metric; 1 otherwise).
fn parse_counted(line: &[u8]) -> Result<(Parsed<'_>, u64), ParseError> {
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let s = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    if line.starts_with(b"_e{") {
        return parse_event(s).map(|e| (Parsed::Event(e), 1));
    }
    if line.starts_with(b"_sc|") {
        return parse_service_check(s).map(|c| (Parsed::ServiceCheck(c), 1));
    }
    parse_metric(s).map(|(m, n)| (Parsed::Metric(m), n))
}

/// Calls `f(start, end)` for each `|`-separated field of `b` from `start` on (there is always at least one,
/// possibly empty).
#[inline(always)]
fn for_each_field(b: &[u8], mut start: usize, mut f: impl FnMut(usize, usize)) {
    loop {
        match memchr(b'|', &b[start..]) {
            Some(i) => {
                f(start, start + i);
                start += i + 1;
            }
            None => {
                f(start, b.len());
                return;
            }
        }
    }
}

fn parse_metric(s: &str) -> Result<(MetricLine<'_>, u64), ParseError> {
    let b = s.as_bytes();
    let bar = memchr(b'|', b).ok_or(ParseError::MissingType)?;
    let colon = memchr(b':', &b[..bar]).ok_or(ParseError::MissingValue)?;
    if colon == 0 {
        return Err(ParseError::EmptyName);
    }
    if colon + 1 == bar {
        return Err(ParseError::EmptyValue);
    }
    // Every split point below is an ASCII byte, so these slices are on char boundaries.
    let name = &s[..colon];
    let values = &s[colon + 1..bar];

    let type_start = bar + 1;
    let type_end = memchr(b'|', &b[type_start..]).map_or(b.len(), |i| type_start + i);
    let kind = match &b[type_start..type_end] {
        b"c" => MetricKind::Counter,
        b"g" => MetricKind::Gauge,
        b"h" => MetricKind::Histogram,
        b"d" => MetricKind::Distribution,
        b"ms" => MetricKind::Timer,
        b"s" => MetricKind::Set,
        _ => return Err(ParseError::UnknownType),
    };
    let samples = if kind == MetricKind::Set {
        1
    } else {
        validate_values(values.as_bytes())?
    };

    let mut line = MetricLine {
        name,
        values,
        kind,
        sample_rate: 1.0,
        tags: "",
        container_id: None,
        timestamp: None,
    };
    if type_end < b.len() {
        let mut err = None;
        for_each_field(b, type_end + 1, |start, end| {
            let field = &b[start..end];
            match field.first() {
                Some(b'#') => line.tags = &s[start + 1..end],
                Some(b'@') => match parse_f64(&field[1..]) {
                    Some(rate) if rate > 0.0 && rate <= 1.0 => line.sample_rate = rate,
                    _ => err = Some(ParseError::InvalidSampleRate),
                },
                Some(b'T') => match parse_i64(&field[1..]) {
                    Some(ts) if ts > 0 => line.timestamp = Some(ts),
                    _ => err = Some(ParseError::InvalidTimestamp),
                },
                Some(b'c') if field.get(1) == Some(&b':') => {
                    line.container_id = (end > start + 2).then(|| &s[start + 2..end]);
                }
                // Unknown extension fields (`e:` external data, `card:`, future ones) are ignored, like the
                // Datadog Agent does.
                _ => {}
            }
        });
        if let Some(err) = err {
            return Err(err);
        }
    }
    Ok((line, samples))
}

/// Checks every `:`-separated value of a metric line; returns how many there are.
#[inline]
fn validate_values(raw: &[u8]) -> Result<u64, ParseError> {
    if memchr(b':', raw).is_none() {
        return match parse_f64(raw) {
            Some(_) => Ok(1),
            None => Err(ParseError::InvalidValue),
        };
    }
    let mut n = 0;
    for v in raw.split(|&c| c == b':') {
        if v.is_empty() {
            continue;
        }
        if parse_f64(v).is_none() {
            return Err(ParseError::InvalidValue);
        }
        n += 1;
    }
    if n == 0 {
        return Err(ParseError::EmptyValue);
    }
    Ok(n)
}

/// A finite f64, or None. Plain integers of up to 15 digits (the common case: counters, byte sizes, ms) take a
/// short path; everything else goes through the standard library's exact parser.
#[inline]
fn parse_f64(b: &[u8]) -> Option<f64> {
    if !b.is_empty() && b.len() <= 15 {
        let mut n: u64 = 0;
        let mut all_digits = true;
        for &c in b {
            let d = c.wrapping_sub(b'0');
            if d > 9 {
                all_digits = false;
                break;
            }
            n = n * 10 + d as u64;
        }
        if all_digits {
            // Exact: n < 10^15 < 2^53.
            return Some(n as f64);
        }
    }
    // from_utf8 cannot fail on the bytes given here (they are a slice of a &str between ASCII separators), but
    // staying in safe code costs one short scan.
    let v: f64 = std::str::from_utf8(b).ok()?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A decimal i64 (optional sign), or None.
fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A decimal usize with digits only (no sign, no spaces), or None.
fn parse_len(b: &[u8]) -> Option<usize> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn split_tags(raw: &str) -> Vec<String> {
    raw.split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

fn unescape_newlines(v: &str) -> String {
    v.replace("\\n", "\n")
}

fn parse_event(s: &str) -> Result<Event, ParseError> {
    let b = s.as_bytes();
    // `_e{` is checked by the caller.
    let close = memchr(b'}', b).ok_or(ParseError::InvalidEventHeader)?;
    let lengths = &b[3..close];
    let comma = memchr(b',', lengths).ok_or(ParseError::InvalidEventHeader)?;
    let title_len = parse_len(&lengths[..comma]).ok_or(ParseError::InvalidEventHeader)?;
    let text_len = parse_len(&lengths[comma + 1..]).ok_or(ParseError::InvalidEventHeader)?;
    if b.get(close + 1) != Some(&b':') {
        return Err(ParseError::InvalidEventHeader);
    }
    if title_len == 0 {
        return Err(ParseError::EmptyEventTitle);
    }
    let title_start = close + 2;
    let title_end = title_start
        .checked_add(title_len)
        .ok_or(ParseError::EventTooShort)?;
    let text_start = title_end + 1;
    let text_end = text_start
        .checked_add(text_len)
        .ok_or(ParseError::EventTooShort)?;
    if text_end > b.len() {
        return Err(ParseError::EventTooShort);
    }
    if b[title_end] != b'|' || (text_end < b.len() && b[text_end] != b'|') {
        return Err(ParseError::EventLengthMismatch);
    }
    // Both ends are at ASCII `|` or at the end, so these are char boundaries; `get` keeps it panic-free anyway.
    let title = s
        .get(title_start..title_end)
        .ok_or(ParseError::EventLengthMismatch)?;
    let text = s
        .get(text_start..text_end)
        .ok_or(ParseError::EventLengthMismatch)?;
    let mut event = Event {
        title: unescape_newlines(title),
        text: unescape_newlines(text),
        ..Event::default()
    };
    if text_end < b.len() {
        for_each_field(b, text_end + 1, |start, end| {
            let field = &s[start..end];
            if let Some(v) = field.strip_prefix('#') {
                event.tags = split_tags(v);
            } else if let Some(v) = field.strip_prefix("d:") {
                match parse_i64(v.as_bytes()) {
                    Some(ts) => event.timestamp = Some(ts),
                    None => tracing::debug!(field, "ignored an invalid event timestamp"),
                }
            } else if let Some(v) = field.strip_prefix("h:") {
                event.hostname = non_empty(v);
            } else if let Some(v) = field.strip_prefix("k:") {
                event.aggregation_key = non_empty(v);
            } else if let Some(v) = field.strip_prefix("p:") {
                match v {
                    "normal" | "low" => event.priority = Some(v.to_owned()),
                    _ => tracing::debug!(field, "ignored an invalid event priority"),
                }
            } else if let Some(v) = field.strip_prefix("s:") {
                event.source_type_name = non_empty(v);
            } else if let Some(v) = field.strip_prefix("t:") {
                match v {
                    "error" | "warning" | "info" | "success" => {
                        event.alert_type = Some(v.to_owned())
                    }
                    _ => tracing::debug!(field, "ignored an invalid event alert type"),
                }
            }
            // `c:`, `e:`, `card:` and unknown fields: ignored.
        });
    }
    Ok(event)
}

fn parse_service_check(s: &str) -> Result<ServiceCheck, ParseError> {
    let b = s.as_bytes();
    // `_sc|` is checked by the caller.
    let name_start = 4;
    let name_end = memchr(b'|', &b[name_start..])
        .map(|i| name_start + i)
        .ok_or(ParseError::InvalidServiceCheck)?;
    if name_end == name_start {
        return Err(ParseError::EmptyServiceCheckName);
    }
    let status_start = name_end + 1;
    let status_end = memchr(b'|', &b[status_start..]).map_or(b.len(), |i| status_start + i);
    let status = match &b[status_start..status_end] {
        b"0" => 0,
        b"1" => 1,
        b"2" => 2,
        b"3" => 3,
        _ => return Err(ParseError::InvalidServiceCheckStatus),
    };
    let mut check = ServiceCheck {
        check: s[name_start..name_end].to_owned(),
        status,
        ..ServiceCheck::default()
    };
    if status_end < b.len() {
        for_each_field(b, status_end + 1, |start, end| {
            let field = &s[start..end];
            if let Some(v) = field.strip_prefix('#') {
                check.tags = split_tags(v);
            } else if let Some(v) = field.strip_prefix("d:") {
                match parse_i64(v.as_bytes()) {
                    Some(ts) => check.timestamp = Some(ts),
                    None => tracing::debug!(field, "ignored an invalid service check timestamp"),
                }
            } else if let Some(v) = field.strip_prefix("h:") {
                check.hostname = non_empty(v);
            } else if let Some(v) = field.strip_prefix("m:") {
                check.message = non_empty(v);
            }
            // `c:`, `e:`, `card:` and unknown fields: ignored.
        });
    }
    Ok(check)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
