//! The Slipway engine: desired state, deployments, health checks, backoff and the task
//! backend for local processes.
//!
//! [`Engine`] is a cheap handle. API handlers call its operations (create, update, scale,
//! delete, kill, cancel), which validate, write the store, update the in-memory state, emit
//! events and wake the reconcile loop. [`Engine::run`] is the reconcile loop: on every tick
//! it plans each app with the pure [`planner`], launches and kills tasks, runs due health
//! checks, and advances deployments. Nothing here speaks HTTP.

pub mod backend;
mod events;
mod launch;
mod ops;
pub mod planner;
mod ports;
mod query;
mod reconcile;
mod recover;
mod routes;
mod scheduled;
pub mod state;

pub use backend::docker::DockerOptions;
pub use events::{Event, EventBus, ExternalEvent, Published, TaskStatus};
pub use launcher::{CgroupSupport, LogChunk, LogStream};
pub use ops::{
    Admission, AppUpdate, DefineFn, DeploymentResult, KillResult, KilledTask, ProposedChange,
    Refusal, Unchecked, Updated,
};
pub use query::{AppPhase, AppStatus, Counts, CrashLoop, Host};
pub use scheduled::Placement;

use model::{DefinitionError, PathId, Timestamp};
use state::State;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use store::{Store, StoreError};
use tokio::sync::{Notify, mpsc};

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Data directory (sandboxes live under `sandboxes/`).
    pub data_dir: PathBuf,
    /// Address tasks are reachable at, reported as the task `host` and `HOST`.
    pub host: String,
    /// Host ports handed to tasks.
    pub host_ports: RangeInclusive<u16>,
    /// Service ports assigned to apps that ask for port 0.
    pub service_ports: RangeInclusive<u16>,
    /// Per-stream log size before rotation.
    pub log_max_bytes: u64,
    /// Reconcile period.
    pub tick: Duration,
    /// Kill all tasks when the server shuts down (default: tasks outlive the server).
    pub kill_tasks_on_shutdown: bool,
    /// Docker backend settings.
    pub docker: DockerOptions,
    /// Whose privileges process tasks run with (apps that name a `user` get that one).
    pub task_identity: TaskIdentity,
}

/// Whose privileges process tasks run with when their app names no `user`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskIdentity {
    /// The server's own user (a server that is not root can do no other; its tasks can
    /// then reach everything the server can).
    Server,
    /// Every task as this account (Marathon's `--mesos_user`).
    User(String),
    /// Each app a uid of its own from `uids`, with the primary group `gid` (of the task
    /// user): apps cannot read each other's sandboxes or `/proc` entries, nor signal each
    /// other, and none can reach the server's data.
    PerApp {
        /// The uids handed out, one per app, never reused.
        uids: RangeInclusive<u32>,
        /// The group every task runs with.
        gid: u32,
    },
}

impl EngineConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: PathBuf) -> Self {
        EngineConfig {
            data_dir,
            host: "127.0.0.1".into(),
            host_ports: 31000..=32000,
            service_ports: 10000..=20000,
            log_max_bytes: 10 * 1024 * 1024,
            tick: Duration::from_millis(250),
            kill_tasks_on_shutdown: false,
            docker: DockerOptions::default(),
            task_identity: TaskIdentity::Server,
        }
    }
}

/// Errors of engine operations, each mapping to one Marathon status code.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// 404 with Marathon's message.
    #[error("{0}")]
    NotFound(String),
    /// 409: the app is locked by deployments.
    #[error("app is locked by deployments {deployments:?}")]
    Locked {
        /// Ids of the locking deployments.
        deployments: Vec<String>,
    },
    /// 409: POST of an existing app.
    #[error("an app with id [{0}] already exists")]
    AlreadyExists(PathId),
    /// 400/422: the definition is invalid.
    #[error(transparent)]
    Definition(#[from] DefinitionError),
    /// 400 with a message.
    #[error("{0}")]
    BadRequest(String),
    /// 403: the caller's [`Admission`] refused the change.
    #[error("{0}")]
    Forbidden(String),
    /// 409: the change clashes with what another app holds.
    #[error("{0}")]
    Conflict(String),
    /// 422: the change exceeds a limit.
    #[error("{0}")]
    Limit(String),
    /// 500: the store failed; nothing was acknowledged.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// One started task as the metrics collector sees it ([`Engine::metric_targets`]).
#[derive(Clone, Debug)]
pub struct MetricTarget {
    /// Task id.
    pub task_id: String,
    /// Its app.
    pub app_id: PathId,
    /// The configuration version it runs (`versionInfo.lastConfigChangeAt`).
    pub version: Timestamp,
    /// `TASK_RUNNING`, `TASK_KILLING`, ...
    pub state: &'static str,
    /// The app's labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The container image, for container tasks.
    pub image: Option<String>,
    /// A process task's cgroup, relative to each hierarchy's mount point.
    pub cgroup: Option<String>,
    /// A container task's container id.
    pub container_id: Option<String>,
    /// A process task's leader pid.
    pub pid: Option<i32>,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// The app's `cpus` (for utilisation).
    pub cpus: f64,
    /// The app's `mem` in MiB.
    pub mem_mib: f64,
}

/// Looks up secret values for task environments (`env: {"X": {"secret": "ref"}}` with
/// `secrets: {"ref": {"source": "name"}}`). Implemented by the server over its sealed store.
pub trait SecretResolver: Send + Sync {
    /// The value of the named secret, or why it is not available.
    fn resolve(&self, name: &str) -> Result<String, String>;
}

/// The edge proxy as the engine sees it: before a running task gets SIGTERM, the engine
/// waits until the proxy no longer routes to it and has nothing in flight on it.
pub trait TrafficGate: Send + Sync {
    /// True when no route leads to the task and none of its requests is in flight.
    fn drained(&self, task_id: &str) -> bool;
}

/// The engine's sense of time: the wall clock, or in tests a clock they move.
pub trait Clock: Send + Sync {
    /// Milliseconds since the epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        Timestamp::now().millis()
    }
}

