//! Runs queued per pipeline and executed: numbering, retries, cancellation, the workspace
//! checkout, the pipeline's other repositories, and the run's end state.

use super::checkout::{checkout, git, read_pipeline};
use super::observer::StoreObserver;
use super::params::{check_params, with_vars};
use super::steps::ServerSteps;
use super::waits::{Ending, Turn};
use super::{Service, ServiceError, Source, now_ms};
use crate::{Outputs, RunSpec, StepState, Values};
use model::pipeline::Pipeline;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use store::{RunRow, RunStatus, StepRow, StepStatus};
use tokio_util::sync::CancellationToken;

impl Service {
    /// Cancels a queued or running run: running steps' process trees are killed, pending
    /// approvals end, the rest does not run; the run ends `cancelled`.
    pub fn cancel(&self, id: &str, by: &str) -> Result<(), ServiceError> {
        let run = self
            .inner
            .store
            .run(id)?
            .ok_or_else(|| ServiceError::NotFound(format!("no run {id}")))?;
        if let Some((token, who)) = self
            .inner
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            *who = Some(Ending::Cancelled(by.to_string()));
            token.cancel();
            return Ok(());
        }
        if run.status == RunStatus::Queued {
            // Not started: it never will.
            self.inner.store.set_run_status(
                id,
                RunStatus::Cancelled,
                Some(&format!("cancelled by {by}")),
                None,
                Some(now_ms()),
            )?;
            return Ok(());
        }
        Err(ServiceError::Invalid(format!(
            "run {id} is {}, not queued or running",
            run.status
        )))
    }

    /// Queues a run; it starts when the pipeline's earlier runs have finished.
    pub fn trigger(
        &self,
        name: &str,
        event: &str,
        triggered_by: &str,
        params: BTreeMap<String, String>,
    ) -> Result<RunRow, ServiceError> {
        self.trigger_at(name, event, triggered_by, params, None)
    }

    /// [`Service::trigger`] for a given commit of the pipeline's branch (a webhook's
    /// payload names the commit that was pushed: the run builds that one, not whatever
    /// the branch points at later).
    pub fn trigger_at(
        &self,
        name: &str,
        event: &str,
        triggered_by: &str,
        params: BTreeMap<String, String>,
        sha: Option<&str>,
    ) -> Result<RunRow, ServiceError> {
        if let Some(sha) = sha
            && (sha.len() < 7 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(ServiceError::Invalid(format!("`{sha}` is not a commit id")));
        }
        let source = self.source(name)?;
        // A run for this commit exists now: polling must not start another for it.
        if let Some(sha) = sha
            && let Some(p) = self
                .inner
                .polls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(name)
        {
            p.seen = Some(sha.to_string());
        }
        let mut run = RunRow {
            id: uuid::Uuid::new_v4().to_string(),
            pipeline: name.to_string(),
            number: 0,
            status: RunStatus::Queued,
            event: event.into(),
            triggered_by: triggered_by.into(),
            branch: source.branch.clone(),
            sha: sha.unwrap_or_default().to_string(),
            params: serde_json::to_string(&params).unwrap_or_else(|_| "{}".into()),
            reason: None,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
        };
        run.number = self.inner.store.create_run(&run)?;
        self.spawn_run(run.clone(), source, BTreeMap::new());
        Ok(run)
    }

    /// Runs a failed, cancelled or interrupted run again from where it failed: a new run of
    /// the same commit and parameters in which the steps that had succeeded are not run
    /// again (their outputs are kept).
    pub fn retry(&self, id: &str, triggered_by: &str) -> Result<RunRow, ServiceError> {
        let old = self
            .inner
            .store
            .run(id)?
            .ok_or_else(|| ServiceError::NotFound(format!("no run {id}")))?;
        if !matches!(
            old.status,
            RunStatus::Failed
                | RunStatus::Cancelled
                | RunStatus::Interrupted
                | RunStatus::Superseded
        ) {
            return Err(ServiceError::Invalid(format!(
                "run {id} is {}; only failed, cancelled, interrupted or superseded runs are retried",
                old.status
            )));
        }
        let source = self.source(&old.pipeline)?;
        let done: BTreeMap<String, Outputs> = self
            .inner
            .store
            .steps(id)?
            .into_iter()
            .filter(|s| s.status == StepStatus::Succeeded)
            .map(|s| (s.name, serde_json::from_str(&s.outputs).unwrap_or_default()))
            .collect();
        let mut run = RunRow {
            id: uuid::Uuid::new_v4().to_string(),
            number: 0,
            status: RunStatus::Queued,
            event: "retry".into(),
            triggered_by: triggered_by.into(),
            reason: None,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
            ..old
        };
        run.number = self.inner.store.create_run(&run)?;
        // The kept steps show in the new run as they ended in the old one.
        for (name, outputs) in &done {
            self.inner.store.put_step(
                &run.id,
                &StepRow {
                    name: name.clone(),
                    status: StepStatus::Succeeded,
                    reason: Some(format!("kept from run {id}")),
                    outputs: serde_json::to_string(outputs).unwrap_or_else(|_| "{}".into()),
                    ..StepRow::default()
                },
            )?;
        }
        self.spawn_run(run.clone(), source, done);
        Ok(run)
    }

    pub(super) fn spawn_run(&self, run: RunRow, source: Source, done: BTreeMap<String, Outputs>) {
        let inner = self.inner.clone();
        let queue = inner
            .queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(run.pipeline.clone())
            .or_default()
            .clone();
        let service = self.clone();
        inner.tracker.spawn(async move {
            // Given up early when the run starts waiting for an approval.
            let turn = Turn::holding(queue.lock_owned().await);
            let id = run.id.clone();
            if service
                .inner
                .store
                .run(&id)
                .ok()
                .flatten()
                .is_some_and(|r| r.status == RunStatus::Cancelled)
            {
                return;
            }
            if let Err(e) = service.execute(run, source, done, turn).await {
                let _ = service.inner.store.set_run_status(
                    &id,
                    RunStatus::Failed,
                    Some(&e.to_string()),
                    None,
                    Some(now_ms()),
                );
            }
        });
    }

    async fn execute(
        &self,
        run: RunRow,
        source: Source,
        done: BTreeMap<String, Outputs>,
        turn: Turn,
    ) -> Result<(), ServiceError> {
        let store = &self.inner.store;
        store.set_run_status(&run.id, RunStatus::Running, None, Some(now_ms()), None)?;
        let run_dir = self.inner.runs_dir.join(&run.id);
        let workspace = run_dir.join("workspace");
        // The pipeline file as the run first read it, kept beside (not in) the workspace:
        // steps may change the workspace, never the definition a resumed run follows.
        let kept_file = run_dir.join("pipeline.yaml");
        let run_as = self.step_user(&run.pipeline)?;
        let resumed = !run.sha.is_empty() && workspace.is_dir() && kept_file.is_file();
        let sha = if resumed {
            // No git command runs in a workspace steps have written (its hooks and
            // configuration are theirs).
            run.sha.clone()
        } else {
            let _ = std::fs::remove_dir_all(&workspace);
            std::fs::create_dir_all(&run_dir)
                .map_err(|e| ServiceError::Invalid(format!("cannot create the workspace: {e}")))?;
            let head = checkout(&source.repo, &source.branch, &workspace).await;
            self.note_git(
                &run.pipeline,
                head.as_ref().map(|_| ()).map_err(|e| e.to_string()),
            );
            let head = head?;
            let sha = if run.sha.is_empty() || run.sha == head {
                head
            } else {
                // A retry builds the commit of the run it repeats.
                git(
                    &["checkout", "--quiet", "--detach", &run.sha],
                    Some(&workspace),
                )
                .await?;
                run.sha.clone()
            };
            let (_, text) = read_pipeline(&workspace, &source.file)?;
            write_private(&kept_file, &text).map_err(|e| {
                ServiceError::Invalid(format!("cannot keep the pipeline file: {e}"))
            })?;
            if let Some(u) = &run_as {
                crate::step_user::give(&workspace, u.uid, u.gid).map_err(|e| {
                    ServiceError::Invalid(format!("cannot give the workspace to the steps: {e}"))
                })?;
            }
            sha
        };
        store.set_run_sha(&run.id, &sha)?;
        // A run for this commit exists now: polling must not start another for it.
        if let Some(p) = self
            .inner
            .polls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&run.pipeline)
        {
            p.seen = Some(sha.clone());
        }
        let text = std::fs::read_to_string(&kept_file).map_err(|e| {
            ServiceError::Invalid(format!("cannot read the run's pipeline file: {e}"))
        })?;
        let pipeline = model::pipeline::parse_pipeline(&text)
            .map_err(|e| ServiceError::Invalid(format!("{}:\n{e}", source.file)))?;
        // Trigger-time checks follow the file as the newest run read it, unless the
        // pipeline was registered anew (another repository, branch or file) meanwhile.
        if let Ok(mut current) = self.source(&run.pipeline)
            && (&current.repo, &current.branch, &current.file)
                == (&source.repo, &source.branch, &source.file)
            && current.file_text.as_deref() != Some(text.as_str())
        {
            current.file_text = Some(text);
            if let Ok(json) = serde_json::to_string(&current) {
                store.put_pipeline(&run.pipeline, &json, now_ms())?;
            }
        }
        let given: BTreeMap<String, String> = serde_json::from_str(&run.params).unwrap_or_default();
        let params = check_params(&pipeline, &given)?;
        let mut secrets = BTreeMap::new();
        for step in &pipeline.steps {
            for name in &step.secrets {
                let value = (self.inner.secrets)(&run.pipeline, name).map_err(|e| {
                    ServiceError::Invalid(format!("secret `{name}` of step `{}`: {e}", step.name))
                })?;
                secrets.insert(name.clone(), value);
            }
        }
        let values = Values {
            params,
            run: BTreeMap::from([
                ("id".into(), run.id.clone()),
                ("number".into(), run.number.to_string()),
                ("sha".into(), sha),
                ("branch".into(), run.branch.clone()),
            ]),
            secrets,
            ..Values::default()
        };
        let repos = self
            .checkout_repos(&run.id, &run.pipeline, &source, &pipeline, &values)
            .await?;
        let mut values = values;
        for (name, r) in &repos {
            // Commands find each checkout as $SLIPWAY_REPO_<NAME>.
            let var: String = name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            values.vars.insert(
                format!("SLIPWAY_REPO_{var}"),
                r.dir.to_string_lossy().to_string(),
            );
        }
        let spec = RunSpec {
            pipeline: pipeline.clone(),
            workspace,
            values,
            branch: run.branch.clone(),
            event: run.event.clone(),
            max_parallel: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2),
            done,
            run_as,
        };
        for step in &pipeline.steps {
            if spec.done.contains_key(&step.name) {
                continue;
            }
            store.put_step(
                &run.id,
                &StepRow {
                    name: step.name.clone(),
                    status: StepStatus::Pending,
                    outputs: "{}".into(),
                    ..StepRow::default()
                },
            )?;
        }
        let cancel = self.inner.shutdown.child_token();
        self.inner
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(run.id.clone(), (cancel.clone(), None));
        // Start from what is recorded (steps kept from an earlier run, approvals decided
        // before a restart).
        let observer = Arc::new(StoreObserver::new(
            store.clone(),
            run.id.clone(),
            store.steps(&run.id)?,
            self.metrics().map(|m| (run.pipeline.clone(), m)),
        ));
        let stop_flushing = CancellationToken::new();
        self.inner
            .tracker
            .spawn(observer.clone().flush_until(stop_flushing.clone()));
        let server_steps = Arc::new(ServerSteps {
            service: self.clone(),
            run: run.id.clone(),
            observer: observer.clone(),
            pipeline: run.pipeline.clone(),
            branch: run.branch.clone(),
            triggered_by: run.triggered_by.clone(),
            event: run.event.clone(),
            number: run.number,
            repos,
            definition: Arc::new(pipeline.clone()),
            turn,
            run_as: spec.run_as.as_ref().map(|u| (u.uid, u.gid)),
        });
        if let Some(m) = self.metrics() {
            m.run_started(&run.pipeline);
        }
        let result = crate::execute(spec, observer.clone(), server_steps, cancel.clone()).await;
        stop_flushing.cancel();
        observer.flush();
        // Nothing of the run waits any more, even where the executor dropped a waiting
        // approval without polling it again (a cancel).
        self.inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(r, _), _| *r != run.id);
        self.env_acquired(&run.id);
        if self.inner.shutdown.is_cancelled() {
            // Left for recovery: it resumes or is marked interrupted at the next start.
            return Ok(());
        }
        let cancelled_by = self
            .inner
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&run.id)
            .and_then(|(_, ending)| ending);
        let (status, reason) = if result.succeeded() {
            (RunStatus::Succeeded, None)
        } else if let Some(Ending::Cancelled(by)) = cancelled_by {
            (RunStatus::Cancelled, Some(format!("cancelled by {by}")))
        } else if let Some(Ending::Superseded(reason)) = cancelled_by {
            (RunStatus::Superseded, Some(reason))
        } else {
            let failed: Vec<String> = result
                .steps
                .iter()
                .filter(|(_, s)| matches!(s, StepState::Failed { .. } | StepState::Cancelled))
                .map(|(n, _)| format!("`{n}`"))
                .collect();
            (
                RunStatus::Failed,
                Some(format!("failed: {}", failed.join(", "))),
            )
        };
        let finished = now_ms();
        store.set_run_status(&run.id, status, reason.as_deref(), None, Some(finished))?;
        if let Some(m) = self.metrics() {
            let started = run.started_at.unwrap_or(run.created_at);
            let seconds = finished.saturating_sub(started).max(0) as f64 / 1000.0;
            m.run_finished(&run.pipeline, status.as_str(), seconds);
        }
        Ok(())
    }
}

