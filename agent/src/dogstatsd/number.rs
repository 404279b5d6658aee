//! Numbers in DogStatsD lines: metric values, sample rates, timestamps and event lengths.
//!
//! A leaf module (it imports nothing of the agent): the parser reads every value here, once, and hands the
//! numbers on with the line (`model::Numbers`). The rules: NaN and infinity are numbers to the Agent's parser
//! (its aggregator drops them; kelpie counts them dropped as it reads them), a number too large for an f64
//! (`1e400`) is not one (an error to Go's `ParseFloat`, and here).

/// Exact powers of ten for the decimal fast path.
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// A finite f64, or None.
///
/// Plain decimals of up to 15 significant digits without exponent (`1`, `-42.5`, `0.125`: nearly every
/// DogStatsD value) take a short path: with the digits as an integer m < 2^53 and k <= 15 fraction digits,
/// both m and 10^k are exact doubles and `m / 10^k` is one correctly rounded division, so the result is
/// exactly what the standard library's parser returns (Clinger's fast path). Everything else goes through the
/// standard library.
#[inline]
pub fn parse_f64(b: &[u8]) -> Option<f64> {
    let (negative, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.len() <= 16 {
        let mut mantissa: u64 = 0;
        let mut count = 0usize;
        let mut dot: Option<usize> = None;
        let mut simple = true;
        for &c in digits {
            let d = c.wrapping_sub(b'0');
            if d <= 9 {
                mantissa = mantissa * 10 + d as u64;
                count += 1;
            } else if c == b'.' && dot.is_none() {
                dot = Some(count);
            } else {
                simple = false;
                break;
            }
        }
        if simple && count > 0 && count <= 15 {
            // mantissa < 10^15 < 2^53: exact as i64 and as f64 (i64 converts in one instruction).
            let m = mantissa as i64 as f64;
            let v = match dot.map_or(0, |at| count - at) {
                0 => m,
                fraction_digits => m / POW10[fraction_digits],
            };
            return Some(if negative { -v } else { v });
        }
    }
    // from_utf8 cannot fail on the bytes given here (they are a slice of a &str between ASCII separators), but
    // staying in safe code costs one short scan.
    let v: f64 = std::str::from_utf8(b).ok()?.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Whether `v` spells NaN or an infinity as Go's `ParseFloat` reads them (`nan`; `inf` or `infinity` with an
/// optional sign; any case).
#[cold]
pub fn is_non_finite(v: &[u8]) -> bool {
    if v.eq_ignore_ascii_case(b"nan") {
        return true;
    }
    let unsigned = v
        .strip_prefix(b"+")
        .or_else(|| v.strip_prefix(b"-"))
        .unwrap_or(v);
    unsigned.eq_ignore_ascii_case(b"inf") || unsigned.eq_ignore_ascii_case(b"infinity")
}

/// How many numbers a metric line's value field (`1`, or `:`-packed `1:2:3`) held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Values {
    /// Finite numbers (each handed to the caller).
    pub finite: u64,
    /// NaN and infinities (dropped, as the Agent's aggregator drops them).
    pub non_finite: u64,
}

/// Why a value field was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValuesError {
    /// No number at all (only `:` separators).
    Empty,
    /// An entry is not a number.
    Invalid,
    /// Numbers, but none finite.
    NonFinite,
}

/// Reads every `:`-separated value of a metric line (empty entries such as `1::2` are skipped, as the Agent
/// does) and hands each finite one to `each`, in order; a field with no finite value is refused. The only
/// place values are read: the parser keeps the numbers for the aggregator.
#[inline]
pub fn read_values(raw: &[u8], mut each: impl FnMut(f64)) -> Result<Values, ValuesError> {
    let mut n = Values {
        finite: 0,
        non_finite: 0,
    };
    for v in raw.split(|&c| c == b':') {
        if v.is_empty() {
            continue;
        }
        match parse_f64(v) {
            Some(x) => {
                each(x);
                n.finite += 1;
            }
            None if is_non_finite(v) => n.non_finite += 1,
            None => return Err(ValuesError::Invalid),
        }
    }
    if n.finite == 0 {
        return Err(if n.non_finite > 0 {
            ValuesError::NonFinite
        } else {
            ValuesError::Empty
        });
    }
    Ok(n)
}

/// A decimal i64 (optional sign), or None.
pub fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A decimal usize with digits only (no sign, no spaces), or None.
pub fn parse_len(b: &[u8]) -> Option<usize> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}
