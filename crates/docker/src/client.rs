//! The daemon connection: connect and negotiate, wait, signal, inspect, list and remove
//! containers, plus the mapping of bollard errors onto [`DockerError`].

use crate::{
    ContainerState, DockerConfig, DockerError, Exit, FoundContainer, LABEL_AGENT, LABEL_APP,
    LABEL_TASK, SignalOutcome,
};
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerInspectResponse, ContainerStateStatusEnum, ContainerSummaryStateEnum,
};
use bollard::query_parameters::{
    KillContainerOptions, ListContainersOptions, RemoveContainerOptions,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Per-request timeout for the response headers (streams are not limited by it).
const REQUEST_TIMEOUT_SECS: u64 = 120;
/// Bound on connecting, negotiating and pinging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// A connection to one Docker daemon, cheap to clone.
#[derive(Clone, Debug)]
pub struct Docker {
    pub(crate) api: bollard::Docker,
    pub(crate) cfg: Arc<DockerConfig>,
    /// CPUs of the daemon's host, to keep `NanoCpus` within what the daemon accepts.
    pub(crate) ncpu: Option<i64>,
    /// Serialises user-network creation within this process.
    pub(crate) network_lock: Arc<tokio::sync::Mutex<()>>,
}

/// A bollard error sorted by what the caller does about it.
pub(crate) enum Failure {
    /// Connection-level failure: the daemon is gone or hung.
    Unreachable(String),
    /// 404 from the daemon.
    NotFound(String),
    /// 409 from the daemon (name in use, not running, removal in progress).
    Conflict(String),
    /// Anything else, with the daemon's message.
    Other(String),
}

/// Sorts a bollard error.
pub(crate) fn failure(e: BollardError) -> Failure {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => {
            let message = message.trim().to_string();
            match status_code {
                404 => Failure::NotFound(message),
                409 => Failure::Conflict(message),
                _ => Failure::Other(message),
            }
        }
        BollardError::DockerStreamError { error } => Failure::Other(error.trim().to_string()),
        e @ (BollardError::IOError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::HyperResponseError { .. }
        | BollardError::HttpClientError { .. }
        | BollardError::RequestTimeoutError
        | BollardError::SocketNotFoundError(_)) => Failure::Unreachable(describe(&e)),
        e => Failure::Other(describe(&e)),
    }
}

/// A bollard error as a [`DockerError`], with `wrap` for daemon answers.
pub(crate) fn map_err(e: BollardError, wrap: impl FnOnce(String) -> DockerError) -> DockerError {
    match failure(e) {
        Failure::Unreachable(m) => DockerError::Unreachable(m),
        Failure::NotFound(m) | Failure::Conflict(m) | Failure::Other(m) => wrap(m),
    }
}

