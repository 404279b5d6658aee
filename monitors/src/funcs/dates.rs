//! Date and time functions: timestamp, plantimestamp, timeadd, timecmp, formatdate. Timestamps are RFC 3339
//! strings; results are written as Go's `time.RFC3339` writes them (whole seconds, `Z` for a zero offset).

use super::{str_arg, string, want, R};
use crate::eval::Scope;
use chrono::{DateTime, Datelike, FixedOffset, SecondsFormat, Timelike, Utc};
use hcl::Value;

fn parse(s: &str, name: &str) -> Result<DateTime<FixedOffset>, String> {
    DateTime::parse_from_rfc3339(s)
        .map_err(|_| format!("{name}(): {s:?} is not an RFC 3339 timestamp"))
}

fn rfc3339(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The current time in UTC; different on every run (a monitor using it changes on every sync).
pub(super) fn timestamp(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 0, "timestamp")?;
    string(now())
}

/// The time of the plan: kelpie evaluates at plan time, so the same as `timestamp()`.
pub(super) fn plantimestamp(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 0, "plantimestamp")?;
    string(now())
}

/// A Go duration (`"1h30m"`, `"-10m"`, `"2.5s"`, units ns us µs ms s m h) in nanoseconds.
fn duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * unit;
    }
    let total = if neg { -total } else { total };
    (total.abs() < i64::MAX as f64).then_some(total.round() as i64)
}

pub(super) fn timeadd(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "timeadd")?;
    let t = parse(&str_arg(a, 0, "timeadd")?, "timeadd")?;
    let d = str_arg(a, 1, "timeadd")?;
    let ns = duration(&d).ok_or_else(|| format!("timeadd(): invalid duration {d:?}"))?;
    let t = t
        .checked_add_signed(chrono::Duration::nanoseconds(ns))
        .ok_or("timeadd(): the result is out of range")?;
    string(rfc3339(&t))
}

pub(super) fn timecmp(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "timecmp")?;
    let x = parse(&str_arg(a, 0, "timecmp")?, "timecmp")?;
    let y = parse(&str_arg(a, 1, "timecmp")?, "timecmp")?;
    Ok(Value::from(x.cmp(&y) as i64))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// One run of the same letter in a `formatdate` spec, written for time `t`.
fn verb(v: &str, t: &DateTime<FixedOffset>) -> Result<String, String> {
    let h12 = match t.hour() % 12 {
        0 => 12,
        h => h,
    };
    let off = t.offset().local_minus_utc() / 60;
    let (sign, oh, om) = (
        if off < 0 { '-' } else { '+' },
        off.abs() / 60,
        off.abs() % 60,
    );
    let month = MONTHS[t.month0() as usize];
    let day = DAYS[t.weekday().num_days_from_monday() as usize];
    Ok(match v {
        "YYYY" => format!("{:04}", t.year()),
        "YY" => format!("{:02}", t.year().rem_euclid(100)),
        "MMMM" => month.to_string(),
        "MMM" => month[..3].to_string(),
        "MM" => format!("{:02}", t.month()),
        "M" => t.month().to_string(),
        "DD" => format!("{:02}", t.day()),
        "D" => t.day().to_string(),
        "EEEE" => day.to_string(),
        "EEE" => day[..3].to_string(),
        "hh" => format!("{:02}", t.hour()),
        "h" => t.hour().to_string(),
        "HH" => format!("{h12:02}"),
        "H" => h12.to_string(),
        "AA" => (if t.hour() < 12 { "AM" } else { "PM" }).to_string(),
        "aa" => (if t.hour() < 12 { "am" } else { "pm" }).to_string(),
        "mm" => format!("{:02}", t.minute()),
        "m" => t.minute().to_string(),
        "ss" => format!("{:02}", t.second()),
        "s" => t.second().to_string(),
        "ZZZZZ" => format!("{sign}{oh:02}:{om:02}"),
        "ZZZZ" => format!("{sign}{oh:02}{om:02}"),
        "ZZZ" if off == 0 => "UTC".to_string(),
        "ZZZ" => format!("{sign}{oh:02}{om:02}"),
        "Z" if off == 0 => "Z".to_string(),
        "Z" => format!("{sign}{oh:02}:{om:02}"),
        _ => return Err(format!("formatdate(): invalid date format verb {v:?}")),
    })
}

/// Formats a timestamp by a spec of letter runs (`YYYY-MM-DD hh:mm`), `'quoted'` literal text (`''` is
/// one quote) and other characters copied as they are.
pub(super) fn formatdate(a: &[Value], _: &Scope<'_>) -> R {
    want(a, 2, "formatdate")?;
    let spec: Vec<char> = str_arg(a, 0, "formatdate")?.chars().collect();
    let t = parse(&str_arg(a, 1, "formatdate")?, "formatdate")?;
    let mut out = String::new();
    let mut i = 0;
    while i < spec.len() {
        let c = spec[i];
        if c == '\'' {
            if spec.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i = literal(&spec, i + 1, &mut out)?;
        } else if c.is_ascii_alphabetic() {
            let run = spec[i..].iter().take_while(|&&x| x == c).count();
            out.push_str(&verb(&spec[i..i + run].iter().collect::<String>(), &t)?);
            i += run;
        } else {
            out.push(c);
            i += 1;
        }
    }
    string(out)
}

/// Copies the quoted literal starting at `spec[i]` (after its opening quote) to `out`, a doubled quote
/// inside it as one quote; returns the index after its closing quote.
fn literal(spec: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    loop {
        match spec.get(i) {
            None => return Err("formatdate(): unterminated literal '".into()),
            Some('\'') if spec.get(i + 1) == Some(&'\'') => {
                out.push('\'');
                i += 2;
            }
            Some('\'') => return Ok(i + 1),
            Some(&c) => {
                out.push(c);
                i += 1;
            }
        }
    }
}
