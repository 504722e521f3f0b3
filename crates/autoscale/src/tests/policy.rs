//! Policy JSON: defaults, presets, round trips, and every error with its path.

use crate::{
    AutoscaleError, Behavior, Metric, Mode, Policy, Preset, SelectPolicy, StepPolicy,
    accept_any_promql,
};
use serde_json::json;

fn promql_check(q: &str) -> Result<(), String> {
    if q.matches('(').count() == q.matches(')').count() {
        Ok(())
    } else {
        Err("unbalanced parentheses".into())
    }
}

fn parse(v: serde_json::Value) -> Result<Policy, AutoscaleError> {
    Policy::from_value(&v, &promql_check)
}

/// Asserts the error paths and messages, as `path: message` lines.
#[track_caller]
fn check_errors(v: serde_json::Value, expected: &[&str]) {
    let err = parse(v).expect_err("policy should be rejected");
    let got: Vec<String> = err
        .fields()
        .iter()
        .flat_map(|f| f.errors.iter().map(move |e| format!("{}: {e}", f.path)))
        .collect();
    assert_eq!(got, expected, "{err}");
}

#[test]
fn a_minimal_policy_gets_the_defaults() {
    let p = parse(json!({"max": 5, "metrics": [{"type": "cpu", "target": 60}]})).unwrap();
    assert_eq!(p, Policy::new(1, 5, vec![Metric::Cpu { target: 60.0 }]));
    let b = &p.behavior;
    assert_eq!(b.scale_up.breach_seconds, 3.0);
    assert_eq!(b.scale_down.stabilization_seconds, 120.0);
    assert_eq!(b.tolerance, 0.1);
    assert_eq!(b.manual_pause_seconds, 300.0);
    assert_eq!(b.panic.as_ref().map(|p| p.threshold), Some(2.0));
}

#[test]
fn every_metric_type_and_field_parses() {
    let p = parse(json!({
        "min": 2, "max": 20, "mode": "all",
        "metrics": [
            {"type": "cpu", "target": 60},
            {"type": "memory", "target": 80.5},
            {"type": "rps", "target": 30},
            {"type": "latencyP95", "target": 250},
            {"type": "promql", "query": "sum(rate(jobs_queued[1m]))", "target": 10}
        ],
        "behavior": {
            "syncPeriodSeconds": 2, "metricResolutionSeconds": 2, "tolerance": 0.05,
            "scaleUp": {"breachSeconds": 5, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 30}], "selectPolicy": "Min"},
            "scaleDown": {"stabilizationSeconds": 60, "policies": [], "selectPolicy": "disabled"},
            "panic": {"threshold": 3, "breachSeconds": 0, "maxScaleUpRate": 4},
            "initializationSeconds": 60, "warmupSeconds": 5, "manualPauseSeconds": 600, "cooldownSeconds": 30
        }
    }))
    .unwrap();
    assert_eq!(p.mode, Mode::All);
    assert_eq!(p.metrics.len(), 5);
    let b = &p.behavior;
    assert_eq!(b.scale_up.policies, vec![StepPolicy::pods(2, 30)]);
    assert_eq!(b.scale_up.select_policy, SelectPolicy::Min);
    assert_eq!(b.scale_down.select_policy, SelectPolicy::Disabled);
    assert!(b.scale_down.policies.is_empty());
    assert_eq!(b.panic.as_ref().map(|p| p.max_scale_up_rate), Some(4.0));
    assert_eq!(b.cooldown_seconds, 30.0);
    assert_eq!(b.warmup_seconds, 5.0);
}

#[test]
fn the_hpa_preset_is_hpas_default_timing_and_fields_override_it() {
    let p = parse(json!({"max": 5, "metrics": [{"type": "cpu", "target": 60}],
        "behavior": {"preset": "hpa"}}))
    .unwrap();
    let b = &p.behavior;
    assert_eq!(b.preset, Some(Preset::Hpa));
    assert_eq!(
        (
            b.sync_period_seconds,
            b.metric_resolution_seconds,
            b.tolerance
        ),
        (15.0, 15.0, 0.1)
    );
    assert_eq!(b.scale_up.breach_seconds, 0.0);
    assert_eq!(
        b.scale_up.policies,
        vec![StepPolicy::pods(4, 15), StepPolicy::percent(100, 15)]
    );
    assert_eq!(b.scale_down.stabilization_seconds, 300.0);
    assert_eq!(b.panic, None);

    let p = parse(json!({"max": 5, "metrics": [{"type": "cpu", "target": 60}],
        "behavior": {"preset": "hpa", "scaleDown": {"stabilizationSeconds": 60}, "panic": {}}}))
    .unwrap();
    assert_eq!(p.behavior.scale_down.stabilization_seconds, 60.0);
    assert_eq!(p.behavior.scale_up.breach_seconds, 0.0);
    assert_eq!(p.behavior.panic, Behavior::default().panic);
}

#[test]
fn panic_null_turns_panic_off() {
    let p = parse(json!({"max": 5, "metrics": [{"type": "rps", "target": 10}],
        "behavior": {"panic": null}}))
    .unwrap();
    assert_eq!(p.behavior.panic, None);
}

