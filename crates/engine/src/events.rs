//! The event bus: every engine change is published once as a typed [`Event`], stamped with
//! the time it happened. `/v2/events` renders Marathon's JSON from it (in `api`), the proxy
//! sync rebuilds routes on the events that change them, and pipeline deploy steps wait on
//! deployment events.

use crate::state::{Deployment, TaskState};
use model::{AppDefinition, HealthCheck, PathId, Timestamp};
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use tokio::sync::broadcast;

/// Buffered events per subscriber; a slower subscriber skips events (Marathon drops too).
const CAPACITY: usize = 4096;

/// Something that happened, as the engine (and the server around it) announces it.
///
/// Each variant names the Marathon events `api` renders from it; deployment events carry
/// a snapshot of the plan as it was when the event happened.
#[derive(Clone, Debug)]
pub enum Event {
    /// A task changed state (`status_update_event`, `instance_changed_event`).
    TaskStatus(Arc<TaskStatus>),
    /// A task's health flipped (`health_status_changed_event`,
    /// `instance_health_changed_event`).
    HealthChanged {
        /// The task's app.
        app_id: PathId,
        /// The task.
        task_id: String,
        /// The app version the task runs.
        version: Timestamp,
        /// Healthy now.
        alive: bool,
    },
    /// A health check failed and the failure counts (`failed_health_check_event`).
    FailedHealthCheck {
        /// The task's app.
        app_id: PathId,
        /// The task.
        task_id: String,
        /// The check that failed.
        check: Arc<HealthCheck>,
    },
    /// A task is killed for failing its health checks (`unhealthy_task_kill_event`,
    /// `unhealthy_instance_kill_event`).
    UnhealthyKill {
        /// The task's app.
        app_id: PathId,
        /// The task.
        task_id: String,
        /// The app version the task runs.
        version: Timestamp,
        /// Why.
        reason: String,
        /// The task's host.
        host: String,
    },
    /// An app was deleted (`app_terminated_event`).
    AppTerminated {
        /// The app.
        app_id: PathId,
    },
    /// An app definition was posted or put through the API (`api_post_event`).
    AppSubmitted {
        /// The client's address.
        client_ip: String,
        /// The request path.
        uri: String,
        /// The app's definition as stored.
        app: Arc<AppDefinition>,
    },
    /// Desired state changed (`group_change_success`).
    GroupChanged {
        /// The new version.
        version: Timestamp,
    },
    /// A deployment started, or moved on to its next step (`deployment_info`).
    DeploymentInfo(Arc<Deployment>),
    /// A deployment's current step finished (`deployment_step_success`).
    DeploymentStepSuccess(Arc<Deployment>),
    /// A deployment finished (`deployment_success`).
    DeploymentSuccess(Arc<Deployment>),
    /// A deployment was cancelled or superseded (`deployment_failed`).
    DeploymentFailed {
        /// The plan.
        plan: Arc<Deployment>,
        /// Why.
        reason: String,
    },
    /// A client attached to the event stream (`event_stream_attached`).
    StreamAttached {
        /// The client's address.
        remote: String,
    },
    /// A client left the event stream (`event_stream_detached`).
    StreamDetached {
        /// The client's address.
        remote: String,
    },
    /// An event of a part of the server the engine does not know (the autoscaler's
    /// decisions); subscribers that know its type downcast it.
    External(Arc<dyn ExternalEvent>),
}

/// A task's new state (`status_update_event`).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskStatus {
    /// The task.
    pub task_id: String,
    /// Its app.
    pub app_id: PathId,
    /// The app version it was launched from.
    pub version: Timestamp,
    /// Its state now.
    pub state: TaskState,
    /// Why, when it ended.
    pub message: String,
    /// The host it runs on.
    pub host: String,
    /// Its host ports.
    pub ports: Vec<u16>,
}

/// An event published on the engine's bus by another part of the server, whose shape the
/// engine does not know.
pub trait ExternalEvent: Debug + Send + Sync + 'static {
    /// The Marathon-style event type, e.g. `autoscale_decision`.
    fn event_type(&self) -> &'static str;
    /// The app it is about, if any.
    fn app_id(&self) -> Option<&PathId>;
    /// The payload as a JSON object, without `eventType` and `timestamp`.
    fn to_json(&self) -> String;
    /// For downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;
}

impl Event {
    /// The app the event is about, if one.
    pub fn app_id(&self) -> Option<&PathId> {
        match self {
            Event::TaskStatus(s) => Some(&s.app_id),
            Event::HealthChanged { app_id, .. }
            | Event::FailedHealthCheck { app_id, .. }
            | Event::UnhealthyKill { app_id, .. }
            | Event::AppTerminated { app_id } => Some(app_id),
            Event::AppSubmitted { app, .. } => Some(&app.id),
            Event::External(e) => e.app_id(),
            Event::GroupChanged { .. }
            | Event::DeploymentInfo(_)
            | Event::DeploymentStepSuccess(_)
            | Event::DeploymentSuccess(_)
            | Event::DeploymentFailed { .. }
            | Event::StreamAttached { .. }
            | Event::StreamDetached { .. } => None,
        }
    }

    /// The deployment the event is about, if one.
    pub fn deployment(&self) -> Option<&Deployment> {
        match self {
            Event::DeploymentInfo(d)
            | Event::DeploymentStepSuccess(d)
            | Event::DeploymentSuccess(d)
            | Event::DeploymentFailed { plan: d, .. } => Some(d),
            _ => None,
        }
    }
}

/// One event as subscribers receive it: what happened, and when.
#[derive(Clone, Debug)]
pub struct Published {
    /// When it was published.
    pub at: Timestamp,
    /// What happened.
    pub event: Event,
}

/// Fan-out of events to any number of subscribers.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Published>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Subscribes to all future events.
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.tx.subscribe()
    }

    /// Publishes an event, stamped with the current time.
    pub fn publish(&self, event: Event) {
        // No subscribers is fine: events are fire-and-forget.
        let _ = self.tx.send(Published {
            at: Timestamp::now(),
            event,
        });
    }
}
