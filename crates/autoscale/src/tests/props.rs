//! Property tests: bounds, determinism, no flapping under noise, no quick reversals, a 3× step
//! in one decision, and no second scale-up from warming instances.

use super::sim::Sim;
use super::{at, ready};
use crate::{
    Action, Behavior, Change, ControllerState, Deployment, Input, Instance, Metric, Mode, Policy,
    Preset, Readiness, Recommendation, Sample, Signal, decide,
};
use proptest::prelude::*;

fn arb_readiness() -> impl Strategy<Value = Readiness> {
    prop_oneof![
        Just(Readiness::Starting),
        Just(Readiness::GracePeriod),
        Just(Readiness::Unhealthy),
        Just(Readiness::Ready),
    ]
}

prop_compose! {
    fn arb_policy()(
        min in 1u32..5,
        span in 0u32..10,
        targets in (5.0f64..100.0, 5.0f64..100.0),
        two_metrics in any::<bool>(),
        all in any::<bool>(),
        hpa in any::<bool>(),
        breach in 0.0f64..5.0,
        panic in any::<bool>(),
        stabilization in 0.0f64..200.0,
        cooldown in 0.0f64..60.0,
    ) -> Policy {
        let mut metrics = vec![Metric::Cpu { target: targets.0 }];
        if two_metrics {
            metrics.push(Metric::Rps { target: targets.1 });
        }
        let mut p = Policy::new(min, min + span, metrics);
        p.mode = if all { Mode::All } else { Mode::Any };
        p.behavior = Behavior::preset(hpa.then_some(Preset::Hpa));
        p.behavior.scale_up.breach_seconds = breach;
        if !panic {
            p.behavior.panic = None;
        }
        p.behavior.scale_down.stabilization_seconds = stabilization;
        p.behavior.cooldown_seconds = cooldown;
        p
    }
}

prop_compose! {
    fn arb_instance(now: f64)(
        readiness in arb_readiness(),
        age in 0.0f64..900.0,
        was_ready in any::<bool>(),
        cpu in proptest::option::of(0.0f64..400.0),
        rps in proptest::option::of(0.0f64..400.0),
        sample_age in 0.0f64..3.0,
    ) -> Instance {
        let mut samples = Vec::new();
        for (signal, v) in [(Signal::Cpu, cpu), (Signal::Rps, rps)] {
            if let Some(value) = v {
                samples.push(Sample { signal, at: at(now - sample_age), value });
            }
        }
        Instance {
            id: format!("t{age}"),
            readiness,
            started_at: at(now - age),
            ready_since: was_ready.then(|| at(now - age / 2.0)),
            samples,
        }
    }
}

const NOW: f64 = 1000.0;

