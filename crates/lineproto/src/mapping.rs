//! Mapping points to Prometheus-style samples the way VictoriaMetrics ingests line protocol.

use crate::{FieldValue, PointRef};

/// VictoriaMetrics' flags for line protocol ingestion.
#[derive(Clone, Debug)]
pub struct MappingOptions {
    /// `-influxMeasurementFieldSeparator`, default `_`.
    pub separator: String,
    /// `-influxSkipSingleField`: use `{measurement}` when a line has exactly one field.
    pub skip_single_field: bool,
    /// `-influxSkipMeasurement`: use `{field}` alone.
    pub skip_measurement: bool,
    /// The `db` query parameter; added as a `db` label unless the line has a `db` tag.
    pub db: Option<String>,
}

impl Default for MappingOptions {
    fn default() -> MappingOptions {
        MappingOptions {
            separator: "_".to_string(),
            skip_single_field: false,
            skip_measurement: false,
            db: None,
        }
    }
}

/// One Prometheus sample derived from a line protocol field.
#[derive(Clone, Debug, PartialEq)]
pub struct PromSample {
    /// The metric name (`__name__`).
    pub name: String,
    /// The other labels, sorted by name.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Unix milliseconds, or `None` for "now".
    pub timestamp_ms: Option<i64>,
}

/// Maps one point to one sample per field: name `{measurement}{separator}{field}`, tags as
/// labels (empty values dropped). Integers, unsigned integers and floats keep their value,
/// booleans become 1/0, and strings are read as numbers where possible and as 0 otherwise
/// (VictoriaMetrics' best-effort rule).
pub fn to_prometheus(p: PointRef<'_>, opts: &MappingOptions) -> Vec<PromSample> {
    let mut labels: Vec<(String, String)> = p
        .tags
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(db) = &opts.db
        && !db.is_empty()
        && !labels.iter().any(|(k, _)| k == "db")
    {
        labels.push(("db".to_string(), db.clone()));
    }
    labels.sort();
    labels.dedup_by(|a, b| a.0 == b.0);
    let skip_field = !p.measurement.is_empty() && p.fields.len() == 1 && opts.skip_single_field;
    let mut prefix = String::new();
    if !opts.skip_measurement {
        prefix.push_str(p.measurement);
    }
    if !prefix.is_empty() && !skip_field {
        prefix.push_str(&opts.separator);
    }
    let timestamp_ms = p.timestamp.map(|ns| ns.div_euclid(1_000_000));
    p.fields
        .iter()
        .map(|(k, v)| {
            let name = if skip_field {
                prefix.clone()
            } else {
                format!("{prefix}{k}")
            };
            let value = match v {
                FieldValue::Float(f) => *f,
                FieldValue::Integer(i) => *i as f64,
                FieldValue::UInteger(u) => *u as f64,
                FieldValue::Boolean(b) => f64::from(u8::from(*b)),
                FieldValue::String(s) => s.trim().parse().unwrap_or(0.0),
            };
            PromSample {
                name,
                labels: labels.clone(),
                value,
                timestamp_ms,
            }
        })
        .collect()
}
