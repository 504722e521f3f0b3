//! Read-side operations: deployments running or finished, task counts and why an app
//! waits. Typed; `api` renders Marathon's and Slipway's JSON from them and from
//! [`Engine::read`].

use crate::state::{AppEntry, Deployment, TaskFailure, TaskRecord, TaskState, TerminatedTask};
use crate::{Engine, EngineError, now_ms};
use health::TaskHealth;
use model::{AppDefinition, PathId, Timestamp};

/// Where this engine's own tasks are, for task views: the advertised host and the agent id.
#[derive(Clone, Copy, Debug)]
pub struct Host<'a> {
    /// Host address of tasks.
    pub host: &'a str,
    /// Marathon `slaveId`.
    pub slave_id: &'a str,
}

/// Task counts as Marathon defines them (`TaskForStatistics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Not yet running.
    pub tasks_staged: u32,
    /// Running (including those being killed).
    pub tasks_running: u32,
    /// Running with all health checks passing.
    pub tasks_healthy: u32,
    /// Running with a failing health check.
    pub tasks_unhealthy: u32,
}

impl Counts {
    /// Counts over the tasks of one app.
    pub fn of<'a>(tasks: impl Iterator<Item = &'a TaskRecord>) -> Counts {
        let mut c = Counts::default();
        for t in tasks {
            match t.state {
                TaskState::TaskStaging => c.tasks_staged += 1,
                TaskState::TaskRunning => c.tasks_running += 1,
                _ => {}
            }
            match t.health() {
                TaskHealth::Healthy => c.tasks_healthy += 1,
                TaskHealth::Unhealthy => c.tasks_unhealthy += 1,
                TaskHealth::Unknown => {}
            }
        }
        c
    }
}

/// Where an app stands (`GET /api/v1/apps/{id}/status`).
#[derive(Clone, Debug, PartialEq)]
pub struct AppStatus {
    /// The app.
    pub id: PathId,
    /// Instances wanted.
    pub instances: u32,
    /// Its phase.
    pub phase: AppPhase,
    /// Tasks that are ready (running long enough, and healthy where checked).
    pub ready: u32,
    /// Set while the app crash-loops.
    pub crash_loop: Option<CrashLoop>,
    /// Task counts.
    pub counts: Counts,
    /// Deployments on it.
    pub deployments: Vec<String>,
    /// Why it has fewer tasks than wanted, if it has.
    pub waiting: Option<String>,
    /// The launch backoff delay (s).
    pub delay_seconds: f64,
    /// Time left of the backoff delay (ms).
    pub delay_left_ms: i64,
    /// The last task failure.
    pub last_task_failure: Option<TaskFailure>,
    /// Recently terminated tasks, newest first.
    pub terminated: Vec<TerminatedTask>,
}

/// An app's phase, named as Kubernetes names pod phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppPhase {
    /// Fewer instances ready than wanted while its tasks keep failing.
    CrashLoopBackOff,
    /// Scaled to 0.
    Suspended,
    /// A deployment is in progress.
    Deploying,
    /// All instances ready.
    Running,
    /// Waiting for instances.
    Waiting,
}

impl AppPhase {
    /// The name, e.g. `CrashLoopBackOff`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppPhase::CrashLoopBackOff => "CrashLoopBackOff",
            AppPhase::Suspended => "Suspended",
            AppPhase::Deploying => "Deploying",
            AppPhase::Running => "Running",
            AppPhase::Waiting => "Waiting",
        }
    }
}

/// Kubernetes' `CrashLoopBackOff`: why and until when launches back off.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashLoop {
    /// The backoff delay (s).
    pub backoff_seconds: f64,
    /// Until the next launch (ms).
    pub next_launch_in_ms: i64,
    /// The last failure's message.
    pub last_failure: String,
    /// When it failed.
    pub at: Timestamp,
}

impl Engine {
    /// One stored version of an app.
    pub fn app_version(
        &self,
        id: &PathId,
        version: Timestamp,
    ) -> Result<Option<AppDefinition>, EngineError> {
        if !self.lock().apps.contains_key(id) {
            return Ok(None);
        }
        Ok(self.inner.store.app_version(id, version)?)
    }

