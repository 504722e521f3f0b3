//! Start-up recovery: rebuild state from the store, re-adopt tasks that are still running
//! (the pid plus start time recorded before the task could run any code of its own),
//! forget launches that never started, and kill orphan processes (task cgroups without a
//! record; without cgroups, marked processes without a record, a hint only).

use crate::backend::{BackendKind, Found, Handle};
use crate::state::{AppEntry, AppRuntime, Deployment, State, TaskRecord, TaskState};
use crate::{Engine, EngineError};
use launcher::Liveness;
use std::collections::BTreeMap;

impl Engine {
    pub(crate) fn recover(&self) -> Result<(), EngineError> {
        let snap = self.inner.store.load()?;
        let now = self.now();
        let mut runtimes: BTreeMap<String, AppRuntime> = snap
            .runtime
            .into_iter()
            .filter_map(|(id, v)| serde_json::from_value(v).ok().map(|rt| (id, rt)))
            .collect();
        let mut st = self.lock();
        for def in snap.apps {
            st.last_version = st.last_version.max(def.version.millis());
            let rt = runtimes.remove(&def.id.to_string()).unwrap_or_default();
            st.apps.insert(def.id.clone(), AppEntry::new(def, rt));
        }
        for (id, body) in snap.deployments {
            match serde_json::from_value::<Deployment>(body) {
                Ok(d) => st.deployments.push(d),
                Err(e) => {
                    tracing::error!(deployment = %id, error = %e, "skipping unreadable deployment")
                }
            }
        }
        let mut adopted = 0;
        let mut unknown = 0;
        let mut gone = Vec::new();
        for (id, body) in snap.tasks {
            let mut task: TaskRecord = match serde_json::from_value(body) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(task = %id, error = %e, "skipping unreadable task record");
                    continue;
                }
            };
            let checks = st
                .apps
                .get(&task.app_id)
                .map_or(0, |a| a.def.health_checks.len());
            task.health.resize(checks, Default::default());
            task.last_probe = vec![None; checks];
            task.probing = vec![false; checks];
            if task.docker {
                task.backend = BackendKind::Docker;
            }
            match Handle::of(&task) {
                // Backends that cannot tell (a daemon not connected yet) answer Unknown:
                // their tasks are adopted, or found gone, from the inventory they report.
                Some(h) => match self.backend(task.backend).liveness(&h) {
                    Liveness::Alive => {
                        if task.state == TaskState::TaskStaging {
                            // Recorded and released just before the crash.
                            task.state = TaskState::TaskRunning;
                            task.started_at = Some(model::Timestamp(now));
                            if let Err(e) = self.persist_task(&task) {
                                tracing::error!(task = %id, error = %e, "cannot persist adopted task");
                            }
                        }
                        adopted += 1;
                    }
                    // Kept and looked at again by the liveness poll: never killed for it.
                    Liveness::Unknown => unknown += 1,
                    Liveness::Gone => gone.push(id.clone()),
                },
                // The launch never recorded a process, so none ran the task's command (a
                // held wrapper ends when its server does; a container created just before
                // the crash is an orphan of the inventory): forget it; the planner
                // relaunches.
                None => {
                    if let Err(e) = self.inner.store.write(|tx| tx.delete_task(&id)) {
                        tracing::error!(task = %id, error = %e, "cannot delete task record");
                    }
                    continue;
                }
            }
            st.tasks.insert(id, task);
        }
        for id in gone {
            let killed = st.tasks.get(&id).is_some_and(|t| t.kill.is_some());
            let (state, msg) = if killed {
                (
                    TaskState::TaskKilled,
                    "killed while Slipway was not running".to_string(),
                )
            } else {
                (
                    TaskState::TaskLost,
                    "exited while Slipway was not running (exit status unknown)".to_string(),
                )
            };
            self.on_terminated(&mut st, &id, state, msg, !killed, now);
        }
        drop(st);
        // Launches that never started left at most a held wrapper in their cgroup: orphans.
        let orphans = self.kill_orphans();
        let st = self.lock();
        tracing::info!(
            apps = st.apps.len(),
            tasks = st.tasks.len(),
            adopted,
            unknown,
            orphans,
            deployments = st.deployments.len(),
            "state recovered"
        );
        Ok(())
    }

    /// Kills task processes of this agent that no task record owns. Recovery does it once;
    /// the reconcile loop repeats it now and then, because a launch cut short by a crash
    /// can leave a held wrapper behind for a moment.
    pub(crate) async fn sweep_orphans(&self) {
        // Records are written before a task's cgroup or process exists, so everything the
        // scan finds that belongs to this server already has one. The scan reads /proc and
        // cgroupfs: off the runtime's workers.
        let engine = self.clone();
        let _ = tokio::task::spawn_blocking(move || engine.kill_orphans()).await;
    }

    /// Removes what every scanning backend finds running for this agent that no task
    /// record owns (task cgroups, marked processes); returns how many tasks were orphans.
    /// Blocking; must not be called with the state locked.
    fn kill_orphans(&self) -> usize {
        let mut count = 0;
        for b in &self.inner.backends {
            let Some(found) = b.scan() else { continue };
            // Looked up after the scan: a launch that began meanwhile already has its record.
            let orphans: Vec<Found> = {
                let st = self.lock();
                found
                    .into_iter()
                    .filter(|f| !st.tasks.contains_key(&f.task_id))
                    .collect()
            };
            for f in &orphans {
                tracing::warn!(task = %f.task_id, backend = b.kind().as_str(), "killing orphan task");
                b.remove_orphan(f);
            }
            count += orphans.len();
        }
        count
    }

    /// A backend (re)connected and listed what runs: adopt its tasks, declare lost those
    /// that vanished, forget launches that never created anything, remove what no record
    /// owns.
    pub(crate) fn on_inventory(
        &self,
        st: &mut State,
        kind: BackendKind,
        result: Result<Vec<Found>, String>,
        now: i64,
    ) {
        let Ok(found) = result else {
            // The backend says why it is unavailable; its tasks stay as they are.
            return;
        };
        let backend = self.backend(kind).clone();
        let by_task: BTreeMap<&str, &Found> =
            found.iter().map(|f| (f.task_id.as_str(), f)).collect();
        let ids: Vec<String> = st
            .tasks
            .values()
            .filter(|t| t.backend == kind && !t.launching)
            .map(|t| t.id.clone())
            .collect();
        for id in ids {
            let Some(t) = st.tasks.get_mut(&id) else {
                continue;
            };
            match by_task.get(id.as_str()).and_then(|f| f.handle.as_ref()) {
                Some(h) => {
                    if Handle::of(t).as_ref() != Some(h) {
                        // Created just before a crash and never recorded: adopt it.
                        h.store_in(t);
                        t.state = TaskState::TaskRunning;
                        t.started_at.get_or_insert(model::Timestamp(now));
                        let snapshot = t.clone();
                        let _ = self.persist_task(&snapshot);
                    }
                    if !t.watched {
                        t.watched = backend.watch(&id, h, &t.sandbox);
                    }
                    if let Some(k) = t.kill.as_ref().filter(|k| k.sigterm_sent) {
                        let sig = if k.sigkill_sent {
                            crate::backend::Sig::Kill
                        } else {
                            crate::backend::Sig::Term
                        };
                        backend.signal(h, sig);
                    }
                }
                None if Handle::of(t).is_some() => {
                    let msg = format!(
                        "the task disappeared from its backend ({}) while Slipway or the backend was down",
                        kind.as_str()
                    );
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
                backend.remove_orphan(f);
            }
        }
    }
}
