//! What the edge proxy may route to, as the engine computes it: per app its labels and,
//! per port index, the tasks that run, pass their health checks and are not being killed.
//! Plain data shared by `engine` (which fills it) and `proxy` (which serves it).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One app as the engine sees it: its labels and, per port index, the healthy tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppEndpoints {
    /// The app id, e.g. `/web`.
    pub app_id: String,
    /// The app's labels (marathon-lb's `HAPROXY_*` and Slipway's `SLIPWAY_*` live here).
    pub labels: BTreeMap<String, String>,
    /// One entry per port index `n`.
    pub ports: Vec<PortEndpoints>,
}

/// The endpoints of one port index of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortEndpoints {
    /// Marathon's servicePort (0 = none).
    pub service_port: u16,
    /// Only tasks that are running, healthy and not being killed.
    pub backends: Vec<Backend>,
}

/// One task's address for a port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    /// The task id; in-flight accounting and per-backend metrics are keyed by it.
    pub task_id: String,
    /// Where the task listens for this port.
    pub addr: SocketAddr,
}