/// Messages from background jobs (launches, watchers, probes, backends) to the reconcile
/// loop.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A launch finished, started or not.
    Launched {
        kind: backend::BackendKind,
        task_id: String,
        result: Result<backend::Started, String>,
    },
    /// A task's watcher saw it end.
    Exited {
        task_id: String,
        handle: backend::Handle,
        exit: backend::Exit,
    },
    /// A task's watcher lost its backend; the task is unwatched until it is back.
    Lost {
        kind: backend::BackendKind,
        task_id: String,
        reason: String,
    },
    /// What a backend found running when it (re)connected.
    Inventory {
        kind: backend::BackendKind,
        result: Result<Vec<backend::Found>, String>,
    },
    /// An apply of an app to its scheduler finished.
    Applied {
        app: PathId,
        version: Timestamp,
        result: Result<(), String>,
    },
    /// A removal of an app from its scheduler finished.
    Removed {
        app: PathId,
        result: Result<(), String>,
    },
    /// A scheduler reported its tasks.
    Observed {
        target: String,
        result: Result<Vec<backend::scheduled::ObservedTask>, String>,
    },
    /// A health probe finished.
    Probe {
        task_id: String,
        index: usize,
        outcome: health::ProbeOutcome,
    },
}

pub(crate) struct Inner {
    pub(crate) cfg: EngineConfig,
    pub(crate) store: Arc<Store>,
    pub(crate) state: Mutex<State>,
    pub(crate) events: EventBus,
    pub(crate) launcher: launcher::Launcher,
    pub(crate) backends: Vec<Arc<dyn backend::Backend>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) agent_id: String,
    pub(crate) slave_id: String,
    pub(crate) wake: Notify,
    pub(crate) tx: mpsc::UnboundedSender<Msg>,
    pub(crate) rx: Mutex<Option<mpsc::UnboundedReceiver<Msg>>>,
    pub(crate) port_cursor: Mutex<u16>,
    pub(crate) tracker: tokio_util::task::TaskTracker,
    /// When the next health probe falls due (ms), for precise wake-ups.
    pub(crate) next_probe: Mutex<Option<i64>>,
    pub(crate) secrets: Option<Arc<dyn SecretResolver>>,
    pub(crate) gate: Option<Arc<dyn TrafficGate>>,
    pub(crate) schedulers: Vec<Arc<dyn backend::scheduled::Scheduler>>,
    pub(crate) placement: Option<Placement>,
    pub(crate) sched: Mutex<scheduled::Bookkeeping>,
    pub(crate) targets: Vec<TargetInfo>,
}

/// A named target as users see it (`GET /api/v1/targets`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TargetInfo {
    /// Its name, the first segment of its apps' ids.
    pub name: String,
    /// `local`, `swarm` or `marathon`.
    pub kind: String,
    /// Where it is (a Docker host, a URL), when not this server.
    pub address: Option<String>,
    /// Apps whose id names no target run here.
    pub default: bool,
}

/// Builds an [`Engine`]: settings, the store, and what the engine talks to (secret store,
/// edge proxy, backends, clock) are all given before it opens, so nothing runs half-wired.
pub struct EngineBuilder {
    cfg: EngineConfig,
    store: Arc<Store>,
    secrets: Option<Arc<dyn SecretResolver>>,
    gate: Option<Arc<dyn TrafficGate>>,
    backends: Vec<Arc<dyn backend::Backend>>,
    clock: Arc<dyn Clock>,
    schedulers: Vec<Arc<dyn backend::scheduled::Scheduler>>,
    placement: Option<Placement>,
    targets: Vec<TargetInfo>,
}

