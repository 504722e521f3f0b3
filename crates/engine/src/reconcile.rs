//! The reconcile loop: level-triggered, so it can be killed at any line and resume.
//!
//! Each tick takes the state lock once, decides everything (kills, launches, probes,
//! deployment progress) from the current snapshot, then starts the slow work (process
//! launches, probes, log rotation) in tracked background tasks whose results come back as
//! messages.

use crate::backend::Handle;
use crate::planner::{self, AppTarget, KillCause, TaskView};
use crate::state::{ActionKind, KillKind, Outcome, State, TaskRecord, TaskState};
use crate::{Engine, Msg};
use health::TaskHealth;
use model::PathId;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often logs are checked for rotation.
const ROTATE_EVERY_MS: i64 = 10_000;
/// How often re-adopted tasks (no child handle) are checked for liveness.
const POLL_ADOPTED_EVERY_MS: i64 = 500;
/// How often the machine is scanned for task processes that no record owns.
const SWEEP_ORPHANS_EVERY_MS: i64 = 3_000;
/// How long a task of an app without health checks must have been running before it counts
/// as ready. A command that exits at once is running for a moment; without this, a
/// crash-looping app completed its deployment whenever a tick fell into that moment.
pub(crate) const MIN_UP_MS: i64 = 2_000;

/// Runs synchronous work from async code: on a multi-threaded runtime the worker is handed
/// over as blocking ([`tokio::task::block_in_place`]); elsewhere (tests) it just runs.
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Whether a task counts as ready, for deployment steps and the rolling upgrade's health
/// floor alike: running, not being killed, and passing every health check; for an app
/// without checks, running for at least [`MIN_UP_MS`]. A task that keeps exiting never
/// counts, so a crash-looping app never completes a deployment (Marathon's rule: a
/// deployment succeeds when its instances run, and are healthy where checked).
pub(crate) fn task_ready(def: &model::AppDefinition, t: &TaskRecord, now: i64) -> bool {
    if t.state != TaskState::TaskRunning {
        return false;
    }
    if def.health_checks.is_empty() {
        t.started_at
            .is_some_and(|s| now.saturating_sub(s.millis()) >= MIN_UP_MS)
    } else {
        t.health() == TaskHealth::Healthy
    }
}

