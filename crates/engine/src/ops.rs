//! Engine operations behind the Marathon API: every change validates, checks deployment
//! locks, writes the store in one transaction, updates memory, publishes events and wakes
//! the reconcile loop — in that order, so an acknowledged change is never lost.

use crate::Event;
use crate::backend::BackendKind;
use crate::state::{Action, ActionKind, Deployment, KillKind, Outcome, State, TaskRecord};
use crate::{Engine, EngineError, now_ms, ports};
use model::{AppDefinition, DefinitionError, PathId, Timestamp, VersionInfo};
use serde_json::Value;
use std::sync::Arc;

/// What a deployment-creating call returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentResult {
    /// New deployment id.
    pub deployment_id: String,
    /// Version of the target state.
    pub version: Timestamp,
}

/// Result of a task kill: the killed tasks, or a deployment when `scale=true`.
#[derive(Debug)]
pub enum KillResult {
    /// The tasks being killed (scale=false).
    Tasks(Vec<KilledTask>),
    /// One task (a kill by task id without scale); `None` when it was already gone.
    Task(Option<Box<KilledTask>>),
    /// A scale deployment (scale=true).
    Deployment(DeploymentResult),
}

/// A task as it was when its kill started.
#[derive(Clone, Debug)]
pub struct KilledTask {
    /// The task.
    pub task: TaskRecord,
    /// Its app has health checks (task views then carry health results).
    pub health_checks: bool,
}

/// How [`Engine::update_app`] gets an app's new definition.
pub enum AppUpdate<'a> {
    /// Computed from the current definition (`None`: the app does not exist yet) under the
    /// engine's lock, so a partial update merges onto what is current when it commits.
    /// The engine stamps the result's id and versions.
    Define(DefineFn<'a>),
    /// A stored version restored (Marathon's `{"version": ...}` rollback).
    Rollback(Timestamp),
    /// Only the instance count changes.
    Scale(u32),
}

/// The new definition from the current one, for [`AppUpdate::Define`].
pub type DefineFn<'a> =
    Box<dyn FnOnce(Option<&AppDefinition>) -> Result<AppDefinition, DefinitionError> + 'a>;

/// What [`Engine::update_app`] did.
#[derive(Clone, Debug)]
pub struct Updated {
    /// The deployment it started.
    pub deployment: DeploymentResult,
    /// The app did not exist before.
    pub created: bool,
    /// The app's definition now.
    pub app: AppDefinition,
}

/// Decides, for the caller of an operation, whether the changes it is about to commit are
/// allowed: environment policies, privileged options, who owns a vhost or service port,
/// quotas. The engine calls it under its lock for every app the operation changes, with
/// the normalised definitions before and after (a partial update merged, a rollback's
/// restored version) and every app as it stands; a refusal commits nothing. Only wire
/// formats are checked before the engine parses: the definitions that would run are
/// checked here.
pub trait Admission {
    /// `Ok` to go ahead; `Err` refuses the whole operation.
    fn admit(&self, change: &ProposedChange<'_>) -> Result<(), Refusal>;
}

/// One app's change as [`Admission::admit`] sees it.
pub struct ProposedChange<'a> {
    /// The app's definition now (`None`: being created).
    pub before: Option<&'a AppDefinition>,
    /// The definition it would get (`None`: being deleted).
    pub after: Option<&'a AppDefinition>,
    /// Every app as it stands (the changed one included, in its current form).
    pub apps: &'a [&'a AppDefinition],
}

/// Why an [`Admission`] refused a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The caller may not do this (403).
    Forbidden(String),
    /// It clashes with what another app holds (409).
    Conflict(String),
    /// It exceeds a limit (422).
    Limit(String),
}

/// Admits everything: for the engine's own callers and tests, never for a request.
pub struct Unchecked;

impl Admission for Unchecked {
    fn admit(&self, _: &ProposedChange<'_>) -> Result<(), Refusal> {
        Ok(())
    }
}

/// One app's change within a deployment.
struct Change {
    id: PathId,
    before: Option<AppDefinition>,
    after: Option<AppDefinition>,
}

fn not_found(id: &PathId) -> EngineError {
    EngineError::NotFound(format!("App '{id}' does not exist"))
}

/// The current definition of an app, or Marathon's 404.
fn current(st: &State, id: &PathId) -> Result<AppDefinition, EngineError> {
    st.apps
        .get(id)
        .map(|a| a.def.clone())
        .ok_or_else(|| not_found(id))
}

