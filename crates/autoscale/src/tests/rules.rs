//! One table test per decision rule, each checking the target and the human line.

use super::{at, ready, rps_policy, run, young};
use crate::{
    Action, ControllerState, Counted, Decision, Deployment, Input, Metric, Mode, Policy,
    QuerySample, Readiness, Reason, Recommendation, SelectPolicy, Signal, StepPolicy, decide,
};

/// Asserts a decision's target and that its line contains every fragment.
#[track_caller]
fn check(d: &Decision, target: u32, fragments: &[&str]) {
    let line = d.summary();
    assert_eq!(d.target, target, "{line}");
    for f in fragments {
        assert!(line.contains(f), "missing {f:?} in: {line}");
    }
}

/// Ready instances with one value each, at second `now`.
fn input(policy: Policy, now: f64, values: &[f64]) -> Input {
    let signal = policy.metrics[0].signal().unwrap_or(Signal::Rps);
    let mut i = Input::new(policy, values.len() as u32);
    i.instances = values
        .iter()
        .enumerate()
        .map(|(k, v)| ready(&format!("i{k}"), signal, now, *v))
        .collect();
    i
}

/// A state that has watched since long ago and recommended `n` throughout.
fn watched(n: u32, now: f64) -> ControllerState {
    ControllerState {
        recommendations: (0..200)
            .map(|k| Recommendation {
                at: at(now - 200.0 + f64::from(k)),
                instances: n,
            })
            .collect(),
        changes: Vec::new(),
        watching_since: Some(at(now - 1000.0)),
    }
}

#[test]
fn inside_the_tolerance_nothing_changes() {
    let i = input(rps_policy(1, 10, 30.0), 500.0, &[32.0, 33.0]);
    let (d, _) = decide(&i, &watched(2, 500.0), at(500.0));
    check(
        &d,
        2,
        &["no change at 2", "within tolerance 0.1: keep 2", "[32, 33]"],
    );
}

#[test]
fn the_formula_is_hpas_and_is_shown_with_its_numbers() {
    let i = input(rps_policy(1, 10, 30.0), 500.0, &[45.0, 45.0]);
    let (d, _) = decide(&i, &watched(2, 500.0), at(500.0));
    assert_eq!(d.metrics[0].recommendation, Some(3));
    check(
        &d,
        2,
        &[
            "ceil(2 ready × 45/30) = ceil(2 × 1.50) = 3",
            "breach held 0 s of 3 s",
        ],
    );
}

#[test]
fn scale_up_waits_for_the_breach_window_then_takes_its_lowest_recommendation() {
    let mut i = Input::new(rps_policy(1, 10, 30.0), 2);
    let mut state = watched(2, 100.0);
    // 1.5× from second 100, 1.8× from 102: recommendations 3, 3, 4, 4.
    let ds = run(&mut i, &mut state, 100, 103, |t| {
        if t < 102.0 { 45.0 } else { 54.0 }
    });
    check(&ds[0], 2, &["breach held 0 s of 3 s"]);
    check(&ds[2], 2, &["breach held 2 s of 3 s"]);
    check(
        &ds[3],
        3,
        &[
            "scale up 2 → 3",
            "breach held 3 s of 3 s, lowest recommendation in it 3",
        ],
    );
    assert_eq!(ds[3].action, Action::ScaleUp);
}

#[test]
fn a_breach_that_stops_resets_the_window() {
    let mut i = Input::new(rps_policy(1, 10, 30.0), 2);
    let mut state = watched(2, 100.0);
    let ds = run(&mut i, &mut state, 100, 106, |t| {
        if t == 102.0 { 30.0 } else { 45.0 }
    });
    check(&ds[3], 2, &["breach held 0 s of 3 s"]);
    check(&ds[5], 2, &["breach held 2 s of 3 s"]);
    check(&ds[6], 3, &["scale up 2 → 3"]);
}

#[test]
fn panic_solves_a_3x_step_in_one_decision_after_one_second() {
    let mut i = Input::new(rps_policy(1, 20, 30.0), 4);
    let mut state = watched(4, 100.0);
    let ds = run(&mut i, &mut state, 100, 101, |_| 90.0);
    check(
        &ds[0],
        4,
        &["panic: breach held 0 s of 1 s", "(panic level)"],
    );
    check(
        &ds[1],
        12,
        &["scale up 4 → 12 (panic)", "panic: breach held 1 s of 1 s"],
    );
}

