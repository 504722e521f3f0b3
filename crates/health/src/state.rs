//! Pure per-(task, health check) state machine: no I/O, no clocks.
//!
//! Times are `i64` milliseconds since the Unix epoch and are always passed in
//! by the caller, so every function here is deterministic and cheap to test.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Parameters of one health check, mirroring Marathon's JSON fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckParams {
    /// Failures are ignored for this long after task start, until the first
    /// success (Marathon `gracePeriodSeconds`, default 300).
    pub grace_period_seconds: u32,
    /// Time between the starts of two probes (`intervalSeconds`, default 60).
    pub interval_seconds: u32,
    /// Upper bound for a single probe (`timeoutSeconds`, default 20).
    pub timeout_seconds: u32,
    /// Consecutive counted failures that trigger a kill
    /// (`maxConsecutiveFailures`, default 3; 0 = never kill unless
    /// `mesos_semantics`, where 0 = kill on the first counted failure).
    pub max_consecutive_failures: u32,
    /// Discard HTTP 1xx answers instead of counting them as failures
    /// (`ignoreHttp1xx`, default false).
    pub ignore_http_1xx: bool,
    /// Initial delay before the first probe; only used with
    /// `mesos_semantics` (`delaySeconds`, default 15).
    pub delay_seconds: u32,
    /// Use MESOS_HTTP / MESOS_TCP / MESOS_COMMAND semantics.
    pub mesos_semantics: bool,
}

impl Default for CheckParams {
    fn default() -> Self {
        Self {
            grace_period_seconds: 300,
            interval_seconds: 60,
            timeout_seconds: 20,
            max_consecutive_failures: 3,
            ignore_http_1xx: false,
            delay_seconds: 15,
            mesos_semantics: false,
        }
    }
}

impl CheckParams {
    /// Probe timeout as a [`Duration`].
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_seconds))
    }

    /// Probe interval as a [`Duration`] (at least one second).
    pub fn interval(&self) -> Duration {
        Duration::from_secs(u64::from(self.interval_seconds.max(1)))
    }

    /// Number of consecutive counted failures that triggers a kill, or
    /// `None` if this check never kills.
    pub fn kill_threshold(&self) -> Option<u32> {
        match (self.max_consecutive_failures, self.mesos_semantics) {
            (0, false) => None,
            (0, true) => Some(1),
            (n, _) => Some(n),
        }
    }

    /// True while a failure observed at `now_ms` falls inside the grace
    /// period of a task started at `task_started_ms` (ignoring whether the
    /// task already had a success; see [`HealthState::observe`]).
    pub fn within_grace(&self, now_ms: i64, task_started_ms: i64) -> bool {
        now_ms < task_started_ms.saturating_add(secs_to_ms(self.grace_period_seconds))
    }
}

/// Result of one probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeOutcome {
    /// The check passed.
    Healthy,
    /// The check failed; `cause` is reported as `lastFailureCause`.
    Unhealthy {
        /// Human-readable failure cause, e.g. "HTTP 503".
        cause: String,
    },
    /// The result is discarded (HTTP 1xx with `ignoreHttp1xx`).
    Ignored,
}

impl ProbeOutcome {
    /// Convenience constructor for [`ProbeOutcome::Unhealthy`].
    pub fn unhealthy(cause: impl Into<String>) -> Self {
        Self::Unhealthy {
            cause: cause.into(),
        }
    }
}

/// Health of one (task, health check) pair, as Marathon reports it in
/// `healthCheckResults`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthState {
    /// `None` until the first counted result, then whether the last counted
    /// result was a success.
    pub alive: Option<bool>,
    /// Counted failures since the last success.
    pub consecutive_failures: u32,
    /// Time of the first success ever.
    pub first_success: Option<i64>,
    /// Time of the most recent success.
    pub last_success: Option<i64>,
    /// Time of the most recent counted failure.
    pub last_failure: Option<i64>,
    /// Cause of the most recent counted failure.
    pub last_failure_cause: Option<String>,
    /// A kill was already requested during the current failure streak.
    pub kill_issued: bool,
}