impl Engine {
    /// Runs the reconcile loop until `shutdown` is cancelled.
    pub async fn run(self, shutdown: CancellationToken) {
        let Some(mut rx) = self
            .inner
            .rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        else {
            tracing::error!("engine loop already running");
            return;
        };
        let mut ticker = tokio::time::interval(self.inner.cfg.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_rotate = self.now();
        let mut last_poll = 0;
        let mut last_sweep = self.now();
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(msg) = rx.recv() => {
                    batch.push(msg);
                    while let Ok(msg) = rx.try_recv() {
                        batch.push(msg);
                    }
                }
                _ = ticker.tick() => {}
                _ = self.inner.wake.notified() => {}
                _ = self.probe_timer() => {}
            }
            // The pass writes SQLite and reads /proc synchronously (every record is durable
            // before what it describes happens): tell the runtime, so this worker's other
            // tasks (API requests, probes) move to another thread meanwhile.
            blocking(|| {
                for msg in batch.drain(..) {
                    self.handle(msg);
                }
                if self.now() - last_poll >= POLL_ADOPTED_EVERY_MS {
                    last_poll = self.now();
                    let mut st = self.lock();
                    self.poll_adopted(&mut st, last_poll);
                }
                self.tick();
            });
            if self.now() - last_sweep >= SWEEP_ORPHANS_EVERY_MS {
                last_sweep = self.now();
                self.sweep_orphans().await;
            }
            if self.now() - last_rotate > ROTATE_EVERY_MS {
                last_rotate = self.now();
                self.rotate_logs();
            }
        }
        if self.inner.cfg.kill_tasks_on_shutdown {
            self.kill_all_on_shutdown(&mut rx).await;
        }
        self.inner.tracker.close();
        // Probes and launches in flight are abandoned; tasks keep running and are re-adopted.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.tracker.wait()).await;
        tracing::info!("engine stopped");
    }

    /// Sleeps until the next health probe is due (forever when none is scheduled).
    async fn probe_timer(&self) {
        let at = *self
            .inner
            .next_probe
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match at {
            Some(ms) => {
                let wait = (ms - self.now()).max(0) as u64;
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
            None => std::future::pending::<()>().await,
        }
    }

    pub(crate) fn handle(&self, msg: Msg) {
        let now = self.now();
        let mut st = self.lock();
        match msg {
            Msg::Launched {
                kind,
                task_id,
                result,
            } => self.on_launched(&mut st, kind, &task_id, result, now),
            Msg::Exited {
                task_id,
                handle,
                exit,
            } => self.on_exit(&mut st, &task_id, handle, exit, now),
            Msg::Probe {
                task_id,
                index,
                outcome,
            } => self.on_probe(&mut st, &task_id, index, outcome, now),
            Msg::Lost {
                kind,
                task_id,
                reason,
            } => {
                tracing::debug!(task = %task_id, backend = kind.as_str(), %reason, "task watcher lost its backend");
                if let Some(t) = st.tasks.get_mut(&task_id) {
                    t.watched = false;
                }
            }
            Msg::Inventory { kind, result } => self.on_inventory(&mut st, kind, result, now),
            Msg::Applied {
                app,
                version,
                result,
            } => self.on_applied(&mut st, app, version, result, now),
            Msg::Removed { app, result } => self.on_removed(app, result),
            Msg::Observed { target, result } => self.on_observed(&mut st, target, result, now),
        }
    }

    /// One reconcile pass.
    pub(crate) fn tick(&self) {
        let now = self.now();
        for b in &self.inner.backends {
            b.maintain(now);
        }
        let mut st = self.lock();
        self.progress_drains(&mut st, now);
        self.escalate_kills(&mut st, now);
        self.kill_tasks_without_app(&mut st, now);
        self.plan_apps(&mut st, now);
        self.schedule(&mut st, now);
        self.advance_deployments(&mut st, now);
        let (probes, next_probe) = self.due_probes(&mut st, now);
        drop(st);
        *self
            .inner
            .next_probe
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = next_probe;
        for job in probes {
            let tx = self.inner.tx.clone();
            self.inner.tracker.spawn(async move {
                let (task_id, index) = (job.task_id.clone(), job.index);
                let outcome = job.run().await;
                let _ = tx.send(Msg::Probe {
                    task_id,
                    index,
                    outcome,
                });
            });
        }
    }

    /// Tasks adopted after a restart have no child handle: poll whether they still live.
    fn poll_adopted(&self, st: &mut State, now: i64) {
        let gone: Vec<String> = st
            .tasks
            .values()
            .filter(|t| !t.watched && !t.launching)
            .filter(|t| {
                Handle::of(t).is_some_and(|h| {
                    self.backend(t.backend).liveness(&h) == launcher::Liveness::Gone
                })
            })
            .map(|t| t.id.clone())
            .collect();
        for id in gone {
            let Some(t) = st.tasks.get(&id) else { continue };
            let (state, msg, failure) = match &t.kill {
                Some(k) => (TaskState::TaskKilled, k.reason.clone(), k.kind == KillKind::Unhealthy),
                None => (
                    TaskState::TaskFailed,
                    "Command exited (exit status unavailable: the task was re-adopted after a Slipway restart)".to_string(),
                    true,
                ),
            };
            self.on_terminated(st, &id, state, msg, failure, now);
        }
    }

    /// Tasks whose app was deleted are killed.
    fn kill_tasks_without_app(&self, st: &mut State, now: i64) {
        let orphans: Vec<String> = st
            .tasks
            .values()
            .filter(|t| t.kill.is_none() && !st.apps.contains_key(&t.app_id))
            .map(|t| t.id.clone())
            .collect();
        for id in orphans {
            self.start_kill(st, &id, KillKind::AppDeleted, "app deleted".into(), now);
        }
    }

    /// Runs the planner for every app and carries out its kills and launches.
    fn plan_apps(&self, st: &mut State, now: i64) {
        let mut views: BTreeMap<&PathId, Vec<TaskView>> = BTreeMap::new();
        for t in st.tasks.values() {
            let Some(app) = st.apps.get(&t.app_id) else {
                continue;
            };
            views.entry(&t.app_id).or_default().push(TaskView {
                id: t.id.clone(),
                current_config: t.config_version == app.def.version_info.last_config_change_at,
                running: t.state == TaskState::TaskRunning,
                healthy: task_ready(&app.def, t, now),
                killing: t.kill.is_some(),
                staged_at: t.staged_at.millis(),
            });
        }
        let mut kills = Vec::new();
        let mut launches = Vec::new();
        let mut waiting = Vec::new();
        for (id, app) in &st.apps {
            if self.placement(id).is_some() {
                // Another scheduler places and replaces its tasks ([`Engine::schedule`]).
                continue;
            }
            let rolling = st.deployments.iter().any(|d| {
                d.current_actions()
                    .iter()
                    .any(|a| &a.app == id && a.action == ActionKind::RestartApplication)
            });
            let target = AppTarget {
                instances: app.def.instances,
                minimum_health_capacity: app.def.upgrade_strategy.minimum_health_capacity,
                maximum_over_capacity: app.def.upgrade_strategy.maximum_over_capacity,
                kill_selection: app.def.kill_selection,
                rolling,
                may_launch: now >= app.rt.launch_not_before,
            };
            let tasks = views.remove(id).unwrap_or_default();
            let active = tasks.iter().filter(|t| !t.killing).count();
            let plan = planner::plan(&target, &tasks);
            for (task, cause) in plan.kill {
                kills.push((task, cause));
            }
            if plan.launch > 0 {
                launches.push((id.clone(), plan.launch));
            }
            let short = active < app.def.instances as usize;
            waiting.push((id.clone(), short));
        }
        for (id, short) in waiting {
            if let Some(app) = st.apps.get_mut(&id) {
                match (short, app.rt.waiting_since) {
                    (true, None) => app.rt.waiting_since = Some(now),
                    (false, Some(_)) => app.rt.waiting_since = None,
                    _ => {}
                }
            }
        }
        for (task, cause) in kills {
            let (kind, reason) = match cause {
                KillCause::ScaleDown => (KillKind::ScaleDown, "scaled down"),
                KillCause::Upgrade => (KillKind::Upgrade, "replaced by a new version"),
            };
            self.start_kill(st, &task, kind, reason.into(), now);
        }
        for (app, n) in launches {
            for _ in 0..n {
                match self.prepare_launch(st, &app, now) {
                    Ok((kind, req)) => self.spawn_launch(kind, req),
                    Err(reason) => {
                        self.record_launch_failure(st, &app, reason, now);
                        break;
                    }
                }
            }
        }
    }

    /// A launch that could not even start counts as a failed task for backoff and reporting.
    fn record_launch_failure(&self, st: &mut State, app_id: &PathId, reason: String, now: i64) {
        let Some(app) = st.apps.get_mut(app_id) else {
            return;
        };
        tracing::warn!(app = %app_id, %reason, "cannot launch task");
        app.rt.record_failure(&app.def, now);
        app.rt.last_task_failure = Some(crate::state::TaskFailure {
            app_id: app_id.clone(),
            host: self.inner.cfg.host.clone(),
            message: reason,
            state: TaskState::TaskFailed.as_str().into(),
            task_id: String::new(),
            timestamp: model::Timestamp(now),
            version: app.def.version,
            slave_id: self.inner.slave_id.clone(),
        });
        let rt = serde_json::to_value(&app.rt).unwrap_or_default();
        if let Err(e) = self.inner.store.write(|tx| tx.put_runtime(app_id, &rt)) {
            tracing::error!(app = %app_id, error = %e, "cannot persist app runtime");
        }
    }

    /// Moves deployments forward when their current step is satisfied.
    fn advance_deployments(&self, st: &mut State, now: i64) {
        let mut i = 0;
        while i < st.deployments.len() {
            let mut changed = false;
            loop {
                let d = &st.deployments[i];
                if d.current_step >= d.steps.len()
                    || !d
                        .current_actions()
                        .iter()
                        .all(|a| step_done(st, &a.app, a.action, now))
                {
                    break;
                }
                let d = &mut st.deployments[i];
                self.inner
                    .events
                    .publish(crate::Event::DeploymentStepSuccess(std::sync::Arc::new(
                        d.clone(),
                    )));
                d.current_step += 1;
                changed = true;
                if d.current_step < d.steps.len() {
                    self.inner
                        .events
                        .publish(crate::Event::DeploymentInfo(std::sync::Arc::new(d.clone())));
                }
            }
            let d = &st.deployments[i];
            if d.current_step >= d.steps.len() {
                let mut d = st.deployments.remove(i);
                match self.finish(&mut d, Outcome::Success, None) {
                    Ok(()) => {
                        let apps: Vec<String> =
                            d.affected_apps().iter().map(ToString::to_string).collect();
                        tracing::info!(deployment = %d.id, apps = %apps.join(","), "deployment succeeded");
                        self.inner.events.publish(crate::Event::DeploymentSuccess(
                            std::sync::Arc::new(d.clone()),
                        ));
                    }
                    Err(e) => {
                        tracing::error!(deployment = %d.id, error = %e, "cannot record deployment success");
                        st.deployments.insert(i, d);
                        i += 1;
                    }
                }
                continue;
            }
            if changed {
                let body = serde_json::to_value(d).unwrap_or_default();
                if let Err(e) = self
                    .inner
                    .store
                    .write(|tx| tx.put_deployment(&d.id, d.created_at, &body))
                {
                    tracing::error!(deployment = %d.id, error = %e, "cannot persist deployment progress");
                }
            }
            i += 1;
        }
    }

    fn rotate_logs(&self) {
        let sandboxes: Vec<_> = self
            .lock()
            .tasks
            .values()
            .map(|t| t.sandbox.clone())
            .collect();
        let launcher = self.inner.launcher.clone();
        self.inner.tracker.spawn_blocking(move || {
            for s in sandboxes {
                let _ = launcher.rotate_logs(&s);
            }
        });
    }

    async fn kill_all_on_shutdown(&self, rx: &mut tokio::sync::mpsc::UnboundedReceiver<Msg>) {
        let now = self.now();
        {
            let mut st = self.lock();
            let ids: Vec<String> = st.tasks.keys().cloned().collect();
            for id in ids {
                self.start_kill(
                    &mut st,
                    &id,
                    KillKind::Shutdown,
                    "server shutdown".into(),
                    now,
                );
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.lock().tasks.is_empty() && tokio::time::Instant::now() < deadline {
            if let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
            {
                self.handle(msg);
            }
            let now = self.now();
            let mut st = self.lock();
            self.poll_adopted(&mut st, now);
            self.escalate_kills(&mut st, now);
        }
    }
}

/// Whether one deployment action has reached its goal: for scales and restarts, exactly
/// `instances` tasks that are ready ([`task_ready`]).
pub(crate) fn step_done(st: &State, app_id: &PathId, action: ActionKind, now: i64) -> bool {
    match action {
        ActionKind::StartApplication => true,
        ActionKind::StopApplication => st.tasks_of(app_id).next().is_none(),
        ActionKind::ScaleApplication | ActionKind::RestartApplication => {
            let Some(app) = st.apps.get(app_id) else {
                return true;
            };
            let mut count = 0;
            let restart = action == ActionKind::RestartApplication;
            for t in st.tasks_of(app_id) {
                // Marathon: a restart is done when N new instances are healthy and no old
                // instance still has goal Running; old tasks being killed do not hold it open.
                // A scale waits until killed tasks are gone.
                if restart && t.kill.is_some() {
                    continue;
                }
                if t.kill.is_some() || !task_ready(&app.def, t, now) {
                    return false;
                }
                if restart && t.config_version != app.def.version_info.last_config_change_at {
                    return false;
                }
                count += 1;
            }
            count == app.def.instances as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{AppEntry, TaskRecord};
    use model::Timestamp;

    /// A state with the app `body` and one task of its current version, started at
    /// `started_at` (None: still staging).
    fn state(body: &str, started_at: Option<i64>) -> (State, PathId) {
        let def = model::parse_definition(body.as_bytes(), None, Timestamp(1)).unwrap();
        let id = def.id.clone();
        let task = TaskRecord {
            id: format!("{}.t1", id.safe_name()),
            app_id: id.clone(),
            version: def.version,
            config_version: def.version_info.last_config_change_at,
            state: if started_at.is_some() {
                TaskState::TaskRunning
            } else {
                TaskState::TaskStaging
            },
            staged_at: Timestamp(0),
            started_at: started_at.map(Timestamp),
            host_ports: Vec::new(),
            service_ports: Vec::new(),
            proc: None,
            sandbox: Default::default(),
            kill: None,
            health: vec![Default::default(); def.health_checks.len()],
            limits_enforced: false,
            last_probe: Vec::new(),
            probing: Vec::new(),
            watched: true,
            launching: false,
            backend: Default::default(),
            docker: false,
            container: None,
            ip: None,
            run_as: None,
            host: None,
            target: None,
        };
        let mut st = State::default();
        st.apps
            .insert(id.clone(), AppEntry::new(def, Default::default()));
        st.tasks.insert(task.id.clone(), task);
        (st, id)
    }

    const NO_CHECKS: &str = r#"{"id": "/crash", "cmd": "exit 3", "instances": 1}"#;

    #[test]
    fn a_task_without_checks_counts_only_once_it_stayed_up() {
        let check = |started: Option<i64>, now: i64, want: bool| {
            let (st, id) = state(NO_CHECKS, started);
            for action in [ActionKind::ScaleApplication, ActionKind::RestartApplication] {
                assert_eq!(
                    step_done(&st, &id, action, now),
                    want,
                    "{action:?} started {started:?} now {now}"
                );
            }
        };
        // Staging never counts; running for a moment (a command that exits at once) does
        // not either; running for MIN_UP_MS does.
        check(None, 100_000, false);
        check(Some(100_000), 100_000, false);
        check(Some(100_000), 100_000 + MIN_UP_MS - 1, false);
        check(Some(100_000), 100_000 + MIN_UP_MS, true);
    }

    #[test]
    fn a_task_with_checks_counts_when_healthy_however_young() {
        let body = r#"{"id": "/web", "cmd": "serve", "instances": 1,
            "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}]}"#;
        let (mut st, id) = state(body, Some(100_000));
        assert!(!step_done(&st, &id, ActionKind::ScaleApplication, 100_000));
        for t in st.tasks.values_mut() {
            t.health[0].alive = Some(true);
            t.health[0].first_success = Some(100_000);
        }
        assert!(step_done(&st, &id, ActionKind::ScaleApplication, 100_000));
    }

    #[test]
    fn no_task_means_not_done() {
        let (mut st, id) = state(NO_CHECKS, Some(0));
        st.tasks.clear();
        assert!(!step_done(&st, &id, ActionKind::ScaleApplication, 100_000));
    }
}