prop_compose! {
    fn arb_case()(
        policy in arb_policy(),
        current in 0u32..20,
        instances in proptest::collection::vec(arb_instance(NOW), 0..8),
        history in proptest::collection::vec((0.0f64..300.0, 0u32..30), 0..60),
        changes in proptest::collection::vec((0.0f64..100.0, 0u32..20, 0u32..20), 0..4),
        watching in proptest::option::of(0.0f64..400.0),
        deployment in proptest::option::of(0u32..20),
        manual in proptest::option::of(0.0f64..600.0),
    ) -> (Input, ControllerState) {
        let mut recommendations: Vec<Recommendation> = history
            .into_iter()
            .map(|(age, instances)| Recommendation { at: at(NOW - age), instances })
            .collect();
        recommendations.sort_by_key(|r| r.at);
        let mut changes: Vec<Change> = changes
            .into_iter()
            .map(|(age, from, to)| Change { at: at(NOW - age), from, to })
            .collect();
        changes.sort_by_key(|c| c.at);
        let state = ControllerState {
            recommendations,
            changes,
            watching_since: watching.map(|w| at(NOW - w)),
        };
        let input = Input {
            policy,
            current,
            instances,
            queries: Vec::new(),
            deployment: deployment.map(|target_instances| Deployment { target_instances }),
            manual_scale_at: manual.map(|m| at(NOW - m)),
        };
        (input, state)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn min_and_max_always_hold_and_deployments_are_never_fought((input, state) in arb_case()) {
        let (d, _) = decide(&input, &state, at(NOW));
        if input.deployment.is_some() {
            prop_assert_eq!(d.action, Action::Hold);
            prop_assert_eq!(d.target, input.current);
        } else {
            prop_assert!(d.target >= input.policy.min && d.target <= input.policy.max, "{}", d);
        }
        prop_assert_eq!(d.action == Action::Hold, d.target == d.current);
    }

    #[test]
    fn the_decision_is_deterministic_and_survives_json((input, state) in arb_case()) {
        let (d1, s1) = decide(&input, &state, at(NOW));
        let (d2, s2) = decide(&input, &state, at(NOW));
        prop_assert_eq!(&d1, &d2);
        prop_assert_eq!(&s1, &s2);
        let d3: crate::Decision = serde_json::from_str(&serde_json::to_string(&d1).unwrap()).unwrap();
        prop_assert_eq!(&d3, &d1);
        let s3: ControllerState = serde_json::from_str(&serde_json::to_string(&s1).unwrap()).unwrap();
        prop_assert_eq!(&s3, &s1);
        let i3: Input = serde_json::from_str(&serde_json::to_string(&input).unwrap()).unwrap();
        prop_assert_eq!(decide(&i3, &state, at(NOW)), (d1, s1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Values that stay within ±tolerance of the target never change the count.
    #[test]
    fn stationary_noise_within_the_tolerance_changes_nothing(
        n in 1u32..10,
        target in 5.0f64..100.0,
        hpa in any::<bool>(),
        noise in proptest::collection::vec(-0.99f64..0.99, 10 * 240),
    ) {
        let mut policy = Policy::new(1, 20, vec![Metric::Cpu { target }]);
        policy.behavior = Behavior::preset(hpa.then_some(Preset::Hpa));
        let tol = policy.behavior.tolerance;
        let mut input = Input::new(policy, n);
        let mut state = ControllerState::default();
        for s in 0..240usize {
            let t = s as f64;
            input.instances = (0..n as usize)
                .map(|k| ready(&format!("i{k}"), Signal::Cpu, t, target * (1.0 + noise[s * 10 + k] * tol)))
                .collect();
            let (d, next) = decide(&input, &state, at(t));
            prop_assert_eq!(d.action, Action::Hold, "{}", d);
            state = next;
        }
    }

    /// Under any load trace: a scale-down never follows a scale-up within the stabilisation
    /// window; a scale-up follows a scale-down within it only when the load exceeds every load
    /// of the window that justified the scale-down (every load the controller could see:
    /// not while a scale-up's new instances were unready or warming up); with `cooldownSeconds` equal to the window
    /// there are no reversals at all. Default policy and `hpa` preset.
    #[test]
    fn no_direction_reversals_within_the_window(
        segments in proptest::collection::vec((5u32..60, 0.2f64..8.0), 3..12),
        noise_seed in any::<u64>(),
        cooldown in any::<bool>(),
        hpa in any::<bool>(),
    ) {
        let capacity = 30.0;
        let mut policy = Policy::new(1, 20, vec![Metric::Rps { target: capacity }]);
        policy.behavior = Behavior::preset(hpa.then_some(Preset::Hpa));
        let window = policy.behavior.scale_down.stabilization_seconds as u32;
        if cooldown {
            policy.behavior.cooldown_seconds = f64::from(window);
        }
        // A piecewise-constant trace with ±5 % noise from a small LCG.
        let mut loads = Vec::new();
        let mut x = noise_seed | 1;
        for (len, level) in &segments {
            for _ in 0..*len {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                loads.push(level * capacity * (0.95 + 0.1 * u));
            }
        }
        let warmup = policy.behavior.warmup_seconds.ceil() as u32;
        let mut sim = Sim::new(policy, 2, capacity);
        sim.run(0, loads.len() as u32 - 1, |t| loads[t as usize]);
        for pair in sim.changes.windows(2) {
            let ((t1, f1, to1, _), (t2, f2, to2, _)) = (pair[0], pair[1]);
            let (up1, up2) = (to1 > f1, to2 > f2);
            if up1 == up2 || t2 - t1 >= window {
                continue;
            }
            prop_assert!(!up1, "scale-down {t2} within {window} s of scale-up {t1}: {:?}", sim.changes);
            prop_assert!(!cooldown, "reversal despite cooldown: {:?}", sim.changes);
            if hpa {
                // 15 s bucket means do not compare with per-second loads.
                continue;
            }
            // The loads the controller could see: not those while a scale-up's new
            // instances were starting, in their grace period or warming up (they are not
            // trusted then, as HPA does not trust unready pods).
            let settle = sim.starting_s + sim.grace_s + warmup + 2;
            let unseen = |s: u32| {
                sim.changes
                    .iter()
                    .any(|&(tu, f, to, _)| to > f && tu <= s && s < tu + settle)
            };
            let peak = (t1.saturating_sub(window)..=t1)
                .filter(|s| !unseen(*s))
                .map(|s| loads[s as usize])
                .fold(0.0, f64::max);
            prop_assert!(loads[t2 as usize] > peak, "up at {t2} without a new peak: {:?}", sim.changes);
        }
    }

    /// At 1× capacity, a 3× step is one decision to exactly 3× the instances, 1 s after it.
    #[test]
    fn a_3x_step_is_solved_in_one_decision(n in 1u32..=10, capacity in 5.0f64..100.0) {
        let mut sim = Sim::new(Policy::new(1, 40, vec![Metric::Rps { target: capacity }]), n, capacity);
        let c = f64::from(n) * capacity;
        sim.run(0, 100, |t| if t < 60 { c } else { 3.0 * c });
        prop_assert_eq!(sim.changes, vec![(61, n, 3 * n, true)]);
    }

    /// New instances burning CPU while starting or in their grace period never add a second
    /// scale-up.
    #[test]
    fn unready_new_instances_never_cause_a_second_scale_up(
        n in 1u32..6,
        k in 2u32..=3,
        target in 20.0f64..80.0,
        burn in 0.0f64..=100.0,
        starting_s in 0u32..5,
        grace_s in 0u32..10,
    ) {
        let capacity = 10.0;
        let mut sim = Sim::new(Policy::new(1, 40, vec![Metric::Cpu { target }]), n, capacity);
        sim.unready_value = burn;
        sim.starting_s = starting_s;
        sim.grace_s = grace_s;
        let c = f64::from(n) * capacity;
        sim.run(0, 90, |t| if t < 30 { c } else { f64::from(k) * c });
        prop_assert_eq!(sim.changes, vec![(31, n, k * n, true)]);
    }
}
