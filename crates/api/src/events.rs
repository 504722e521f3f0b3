//! Marathon's event JSON, rendered from the engine's typed [`Event`]s for `/v2/events`.
//!
//! One engine event can be several Marathon events (a task's status is both
//! `status_update_event` and the 1.5+ `instance_changed_event`). Every payload ends with
//! `eventType` and `timestamp`, in the order Marathon's clients have always seen.

use engine::state::Deployment;
use engine::{Event, Host, Published};
use model::{AppDefinition, Timestamp};
use serde_json::{Value, json};

/// The Marathon event types an engine event is rendered as.
pub(crate) fn event_types(ev: &Event) -> &'static [&'static str] {
    match ev {
        Event::TaskStatus(_) => &["status_update_event", "instance_changed_event"],
        Event::HealthChanged { .. } => &[
            "health_status_changed_event",
            "instance_health_changed_event",
        ],
        Event::FailedHealthCheck { .. } => &["failed_health_check_event"],
        Event::UnhealthyKill { .. } => {
            &["unhealthy_task_kill_event", "unhealthy_instance_kill_event"]
        }
        Event::AppTerminated { .. } => &["app_terminated_event"],
        Event::AppSubmitted { .. } => &["api_post_event"],
        Event::GroupChanged { .. } => &["group_change_success"],
        Event::DeploymentInfo(_) => &["deployment_info"],
        Event::DeploymentStepSuccess(_) => &["deployment_step_success"],
        Event::DeploymentSuccess(_) => &["deployment_success"],
        Event::DeploymentFailed { .. } => &["deployment_failed"],
        Event::StreamAttached { .. } => &["event_stream_attached"],
        Event::StreamDetached { .. } => &["event_stream_detached"],
        Event::External(_) => &[],
    }
}

/// The Marathon events of `p` whose type `wanted` accepts, as `(eventType, JSON)`;
/// `light` renders deployment plans without their `original` and `target` groups
/// (`plan-format=light`).
pub(crate) fn render(
    p: &Published,
    host: Host<'_>,
    light: bool,
    wanted: impl Fn(&str) -> bool,
) -> Vec<(&'static str, String)> {
    if let Event::External(e) = &p.event {
        let ty = e.event_type();
        if !wanted(ty) {
            return Vec::new();
        }
        let payload = serde_json::from_str(&e.to_json()).unwrap_or(Value::Null);
        return vec![(ty, stamp(payload, ty, p.at))];
    }
    event_types(&p.event)
        .iter()
        .copied()
        .filter(|ty| wanted(ty))
        .map(|ty| (ty, stamp(payload(&p.event, ty, host, light), ty, p.at)))
        .collect()
}

/// The payload of Marathon event `ty` of `ev`, without `eventType` and `timestamp`.
fn payload(ev: &Event, ty: &str, host: Host<'_>, light: bool) -> Value {
    match ev {
        Event::TaskStatus(s) if ty == "status_update_event" => json!({
            "slaveId": host.slave_id, "taskId": s.task_id, "taskStatus": s.state.as_str(),
            "message": s.message, "appId": s.app_id, "host": s.host,
            "ipAddresses": [{"ipAddress": s.host, "protocol": "IPv4"}],
            "ports": s.ports, "version": s.version,
        }),
        Event::TaskStatus(s) => json!({
            "instanceId": s.task_id, "condition": s.state.condition(), "runSpecId": s.app_id,
            "agentId": host.slave_id, "host": s.host, "runSpecVersion": s.version,
        }),
        Event::HealthChanged {
            app_id,
            task_id,
            version,
            alive,
        } if ty == "health_status_changed_event" => json!({
            "appId": app_id, "taskId": task_id, "instanceId": task_id, "version": version,
            "alive": alive,
        }),
        Event::HealthChanged {
            app_id,
            task_id,
            version,
            alive,
        } => json!({
            "instanceId": task_id, "runSpecId": app_id, "runSpecVersion": version,
            "healthy": alive,
        }),
        Event::FailedHealthCheck {
            app_id,
            task_id,
            check,
        } => json!({
            "appId": app_id, "taskId": task_id, "instanceId": task_id, "healthCheck": **check,
        }),
        Event::UnhealthyKill {
            app_id,
            task_id,
            version,
            reason,
            host: task_host,
        } => json!({
            "appId": app_id, "taskId": task_id, "instanceId": task_id, "version": version,
            "reason": reason, "host": task_host, "slaveId": host.slave_id,
        }),
        Event::AppTerminated { app_id } => json!({ "appId": app_id }),
        Event::AppSubmitted {
            client_ip,
            uri,
            app,
        } => json!({"clientIp": client_ip, "uri": uri, "appDefinition": **app}),
        Event::GroupChanged { version } => json!({"groupId": "/", "version": version}),
        Event::DeploymentInfo(d) | Event::DeploymentStepSuccess(d) => json!({
            "currentStep": {"actions": d.current_actions()},
            "plan": plan_json(d, !light),
        }),
        Event::DeploymentSuccess(d) => json!({"id": d.id, "plan": plan_json(d, !light)}),
        Event::DeploymentFailed { plan, reason } => json!({
            "id": plan.id, "reason": reason, "plan": plan_json(plan, !light),
        }),
        Event::StreamAttached { remote } | Event::StreamDetached { remote } => {
            json!({ "remoteAddress": remote })
        }
        Event::External(_) => Value::Null,
    }
}

