//! Task backends: where tasks run and how the engine launches, watches, adopts, signals and
//! releases them.
//!
//! The reconcile loop decides *what* should run; a [`Backend`] carries it out for one kind
//! of task and reports back through [`Reporter`] messages. Every backend follows the same
//! contract, which is what lets the loop stay free of per-backend branches:
//!
//! - **Launch.** [`Backend::launch`] gets a backend-neutral [`LaunchRequest`] built under the
//!   state lock (the task record already stored) and runs outside it. Before user code
//!   runs, it hands the task's [`Handle`] to [`LaunchRequest::record`] where it can (the
//!   process backend must: its invariant is that no task runs unrecorded). Its result is a
//!   [`Started`], after which the backend has attached an exit watcher that reports
//!   [`Msg::Exited`](crate::Msg) once.
//! - **Watch.** After a restart a task has no watcher: the loop asks the backend to
//!   [`watch`](Backend::watch) it again where that is possible (containers), and otherwise
//!   polls [`liveness`](Backend::liveness) (processes, whose parent is gone).
//! - **Adopt.** [`inventory`](Backend::inventory) lists what runs for this installation. For
//!   backends behind a daemon it is called when the link comes up, and the loop adopts,
//!   forgets or declares lost each of its tasks from it ([`Msg::Inventory`](crate::Msg)).
//! - **Signal** and **release**: SIGTERM/SIGKILL to a task; after a task ended, clean up
//!   what is left of it (cgroups, containers).
//!
//! Implementations: [`process`] (local processes through the `launcher` crate), [`docker`]
//! (containers through the local daemon), and, in tests, `fake` (a scripted double of this
//! trait for deterministic reconcile tests).

pub mod docker;
#[cfg(test)]
pub(crate) mod fake;
pub mod marathon;
pub mod process;
pub mod scheduled;
pub mod swarm;

use crate::Msg;
use crate::state::TaskRecord;
use futures_util::future::BoxFuture;
use launcher::{FetchSpec, Liveness, ProcIdentity, RunAs};
use model::AppDefinition;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Which backend a task runs on.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// A local process in its own session and cgroup.
    #[default]
    Process,
    /// A container of the local Docker daemon.
    Docker,
    /// A task of another scheduler (a Swarm, a remote Marathon API) that runs the whole
    /// app; the engine mirrors it ([`scheduled`]).
    Scheduled,
}

impl BackendKind {
    /// The backend an app's tasks run on.
    pub fn of(def: &AppDefinition) -> BackendKind {
        if def.container.is_some() {
            BackendKind::Docker
        } else {
            BackendKind::Process
        }
    }

    /// Lower-case name, as in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Process => "process",
            BackendKind::Docker => "docker",
            BackendKind::Scheduled => "scheduled",
        }
    }
}

/// How a backend finds a started task again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handle {
    /// A process group leader: pid plus start time, so a reused pid is never mistaken
    /// for the task.
    Process(ProcIdentity),
    /// An id the backend gave the task (a container id).
    Id(String),
}

impl Handle {
    /// The handle a task record holds, if its task has started (or been recorded).
    pub(crate) fn of(t: &TaskRecord) -> Option<Handle> {
        match (t.proc, &t.container) {
            (Some(p), _) => Some(Handle::Process(p)),
            (None, Some(id)) => Some(Handle::Id(id.clone())),
            (None, None) => None,
        }
    }

    /// Stores the handle in a task record.
    pub(crate) fn store_in(&self, t: &mut TaskRecord) {
        match self {
            Handle::Process(p) => t.proc = Some(*p),
            Handle::Id(id) => t.container = Some(id.clone()),
        }
    }
}

/// Signals the engine sends to tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sig {
    /// Polite stop.
    Term,
    /// Forced stop after the grace period.
    Kill,
}

/// A task that has started.
#[derive(Clone, Debug, PartialEq)]
pub struct Started {
    /// How to find it again.
    pub handle: Handle,
    /// Its own address on a network of its backend (containers on bridge or user networks).
    pub ip: Option<String>,
    /// cpu/mem limits are enforced.
    pub limits_enforced: bool,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit status, when known (0: finished).
    pub code: Option<i64>,
    /// Mesos-style message, e.g. `Command exited with status 1`.
    pub message: String,
}

impl Exit {
    /// It exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A task a backend found running (or stopped but still present) for this installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its task id.
    pub task_id: String,
    /// Its handle, when the backend can tell (a task cgroup alone names no process).
    pub handle: Option<Handle>,
}

