//! Prometheus HTTP API shapes: result and error bodies, and the `time`/`step` parameter formats.

use std::fmt::Write as _;

use crate::Error;
use crate::engine::QueryValue;
use crate::labels::Labels;

/// Formats a sample value as the Prometheus API does (`NaN`, `+Inf`, `-Inf`, shortest digits, no exponent).
pub fn format_value(v: f64) -> String {
    let mut out = String::with_capacity(24);
    write_value(&mut out, v);
    out
}

/// Appends [`format_value`]'s text: the shortest digits that read back to `v`, never an
/// exponent, as Rust's `{}` prints them (and Go's `strconv.FormatFloat(v, 'f', -1, 64)`),
/// without going through `fmt`.
pub(crate) fn write_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else if v.abs() < 9e15 && (v as i64) as f64 == v {
        // Integers below 2^53 print as themselves (counters, bytes, pages).
        if v == 0.0 && v.is_sign_negative() {
            out.push('-');
        }
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else {
        let mut buf = zmij::Buffer::new();
        let s = buf.format_finite(v);
        if exact_digits(v).is_some_and(|n| n == significant_digits(s) + 1) {
            // Two shortest candidates are equally close: zmij rounds the tie to even, Rust's
            // `{}` up (`262805233293453.125` prints as `…453.12` and `…453.13`). Keep `{}`.
            let _ = write!(out, "{v}");
        } else {
            write_fixed(out, s);
        }
    }
}

/// The number of significant digits of `v`'s exact decimal expansion when it is short
/// (at most 18) and ends in a fractional 5, the only case where the shortest round-trip
/// digits can tie; `None` otherwise (most values: integers and full-precision fractions).
fn exact_digits(v: f64) -> Option<usize> {
    let bits = v.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1u64 << 52), biased - 1075)
    };
    if m == 0 {
        return None;
    }
    let tz = m.trailing_zeros();
    let (m, e) = (m >> tz, e + tz as i32);
    // v = m * 2^e with m odd; for e < 0 that is m * 5^-e / 10^-e, whose digits end in 5.
    if !(-26..0).contains(&e) {
        return None;
    }
    let digits = u128::from(m) * 5u128.pow(e.unsigned_abs());
    (digits < 10u128.pow(18)).then(|| digits.ilog10() as usize + 1)
}

/// Significant digits of a number printed by zmij (`-0.00123` has 3, `1.5e-7` 2).
fn significant_digits(s: &str) -> usize {
    let mantissa = s.split(['e', 'E']).next().unwrap_or(s);
    let d = mantissa.as_bytes();
    let nonzero = |c: &u8| (b'1'..=b'9').contains(c);
    match (d.iter().position(nonzero), d.iter().rposition(nonzero)) {
        (Some(first), Some(last)) => d[first..=last]
            .iter()
            .filter(|c| c.is_ascii_digit())
            .count(),
        _ => 0,
    }
}

/// Rewrites a finite float printed with the shortest round-trip digits (`123.0`, `0.001`,
/// `-1.5e-7`, `1e21`) in fixed notation without a trailing `.0` (`123`, `0.001`,
/// `-0.00000015`, `1000000000000000000000`).
fn write_fixed(out: &mut String, s: &str) {
    let Some(e) = s.bytes().position(|b| b == b'e' || b == b'E') else {
        out.push_str(s.strip_suffix(".0").unwrap_or(s));
        return;
    };
    let (mantissa, exp) = (&s[..e], &s[e + 1..]);
    let Ok(exp) = exp.parse::<i32>() else {
        out.push_str(s);
        return;
    };
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // The significant digits, and the position of the decimal point relative to them.
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    let lead = digits.iter().take_while(|&&d| d == b'0').count();
    digits.drain(..lead);
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    let point = int.len() as i64 + i64::from(exp) - lead as i64;
    if neg {
        out.push('-');
    }
    if digits.is_empty() {
        out.push('0');
        return;
    }
    let push = |out: &mut String, d: &[u8]| d.iter().for_each(|&c| out.push(char::from(c)));
    match usize::try_from(point) {
        Err(_) | Ok(0) => {
            out.push_str("0.");
            (0..point.unsigned_abs()).for_each(|_| out.push('0'));
            push(out, &digits);
        }
        Ok(p) if p >= digits.len() => {
            push(out, &digits);
            (0..p - digits.len()).for_each(|_| out.push('0'));
        }
        Ok(p) => {
            push(out, &digits[..p]);
            out.push('.');
            push(out, &digits[p..]);
        }
    }
}

