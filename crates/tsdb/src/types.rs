//! Public value types: sample values, points to append, query results and metric metadata.

use std::fmt;

use crate::labels::Labels;

/// The kind of values a series holds, fixed by its first append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueKind {
    /// IEEE-754 double.
    Float,
    /// Signed 64-bit integer (InfluxDB `i` fields).
    Integer,
    /// Boolean.
    Bool,
}

impl ValueKind {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Self::Float => 0,
            Self::Integer => 1,
            Self::Bool => 2,
        }
    }

    pub(crate) fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Float),
            1 => Some(Self::Integer),
            2 => Some(Self::Bool),
            _ => None,
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Float => "float",
            Self::Integer => "integer",
            Self::Bool => "bool",
        })
    }
}

/// One sample value. Equality is bitwise, so `NaN == NaN` here.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    /// A float.
    Float(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
}

impl Value {
    /// The value's kind.
    pub fn kind(self) -> ValueKind {
        match self {
            Self::Float(_) => ValueKind::Float,
            Self::Int(_) => ValueKind::Integer,
            Self::Bool(_) => ValueKind::Bool,
        }
    }

    /// The value as a float (integers above 2^53 lose precision; `true` is 1).
    pub fn as_f64(self) -> f64 {
        match self {
            Self::Float(v) => v,
            Self::Int(v) => v as f64,
            Self::Bool(b) => f64::from(u8::from(b)),
        }
    }

    pub(crate) fn to_bits(self) -> u64 {
        match self {
            Self::Float(v) => v.to_bits(),
            Self::Int(v) => v as u64,
            Self::Bool(b) => u64::from(b),
        }
    }

    pub(crate) fn from_bits(kind: ValueKind, bits: u64) -> Self {
        match kind {
            ValueKind::Float => Self::Float(f64::from_bits(bits)),
            ValueKind::Integer => Self::Int(bits as i64),
            ValueKind::Bool => Self::Bool(bits != 0),
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.to_bits() == other.to_bits()
    }
}

/// A stored sample: timestamp in milliseconds since the Unix epoch and a value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value.
    pub v: Value,
}

/// One sample to append.
#[derive(Clone, Debug)]
pub struct Point {
    /// The series.
    pub labels: Labels,
    /// Milliseconds since the Unix epoch.
    pub t: i64,
    /// The value.
    pub v: Value,
}

/// A series and its samples in the queried range, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub labels: Labels,
    /// The series' value kind.
    pub kind: ValueKind,
    /// Samples in `[start, end]`.
    pub samples: Vec<Sample>,
}

/// The metric type of a metric family, as in Prometheus `# TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// Monotonic counter.
    Counter,
    /// Gauge.
    Gauge,
    /// Histogram.
    Histogram,
    /// Summary.
    Summary,
    /// Unknown or untyped.
    Unknown,
}

impl MetricType {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Self::Counter => 0,
            Self::Gauge => 1,
            Self::Histogram => 2,
            Self::Summary => 3,
            Self::Unknown => 4,
        }
    }

    pub(crate) fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Counter,
            1 => Self::Gauge,
            2 => Self::Histogram,
            3 => Self::Summary,
            4 => Self::Unknown,
            _ => return None,
        })
    }
}

/// Type, help and unit of a metric name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The metric type.
    pub metric_type: MetricType,
    /// The help text.
    pub help: String,
    /// The unit (may be empty).
    pub unit: String,
}
