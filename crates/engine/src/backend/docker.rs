//! The Docker backend: tasks are containers of the local daemon, labelled with this
//! installation's agent id and their task id.
//!
//! The link to the daemon is connected at start, lost when a watcher loses the daemon, and
//! retried every few seconds. Each (re)connection lists the containers of this agent and
//! reports them as the inventory, from which the loop adopts, forgets or declares lost its
//! container tasks, and removes containers no record owns.

use super::{Backend, BackendKind, Exit, Found, Handle, LaunchRequest, Reporter, Sig, Started};
use crate::state::TaskRecord;
use docker::{ContainerSpec, DockerError, NetworkMode, PortSpec, VolumeSpec};
use futures_util::future::BoxFuture;
use launcher::Liveness;
use model::{AppDefinition, NetworkMode as AppNetwork};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
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

/// The backend's view of the daemon.
#[derive(Clone)]
enum Link {
    /// Not tried yet.
    Unknown,
    /// Connected; tasks can launch.
    Connected(docker::Docker),
    /// Not reachable (or disabled), with the reason users see.
    Unavailable { reason: String, since: i64 },
}

struct LinkState {
    link: Link,
    connecting: bool,
}

/// Containers of the local daemon.
pub struct DockerBackend {
    opts: DockerOptions,
    agent_id: String,
    log_max_bytes: u64,
    state: std::sync::Arc<Mutex<LinkState>>,
    reporter: OnceLock<Reporter>,
}

impl DockerBackend {
    /// A backend for the daemon `opts` names; it connects on the first reconcile pass.
    pub fn new(opts: DockerOptions, agent_id: String, log_max_bytes: u64) -> Self {
        DockerBackend {
            opts,
            agent_id,
            log_max_bytes,
            state: std::sync::Arc::new(Mutex::new(LinkState {
                link: Link::Unknown,
                connecting: false,
            })),
            reporter: OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn link(&self) -> Link {
        self.lock().link.clone()
    }

    fn connected(&self) -> Option<docker::Docker> {
        match self.link() {
            Link::Connected(d) => Some(d),
            _ => None,
        }
    }

    fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        match self.reporter.get() {
            Some(r) => r.spawn(fut),
            None => {
                tokio::spawn(fut);
            }
        }
    }

    fn watch_container(&self, d: &docker::Docker, task_id: &str, cid: &str, sandbox: PathBuf) {
        if let Some(reporter) = self.reporter.get() {
            watch_container(reporter, &self.state, d, task_id, cid, sandbox);
        }
    }
}

/// Attaches an exit watcher and a log follower to a running container. A watcher that
/// loses the daemon marks the link down (so it is reconnected) and reports the task lost.
fn watch_container(
    reporter: &Reporter,
    state: &std::sync::Arc<Mutex<LinkState>>,
    d: &docker::Docker,
    task_id: &str,
    cid: &str,
    sandbox: PathBuf,
) {
    let (task, cid_w, dw, r) = (
        task_id.to_string(),
        cid.to_string(),
        d.clone(),
        reporter.clone(),
    );
    let state = state.clone();
    reporter.spawn(async move {
        match dw.wait(&cid_w).await {
            Ok(exit) => r.exited(
                task,
                Handle::Id(cid_w),
                Exit {
                    code: exit.code,
                    message: exit.message,
                },
            ),
            Err(e) => {
                let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                if matches!(st.link, Link::Connected(_)) {
                    tracing::warn!(error = %e, "lost the Docker daemon; reconnecting");
                    st.link = Link::Unavailable {
                        reason: format!("Docker is not available: {e}"),
                        since: crate::now_ms() - RECONNECT_EVERY_MS,
                    };
                }
                drop(st);
                r.lost(BackendKind::Docker, task, e.to_string());
            }
        }
    });
    let (dl, cid) = (d.clone(), cid.to_string());
    reporter.spawn(async move {
        if let Err(e) = dl.follow_logs(&cid, &sandbox).await {
            tracing::debug!(container = %cid, error = %e, "log follower stopped");
        }
    });
}

impl Backend for DockerBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    fn attach(&self, reporter: Reporter) {
        let _ = self.reporter.set(reporter);
    }

