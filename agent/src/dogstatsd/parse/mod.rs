//! The DogStatsD line parser.
//!
//! Accepts what the Datadog Agent 7 accepts (its `comp/dogstatsd/server` parser and enrichment were the reference
//! for every rule below; `tests/dogstatsd_parity.rs` holds the Agent's own test cases with its outcomes). The few
//! places where kelpie is stricter are listed in `docs/dogstatsd.md`, each a counted error instead of odd data: a
//! negative or non-finite sample rate, and an event whose title and text lengths do not land on the `|`
//! separators (they are byte lengths; a client that counts characters gets an error, not a cut title).
//!
//! * sample rate: `|@0` means 1 (the Agent does so for histograms and distributions, Vector for every type); a
//!   rate above 1 is taken as is (`x:10|c|@2` counts 5, as the Agent).
//! * values: `nan` and `inf` are numbers to the Agent's parser and dropped by its aggregator, so a packed line
//!   keeps its finite values and the others are counted as `non_finite_value` drops; a line with no finite value
//!   is dropped whole (same reason).
//! * `|T<unix secs>` on a histogram, timer, distribution or set: the Agent's no-aggregation pipeline takes only
//!   gauges and counters and drops the rest; so does kelpie, counted as `timestamp_unsupported_type`.
//! * bytes that are not UTF-8 are replaced with U+FFFD and the line is kept (as the Agent, which keeps the raw
//!   bytes, and saluki, which replaces them); see [`LineArena`]. An event is cut by its byte lengths first.
//! * events and service checks take their host from a `host:` tag when they have no `h:` field (an empty value
//!   means no host), and lose `host:`, `dd.internal.entity_id:`, `dd.internal.card:` (its level becomes the
//!   origin cardinality when there is no `|card:` field) and `dd.internal.jmx_check_name:` tags, as metrics do.
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
//! datagram and carries its number inline; only the numbers of a `:`-packed line (and the repaired text of a
//! line that is not UTF-8) go into the payload's [`LineArena`]. Events and service checks are rare and own
//! their strings.

use super::cardinality;
use super::number::{is_non_finite, parse_f64, parse_i64, read_values, ValuesError};
use crate::model::{MetricKind, MetricLine, Numbers, Parsed};
use crate::telemetry::{DropReason, Telemetry};
use event::{parse_event, parse_service_check};
use lines::Lines;
use memchr::memchr;
use std::sync::atomic::AtomicU64;

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
    #[error("a metric value is not a number")]
    InvalidValue,
    #[error("the metric line has no finite value (NaN and infinity are dropped, as the Datadog Agent does)")]
    NonFiniteValue,
    #[error("the metric type is not one of c, g, h, d, s, ms")]
    UnknownType,
    #[error("the sample rate is not a finite number of 0 or more")]
    InvalidSampleRate,
    #[error("the `T` timestamp is not a positive integer of unix seconds")]
    InvalidTimestamp,
    #[error("a `T` timestamp is only taken on gauges and counters (as the Datadog Agent, which drops the others)")]
    TimestampUnsupportedType,
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

impl ParseError {
    /// The drop reason a line refused with this error is counted under (`dogstatsd.dropped.<reason>`) when the
    /// Datadog Agent would have read the line and then dropped its data; None for a malformed line (counted in
    /// `dogstatsd.parse_errors`).
    pub fn drop_reason(self) -> Option<DropReason> {
        match self {
            ParseError::NonFiniteValue => Some(DropReason::NonFiniteValue),
            ParseError::TimestampUnsupportedType => Some(DropReason::TimestampUnsupportedType),
            _ => None,
        }
    }
}

/// What the parser makes of a payload's lines beyond borrowing them, kept with the payload's lifetime: the
/// numbers of `:`-packed values, and repaired copies of lines that were not UTF-8 (each invalid sequence
/// replaced with U+FFFD). Free until such a line comes; make one per payload (or batch of payloads) and drop
/// it with the parsed lines.
#[derive(Debug, Default)]
pub struct LineArena(bumpalo::Bump);

impl LineArena {
    pub fn new() -> Self {
        Self::default()
    }