/// Persists a task's handle before its user code runs; an `Err` aborts the launch.
pub type Record = Box<dyn FnOnce(Handle) -> Result<(), String> + Send>;

/// Everything a backend needs to launch one task: built by the engine under the state
/// lock, used by the backend outside it.
pub struct LaunchRequest {
    /// The app definition of the task's version.
    pub def: Arc<AppDefinition>,
    /// Task id.
    pub task_id: String,
    /// Sandbox directory (logs, fetched files).
    pub sandbox: PathBuf,
    /// Host ports, index-aligned with the app's ports (fixed and dynamic ones resolved).
    pub host_ports: Vec<u16>,
    /// The task's environment (Marathon's variables, then the app's, then secrets).
    pub env: Vec<(String, String)>,
    /// Artifacts to fetch into the sandbox first.
    pub fetch: Vec<FetchSpec>,
    /// Whose privileges a process task runs with.
    pub run_as: RunAs,
    /// Stores the task's handle durably (see [`Record`]).
    pub record: Record,
}

/// Channel from backends' background work to the reconcile loop.
#[derive(Clone)]
pub struct Reporter {
    pub(crate) tx: mpsc::UnboundedSender<Msg>,
    pub(crate) tracker: tokio_util::task::TaskTracker,
}

impl Reporter {
    /// A task ended.
    pub fn exited(&self, task_id: String, handle: Handle, exit: Exit) {
        let _ = self.tx.send(Msg::Exited {
            task_id,
            handle,
            exit,
        });
    }

    /// The watcher of a task lost its backend (a daemon went away); the task is unwatched
    /// until the backend is back.
    pub fn lost(&self, kind: BackendKind, task_id: String, reason: String) {
        let _ = self.tx.send(Msg::Lost {
            kind,
            task_id,
            reason,
        });
    }

    /// What a backend found running, or why it cannot look.
    pub fn inventory(&self, kind: BackendKind, result: Result<Vec<Found>, String>) {
        let _ = self.tx.send(Msg::Inventory { kind, result });
    }

    /// Runs background work that the engine waits for (briefly) at shutdown.
    pub fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(fut);
    }
}

/// A place tasks run. See the module documentation for the contract.
pub trait Backend: Send + Sync + 'static {
    /// Which one it is.
    fn kind(&self) -> BackendKind;

    /// Connects the backend to the engine's loop; called once, before anything else.
    fn attach(&self, reporter: Reporter);

    /// Why tasks cannot launch right now, if they cannot (a daemon that is not reachable).
    fn unavailable(&self) -> Option<String> {
        None
    }

    /// Called on every reconcile pass: (re)connects to a daemon when due. A backend that
    /// connects reports its inventory ([`Reporter::inventory`]).
    fn maintain(&self, _now_ms: i64) {}

    /// Launches a task. On success the task runs and an exit watcher is attached that
    /// reports its end once ([`Reporter::exited`]).
    fn launch(&self, req: LaunchRequest) -> BoxFuture<'static, Result<Started, String>>;

    /// Attaches an exit watcher to a task that has none (adopted after a restart). Returns
    /// false when this backend cannot watch (the loop polls [`liveness`](Self::liveness)).
    fn watch(&self, _task_id: &str, _handle: &Handle, _sandbox: &std::path::Path) -> bool {
        false
    }

    /// Whether an unwatched task still runs. Never `Gone` when it cannot tell.
    fn liveness(&self, handle: &Handle) -> Liveness;

    /// Sends a signal to a task (in the background where that is slow).
    fn signal(&self, handle: &Handle, sig: Sig);

    /// Cleans up after a task that ended (its cgroup, its container). Called off the
    /// reconcile loop; may block briefly.
    fn release(&self, task_id: &str, handle: Option<&Handle>);

    /// What runs for this installation, found by a blocking scan (processes: task cgroups).
    /// `None` for backends that report their inventory when they connect.
    fn scan(&self) -> Option<Vec<Found>> {
        None
    }

    /// Removes what runs for a task that no record owns. Called off the reconcile loop.
    fn remove_orphan(&self, found: &Found);

    /// Where port index `index` of a task is reached from this host, for health checks
    /// and the proxy's routes: by default the task's host port on the engine's host.
    fn address(
        &self,
        def: &AppDefinition,
        task: &TaskRecord,
        index: usize,
        host: &str,
    ) -> Option<(String, u16)> {
        let _ = def;
        task.host_ports.get(index).map(|p| (host.to_string(), *p))
    }
}
