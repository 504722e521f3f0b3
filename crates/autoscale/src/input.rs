//! What a decision reads: the app's snapshot ([`Input`]) and the controller's memory
//! ([`ControllerState`]), both plain data that serialize for storage and replay.

use crate::policy::{Policy, Signal};
use model::Timestamp;
use serde::{Deserialize, Serialize};

/// One app at one moment, as the controller loop gathers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    /// The app's policy.
    pub policy: Policy,
    /// The app's desired instance count now (what the store says, not what runs).
    pub current: u32,
    /// The app's tasks with their recent samples; leave out tasks being killed or drained.
    pub instances: Vec<Instance>,
    /// Values of the policy's PromQL metrics, matched by query text.
    #[serde(default)]
    pub queries: Vec<QuerySample>,
    /// A deployment in progress on the app, if any.
    #[serde(default)]
    pub deployment: Option<Deployment>,
    /// When a person last scaled the app (not the autoscaler), if known.
    #[serde(default)]
    pub manual_scale_at: Option<Timestamp>,
}

/// A task of the app.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    /// Task id (only echoed in reasons).
    pub id: String,
    /// Health state now.
    pub readiness: Readiness,
    /// When the task started.
    pub started_at: Timestamp,
    /// When the task last became ready (healthy), `None` if it never was.
    #[serde(default)]
    pub ready_since: Option<Timestamp>,
    /// Recent samples, any order; older than the resolution bucket ones are ignored.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

/// A task's readiness, from the engine's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Readiness {
    /// Launched but not running yet (HPA's Pending).
    Starting,
    /// Running, health checks inside `gracePeriodSeconds`.
    GracePeriod,
    /// Running and failing its health checks.
    Unhealthy,
    /// Running and healthy (or without health checks).
    Ready,
}

/// One measurement of one instance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Which signal.
    pub signal: Signal,
    /// When it was measured (end of its interval).
    pub at: Timestamp,
    /// The value in the signal's unit.
    pub value: f64,
}

/// One evaluation of a policy's PromQL query.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuerySample {
    /// The query text, as in the policy.
    pub query: String,
    /// Evaluation time.
    pub at: Timestamp,
    /// The value.
    pub value: f64,
}

/// A deployment running on the app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The instance count the deployment will leave.
    pub target_instances: u32,
}

/// What the controller remembers between decisions for one app. Store it with the app (it is
/// small) and pass it back; a fresh `default()` is always safe: scale-down then waits a whole
/// stabilisation window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControllerState {
    /// Combined recommendations of past evaluations, oldest first, clamped to `[min, max]`.
    pub recommendations: Vec<Recommendation>,
    /// The autoscaler's own changes, oldest first (for step limits and cooldown).
    pub changes: Vec<Change>,
    /// Since when recommendations were recorded without a gap (no deployment, no data outage).
    pub watching_since: Option<Timestamp>,
}

/// A recorded recommendation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// Evaluation time.
    pub at: Timestamp,
    /// Recommended instances.
    pub instances: u32,
}

/// A change the autoscaler decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Decision time.
    pub at: Timestamp,
    /// Count before.
    pub from: u32,
    /// Count after.
    pub to: u32,
}

impl Input {
    /// An input with no instances, deployment or manual scale.
    pub fn new(policy: Policy, current: u32) -> Self {
        Input {
            policy,
            current,
            instances: Vec::new(),
            queries: Vec::new(),
            deployment: None,
            manual_scale_at: None,
        }
    }
}