/// What a single [`HealthState::observe`] call means for the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// `Some(new_alive)` when `alive` changed (emit `health_status_changed_event`).
    pub alive_changed: Option<bool>,
    /// The failure was counted (emit `failed_health_check_event`).
    pub counted_failure: bool,
    /// The failure was ignored because of the grace period.
    pub in_grace_period: bool,
    /// Kill and replace the task, recording this reason.
    pub kill: Option<String>,
}

impl HealthState {
    /// Fresh state: no results yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether failures at `now_ms` are ignored: inside the grace period and
    /// never successful so far.
    pub fn in_grace_period(&self, now_ms: i64, task_started_ms: i64, params: &CheckParams) -> bool {
        self.first_success.is_none() && params.within_grace(now_ms, task_started_ms)
    }

    /// Feeds one probe outcome (completed at `now_ms`) into the state and
    /// returns what the engine must do about it.
    pub fn observe(
        &mut self,
        outcome: &ProbeOutcome,
        now_ms: i64,
        task_started_ms: i64,
        params: &CheckParams,
    ) -> Observation {
        let mut obs = Observation::default();
        let before = self.alive;
        match outcome {
            ProbeOutcome::Ignored => return obs,
            ProbeOutcome::Healthy => {
                self.first_success.get_or_insert(now_ms);
                self.last_success = Some(now_ms);
                self.consecutive_failures = 0;
                self.kill_issued = false;
                self.alive = Some(true);
            }
            ProbeOutcome::Unhealthy { cause } => {
                if self.in_grace_period(now_ms, task_started_ms, params) {
                    obs.in_grace_period = true;
                    return obs;
                }
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                self.last_failure = Some(now_ms);
                self.last_failure_cause = Some(cause.clone());
                self.alive = Some(false);
                obs.counted_failure = true;
                if let Some(threshold) = params.kill_threshold()
                    && self.consecutive_failures >= threshold
                    && !self.kill_issued
                {
                    self.kill_issued = true;
                    obs.kill = Some(kill_reason(self.consecutive_failures, cause));
                }
            }
        }
        if self.alive != before {
            obs.alive_changed = self.alive;
        }
        obs
    }
}

/// When the next probe is due (ms since epoch): right at task start (or
/// `delay_seconds` after it with `mesos_semantics`) for the first probe, then
/// `interval_seconds` (at least 1 s) after the previous probe started.
pub fn next_due(
    task_started_ms: i64,
    last_probe_started_ms: Option<i64>,
    params: &CheckParams,
) -> i64 {
    match last_probe_started_ms {
        Some(last) => last.saturating_add(secs_to_ms(params.interval_seconds.max(1))),
        None if params.mesos_semantics => {
            task_started_ms.saturating_add(secs_to_ms(params.delay_seconds))
        }
        None => task_started_ms,
    }
}

/// Reason recorded when a task is killed after `count` consecutive failures.
fn kill_reason(count: u32, cause: &str) -> String {
    let times = if count == 1 { "time" } else { "times" };
    format!("health check failed {count} consecutive {times}: {cause}")
}

fn secs_to_ms(secs: u32) -> i64 {
    i64::from(secs) * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_threshold_variants() {
        let mut p = CheckParams::default();
        assert_eq!(p.kill_threshold(), Some(3));
        p.max_consecutive_failures = 0;
        assert_eq!(p.kill_threshold(), None);
        p.mesos_semantics = true;
        assert_eq!(p.kill_threshold(), Some(1));
    }

    #[test]
    fn next_due_first_and_following() {
        let mut p = CheckParams::default();
        assert_eq!(next_due(1_000, None, &p), 1_000);
        assert_eq!(next_due(1_000, Some(5_000), &p), 65_000);
        p.mesos_semantics = true;
        assert_eq!(next_due(1_000, None, &p), 16_000);
        p.interval_seconds = 0;
        assert_eq!(next_due(1_000, Some(5_000), &p), 6_000);
        assert_eq!(next_due(i64::MAX - 1, Some(i64::MAX - 1), &p), i64::MAX);
    }

    #[test]
    fn kill_reason_grammar() {
        assert_eq!(
            kill_reason(1, "x"),
            "health check failed 1 consecutive time: x"
        );
        assert_eq!(
            kill_reason(3, "HTTP 500"),
            "health check failed 3 consecutive times: HTTP 500"
        );
    }
}
