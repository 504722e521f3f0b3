//! In-memory engine state and the records persisted for it.
//!
//! Every record here is written through to the store before the change it describes is
//! acted upon or acknowledged, so a restarted engine rebuilds exactly this state.

use health::HealthState;
use launcher::ProcIdentity;
use model::{AppDefinition, PathId, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

/// How many terminated tasks per app keep their sandbox (and so their logs).
pub const KEEP_TERMINATED: usize = 5;

/// Marathon task states that Slipway reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Accepted, being fetched and started.
    TaskStaging,
    /// The process runs.
    TaskRunning,
    /// A kill was requested and the process has not exited yet.
    TaskKilling,
    /// Killed on request.
    TaskKilled,
    /// Exited with a non-zero status or a signal nobody asked for.
    TaskFailed,
    /// Exited with status 0.
    TaskFinished,
    /// Vanished without an observed exit (for example while Slipway was down).
    TaskLost,
}

impl TaskState {
    /// The wire name, e.g. `TASK_RUNNING`.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::TaskStaging => "TASK_STAGING",
            TaskState::TaskRunning => "TASK_RUNNING",
            TaskState::TaskKilling => "TASK_KILLING",
            TaskState::TaskKilled => "TASK_KILLED",
            TaskState::TaskFailed => "TASK_FAILED",
            TaskState::TaskFinished => "TASK_FINISHED",
            TaskState::TaskLost => "TASK_LOST",
        }
    }

    /// Marathon 1.5+ instance condition name for `instance_changed_event`.
    pub fn condition(self) -> &'static str {
        match self {
            TaskState::TaskStaging => "Staging",
            TaskState::TaskRunning => "Running",
            TaskState::TaskKilling => "Killing",
            TaskState::TaskKilled => "Killed",
            TaskState::TaskFailed => "Failed",
            TaskState::TaskFinished => "Finished",
            TaskState::TaskLost => "Unreachable",
        }
    }
}

/// Why a task is being killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KillKind {
    /// Scale-down by the planner.
    ScaleDown,
    /// Replaced by a new version.
    Upgrade,
    /// Failed its health checks (counts as a failure for backoff).
    Unhealthy,
    /// Killed through the API.
    Api,
    /// Its app was deleted.
    AppDeleted,
    /// Server shutdown with `--kill-tasks-on-shutdown`.
    Shutdown,
}

/// A kill in progress: SIGTERM has been sent, SIGKILL follows at `sigkill_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KillOrder {
    /// What asked for the kill.
    pub kind: KillKind,
    /// Human-readable reason, recorded in events and failures.
    pub reason: String,
    /// When the kill was requested (ms).
    pub requested_at: i64,
    /// While the edge proxy drains the task: SIGTERM follows once it has no requests in
    /// flight, at the latest at this time (ms). `None`: no drain.
    #[serde(default)]
    pub drain_until: Option<i64>,
    /// SIGTERM has been sent.
    #[serde(default = "sent")]
    pub sigterm_sent: bool,
    /// When SIGKILL is due (ms).
    pub sigkill_at: i64,
    /// SIGKILL has been sent.
    pub sigkill_sent: bool,
}

/// Kill orders written before draining existed had sent SIGTERM at once.
fn sent() -> bool {
    true
}