/// Appends a millisecond timestamp as Prometheus' JSON seconds (`1700000000.123`, `1700000000`).
pub fn write_timestamp(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let abs = ms.unsigned_abs();
    out.push_str(itoa::Buffer::new().format(abs / 1000));
    let frac = abs % 1000;
    if frac != 0 {
        out.push('.');
        for d in [frac / 100, frac / 10 % 10, frac % 10] {
            out.push(char::from(b'0' + d as u8));
        }
    }
}

/// Appends `s` as a JSON string (serde_json's escaping; most label names and values need none).
fn write_str(out: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

fn write_metric(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(out, k);
        out.push(':');
        write_str(out, v);
    }
    out.push('}');
}

fn write_point(out: &mut String, t: i64, v: f64) {
    out.push('[');
    write_timestamp(out, t);
    out.push_str(",\"");
    write_value(out, v);
    out.push_str("\"]");
}

/// Appends the `data` object of a successful query.
fn write_data(out: &mut String, value: &QueryValue) {
    match value {
        QueryValue::Scalar { t, v } => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            write_point(out, *t, *v);
        }
        QueryValue::String { t, v } => {
            out.push_str("{\"resultType\":\"string\",\"result\":[");
            write_timestamp(out, *t);
            out.push(',');
            write_str(out, v);
            out.push(']');
        }
        QueryValue::Vector(samples) => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_metric(out, &s.labels);
                out.push_str(",\"value\":");
                write_point(out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            let mut stamps: Vec<(i64, String)> = Vec::new();
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_metric(out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, &(t, v)) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    // Series of a range query mostly share their steps: the j-th
                    // timestamp is usually the one formatted for the series before.
                    match stamps.get_mut(j) {
                        Some((ct, text)) if *ct == t => out.push_str(text),
                        Some((ct, text)) => {
                            *ct = t;
                            text.clear();
                            write_timestamp(text, t);
                            out.push_str(text);
                        }
                        None => {
                            let mut text = String::with_capacity(16);
                            write_timestamp(&mut text, t);
                            out.push_str(&text);
                            stamps.push((t, text));
                        }
                    }
                    out.push_str(",\"");
                    write_value(out, v);
                    out.push_str("\"]");
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
}

/// A guess of the rendered size, so the buffer is allocated once.
fn size_hint(value: &QueryValue) -> usize {
    match value {
        QueryValue::Scalar { .. } | QueryValue::String { .. } => 128,
        QueryValue::Vector(v) => 64 + v.len() * 128,
        QueryValue::Matrix(m) => {
            64 + m
                .iter()
                .map(|s| 96 + s.labels.len() * 32 + s.samples.len() * 32)
                .sum::<usize>()
        }
    }
}

/// The `data` object of a successful query: `{"resultType":...,"result":...}`.
pub fn render_data(value: &QueryValue) -> String {
    let mut out = String::with_capacity(size_hint(value));
    write_data(&mut out, value);
    out
}

/// A success body: `{"status":"success","data":{...}}`.
pub fn render_success(value: &QueryValue) -> String {
    let mut out = String::with_capacity(size_hint(value) + 32);
    out.push_str("{\"status\":\"success\",\"data\":");
    write_data(&mut out, value);
    out.push('}');
    out
}

/// The `/api/v1/labels` and `/api/v1/label/<name>/values` body: `{"status":"success","data":["a","b"]}`.
pub fn render_string_list<S: AsRef<str>>(items: &[S]) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_str(&mut out, s.as_ref());
    }
    out.push_str("]}");
    out
}

/// The `/api/v1/series` body: `{"status":"success","data":[{"__name__":"up","job":"api"}]}`.
pub fn render_series(series: &[Labels]) -> String {
    let mut out = String::from("{\"status\":\"success\",\"data\":[");
    for (i, labels) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_metric(&mut out, labels);
    }
    out.push_str("]}");
    out
}