    fn unavailable(&self) -> Option<String> {
        match self.link() {
            Link::Connected(_) => None,
            Link::Unknown => Some("Docker: connecting to the daemon".into()),
            Link::Unavailable { reason, .. } => Some(reason),
        }
    }

    fn maintain(&self, now: i64) {
        let mut st = self.lock();
        if !self.opts.enabled {
            if matches!(st.link, Link::Unknown) {
                st.link = Link::Unavailable {
                    reason: "Docker is disabled (slipway up --docker off)".into(),
                    since: now,
                };
            }
            return;
        }
        let due = match &st.link {
            Link::Connected(_) => false,
            Link::Unknown => true,
            Link::Unavailable { since, .. } => now - since >= RECONNECT_EVERY_MS,
        };
        let Some(reporter) = self.reporter.get().cloned() else {
            return;
        };
        if !due || st.connecting {
            return;
        }
        st.connecting = true;
        drop(st);
        let cfg = docker::DockerConfig {
            agent_id: self.agent_id.clone(),
            publish_host: self.opts.publish_host.clone(),
            host: self.opts.host.clone(),
            log_max_bytes: self.log_max_bytes,
        };
        let state = self.state.clone();
        let r = reporter.clone();
        reporter.spawn(async move {
            let result = match docker::Docker::connect(cfg).await {
                Ok(d) => match d.list_tasks().await {
                    Ok(found) => Ok((d, found)),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            };
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            st.connecting = false;
            let result = match result {
                Ok((d, found)) => {
                    tracing::info!(api = %d.api_version(), containers = found.len(), "connected to Docker");
                    st.link = Link::Connected(d);
                    Ok(found
                        .into_iter()
                        .map(|f| Found {
                            task_id: f.task_id,
                            handle: Some(Handle::Id(f.container_id)),
                        })
                        .collect())
                }
                Err(reason) => {
                    if matches!(st.link, Link::Connected(_) | Link::Unknown) {
                        tracing::warn!(%reason, "Docker is not available; container apps wait for it");
                    }
                    st.link = Link::Unavailable {
                        reason: format!("Docker is not available: {reason}"),
                        since: crate::now_ms(),
                    };
                    Err(reason)
                }
            };
            drop(st);
            r.inventory(BackendKind::Docker, result);
        });
    }

    fn launch(&self, req: LaunchRequest) -> BoxFuture<'static, Result<Started, String>> {
        let link = self.link();
        let registry_config = self.opts.registry_config.clone();
        let reporter = self.reporter.get().cloned();
        let state = self.state.clone();
        Box::pin(async move {
            let d = match link {
                Link::Connected(d) => d,
                Link::Unavailable { reason, .. } => return Err(reason),
                Link::Unknown => return Err("Docker: still connecting to the daemon".into()),
            };
            tokio::fs::create_dir_all(&req.sandbox)
                .await
                .map_err(|e| format!("cannot create sandbox {}: {e}", req.sandbox.display()))?;
            launcher::fetch_all(&req.fetch, &req.sandbox)
                .await
                .map_err(|e| e.to_string())?;
            let mut spec = container_spec(&req)?;
            spec.registry_auth =
                registry_auth(&spec.image, &req.sandbox, registry_config.as_deref()).await;
            let started = d.launch(&spec).await.map_err(|e| match e {
                DockerError::Unreachable(r) => format!("Docker is not available: {r}"),
                other => other.to_string(),
            })?;
            if let Some(reporter) = &reporter {
                let sandbox = req.sandbox.clone();
                watch_container(
                    reporter,
                    &state,
                    &d,
                    &req.task_id,
                    &started.container_id,
                    sandbox,
                );
            }
            Ok(Started {
                handle: Handle::Id(started.container_id),
                ip: started.ip,
                limits_enforced: true,
            })
        })
    }