/// Stamps a new definition with the version it is committed at.
fn stamp(def: &mut AppDefinition, version: Timestamp) {
    def.version = version;
    def.version_info = VersionInfo {
        last_scaling_at: version,
        last_config_change_at: version,
    };
}

impl Engine {
    /// `POST /v2/apps`: creates an app from a normalised definition (its version is
    /// stamped here). Returns the definition as stored and the deployment.
    pub fn create_app(
        &self,
        mut def: AppDefinition,
        force: bool,
        admit: &dyn Admission,
    ) -> Result<(AppDefinition, DeploymentResult), EngineError> {
        let mut st = self.lock();
        let version = st.next_version();
        stamp(&mut def, version);
        if st.apps.contains_key(&def.id) {
            return Err(EngineError::AlreadyExists(def.id));
        }
        ports::assign_service_ports(&st, &mut def, None, &self.inner.cfg.service_ports)?;
        let id = def.id.clone();
        let result = self.commit(
            &mut st,
            vec![Change {
                id: id.clone(),
                before: None,
                after: Some(def),
            }],
            force,
            "superseded by",
            admit,
        )?;
        let app = current(&st, &id)?;
        Ok((app, result))
    }

    /// `PUT /v2/apps/{id}` (and PATCH with `must_exist`): update, scale, rollback or create.
    pub fn update_app(
        &self,
        id: &PathId,
        update: AppUpdate<'_>,
        force: bool,
        must_exist: bool,
        admit: &dyn Admission,
    ) -> Result<Updated, EngineError> {
        if let Some(p) = PathId::problems(&id.to_string()).into_iter().next() {
            return Err(DefinitionError::invalid("/id", p).into());
        }
        let mut st = self.lock();
        let before = st.apps.get(id).map(|a| a.def.clone());
        if before.is_none() && (must_exist || matches!(update, AppUpdate::Scale(_))) {
            return Err(not_found(id));
        }
        let version = st.next_version();
        let mut after = match update {
            AppUpdate::Rollback(ts) => {
                let mut def = self.inner.store.app_version(id, ts)?.ok_or_else(|| {
                    EngineError::NotFound(format!("App '{id}' does not exist in version {ts}"))
                })?;
                // The restored configuration keeps its own config timestamp, so tasks that
                // still run it are kept and only the others are replaced.
                def.version = version;
                def.version_info.last_scaling_at = version;
                def
            }
            AppUpdate::Define(define) => {
                let mut def = define(before.as_ref())?;
                def.id = id.clone();
                stamp(&mut def, version);
                def
            }
            AppUpdate::Scale(instances) => {
                let mut def = current(&st, id)?;
                def.instances = instances;
                stamp(&mut def, version);
                def
            }
        };
        if let Some(b) = &before
            && b.same_config(&after)
        {
            after.version_info.last_config_change_at = b.version_info.last_config_change_at;
        }
        ports::assign_service_ports(
            &st,
            &mut after,
            before.as_ref(),
            &self.inner.cfg.service_ports,
        )?;
        let created = before.is_none();
        let deployment = self.commit(
            &mut st,
            vec![Change {
                id: id.clone(),
                before,
                after: Some(after),
            }],
            force,
            "superseded by",
            admit,
        )?;
        Ok(Updated {
            deployment,
            created,
            app: current(&st, id)?,
        })
    }

    /// `DELETE /v2/apps/{id}`: removes the app at once; its tasks are killed by a Stop deployment.
    pub fn delete_app(
        &self,
        id: &PathId,
        force: bool,
        admit: &dyn Admission,
    ) -> Result<DeploymentResult, EngineError> {
        let mut st = self.lock();
        let before = current(&st, id)?;
        let result = self.commit(
            &mut st,
            vec![Change {
                id: id.clone(),
                before: Some(before),
                after: None,
            }],
            force,
            "superseded by",
            admit,
        )?;
        self.inner
            .events
            .publish(Event::AppTerminated { app_id: id.clone() });
        Ok(result)
    }

    /// `POST /v2/apps/{id}/restart`: a new version that replaces every task.
    pub fn restart_app(
        &self,
        id: &PathId,
        force: bool,
        admit: &dyn Admission,
    ) -> Result<DeploymentResult, EngineError> {
        let mut st = self.lock();
        let before = current(&st, id)?;
        let version = st.next_version();
        let mut after = before.clone();
        after.version = version;
        after.version_info.last_config_change_at = version;
        after.version_info.last_scaling_at = version;
        self.commit(
            &mut st,
            vec![Change {
                id: id.clone(),
                before: Some(before),
                after: Some(after),
            }],
            force,
            "superseded by",
            admit,
        )
    }

