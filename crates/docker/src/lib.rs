//! Docker Engine backend: runs Marathon `container.type: DOCKER` tasks as labelled containers.
//!
//! Crash-only by design: every container carries `slipway.agent`, `slipway.task` and
//! `slipway.app` labels and is named `slipway-<task id>`, so a restarted server finds its
//! containers again with [`Docker::list_tasks`] and a repeated [`Docker::launch`] reuses
//! them. Only this crate names bollard types; the API below uses plain types.

mod auth;
mod build;
mod client;
mod config;
mod launch;
mod logs;
mod oneshot;
mod params;

pub use auth::{ImageRef, credentials_for, registry_of};
pub use build::{Pushed, split_reference, tar_context};
pub use client::Docker;
pub use logs::SINCE_FILE;
pub use oneshot::{WORKSPACE_MOUNT, plain_words};
pub use params::SUPPORTED_PARAMETERS;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Label holding the agent id that owns a container.
pub const LABEL_AGENT: &str = "slipway.agent";
/// Label holding the task id a container runs.
pub const LABEL_TASK: &str = "slipway.task";
/// Label holding the app id a container belongs to.
pub const LABEL_APP: &str = "slipway.app";

/// How to reach the daemon and what to stamp on containers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DockerConfig {
    /// Agent id written to the `slipway.agent` label; [`Docker::list_tasks`] filters on it.
    pub agent_id: String,
    /// Host IP published container ports bind to (usually `127.0.0.1`).
    pub publish_host: String,
    /// Daemon address (`unix:///path`, `tcp://host:port`, `http://…` or a socket path);
    /// `None` means the local socket (`DOCKER_HOST` if it is a `unix://` address).
    pub host: Option<String>,
    /// Bound on the daemon-side log files of one container (json-file, two files); 0 means
    /// 10 MiB.
    pub log_max_bytes: u64,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            agent_id: "slipway".into(),
            publish_host: "127.0.0.1".into(),
            host: None,
            log_max_bytes: 10 * 1024 * 1024,
        }
    }
}

/// The network a container joins.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NetworkMode {
    /// The host's network namespace; ports are not published.
    Host,
    /// Docker's default bridge.
    #[default]
    Bridge,
    /// A user-defined bridge network, created (labelled `slipway.agent`) when missing.
    User(String),
}

/// A container port and how it is published.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortSpec {
    /// Port inside the container; 0 means "same as the host port".
    pub container_port: u16,
    /// Host port allocated by the engine; `None` leaves the port unpublished.
    pub host_port: Option<u16>,
    /// `tcp`, `udp`, `sctp` or a comma-separated list such as `udp,tcp`; empty means `tcp`.
    pub protocol: String,
}

/// A bind mount.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeSpec {
    /// Path on the host (created when missing for read-write mounts).
    pub host_path: PathBuf,
    /// Absolute path inside the container.
    pub container_path: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// Credentials sent with a pull.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// Registry user.
    pub username: String,
    /// Registry password or token.
    pub password: String,
    /// Registry address the credentials belong to (`127.0.0.1:5000`, `docker.io`).
    pub server_address: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("server_address", &self.server_address)
            .finish()
    }
}

/// Everything needed to run one task as a container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerSpec {
    /// Task id (`app.uuid`); the container is named `slipway-<task_id>`.
    pub task_id: String,
    /// Marathon app id, written to the `slipway.app` label.
    pub app_id: String,
    /// Image reference (`repo[:tag|@digest]`, optionally with a registry host).
    pub image: String,
    /// Pull even when the image is present locally.
    pub force_pull: bool,
    /// Marathon `cmd`: run as `/bin/sh -c <cmd>` (the image entrypoint is replaced).
    pub cmd: Option<String>,
    /// Marathon `args`: the container command, appended to the image entrypoint.
    pub args: Option<Vec<String>>,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// App labels copied onto the container (the `slipway.*` labels always win).
    pub labels: BTreeMap<String, String>,
    /// Network to join.
    pub network: NetworkMode,
    /// Ports to expose and publish (ignored with [`NetworkMode::Host`]).
    pub ports: Vec<PortSpec>,
    /// Bind mounts.
    pub volumes: Vec<VolumeSpec>,
    /// CPU limit in cores (`NanoCpus`); 0 means unlimited.
    pub cpus: f64,
    /// Memory limit in MiB; 0 means unlimited.
    pub mem_mib: f64,
    /// User to run as (`name`, `uid` or `uid:gid`).
    pub user: Option<String>,
    /// Run privileged.
    pub privileged: bool,
    /// `docker run` options as (key without dashes, value), applied in order; the keys are
    /// [`SUPPORTED_PARAMETERS`], anything else is [`DockerError::InvalidParameter`].
    pub parameters: Vec<(String, String)>,
    /// Credentials for the image's registry.
    pub registry_auth: Option<RegistryAuth>,
    /// Turn off the image's own Docker HEALTHCHECK (the orchestrator checks health itself;
    /// the daemon's exec-based checks would only duplicate them and load the daemon).
    pub disable_image_healthcheck: bool,
}

/// A started container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    /// Full container id.
    pub container_id: String,
    /// IP address on its network, if it has one (not with host networking).
    pub ip: Option<String>,
}

/// How a container ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit status (128 + n after signal n); `None` when unknown (removed, never started).
    pub code: Option<i64>,
    /// The kernel OOM killer ended it.
    pub oom_killed: bool,
    /// Human-readable summary in the style of Mesos, e.g. `Container exited with status 1`.
    pub message: String,
}

/// What [`Docker::state`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Running (or paused/restarting), with its IP on its network.
    Running {
        /// IP address on its network.
        ip: Option<String>,
    },
    /// Not running any more (or created and never started).
    Exited(Exit),
    /// No such container.
    Missing,
}

/// Result of [`Docker::signal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalOutcome {
    /// The signal was delivered.
    Sent,
    /// The container is missing or not running.
    Gone,
}

/// A container of this agent found by [`Docker::list_tasks`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundContainer {
    /// Task id from the `slipway.task` label.
    pub task_id: String,
    /// App id from the `slipway.app` label.
    pub app_id: String,
    /// Full container id.
    pub container_id: String,
    /// The container is running.
    pub running: bool,
}

/// Errors of the Docker backend. Messages are shown to users as task failure reasons.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    /// The daemon cannot be reached (or the connection broke); retry later.
    #[error("docker daemon unreachable: {0}")]
    Unreachable(String),
    /// The image could not be pulled.
    #[error("cannot pull image {image}: {reason}")]
    Pull {
        /// Image reference.
        image: String,
        /// The daemon's or registry's message.
        reason: String,
    },
    /// The user network could not be created or inspected.
    #[error("cannot set up network {network}: {reason}")]
    Network {
        /// Network name.
        network: String,
        /// The daemon's message.
        reason: String,
    },
    /// The daemon refused to create the container.
    #[error("cannot create container: {0}")]
    Create(String),
    /// The container was created but would not start (it has been removed again).
    #[error("cannot start container: {0}")]
    Start(String),
    /// Any other daemon error.
    #[error("docker: {0}")]
    Api(String),
    /// A `docker run` parameter is unknown or has an invalid value.
    #[error("invalid docker parameter {key}: {reason}")]
    InvalidParameter {
        /// Parameter key (without dashes).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Some other part of the spec is invalid (ports, cmd and args, task id).
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// The sandbox (log files) cannot be written.
    #[error("cannot write container logs: {0}")]
    Io(String),
}
