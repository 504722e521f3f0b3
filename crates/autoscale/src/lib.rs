//! Autoscaling policies and the scaling decision, as pure code: no clock, no I/O.
//!
//! # Pieces
//!
//! * [`Policy`]: `{min, max, metrics, mode, behavior}` as `PUT /api/v1/autoscalers/{app id}`
//!   takes it. [`Policy::from_json`] reports every problem with its field path
//!   ([`AutoscaleError::Invalid`], which converts into `model::DefinitionError` for the API's
//!   422); [`Policy::from_labels`] reads `SLIPWAY_AUTOSCALE_*` labels into the same type.
//! * [`decide`]: `(&Input, &ControllerState, now) -> (Decision, ControllerState)`. The
//!   [`Decision`] says what to do and why ([`Reason`], per-metric [`MetricReport`]), serializes
//!   to JSON and prints as one line.
//!
//! # A controller loop (written elsewhere)
//!
//! ```text
//! let mut state = store.autoscaler_state(&app_id).unwrap_or_default();
//! loop {
//!     sleep(policy.behavior.sync_period_seconds);
//!     let input = Input {
//!         policy: policy.clone(),
//!         current: app.instances,
//!         instances: tasks.iter().map(|t| Instance {
//!             id: t.id.clone(),
//!             readiness: t.readiness(),          // Starting / GracePeriod / Unhealthy / Ready
//!             started_at: t.started_at,
//!             ready_since: t.ready_since,
//!             samples: tsdb.recent(t, policy.behavior.metric_resolution_seconds),
//!         }).collect(),
//!         queries: promql_values,                // one QuerySample per promql metric
//!         deployment: engine.deployment(&app_id).map(|d| Deployment { target_instances: d.target }),
//!         manual_scale_at: store.last_manual_scale(&app_id),
//!     };
//!     let (decision, next) = decide(&input, &state, Timestamp::now());
//!     store.save_autoscaler_state(&app_id, &next);
//!     state = next;
//!     store.append_decision(&app_id, &decision);       // JSON, with its inputs
//!     bus.publish(Event::AutoscaleDecision { app_id, decision: decision.clone() });
//!     if decision.is_change() {
//!         engine.scale(&app_id, decision.target, Principal::Autoscaler, &decision.summary());
//!     }
//! }
//! ```
//!
//! Call `decide` every `syncPeriodSeconds` (1 s; 15 s with the `hpa` preset), right after the
//! collector's samples of that period are in. Leave out tasks that are being killed.
//! `ControllerState::default()` is always safe (after a restart, scale-down waits one window).
//!
//! # Rules (details in `decide.rs` and `evaluate.rs`)
//!
//! * Per metric, HPA's `ceil(ready × value/target)` with a tolerance (10 %), over each instance's
//!   mean in the last complete `metricResolutionSeconds` bucket.
//! * Unready instances (starting, in their grace period, unhealthy since start, or ready for less
//!   than one bucket plus `warmupSeconds`) count as 0 when the ratio says "up" and are left out
//!   otherwise; missing ones count as 0 up and as 100 % (or the target) down; if that flips the
//!   direction or lands inside the tolerance, the count stays. So the start-up CPU of the
//!   instances a scale-up just added never adds a second scale-up. HPA does this for CPU only;
//!   here it applies to every per-instance metric.
//! * Mode any takes the highest recommendation, so a "down" never outvotes an "up"; a metric
//!   without data blocks scale-down (HPA). Mode all (the seed's AND) scales up only when every
//!   metric asks for more, to the lowest of their counts, and scales down only when every
//!   metric asks for fewer, to the highest of them (so no metric is pushed past its target);
//!   otherwise, or when a metric has no data, it holds.
//! * Up once every recommendation in the breach window (3 s) is above the count, to the lowest
//!   of them, within the step limits (100 % or 4 instances per 10 s). Panic, when load is at
//!   least 2× the capacity (unready instances counted as 0): a 1 s window, to the highest
//!   recommendation in it (Knative: the first, partly measured bucket after a step must not
//!   hold it back), up to 10× the count in one decision, so a 3× step is one decision 1 s
//!   after it shows.
//! * Down once the autoscaler has watched a whole stabilisation window (120 s) without a gap
//!   and the highest recommendation in it is below the count, to that highest, within the step
//!   limits (100 % per 15 s), once the recommendations have settled (the highest of the
//!   window's recent half equals the window's highest; not with the `hpa` preset), so a load
//!   drop that shows over a few buckets is one step down, not a staircase. So a scale-down never follows a scale-up within the window; a
//!   scale-up can follow a scale-down within it only when load exceeds everything the window
//!   saw (set `cooldownSeconds` to the window to forbid even that).
//! * min/max always hold, checked before anything else except a deployment.
//! * Deployments: the autoscaler waits. It records nothing while one runs (surge and new
//!   instances make the samples meaningless, the cause of HPA's inflated rollouts), shows what
//!   it would ask for in `Decision::recommendation`, and afterwards watches a fresh window before
//!   any scale-down; a breach that outlasts the deployment scales up 3 s after it.
//! * A manual scale pauses the autoscaler for `manualPauseSeconds` (5 min), said in the reasons.

#![warn(missing_docs)]

pub mod controller;
mod decide;
mod error;
mod evaluate;
mod input;
mod labels;
mod parse;
mod policy;
mod report;

pub use decide::decide;
pub use error::AutoscaleError;
pub use input::{
    Change, ControllerState, Deployment, Input, Instance, QuerySample, Readiness, Recommendation,
    Sample,
};
pub use labels::LABEL_PREFIX;
pub use parse::{MAX_INSTANCES, PromqlCheck, accept_any_promql};
pub use policy::{
    Behavior, Metric, Mode, Panic, Policy, Preset, ScaleDown, ScaleUp, SelectPolicy, Signal,
    StepKind, StepPolicy,
};
pub use report::{Action, Counted, Decision, InstanceValue, MetricReport, Reason};

#[cfg(test)]
mod tests;
