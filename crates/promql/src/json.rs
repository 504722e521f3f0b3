//! Prometheus HTTP API shapes: result and error bodies, and the `time`/`step` parameter formats.

use std::fmt::Write as _;

use crate::Error;
use crate::engine::QueryValue;
use crate::labels::Labels;

/// Formats a sample value as the Prometheus API does (`NaN`, `+Inf`, `-Inf`, shortest digits, no exponent).
pub fn format_value(v: f64) -> String {
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

/// Appends a millisecond timestamp as Prometheus' JSON seconds (`1700000000.123`, `1700000000`).
pub fn write_timestamp(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let abs = ms.unsigned_abs();
    let _ = write!(out, "{}", abs / 1000);
    let frac = abs % 1000;
    if frac != 0 {
        let _ = write!(out, ".{frac:03}");
    }
}

fn write_str(out: &mut String, s: &str) {
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

fn write_point(out: &mut String, t: i64, v: &str) {
    out.push('[');
    write_timestamp(out, t);
    out.push(',');
    write_str(out, v);
    out.push(']');
}

/// The `data` object of a successful query: `{"resultType":...,"result":...}`.
pub fn render_data(value: &QueryValue) -> String {
    let mut out = String::with_capacity(256);
    match value {
        QueryValue::Scalar { t, v } => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            write_point(&mut out, *t, &format_value(*v));
        }
        QueryValue::String { t, v } => {
            out.push_str("{\"resultType\":\"string\",\"result\":");
            write_point(&mut out, *t, v);
        }
        QueryValue::Vector(samples) => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_metric(&mut out, &s.labels);
                out.push_str(",\"value\":");
                write_point(&mut out, s.t, &format_value(s.v));
                out.push('}');
            }
            out.push(']');
        }
        QueryValue::Matrix(series) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_metric(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, (t, v)) in s.samples.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(&mut out, *t, &format_value(*v));
                }
                out.push_str("]}");
            }
            out.push(']');
        }
    }
    out.push('}');
    out
}

/// A success body: `{"status":"success","data":{...}}`.
pub fn render_success(value: &QueryValue) -> String {
    format!("{{\"status\":\"success\",\"data\":{}}}", render_data(value))
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