/// One task the engine has launched and not yet forgotten.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// Marathon legacy task id `<app_safe_name>.<uuid>`.
    pub id: String,
    /// Owning app.
    pub app_id: PathId,
    /// App version the task was launched from.
    pub version: Timestamp,
    /// `versionInfo.lastConfigChangeAt` of that version: tasks with the app's current value
    /// run the current configuration.
    pub config_version: Timestamp,
    /// Current state.
    pub state: TaskState,
    /// When the task was accepted.
    pub staged_at: Timestamp,
    /// When the process started.
    pub started_at: Option<Timestamp>,
    /// Host ports, index-aligned with the app's ports.
    pub host_ports: Vec<u16>,
    /// Service ports at launch.
    pub service_ports: Vec<u32>,
    /// The process, once started.
    pub proc: Option<ProcIdentity>,
    /// Sandbox directory.
    pub sandbox: PathBuf,
    /// Kill in progress.
    pub kill: Option<KillOrder>,
    /// Health per health check of the app (index-aligned).
    #[serde(default)]
    pub health: Vec<HealthState>,
    /// cpu/mem limits are enforced by cgroups.
    #[serde(default)]
    pub limits_enforced: bool,
    /// Start time of the last probe per check (not persisted; probes restart after a restart).
    #[serde(skip)]
    pub last_probe: Vec<Option<i64>>,
    /// A probe is in flight per check.
    #[serde(skip)]
    pub probing: Vec<bool>,
    /// An exit watcher is attached (a child handle, or a Docker wait): no polling needed.
    #[serde(skip)]
    pub watched: bool,
    /// A launch job of this server process is still working on the task (not persisted:
    /// after a restart no launch is in flight).
    #[serde(skip)]
    pub launching: bool,
    /// The backend the task runs on.
    #[serde(default)]
    pub backend: crate::backend::BackendKind,
    /// Written by versions before backends had names: launched as a Docker container
    /// (read once at recovery into `backend`).
    #[serde(default, skip_serializing)]
    pub docker: bool,
    /// The backend's id of the task (a container id), once created.
    #[serde(default)]
    pub container: Option<String>,
    /// Container IP on its network, if any.
    #[serde(default)]
    pub ip: Option<String>,
    /// The uid and gid the task runs with (`None`: the server's own, or a container); its
    /// COMMAND health checks run with them too.
    #[serde(default)]
    pub run_as: Option<(u32, u32)>,
    /// The node it runs on, when not this host (tasks of another scheduler).
    #[serde(default)]
    pub host: Option<String>,
    /// The named target whose scheduler runs it (`None`: this engine).
    #[serde(default)]
    pub target: Option<String>,
}

impl TaskRecord {
    /// The state as reported: killing overrides running.
    pub fn reported_state(&self) -> TaskState {
        if self.kill.is_some() {
            TaskState::TaskKilling
        } else {
            self.state
        }
    }

    /// Health across all checks (Unknown when there are none).
    pub fn health(&self) -> health::TaskHealth {
        health::task_health(&self.health)
    }
}

/// Marathon's `lastTaskFailure`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailure {
    /// App id.
    pub app_id: PathId,
    /// Host of the task.
    pub host: String,
    /// What happened.
    pub message: String,
    /// Terminal state name.
    pub state: String,
    /// Task id.
    pub task_id: String,
    /// When it happened.
    pub timestamp: Timestamp,
    /// App version of the task.
    pub version: Timestamp,
    /// Agent id.
    pub slave_id: String,
}

/// A task that has ended; its sandbox is kept for log reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerminatedTask {
    /// Task id.
    pub id: String,
    /// Final state.
    pub state: TaskState,
    /// When it ended (ms).
    pub at: i64,
    /// Sandbox directory.
    pub sandbox: PathBuf,
    /// Why it ended.
    pub message: String,
}

/// Per-app runtime state: launch backoff and failure history.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppRuntime {
    /// Current backoff delay in seconds (0 = no failure yet).
    pub delay_seconds: f64,
    /// No launch before this time (ms).
    pub launch_not_before: i64,
    /// The last task failure.
    pub last_task_failure: Option<TaskFailure>,
    /// Recently terminated tasks, newest last.
    pub terminated: VecDeque<TerminatedTask>,
    /// Since when the app has been waiting for launches (ms), for `/v2/queue`.
    #[serde(default)]
    pub waiting_since: Option<i64>,
    /// The uid of the app's own that its process tasks run as (per-app task identities),
    /// allocated once and never given to another app.
    #[serde(default)]
    pub task_uid: Option<u32>,
}

impl AppRuntime {
    /// Records a failed launch or a failed task: the delay grows by `backoffFactor`, capped at
    /// `maxLaunchDelaySeconds`, and starts over when the app has been quiet for longer than
    /// the delay plus `maxLaunchDelaySeconds` (Marathon's reset rule).
    pub fn record_failure(&mut self, def: &AppDefinition, now_ms: i64) {
        let quiet_for = now_ms - self.launch_not_before;
        let reset_after = (def.max_launch_delay_seconds * 1000.0) as i64;
        self.delay_seconds = if self.delay_seconds <= 0.0 || quiet_for > reset_after {
            def.backoff_seconds
        } else {
            (self.delay_seconds * def.backoff_factor).min(def.max_launch_delay_seconds)
        };
        self.launch_not_before = now_ms + (self.delay_seconds * 1000.0) as i64;
    }

    /// Forgets the backoff (new version deployed, or `DELETE /v2/queue/{id}/delay`).
    pub fn reset_delay(&mut self) {
        self.delay_seconds = 0.0;
        self.launch_not_before = 0;
    }

