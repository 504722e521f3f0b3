//! The canonical (normalised) Marathon app definition, as stored and as served by `/v2/apps`.
//!
//! Output follows Marathon 1.6 shapes and keeps to the key sets the closed-world marathon-python
//! client accepts. Input in 1.4 and 1.5+ forms is turned into this shape by [`crate::input`].

use crate::{PathId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A normalised app definition. Every field has its default filled in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDefinition {
    /// Absolute path id.
    pub id: PathId,
    /// Shell command (`/bin/sh -c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Exec-form arguments; with `cmd` (a Slipway extension for process apps) appended as words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// User to run the task as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, EnvValue>,
    /// Desired number of instances.
    pub instances: u32,
    /// CPU shares per instance.
    pub cpus: f64,
    /// Memory per instance, MiB.
    pub mem: f64,
    /// Disk per instance, MiB.
    pub disk: f64,
    /// GPUs per instance (echoed; not scheduled).
    pub gpus: u32,
    /// Mesos executor (echoed).
    #[serde(default)]
    pub executor: String,
    /// Placement constraints (echoed; a single host satisfies them trivially).
    #[serde(default)]
    pub constraints: Vec<Vec<String>>,
    /// Mesos roles (echoed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_resource_roles: Option<Vec<String>>,
    /// Mesos role (echoed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Free-form labels (marathon-lb's `HAPROXY_*` live here).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Artifacts fetched into the task sandbox before start.
    #[serde(default)]
    pub fetch: Vec<FetchUri>,
    /// Echoed for 1.4 clients.
    #[serde(default)]
    pub store_urls: Vec<String>,
    /// Apps this app depends on (deployment ordering).
    #[serde(default)]
    pub dependencies: Vec<PathId>,
    /// Service ports for host networking.
    #[serde(default)]
    pub port_definitions: Vec<PortDefinition>,
    /// Whether host ports must equal the declared ports.
    #[serde(default)]
    pub require_ports: bool,
    /// Network attachments.
    #[serde(default)]
    pub networks: Vec<Network>,
    /// Container settings; absent for plain command apps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    /// Health checks.
    #[serde(default)]
    pub health_checks: Vec<HealthCheck>,
    /// Readiness checks (echoed).
    #[serde(default)]
    pub readiness_checks: Vec<Value>,
    /// Rolling upgrade bounds.
    pub upgrade_strategy: UpgradeStrategy,
    /// Initial launch delay after a failure, seconds.
    pub backoff_seconds: f64,
    /// Multiplier applied to the delay after each further failure.
    pub backoff_factor: f64,
    /// Upper bound of the launch delay, seconds.
    pub max_launch_delay_seconds: f64,
    /// Delay between SIGTERM and SIGKILL; Slipway's default is 3 s when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<f64>,
    /// Which tasks go first on scale-down.
    pub kill_selection: KillSelection,
    /// Echoed Mesos unreachable strategy.
    pub unreachable_strategy: Value,
    /// Secret references (`{"name": {"source": "..."}}`).
    #[serde(default)]
    pub secrets: BTreeMap<String, Value>,
    /// Echoed residency settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub residency: Option<Value>,
    /// The version of this definition.
    pub version: Timestamp,
    /// When config and scale last changed.
    pub version_info: VersionInfo,
}

/// An environment value: a literal or a reference to a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    /// A literal string.
    Literal(String),
    /// `{"secret": "<name in secrets>"}`.
    Secret {
        /// Key in the app's `secrets` map.
        secret: String,
    },
}

/// One artifact to fetch (Mesos fetcher semantics).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchUri {
    /// `file://`, absolute path, `http://` or `https://`.
    pub uri: String,
    /// Unpack archives into the sandbox.
    pub extract: bool,
    /// Mark the file executable.
    pub executable: bool,
    /// Cache between tasks (accepted; Slipway always fetches).
    pub cache: bool,
    /// File name inside the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
}

/// A service port for host networking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortDefinition {
    /// Service port; 0 on input means "assign one".
    pub port: u32,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: String,
    /// Optional name, exported as `PORT_<NAME>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A network attachment (`host`, `container/bridge` or `container` with a name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    /// `host`, `container/bridge` or `container`.
    pub mode: String,
    /// Network name for `container` mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Network labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// How an app's tasks are networked, derived from [`AppDefinition::networks`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// Share the host's network stack.
    Host,
    /// Docker's default bridge.
    Bridge,
    /// A named user network.
    Container(Option<String>),
}

/// Container settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// `DOCKER` or `MESOS`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Docker settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Docker>,
    /// Port mappings for bridge and user networks.
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// Volumes.
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

/// Docker-specific container settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Docker {
    /// Image reference.
    pub image: String,
    /// Pull the image before every launch.
    pub force_pull_image: bool,
    /// Run privileged.
    pub privileged: bool,
    /// Extra `docker run` options.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
}

/// `docker run` options accepted in `container.docker.parameters`; anything else is a 422.
/// The Docker backend maps each onto the Engine API's container config.
pub const DOCKER_PARAMETERS: &[&str] = &[
    "add-host",
    "cap-add",
    "cap-drop",
    "dns",
    "dns-search",
    "entrypoint",
    "env",
    "hostname",
    "init",
    "label",
    "memory-reservation",
    "memory-swap",
    "network-alias",
    "oom-score-adj",
    "pids-limit",
    "read-only",
    "security-opt",
    "shm-size",
    "stop-signal",
    "sysctl",
    "tmpfs",
    "ulimit",
    "user",
    "workdir",
];

/// One `docker run --key=value` option.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    /// Option name without dashes.
    pub key: String,
    /// Option value.
    pub value: String,
}