#[test]
fn rounds_a_little_less_than_a_second_apart_hold_the_panic_window() {
    // Two evaluations 0.96 s apart (the collector's rounds jitter): the breach is held.
    // The samples are stamped with the end of their bucket, as the controller does.
    let mut state = watched(4, 100.0);
    let i = input(rps_policy(1, 20, 30.0), 99.0, &[90.0; 4]);
    let (d, next) = decide(&i, &state, at(99.98));
    check(&d, 4, &["panic: breach held 0 s of 1 s"]);
    state = next;
    let i = input(rps_policy(1, 20, 30.0), 100.0, &[90.0; 4]);
    let (d, _) = decide(&i, &state, at(100.94));
    check(
        &d,
        12,
        &["scale up 4 → 12 (panic)", "breach held 0.96 s of 1 s"],
    );
    // Half a second is not a held breach.
    let (d, _) = decide(&i, &state, at(100.48));
    check(&d, 4, &["panic: breach held 0.5 s of 1 s"]);
}

#[test]
fn without_panic_the_step_policies_limit_a_big_step() {
    let mut p = rps_policy(1, 40, 30.0);
    p.behavior.panic = None;
    let mut i = Input::new(p, 10);
    let mut state = watched(10, 100.0);
    let ds = run(&mut i, &mut state, 100, 103, |_| 90.0);
    // 100 % or 4 pods per 10 s: 10 → 20, not 30.
    check(&ds[3], 20, &["limited to 20 by percent 100 / 10 s"]);
    // Within the same period the limit counts the change already made.
    let ds = run(&mut i, &mut state, 104, 107, |_| 90.0 * 10.0 / 20.0);
    assert!(ds.iter().all(|d| d.target == 20), "{}", ds[3].summary());
    check(&ds[3], 20, &["limited to 20 by percent 100 / 10 s"]);
}

#[test]
fn select_policy_min_and_disabled() {
    let mut p = rps_policy(1, 40, 30.0);
    p.behavior.panic = None;
    p.behavior.scale_up.select_policy = SelectPolicy::Min;
    let mut i = Input::new(p.clone(), 10);
    let ds = run(&mut i, &mut watched(10, 100.0), 100, 103, |_| 60.0);
    check(&ds[3], 14, &["limited to 14 by pods 4 / 10 s"]);

    p.behavior.scale_up.select_policy = SelectPolicy::Disabled;
    let mut i = Input::new(p, 10);
    let ds = run(&mut i, &mut watched(10, 100.0), 100, 103, |_| 60.0);
    check(&ds[3], 10, &["disabled by selectPolicy"]);
}

#[test]
fn scale_down_takes_the_highest_recommendation_of_the_window() {
    let mut i = Input::new(rps_policy(1, 10, 30.0), 6);
    let mut state = watched(6, 100.0);
    // Load for 2 instances from 100 on; the recommendations of 6 end at 99.
    let ds = run(&mut i, &mut state, 100, 221, |_| 10.0);
    check(
        &ds[0],
        6,
        &["scale-down waits: highest recommendation in the last 120 s is 6"],
    );
    check(&ds[119], 6, &["is 6"]);
    check(
        &ds[120],
        2,
        &[
            "scale down 6 → 2",
            "highest recommendation in the last 120 s is 2",
        ],
    );
    assert!(ds[121..].iter().all(|d| d.action == Action::Hold));
}

#[test]
fn a_load_drop_over_a_few_buckets_is_one_step_down_not_a_staircase() {
    let mut i = Input::new(rps_policy(1, 10, 30.0), 6);
    let mut state = watched(6, 100.0);
    // Total load falls from 180 (6 instances' worth) to 60 (2) over three seconds, so the
    // window passes through 5 and 4 on its way down.
    let total = |t: f64| (180.0 - 40.0 * (t - 100.0)).clamp(60.0, 180.0);
    // (Values stay per 6 instances: the run ends before a second window could pass.)
    let ds = run(&mut i, &mut state, 100, 260, |t| total(t) / 6.0);
    let changes: Vec<(u32, u32)> = ds
        .iter()
        .filter(|d| d.is_change())
        .map(|d| (d.current, d.target))
        .collect();
    assert_eq!(changes, vec![(6, 2)], "one step down to 2");
    assert!(
        ds.iter()
            .any(|d| d.to_string().contains("waits for the fall to settle")),
        "the wait is explained"
    );
}

