//! Apps handed to another scheduler as a whole: a Docker Swarm, or another Marathon API
//! (a remote Slipway or a real Marathon). The engine does not place or launch their tasks;
//! it applies the app's definition to the scheduler, mirrors the tasks the scheduler
//! reports, checks their health itself and routes to them.
//!
//! The scheduler is the source of truth for what runs: nothing of its tasks is stored
//! locally, and a restarted engine reads them back on its first observation, so a restart
//! can never duplicate them.

use super::{Backend, BackendKind, Found, Handle, LaunchRequest, Sig, Started};
use crate::state::{TaskRecord, TaskState};
use futures_util::future::BoxFuture;
use launcher::Liveness;
use model::{AppDefinition, PathId, Timestamp};
use std::sync::Arc;

/// One task as a scheduler reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ObservedTask {
    /// Marathon-style task id, `<app safe name>.<scheduler's id>`.
    pub id: String,
    /// Its app.
    pub app_id: PathId,
    /// The app version it was started from.
    pub version: Timestamp,
    /// `versionInfo.lastConfigChangeAt` of that version.
    pub config_version: Timestamp,
    /// Its state in Marathon's terms.
    pub state: TaskState,
    /// The address of the node it runs on.
    pub host: String,
    /// Published ports on that node, index-aligned with the app's ports.
    pub host_ports: Vec<u16>,
    /// When it was created.
    pub staged_at: Timestamp,
    /// When it started running.
    pub started_at: Option<Timestamp>,
    /// What the scheduler says about it (why it failed, say).
    pub message: String,
    /// The scheduler is stopping it (it still runs, but is on its way out).
    pub stopping: bool,
}

/// A scheduler that runs whole apps.
pub trait Scheduler: Send + Sync + 'static {
    /// The target's name (`BB`).
    fn target(&self) -> &str;

    /// What kind of scheduler, for messages (`swarm`, `marathon`).
    fn kind(&self) -> &'static str;

    /// Makes the scheduler run `def` (creating, updating or scaling; nothing when it already
    /// runs exactly this). `env` is the environment the tasks get on top of the app's own.
    fn apply(
        &self,
        def: Arc<AppDefinition>,
        env: Vec<(String, String)>,
    ) -> BoxFuture<'static, Result<(), String>>;

    /// Stops and removes an app.
    fn remove(&self, app: PathId) -> BoxFuture<'static, Result<(), String>>;

    /// Every task of every app this installation runs there.
    fn observe(&self) -> BoxFuture<'static, Result<Vec<ObservedTask>, String>>;

    /// Whether [`Scheduler::kill`] can kill this task, as far as the scheduler knows without
    /// asking anyone: a refusal here reaches the API's caller before anything is changed.
    fn kill_check(&self, _task: &ObservedTask) -> Result<(), String> {
        Err(format!(
            "a {} target cannot kill a single task",
            self.kind()
        ))
    }

    /// Kills one task (the scheduler replaces it). Not every scheduler can.
    fn kill(&self, _task: &ObservedTask) -> BoxFuture<'static, Result<(), String>> {
        let kind = self.kind();
        Box::pin(async move { Err(format!("a {kind} target cannot kill a single task")) })
    }
}

/// The task-level face of scheduled tasks: they are never launched or signalled by the
/// engine, and they are reached at their node's address.
pub(crate) struct Mirrored;

impl Backend for Mirrored {
    fn kind(&self) -> BackendKind {
        BackendKind::Scheduled
    }

    fn attach(&self, _reporter: super::Reporter) {}

    fn launch(&self, req: LaunchRequest) -> BoxFuture<'static, Result<Started, String>> {
        Box::pin(async move {
            Err(format!(
                "task {} belongs to another scheduler; it is not launched here",
                req.task_id
            ))
        })
    }

    fn liveness(&self, _handle: &Handle) -> Liveness {
        // The scheduler's observations say when a task ends.
        Liveness::Unknown
    }

    fn signal(&self, _handle: &Handle, _sig: Sig) {}

    fn release(&self, _task_id: &str, _handle: Option<&Handle>) {}

    fn remove_orphan(&self, _found: &Found) {}

    fn address(
        &self,
        _def: &AppDefinition,
        task: &TaskRecord,
        index: usize,
        host: &str,
    ) -> Option<(String, u16)> {
        let node = task.host.as_deref().unwrap_or(host);
        task.host_ports
            .get(index)
            .filter(|p| **p != 0)
            .map(|p| (node.to_string(), *p))
    }
}
