//! Integration tests of the metrics crate: exposition, registry, cgroup v1 (real) and v2 (fixtures), host, fuzzing.

mod docker;
mod expo;
mod host;
mod props;
mod registry;
mod v1;
mod v2;

use metrics::reader::ParsedFamily;
use metrics::{Families, Format, encode};

/// Encodes in both formats, checks both with the reader, and returns the 0.0.4 families read back.
pub(crate) fn roundtrip(f: &Families) -> Vec<ParsedFamily> {
    let mut om = String::new();
    encode(f.families(), Format::OpenMetrics, &mut om);
    metrics::reader::parse(&om, Format::OpenMetrics)
        .unwrap_or_else(|e| panic!("openmetrics invalid: {e}\n{om}"));
    let mut text = String::new();
    encode(f.families(), Format::Prometheus, &mut text);
    metrics::reader::parse(&text, Format::Prometheus)
        .unwrap_or_else(|e| panic!("0.0.4 invalid: {e}\n{text}"))
}

/// The single value of `name` in `families` whose labels include `with`.
pub(crate) fn value(families: &[ParsedFamily], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let matching: Vec<f64> = families
        .iter()
        .flat_map(|f| &f.samples)
        .filter(|s| s.name == name && with.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
        .collect();
    assert!(
        matching.len() <= 1,
        "{name} {with:?} matches {} samples",
        matching.len()
    );
    matching.first().copied()
}
