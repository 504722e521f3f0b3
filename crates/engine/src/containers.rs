//! Docker container tasks: the link to the daemon (connect, lose, reconnect), launches,
//! exit watchers and log followers, signals, and re-adoption by label after a restart of
//! Slipway or of dockerd.

use crate::launch::task_env;
use crate::state::{KillKind, State, TaskState};
use crate::{Engine, Msg};
use docker::{ContainerSpec, DockerError, NetworkMode, PortSpec, VolumeSpec};
use model::{AppDefinition, NetworkMode as AppNetwork};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a missing daemon is retried.
pub(crate) const RECONNECT_EVERY_MS: i64 = 3_000;

/// Docker settings of the engine.
#[derive(Clone, Debug)]
pub struct DockerOptions {
    /// Use Docker when a daemon is reachable.
    pub enabled: bool,
    /// Daemon address override (`unix:///…`, `tcp://…`); default: the local socket.
    pub host: Option<String>,
    /// Host address published container ports bind to.
    pub publish_host: String,
    /// Registry credentials in Docker's `config.json` format, for every pull.
    pub registry_config: Option<PathBuf>,
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions {
            enabled: true,
            host: None,
            publish_host: "127.0.0.1".into(),
            registry_config: None,
        }
    }
}

/// The engine's view of the daemon.
#[derive(Clone)]
pub(crate) enum DockerLink {
    /// Not tried yet.
    Unknown,
    /// Connected; tasks can launch.
    Connected(docker::Docker),
    /// Not reachable (or disabled), with the reason users see.
    Unavailable { reason: String, since: i64 },
}

/// A container launch to run outside the state lock.
pub(crate) struct ContainerJob {
    pub(crate) spec: ContainerSpec,
    pub(crate) fetch: Vec<launcher::FetchSpec>,
    pub(crate) sandbox: PathBuf,
}

