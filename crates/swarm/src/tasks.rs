//! Swarm tasks as Marathon sees tasks (state, node address, host ports, configuration
//! version), and a service's rolling-update status.

use crate::labels::{LABEL_AGENT, LABEL_APP, LABEL_CONFIG, LABEL_PORTS};
use bollard::models::{
    EndpointPortConfigProtocolEnum, ServiceUpdateStatus, ServiceUpdateStatusStateEnum, Task,
    TaskState,
};
use model::{PathId, Timestamp};
use std::collections::HashMap;

/// A task's state in Marathon's terms (`TASK_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    /// Created, waiting for a node, or its image is being pulled.
    Staging,
    /// Its container is starting.
    Starting,
    /// Running.
    Running,
    /// Running, but the Swarm is stopping it (an update or scale-down replaced it).
    Killing,
    /// Exited 0.
    Finished,
    /// Exited non-zero, or a node rejected it.
    Failed,
    /// Stopped by the Swarm.
    Killed,
    /// Its node is down or gone: it may still run, but nothing can reach it.
    Lost,
}

impl TaskStatus {
    /// Marathon's name (`TASK_RUNNING`).
    pub fn marathon(self) -> &'static str {
        match self {
            TaskStatus::Staging => "TASK_STAGING",
            TaskStatus::Starting => "TASK_STARTING",
            TaskStatus::Running => "TASK_RUNNING",
            TaskStatus::Killing => "TASK_KILLING",
            TaskStatus::Finished => "TASK_FINISHED",
            TaskStatus::Failed => "TASK_FAILED",
            TaskStatus::Killed => "TASK_KILLED",
            TaskStatus::Lost => "TASK_LOST",
        }
    }

    /// True until the task has ended.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            TaskStatus::Staging | TaskStatus::Starting | TaskStatus::Running | TaskStatus::Killing
        )
    }

    /// Marathon's state for a Swarm task in `state` that the Swarm wants in `desired`, on a
    /// node that is `node_ready` or not.
    pub fn from_swarm(state: &str, desired: &str, node_ready: bool) -> TaskStatus {
        let status = match state {
            "starting" => TaskStatus::Starting,
            "running" if desired == "running" => TaskStatus::Running,
            "running" => TaskStatus::Killing,
            "complete" => TaskStatus::Finished,
            "failed" | "rejected" => TaskStatus::Failed,
            "shutdown" | "remove" => TaskStatus::Killed,
            "orphaned" => TaskStatus::Lost,
            // new, allocated, pending, assigned, accepted, preparing, ready
            _ => TaskStatus::Staging,
        };
        if status.is_active() && !node_ready {
            TaskStatus::Lost
        } else {
            status
        }
    }
}

/// One task of a Slipway service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmTask {
    /// The Swarm's task id.
    pub id: String,
    /// The service's id.
    pub service_id: String,
    /// The app id (from the service's labels).
    pub app_id: String,
    /// Its slot in the service (1-based).
    pub slot: u64,
    /// The node it is assigned to (empty while pending).
    pub node_id: String,
    /// That node's address (`Status.Addr`): where its published ports are reached.
    pub node_addr: String,
    /// That node's hostname.
    pub node_hostname: String,
    /// The node is up.
    pub node_ready: bool,
    /// Marathon's view of its state.
    pub state: TaskStatus,
    /// The Swarm's state (`running`, `shutdown`, …).
    pub swarm_state: String,
    /// The state the Swarm wants it in.
    pub desired_state: String,
    /// Host ports in Marathon's port-index order (ports that are not published on the node
    /// are left out, as Marathon does); empty until the node has bound them.
    pub ports: Vec<u16>,
    /// The configuration version it runs (`slipway.config` on its container).
    pub config_version: String,
    /// The image it runs, pinned to a digest.
    pub image: String,
    /// Its container, once the node made one.
    pub container_id: Option<String>,
    /// When the Swarm created it.
    pub created_at: Option<Timestamp>,
    /// When its state last changed.
    pub status_at: Option<Timestamp>,
    /// The Swarm's status message (`started`, `pulling image`).
    pub message: String,
    /// The error that ended it, if any.
    pub error: Option<String>,
}

impl SwarmTask {
    /// Its Marathon task id: `<app safe name>.<Swarm task id>` (the `MESOS_TASK_ID` its
    /// container sees).
    pub fn marathon_id(&self) -> String {
        format!("{}.{}", PathId::parse(&self.app_id).safe_name(), self.id)
    }
}

/// A node of the Swarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwarmNode {
    /// Node id.
    pub id: String,
    /// Hostname.
    pub hostname: String,
    /// The address other nodes and clients reach it at.
    pub addr: String,
    /// `manager` or `worker`.
    pub role: String,
    /// Up and taking tasks.
    pub ready: bool,
    /// `active`, `pause` or `drain`.
    pub availability: String,
}