    /// `line` as text, repaired into this arena when it is not UTF-8.
    fn text<'a>(&'a self, line: &'a [u8]) -> &'a str {
        match as_str(line) {
            Ok(s) => s,
            Err(_) => self.0.alloc_str(&String::from_utf8_lossy(line)),
        }
    }
}

/// Parses one DogStatsD line (without its trailing newline); the numbers of a packed line go in `arena`. A
/// line that is not UTF-8 is an error here; [`for_each_line`] repairs it instead.
#[inline]
pub fn parse_line<'a>(line: &'a [u8], arena: &'a LineArena) -> Result<Parsed<'a>, ParseError> {
    if line.first() == Some(&b'_') {
        return parse_underscore(line, arena);
    }
    parse_metric(as_str(line)?, &mut Counts::default(), arena).map(Parsed::Metric)
}

/// What the metric lines of a payload held, counted once per payload.
#[derive(Debug, Default)]
struct Counts {
    /// Finite packed values (one per set line).
    samples: u64,
    /// NaN and infinite values dropped from lines that also held a finite one.
    non_finite: u64,
}

/// Where [`for_each_line`] hands the good lines: metric lines apart from the rest, so that a metric line goes
/// from the parser to its handler without being wrapped in a [`Parsed`] and unwrapped again (a copy of ~120
/// bytes each way per line). Any `FnMut(Parsed)` is one.
pub trait LineSink<'a> {
    /// A metric line.
    fn metric(&mut self, m: MetricLine<'a>);
    /// An event or a service check.
    fn other(&mut self, p: Parsed<'a>);
}

impl<'a, F: FnMut(Parsed<'a>)> LineSink<'a> for F {
    #[inline]
    fn metric(&mut self, m: MetricLine<'a>) {
        self(Parsed::Metric(m))
    }

    #[inline]
    fn other(&mut self, p: Parsed<'a>) {
        self(p)
    }
}

