//! The engine's side of apps that another scheduler runs ([`crate::backend::scheduled`]):
//! apply each such app's current version, remove apps that are gone, and mirror the
//! tasks each scheduler reports into task records, so deployments, health checks, events,
//! routes and views treat them like any other task.

use crate::backend::BackendKind;
use crate::backend::scheduled::{ObservedTask, Scheduler};
use crate::state::{KillKind, State, TaskRecord, TaskState};
use crate::{Engine, Msg};
use model::{PathId, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// How often each scheduler is asked what runs.
pub(crate) const OBSERVE_EVERY_MS: i64 = 1_000;
/// How often while a deployment of one of its apps runs.
pub(crate) const OBSERVE_DEPLOYING_EVERY_MS: i64 = 250;

/// Which target an app belongs to (`None`: this engine). Given by the server's named
/// targets; only targets with a [`Scheduler`] are returned.
pub type Placement = Arc<dyn Fn(&PathId) -> Option<String> + Send + Sync>;

/// Bookkeeping of applies and observations (in memory: after a restart every scheduled
/// app is applied once more, which changes nothing where it already runs).
#[derive(Default)]
pub(crate) struct Bookkeeping {
    /// The app version each app last applied successfully.
    applied: BTreeMap<PathId, Timestamp>,
    /// Applies and removals in flight.
    busy: BTreeSet<PathId>,
    /// Targets being observed.
    observing: BTreeSet<String>,
    /// When each target was last asked.
    last_observe: BTreeMap<String, i64>,
    /// Why the last apply of an app failed, and when to try again.
    failed: BTreeMap<PathId, (String, i64)>,
}

/// How long a failed apply waits before the next attempt.
const RETRY_APPLY_MS: i64 = 3_000;

impl Engine {
    /// The target an app is placed on, when another scheduler runs it.
    pub(crate) fn placement(&self, app: &PathId) -> Option<String> {
        self.inner.placement.as_ref().and_then(|p| p(app))
    }

    fn scheduler(&self, target: &str) -> Option<Arc<dyn Scheduler>> {
        self.inner
            .schedulers
            .iter()
            .find(|s| s.target() == target)
            .cloned()
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Bookkeeping> {
        self.inner.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why a scheduled app is not running its current version, if it is not.
    pub fn schedule_problem(&self, app: &PathId) -> Option<String> {
        let target = self.placement(app)?;
        if self.scheduler(&target).is_none() {
            return Some(format!("target {target} has no scheduler"));
        }
        self.book().failed.get(app).map(|(why, _)| why.clone())
    }

    /// One pass: applies changed apps, removes deleted ones, observes due targets.
    pub(crate) fn schedule(&self, st: &mut State, now: i64) {
        if self.inner.schedulers.is_empty() {
            return;
        }
        let mut book = self.book();
        let mut applies = Vec::new();
        for (id, app) in &st.apps {
            let Some(target) = self.placement(id) else {
                continue;
            };
            let Some(s) = self.scheduler(&target) else {
                continue;
            };
            if book.busy.contains(id) || book.applied.get(id) == Some(&app.def.version) {
                continue;
            }
            if book
                .failed
                .get(id)
                .is_some_and(|(_, at)| now - at < RETRY_APPLY_MS)
            {
                continue;
            }
            book.busy.insert(id.clone());
            applies.push((s, id.clone(), app.def.clone()));
        }
        let gone: Vec<PathId> = book
            .applied
            .keys()
            .filter(|id| !st.apps.contains_key(*id) && !book.busy.contains(*id))
            .cloned()
            .collect();
        let mut removals = Vec::new();
        for id in gone {
            book.applied.remove(&id);
            if let Some(s) = self.placement(&id).and_then(|t| self.scheduler(&t)) {
                book.busy.insert(id.clone());
                removals.push((s, id));
            }
        }
        let mut observe = Vec::new();
        for s in &self.inner.schedulers {
            let t = s.target().to_string();
            let last = book.last_observe.get(&t).copied().unwrap_or(0);
            // While a deployment of its apps runs, tasks come and go: look more often.
            let deploying = st.deployments.iter().any(|d| {
                d.affected_apps()
                    .iter()
                    .any(|a| self.placement(a).as_deref() == Some(t.as_str()))
            });
            let every = if deploying {
                OBSERVE_DEPLOYING_EVERY_MS
            } else {
                OBSERVE_EVERY_MS
            };
            if !book.observing.contains(&t) && now - last >= every {
                book.observing.insert(t.clone());
                book.last_observe.insert(t, now);
                observe.push(s.clone());
            }
        }
        drop(book);
        for (s, id, def) in applies {
            let env = match crate::launch::secret_env(&def, self.inner.secrets.as_deref()) {
                Ok(secrets) => [crate::launch::app_env(&def), secrets].concat(),
                Err(why) => {
                    let _ = self.inner.tx.send(Msg::Applied {
                        app: id,
                        version: def.version,
                        result: Err(why),
                    });
                    continue;
                }
            };
            let (tx, version) = (self.inner.tx.clone(), def.version);
            tracing::info!(app = %id, target = s.target(), version = %version, "applying app to its target");
            let fut = s.apply(Arc::new(def), env);
            self.inner.tracker.spawn(async move {
                let result = fut.await;
                let _ = tx.send(Msg::Applied {
                    app: id,
                    version,
                    result,
                });
            });
        }
        for (s, id) in removals {
            let tx = self.inner.tx.clone();
            tracing::info!(app = %id, target = s.target(), "removing app from its target");
            let fut = s.remove(id.clone());
            self.inner.tracker.spawn(async move {
                let result = fut.await;
                let _ = tx.send(Msg::Removed { app: id, result });
            });
        }
        for s in observe {
            let tx = self.inner.tx.clone();
            let target = s.target().to_string();
            let fut = s.observe();
            self.inner.tracker.spawn(async move {
                let result = fut.await;
                let _ = tx.send(Msg::Observed { target, result });
            });
        }
    }

    /// An apply finished.
    pub(crate) fn on_applied(
        &self,
        st: &mut State,
        app: PathId,
        version: Timestamp,
        result: Result<(), String>,
        now: i64,
    ) {
        let mut book = self.book();
        book.busy.remove(&app);
        match result {
            Ok(()) => {
                book.failed.remove(&app);
                book.applied.insert(app.clone(), version);
                // Observe soon: the scheduler starts its tasks now.
                book.last_observe.values_mut().for_each(|t| *t = 0);
            }
            Err(why) => {
                tracing::warn!(app = %app, reason = %why, "cannot apply app to its target");
                // Shown where users look: the app's lastTaskFailure.
                if let Some(entry) = st.apps.get_mut(&app) {
                    entry.rt.last_task_failure = Some(crate::state::TaskFailure {
                        app_id: app.clone(),
                        host: self.placement(&app).unwrap_or_default(),
                        message: why.clone(),
                        state: TaskState::TaskFailed.as_str().into(),
                        task_id: String::new(),
                        timestamp: Timestamp(now),
                        version,
                        slave_id: self.inner.slave_id.clone(),
                    });
                }
                book.failed.insert(app, (why, now));
            }
        }
        drop(book);
        self.wake();
    }

    /// A removal finished.
    pub(crate) fn on_removed(&self, app: PathId, result: Result<(), String>) {
        let mut book = self.book();
        book.busy.remove(&app);
        if let Err(why) = result {
            tracing::warn!(app = %app, reason = %why, "cannot remove app from its target; retrying");
            // Back into `applied`, so the next pass removes it again.
            book.applied.insert(app, Timestamp(0));
        }
    }

    /// A scheduler reported its tasks: mirror them.
    pub(crate) fn on_observed(
        &self,
        st: &mut State,
        target: String,
        result: Result<Vec<ObservedTask>, String>,
        now: i64,
    ) {
        self.book().observing.remove(&target);
        let observed = match result {
            Ok(tasks) => tasks,
            Err(why) => {
                tracing::warn!(%target, reason = %why, "cannot observe target; its tasks are kept as they were");
                return;
            }
        };
        let mut seen = BTreeSet::new();
        let mut orphan_apps = BTreeSet::new();
        for o in observed {
            if !st.apps.contains_key(&o.app_id) {
                orphan_apps.insert(o.app_id.clone());
                continue;
            }
            if self.placement(&o.app_id).as_deref() != Some(target.as_str()) {
                continue;
            }
            seen.insert(o.id.clone());
            let terminal = !matches!(o.state, TaskState::TaskStaging | TaskState::TaskRunning);
            match st.tasks.get_mut(&o.id) {
                Some(t) if terminal => {
                    let failure = matches!(o.state, TaskState::TaskFailed | TaskState::TaskLost)
                        && t.kill.is_none();
                    let _ = t;
                    let msg = if o.message.is_empty() {
                        format!("ended on {target}")
                    } else {
                        o.message.clone()
                    };
                    self.on_terminated(st, &o.id, o.state, msg, failure, now);
                }
                Some(t) if o.stopping && t.kill.is_none() => {
                    // On its way out: no new requests from the proxy, from now on.
                    let id = t.id.clone();
                    self.start_kill(
                        st,
                        &id,
                        KillKind::Upgrade,
                        format!("stopped by {target}"),
                        now,
                    );
                }
                Some(t) => {
                    let changed = t.state != o.state || t.host_ports != o.host_ports;
                    t.state = o.state;
                    t.host_ports = o.host_ports.clone();
                    t.host = Some(o.host.clone());
                    if t.started_at.is_none() && o.state == TaskState::TaskRunning {
                        t.started_at = Some(o.started_at.unwrap_or(Timestamp(now)));
                    }
                    if changed {
                        let snapshot = t.clone();
                        self.publish_status(&snapshot, snapshot.state, "");
                    }
                }
                None if terminal => {}
                None => {
                    let Some(app) = st.apps.get(&o.app_id) else {
                        continue;
                    };
                    let t = mirror(&o, &target, &app.def, &self.inner.cfg.data_dir, now);
                    self.publish_status(&t, t.state, "");
                    st.tasks.insert(o.id.clone(), t);
                }
            }
        }
        let vanished: Vec<String> = st
            .tasks
            .values()
            .filter(|t| t.target.as_deref() == Some(target.as_str()) && !seen.contains(&t.id))
            .map(|t| t.id.clone())
            .collect();
        for id in vanished {
            let killed = st.tasks.get(&id).is_some_and(|t| t.kill.is_some());
            let state = if killed {
                TaskState::TaskKilled
            } else {
                TaskState::TaskLost
            };
            self.on_terminated(
                st,
                &id,
                state,
                format!("no longer reported by {target}"),
                !killed,
                now,
            );
        }
        // Apps deleted while this server was down still run there: remove them.
        if !orphan_apps.is_empty() {
            let mut book = self.book();
            for app in orphan_apps {
                if !book.busy.contains(&app) {
                    book.applied.entry(app).or_insert(Timestamp(0));
                }
            }
        }
    }

    /// Whether the task's scheduler can kill it by itself (see [`Scheduler::kill_check`]).
    pub(crate) fn kill_check_scheduled(&self, t: &TaskRecord) -> Result<(), String> {
        match t.target.as_deref().and_then(|n| self.scheduler(n)) {
            Some(s) => s.kill_check(&observed_of(t)),
            None => Ok(()),
        }
    }

    /// Asks the scheduler to kill one of its tasks (it replaces it).
    pub(crate) fn kill_scheduled(&self, t: &TaskRecord) {
        let Some(s) = t.target.as_deref().and_then(|n| self.scheduler(n)) else {
            return;
        };
        let fut = s.kill(&observed_of(t));
        let id = t.id.clone();
        self.inner.tracker.spawn(async move {
            if let Err(e) = fut.await {
                tracing::warn!(task = %id, error = %e, "cannot kill task on its target");
            }
        });
    }
}

/// The scheduler's view of a task the engine mirrors.
fn observed_of(t: &TaskRecord) -> ObservedTask {
    ObservedTask {
        id: t.id.clone(),
        app_id: t.app_id.clone(),
        version: t.version,
        config_version: t.config_version,
        state: t.state,
        host: t.host.clone().unwrap_or_default(),
        host_ports: t.host_ports.clone(),
        staged_at: t.staged_at,
        started_at: t.started_at,
        message: String::new(),
        stopping: false,
    }
}

/// A task record for a task another scheduler runs.
fn mirror(
    o: &ObservedTask,
    target: &str,
    def: &model::AppDefinition,
    data_dir: &std::path::Path,
    now: i64,
) -> TaskRecord {
    let checks = def.health_checks.len();
    TaskRecord {
        id: o.id.clone(),
        app_id: o.app_id.clone(),
        version: o.version,
        config_version: o.config_version,
        state: o.state,
        staged_at: o.staged_at,
        started_at: match o.state {
            TaskState::TaskRunning => Some(o.started_at.unwrap_or(Timestamp(now))),
            _ => None,
        },
        host_ports: o.host_ports.clone(),
        service_ports: def.service_ports(),
        proc: None,
        sandbox: data_dir.join("sandboxes").join(&o.id),
        kill: None,
        health: vec![Default::default(); checks],
        limits_enforced: true,
        last_probe: vec![None; checks],
        probing: vec![false; checks],
        watched: true,
        launching: false,
        backend: BackendKind::Scheduled,
        docker: false,
        // The scheduler's id: a handle, so health checks and kills treat it as started.
        container: Some(o.id.clone()),
        ip: None,
        run_as: None,
        host: Some(o.host.clone()),
        target: Some(target.to_string()),
    }
}