impl Service {
    /// Checks out the pipeline's other repositories (`repos`) for the run, each with its
    /// own credentials, next to the workspace; kept when the run resumes after a restart.
    async fn checkout_repos(
        &self,
        run: &str,
        registered: &str,
        source: &Source,
        pipeline: &Pipeline,
        values: &Values,
    ) -> Result<BTreeMap<String, RepoCheckout>, ServiceError> {
        let values = with_vars(pipeline, values.clone());
        let base = self.inner.runs_dir.join(run);
        let mut out = BTreeMap::new();
        for (name, repo) in &pipeline.repos {
            let fail = |e: String| ServiceError::Git(format!("repository `{name}`: {e}"));
            let url = values.render(&repo.url).map_err(fail)?;
            let url = crate::repos::resolve_url(&source.repo, &url);
            let branch = repo
                .branch
                .as_ref()
                .map(|b| values.render(b))
                .transpose()
                .map_err(fail)?;
            let creds = match &repo.secret {
                Some(secret) => Some(crate::repos::Credentials::from_secret(
                    &(self.inner.secrets)(registered, secret)
                        .map_err(|e| fail(format!("secret `{secret}`: {e}")))?,
                )),
                None => None,
            };
            let dir = base.join("repos").join(name);
            let sha = if dir.join(".git").exists() {
                git(&["rev-parse", "HEAD"], Some(&dir)).await?
            } else {
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(base.join("repos"))
                    .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
                crate::repos::clone(&url, branch.as_deref(), &dir, creds.as_ref(), &base)
                    .await
                    .map_err(fail)?
            };
            out.insert(name.clone(), RepoCheckout { dir, sha, url });
        }
        Ok(out)
    }
}

/// Another repository as checked out for a run.
#[derive(Debug, Clone)]
pub(super) struct RepoCheckout {
    pub(super) dir: PathBuf,
    pub(super) sha: String,
    pub(super) url: String,
}

/// Writes `text` to `path` readable by the server alone (0600), replacing what was there.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::File::options()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