    /// `DELETE /v2/apps/{id}/tasks[/{taskId}]`: kills tasks of one app, optionally scaling down.
    #[allow(clippy::too_many_arguments)]
    pub fn kill_app_tasks(
        &self,
        id: &PathId,
        task_id: Option<&str>,
        host: Option<&str>,
        scale: bool,
        wipe: bool,
        force: bool,
        admit: &dyn Admission,
    ) -> Result<KillResult, EngineError> {
        if scale && wipe {
            return Err(EngineError::BadRequest(
                "You cannot use scale and wipe at the same time.".into(),
            ));
        }
        let st = self.lock();
        if !st.apps.contains_key(id) {
            return Err(not_found(id));
        }
        let ids: Vec<String> = match task_id {
            Some(t) => {
                if st.tasks.get(t).is_none_or(|x| &x.app_id != id) {
                    return Err(EngineError::NotFound(format!("Task '{t}' does not exist")));
                }
                vec![t.to_string()]
            }
            None => st
                .tasks_of(id)
                .filter(|_| host.is_none_or(|h| h == self.inner.cfg.host || h == "*"))
                .map(|t| t.id.clone())
                .collect(),
        };
        drop(st);
        let single = task_id.is_some() && !scale;
        match self.kill_by_ids(&ids, scale, force, admit)? {
            KillResult::Tasks(tasks) if single => {
                Ok(KillResult::Task(tasks.into_iter().next().map(Box::new)))
            }
            other => Ok(other),
        }
    }

    /// `POST /v2/tasks/delete`: kills tasks by id; the app comes from the task id itself.
    pub fn kill_tasks(
        &self,
        ids: &[String],
        scale: bool,
        wipe: bool,
        force: bool,
        admit: &dyn Admission,
    ) -> Result<KillResult, EngineError> {
        if scale && wipe {
            return Err(EngineError::BadRequest(
                "You cannot use scale and wipe at the same time.".into(),
            ));
        }
        for id in ids {
            if parse_task_app(id).is_none() {
                return Err(EngineError::BadRequest(format!("Invalid task id '{id}'")));
            }
        }
        let known: Vec<String> = {
            let st = self.lock();
            ids.iter()
                .filter(|id| st.tasks.contains_key(id.as_str()))
                .cloned()
                .collect()
        };
        self.kill_by_ids(&known, scale, force, admit)
    }

    fn kill_by_ids(
        &self,
        ids: &[String],
        scale: bool,
        force: bool,
        admit: &dyn Admission,
    ) -> Result<KillResult, EngineError> {
        let mut st = self.lock();
        // A task another scheduler runs that it cannot kill by itself is refused before
        // anything changes (with scale, the scheduler's own scale-down removes one).
        if !scale {
            for t in ids.iter().filter_map(|id| st.tasks.get(id)) {
                if t.backend == BackendKind::Scheduled {
                    self.kill_check_scheduled(t)
                        .map_err(EngineError::Conflict)?;
                }
            }
        }
        let now = now_ms();
        let mut result = None;
        if scale {
            let mut per_app: std::collections::BTreeMap<PathId, u32> = Default::default();
            for id in ids {
                if let Some(t) = st.tasks.get(id).filter(|t| t.kill.is_none()) {
                    *per_app.entry(t.app_id.clone()).or_default() += 1;
                }
            }
            let version = st.next_version();
            let changes: Vec<Change> = per_app
                .into_iter()
                .filter_map(|(app, n)| {
                    let before = st.apps.get(&app)?.def.clone();
                    let mut after = before.clone();
                    after.instances = before.instances.saturating_sub(n);
                    after.version = version;
                    after.version_info.last_scaling_at = version;
                    Some(Change {
                        id: app,
                        before: Some(before),
                        after: Some(after),
                    })
                })
                .collect();
            if !changes.is_empty() {
                result = Some(self.commit(&mut st, changes, force, "superseded by", admit)?);
            }
        }
        let mut killed = Vec::new();
        for id in ids {
            if let Some(t) = st.tasks.get(id) {
                killed.push(KilledTask {
                    health_checks: st
                        .apps
                        .get(&t.app_id)
                        .is_some_and(|a| !a.def.health_checks.is_empty()),
                    task: t.clone(),
                });
            }
            self.start_kill(
                &mut st,
                id,
                KillKind::Api,
                "killed through the API".into(),
                now,
            );
        }
        drop(st);
        self.wake();
        Ok(match result {
            Some(d) => KillResult::Deployment(d),
            None if scale => KillResult::Deployment(DeploymentResult {
                deployment_id: uuid::Uuid::new_v4().to_string(),
                version: Timestamp::now(),
            }),
            None => KillResult::Tasks(killed),
        })
    }