#[test]
fn scale_down_needs_a_whole_window_of_watching() {
    let i = input(rps_policy(1, 10, 30.0), 100.0, &[5.0, 5.0, 5.0]);
    let (d, state) = decide(&i, &ControllerState::default(), at(100.0));
    check(
        &d,
        3,
        &["scale-down waits: watched 0 s of the 120 s window"],
    );
    assert_eq!(state.watching_since, Some(at(100.0)));
}

#[test]
fn scale_down_step_limits_apply() {
    let mut p = rps_policy(1, 10, 30.0);
    p.behavior.scale_down.policies = vec![StepPolicy::pods(1, 60)];
    let i = input(p, 500.0, &[5.0; 6]);
    let (d, next) = decide(&i, &watched(1, 500.0), at(500.0));
    check(
        &d,
        5,
        &["scale down 6 → 5", "limited to 5 by pods 1 / 60 s"],
    );
    let mut i2 = input(i.policy.clone(), 501.0, &[5.0; 5]);
    i2.current = 5;
    let (d, _) = decide(&i2, &next, at(501.0));
    check(&d, 5, &["limited to 5 by pods 1 / 60 s"]);
}

#[test]
fn min_and_max_always_hold() {
    let i = input(rps_policy(3, 5, 30.0), 500.0, &[30.0, 30.0]);
    let (d, _) = decide(&i, &watched(2, 500.0), at(500.0));
    check(&d, 3, &["scale up 2 → 3: below min 3"]);
    let i = input(rps_policy(1, 5, 30.0), 500.0, &[30.0; 7]);
    let (d, _) = decide(&i, &watched(7, 500.0), at(500.0));
    check(&d, 5, &["scale down 7 → 5: above max 5"]);
    // A recommendation past max is clamped before it is recorded.
    let mut i = Input::new(rps_policy(1, 5, 30.0), 4);
    let ds = run(&mut i, &mut watched(4, 100.0), 100, 101, |_| 300.0);
    check(
        &ds[1],
        5,
        &["recommendation 40 clamped to 5", "scale up 4 → 5"],
    );
}

#[test]
fn mode_any_takes_the_highest_so_a_down_vote_never_beats_an_up_vote() {
    let mut p = Policy::new(
        1,
        10,
        vec![
            Metric::Cpu { target: 50.0 },
            Metric::Memory { target: 50.0 },
        ],
    );
    p.behavior.scale_up.breach_seconds = 0.0;
    p.behavior.panic = None;
    let mut i = Input::new(p, 2);
    i.instances = (0..2)
        .map(|k| {
            let mut inst = ready(&format!("i{k}"), Signal::Cpu, 500.0, 100.0);
            inst.samples.push(crate::Sample {
                signal: Signal::Memory,
                at: at(500.0),
                value: 5.0,
            });
            inst
        })
        .collect();
    let (d, _) = decide(&i, &watched(2, 500.0), at(500.0));
    assert_eq!(
        (d.metrics[0].recommendation, d.metrics[1].recommendation),
        (Some(4), Some(1))
    );
    check(&d, 4, &["scale up 2 → 4"]);
}

/// Two instances with cpu and memory values, mode all, breach window 0.
fn all_mode(cpu: f64, mem: f64) -> Input {
    let mut p = Policy::new(
        1,
        10,
        vec![
            Metric::Cpu { target: 50.0 },
            Metric::Memory { target: 50.0 },
        ],
    );
    p.mode = Mode::All;
    p.behavior.scale_up.breach_seconds = 0.0;
    p.behavior.panic = None;
    let mut i = Input::new(p, 4);
    i.instances = (0..4)
        .map(|k| {
            let mut inst = ready(&format!("i{k}"), Signal::Cpu, 500.0, cpu);
            inst.samples.push(crate::Sample {
                signal: Signal::Memory,
                at: at(500.0),
                value: mem,
            });
            inst
        })
        .collect();
    i
}