impl EngineBuilder {
    /// The named targets, as shown to users.
    pub fn targets(mut self, t: Vec<TargetInfo>) -> Self {
        self.targets = t;
        self
    }

    /// A scheduler that runs whole apps of its target (a Swarm, a remote Marathon API).
    pub fn scheduler(mut self, s: Arc<dyn backend::scheduled::Scheduler>) -> Self {
        self.schedulers.retain(|x| x.target() != s.target());
        self.schedulers.push(s);
        self
    }

    /// Which target each app belongs to (apps without one run on this engine).
    pub fn placement(mut self, p: Placement) -> Self {
        self.placement = Some(p);
        self
    }

    /// The secret store for `{"secret": ...}` environment values.
    pub fn secrets(mut self, r: Arc<dyn SecretResolver>) -> Self {
        self.secrets = Some(r);
        self
    }

    /// The edge proxy's drain check: running tasks are drained before SIGTERM.
    pub fn traffic_gate(mut self, g: Arc<dyn TrafficGate>) -> Self {
        self.gate = Some(g);
        self
    }

    /// Replaces the backend of its kind (by default: processes through the launcher and
    /// containers through the local Docker daemon).
    pub fn backend(mut self, b: Arc<dyn backend::Backend>) -> Self {
        self.backends.retain(|x| x.kind() != b.kind());
        self.backends.push(b);
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, c: Arc<dyn Clock>) -> Self {
        self.clock = c;
        self
    }

    /// Opens the engine: loads state, re-adopts running tasks, kills orphans.
    pub fn open(self) -> Result<Engine, EngineError> {
        Engine::open_with(self)
    }
}