    /// `DELETE /v2/deployments/{id}`: with `force`, stops it where it is (returns `None`);
    /// otherwise rolls its apps back to their definitions before it, as a new deployment.
    pub fn cancel_deployment(
        &self,
        id: &str,
        force: bool,
        admit: &dyn Admission,
    ) -> Result<Option<DeploymentResult>, EngineError> {
        let mut st = self.lock();
        let Some(pos) = st.deployments.iter().position(|d| d.id == id) else {
            return Err(EngineError::NotFound(format!(
                "DeploymentPlan {id} does not exist"
            )));
        };
        if force {
            let mut d = st.deployments[pos].clone();
            self.finish(&mut d, Outcome::Failed, Some("cancelled".into()))?;
            st.deployments.remove(pos);
            self.inner.events.publish(Event::DeploymentFailed {
                plan: Arc::new(d),
                reason: "cancelled".into(),
            });
            self.wake();
            return Ok(None);
        }
        let d = st.deployments[pos].clone();
        let version = st.next_version();
        let changes: Vec<Change> = d
            .affected_apps()
            .into_iter()
            .map(|app| {
                let before = st.apps.get(&app).map(|a| a.def.clone());
                let after = d.original.iter().find(|o| o.id == app).map(|o| {
                    let mut o = o.clone();
                    // Like the explicit rollback: the original config timestamp comes back
                    // with the original configuration.
                    o.version = version;
                    o.version_info.last_scaling_at = version;
                    o
                });
                Change {
                    id: app,
                    before,
                    after,
                }
            })
            .collect();
        self.commit(&mut st, changes, true, "rolled back by", admit)
            .map(Some)
    }

    /// `DELETE /v2/queue/{id}/delay`: forgets the launch backoff.
    pub fn reset_delay(&self, id: &PathId) -> Result<(), EngineError> {
        let mut st = self.lock();
        let app = st.apps.get_mut(id).ok_or_else(|| not_found(id))?;
        app.rt.reset_delay();
        let rt = serde_json::to_value(&app.rt).unwrap_or(Value::Null);
        self.inner.store.write(|tx| tx.put_runtime(id, &rt))?;
        drop(st);
        self.wake();
        Ok(())
    }

