//! Autoscaling policies and the scaling decision, as pure code: no clock, no I/O.
//!
//! # Pieces
//!
//! * [`Policy`]: `{min, max, metrics, mode, behavior}` as `PUT /api/v1/autoscalers/{app id}`
//!   takes it. [`Policy::from_json`] reports every problem with its field path
//!   ([`AutoscaleError::Invalid`], which converts into `model::DefinitionError` for the API's
//!   422); [`Policy::from_labels`] reads `SLIPWAY_AUTOSCALE_*` labels into the same type.
//! * [`decide`]: `(Input, ControllerState, now) -> (Decision, ControllerState)`. The
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
//! # Rules (details in `decide.rs` and `evaluate.rs`)
//!
//! * Per metric, HPA's `ceil(ready × value/target)` with a tolerance and HPA's substitution of
//!   unready instances (0 on a scale-up, left out otherwise) and missing ones (0 up, 100 % or the
//!   target down); a warming instance never adds a second scale-up.
//! * Mode any takes the highest recommendation; mode all moves only when every metric agrees.
//! * Up after the breach window (3 s; panic at 2× capacity: 1 s and up to 10× in one step), to
//!   the lowest recommendation in it; down after the 120 s stabilisation window, to its highest
//!   recommendation; HPA-style step limits; min/max always hold.
//! * A deployment in progress: wait (and watch a fresh window afterwards). A manual scale: pause.

#![warn(missing_docs)]

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