#[test]
fn mode_all_moves_only_when_every_metric_agrees() {
    let (d, _) = decide(&all_mode(100.0, 20.0), &watched(4, 500.0), at(500.0));
    check(&d, 4, &["mode all: the metrics disagree on a direction"]);
    // Both up: the lowest count every metric asks for.
    let (d, _) = decide(&all_mode(100.0, 75.0), &watched(4, 500.0), at(500.0));
    check(&d, 6, &["scale up 4 → 6"]);
    // Both down: the highest count, so neither metric goes past its target.
    let (d, _) = decide(&all_mode(20.0, 35.0), &watched(1, 500.0), at(500.0));
    check(&d, 3, &["scale down 4 → 3"]);
    // One metric inside its tolerance holds the other.
    let (d, _) = decide(&all_mode(52.0, 10.0), &watched(1, 500.0), at(500.0));
    check(&d, 4, &["no change at 4"]);
}

#[test]
fn a_metric_without_data_blocks_scale_down_but_not_scale_up() {
    let mut i = all_mode(10.0, 10.0);
    i.policy.mode = Mode::Any;
    for inst in &mut i.instances {
        inst.samples.retain(|s| s.signal == Signal::Cpu);
    }
    let (d, _) = decide(&i, &watched(1, 500.0), at(500.0));
    check(&d, 4, &["no data for memory: not scaling down"]);
    for inst in &mut i.instances {
        inst.samples[0].value = 100.0;
    }
    let (d, _) = decide(&i, &watched(4, 500.0), at(500.0));
    check(&d, 8, &["scale up 4 → 8"]);
}

#[test]
fn a_data_outage_restarts_the_scale_down_window() {
    // The last recommendation is 11 s old: more than three 1 s loops.
    let i = input(rps_policy(1, 10, 30.0), 511.0, &[5.0; 6]);
    let (d, next) = decide(&i, &watched(6, 500.0), at(511.0));
    check(
        &d,
        6,
        &["scale-down waits: watched 0 s of the 120 s window"],
    );
    assert_eq!(next.watching_since, Some(at(511.0)));
    // A short gap does not.
    let i = input(rps_policy(1, 10, 30.0), 502.0, &[5.0; 6]);
    let (d, _) = decide(&i, &watched(6, 500.0), at(502.0));
    check(&d, 6, &["highest recommendation in the last 120 s is 6"]);
}

#[test]
fn no_data_at_all_holds_and_records_nothing() {
    let mut i = input(rps_policy(1, 10, 30.0), 500.0, &[30.0, 30.0]);
    for inst in &mut i.instances {
        inst.samples[0].at = at(480.0);
    }
    let (d, next) = decide(&i, &ControllerState::default(), at(500.0));
    check(&d, 2, &["no metric has data", "missing, missing"]);
    assert!(next.recommendations.is_empty());
}

#[test]
fn unready_instances_count_as_zero_on_a_scale_up() {
    // Two ready at 2× target; four new ones burning start-up CPU.
    let mut p = Policy::new(1, 10, vec![Metric::Cpu { target: 50.0 }]);
    p.behavior.scale_up.breach_seconds = 0.0;
    let mut i = Input::new(p, 6);
    i.instances = vec![
        ready("old0", Signal::Cpu, 500.0, 100.0),
        ready("old1", Signal::Cpu, 500.0, 100.0),
        young("s", Readiness::Starting, 500.0, 1.0, Signal::Cpu, 100.0),
        young("g", Readiness::GracePeriod, 500.0, 5.0, Signal::Cpu, 100.0),
        young("u", Readiness::Unhealthy, 500.0, 20.0, Signal::Cpu, 100.0),
        // Ready, but its sample predates readiness plus one bucket.
        {
            let mut r = young("r", Readiness::Ready, 500.0, 6.0, Signal::Cpu, 100.0);
            r.ready_since = Some(at(499.5));
            r
        },
    ];
    let (d, _) = decide(&i, &watched(6, 500.0), at(500.0));
    let counted: Vec<Counted> = d.metrics[0].instances.iter().map(|v| v.counted).collect();
    assert_eq!(counted[2..], [Counted::Unready; 4]);
    check(
        &d,
        6,
        &[
            "with 4 unready as 0: 0.67, direction flips: keep 6",
            "no change at 6",
        ],
    );
}