/// Handle to the engine; clones share one engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl Engine {
    /// Opens the engine on a store with the default backends and no secret store or
    /// proxy: loads state, re-adopts running tasks, kills orphans.
    pub fn open(cfg: EngineConfig, store: Arc<Store>) -> Result<Engine, EngineError> {
        Engine::builder(cfg, store).open()
    }

    /// A builder for an engine on `store`.
    pub fn builder(cfg: EngineConfig, store: Arc<Store>) -> EngineBuilder {
        EngineBuilder {
            cfg,
            store,
            secrets: None,
            gate: None,
            backends: Vec::new(),
            clock: Arc::new(SystemClock),
            schedulers: Vec::new(),
            placement: None,
            targets: Vec::new(),
        }
    }

    fn open_with(b: EngineBuilder) -> Result<Engine, EngineError> {
        let EngineBuilder {
            cfg,
            store,
            secrets,
            gate,
            mut backends,
            clock,
            schedulers,
            placement,
            targets,
        } = b;
        let agent_id = agent_id(&store)?;
        let launcher = launcher::Launcher::new(launcher::LauncherConfig {
            agent_id: agent_id.clone(),
            // One subtree per installation: its task cgroups are its tasks, and nothing
            // another server (or a test beside it) runs is ever mistaken for an orphan.
            cgroup_parent: format!("slipway/{agent_id}"),
            log_max_bytes: cfg.log_max_bytes,
        });
        for kind in [
            backend::BackendKind::Process,
            backend::BackendKind::Docker,
            backend::BackendKind::Scheduled,
        ] {
            if backends.iter().any(|b| b.kind() == kind) {
                continue;
            }
            let b: Arc<dyn backend::Backend> = match kind {
                backend::BackendKind::Process => {
                    Arc::new(backend::process::ProcessBackend::new(launcher.clone()))
                }
                backend::BackendKind::Docker => Arc::new(backend::docker::DockerBackend::new(
                    cfg.docker.clone(),
                    agent_id.clone(),
                    cfg.log_max_bytes,
                )),
                backend::BackendKind::Scheduled => Arc::new(backend::scheduled::Mirrored),
            };
            backends.push(b);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let tracker = tokio_util::task::TaskTracker::new();
        for b in &backends {
            b.attach(backend::Reporter {
                tx: tx.clone(),
                tracker: tracker.clone(),
            });
        }
        let start = *cfg.host_ports.start();
        let engine = Engine {
            inner: Arc::new(Inner {
                slave_id: format!("{agent_id}-S0"),
                agent_id,
                cfg,
                store,
                state: Mutex::new(State::default()),
                events: EventBus::default(),
                launcher,
                backends,
                clock,
                wake: Notify::new(),
                tx,
                rx: Mutex::new(Some(rx)),
                port_cursor: Mutex::new(start),
                tracker,
                next_probe: Mutex::new(None),
                secrets,
                gate,
                schedulers,
                placement,
                sched: Mutex::new(Default::default()),
                targets,
            }),
        };
        engine.recover()?;
        Ok(engine)
    }

    /// The backend of a kind (every kind has one).
    pub(crate) fn backend(&self, kind: backend::BackendKind) -> &Arc<dyn backend::Backend> {
        self.inner
            .backends
            .iter()
            .find(|b| b.kind() == kind)
            .unwrap_or(&self.inner.backends[0])
    }

    /// Now, by the engine's clock (ms).
    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Locks the state. Never held across an await.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent-enough data (every mutation is
        // persisted first); keep serving rather than poisoning the whole server.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn traffic_gate(&self) -> Option<&Arc<dyn TrafficGate>> {
        self.inner.gate.as_ref()
    }

    /// The named targets.
    pub fn targets(&self) -> &[TargetInfo] {
        &self.inner.targets
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Settings.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.cfg
    }

    /// Stable id of this installation (Marathon `frameworkId`).
    pub fn agent_id(&self) -> &str {
        &self.inner.agent_id
    }

    /// Host context for task views.
    pub fn host(&self) -> Host<'_> {
        Host {
            host: &self.inner.cfg.host,
            slave_id: &self.inner.slave_id,
        }
    }

    /// Whether cpu/mem limits can be enforced, and why not.
    pub fn cgroup_support(&self) -> &CgroupSupport {
        self.inner.launcher.cgroup_support()
    }

    /// Wakes the reconcile loop.
    pub(crate) fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Runs `f` with read access to the state, for rendering views.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.lock())
    }

    /// Stored versions of an app, newest first; `None` when the app does not exist.
    pub fn versions(&self, id: &PathId) -> Result<Option<Vec<Timestamp>>, EngineError> {
        if !self.lock().apps.contains_key(id) {
            return Ok(None);
        }
        Ok(Some(self.inner.store.app_versions(id)?))
    }

    /// What the metrics collector needs to know of every started task: where its cgroup
    /// is, a process of it (for its network namespace), and what to label it with.
    pub fn metric_targets(&self) -> Vec<MetricTarget> {
        let parent = self.inner.launcher.config().cgroup_parent.clone();
        let st = self.lock();
        st.tasks
            .values()
            .filter(|t| t.proc.is_some() || t.container.is_some())
            .map(|t| {
                let def = st.apps.get(&t.app_id).map(|a| &a.def);
                MetricTarget {
                    task_id: t.id.clone(),
                    app_id: t.app_id.clone(),
                    version: t.config_version,
                    state: t.reported_state().as_str(),
                    labels: def.map(|d| d.labels.clone()).unwrap_or_default(),
                    image: def
                        .and_then(|d| d.container.as_ref())
                        .and_then(|c| c.docker.as_ref())
                        .map(|d| d.image.clone()),
                    cgroup: t.proc.is_some().then(|| format!("{parent}/{}", t.id)),
                    container_id: t.container.clone(),
                    pid: t.proc.map(|p| p.pid),
                    started_at: t.started_at,
                    cpus: def.map_or(0.0, |d| d.cpus),
                    mem_mib: def.map_or(0.0, |d| d.mem),
                }
            })
            .collect()
    }

    /// The app of a running or recently terminated task.
    pub fn task_owner(&self, task_id: &str) -> Option<PathId> {
        let st = self.lock();
        st.tasks.get(task_id).map(|t| t.app_id.clone()).or_else(|| {
            st.apps
                .iter()
                .find(|(_, a)| a.rt.terminated.iter().any(|t| t.id == task_id))
                .map(|(id, _)| id.clone())
        })
    }

    /// Reads a task's log (running or recently terminated). `None` when the task is unknown.
    pub fn task_log(
        &self,
        task_id: &str,
        stream: LogStream,
        offset: Option<u64>,
        limit: u64,
    ) -> Option<std::io::Result<LogChunk>> {
        let sandbox = {
            let st = self.lock();
            st.tasks
                .get(task_id)
                .map(|t| t.sandbox.clone())
                .or_else(|| {
                    st.apps.values().find_map(|a| {
                        a.rt.terminated
                            .iter()
                            .find(|t| t.id == task_id)
                            .map(|t| t.sandbox.clone())
                    })
                })
        }?;
        Some(launcher::Launcher::read_log(
            &sandbox, stream, offset, limit,
        ))
    }
}

/// The stable id of the installation whose store this is, made on first use.
pub fn agent_id(store: &Store) -> Result<String, EngineError> {
    match store.meta("agent_id")? {
        Some(id) => Ok(id),
        None => {
            let id = uuid::Uuid::new_v4().to_string();
            store.write(|tx| tx.set_meta("agent_id", &id))?;
            Ok(id)
        }
    }
}

/// `(uid, gid)` of an account from the user database (blocking), as tasks are run with.
pub fn account_ids(name: &str) -> Option<(u32, u32)> {
    launcher::Launcher::ids_of(&launcher::RunAs::User(name.to_owned()))
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    Timestamp::now().millis()
}

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;