/// The error and its sources in one line, without repeats.
fn describe(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

impl Docker {
    /// Connects, negotiates the API version down to what the daemon speaks, and pings.
    pub async fn connect(cfg: DockerConfig) -> Result<Docker, DockerError> {
        let unreachable = |e: BollardError| DockerError::Unreachable(describe(&e));
        let api = match cfg.host.as_deref().map(str::trim) {
            None | Some("") => bollard::Docker::connect_with_unix_defaults(),
            Some(path) if path.starts_with('/') => bollard::Docker::connect_with_unix(
                path,
                REQUEST_TIMEOUT_SECS,
                bollard::API_DEFAULT_VERSION,
            ),
            Some(host) => bollard::Docker::connect_with_host(host),
        }
        .map_err(unreachable)?;
        let setup = async {
            let api = api.negotiate_version().await.map_err(unreachable)?;
            api.ping().await.map_err(unreachable)?;
            let ncpu = api.info().await.ok().and_then(|i| i.ncpu);
            Ok::<_, DockerError>((api, ncpu))
        };
        let (api, ncpu) = tokio::time::timeout(CONNECT_TIMEOUT, setup)
            .await
            .map_err(|_| {
                DockerError::Unreachable("the daemon did not answer within 20s".into())
            })??;
        Ok(Docker {
            api,
            cfg: Arc::new(cfg),
            ncpu,
            network_lock: Arc::default(),
        })
    }

    /// Checks that the daemon answers.
    pub async fn ping(&self) -> Result<(), DockerError> {
        self.api
            .ping()
            .await
            .map(drop)
            .map_err(|e| map_err(e, DockerError::Api))
    }

    /// The negotiated Engine API version, e.g. `1.41`.
    pub fn api_version(&self) -> String {
        self.api.client_version().to_string()
    }

    /// The configuration this connection was made with.
    pub fn config(&self) -> &DockerConfig {
        &self.cfg
    }

    /// Waits until the container is not running and reports how it ended. A lost connection
    /// is [`DockerError::Unreachable`] (poll [`Docker::state`] later), never a made-up exit.
    pub async fn wait(&self, container_id: &str) -> Result<Exit, DockerError> {
        let mut stream = self.api.wait_container(container_id, None);
        let code = match stream.next().await {
            Some(Ok(r)) => Some(r.status_code),
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Some(code),
            Some(Err(e)) => match failure(e) {
                Failure::NotFound(_) => return Ok(removed(None)),
                Failure::Unreachable(m) => return Err(DockerError::Unreachable(m)),
                Failure::Conflict(m) | Failure::Other(m) => return Err(DockerError::Api(m)),
            },
            None => {
                return Err(DockerError::Unreachable(
                    "the wait stream ended without a result".into(),
                ));
            }
        };
        match self.inspect(container_id).await {
            Ok(Some(info)) => match state_of(&info) {
                ContainerState::Exited(exit) => Ok(exit),
                // Restarted behind our back between the two calls: report the exit we saw.
                _ => Ok(exit_message(code, false, "")),
            },
            Ok(None) => Ok(removed(code)),
            Err(_) => Ok(exit_message(code, false, "")),
        }
    }

    /// Sends `signal` (`SIGTERM`, `SIGKILL`, …). A missing or stopped container is `Gone`.
    pub async fn signal(
        &self,
        container_id: &str,
        signal: &str,
    ) -> Result<SignalOutcome, DockerError> {
        let opts = KillContainerOptions {
            signal: signal.to_string(),
        };
        match self.api.kill_container(container_id, Some(opts)).await {
            Ok(()) => Ok(SignalOutcome::Sent),
            Err(e) => match failure(e) {
                Failure::NotFound(_) | Failure::Conflict(_) => Ok(SignalOutcome::Gone),
                Failure::Unreachable(m) => Err(DockerError::Unreachable(m)),
                Failure::Other(m) => Err(DockerError::Api(m)),
            },
        }
    }

    /// Current state of a container.
    pub async fn state(&self, container_id: &str) -> Result<ContainerState, DockerError> {
        Ok(match self.inspect(container_id).await? {
            Some(info) => state_of(&info),
            None => ContainerState::Missing,
        })
    }

    /// Every container (running or not) labelled with this agent's id.
    pub async fn list_tasks(&self) -> Result<Vec<FoundContainer>, DockerError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_AGENT}={}", self.cfg.agent_id)],
        )]);
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .api
            .list_containers(Some(opts))
            .await
            .map_err(|e| map_err(e, DockerError::Api))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                Some(FoundContainer {
                    task_id: labels.get(LABEL_TASK)?.clone(),
                    app_id: labels.get(LABEL_APP).cloned().unwrap_or_default(),
                    container_id: c.id?,
                    running: matches!(
                        c.state,
                        Some(
                            ContainerSummaryStateEnum::RUNNING
                                | ContainerSummaryStateEnum::PAUSED
                                | ContainerSummaryStateEnum::RESTARTING
                        )
                    ),
                })
            })
            .collect())
    }

    /// Force-removes a container and its anonymous volumes; a missing one is fine.
    pub async fn remove(&self, container_id: &str) -> Result<(), DockerError> {
        let opts = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self.api.remove_container(container_id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) => match failure(e) {
                Failure::NotFound(_) => Ok(()),
                Failure::Conflict(m) if m.contains("already in progress") => Ok(()),
                Failure::Unreachable(m) => Err(DockerError::Unreachable(m)),
                Failure::Conflict(m) | Failure::Other(m) => Err(DockerError::Api(m)),
            },
        }
    }

    /// Inspects a container; `None` when it does not exist.
    pub(crate) async fn inspect(
        &self,
        container: &str,
    ) -> Result<Option<ContainerInspectResponse>, DockerError> {
        match self.api.inspect_container(container, None).await {
            Ok(info) => Ok(Some(info)),
            Err(e) => match failure(e) {
                Failure::NotFound(_) => Ok(None),
                Failure::Unreachable(m) => Err(DockerError::Unreachable(m)),
                Failure::Conflict(m) | Failure::Other(m) => Err(DockerError::Api(m)),
            },
        }
    }
}

/// The container's IP on its own network (the one named by its network mode, else any).
pub(crate) fn ip_of(info: &ContainerInspectResponse) -> Option<String> {
    let networks = info.network_settings.as_ref()?.networks.as_ref()?;
    let mode = info
        .host_config
        .as_ref()
        .and_then(|h| h.network_mode.clone());
    let ip = |name: &String| {
        networks
            .get(name)
            .and_then(|n| n.ip_address.clone())
            .filter(|ip| !ip.is_empty())
    };
    if let Some(found) = mode.as_ref().and_then(ip) {
        return Some(found);
    }
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    names.into_iter().find_map(ip)
}

/// Maps an inspected container onto [`ContainerState`].
pub(crate) fn state_of(info: &ContainerInspectResponse) -> ContainerState {
    let Some(s) = info.state.as_ref() else {
        return ContainerState::Exited(exit_message(None, false, "the daemon reports no state"));
    };
    if s.running == Some(true) {
        return ContainerState::Running { ip: ip_of(info) };
    }
    let error = s.error.as_deref().unwrap_or("");
    if s.status == Some(ContainerStateStatusEnum::CREATED) {
        let message = if error.is_empty() {
            "Container was created but never started".to_string()
        } else {
            format!("Container failed to start: {error}")
        };
        return ContainerState::Exited(Exit {
            code: None,
            oom_killed: false,
            message,
        });
    }
    ContainerState::Exited(exit_message(s.exit_code, s.oom_killed == Some(true), error))
}

/// Exit of a container that is gone.
fn removed(code: Option<i64>) -> Exit {
    Exit {
        code,
        oom_killed: false,
        message: "Container removed".into(),
    }
}

/// A Mesos-style exit summary.
pub(crate) fn exit_message(code: Option<i64>, oom_killed: bool, error: &str) -> Exit {
    let mut message = if oom_killed {
        "Container was OOM-killed (memory limit reached)".to_string()
    } else {
        match code {
            Some(c) if (129..=159).contains(&c) => {
                let sig = c - 128;
                format!(
                    "Container exited with status {c} (killed by signal {sig}: {})",
                    signal_name(sig)
                )
            }
            Some(c) => format!("Container exited with status {c}"),
            None => "Container exited with an unknown status".to_string(),
        }
    };
    if !error.is_empty() {
        message = format!("{message}: {error}");
    }
    Exit {
        code,
        oom_killed,
        message,
    }
}

/// Linux signal name for a number.
fn signal_name(n: i64) -> &'static str {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(n - 1)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("real-time signal")
}
