//! What the edge proxy may route to: per app and port index, the tasks that run, pass their
//! health checks (when the app has any) and are not being killed, with the address that
//! reaches each of them.

use crate::Engine;
use crate::backend::BackendKind;
use crate::state::{AppEntry, TaskRecord, TaskState};
use health::TaskHealth;
use model::endpoints::{AppEndpoints, Backend, PortEndpoints};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

impl Engine {
    /// The current endpoints of every app, for the edge proxy.
    pub fn endpoints(&self) -> Vec<AppEndpoints> {
        let st = self.lock();
        let host: IpAddr = self
            .inner
            .cfg
            .host
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        st.apps
            .values()
            .map(|app| {
                let mut tasks: Vec<&TaskRecord> = st
                    .tasks_of(&app.def.id)
                    .filter(|t| routable(app, t))
                    .collect();
                // Another scheduler stops old tasks on its own clock (a Swarm: once their
                // replacements run), without waiting for the proxy to drain them. So once
                // a task of the current configuration is routable, old ones get no new
                // requests: they are drained before they are stopped.
                let current = app.def.version_info.last_config_change_at;
                if tasks
                    .iter()
                    .any(|t| t.backend == BackendKind::Scheduled && t.config_version == current)
                {
                    tasks.retain(|t| t.config_version == current);
                }
                let ports = app
                    .def
                    .service_ports()
                    .iter()
                    .enumerate()
                    .map(|(i, sp)| PortEndpoints {
                        service_port: u16::try_from(*sp).unwrap_or(0),
                        backends: tasks
                            .iter()
                            .filter_map(|t| {
                                Some(Backend {
                                    task_id: t.id.clone(),
                                    addr: self.address(app, t, i, host)?,
                                })
                            })
                            .collect(),
                    })
                    .collect();
                AppEndpoints {
                    app_id: app.def.id.to_string(),
                    labels: app.def.labels.clone(),
                    ports,
                }
            })
            .collect()
    }
}

/// Running, not being killed, and healthy when the app has health checks.
fn routable(app: &AppEntry, t: &TaskRecord) -> bool {
    t.state == TaskState::TaskRunning
        && t.kill.is_none()
        && (app.def.health_checks.is_empty() || t.health() == TaskHealth::Healthy)
}

impl Engine {
    /// The address of port index `i` of a task, as its backend reaches it (a host port on
    /// `host`, or a container's own address on its network).
    fn address(
        &self,
        app: &AppEntry,
        t: &TaskRecord,
        i: usize,
        host: IpAddr,
    ) -> Option<SocketAddr> {
        let (addr, port) = self
            .backend(t.backend)
            .address(&app.def, t, i, &host.to_string())?;
        Some(SocketAddr::new(addr.parse().ok()?, port))
    }
}
