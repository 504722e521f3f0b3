//! What the edge proxy may route to: per app and port index, the tasks that run, pass their
//! health checks (when the app has any) and are not being killed, with the address that
//! reaches each of them.

use crate::Engine;
use crate::state::{AppEntry, TaskRecord, TaskState};
use health::TaskHealth;
use model::NetworkMode;
use proxy::{AppEndpoints, Backend, PortEndpoints};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

impl Engine {
    /// The current endpoints of every app, for [`proxy::Proxy::update`].
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
                let tasks: Vec<&TaskRecord> = st
                    .tasks_of(&app.def.id)
                    .filter(|t| routable(app, t))
                    .collect();
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
                                    addr: address(app, t, i, host)?,
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

/// The address of port index `i` of a task: its host port, or for containers on a user
/// network without a published port, the container's own address.
fn address(app: &AppEntry, t: &TaskRecord, i: usize, host: IpAddr) -> Option<SocketAddr> {
    let def = &app.def;
    if !t.docker || def.network_mode() == NetworkMode::Host {
        return t.host_ports.get(i).map(|p| SocketAddr::new(host, *p));
    }
    let mappings = &def.container.as_ref()?.port_mappings;
    let m = mappings.get(i)?;
    if m.host_port.is_some() {
        let slot = mappings[..i]
            .iter()
            .filter(|x| x.host_port.is_some())
            .count();
        return t.host_ports.get(slot).map(|p| SocketAddr::new(host, *p));
    }
    let ip: IpAddr = t.ip.as_deref()?.parse().ok()?;
    Some(SocketAddr::new(ip, u16::try_from(m.container_port).ok()?))
}
