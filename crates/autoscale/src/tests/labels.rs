//! Policies from `SLIPWAY_AUTOSCALE_*` labels.

use crate::{Metric, Mode, Policy, Preset};
use std::collections::BTreeMap;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (format!("SLIPWAY_AUTOSCALE_{k}"), v.to_string()))
        .chain([("HAPROXY_GROUP".to_string(), "external".to_string())])
        .collect()
}

/// Asserts the error lines (`path: message`).
#[track_caller]
fn check_errors(pairs: &[(&str, &str)], expected: &[&str]) {
    let err = Policy::from_labels(&labels(pairs)).expect_err("labels should be rejected");
    let got: Vec<String> = err
        .fields()
        .iter()
        .flat_map(|f| f.errors.iter().map(move |e| format!("{}: {e}", f.path)))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn no_autoscale_labels_means_no_policy() {
    assert_eq!(Policy::from_labels(&labels(&[])), Ok(None));
}

#[test]
fn labels_give_the_same_policy_as_json() {
    let p = Policy::from_labels(&labels(&[
        ("MIN", "2"),
        ("MAX", "8"),
        ("CPU", "60%"),
        ("MEM", "75"),
        ("RPS", "30"),
        ("MODE", "and"),
    ]))
    .unwrap()
    .unwrap();
    let mut expected = Policy::new(
        2,
        8,
        vec![
            Metric::Cpu { target: 60.0 },
            Metric::Memory { target: 75.0 },
            Metric::Rps { target: 30.0 },
        ],
    );
    expected.mode = Mode::All;
    assert_eq!(p, expected);
}

#[test]
fn min_defaults_to_one_and_a_preset_can_be_named() {
    let p = Policy::from_labels(&labels(&[("MAX", "4"), ("RPS", "10"), ("PRESET", "hpa")]))
        .unwrap()
        .unwrap();
    assert_eq!((p.min, p.max), (1, 4));
    assert_eq!(p.behavior.preset, Some(Preset::Hpa));
}

#[test]
fn errors_name_the_label() {
    check_errors(
        &[
            ("MIN", "two"),
            ("MAX", "8"),
            ("CPU", "lots"),
            ("MODE", "xor"),
            ("GPU", "1"),
        ],
        &[
            "/labels/SLIPWAY_AUTOSCALE_CPU: expected a number, got 'lots'",
            "/labels/SLIPWAY_AUTOSCALE_GPU: unknown autoscale label: expected one of SLIPWAY_AUTOSCALE_MIN, SLIPWAY_AUTOSCALE_MAX, SLIPWAY_AUTOSCALE_CPU, SLIPWAY_AUTOSCALE_MEM, SLIPWAY_AUTOSCALE_RPS, SLIPWAY_AUTOSCALE_MODE, SLIPWAY_AUTOSCALE_PRESET",
            "/labels/SLIPWAY_AUTOSCALE_MIN: expected a whole number, got 'two'",
            "/labels/SLIPWAY_AUTOSCALE_MODE: expected any or all, got 'xor'",
        ],
    );
    check_errors(
        &[("MIN", "1")],
        &[
            "/labels: one of SLIPWAY_AUTOSCALE_CPU, SLIPWAY_AUTOSCALE_MEM or SLIPWAY_AUTOSCALE_RPS is required",
            "/labels/SLIPWAY_AUTOSCALE_MAX: required with any other autoscale label",
        ],
    );
}

#[test]
fn policy_rules_are_reported_on_the_labels() {
    check_errors(
        &[
            ("MIN", "5"),
            ("MAX", "3"),
            ("CPU", "150"),
            ("RPS", "0"),
            ("PRESET", "keda"),
        ],
        &[
            "/labels/SLIPWAY_AUTOSCALE_MIN: min (5) is greater than max (3)",
            "/labels/SLIPWAY_AUTOSCALE_CPU: must be in (0, 100], got 150",
            "/labels/SLIPWAY_AUTOSCALE_RPS: must be in (0, 1000000000000], got 0",
            "/labels/SLIPWAY_AUTOSCALE_PRESET: unknown value 'keda': expected one of hpa",
        ],
    );
}