/// Splits a datagram (or stream frame) into lines on `\n` (a `\r` before it is dropped, empty lines are
/// skipped), parses each and calls `f` for every good one. A malformed line is counted in
/// `telemetry.dogstatsd.parse_errors`, logged (debug, plus a warn at most every 10 s) and skipped; the rest of
/// the payload is still used; a line the Datadog Agent would read and then drop (see
/// [`ParseError::drop_reason`]) is counted as that drop instead, and so is each NaN or infinity among a
/// line's packed values. A line that is not UTF-8 is repaired into `arena` and used, and the numbers of
/// packed lines go there. Good items are counted in `metric_samples` (one per finite packed value), `events`
/// and `service_checks`. Counters are updated once per payload, not per line, to keep shared cache lines
/// quiet.
pub fn for_each_line<'a>(
    payload: &'a [u8],
    arena: &'a LineArena,
    telemetry: &Telemetry,
    mut f: impl LineSink<'a>,
) {
    let mut counts = Counts::default();
    let (mut events, mut checks, mut errors) = (0u64, 0u64, 0u64);
    // Checked once for the whole payload (a vector loop over 8 KB is ~15 instructions a line, where each line
    // on its own took ~85): then every line is text as it is.
    let ascii = is_ascii(payload);
    for line in Lines::new(payload) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        // Metric lines take a path of their own: `Parsed` is large (an `Event` is inline), and keeping it
        // out of the hot path's return values avoids copying it around.
        if line.starts_with(b"_e{") {
            // Events are cut by byte lengths first and repaired after (see `parse_event`).
            match parse_event(line) {
                Ok(e) => {
                    events += 1;
                    f.other(Parsed::Event(Box::new(e)));
                }
                Err(err) => refused(err, &String::from_utf8_lossy(line), telemetry, &mut errors),
            }
            continue;
        }
        let text = if ascii {
            // SAFETY: ASCII is valid UTF-8.
            unsafe { std::str::from_utf8_unchecked(line) }
        } else {
            arena.text(line)
        };
        if line[0] != b'_' {
            match parse_metric(text, &mut counts, arena) {
                Ok(m) => f.metric(m),
                Err(err) => refused(err, text, telemetry, &mut errors),
            }
            continue;
        }
        match parse_underscore_str(text, &mut counts, arena) {
            Ok(Parsed::Metric(m)) => f.metric(m),
            Ok(parsed) => {
                match &parsed {
                    Parsed::Metric(_) => {}
                    Parsed::Event(_) => events += 1,
                    Parsed::ServiceCheck(_) => checks += 1,
                }
                f.other(parsed);
            }
            Err(err) => refused(err, text, telemetry, &mut errors),
        }
    }
    let d = &telemetry.dogstatsd;
    if counts.samples > 0 {
        d.metric_samples.add(counts.samples);
    }
    if counts.non_finite > 0 {
        telemetry.count_drop(DropReason::NonFiniteValue, counts.non_finite);
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

/// Counts a refused line: as its drop reason when it has one, else as a parse error (added to `errors`).
#[cold]
#[inline(never)]
fn refused(err: ParseError, line: &str, telemetry: &Telemetry, errors: &mut u64) {
    match err.drop_reason() {
        Some(reason) => {
            // As many drops as the line had values (one for a set).
            let n = count_values(line);
            telemetry.count_drop(reason, n);
            tracing::debug!(line = %&line[..floor_char(line, LOGGED_LINE_BYTES)], "dropped a DogStatsD line: {err}");
        }
        None => {
            *errors += 1;
            report_parse_error(err, line.as_bytes());
        }
    }
}

/// The number of `:`-packed values of a metric line (1 for a set), for counting its drop.
fn count_values(line: &str) -> u64 {
    let mut fields = line.split('|');
    let head = fields.next().unwrap_or("");
    let is_set = fields.next() == Some("s");
    match head.split_once(':') {
        Some(_) if is_set => 1,
        Some((_, v)) => v.split(':').filter(|v| !v.is_empty()).count().max(1) as u64,
        None => 1,
    }
}

/// The largest char boundary of `s` at or below `max`.
fn floor_char(s: &str, max: usize) -> usize {
    let mut i = max.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Unix seconds of the last parse-error warn; warns are at most one per [`WARN_EVERY_SECS`].
static LAST_WARN_SECS: AtomicU64 = AtomicU64::new(0);
const WARN_EVERY_SECS: u64 = 10;
/// How much of a bad line goes into a log message.
const LOGGED_LINE_BYTES: usize = 200;

fn report_parse_error(err: ParseError, line: &[u8]) {
    let shown = String::from_utf8_lossy(&line[..line.len().min(LOGGED_LINE_BYTES)]);
    if crate::telemetry::allow_every(&LAST_WARN_SECS, WARN_EVERY_SECS) {
        tracing::warn!(
            line = %shown,
            "dropped a malformed DogStatsD line: {err} (further parse errors for {WARN_EVERY_SECS} s are \
             logged at debug level and counted in dogstatsd.parse_errors)"
        );
    } else {
        tracing::debug!(line = %shown, "dropped a malformed DogStatsD line: {err}");
    }
}

/// Parses a line that starts with `_`: an event, a service check, or a metric whose name starts with `_`.
#[cold]
#[inline(never)]
fn parse_underscore<'a>(line: &'a [u8], arena: &'a LineArena) -> Result<Parsed<'a>, ParseError> {
    parse_underscore_str(as_str(line)?, &mut Counts::default(), arena)
}

/// [`parse_underscore`] on text; a metric adds what it held to `counts`.
#[cold]
#[inline(never)]
fn parse_underscore_str<'a>(
    s: &'a str,
    counts: &mut Counts,
    arena: &'a LineArena,
) -> Result<Parsed<'a>, ParseError> {
    if s.starts_with("_e{") {
        return parse_event(s.as_bytes()).map(|e| Parsed::Event(Box::new(e)));
    }
    if s.starts_with("_sc|") {
        return parse_service_check(s).map(|c| Parsed::ServiceCheck(Box::new(c)));
    }
    parse_metric(s, counts, arena).map(Parsed::Metric)
}

