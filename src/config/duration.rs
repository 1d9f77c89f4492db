//! Go durations: `time.ParseDuration` (negative durations refused) and `Duration.String()`,
//! byte for byte, for the `DAEMON_*` duration variables and for printing them back.
//!
//! It knows nothing about variables or config files; `reader.rs` turns a [`DurationError`] into
//! a config error.

use std::time::Duration;

/// Why a Go duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DurationError {
    Empty,
    Invalid,
    MissingUnit,
    UnknownUnit(String),
    Negative,
    Overflow,
}

impl DurationError {
    /// The detail shown in [`super::ConfigError::InvalidDuration`] (empty when the hint says it all).
    pub(super) fn reason(&self) -> &'static str {
        match self {
            DurationError::MissingUnit => "missing unit",
            DurationError::Negative => "negative durations are not allowed",
            DurationError::Overflow => "out of range",
            _ => "",
        }
    }
}

/// Go `time.ParseDuration`, except that negative durations are refused.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| match e {
        DurationError::Empty => "empty duration".to_string(),
        DurationError::Invalid => format!("invalid duration {s:?}"),
        DurationError::MissingUnit => format!("missing unit in duration {s:?}"),
        DurationError::UnknownUnit(u) => format!("unknown unit {u:?} in duration {s:?}"),
        DurationError::Negative => format!("negative duration {s:?} is not allowed"),
        DurationError::Overflow => format!("duration {s:?} is out of range"),
    })
}

fn unit_nanos(unit: &[u8]) -> Option<u64> {
    Some(match unit {
        b"ns" => 1,
        b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000, // us, µs (micro sign), μs (Greek mu)
        b"ms" => 1_000_000,
        b"s" => 1_000_000_000,
        b"m" => 60_000_000_000,
        b"h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Go's `leadingFraction`: digits as an integer and the power of ten they scale by; digits that
/// would overflow are dropped.
fn leading_fraction(s: &[u8]) -> (u64, f64, &[u8]) {
    let end = s
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for &c in &s[..end] {
        if overflow {
            continue;
        }
        match x
            .checked_mul(10)
            .and_then(|y| y.checked_add(u64::from(c - b'0')))
        {
            Some(y) if y <= 1 << 63 => {
                x = y;
                scale *= 10.0;
            }
            _ => overflow = true,
        }
    }
    (x, scale, &s[end..])
}

pub(super) fn parse_duration(orig: &str) -> Result<Duration, DurationError> {
    const LIMIT: u64 = 1 << 63;
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(rest) = s.strip_prefix(b"-") {
        neg = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix(b"+") {
        s = rest;
    }
    if s == b"0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(if orig.is_empty() {
            DurationError::Empty
        } else {
            DurationError::Invalid
        });
    }
    let mut total: u64 = 0;
    while let Some(&first) = s.first() {
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(DurationError::Invalid);
        }
        let int_end = s
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(s.len());
        let mut v: u64 = 0;
        for &c in &s[..int_end] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|&v| v <= LIMIT)
                .ok_or(DurationError::Overflow)?;
        }
        let pre = int_end > 0;
        s = &s[int_end..];
        let (mut f, mut scale, mut post) = (0, 1.0, false);
        if let Some(rest) = s.strip_prefix(b".") {
            (f, scale, s) = leading_fraction(rest);
            post = s.len() != rest.len();
        }
        if !pre && !post {
            return Err(DurationError::Invalid);
        }
        let unit_end = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_end == 0 {
            return Err(DurationError::MissingUnit);
        }
        let (unit, rest) = s.split_at(unit_end);
        s = rest;
        let unit = unit_nanos(unit).ok_or_else(|| {
            DurationError::UnknownUnit(String::from_utf8_lossy(unit).into_owned())
        })?;
        if v > LIMIT / unit {
            return Err(DurationError::Overflow);
        }
        v *= unit;
        if f > 0 {
            // Go does this in floating point; do the same to get the same rounding.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let frac = (f as f64 * (unit as f64 / scale)) as u64;
            v = v
                .checked_add(frac)
                .filter(|&v| v <= LIMIT)
                .ok_or(DurationError::Overflow)?;
        }
        total = total
            .checked_add(v)
            .filter(|&t| t <= LIMIT)
            .ok_or(DurationError::Overflow)?;
    }
    if neg {
        return if total == 0 {
            Ok(Duration::ZERO)
        } else {
            Err(DurationError::Negative)
        };
    }
    if total >= LIMIT {
        return Err(DurationError::Overflow);
    }
    Ok(Duration::from_nanos(total))
}

