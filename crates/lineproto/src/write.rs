//! Serialising points back to line protocol, for exporting to a real InfluxDB.

use std::fmt::Write as _;

#[cfg(doc)]
use crate::Point;
use crate::{FieldValue, PointRef, Precision};

/// Writer settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteOptions {
    /// Write unsigned fields with a `u` suffix (2.x only). Off by default: unsigned values are
    /// written as `i` integers, saturating at `i64::MAX`, so 1.x accepts them (as cAdvisor does).
    pub unsigned: bool,
    /// Precision the timestamps are written in (they are divided, rounding toward minus infinity).
    pub precision: Precision,
}

fn escape_into(out: &mut String, s: &str, specials: &[char]) {
    for c in s.chars() {
        if c == '\\' || specials.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Appends one point as a line (with a trailing `\n`). What line protocol cannot carry is
/// left out: NaN and infinite floats, empty field keys, empty tag keys or values. A point
/// left without fields, or whose measurement is empty or starts with `#` (a comment), writes
/// nothing. Returns whether a line was written.
pub fn write_line(out: &mut String, p: PointRef<'_>, opts: WriteOptions) -> bool {
    let writable = |(k, v): &&(std::borrow::Cow<'_, str>, FieldValue<'_>)| {
        !k.is_empty() && !matches!(v, FieldValue::Float(f) if !f.is_finite())
    };
    if p.measurement.is_empty()
        || p.measurement.starts_with('#')
        || !p.fields.iter().any(|f| writable(&f))
    {
        return false;
    }
    escape_into(out, p.measurement, &[',', ' ']);
    for (k, v) in p.tags {
        if k.is_empty() || v.is_empty() {
            continue;
        }
        out.push(',');
        escape_into(out, k, &[',', '=', ' ']);
        out.push('=');
        escape_into(out, v, &[',', '=', ' ']);
    }
    let mut first = true;
    for (k, v) in p.fields.iter().filter(writable) {
        out.push(if first { ' ' } else { ',' });
        first = false;
        escape_into(out, k, &[',', '=', ' ']);
        out.push('=');
        match v {
            FieldValue::Float(f) => {
                let _ = write!(out, "{f}");
            }
            FieldValue::Integer(i) => {
                let _ = write!(out, "{i}i");
            }
            FieldValue::UInteger(u) if opts.unsigned => {
                let _ = write!(out, "{u}u");
            }
            FieldValue::UInteger(u) => {
                let _ = write!(out, "{}i", i64::try_from(*u).unwrap_or(i64::MAX));
            }
            FieldValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
            FieldValue::String(s) => {
                out.push('"');
                for c in s.chars() {
                    if c == '"' || c == '\\' {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
        }
    }
    if let Some(ts) = p.timestamp {
        let _ = write!(out, " {}", ts.div_euclid(opts.precision.nanos()));
    }
    out.push('\n');
    true
}

/// Serialises points into one request body: `write_lines(batch.points(), opts)`, or
/// `write_lines(points.iter().map(Point::view), opts)` for owned points.
pub fn write_lines<'b>(
    points: impl IntoIterator<Item = PointRef<'b>>,
    opts: WriteOptions,
) -> String {
    let mut out = String::new();
    for p in points {
        write_line(&mut out, p, opts);
    }
    out
}