#[test]
fn after_the_initialization_period_an_instance_that_was_ready_counts_even_if_unhealthy() {
    let mut p = Policy::new(1, 10, vec![Metric::Cpu { target: 50.0 }]);
    p.behavior.scale_up.breach_seconds = 0.0;
    p.behavior.panic = None;
    let mut i = Input::new(p, 2);
    let mut overloaded = ready("busy", Signal::Cpu, 500.0, 100.0);
    overloaded.readiness = Readiness::Unhealthy;
    i.instances = vec![ready("a", Signal::Cpu, 500.0, 100.0), overloaded];
    let (d, _) = decide(&i, &watched(2, 500.0), at(500.0));
    check(&d, 4, &["scale up 2 → 4", "ceil(2 ready × 100/50)"]);
}

#[test]
fn missing_instances_count_as_zero_up_and_as_full_down() {
    let mut p = Policy::new(1, 10, vec![Metric::Cpu { target: 50.0 }]);
    p.behavior.scale_up.breach_seconds = 0.0;
    p.behavior.panic = None;
    let mut i = Input::new(p, 3);
    let mut silent = ready("silent", Signal::Cpu, 500.0, 0.0);
    silent.samples.clear();
    i.instances = vec![
        ready("a", Signal::Cpu, 500.0, 90.0),
        ready("b", Signal::Cpu, 500.0, 90.0),
        silent,
    ];
    let (d, _) = decide(&i, &watched(3, 500.0), at(500.0));
    check(
        &d,
        4,
        &["ceil(3 × 60/50) = ceil(3 × 1.20) = 4 (1 missing as 0)"],
    );
    for inst in &mut i.instances[..2] {
        inst.samples[0].value = 10.0;
    }
    let (d, _) = decide(&i, &watched(1, 500.0), at(500.0));
    check(&d, 3, &["(1 missing as 100)", "= 3"]);
}

#[test]
fn a_deployment_in_progress_is_never_fought() {
    let mut i = input(rps_policy(1, 10, 30.0), 500.0, &[90.0, 90.0]);
    i.deployment = Some(Deployment {
        target_instances: 2,
    });
    let (d, next) = decide(&i, &watched(2, 500.0), at(500.0));
    check(
        &d,
        2,
        &[
            "a deployment is in progress (to 2 instances): waiting for it",
            "= 6",
        ],
    );
    assert_eq!(next.watching_since, None);
    assert_eq!(d.recommendation, Some(6));
    assert!(next.recommendations.iter().all(|r| r.at < at(500.0)));
    // Afterwards a breach must hold again (the recommendations before it do not count)...
    let mut i = Input::new(rps_policy(1, 10, 30.0), 2);
    let mut after = next.clone();
    after.recommendations = (0..5)
        .map(|k| Recommendation {
            at: at(480.0 + f64::from(k)),
            instances: 6,
        })
        .collect();
    let ds = run(&mut i, &mut after, 501, 504, |_| 45.0);
    check(&ds[0], 2, &["breach held 0 s of 3 s"]);
    check(&ds[3], 3, &["scale up 2 → 3"]);
    // ...and a scale-down waits for a fresh window.
    let i = input(rps_policy(1, 10, 30.0), 501.0, &[5.0, 5.0, 5.0]);
    let (d, _) = decide(&i, &next, at(501.0));
    check(&d, 3, &["watched 0 s of the 120 s window"]);
}

#[test]
fn a_manual_scale_pauses_the_autoscaler_and_says_so() {
    let mut i = input(rps_policy(1, 10, 30.0), 500.0, &[5.0; 8]);
    i.manual_scale_at = Some(at(440.0));
    let (d, _) = decide(&i, &watched(1, 500.0), at(500.0));
    check(&d, 8, &["paused after a manual scale at ", "240 s left"]);
    // Min/max still hold during the pause.
    i.policy.max = 6;
    let (d, _) = decide(&i, &watched(1, 500.0), at(500.0));
    check(&d, 6, &["above max 6"]);
    // After the pause it acts.
    i.policy.max = 10;
    let i2 = input(i.policy.clone(), 741.0, &[5.0; 8]);
    let i2 = Input {
        manual_scale_at: Some(at(440.0)),
        ..i2
    };
    let (d, _) = decide(&i2, &watched(1, 741.0), at(741.0));
    check(&d, 2, &["scale down 8 → 2"]);
}