/// Where a service's rolling update is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateState {
    /// Replacing tasks.
    Updating,
    /// Stopped after a failure (or by hand).
    Paused,
    /// Every task runs the new spec.
    Completed,
    /// A new task failed; rolling back to the previous spec.
    RollbackStarted,
    /// The rollback itself failed and stopped.
    RollbackPaused,
    /// Back on the previous spec: the update failed.
    RollbackCompleted,
}

impl UpdateState {
    /// True when the update ended without reaching the new spec.
    pub fn failed(self) -> bool {
        matches!(
            self,
            UpdateState::Paused
                | UpdateState::RollbackStarted
                | UpdateState::RollbackPaused
                | UpdateState::RollbackCompleted
        )
    }
}

/// A service's `UpdateStatus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUpdate {
    /// The state.
    pub state: UpdateState,
    /// The Swarm's message (`update completed`, `update paused due to failure …`).
    pub message: String,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub completed_at: Option<Timestamp>,
}

pub(crate) fn update_status(u: &ServiceUpdateStatus) -> Option<ServiceUpdate> {
    let state = match u.state? {
        ServiceUpdateStatusStateEnum::EMPTY => return None,
        ServiceUpdateStatusStateEnum::UPDATING => UpdateState::Updating,
        ServiceUpdateStatusStateEnum::PAUSED => UpdateState::Paused,
        ServiceUpdateStatusStateEnum::COMPLETED => UpdateState::Completed,
        ServiceUpdateStatusStateEnum::ROLLBACK_STARTED => UpdateState::RollbackStarted,
        ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED => UpdateState::RollbackPaused,
        ServiceUpdateStatusStateEnum::ROLLBACK_COMPLETED => UpdateState::RollbackCompleted,
    };
    Some(ServiceUpdate {
        state,
        message: u.message.clone().unwrap_or_default(),
        started_at: u.started_at.as_deref().and_then(Timestamp::parse),
        completed_at: u.completed_at.as_deref().and_then(Timestamp::parse),
    })
}

/// One slot of a `slipway.ports` label: target port, first protocol, and kind.
fn parse_ports(label: &str) -> Vec<(u16, String, char)> {
    label
        .split(',')
        .filter_map(|slot| {
            let mut parts = slot.split('/');
            let target = parts.next()?.parse().ok()?;
            let proto = parts.next()?.split('+').next()?.to_string();
            let kind = parts.next()?.chars().next()?;
            Some((target, proto, kind))
        })
        .collect()
}

fn state_name(s: Option<TaskState>) -> String {
    s.map(|s| s.to_string()).unwrap_or_default()
}

/// A Swarm task as a [`SwarmTask`], given the nodes and the service's own labels (for
/// tasks whose containers predate a label).
pub(crate) fn swarm_task(
    t: &Task,
    nodes: &HashMap<String, SwarmNode>,
    service_labels: &HashMap<String, String>,
) -> SwarmTask {
    let container = t.spec.as_ref().and_then(|s| s.container_spec.as_ref());
    let labels = container.and_then(|c| c.labels.as_ref());
    let label = |k: &str| {
        labels
            .and_then(|l| l.get(k))
            .or_else(|| service_labels.get(k))
            .cloned()
            .unwrap_or_default()
    };
    let status = t.status.clone().unwrap_or_default();
    let node_id = t.node_id.clone().unwrap_or_default();
    let node = nodes.get(&node_id);
    let desired = state_name(t.desired_state);
    let swarm_state = state_name(status.state);
    let node_ready = node.is_some_and(|n| n.ready);
    let bound: Vec<_> = status
        .port_status
        .as_ref()
        .and_then(|p| p.ports.clone())
        .unwrap_or_default();
    let mut ports = Vec::new();
    for (target, proto, kind) in parse_ports(&label(LABEL_PORTS)) {
        match kind {
            'h' => ports.push(target),
            'p' => {
                let proto = if proto == "udp" {
                    EndpointPortConfigProtocolEnum::UDP
                } else {
                    EndpointPortConfigProtocolEnum::TCP
                };
                let found = bound.iter().find(|b| {
                    b.target_port == Some(i64::from(target))
                        && b.protocol.unwrap_or(EndpointPortConfigProtocolEnum::TCP) == proto
                });
                if let Some(p) = found
                    .and_then(|b| b.published_port)
                    .and_then(|p| u16::try_from(p).ok())
                {
                    ports.push(p);
                }
            }
            _ => {}
        }
    }
    SwarmTask {
        id: t.id.clone().unwrap_or_default(),
        service_id: t.service_id.clone().unwrap_or_default(),
        app_id: label(LABEL_APP),
        slot: t.slot.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        node_addr: node.map(|n| n.addr.clone()).unwrap_or_default(),
        node_hostname: node.map(|n| n.hostname.clone()).unwrap_or_default(),
        node_ready,
        node_id,
        state: TaskStatus::from_swarm(&swarm_state, &desired, node_ready),
        swarm_state,
        desired_state: desired,
        ports,
        config_version: label(LABEL_CONFIG),
        image: container.and_then(|c| c.image.clone()).unwrap_or_default(),
        container_id: status
            .container_status
            .as_ref()
            .and_then(|c| c.container_id.clone())
            .filter(|c| !c.is_empty()),
        created_at: t.created_at.as_deref().and_then(Timestamp::parse),
        status_at: status.timestamp.as_deref().and_then(Timestamp::parse),
        message: status.message.clone().unwrap_or_default(),
        error: status.err.clone().filter(|e| !e.is_empty()),
    }
}