/// Go's `fmtFrac`: `.digits` without trailing zeros, or nothing when the fraction is zero.
fn go_fraction(v: u128, prec: usize) -> String {
    if v == 0 {
        return String::new();
    }
    let digits = format!("{v:0prec$}");
    format!(".{}", digits.trim_end_matches('0'))
}

/// Go `Duration.String()`.
#[must_use]
pub fn format_go_duration(d: Duration) -> String {
    let u = d.as_nanos();
    if u == 0 {
        return "0s".to_string();
    }
    if u < 1_000_000_000 {
        let (prec, div, unit) = if u < 1_000 {
            (0, 1, "ns")
        } else if u < 1_000_000 {
            (3, 1_000, "\u{b5}s")
        } else {
            (6, 1_000_000, "ms")
        };
        return format!("{}{}{unit}", u / div, go_fraction(u % div, prec));
    }
    let secs = u / 1_000_000_000;
    let s = format!("{}{}s", secs % 60, go_fraction(u % 1_000_000_000, 9));
    if secs < 60 {
        s
    } else if secs < 3600 {
        format!("{}m{s}", secs / 60)
    } else {
        format!("{}h{}m{s}", secs / 3600, secs / 60 % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_parse_table() {
        let ok = [
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("-0s", 0),
            ("0s", 0),
            ("300ms", 300_000_000),
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("2h45m", 9_900_000_000_000),
            ("1h2m3.5s", 3_723_500_000_000),
            (".5s", 500_000_000),
            ("1.s", 1_000_000_000),
            ("+5s", 5_000_000_000),
            ("1ns", 1),
            ("2us", 2_000),
            ("3\u{b5}s", 3_000),
            ("4\u{3bc}s", 4_000),
            ("1.0000000001s", 1_000_000_000),
            ("2562047h47m16.854775807s", i64::MAX.unsigned_abs()),
        ];
        for (s, nanos) in ok {
            assert_eq!(parse_go_duration(s), Ok(Duration::from_nanos(nanos)), "{s}");
        }
        let bad = [
            ("", "empty duration"),
            ("5", "missing unit in duration \"5\""),
            ("1h30", "missing unit in duration \"1h30\""),
            ("-1s", "negative duration \"-1s\" is not allowed"),
            ("3x", "unknown unit \"x\" in duration \"3x\""),
            ("1S", "unknown unit \"S\" in duration \"1S\""),
            (".s", "invalid duration \".s\""),
            ("s", "invalid duration \"s\""),
            ("-", "invalid duration \"-\""),
            (" 1s", "invalid duration \" 1s\""),
            (
                "2562047h47m16.854775808s",
                "duration \"2562047h47m16.854775808s\" is out of range",
            ),
        ];
        for (s, e) in bad {
            assert_eq!(parse_go_duration(s), Err(e.to_string()), "{s}");
        }
    }

    #[test]
    fn go_duration_format_table() {
        let rows = [
            (0, "0s"),
            (1, "1ns"),
            (1_100, "1.1\u{b5}s"),
            (1_000, "1\u{b5}s"),
            (300_000_000, "300ms"),
            (2_500_000, "2.5ms"),
            (1_500_000_000, "1.5s"),
            (30_000_000_000, "30s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (60_000_000_001, "1m0.000000001s"),
        ];
        for (nanos, s) in rows {
            assert_eq!(format_go_duration(Duration::from_nanos(nanos)), s);
            assert_eq!(parse_go_duration(s), Ok(Duration::from_nanos(nanos)), "{s}");
        }
    }
}