impl Engine {
    pub(crate) fn docker_link(&self) -> DockerLink {
        self.inner
            .docker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_docker_link(&self, link: DockerLink) {
        *self.inner.docker.lock().unwrap_or_else(|e| e.into_inner()) = link;
    }

    /// Why container apps cannot launch right now, if they cannot.
    pub fn docker_unavailable(&self) -> Option<String> {
        match self.docker_link() {
            DockerLink::Connected(_) => None,
            DockerLink::Unknown => Some("Docker: connecting to the daemon".into()),
            DockerLink::Unavailable { reason, .. } => Some(reason),
        }
    }

    /// Starts a connection attempt when there is no link (at start and every few seconds).
    pub(crate) fn maybe_connect_docker(&self, now: i64) {
        if !self.inner.cfg.docker.enabled {
            if matches!(self.docker_link(), DockerLink::Unknown) {
                self.set_docker_link(DockerLink::Unavailable {
                    reason: "Docker is disabled (slipway up --docker off)".into(),
                    since: now,
                });
            }
            return;
        }
        let due = match self.docker_link() {
            DockerLink::Connected(_) => false,
            DockerLink::Unknown => true,
            DockerLink::Unavailable { since, .. } => now - since >= RECONNECT_EVERY_MS,
        };
        let mut connecting = self
            .inner
            .docker_connecting
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if !due || *connecting {
            return;
        }
        *connecting = true;
        let cfg = docker::DockerConfig {
            agent_id: self.inner.agent_id.clone(),
            publish_host: self.inner.cfg.docker.publish_host.clone(),
            host: self.inner.cfg.docker.host.clone(),
            log_max_bytes: self.inner.cfg.log_max_bytes,
        };
        let tx = self.inner.tx.clone();
        self.inner.tracker.spawn(async move {
            let result = match docker::Docker::connect(cfg).await {
                Ok(d) => match d.list_tasks().await {
                    Ok(found) => Ok((d, found)),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            let _ = tx.send(Msg::DockerConnected { result });
        });
    }

    /// A connection attempt finished: adopt what runs, remove what is not ours any more.
    pub(crate) fn on_docker_connected(
        &self,
        st: &mut State,
        result: Result<(docker::Docker, Vec<docker::FoundContainer>), String>,
        now: i64,
    ) {
        *self
            .inner
            .docker_connecting
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = false;
        let (d, found) = match result {
            Ok(x) => x,
            Err(reason) => {
                let was_connected = matches!(self.docker_link(), DockerLink::Connected(_));
                if was_connected || matches!(self.docker_link(), DockerLink::Unknown) {
                    tracing::warn!(%reason, "Docker is not available; container apps wait for it");
                }
                self.set_docker_link(DockerLink::Unavailable {
                    reason: format!("Docker is not available: {reason}"),
                    since: now,
                });
                return;
            }
        };
        tracing::info!(api = %d.api_version(), containers = found.len(), "connected to Docker");
        self.set_docker_link(DockerLink::Connected(d.clone()));
        let by_task: BTreeMap<&str, &docker::FoundContainer> =
            found.iter().map(|f| (f.task_id.as_str(), f)).collect();
        let ids: Vec<String> = st
            .tasks
            .values()
            .filter(|t| t.docker)
            .map(|t| t.id.clone())
            .collect();
        for id in ids {
            let Some(t) = st.tasks.get_mut(&id) else {
                continue;
            };
            if t.launching {
                // A launch job of this process owns the task; it reports when done.
                continue;
            }
            match by_task.get(id.as_str()) {
                Some(f) => {
                    if t.container.as_deref() != Some(f.container_id.as_str()) {
                        // Created just before a crash and never recorded: adopt it.
                        t.container = Some(f.container_id.clone());
                        t.state = TaskState::TaskRunning;
                        t.started_at.get_or_insert(model::Timestamp(now));
                        let snapshot = t.clone();
                        let _ = self.persist_task(&snapshot);
                    }
                    if !t.watched {
                        t.watched = true;
                        self.watch_container(&d, &id, &f.container_id, t.sandbox.clone());
                    }
                    if let Some(k) = t.kill.as_ref().filter(|k| k.sigterm_sent) {
                        let sig = if k.sigkill_sent { "SIGKILL" } else { "SIGTERM" };
                        self.signal_container(Some(&f.container_id), sig);
                    }
                }
                None if t.container.is_some() => {
                    let msg = "container disappeared (removed while Slipway or Docker was down)"
                        .to_string();
                    let (state, failure) = if t.kill.is_some() {
                        (TaskState::TaskKilled, false)
                    } else {
                        (TaskState::TaskLost, true)
                    };
                    self.on_terminated(st, &id, state, msg, failure, now);
                }
                // Accepted but never created before the last crash: forget it; the planner
                // launches a replacement.
                None => {
                    st.tasks.remove(&id);
                    if let Err(e) = self.inner.store.write(|tx| tx.delete_task(&id)) {
                        tracing::error!(task = %id, error = %e, "cannot delete task record");
                    }
                }
            }
        }
        for f in &found {
            if !st.tasks.contains_key(&f.task_id) {
                tracing::warn!(task = %f.task_id, container = %f.container_id, "removing orphan container");
                let d = d.clone();
                let id = f.container_id.clone();
                self.inner.tracker.spawn(async move {
                    let _ = d.remove(&id).await;
                });
            }
        }
    }

    /// Attaches an exit watcher and a log follower to a running container.
    pub(crate) fn watch_container(
        &self,
        d: &docker::Docker,
        task_id: &str,
        container_id: &str,
        sandbox: PathBuf,
    ) {
        let (tx, task, cid) = (
            self.inner.tx.clone(),
            task_id.to_string(),
            container_id.to_string(),
        );
        let dw = d.clone();
        self.inner.tracker.spawn(async move {
            let msg = match dw.wait(&cid).await {
                Ok(exit) => Msg::ContainerExited {
                    task_id: task,
                    container_id: cid,
                    exit,
                },
                Err(e) => Msg::ContainerLost {
                    task_id: task,
                    reason: e.to_string(),
                },
            };
            let _ = tx.send(msg);
        });
        let (dl, cid) = (d.clone(), container_id.to_string());
        self.inner.tracker.spawn(async move {
            if let Err(e) = dl.follow_logs(&cid, &sandbox).await {
                tracing::debug!(container = %cid, error = %e, "log follower stopped");
            }
        });
    }

    /// Sends a signal to a container in the background. Takes the id rather than the task,
    /// because callers hold the state lock.
    pub(crate) fn signal_container(&self, container: Option<&str>, signal: &'static str) {
        let (DockerLink::Connected(d), Some(cid)) = (self.docker_link(), container) else {
            return;
        };
        let cid = cid.to_string();
        self.inner.tracker.spawn(async move {
            if let Err(e) = d.signal(&cid, signal).await {
                tracing::warn!(container = %cid, signal, error = %e, "cannot signal container");
            }
        });
    }

    /// A watcher lost the daemon: the task is unwatched until the link is re-established.
    pub(crate) fn on_container_lost(
        &self,
        st: &mut State,
        task_id: &str,
        reason: String,
        now: i64,
    ) {
        if let Some(t) = st.tasks.get_mut(task_id) {
            t.watched = false;
        }
        if matches!(self.docker_link(), DockerLink::Connected(_)) {
            tracing::warn!(%reason, "lost the Docker daemon; reconnecting");
            self.set_docker_link(DockerLink::Unavailable {
                reason: format!("Docker is not available: {reason}"),
                since: now - RECONNECT_EVERY_MS,
            });
        }
    }

    /// A container ended: record it like a process exit, then remove the container.
    pub(crate) fn on_container_exited(
        &self,
        st: &mut State,
        task_id: &str,
        container_id: &str,
        exit: docker::Exit,
        now: i64,
    ) {
        let Some(t) = st
            .tasks
            .get(task_id)
            .filter(|t| t.container.as_deref() == Some(container_id))
        else {
            return;
        };
        let (state, msg, failure) = match &t.kill {
            Some(k) => (
                TaskState::TaskKilled,
                k.reason.clone(),
                k.kind == KillKind::Unhealthy,
            ),
            None if exit.code == Some(0) => (TaskState::TaskFinished, exit.message.clone(), true),
            None => (TaskState::TaskFailed, exit.message.clone(), true),
        };
        self.on_terminated(st, task_id, state, msg, failure, now);
        if let DockerLink::Connected(d) = self.docker_link() {
            let cid = container_id.to_string();
            self.inner.tracker.spawn(async move {
                // Give the log follower a moment to drain the last lines.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = d.remove(&cid).await;
            });
        }
    }

    /// Starts a container launch in the background; the result comes back as a message.
    pub(crate) fn spawn_container_launch(&self, job: Box<ContainerJob>) {
        let link = self.docker_link();
        let tx = self.inner.tx.clone();
        let registry_config = self.inner.cfg.docker.registry_config.clone();
        self.inner.tracker.spawn(async move {
            let task_id = job.spec.task_id.clone();
            let result = launch_container(link, *job, registry_config).await;
            let _ = tx.send(Msg::ContainerStarted { task_id, result });
        });
    }

    /// Handles the end of a container launch attempt.
    pub(crate) fn on_container_started(
        &self,
        st: &mut State,
        task_id: &str,
        result: Result<docker::Started, String>,
        now: i64,
    ) {
        match result {
            Ok(started) => {
                let Some(t) = st.tasks.get_mut(task_id) else {
                    if let DockerLink::Connected(d) = self.docker_link() {
                        self.inner.tracker.spawn(async move {
                            let _ = d.remove(&started.container_id).await;
                        });
                    }
                    return;
                };
                t.launching = false;
                t.container = Some(started.container_id.clone());
                t.ip = started.ip.clone();
                t.state = TaskState::TaskRunning;
                t.started_at = Some(model::Timestamp(now));
                t.watched = true;
                let snapshot = t.clone();
                if let Err(e) = self.persist_task(&snapshot) {
                    tracing::error!(task = %task_id, error = %e, "cannot persist task");
                }
                self.publish_status(&snapshot, TaskState::TaskRunning, "");
                if let DockerLink::Connected(d) = self.docker_link() {
                    self.watch_container(
                        &d,
                        task_id,
                        &started.container_id,
                        snapshot.sandbox.clone(),
                    );
                }
                if snapshot.kill.is_some() {
                    self.signal_container(Some(&started.container_id), "SIGTERM");
                }
            }
            Err(reason) => {
                let killed = st.tasks.get(task_id).is_some_and(|t| t.kill.is_some());
                let state = if killed {
                    TaskState::TaskKilled
                } else {
                    TaskState::TaskFailed
                };
                self.on_terminated(st, task_id, state, reason, !killed, now);
            }
        }
    }
}

/// Fetches artifacts into the sandbox, finds registry credentials, and starts the container.
async fn launch_container(
    link: DockerLink,
    job: ContainerJob,
    registry_config: Option<PathBuf>,
) -> Result<docker::Started, String> {
    let d = match link {
        DockerLink::Connected(d) => d,
        DockerLink::Unavailable { reason, .. } => return Err(reason),
        DockerLink::Unknown => return Err("Docker: still connecting to the daemon".into()),
    };
    tokio::fs::create_dir_all(&job.sandbox)
        .await
        .map_err(|e| format!("cannot create sandbox {}: {e}", job.sandbox.display()))?;
    launcher::fetch_all(&job.fetch, &job.sandbox)
        .await
        .map_err(|e| e.to_string())?;
    let mut spec = job.spec;
    spec.registry_auth = registry_auth(&spec.image, &job.sandbox, registry_config.as_deref()).await;
    d.launch(&spec).await.map_err(|e| match e {
        DockerError::Unreachable(r) => format!("Docker is not available: {r}"),
        other => other.to_string(),
    })
}

/// Credentials for the image: a `.docker/config.json` fetched into the sandbox (Marathon's
/// `uris: ["file:///etc/docker.tar.gz"]` convention) wins over the server-wide file.
async fn registry_auth(
    image: &str,
    sandbox: &Path,
    server: Option<&Path>,
) -> Option<docker::RegistryAuth> {
    let mut candidates = vec![
        sandbox.join(".docker/config.json"),
        sandbox.join("config.json"),
    ];
    candidates.extend(server.map(Path::to_path_buf));
    for path in candidates {
        if let Ok(json) = tokio::fs::read_to_string(&path).await
            && let Some(auth) = docker::credentials_for(image, &json)
        {
            return Some(auth);
        }
    }
    None
}

/// Builds the container spec for a task of `def`.
pub(crate) fn container_spec(
    def: &AppDefinition,
    task: &crate::state::TaskRecord,
    host: &str,
    sandbox: &Path,
) -> Result<ContainerSpec, String> {
    let c = def.container.as_ref().ok_or("not a container app")?;
    let d = c.docker.as_ref().ok_or("container.docker is missing")?;
    let network = match def.network_mode() {
        AppNetwork::Host => NetworkMode::Host,
        AppNetwork::Bridge => NetworkMode::Bridge,
        AppNetwork::Container(name) => NetworkMode::User(name.unwrap_or_else(|| "slipway".into())),
    };
    let mut host_ports = task.host_ports.iter();
    let ports = if network == NetworkMode::Host {
        Vec::new()
    } else {
        c.port_mappings
            .iter()
            .map(|m| {
                let host_port = m.host_port.and_then(|_| host_ports.next().copied());
                PortSpec {
                    container_port: if m.container_port == 0 {
                        host_port.unwrap_or(0)
                    } else {
                        m.container_port as u16
                    },
                    host_port,
                    protocol: m.protocol.clone(),
                }
            })
            .collect()
    };
    let volumes = c
        .volumes
        .iter()
        .filter_map(|v| {
            let hp = v.host_path.as_ref()?;
            let host_path = if Path::new(hp).is_absolute() {
                PathBuf::from(hp)
            } else {
                sandbox.join(hp)
            };
            Some(VolumeSpec {
                host_path,
                container_path: v.container_path.clone(),
                read_only: v.mode == "RO",
            })
        })
        .collect();
    Ok(ContainerSpec {
        task_id: task.id.clone(),
        app_id: def.id.to_string(),
        image: d.image.clone(),
        force_pull: d.force_pull_image,
        cmd: def.cmd.clone(),
        args: def.args.clone(),
        env: task_env(def, task, host),
        labels: def.labels.clone(),
        network,
        ports,
        volumes,
        cpus: def.cpus,
        mem_mib: def.mem,
        user: def.user.clone(),
        privileged: d.privileged,
        parameters: d
            .parameters
            .iter()
            .map(|p| (p.key.trim_start_matches('-').to_string(), p.value.clone()))
            .collect(),
        registry_auth: None,
        // Slipway checks health itself when the app defines checks; the image's Docker
        // HEALTHCHECK would run the same work again as daemon execs.
        disable_image_healthcheck: !def.health_checks.is_empty(),
    })
}

/// Where a health check of a container task connects: the published host port, else the
/// container's IP and port on its network.
pub(crate) fn container_probe_target(
    def: &AppDefinition,
    task: &crate::state::TaskRecord,
    index: usize,
    host: &str,
) -> Option<(String, u16)> {
    let c = def.container.as_ref()?;
    if def.network_mode() == AppNetwork::Host {
        return task.host_ports.get(index).map(|p| (host.to_string(), *p));
    }
    let m = c.port_mappings.get(index)?;
    if m.host_port.is_some() {
        let slot = c.port_mappings[..index]
            .iter()
            .filter(|x| x.host_port.is_some())
            .count();
        return task.host_ports.get(slot).map(|p| (host.to_string(), *p));
    }
    Some((task.ip.clone()?, m.container_port as u16))
}