/// The line as text. Almost every line is ASCII, and checking that is several times cheaper than full UTF-8
/// validation, so that is tried first.
#[inline]
fn as_str(line: &[u8]) -> Result<&str, ParseError> {
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    if is_ascii(line) {
        // SAFETY: ASCII is valid UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(line) })
    } else {
        std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)
    }
}

/// The first `needle` in `hay`. Lines are short (tens of bytes), where a search that inlines beats a
/// vectorized `memchr` behind a CPU-feature dispatch (datagrams are split by [`Lines`]): 16 bytes at a
/// time with SSE2 (every x86_64 has it), the last 16 overlapping what was searched; shorter fields (and
/// other architectures) a word at a time. Callgrind on the worker path: the word-at-a-time search alone was
/// ~100 instructions a line (the `|` after the value, the `:` in the name, the `|` after the tags).
#[inline(always)]
fn find(hay: &[u8], needle: u8) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if hay.len() >= 16 {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        // Bit i set when byte i of the 16 at `at` is the needle.
        let matches = |at: usize| -> u32 {
            debug_assert!(at + 16 <= hay.len());
            // SAFETY: SSE2 is part of the x86_64 baseline; the unaligned load reads hay[at..at + 16], inside
            // `hay` (every caller passes at <= hay.len() - 16).
            unsafe {
                let v = _mm_loadu_si128(hay.as_ptr().add(at) as *const __m128i);
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(needle as i8))) as u32
            }
        };
        let mut at = 0;
        while at + 16 <= hay.len() {
            let m = matches(at);
            if m != 0 {
                return Some(at + m.trailing_zeros() as usize);
            }
            at += 16;
        }
        if at < hay.len() {
            // The last 16 bytes: those before `at` hold no needle (searched above).
            let last = hay.len() - 16;
            let m = matches(last);
            if m != 0 {
                return Some(last + m.trailing_zeros() as usize);
            }
        }
        return None;
    }
    find_words(hay, needle)
}

/// [`find`] a word (8 bytes) at a time.
#[inline(always)]
fn find_words(hay: &[u8], needle: u8) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO * needle as u64;
    let mut rest = hay;
    let mut offset = 0;
    while let Some((chunk, tail)) = rest.split_first_chunk::<8>() {
        // Bytes equal to the needle become zero; the lowest flagged byte is the first zero byte (a borrow can
        // only flag bytes above a real zero). Little-endian load, so the lowest byte is the first in memory.
        let x = u64::from_le_bytes(*chunk) ^ pattern;
        let found = x.wrapping_sub(LO) & !x & HI;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        rest = tail;
        offset += 8;
    }
    rest.iter().position(|&c| c == needle).map(|i| offset + i)
}