/// An error body: `{"status":"error","errorType":"bad_data","error":"..."}`.
pub fn render_error(err: &Error) -> String {
    let mut out = String::from("{\"status\":\"error\",\"errorType\":");
    write_str(&mut out, err.error_type());
    out.push_str(",\"error\":");
    write_str(&mut out, &err.to_string());
    out.push('}');
    out
}

/// Parses an API time parameter (RFC 3339 or Unix seconds with a fraction) to Unix milliseconds.
pub fn parse_time(s: &str) -> Result<i64, Error> {
    let bad = || Error::BadData(format!("cannot parse {s:?} to a valid timestamp"));
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() || f.abs() > 9.2e15 {
            return Err(bad());
        }
        let secs = f.trunc();
        let ms = ((f - secs) * 1000.0).round();
        return Ok(secs as i64 * 1000 + ms as i64);
    }
    parse_rfc3339(s).ok_or_else(bad)
}

/// Parses an API duration parameter (`step`): a Prometheus duration or float seconds, to milliseconds.
pub fn parse_step(s: &str) -> Result<i64, Error> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = f * 1000.0;
        if !ms.is_finite() || ms.abs() > 9.2e15 {
            return Err(Error::BadData(format!(
                "cannot parse {s:?} to a valid duration. It overflows int64"
            )));
        }
        return Ok(ms.round() as i64);
    }
    crate::lexer::parse_duration(s)
        .ok_or_else(|| Error::BadData(format!("cannot parse {s:?} to a valid duration")))
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let part = b.get(at..at + n)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        part.iter()
            .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0')),
    )
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let (year, month, day) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't'))
    {
        return None;
    }
    let (hour, min, sec) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 9 {
            return None;
        }
        let frac = &s[start..i];
        let padded = format!("{frac:0<9}");
        let nanos: i64 = padded.parse().ok()?;
        ms = nanos / 1_000_000;
    }
    let offset_s = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (digits(b, i + 1, 2)?, digits(b, i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    Some(secs * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The formatting `format_value` had before it went through zmij: Rust's `{}`.
    fn reference(v: f64) -> String {
        if v.is_nan() {
            "NaN".to_string()
        } else if v == f64::INFINITY {
            "+Inf".to_string()
        } else if v == f64::NEG_INFINITY {
            "-Inf".to_string()
        } else {
            format!("{v}")
        }
    }

    #[test]
    fn values_print_as_before() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            123.456,
            1e15,
            1e16,
            1e17,
            1e21,
            1.5e300,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            1e-5,
            1e-4,
            1.5e-7,
            -2.5e-10,
            123_456_789_012_345_680.0,
            -262_805_233_293_453.12,
            0.5,
            2.125,
            1_234_567_890_123.062_5,
            0.000_123,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(format_value(v), reference(v), "{v:e}");
        }
    }

    #[test]
    fn timestamps_print_as_before() {
        for ms in [
            0,
            1,
            999,
            1000,
            1001,
            -1,
            -1500,
            1_700_000_000_123,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = String::new();
            write_timestamp(&mut out, ms);
            let abs = ms.unsigned_abs();
            let mut want = if ms < 0 {
                "-".to_string()
            } else {
                String::new()
            };
            want.push_str(&(abs / 1000).to_string());
            if abs % 1000 != 0 {
                want.push_str(&format!(".{:03}", abs % 1000));
            }
            assert_eq!(out, want);
        }
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        for s in [
            "",
            "plain",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{1}",
            "é ü 日本",
            "\u{7f}",
        ] {
            let mut out = String::new();
            write_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        #[test]
        fn any_float_prints_as_before(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assert_eq!(format_value(v), reference(v));
        }

        /// Short binary fractions, where the shortest digits can tie.
        #[test]
        fn binary_fractions_print_as_before(k in 0u64..(1 << 53), shift in 1i32..30, neg in any::<bool>()) {
            let v = k as f64 / 2f64.powi(shift);
            let v = if neg { -v } else { v };
            prop_assert_eq!(format_value(v), reference(v));
        }

        #[test]
        fn decimal_floats_print_as_before(n in -1_000_000_000i64..1_000_000_000, scale in 0u32..12) {
            let v = n as f64 / 10f64.powi(scale as i32);
            prop_assert_eq!(format_value(v), reference(v));
        }
    }
}
