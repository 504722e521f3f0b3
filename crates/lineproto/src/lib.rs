//! InfluxDB line protocol for Slipway: a fast borrowing parser that reports every bad line,
//! a writer for exporting to a real InfluxDB, and the VictoriaMetrics-style mapping to
//! Prometheus series.
//!
//! ```ignore
//! let body = "cpu,host=a usage=0.5 1700000000\nbad line\n";
//! let batch = lineproto::parse_batch(body, lineproto::Precision::parse("s")?);
//! assert_eq!(batch.len(), 1);
//! assert_eq!(batch.errors[0].to_string(), "unable to parse 'bad line': missing fields");
//! assert_eq!(batch.errors[0].line_message(), "line 2: missing fields");
//! // 1.x writes the good points and answers 400 with this; 2.x rejects the whole batch.
//! let partial = batch.influx1_error(); // Some("partial write: unable to parse ... dropped=0")
//! for p in batch.points() {
//!     let samples = lineproto::to_prometheus(p, &Default::default()); // cpu_usage{host="a"}
//! }
//! let export = lineproto::write_lines(batch.points(), Default::default()); // integers as `i`, never `u`
//! ```
//!
//! # Format notes
//!
//! * Escapes: `\,` and `\ ` in measurements; `\,`, `\=` and `\ ` in tag keys, tag values
//!   and field keys; `\"` and `\\` in string values; `\\` reads as one backslash, any other
//!   backslash is literal. Names borrow from the body unless they contain escapes.
//! * Field values: floats (no NaN or Inf, as InfluxDB), `i` integers, `u` unsigned integers,
//!   quoted strings, and `t T true True TRUE f F false False FALSE`.
//! * Lines end at `\n` (a `\r` before it is dropped); as the specification says, newlines
//!   inside values are not supported. `#` starts a comment line.
//! * Error reasons are those of InfluxDB's parser (`missing fields`, `invalid number`,
//!   `bad timestamp`, `unbalanced quotes`, ...).

mod mapping;
mod parse;
mod write;

use std::borrow::Cow;

pub use mapping::{MappingOptions, PromSample, to_prometheus};
pub use parse::{Batch, parse_batch, parse_line};
pub use write::{WriteOptions, write_line, write_lines};

/// Everything that can go wrong with line protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// One line could not be parsed; `line` is 1-based within the batch.
    #[error("unable to parse '{text}': {reason}")]
    Line {
        line: usize,
        text: String,
        reason: String,
    },
    /// The `precision` parameter is not one InfluxDB accepts.
    #[error("invalid precision {0:?}")]
    Precision(String),
}

impl Error {
    /// The InfluxDB 2.x / 3.x style message, `line 3: missing fields`.
    pub fn line_message(&self) -> String {
        match self {
            Error::Line { line, reason, .. } => format!("line {line}: {reason}"),
            other => other.to_string(),
        }
    }
}

/// A field value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue<'a> {
    Float(f64),
    /// Written with an `i` suffix.
    Integer(i64),
    /// Written with a `u` suffix (InfluxDB 2.x only).
    UInteger(u64),
    String(Cow<'a, str>),
    Boolean(bool),
}

/// One parsed line: measurement, tags, fields and timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Point<'a> {
    pub measurement: Cow<'a, str>,
    /// Tags in the order written.
    pub tags: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// Fields in the order written (at least one).
    pub fields: Vec<(Cow<'a, str>, FieldValue<'a>)>,
    /// Unix nanoseconds; `None` when the line has no timestamp (the server's clock applies).
    pub timestamp: Option<i64>,
}

/// A borrowed view of one point, as [`Batch::points`] hands them out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointRef<'b> {
    pub measurement: &'b str,
    pub tags: &'b [(Cow<'b, str>, Cow<'b, str>)],
    pub fields: &'b [(Cow<'b, str>, FieldValue<'b>)],
    /// Unix nanoseconds; `None` when the line has no timestamp.
    pub timestamp: Option<i64>,
}

impl<'b> PointRef<'b> {
    /// An owned point with the same content (names stay borrowed where they were).
    pub fn to_point(&self) -> Point<'b> {
        Point {
            measurement: Cow::Borrowed(self.measurement),
            tags: self.tags.to_vec(),
            fields: self.fields.to_vec(),
            timestamp: self.timestamp,
        }
    }
}

fn owned(s: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(s.into_owned())
}

impl Point<'_> {
    /// A borrowed view, for the writer and the mapping.
    pub fn view(&self) -> PointRef<'_> {
        PointRef {
            measurement: &self.measurement,
            tags: &self.tags,
            fields: &self.fields,
            timestamp: self.timestamp,
        }
    }

    /// A copy that no longer borrows the request body.
    pub fn into_owned(self) -> Point<'static> {
        Point {
            measurement: owned(self.measurement),
            tags: self
                .tags
                .into_iter()
                .map(|(k, v)| (owned(k), owned(v)))
                .collect(),
            fields: self
                .fields
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        FieldValue::String(s) => FieldValue::String(owned(s)),
                        FieldValue::Float(f) => FieldValue::Float(f),
                        FieldValue::Integer(i) => FieldValue::Integer(i),
                        FieldValue::UInteger(u) => FieldValue::UInteger(u),
                        FieldValue::Boolean(b) => FieldValue::Boolean(b),
                    };
                    (owned(k), v)
                })
                .collect(),
            timestamp: self.timestamp,
        }
    }
}

/// Timestamp precision of a write request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    #[default]
    Nanoseconds,
    Microseconds,
    Milliseconds,
    Seconds,
    /// 1.x only.
    Minutes,
    /// 1.x only.
    Hours,
}

impl Precision {
    /// Reads the `precision` query parameter: 1.x names (`n u ms s m h`) and 2.x names (`ns us ms s`).
    pub fn parse(s: &str) -> Result<Precision, Error> {
        Ok(match s {
            "" | "n" | "ns" => Precision::Nanoseconds,
            "u" | "us" | "µ" | "µs" => Precision::Microseconds,
            "ms" => Precision::Milliseconds,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            other => return Err(Error::Precision(other.to_string())),
        })
    }

    /// Nanoseconds per unit.
    pub fn nanos(self) -> i64 {
        match self {
            Precision::Nanoseconds => 1,
            Precision::Microseconds => 1_000,
            Precision::Milliseconds => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }
}

/// Smallest timestamp InfluxDB accepts, in nanoseconds.
pub const MIN_NANOS: i64 = i64::MIN + 2;
/// Largest timestamp InfluxDB accepts, in nanoseconds.
pub const MAX_NANOS: i64 = i64::MAX - 1;
