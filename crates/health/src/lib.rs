//! Marathon-compatible task health checks: a pure state machine plus probes.
//!
//! # Layers
//!
//! * [`HealthState`] (in `state.rs`) is a pure state machine per
//!   (task, health check). It never reads a clock: the caller passes times as
//!   `i64` milliseconds since the Unix epoch. [`HealthState::observe`] turns a
//!   [`ProbeOutcome`] into updated state plus an [`Observation`] telling the
//!   engine which events to emit and whether to kill the task. [`next_due`]
//!   computes when the next probe should start.
//! * [`probe_http`], [`probe_tcp`] and [`probe_command`] actually check a
//!   task and return a [`ProbeOutcome`]; they never panic and never leave the
//!   probe running past its timeout.
//!
//! # Marathon semantics
//!
//! * Failures are ignored while `now < task_started + gracePeriodSeconds` and
//!   the check never succeeded; after the first success the grace period no
//!   longer protects the task.
//! * `alive` is unknown until the first counted result, then reflects the
//!   last counted result. A success resets `consecutive_failures`.
//! * With `maxConsecutiveFailures > 0` the task is killed once per failure
//!   streak, when the counter reaches the threshold; 0 never kills, except
//!   with Mesos semantics where 0 kills on the first counted failure.
//! * [`ProbeOutcome::Ignored`] (HTTP 1xx with `ignoreHttp1xx`) changes
//!   nothing.
//!
//! A typical driver loop per (task, check):
//!
//! ```text
//! loop {
//!     sleep_until(next_due(started, last_probe_start, &params));
//!     last_probe_start = Some(now());
//!     let outcome = probe_http(host, port, path, params.timeout(), params.ignore_http_1xx).await;
//!     let obs = state.observe(&outcome, now(), started, &params);
//!     if obs.counted_failure { emit failed_health_check_event }
//!     if let Some(alive) = obs.alive_changed { emit health_status_changed_event(alive) }
//!     if let Some(reason) = obs.kill { kill and replace the task, record reason }
//! }
//! ```

#![warn(missing_docs)]

mod http;
mod probe;
mod state;

pub use http::probe_http;
pub use probe::{probe_command, probe_tcp};
pub use state::{CheckParams, HealthState, Observation, ProbeOutcome, next_due};

use serde::{Deserialize, Serialize};

/// Aggregate health of a task over all its health checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskHealth {
    /// Every check has a result and all are alive.
    Healthy,
    /// At least one check's last counted result was a failure.
    Unhealthy,
    /// No failure, but some check has no result yet (or there are no checks).
    Unknown,
}

/// Aggregates the per-check states of one task the way Marathon counts
/// `tasksHealthy` / `tasksUnhealthy`: unhealthy if any check is not alive,
/// healthy if there are results for all checks and all are alive, unknown
/// otherwise. An empty iterator is [`TaskHealth::Unknown`]; callers decide
/// how to treat tasks without health checks.
pub fn task_health<'a, I>(states: I) -> TaskHealth
where
    I: IntoIterator<Item = &'a HealthState>,
{
    let mut any = false;
    let mut all_alive = true;
    for state in states {
        any = true;
        match state.alive {
            Some(false) => return TaskHealth::Unhealthy,
            Some(true) => {}
            None => all_alive = false,
        }
    }
    if any && all_alive {
        TaskHealth::Healthy
    } else {
        TaskHealth::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_alive(alive: Option<bool>) -> HealthState {
        HealthState {
            alive,
            ..HealthState::new()
        }
    }

    #[test]
    fn aggregate() {
        let up = with_alive(Some(true));
        let down = with_alive(Some(false));
        let unknown = with_alive(None);
        assert_eq!(task_health([]), TaskHealth::Unknown);
        assert_eq!(task_health([&up]), TaskHealth::Healthy);
        assert_eq!(task_health([&up, &up]), TaskHealth::Healthy);
        assert_eq!(task_health([&up, &unknown]), TaskHealth::Unknown);
        assert_eq!(task_health([&unknown, &down]), TaskHealth::Unhealthy);
        assert_eq!(task_health([&up, &down]), TaskHealth::Unhealthy);
        assert_eq!(task_health(&vec![up.clone(), up]), TaskHealth::Healthy);
    }
}
