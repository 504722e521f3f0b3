//! Table tests: concrete Marathon-style timelines through the state machine.

use health::{CheckParams, HealthState, Observation, ProbeOutcome, TaskHealth, task_health};

const START: i64 = 1_700_000_000_000;

/// Shorthand outcomes used in the tables.
#[derive(Clone, Copy)]
enum R {
    Ok,
    Fail,
    Ign,
}

/// Expected observation for one step, compactly.
#[derive(Debug, PartialEq)]
struct Exp {
    alive: Option<bool>,
    failures: u32,
    counted: bool,
    grace: bool,
    changed: Option<bool>,
    kill: bool,
}

fn exp(
    alive: Option<bool>,
    failures: u32,
    counted: bool,
    grace: bool,
    changed: Option<bool>,
    kill: bool,
) -> Exp {
    Exp {
        alive,
        failures,
        counted,
        grace,
        changed,
        kill,
    }
}

/// Feeds `(seconds after start, result, expectation)` rows and checks each.
fn run(params: &CheckParams, rows: &[(i64, R, Exp)]) -> HealthState {
    let mut state = HealthState::new();
    for (i, (secs, r, want)) in rows.iter().enumerate() {
        let outcome = match r {
            R::Ok => ProbeOutcome::Healthy,
            R::Fail => ProbeOutcome::unhealthy("HTTP 500"),
            R::Ign => ProbeOutcome::Ignored,
        };
        let obs: Observation = state.observe(&outcome, START + secs * 1000, START, params);
        let got = Exp {
            alive: state.alive,
            failures: state.consecutive_failures,
            counted: obs.counted_failure,
            grace: obs.in_grace_period,
            changed: obs.alive_changed,
            kill: obs.kill.is_some(),
        };
        assert_eq!(&got, want, "row {i} at {secs}s");
        if let Some(reason) = obs.kill {
            assert_eq!(
                reason,
                format!(
                    "health check failed {} consecutive time{}: HTTP 500",
                    state.consecutive_failures,
                    if state.consecutive_failures == 1 {
                        ""
                    } else {
                        "s"
                    }
                )
            );
        }
    }
    state
}

#[test]
fn grace_until_first_success_then_kill_once_per_streak() {
    let state = run(
        &CheckParams::default(),
        &[
            (10, R::Fail, exp(None, 0, false, true, None, false)),
            (70, R::Fail, exp(None, 0, false, true, None, false)),
            (
                130,
                R::Ok,
                exp(Some(true), 0, false, false, Some(true), false),
            ),
            // Still inside 300 s, but the first success ended the protection.
            (
                190,
                R::Fail,
                exp(Some(false), 1, true, false, Some(false), false),
            ),
            (250, R::Ign, exp(Some(false), 1, false, false, None, false)),
            (260, R::Fail, exp(Some(false), 2, true, false, None, false)),
            (320, R::Fail, exp(Some(false), 3, true, false, None, true)),
            (380, R::Fail, exp(Some(false), 4, true, false, None, false)),
            (
                440,
                R::Ok,
                exp(Some(true), 0, false, false, Some(true), false),
            ),
            (
                500,
                R::Fail,
                exp(Some(false), 1, true, false, Some(false), false),
            ),
            (560, R::Fail, exp(Some(false), 2, true, false, None, false)),
            (620, R::Fail, exp(Some(false), 3, true, false, None, true)),
        ],
    );
    assert_eq!(state.first_success, Some(START + 130_000));
    assert_eq!(state.last_success, Some(START + 440_000));
    assert_eq!(state.last_failure, Some(START + 620_000));
    assert_eq!(state.last_failure_cause.as_deref(), Some("HTTP 500"));
}

#[test]
fn never_healthy_task_counts_failures_once_grace_expires() {
    let params = CheckParams {
        grace_period_seconds: 60,
        ..CheckParams::default()
    };
    run(
        &params,
        &[
            (0, R::Fail, exp(None, 0, false, true, None, false)),
            (59, R::Fail, exp(None, 0, false, true, None, false)),
            // Grace ends at exactly start + 60 s (exclusive).
            (
                60,
                R::Fail,
                exp(Some(false), 1, true, false, Some(false), false),
            ),
            (120, R::Fail, exp(Some(false), 2, true, false, None, false)),
            (180, R::Fail, exp(Some(false), 3, true, false, None, true)),
        ],
    );
}

#[test]
fn marathon_max_zero_never_kills() {
    let params = CheckParams {
        grace_period_seconds: 0,
        max_consecutive_failures: 0,
        ..CheckParams::default()
    };
    let rows: Vec<_> = (1..=10)
        .map(|i| {
            (
                i * 60,
                R::Fail,
                exp(
                    Some(false),
                    i as u32,
                    true,
                    false,
                    (i == 1).then_some(false),
                    false,
                ),
            )
        })
        .collect();
    run(&params, &rows);
}

#[test]
fn mesos_max_zero_kills_on_first_counted_failure() {
    let params = CheckParams {
        grace_period_seconds: 30,
        max_consecutive_failures: 0,
        mesos_semantics: true,
        ..CheckParams::default()
    };
    run(
        &params,
        &[
            (15, R::Fail, exp(None, 0, false, true, None, false)),
            (
                45,
                R::Fail,
                exp(Some(false), 1, true, false, Some(false), true),
            ),
            (55, R::Fail, exp(Some(false), 2, true, false, None, false)),
            (
                65,
                R::Ok,
                exp(Some(true), 0, false, false, Some(true), false),
            ),
            (
                75,
                R::Fail,
                exp(Some(false), 1, true, false, Some(false), true),
            ),
        ],
    );
}

#[test]
fn ignored_results_leave_unknown_state_untouched() {
    let params = CheckParams {
        grace_period_seconds: 0,
        ignore_http_1xx: true,
        ..CheckParams::default()
    };
    let state = run(
        &params,
        &[
            (1, R::Ign, exp(None, 0, false, false, None, false)),
            (2, R::Ign, exp(None, 0, false, false, None, false)),
            (
                3,
                R::Ok,
                exp(Some(true), 0, false, false, Some(true), false),
            ),
            (4, R::Ok, exp(Some(true), 0, false, false, None, false)),
        ],
    );
    assert_eq!(state.first_success, Some(START + 3_000));
    assert_eq!(state.last_success, Some(START + 4_000));
    assert_eq!(state.last_failure, None);
}

#[test]
fn aggregate_over_two_checks() {
    let params = CheckParams {
        grace_period_seconds: 0,
        ..CheckParams::default()
    };
    let mut http = HealthState::new();
    let mut tcp = HealthState::new();
    assert_eq!(task_health([&http, &tcp]), TaskHealth::Unknown);
    http.observe(&ProbeOutcome::Healthy, START, START, &params);
    assert_eq!(task_health([&http, &tcp]), TaskHealth::Unknown);
    tcp.observe(&ProbeOutcome::Healthy, START, START, &params);
    assert_eq!(task_health([&http, &tcp]), TaskHealth::Healthy);
    tcp.observe(
        &ProbeOutcome::unhealthy("connection refused"),
        START + 1,
        START,
        &params,
    );
    assert_eq!(task_health([&http, &tcp]), TaskHealth::Unhealthy);
}