    fn watch(&self, task_id: &str, handle: &Handle, sandbox: &Path) -> bool {
        let (Some(d), Handle::Id(cid)) = (self.connected(), handle) else {
            return false;
        };
        self.watch_container(&d, task_id, cid, sandbox.to_path_buf());
        true
    }

    fn liveness(&self, _handle: &Handle) -> Liveness {
        // Containers are watched, or re-adopted from the inventory when the daemon is back.
        Liveness::Unknown
    }

    fn signal(&self, handle: &Handle, sig: Sig) {
        let (Some(d), Handle::Id(cid)) = (self.connected(), handle) else {
            return;
        };
        let cid = cid.clone();
        let signal = match sig {
            Sig::Term => "SIGTERM",
            Sig::Kill => "SIGKILL",
        };
        self.spawn(async move {
            if let Err(e) = d.signal(&cid, signal).await {
                tracing::warn!(container = %cid, signal, error = %e, "cannot signal container");
            }
        });
    }

    fn release(&self, _task_id: &str, handle: Option<&Handle>) {
        let (Some(d), Some(Handle::Id(cid))) = (self.connected(), handle) else {
            return;
        };
        let cid = cid.clone();
        self.spawn(async move {
            // Give the log follower a moment to drain the last lines.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = d.remove(&cid).await;
        });
    }

    fn remove_orphan(&self, found: &Found) {
        let (Some(d), Some(Handle::Id(cid))) = (self.connected(), &found.handle) else {
            return;
        };
        tracing::warn!(task = %found.task_id, container = %cid, "removing orphan container");
        let cid = cid.clone();
        self.spawn(async move {
            let _ = d.remove(&cid).await;
        });
    }

    fn address(
        &self,
        def: &AppDefinition,
        task: &TaskRecord,
        index: usize,
        host: &str,
    ) -> Option<(String, u16)> {
        container_address(def, &task.host_ports, task.ip.as_deref(), index, host)
    }
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

/// Builds the container spec for a launch request.
fn container_spec(req: &LaunchRequest) -> Result<ContainerSpec, String> {
    let def = &req.def;
    let c = def.container.as_ref().ok_or("not a container app")?;
    let d = c.docker.as_ref().ok_or("container.docker is missing")?;
    let network = match def.network_mode() {
        AppNetwork::Host => NetworkMode::Host,
        AppNetwork::Bridge => NetworkMode::Bridge,
        AppNetwork::Container(name) => NetworkMode::User(name.unwrap_or_else(|| "slipway".into())),
    };
    let mut host_ports = req.host_ports.iter();
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
                req.sandbox.join(hp)
            };
            Some(VolumeSpec {
                host_path,
                container_path: v.container_path.clone(),
                read_only: v.mode == "RO",
            })
        })
        .collect();
    Ok(ContainerSpec {
        task_id: req.task_id.clone(),
        app_id: def.id.to_string(),
        image: d.image.clone(),
        force_pull: d.force_pull_image,
        cmd: def.cmd.clone(),
        args: def.args.clone(),
        env: req.env.clone(),
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

/// Where port index `index` of a container task is reached: the published host port, else
/// the container's own address on its network (host networking: the host port).
pub(crate) fn container_address(
    def: &AppDefinition,
    host_ports: &[u16],
    ip: Option<&str>,
    index: usize,
    host: &str,
) -> Option<(String, u16)> {
    let Some(c) = def.container.as_ref() else {
        return host_ports.get(index).map(|p| (host.to_string(), *p));
    };
    if def.network_mode() == AppNetwork::Host {
        return host_ports.get(index).map(|p| (host.to_string(), *p));
    }
    let m = c.port_mappings.get(index)?;
    if m.host_port.is_some() {
        let slot = c.port_mappings[..index]
            .iter()
            .filter(|x| x.host_port.is_some())
            .count();
        return host_ports.get(slot).map(|p| (host.to_string(), *p));
    }
    Some((ip?.to_string(), u16::try_from(m.container_port).ok()?))
}