    /// Remaining launch delay in ms.
    pub fn delay_left_ms(&self, now_ms: i64) -> i64 {
        (self.launch_not_before - now_ms).max(0)
    }
}

/// An app and its runtime state.
#[derive(Clone, Debug)]
pub struct AppEntry {
    /// Current definition.
    pub def: AppDefinition,
    /// Runtime state.
    pub rt: AppRuntime,
    /// The definition serialised once per change, spliced into listings.
    pub json: std::sync::Arc<str>,
}

impl AppEntry {
    /// An entry for a definition.
    pub fn new(def: AppDefinition, rt: AppRuntime) -> Self {
        let json = def_json(&def);
        AppEntry { def, rt, json }
    }

    /// Replaces the definition (and its cached JSON).
    pub fn set_def(&mut self, def: AppDefinition) {
        self.json = def_json(&def);
        self.def = def;
    }
}

fn def_json(def: &AppDefinition) -> std::sync::Arc<str> {
    // Serialising our own plain data cannot fail.
    std::sync::Arc::from(serde_json::to_string(def).unwrap_or_else(|_| "{}".into()))
}

/// Marathon deployment action names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActionKind {
    /// A new app (with 0 instances).
    StartApplication,
    /// App deletion.
    StopApplication,
    /// Instance count change.
    ScaleApplication,
    /// Rolling replacement of tasks.
    RestartApplication,
}

/// One action of a deployment step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// What to do.
    pub action: ActionKind,
    /// To which app.
    pub app: PathId,
}

/// Final state of a deployment in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// All steps completed.
    Success,
    /// Superseded, cancelled or rolled back.
    Failed,
}

/// A deployment plan and its progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Plan id (uuid).
    pub id: String,
    /// Version of the target state.
    pub version: Timestamp,
    /// Creation time (ms).
    pub created_at: i64,
    /// Steps; actions within a step run together.
    pub steps: Vec<Vec<Action>>,
    /// Index of the step in progress.
    pub current_step: usize,
    /// Definitions before the change (for rollback and heavy events).
    pub original: Vec<AppDefinition>,
    /// Definitions after the change.
    pub target: Vec<AppDefinition>,
    /// Outcome, once finished.
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// Why it failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// When it finished (ms).
    #[serde(default)]
    pub finished_at: Option<i64>,
}

impl Deployment {
    /// Apps touched by this deployment.
    pub fn affected_apps(&self) -> Vec<PathId> {
        let mut ids: Vec<PathId> = self.steps.iter().flatten().map(|a| a.app.clone()).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// True when the deployment touches `app`.
    pub fn affects(&self, app: &PathId) -> bool {
        self.steps.iter().flatten().any(|a| &a.app == app)
    }

    /// Actions of the step in progress.
    pub fn current_actions(&self) -> &[Action] {
        self.steps
            .get(self.current_step)
            .map_or(&[], |s| s.as_slice())
    }
}

/// The whole in-memory state.
#[derive(Debug, Default)]
pub struct State {
    /// Apps by id.
    pub apps: BTreeMap<PathId, AppEntry>,
    /// Tasks by id, including tasks of deleted apps until they are gone.
    pub tasks: BTreeMap<String, TaskRecord>,
    /// Deployments in progress, oldest first.
    pub deployments: Vec<Deployment>,
    /// Last version handed out (versions are strictly increasing).
    pub last_version: i64,
}

impl State {
    /// A fresh version timestamp, strictly greater than any handed out before.
    pub fn next_version(&mut self) -> Timestamp {
        let now = Timestamp::now().millis();
        self.last_version = now.max(self.last_version + 1);
        Timestamp(self.last_version)
    }

    /// Tasks of one app. Task ids start with the app's safe name and a dot, so this is a
    /// range scan rather than a pass over every task.
    pub fn tasks_of<'a>(&'a self, app: &'a PathId) -> impl Iterator<Item = &'a TaskRecord> + 'a {
        let prefix = format!("{}.", app.safe_name());
        self.tasks
            .range(prefix.clone()..)
            .take_while(move |(id, _)| id.starts_with(&prefix))
            .map(|(_, t)| t)
            .filter(move |t| &t.app_id == app)
    }

    /// Deployments affecting `app`.
    pub fn deployments_of<'a>(
        &'a self,
        app: &'a PathId,
    ) -> impl Iterator<Item = &'a Deployment> + 'a {
        self.deployments.iter().filter(move |d| d.affects(app))
    }
}