#[test]
fn cooldown_delays_a_reversal() {
    let mut p = rps_policy(1, 10, 30.0);
    p.behavior.cooldown_seconds = 60.0;
    p.behavior.scale_down.stabilization_seconds = 10.0;
    let mut state = watched(1, 500.0);
    state.changes.push(crate::Change {
        at: at(480.0),
        from: 1,
        to: 4,
    });
    let i = input(p, 500.0, &[5.0; 4]);
    let (d, _) = decide(&i, &state, at(500.0));
    check(
        &d,
        4,
        &[
            "highest recommendation in the last 10 s is 1",
            "cooldown after the last change: 40 s left",
        ],
    );
}

#[test]
fn promql_values_are_shared_among_the_instances() {
    let mut p = Policy::new(
        1,
        10,
        vec![Metric::Promql {
            query: "sum(queue_depth)".into(),
            target: 20.0,
        }],
    );
    p.behavior.scale_up.breach_seconds = 0.0;
    p.behavior.panic = None;
    let mut i = Input::new(p, 2);
    i.queries = vec![QuerySample {
        query: "sum(queue_depth)".into(),
        at: at(500.0),
        value: 100.0,
    }];
    let (d, _) = decide(&i, &watched(2, 500.0), at(500.0));
    check(
        &d,
        5,
        &["promql `sum(queue_depth)` 100 target 20: ceil(100 / 20) = 5"],
    );
}

#[test]
fn the_hpa_preset_acts_on_the_first_breaching_evaluation() {
    let mut p = rps_policy(1, 10, 30.0);
    p.behavior = crate::Behavior::preset(Some(crate::Preset::Hpa));
    let mut i = Input::new(p, 2);
    i.instances = (0..2)
        .map(|k| ready(&format!("i{k}"), Signal::Rps, 495.0, 45.0))
        .collect();
    let (d, _) = decide(&i, &watched(2, 495.0), at(495.0));
    check(&d, 3, &["scale up 2 → 3", "breach held 0 s of 0 s"]);
}

#[test]
fn decisions_serialize_with_structured_reasons() {
    let mut i = Input::new(rps_policy(1, 20, 30.0), 4);
    let ds = run(&mut i, &mut watched(4, 100.0), 100, 101, |_| 90.0);
    let v = serde_json::to_value(&ds[1]).unwrap();
    assert_eq!(v["action"], "scaleUp");
    assert_eq!(v["target"], 12);
    assert_eq!(v["reasons"][0]["kind"], "breachHeld");
    assert_eq!(v["reasons"][0]["windowSeconds"], 1.0);
    assert_eq!(v["metrics"][0]["instances"][0]["counted"], "ready");
    assert_eq!(v["metrics"][0]["recommendation"], 12);
    let back: Decision = serde_json::from_value(v).unwrap();
    assert_eq!(back, ds[1]);
    assert!(matches!(
        back.reasons[0],
        Reason::BreachHeld { lowest: 12, .. }
    ));
}

#[test]
fn the_decision_json_shape() {
    let mut i = input(rps_policy(1, 10, 30.0), 500.0, &[45.0]);
    i.instances[0].id = "app.t1".into();
    let (d, _) = decide(&i, &watched(1, 500.0), at(500.0));
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        serde_json::json!({
            "at": "2027-01-15T08:08:20.000Z",
            "current": 1,
            "target": 1,
            "action": "hold",
            "panic": false,
            "mode": "any",
            "recommendation": 2,
            "metrics": [{
                "metric": "rps",
                "unit": " req/s",
                "target": 30.0,
                "instances": [{"id": "app.t1", "value": 45.0, "counted": "ready", "used": 45.0}],
                "ratio": 1.5,
                "adjustedRatio": null,
                "formula": "ceil(1 ready × 45/30) = ceil(1 × 1.50) = 2",
                "recommendation": 2,
                "withinTolerance": false,
                "panic": false
            }],
            "reasons": [{"kind": "breachNotHeld", "heldSeconds": 0.0, "windowSeconds": 3.0, "panic": false}]
        })
    );
    assert_eq!(
        d.to_string(),
        "no change at 1: breach held 0 s of 3 s | rps [45] target 30 req/s: \
         ceil(1 ready × 45/30) = ceil(1 × 1.50) = 2"
    );
}