/// Whether every byte is ASCII. Reads eight bytes at a time with no early exit, which the compiler turns into
/// a short vector loop; the standard library's `is_ascii` goes byte by byte on slices this short.
#[inline(always)]
fn is_ascii(b: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = b.chunks_exact(8);
    let mut acc = 0u64;
    for c in &mut chunks {
        acc |= u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    }
    for &c in chunks.remainder() {
        acc |= c as u64;
    }
    acc & HIGH == 0
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

/// Parses a metric line; a good one adds what it held to `counts` (its finite values, 1 for a set, and the
/// non-finite ones it drops).
#[inline(always)]
fn parse_metric<'a>(
    s: &'a str,
    counts: &mut Counts,
    arena: &'a LineArena,
) -> Result<MetricLine<'a>, ParseError> {
    let b = s.as_bytes();
    let bar = find(b, b'|').ok_or(ParseError::MissingType)?;
    let colon = find(&b[..bar], b':').ok_or(ParseError::MissingValue)?;
    if colon == 0 {
        return Err(ParseError::EmptyName);
    }
    if colon + 1 == bar {
        return Err(ParseError::EmptyValue);
    }
    // Every split point below is an ASCII byte, so these slices are on char boundaries.
    let name = &s[..colon];
    let values = &s[colon + 1..bar];

    // The type is one or two bytes, followed by the end of the line or a `|`.
    let (kind, type_len) = match &b[bar + 1..] {
        [b'c', ..] => (MetricKind::Counter, 1),
        [b'g', ..] => (MetricKind::Gauge, 1),
        [b'h', ..] => (MetricKind::Histogram, 1),
        [b'd', ..] => (MetricKind::Distribution, 1),
        [b'm', b's', ..] => (MetricKind::Timer, 2),
        [b's', ..] => (MetricKind::Set, 1),
        _ => return Err(ParseError::UnknownType),
    };
    let type_end = bar + 1 + type_len;
    if type_end < b.len() && b[type_end] != b'|' {
        return Err(ParseError::UnknownType);
    }
    // Every value is read here, once: the line carries its numbers on to the aggregator.
    // (One number, nearly every line, is matched here rather than returned through a `Result`: the `?` of
    // a `Result<(Numbers, ..)>` copied it through the stack in pieces that defeated store forwarding, 17%
    // of the parse's samples in perf.)
    let vb = values.as_bytes();
    let (numbers, finite, non_finite) = if kind == MetricKind::Set {
        (Numbers::None, 1, 0)
    } else if find(vb, b':').is_some() {
        read_packed(vb, arena)?
    } else {
        match parse_f64(vb) {
            Some(v) => (Numbers::One(v), 1, 0),
            None if is_non_finite(vb) => return Err(ParseError::NonFiniteValue),
            None => return Err(ParseError::InvalidValue),
        }
    };

    let mut line = MetricLine::with_numbers(name, values, numbers, kind);
    let mut pos = type_end;
    while pos < b.len() {
        // b[pos] is the `|` before the next field.
        let start = pos + 1;
        let end = find(&b[start..], b'|').map_or(b.len(), |i| start + i);
        let field = &b[start..end];
        match field.first() {
            Some(b'#') => line.tags = &s[start + 1..end],
            Some(b'@') => match parse_f64(&field[1..]) {
                // 0 (or -0) means "not sampled", as the Agent's histograms and sketches and Vector take it.
                Some(0.0) => line.sample_rate = 1.0,
                // Above 1 is taken as is, as the Agent does (`x:10|c|@2` counts 5); 1 / rate must be finite.
                Some(rate) if rate > 0.0 && (1.0 / rate).is_finite() => line.sample_rate = rate,
                _ => return Err(ParseError::InvalidSampleRate),
            },
            Some(b'T') => match parse_i64(&field[1..]) {
                Some(ts) if ts > 0 => line.timestamp = Some(ts),
                _ => return Err(ParseError::InvalidTimestamp),
            },
            Some(b'c') if field.get(1) == Some(&b':') => {
                line.container_id = (end > start + 2).then(|| &s[start + 2..end]);
            }
            Some(b'c') if field.starts_with(b"card:") => {
                line.cardinality = cardinality::level(&s[start + 5..end]);
            }
            // Unknown extension fields (`e:` external data, future ones) are ignored, like the Datadog Agent
            // does; so is a `card:` value it does not know.
            _ => {}
        }
        pos = end;
    }
    if line.timestamp.is_some() && !matches!(kind, MetricKind::Counter | MetricKind::Gauge) {
        return Err(ParseError::TimestampUnsupportedType);
    }
    counts.samples += finite;
    counts.non_finite += non_finite;
    Ok(line)
}

/// The finite numbers of a `:`-packed value field (`1:2:3`; empty entries skipped, so `1:` is one number), in
/// `arena`, with how many it held of each kind.
#[inline(never)]
fn read_packed<'a>(b: &[u8], arena: &'a LineArena) -> Result<(Numbers<'a>, u64, u64), ParseError> {
    let mut numbers = bumpalo::collections::Vec::new_in(&arena.0);
    let n = read_values(b, |x| numbers.push(x)).map_err(|e| match e {
        ValuesError::Empty => ParseError::EmptyValue,
        ValuesError::Invalid => ParseError::InvalidValue,
        ValuesError::NonFinite => ParseError::NonFiniteValue,
    })?;
    let numbers = match numbers[..] {
        [x] => Numbers::One(x),
        _ => Numbers::Packed(numbers.into_bump_slice()),
    };
    Ok((numbers, n.finite, n.non_finite))
}

mod event;
mod lines;
#[cfg(test)]
mod tests;