/// `payload` with `eventType` and `timestamp` appended, as one line of JSON.
fn stamp(mut payload: Value, ty: &str, at: Timestamp) -> String {
    if let Value::Object(m) = &mut payload {
        m.insert("eventType".into(), json!(ty));
        m.insert("timestamp".into(), json!(at.to_string()));
    }
    payload.to_string()
}

/// A minimal group document holding `apps`, as heavy plans carry it.
fn group_json(apps: &[AppDefinition], version: Timestamp) -> Value {
    json!({"id": "/", "apps": apps, "groups": [], "pods": [], "dependencies": [], "version": version})
}

/// Marathon's plan JSON; heavy plans include `original` and `target` groups.
fn plan_json(d: &Deployment, heavy: bool) -> Value {
    let mut v = json!({
        "id": d.id,
        "steps": crate::views::steps_json(d),
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

#[cfg(test)]
mod tests {
    use super::*;
    use engine::TaskStatus;
    use engine::state::TaskState;
    use model::PathId;
    use std::sync::Arc;

    const HOST: Host<'static> = Host {
        host: "127.0.0.1",
        slave_id: "agent-S0",
    };

    fn published(event: Event) -> Published {
        Published {
            at: Timestamp(1_500_000_000_000),
            event,
        }
    }

    #[test]
    fn a_task_status_is_two_marathon_events_with_their_fields_in_order() {
        let p = published(Event::TaskStatus(Arc::new(TaskStatus {
            task_id: "web.1".into(),
            app_id: PathId::parse("/web"),
            version: Timestamp(1_000),
            state: TaskState::TaskRunning,
            message: String::new(),
            host: "127.0.0.1".into(),
            ports: vec![31000],
        })));
        let frames = render(&p, HOST, false, |_| true);
        let types: Vec<&str> = frames.iter().map(|(t, _)| *t).collect();
        assert_eq!(types, ["status_update_event", "instance_changed_event"]);
        assert_eq!(
            frames[0].1,
            r#"{"slaveId":"agent-S0","taskId":"web.1","taskStatus":"TASK_RUNNING","message":"","appId":"/web","host":"127.0.0.1","ipAddresses":[{"ipAddress":"127.0.0.1","protocol":"IPv4"}],"ports":[31000],"version":"1970-01-01T00:00:01.000Z","eventType":"status_update_event","timestamp":"2017-07-14T02:40:00.000Z"}"#
        );
        assert_eq!(
            frames[1].1,
            r#"{"instanceId":"web.1","condition":"Running","runSpecId":"/web","agentId":"agent-S0","host":"127.0.0.1","runSpecVersion":"1970-01-01T00:00:01.000Z","eventType":"instance_changed_event","timestamp":"2017-07-14T02:40:00.000Z"}"#
        );
        let only = render(&p, HOST, false, |t| t == "instance_changed_event");
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn light_plans_leave_out_the_groups() {
        let def =
            model::parse_definition(br#"{"id": "/web", "cmd": "sleep 1"}"#, None, Timestamp(5))
                .unwrap();
        let d = Deployment {
            id: "d1".into(),
            version: Timestamp(5),
            created_at: 5,
            steps: vec![vec![engine::state::Action {
                action: engine::state::ActionKind::ScaleApplication,
                app: def.id.clone(),
            }]],
            current_step: 0,
            original: vec![],
            target: vec![def],
            outcome: None,
            reason: None,
            finished_at: None,
        };
        let p = published(Event::DeploymentInfo(Arc::new(d)));
        let heavy: Value = serde_json::from_str(&render(&p, HOST, false, |_| true)[0].1).unwrap();
        let light: Value = serde_json::from_str(&render(&p, HOST, true, |_| true)[0].1).unwrap();
        assert_eq!(heavy["plan"]["target"]["apps"][0]["id"], "/web");
        assert!(light["plan"].get("target").is_none());
        assert_eq!(
            light["currentStep"],
            json!({"actions": [{"action": "ScaleApplication", "app": "/web"}]})
        );
        assert_eq!(light["eventType"], "deployment_info");
    }
}
