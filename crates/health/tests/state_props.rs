//! Property tests for the pure health state machine.

use health::{
    CheckParams, HealthState, Observation, ProbeOutcome, TaskHealth, next_due, task_health,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// One probe result in a generated timeline.
#[derive(Clone, Debug)]
enum Step {
    Pass,
    Fail(u8),
    Ignore,
}

impl Step {
    fn outcome(&self) -> ProbeOutcome {
        match self {
            Step::Pass => ProbeOutcome::Healthy,
            Step::Fail(n) => ProbeOutcome::unhealthy(format!("HTTP {}", 500 + u16::from(*n))),
            Step::Ignore => ProbeOutcome::Ignored,
        }
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => Just(Step::Pass),
        5 => (0u8..4).prop_map(Step::Fail),
        1 => Just(Step::Ignore),
    ]
}

fn params() -> impl Strategy<Value = CheckParams> {
    (
        0u32..400,
        0u32..120,
        0u32..6,
        any::<bool>(),
        any::<bool>(),
        0u32..30,
    )
        .prop_map(
            |(grace, interval, max, ignore_1xx, mesos, delay)| CheckParams {
                grace_period_seconds: grace,
                interval_seconds: interval,
                timeout_seconds: 20,
                max_consecutive_failures: max,
                ignore_http_1xx: ignore_1xx,
                delay_seconds: delay,
                mesos_semantics: mesos,
            },
        )
}

/// Runs a monotonic timeline through a fresh state and checks every
/// property against a tiny reference model after each step.
fn check(
    params: &CheckParams,
    started: i64,
    timeline: &[(i64, Step)],
) -> Result<(), TestCaseError> {
    let grace_end = started + i64::from(params.grace_period_seconds) * 1000;
    let threshold = params.kill_threshold();
    let mut state = HealthState::new();
    let mut now = started;
    let mut counted_since_success = 0u32;
    let mut kills_in_streak = 0u32;
    let mut ever_success = false;
    for (dt, step) in timeline {
        now += dt;
        let before = state.clone();
        let obs = state.observe(&step.outcome(), now, started, params);

        prop_assert_eq!(obs.alive_changed.is_some(), before.alive != state.alive);
        if let Some(alive) = obs.alive_changed {
            prop_assert_eq!(Some(alive), state.alive);
        }
        match step {
            Step::Ignore => {
                prop_assert_eq!(&state, &before);
                prop_assert_eq!(&obs, &Observation::default());
            }
            Step::Pass => {
                ever_success = true;
                counted_since_success = 0;
                kills_in_streak = 0;
                prop_assert_eq!(state.alive, Some(true));
                prop_assert_eq!(state.consecutive_failures, 0);
                prop_assert_eq!(state.last_success, Some(now));
                prop_assert_eq!(state.first_success, before.first_success.or(Some(now)));
                prop_assert!(obs.kill.is_none() && !obs.counted_failure && !obs.in_grace_period);
            }
            Step::Fail(_) => {
                let in_grace = !ever_success && now < grace_end;
                prop_assert_eq!(obs.in_grace_period, in_grace);
                prop_assert_eq!(obs.counted_failure, !in_grace);
                if in_grace {
                    prop_assert_eq!(&state, &before);
                    prop_assert_eq!(state.alive, None);
                    prop_assert!(obs.kill.is_none());
                } else {
                    counted_since_success += 1;
                    prop_assert_eq!(state.alive, Some(false));
                    prop_assert_eq!(state.last_failure, Some(now));
                    prop_assert_eq!(
                        Some(step.outcome()),
                        state
                            .last_failure_cause
                            .clone()
                            .map(ProbeOutcome::unhealthy)
                    );
                }
            }
        }
        prop_assert_eq!(state.consecutive_failures, counted_since_success);

        let expected_kill = obs.counted_failure && threshold == Some(counted_since_success);
        prop_assert_eq!(obs.kill.is_some(), expected_kill);
        if let Some(reason) = &obs.kill {
            kills_in_streak += 1;
            let prefix = format!("health check failed {counted_since_success} consecutive");
            prop_assert!(reason.starts_with(&prefix), "unexpected reason {}", reason);
        }
        prop_assert!(kills_in_streak <= 1);
        if params.max_consecutive_failures == 0 && !params.mesos_semantics {
            prop_assert!(obs.kill.is_none());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn timelines_follow_marathon_semantics(
        params in params(),
        started in 0i64..4_000_000_000_000,
        timeline in prop::collection::vec((0i64..120_000, step()), 0..40),
    ) {
        check(&params, started, &timeline)?;
    }

    #[test]
    fn failures_only_never_kill_inside_grace(
        grace in 1u32..400,
        max in 0u32..4,
        mesos in any::<bool>(),
        gaps in prop::collection::vec(0i64..10_000, 0..30),
    ) {
        let params = CheckParams { grace_period_seconds: grace, max_consecutive_failures: max, mesos_semantics: mesos, ..CheckParams::default() };
        let steps: Vec<_> = gaps.into_iter().map(|g| (g, Step::Fail(0))).collect();
        check(&params, 1_000, &steps)?;
    }

    #[test]
    fn arbitrary_times_and_params_keep_invariants(
        steps in prop::collection::vec((any::<i64>(), any::<i64>(), params(), step()), 0..40),
    ) {
        let mut state = HealthState::new();
        let mut counted_since_success = 0u32;
        let mut kills_in_streak = 0u32;
        for (now, started, params, step) in &steps {
            let before = state.clone();
            let obs = state.observe(&step.outcome(), *now, *started, params);
            match step {
                Step::Ignore => prop_assert_eq!(&state, &before),
                Step::Pass => {
                    counted_since_success = 0;
                    kills_in_streak = 0;
                    prop_assert_eq!(state.alive, Some(true));
                    prop_assert_eq!(state.consecutive_failures, 0);
                }
                Step::Fail(_) if obs.counted_failure => counted_since_success += 1,
                Step::Fail(_) => prop_assert_eq!(&state, &before),
            }
            prop_assert!(state.consecutive_failures <= counted_since_success);
            if obs.kill.is_some() {
                kills_in_streak += 1;
                prop_assert!(params.kill_threshold().is_some());
            }
            prop_assert!(kills_in_streak <= 1);
        }
    }

    #[test]
    fn next_due_is_after_start_and_spaced_by_interval(
        params in params(),
        started in -1_000_000i64..4_000_000_000_000,
        last in prop::option::of(0i64..4_000_000_000_000),
    ) {
        let due = next_due(started, last, &params);
        match last {
            None if params.mesos_semantics => prop_assert_eq!(due, started + i64::from(params.delay_seconds) * 1000),
            None => prop_assert_eq!(due, started),
            Some(last) => {
                prop_assert!(due >= last + 1000);
                prop_assert_eq!(due, last + i64::from(params.interval_seconds.max(1)) * 1000);
            }
        }
    }

    #[test]
    fn aggregate_matches_definition(alive in prop::collection::vec(prop::option::of(any::<bool>()), 0..6)) {
        let states: Vec<HealthState> = alive
            .iter()
            .map(|a| HealthState { alive: *a, ..HealthState::new() })
            .collect();
        let expected = if alive.contains(&Some(false)) {
            TaskHealth::Unhealthy
        } else if !alive.is_empty() && alive.iter().all(|a| *a == Some(true)) {
            TaskHealth::Healthy
        } else {
            TaskHealth::Unknown
        };
        prop_assert_eq!(task_health(&states), expected);
    }
}
