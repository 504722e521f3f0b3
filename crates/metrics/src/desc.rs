//! Metric metadata: name, type, help and unit, as served by `# TYPE`/`# HELP`/`# UNIT` and `/api/v1/metadata`.

use std::borrow::Cow;

/// The type of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A monotonically increasing value; the name ends in `_total` in this crate's model.
    Counter,
    /// A value that can go up and down.
    Gauge,
    /// Cumulative buckets plus `_sum` and `_count`.
    Histogram,
    /// No type information (`untyped` in 0.0.4, `unknown` in OpenMetrics).
    Unknown,
}

impl MetricType {
    /// The word used by the Prometheus text format 0.0.4 and the metadata API.
    pub fn prometheus_name(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Unknown => "untyped",
        }
    }

    /// The word used by OpenMetrics 1.0.
    pub fn openmetrics_name(self) -> &'static str {
        match self {
            MetricType::Unknown => "unknown",
            other => other.prometheus_name(),
        }
    }
}

/// Describes one metric family.
///
/// `name` is the sample name as Prometheus stores it: counters include the `_total` suffix
/// (`container_cpu_usage_seconds_total`), histograms do not include `_bucket`/`_sum`/`_count`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Desc {
    /// Metric name (see above for counters).
    pub name: Cow<'static, str>,
    /// Type.
    pub kind: MetricType,
    /// One-line help text.
    pub help: Cow<'static, str>,
    /// Unit (`seconds`, `bytes`, or empty), written as `# UNIT` in OpenMetrics when the name carries it.
    pub unit: Cow<'static, str>,
}

impl Desc {
    /// A description from static strings, usable in `static` items.
    pub const fn new(
        name: &'static str,
        kind: MetricType,
        unit: &'static str,
        help: &'static str,
    ) -> Desc {
        Desc {
            name: Cow::Borrowed(name),
            kind,
            help: Cow::Borrowed(help),
            unit: Cow::Borrowed(unit),
        }
    }
}