    /// Plans, persists and publishes one deployment for `changes`.
    fn commit(
        &self,
        st: &mut State,
        changes: Vec<Change>,
        force: bool,
        verb: &str,
        admit: &dyn Admission,
    ) -> Result<DeploymentResult, EngineError> {
        {
            let apps: Vec<&AppDefinition> = st.apps.values().map(|a| &a.def).collect();
            for c in &changes {
                let proposed = ProposedChange {
                    before: c.before.as_ref(),
                    after: c.after.as_ref(),
                    apps: &apps,
                };
                admit.admit(&proposed).map_err(|r| match r {
                    Refusal::Forbidden(m) => EngineError::Forbidden(m),
                    Refusal::Conflict(m) => EngineError::Conflict(m),
                    Refusal::Limit(m) => EngineError::Limit(m),
                })?;
            }
        }
        let locking: Vec<String> = st
            .deployments
            .iter()
            .filter(|d| changes.iter().any(|c| d.affects(&c.id)))
            .map(|d| d.id.clone())
            .collect();
        if !locking.is_empty() && !force {
            return Err(EngineError::Locked {
                deployments: locking,
            });
        }
        let now = now_ms();
        let version = changes
            .iter()
            .filter_map(|c| c.after.as_ref().map(|a| a.version))
            .max()
            .unwrap_or_else(|| st.next_version());
        let d = Deployment {
            id: uuid::Uuid::new_v4().to_string(),
            version,
            created_at: now,
            steps: steps_for(&changes),
            current_step: 0,
            original: changes.iter().filter_map(|c| c.before.clone()).collect(),
            target: changes.iter().filter_map(|c| c.after.clone()).collect(),
            outcome: None,
            reason: None,
            finished_at: None,
        };
        let reason = format!("{verb} deployment {}", d.id);
        let mut cancelled: Vec<Deployment> = st
            .deployments
            .iter()
            .filter(|x| locking.contains(&x.id))
            .cloned()
            .collect();
        for x in &mut cancelled {
            x.outcome = Some(Outcome::Failed);
            x.reason = Some(reason.clone());
            x.finished_at = Some(now);
        }
        // Runtime resets for config changes happen in the same transaction.
        let mut runtimes = Vec::new();
        for c in &changes {
            if let (Some(after), Some(entry)) = (&c.after, st.apps.get(&c.id)) {
                let config_changed = c.before.as_ref().is_none_or(|b| {
                    b.version_info.last_config_change_at != after.version_info.last_config_change_at
                });
                if config_changed {
                    let mut rt = entry.rt.clone();
                    rt.reset_delay();
                    runtimes.push((c.id.clone(), rt));
                }
            }
        }
        let d_json = serde_json::to_value(&d).unwrap_or(Value::Null);
        self.inner.store.write(|tx| {
            for c in &changes {
                match &c.after {
                    Some(def) => tx.put_app(def)?,
                    None => tx.delete_app(&c.id)?,
                }
            }
            for (id, rt) in &runtimes {
                tx.put_runtime(id, &serde_json::to_value(rt).unwrap_or(Value::Null))?;
            }
            for x in &cancelled {
                tx.finish_deployment(&x.id, now, &serde_json::to_value(x).unwrap_or(Value::Null))?;
            }
            tx.put_deployment(&d.id, d.created_at, &d_json)
        })?;
        // Durable: now update memory and tell the world.
        st.deployments.retain(|x| !locking.contains(&x.id));
        for x in cancelled {
            self.inner.events.publish(Event::DeploymentFailed {
                plan: Arc::new(x),
                reason: reason.clone(),
            });
        }
        for c in changes {
            match c.after {
                Some(def) => match st.apps.get_mut(&c.id) {
                    Some(entry) => entry.set_def(def),
                    None => {
                        let entry = crate::state::AppEntry::new(def, Default::default());
                        st.apps.insert(c.id.clone(), entry);
                    }
                },
                None => {
                    st.apps.remove(&c.id);
                }
            }
        }
        for (id, rt) in runtimes {
            if let Some(e) = st.apps.get_mut(&id) {
                e.rt = rt;
            }
        }
        self.inner.events.publish(Event::GroupChanged { version });
        self.inner
            .events
            .publish(Event::DeploymentInfo(Arc::new(d.clone())));
        let result = DeploymentResult {
            deployment_id: d.id.clone(),
            version,
        };
        st.deployments.push(d);
        self.wake();
        Ok(result)
    }

    /// Persists a finished deployment with its outcome.
    pub(crate) fn finish(
        &self,
        d: &mut Deployment,
        outcome: Outcome,
        reason: Option<String>,
    ) -> Result<(), EngineError> {
        let now = now_ms();
        d.outcome = Some(outcome);
        d.reason = reason;
        d.finished_at = Some(now);
        let body = serde_json::to_value(&*d).unwrap_or(Value::Null);
        self.inner
            .store
            .write(|tx| tx.finish_deployment(&d.id, now, &body))?;
        Ok(())
    }
}

/// Marathon's plan shape: new apps start with 0 instances in a first step, then everything
/// else (scale, restart, stop) runs together.
fn steps_for(changes: &[Change]) -> Vec<Vec<Action>> {
    let mut start = Vec::new();
    let mut main = Vec::new();
    for c in changes {
        let act = |action| Action {
            action,
            app: c.id.clone(),
        };
        match (&c.before, &c.after) {
            (None, Some(_)) => {
                start.push(act(ActionKind::StartApplication));
                main.push(act(ActionKind::ScaleApplication));
            }
            (Some(_), None) => main.push(act(ActionKind::StopApplication)),
            (Some(b), Some(a)) => main.push(act(
                if a.version_info.last_config_change_at != b.version_info.last_config_change_at {
                    ActionKind::RestartApplication
                } else {
                    ActionKind::ScaleApplication
                },
            )),
            (None, None) => {}
        }
    }
    [start, main]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect()
}

/// The app's safe name from a legacy task id (`<safe_name>.<uuid>`), as Marathon's
/// `LegacyTaskIdRegex` `^(.+)([\._])([^_\.]+)$` parses it.
pub(crate) fn parse_task_app(task_id: &str) -> Option<&str> {
    let pos = task_id.rfind(['.', '_'])?;
    let (app, rest) = (&task_id[..pos], &task_id[pos + 1..]);
    (!app.is_empty() && !rest.is_empty()).then_some(app)
}