    /// A deployment, running or finished (its `outcome` tells which).
    pub fn deployment(&self, id: &str) -> Result<Option<Deployment>, EngineError> {
        if let Some(d) = self.lock().deployments.iter().find(|d| d.id == id) {
            return Ok(Some(d.clone()));
        }
        Ok(self
            .inner
            .store
            .finished_deployment(id)?
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Finished deployments, newest first.
    pub fn deployment_history(&self, limit: usize) -> Result<Vec<Deployment>, EngineError> {
        Ok(self
            .inner
            .store
            .deployment_history(limit)?
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect())
    }

    /// Where an app stands: why it waits, whether it crash-loops, recent task ends.
    pub fn app_status(&self, id: &PathId) -> Option<AppStatus> {
        let st = self.lock();
        let app = st.apps.get(id)?;
        let now = now_ms();
        let counts = Counts::of(st.tasks_of(id));
        let active = st.tasks_of(id).filter(|t| t.kill.is_none()).count() as u32;
        let left = app.rt.delay_left_ms(now);
        let waiting = waiting_reason(
            &app.def,
            active,
            left,
            app.rt
                .last_task_failure
                .as_ref()
                .map(|f| f.message.as_str()),
        );
        let ready = st
            .tasks_of(id)
            .filter(|t| t.kill.is_none() && crate::reconcile::task_ready(&app.def, t, now))
            .count() as u32;
        let crash_loop = crash_loop(app, ready, now);
        let phase = if crash_loop.is_some() {
            AppPhase::CrashLoopBackOff
        } else if app.def.instances == 0 {
            AppPhase::Suspended
        } else if st.deployments_of(id).next().is_some() {
            AppPhase::Deploying
        } else if ready >= app.def.instances {
            AppPhase::Running
        } else {
            AppPhase::Waiting
        };
        Some(AppStatus {
            id: id.clone(),
            instances: app.def.instances,
            phase,
            ready,
            crash_loop,
            counts,
            deployments: st.deployments_of(id).map(|d| d.id.clone()).collect(),
            waiting,
            delay_seconds: app.rt.delay_seconds,
            delay_left_ms: left,
            last_task_failure: app.rt.last_task_failure.clone(),
            terminated: app.rt.terminated.iter().rev().cloned().collect(),
        })
    }

    /// Labels of an app, for policy decisions.
    pub fn app_labels(&self, id: &PathId) -> Option<std::collections::BTreeMap<String, String>> {
        self.lock().apps.get(id).map(|a| a.def.labels.clone())
    }

    /// Apps a running deployment affects.
    pub fn deployment_apps(&self, id: &str) -> Option<Vec<PathId>> {
        self.lock()
            .deployments
            .iter()
            .find(|d| d.id == id)
            .map(|d| d.affected_apps())
    }

    /// The app of a known task.
    pub fn task_app(&self, task_id: &str) -> Option<PathId> {
        self.lock().tasks.get(task_id).map(|t| t.app_id.clone())
    }
}

/// Kubernetes' `CrashLoopBackOff`: fewer instances ready ([`crate::reconcile::task_ready`])
/// than wanted while the app's tasks keep failing, so its launches back off. `None` when the
/// app is not backing off (no failure since its version was deployed) or all instances run.
fn crash_loop(app: &AppEntry, ready: u32, now: i64) -> Option<CrashLoop> {
    let failure = app.rt.last_task_failure.as_ref()?;
    if ready >= app.def.instances || app.rt.delay_seconds <= 0.0 {
        return None;
    }
    Some(CrashLoop {
        backoff_seconds: app.rt.delay_seconds,
        next_launch_in_ms: app.rt.delay_left_ms(now),
        last_failure: failure.message.clone(),
        at: failure.timestamp,
    })
}

fn waiting_reason(
    def: &AppDefinition,
    active: u32,
    delay_left_ms: i64,
    last: Option<&str>,
) -> Option<String> {
    if active >= def.instances {
        return None;
    }
    if delay_left_ms > 0 {
        let secs = delay_left_ms as f64 / 1000.0;
        return Some(match last {
            Some(m) => format!("backing off: next launch in {secs:.1}s after a task failure: {m}"),
            None => format!("backing off: next launch in {secs:.1}s"),
        });
    }
    Some(format!(
        "launching {} of {} instances",
        def.instances - active,
        def.instances
    ))
}