/// The label filter for the services of `agent` (and of one app).
pub(crate) fn owned_by(agent: &str, app: Option<&str>) -> HashMap<String, Vec<String>> {
    let mut labels = vec![format!("{LABEL_AGENT}={agent}")];
    if let Some(app) = app {
        labels.push(format!("{LABEL_APP}={app}"));
    }
    HashMap::from([("label".to_string(), labels)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_states_map_to_marathon_states() {
        let check = |state: &str, desired: &str, ready: bool, want: TaskStatus| {
            assert_eq!(
                TaskStatus::from_swarm(state, desired, ready),
                want,
                "{state} → {desired}, node ready {ready}"
            );
        };
        for s in [
            "new",
            "allocated",
            "pending",
            "assigned",
            "accepted",
            "preparing",
            "ready",
        ] {
            check(s, "running", true, TaskStatus::Staging);
        }
        check("starting", "running", true, TaskStatus::Starting);
        check("running", "running", true, TaskStatus::Running);
        check("running", "shutdown", true, TaskStatus::Killing);
        check("running", "running", false, TaskStatus::Lost);
        check("complete", "shutdown", true, TaskStatus::Finished);
        check("failed", "shutdown", true, TaskStatus::Failed);
        check("rejected", "shutdown", true, TaskStatus::Failed);
        check("shutdown", "shutdown", true, TaskStatus::Killed);
        check("remove", "remove", true, TaskStatus::Killed);
        check("orphaned", "shutdown", true, TaskStatus::Lost);
        check("failed", "shutdown", false, TaskStatus::Failed);
        assert_eq!(TaskStatus::Killing.marathon(), "TASK_KILLING");
    }

    #[test]
    fn a_task_reports_its_node_ports_and_config() {
        let t: Task = serde_json::from_value(serde_json::json!({
            "ID": "t1", "ServiceID": "s1", "Slot": 3, "NodeID": "n2",
            "CreatedAt": "2026-12-06T10:00:01.123456789Z",
            "Spec": {"ContainerSpec": {"Image": "r/web:1@sha256:ab", "Labels": {
                "slipway.app": "/BB/web", "slipway.config": "2026-12-06T09:00:00.000Z",
                "slipway.ports": "8080/tcp/p,9000/udp+tcp/p,7000/tcp/n"}}},
            "Status": {"State": "running", "Message": "started",
                "Timestamp": "2026-12-06T10:00:02.5Z",
                "ContainerStatus": {"ContainerID": "c1"},
                "PortStatus": {"Ports": [
                    {"Protocol": "udp", "TargetPort": 9000, "PublishedPort": 30002, "PublishMode": "host"},
                    {"Protocol": "tcp", "TargetPort": 8080, "PublishedPort": 30001, "PublishMode": "host"},
                    {"Protocol": "tcp", "TargetPort": 9000, "PublishedPort": 30003, "PublishMode": "host"}]}},
            "DesiredState": "running"
        }))
        .unwrap();
        let nodes = HashMap::from([(
            "n2".to_string(),
            SwarmNode {
                id: "n2".into(),
                hostname: "worker".into(),
                addr: "10.231.7.2".into(),
                role: "worker".into(),
                ready: true,
                availability: "active".into(),
            },
        )]);
        let s = swarm_task(&t, &nodes, &HashMap::new());
        assert_eq!(s.ports, vec![30001, 30002]);
        assert_eq!(s.state, TaskStatus::Running);
        assert_eq!(s.node_addr, "10.231.7.2");
        assert_eq!(s.slot, 3);
        assert_eq!(s.config_version, "2026-12-06T09:00:00.000Z");
        assert_eq!(s.container_id.as_deref(), Some("c1"));
        assert_eq!(s.marathon_id(), "BB_web.t1");
        assert_eq!(
            s.created_at.map(|t| t.to_string()).as_deref(),
            Some("2026-12-06T10:00:01.123Z")
        );
        assert_eq!(s.error, None);
    }
}
