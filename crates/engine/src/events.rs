//! The event bus: every engine change is published once, in Marathon's event format, and
//! read by `/v2/events` subscribers (and later the audit log, UI and pipeline waits).

use crate::state::Deployment;
use model::{AppDefinition, Timestamp};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Buffered events per subscriber; a slower subscriber skips events (Marathon drops too).
const CAPACITY: usize = 4096;

/// One published event, pre-rendered as single-line JSON.
#[derive(Clone, Debug)]
pub struct Event {
    /// Marathon event type, e.g. `status_update_event`.
    pub event_type: &'static str,
    /// The full JSON payload.
    pub data: Arc<str>,
    /// The payload with a light plan (`plan-format=light`), for deployment events.
    pub light: Option<Arc<str>>,
}

/// Fan-out of events to any number of subscribers.
#[derive(Clone, Debug)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
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
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Publishes an event; `eventType` and `timestamp` are added to the payload.
    pub fn publish(&self, event_type: &'static str, payload: Value) {
        self.publish_with_light(event_type, payload, None);
    }

    fn publish_with_light(&self, event_type: &'static str, payload: Value, light: Option<Value>) {
        let stamp = |mut v: Value| -> Arc<str> {
            if let Value::Object(m) = &mut v {
                m.insert("eventType".into(), json!(event_type));
                m.insert("timestamp".into(), json!(Timestamp::now().to_string()));
            }
            Arc::from(v.to_string())
        };
        let event = Event {
            event_type,
            data: stamp(payload),
            light: light.map(stamp),
        };
        // No subscribers is fine: events are fire-and-forget.
        let _ = self.tx.send(event);
    }

    /// Publishes a deployment event carrying the plan, heavy and light.
    pub fn publish_plan(&self, event_type: &'static str, d: &Deployment, mut extra: Value) {
        let heavy = plan_json(d, true);
        let light = plan_json(d, false);
        let mut light_payload = extra.clone();
        if let Value::Object(m) = &mut extra {
            m.insert("plan".into(), heavy);
        }
        if let Value::Object(m) = &mut light_payload {
            m.insert("plan".into(), light);
        }
        self.publish_with_light(event_type, extra, Some(light_payload));
    }
}

/// A minimal group document holding `apps`, as heavy plans carry it.
fn group_json(apps: &[AppDefinition], version: Timestamp) -> Value {
    json!({"id": "/", "apps": apps, "groups": [], "pods": [], "dependencies": [], "version": version})
}

/// Marathon's plan JSON; heavy plans include `original` and `target` groups.
pub(crate) fn plan_json(d: &Deployment, heavy: bool) -> Value {
    let mut v = json!({
        "id": d.id,
        "steps": steps_json(d),
        "version": d.version,
    });
    if heavy && let Value::Object(m) = &mut v {
        let original_version = d
            .original
            .iter()
            .map(|a| a.version)
            .max()
            .unwrap_or(d.version);
        m.insert("original".into(), group_json(&d.original, original_version));
        m.insert("target".into(), group_json(&d.target, d.version));
    }
    v
}

/// `[{"actions":[{"action":..,"app":..}]}]`.
pub(crate) fn steps_json(d: &Deployment) -> Value {
    Value::Array(d.steps.iter().map(|s| json!({"actions": s})).collect())
}

/// The `currentStep` object of deployment events.
pub(crate) fn current_step_json(d: &Deployment) -> Value {
    json!({"actions": d.current_actions()})
}
