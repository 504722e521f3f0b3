//! Start-up recovery: rebuild state from the store, re-adopt tasks that are still running
//! (pid plus start time), forget launches that never started, and kill orphan processes.

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
        let found: BTreeMap<String, launcher::ProcIdentity> = self
            .inner
            .launcher
            .scan()
            .into_iter()
            .map(|f| (f.task_id, f.identity))
            .collect();
        let mut adopted = 0;
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
                Some(p) if self.inner.launcher.liveness(p) == Liveness::Alive => adopted += 1,
                Some(_) => gone.push(id.clone()),
                None => match found.get(&id) {
                    // Started just before the last crash, never recorded: adopt it now.
                    Some(identity) => {
                        task.proc = Some(*identity);
                        task.state = TaskState::TaskRunning;
                        task.started_at = Some(model::Timestamp(now));
                        adopted += 1;
                        if let Err(e) = self.persist_task(&task) {
                            tracing::error!(task = %id, error = %e, "cannot persist adopted task");
                        }
                    }
                    // The launch never produced a process: forget it; the planner relaunches.
                    None => {
                        if let Err(e) = self.inner.store.write(|tx| tx.delete_task(&id)) {
                            tracing::error!(task = %id, error = %e, "cannot delete task record");
                        }
                        continue;
                    }
                },
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
        let mut orphans = 0;
        for (task_id, identity) in &found {
            if !st.tasks.contains_key(task_id) {
                self.kill_orphan(task_id, *identity);
                orphans += 1;
            }
        }
        tracing::info!(
            apps = st.apps.len(),
            tasks = st.tasks.len(),
            adopted,
            orphans,
            deployments = st.deployments.len(),
            "state recovered"
        );
        Ok(())
    }

    /// Kills task processes of this agent that no task record owns. Recovery does it once;
    /// the reconcile loop repeats it now and then, because a launch cut short by a crash
    /// can still be between fork and exec (not yet carrying its marker) when recovery
    /// scans, and only shows up as a task process afterwards.
    pub(crate) async fn sweep_orphans(&self) {
        // Records are written before a process is spawned, so every process the scan
        // finds that belongs to this server already has one. The scan reads /proc: off
        // the runtime's workers.
        let launcher = self.inner.launcher.clone();
        let Ok(found) = tokio::task::spawn_blocking(move || launcher.scan()).await else {
            return;
        };
        let orphans: Vec<_> = {
            let st = self.lock();
            found
                .into_iter()
                .filter(|f| !st.tasks.contains_key(&f.task_id))
                .collect()
        };
        for f in orphans {
            self.kill_orphan(&f.task_id, f.identity);
        }
    }

    fn kill_orphan(&self, task_id: &str, identity: launcher::ProcIdentity) {
        tracing::warn!(task = %task_id, pid = identity.pid, "killing orphan task process");
        let _ = self.inner.launcher.signal(identity, Signal::SIGKILL);
        let (launcher, id) = (self.inner.launcher.clone(), task_id.to_string());
        self.inner
            .tracker
            .spawn_blocking(move || launcher.cleanup(&id));
    }
}