#[test]
fn serialized_policies_parse_back_to_themselves() {
    let mut custom = parse(json!({"min": 3, "max": 9, "mode": "all",
        "metrics": [{"type": "memory", "target": 70}, {"type": "promql", "query": "up", "target": 2}],
        "behavior": {"preset": "hpa", "cooldownSeconds": 10, "scaleUp": {"selectPolicy": "min"}}}))
    .unwrap();
    custom.behavior.panic = None;
    let mut hpa = Policy::new(1, 4, vec![Metric::LatencyP95 { target: 200.0 }]);
    hpa.behavior = Behavior::preset(Some(Preset::Hpa));
    for p in [
        Policy::new(1, 10, vec![Metric::Cpu { target: 50.0 }]),
        hpa,
        custom,
    ] {
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(parse(v.clone()).unwrap(), p, "{v}");
        let back: Policy = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }
}

#[test]
fn the_json_shape_is_camel_case() {
    let v = serde_json::to_value(Policy::new(
        1,
        3,
        vec![Metric::LatencyP95 { target: 100.0 }],
    ))
    .unwrap();
    assert_eq!(
        v["metrics"][0],
        json!({"type": "latencyP95", "target": 100.0})
    );
    assert_eq!(v["mode"], "any");
    assert_eq!(v["behavior"]["scaleDown"]["stabilizationSeconds"], 120.0);
    assert_eq!(
        v["behavior"]["scaleUp"]["policies"][0],
        json!({"type": "percent", "value": 100, "periodSeconds": 10})
    );
    assert!(v["behavior"].get("preset").is_none());
}

#[test]
fn every_error_is_reported_at_once_with_its_path() {
    check_errors(
        json!({
            "min": 5, "max": 2,
            "metrics": [
                {"type": "cpu", "target": 60},
                {"type": "gpu", "target": 1},
                {"type": "rps"},
                {"type": "promql", "query": "sum(rate(x[1m])", "target": 1},
                {"type": "cpu", "target": 120},
                {"target": 3}
            ],
            "mode": "some",
            "color": "red",
            "behavior": {
                "tolerance": 2,
                "bogus": 1,
                "preset": "keda",
                "scaleDown": {"stabilizationSeconds": -1, "policies": [{"type": "pods", "value": 0}]},
                "scaleUp": {"selectPolicy": "most", "breachSeconds": "3"},
                "panic": {"threshold": 1}
            }
        }),
        &[
            "/color: unknown field: expected one of min, max, metrics, mode, behavior",
            "/min: min (5) is greater than max (2)",
            "/metrics(1)/type: unknown metric type 'gpu': expected one of cpu, memory, rps, latencyP95, promql",
            "/metrics(2)/target: target is required",
            "/metrics(3)/query: PromQL does not parse: unbalanced parentheses",
            "/metrics(4)/target: must be in (0, 100], got 120",
            "/metrics(5)/type: metric type is required: one of cpu, memory, rps, latencyP95, promql",
            "/mode: unknown value 'some': expected one of any, all",
            "/behavior/bogus: unknown field: expected one of preset, syncPeriodSeconds, metricResolutionSeconds, tolerance, scaleUp, scaleDown, panic, initializationSeconds, warmupSeconds, manualPauseSeconds, cooldownSeconds",
            "/behavior/preset: unknown value 'keda': expected one of hpa",
            "/behavior/tolerance: must be in [0, 1), got 2",
            "/behavior/scaleUp/breachSeconds: expected a number",
            "/behavior/scaleUp/selectPolicy: unknown value 'most': expected one of max, min, disabled",
            "/behavior/scaleDown/stabilizationSeconds: must be in [0, 3600], got -1",
            "/behavior/scaleDown/policies(0)/value: must be in [1, 1000000], got 0",
            "/behavior/scaleDown/policies(0)/periodSeconds: periodSeconds is required",
            "/behavior/panic/threshold: must be in (1, 100], got 1",
        ],
    );
}

#[test]
fn small_mistakes_each_name_their_field() {
    check_errors(
        json!({"min": 0, "metrics": []}),
        &[
            "/min: must be in [1, 10000], got 0",
            "/max: max is required",
            "/metrics: at least one metric is required",
        ],
    );
    check_errors(
        json!({"max": 2.5, "metrics": [{"type": "cpu", "target": 50}, {"type": "cpu", "target": 60}]}),
        &[
            "/max: expected a whole number",
            "/metrics(1)/type: duplicate metric 'cpu'",
        ],
    );
    check_errors(json!([1, 2]), &["/: expected an object"]);
}

#[test]
fn malformed_json_is_a_400_not_a_422() {
    let err = Policy::from_json(b"{\"max\": ", &accept_any_promql).unwrap_err();
    assert!(matches!(err, AutoscaleError::Malformed(_)), "{err}");
    let def: model::DefinitionError = err.into();
    assert!(matches!(def, model::DefinitionError::Malformed(_)));
}

#[test]
fn invalid_policies_convert_to_the_apis_422() {
    let err =
        parse(json!({"min": 3, "max": 1, "metrics": [{"type": "cpu", "target": 50}]})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "policy is not valid: /min: min (3) is greater than max (1)"
    );
    let def: model::DefinitionError = err.into();
    assert!(matches!(def, model::DefinitionError::Invalid(ref f) if f[0].path == "/min"));
}

#[test]
fn validate_checks_policies_built_in_code() {
    let mut p = Policy::new(
        4,
        2,
        vec![Metric::Promql {
            query: "rate(x[1m]".into(),
            target: 0.0,
        }],
    );
    p.behavior.tolerance = 1.5;
    let err = p.validate(&promql_check).unwrap_err();
    let paths: Vec<&str> = err.fields().iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/min",
            "/metrics(0)/target",
            "/metrics(0)/query",
            "/behavior/tolerance"
        ]
    );
    assert!(
        Policy::new(1, 2, vec![Metric::Cpu { target: 50.0 }])
            .validate(&promql_check)
            .is_ok()
    );
}
