//! Start-up recovery: rebuild state from the store, re-adopt tasks that are still running
//! (the pid plus start time recorded before the task could run any code of its own),
//! forget launches that never started, and kill orphan processes (task cgroups without a
//! record; without cgroups, marked processes without a record, a hint only).

use crate::state::{AppEntry, AppRuntime, Deployment, TaskRecord, TaskState};
use crate::{Engine, EngineError, now_ms};
use launcher::{Liveness, Signal};
use std::collections::BTreeMap;

impl Engine {
    pub(crate) fn recover(&self) -> Result<(), EngineError> {
        let snap = self.inner.store.load()?;
        let now = now_ms();
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
                // Containers are re-adopted by label once the Docker link is up.
                st.tasks.insert(id, task);
                continue;
            }
            match task.proc {
                Some(p) => match self.inner.launcher.liveness(p) {
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
                // held wrapper ends when its server does): forget it; the planner relaunches.
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

    /// Kills (and cleans up) every task cgroup and every marked task process of this agent
    /// that no task record owns; returns how many tasks were orphans. Blocking; must not be
    /// called with the state locked.
    fn kill_orphans(&self) -> usize {
        let launcher = &self.inner.launcher;
        let mut found: BTreeMap<String, Option<launcher::ProcIdentity>> = BTreeMap::new();
        match launcher.task_cgroups() {
            Ok(groups) => found.extend(groups.into_iter().map(|(task_id, _)| (task_id, None))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list task cgroups; orphans are looked for later")
            }
        }
        // Without cgroups a process's environment is the only mark it has: a hint.
        for f in launcher.scan() {
            found.insert(f.task_id, Some(f.identity));
        }
        // Looked up after the scan: a launch that began meanwhile already has its record.
        let orphans: Vec<_> = {
            let st = self.lock();
            found
                .into_iter()
                .filter(|(id, _)| !st.tasks.contains_key(id))
                .collect()
        };
        for (task_id, identity) in &orphans {
            tracing::warn!(task = %task_id, pid = identity.map(|i| i.pid), "killing orphan task");
            if let Some(identity) = identity {
                let _ = launcher.signal(*identity, Signal::SIGKILL);
            }
            launcher.cleanup(task_id, *identity);
        }
        orphans.len()
    }
}