/// A container port mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// Port inside the container; 0 = same as the host port.
    pub container_port: u32,
    /// Host port; 0 = dynamic; absent = not published (user networks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u32>,
    /// Service port; 0 on input means "assign one".
    pub service_port: u32,
    /// `tcp`, `udp` or `udp,tcp`.
    pub protocol: String,
    /// Optional name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A container volume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Mount point inside the container.
    pub container_path: String,
    /// Host directory for host volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    /// `RO` or `RW`.
    pub mode: String,
    /// Echoed persistent volume settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<Value>,
    /// Echoed external volume settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<Value>,
}

/// Health check protocols Slipway runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthProtocol {
    /// HTTP GET, pass on 200–399.
    Http,
    /// TCP connect.
    Tcp,
    /// Shell command, pass on exit 0.
    Command,
    /// HTTP with Mesos-level semantics.
    MesosHttp,
    /// TCP with Mesos-level semantics.
    MesosTcp,
}

impl HealthProtocol {
    /// True for the `MESOS_*` variants.
    pub fn is_mesos(self) -> bool {
        matches!(self, HealthProtocol::MesosHttp | HealthProtocol::MesosTcp)
    }
}

/// A health check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Protocol.
    pub protocol: HealthProtocol,
    /// Request path for HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Index into the app's ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<u32>,
    /// Fixed port; wins over `portIndex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Command for COMMAND checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// Failures are ignored this long after start, until the first success.
    pub grace_period_seconds: u64,
    /// Time between checks.
    pub interval_seconds: u64,
    /// Time a check may take.
    pub timeout_seconds: u64,
    /// Kill after this many consecutive failures (0 = never, Marathon-level).
    pub max_consecutive_failures: u32,
    /// Discard HTTP 1xx results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_http1xx: Option<bool>,
    /// Initial delay for Mesos-level checks.
    pub delay_seconds: u64,
}

/// The command of a COMMAND health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandCheck {
    /// Shell command.
    pub value: String,
}

/// Rolling upgrade bounds, fractions of `instances`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    /// Share of instances that must stay healthy during an upgrade.
    pub minimum_health_capacity: f64,
    /// Share of extra instances allowed during an upgrade.
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> Self {
        UpgradeStrategy {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

/// Which tasks are killed first on scale-down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillSelection {
    /// Newest first (Marathon's default).
    #[default]
    YoungestFirst,
    /// Oldest first.
    OldestFirst,
}

/// When the definition last changed, by kind of change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    /// Last change of `instances` (or any config change).
    pub last_scaling_at: Timestamp,
    /// Last change that requires restarting tasks.
    pub last_config_change_at: Timestamp,
}

impl AppDefinition {
    /// The network mode, from the first network entry (host when none).
    pub fn network_mode(&self) -> NetworkMode {
        match self.networks.first() {
            None => NetworkMode::Host,
            Some(n) if n.mode == "host" => NetworkMode::Host,
            Some(n) if n.mode == "container/bridge" => NetworkMode::Bridge,
            Some(n) => NetworkMode::Container(n.name.clone()),
        }
    }

    /// True when ports come from `portDefinitions` (command apps and host networking).
    pub fn uses_port_definitions(&self) -> bool {
        self.container.is_none() || self.network_mode() == NetworkMode::Host
    }

    /// Number of host ports each task needs.
    pub fn host_port_count(&self) -> usize {
        if self.uses_port_definitions() {
            self.port_definitions.len()
        } else {
            self.container.as_ref().map_or(0, |c| {
                c.port_mappings
                    .iter()
                    .filter(|m| m.host_port.is_some())
                    .count()
            })
        }
    }

    /// Number of entries a health check `portIndex` may address.
    pub fn port_slots(&self) -> usize {
        if self.uses_port_definitions() {
            self.port_definitions.len()
        } else {
            self.container.as_ref().map_or(0, |c| c.port_mappings.len())
        }
    }

    /// Service ports in port-index order.
    pub fn service_ports(&self) -> Vec<u32> {
        if self.uses_port_definitions() {
            self.port_definitions.iter().map(|p| p.port).collect()
        } else {
            self.container.as_ref().map_or_else(Vec::new, |c| {
                c.port_mappings.iter().map(|m| m.service_port).collect()
            })
        }
    }

    /// Mutable access to the service port slots, for assignment of port 0 entries.
    pub fn service_ports_mut(&mut self) -> Vec<&mut u32> {
        if self.uses_port_definitions() {
            self.port_definitions
                .iter_mut()
                .map(|p| &mut p.port)
                .collect()
        } else {
            self.container.as_mut().map_or_else(Vec::new, |c| {
                c.port_mappings
                    .iter_mut()
                    .map(|m| &mut m.service_port)
                    .collect()
            })
        }
    }

    /// Names of the port slots (for `PORT_<NAME>`), in port-index order.
    pub fn port_names(&self) -> Vec<Option<String>> {
        if self.uses_port_definitions() {
            self.port_definitions
                .iter()
                .map(|p| p.name.clone())
                .collect()
        } else {
            self.container.as_ref().map_or_else(Vec::new, |c| {
                c.port_mappings.iter().map(|m| m.name.clone()).collect()
            })
        }
    }

    /// True when `other` differs from `self` only in fields a scale-only change may touch
    /// (`instances`, `version`, `versionInfo`): such a change needs no task restart.
    pub fn same_config(&self, other: &AppDefinition) -> bool {
        let mut a = self.clone();
        a.instances = other.instances;
        a.version = other.version;
        a.version_info = other.version_info;
        &a == other
    }

    /// The SIGTERM→SIGKILL delay in milliseconds (3 s when unset).
    pub fn kill_grace_ms(&self) -> u64 {
        self.task_kill_grace_period_seconds
            .map_or(3000, |s| (s.max(0.0) * 1000.0) as u64)
    }
}
