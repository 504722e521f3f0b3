//! Runs as the server keeps them: pipelines registered from git repositories, runs queued
//! per pipeline (one at a time, in order), each checked out into its own workspace and
//! executed with every state change and log line written to the store, approvals that
//! wait for a decision (or their timeout) without holding a worker, and recovery after a
//! restart: a run cut off while a step ran is marked interrupted, naming the step; a run
//! that was only waiting for approvals resumes, and its approvals are pending again.

use crate::{Observer, OtherSteps, Outputs, RunSpec, StepContext, StepState, Stream, Values};
use futures_util::future::BoxFuture;
use model::pipeline::{ParamKind, ParamValue, Pipeline, Step, StepKind, parse_pipeline};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use store::{RunRow, StepRow, Store};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Lines kept per step log.
pub const LOG_LINES_KEPT: usize = 10_000;

/// Where a pipeline's file lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// A git repository: a local path or a URL `git clone` understands.
    pub repo: String,
    /// The branch runs check out.
    pub branch: String,
    /// The pipeline file in it.
    #[serde(default = "default_file")]
    pub file: String,
    /// How often the branch is polled for new commits (from the file's `on.push.poll`,
    /// when its branches include this one); set on registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_ms: Option<u64>,
    /// Cron schedules (UTC) from the file's `on.cron`; set on registration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron: Vec<String>,
    /// The pipeline file as last read (at registration or by the newest run), for checks
    /// before a run starts: its parameters, who may start it, where it deploys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_text: Option<String>,
}

/// What a manual run would do, checked before it is queued (see [`Service::plan`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Who may start manual runs according to the file (`role:…`, `user:…`); empty: the
    /// environment policy alone decides.
    pub manual_allowed: Vec<String>,
    /// The environments its `deploy` steps deploy to with these parameters (steps whose
    /// environment depends on other steps' outputs are left out; `when` is not evaluated).
    pub deploy_envs: Vec<String>,
}

/// Whether `branch` is among `patterns` (`*` matches any run of characters).
pub fn branch_matches(patterns: &[String], branch: &str) -> bool {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
            Some((c, rest)) => s
                .split_first()
                .is_some_and(|(d, srest)| c == d && glob(rest, srest)),
        }
    }
    patterns
        .iter()
        .any(|p| glob(p.as_bytes(), branch.as_bytes()))
}

fn default_file() -> String {
    ".slipway/pipeline.yaml".into()
}

/// What can go wrong when asking the service for something.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No such pipeline, run or pending approval.
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid (parameters, pipeline file).
    #[error("{0}")]
    Invalid(String),
    /// git failed.
    #[error("git: {0}")]
    Git(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// A decision on an approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Approved (true) or rejected.
    pub approve: bool,
    /// Who decided (`user:dana`).
    pub by: String,
}

/// What an approval asks for, while it waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingApproval {
    /// The run.
    pub run: String,
    /// The approval step.
    pub step: String,
    /// The question, rendered.
    pub message: String,
    /// Who may decide according to the file (`role:…`, `user:…`); empty: the policy.
    pub approvers: Vec<String>,
    /// The environment whose approval policy applies.
    pub env: String,
}

struct Pending {
    tx: oneshot::Sender<Decision>,
    info: PendingApproval,
}

/// Resolves a secret's value by name.
pub type SecretLookup = Arc<dyn Fn(&str) -> Result<String, String> + Send + Sync>;

/// The pipeline service; cheap to clone.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    runs_dir: PathBuf,
    secrets: SecretLookup,
    /// Pending approvals by (run, step).
    approvals: Mutex<HashMap<(String, String), Pending>>,
    /// One run at a time per pipeline, in the order they were queued.
    queues: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    /// Polling state by pipeline.
    polls: Mutex<HashMap<String, PollState>>,
    /// Where `docker` steps build and push, when Docker is enabled.
    docker: Mutex<Option<DockerSetup>>,
    /// Where `deploy` steps deploy.
    deployer: Mutex<Option<Arc<dyn Deployer>>>,
    /// Running runs' cancel tokens, and who cancelled.
    cancels: Mutex<HashMap<String, (CancellationToken, Option<String>)>>,
    /// One deploy at a time per environment, in the order they asked (tokio's mutex is
    /// fair), so deploys to one environment land in commit order.
    env_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// How `deploy` steps reach the control plane (the server provides it).
pub trait Deployer: Send + Sync {
    /// Deploys the app definition `app` (Marathon JSON) as `who` (`user:NAME`,
    /// `webhook:NAME`, `poll`, `cron`) under the environment policy, replacing the app's
    /// definition; `Ok(deployment id)`, or `Err(reason)` when refused or invalid.
    fn deploy(&self, who: &str, app: serde_json::Value) -> Result<String, String>;
    /// A deployment's status: `running`, `success` or `failed`, with the reason and the
    /// current step (`current/total`), or `None` when unknown.
    fn status(&self, deployment: &str) -> Result<Option<DeploymentStatus>, String>;
    /// Whether `who` (as in [`Deployer::deploy`]) is an admin (who may force promotions).
    fn is_admin(&self, who: &str) -> bool;
}

/// What [`Deployer::status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentStatus {
    /// `running`, `success` or `failed`.
    pub status: String,
    /// Why it failed.
    pub reason: Option<String>,
    /// `step i/n: action app, ...`, for progress lines.
    pub progress: String,
}

/// How `docker` steps reach the Engine API and the registry.
#[derive(Clone, Debug)]
pub struct DockerSetup {
    /// The daemon.
    pub config: docker::DockerConfig,
    /// A Docker `config.json` with registry credentials, if any.
    pub registry_config: Option<PathBuf>,
}

/// When a pipeline's branch is polled next, and the last commit a run was started for.
struct PollState {
    due: tokio::time::Instant,
    seen: Option<String>,
}

fn now_ms() -> i64 {
    model::Timestamp::now().millis()
}

async fn git(args: &[&str], cwd: Option<&Path>) -> Result<String, ServiceError> {
    crate::repos::git(args, cwd, None, Path::new("/nonexistent"))
        .await
        .map_err(ServiceError::Git)
}

/// Clones `branch` of `repo` into `dir`; returns the commit.
async fn checkout(repo: &str, branch: &str, dir: &Path) -> Result<String, ServiceError> {
    let target = dir.to_string_lossy().to_string();
    git(
        &[
            "clone",
            "--quiet",
            "--single-branch",
            "--branch",
            branch,
            repo,
            &target,
        ],
        None,
    )
    .await?;
    git(&["rev-parse", "HEAD"], Some(dir)).await
}

/// `rel` inside `workspace`, refusing absolute paths and `..` (a file named in a pipeline
/// or a request must not reach outside the run's checkout).
pub fn in_workspace(workspace: &Path, rel: &str) -> Result<PathBuf, String> {
    let path = Path::new(rel);
    if path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("`{rel}` is outside the workspace"));
    }
    Ok(workspace.join(path))
}

fn read_pipeline(workspace: &Path, file: &str) -> Result<(Pipeline, String), ServiceError> {
    let path = in_workspace(workspace, file).map_err(ServiceError::Invalid)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServiceError::Invalid(format!("cannot read {file}: {e}")))?;
    let pipeline =
        parse_pipeline(&text).map_err(|e| ServiceError::Invalid(format!("{file}:\n{e}")))?;
    Ok((pipeline, text))
}

/// The pipeline's variables rendered with `values` (parameters and run facts).
fn with_vars(pipeline: &Pipeline, mut values: Values) -> Values {
    for (name, text) in &pipeline.vars {
        let rendered = values.render(text).unwrap_or_else(|_| text.clone());
        values.vars.insert(name.clone(), rendered);
    }
    values
}

/// Checks raw parameter values against the pipeline's declarations; defaults filled in.
pub fn check_params(
    pipeline: &Pipeline,
    given: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, ParamValue>, ServiceError> {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    for name in given.keys() {
        if !pipeline.params.contains_key(name) {
            problems.push(format!("unknown parameter `{name}`"));
        }
    }
    for (name, p) in &pipeline.params {
        let value = match (given.get(name), &p.kind) {
            (None, _) => match &p.default {
                Some(d) => d.clone(),
                None if p.required => {
                    problems.push(format!("parameter `{name}` is required"));
                    continue;
                }
                None if matches!(p.kind, ParamKind::Bool) => ParamValue::Bool(false),
                None => ParamValue::Text(String::new()),
            },
            (Some(v), ParamKind::Bool) => match v.as_str() {
                "true" => ParamValue::Bool(true),
                "false" => ParamValue::Bool(false),
                _ => {
                    problems.push(format!("parameter `{name}` is true or false, not `{v}`"));
                    continue;
                }
            },
            (Some(v), ParamKind::Choice(options)) if !options.contains(v) => {
                problems.push(format!(
                    "parameter `{name}` is one of {}, not `{v}`",
                    options.join(", ")
                ));
                continue;
            }
            (Some(v), _) => ParamValue::Text(v.clone()),
        };
        out.insert(name.clone(), value);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ServiceError::Invalid(problems.join("; ")))
    }
}

impl Service {
    /// A service keeping runs' workspaces under `runs_dir`.
    pub fn new(store: Arc<Store>, runs_dir: PathBuf, secrets: SecretLookup) -> Service {
        Service {
            inner: Arc::new(Inner {
                store,
                runs_dir,
                secrets,
                approvals: Mutex::new(HashMap::new()),
                queues: Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                shutdown: CancellationToken::new(),
                polls: Mutex::new(HashMap::new()),
                docker: Mutex::new(None),
                deployer: Mutex::new(None),
                cancels: Mutex::new(HashMap::new()),
                env_locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn deployer(&self) -> Option<Arc<dyn Deployer>> {
        self.inner
            .deployer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn docker_setup(&self) -> Option<DockerSetup> {
        self.inner
            .docker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

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
            *who = Some(by.to_string());
            token.cancel();
            return Ok(());
        }
        if run.status == "queued" {
            // Not started: it never will.
            self.inner.store.set_run_status(
                id,
                "cancelled",
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

    /// Lets `deploy` steps deploy through the control plane.
    pub fn set_deployer(&self, deployer: Arc<dyn Deployer>) {
        *self
            .inner
            .deployer
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(deployer);
    }

    fn env_lock(&self, env: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .env_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(env.to_string())
            .or_default()
            .clone()
    }

    /// Lets `docker` steps build and push through this daemon.
    pub fn set_docker(&self, setup: DockerSetup) {
        *self.inner.docker.lock().unwrap_or_else(|e| e.into_inner()) = Some(setup);
    }

    /// Registers (or updates) a pipeline after checking that its file parses.
    pub async fn add_pipeline(
        &self,
        name: &str,
        source: &Source,
    ) -> Result<Pipeline, ServiceError> {
        let tmp = self
            .inner
            .runs_dir
            .join(format!(".check-{}", uuid::Uuid::new_v4()));
        let result = async {
            let sha = checkout(&source.repo, &source.branch, &tmp).await?;
            Ok::<_, ServiceError>((sha, read_pipeline(&tmp, &source.file)?))
        }
        .await;
        let _ = std::fs::remove_dir_all(&tmp);
        let (sha, (pipeline, text)) = result?;
        let mut source = source.clone();
        source.file_text = Some(text);
        source.poll_ms = pipeline
            .triggers
            .poll
            .filter(|_| branch_matches(&pipeline.triggers.push_branches, &source.branch))
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        source.cron = pipeline.triggers.cron.clone();
        let json =
            serde_json::to_string(&source).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        self.inner.store.put_pipeline(name, &json, now_ms())?;
        // Polling compares against the commit the pipeline was registered at.
        self.inner
            .polls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                name.to_string(),
                PollState {
                    due: tokio::time::Instant::now(),
                    seen: Some(sha),
                },
            );
        Ok(pipeline)
    }

    /// Where a registered pipeline's file lives.
    pub fn source(&self, name: &str) -> Result<Source, ServiceError> {
        let row = self
            .inner
            .store
            .pipelines()?
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ServiceError::NotFound(format!("no pipeline `{name}`")))?;
        serde_json::from_str(&row.source)
            .map_err(|e| ServiceError::Invalid(format!("stored source of `{name}`: {e}")))
    }

    /// What a manual run with `given` parameters would do, from the pipeline file as last
    /// read: the parameters are checked (an error names every problem), and the
    /// environments its deploy steps target are rendered, so the caller can apply the
    /// environment policy and ask for confirmation before anything is queued.
    pub fn plan(&self, name: &str, given: &BTreeMap<String, String>) -> Result<Plan, ServiceError> {
        let source = self.source(name)?;
        let Some(text) = source.file_text else {
            return Ok(Plan {
                manual_allowed: Vec::new(),
                deploy_envs: Vec::new(),
            });
        };
        let pipeline = parse_pipeline(&text)
            .map_err(|e| ServiceError::Invalid(format!("{}:\n{e}", source.file)))?;
        let params = check_params(&pipeline, given)?;
        let values = with_vars(
            &pipeline,
            Values {
                params,
                ..Values::default()
            },
        );
        let mut deploy_envs = Vec::new();
        for step in &pipeline.steps {
            if let StepKind::Deploy { env, .. } = &step.kind
                && let Ok(env) = values.render(env)
                && !env.is_empty()
                && !deploy_envs.contains(&env)
            {
                deploy_envs.push(env);
            }
        }
        Ok(Plan {
            manual_allowed: pipeline.triggers.manual_allowed.clone(),
            deploy_envs,
        })
    }

    /// Queues a run; it starts when the pipeline's earlier runs have finished.
    pub fn trigger(
        &self,
        name: &str,
        event: &str,
        triggered_by: &str,
        params: BTreeMap<String, String>,
    ) -> Result<RunRow, ServiceError> {
        let source = self.source(name)?;
        let mut run = RunRow {
            id: uuid::Uuid::new_v4().to_string(),
            pipeline: name.to_string(),
            number: 0,
            status: "queued".into(),
            event: event.into(),
            triggered_by: triggered_by.into(),
            branch: source.branch.clone(),
            sha: String::new(),
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
        if !matches!(old.status.as_str(), "failed" | "cancelled" | "interrupted") {
            return Err(ServiceError::Invalid(format!(
                "run {id} is {}; only failed, cancelled or interrupted runs are retried",
                old.status
            )));
        }
        let source = self.source(&old.pipeline)?;
        let done: BTreeMap<String, Outputs> = self
            .inner
            .store
            .steps(id)?
            .into_iter()
            .filter(|s| s.status == "succeeded")
            .map(|s| (s.name, serde_json::from_str(&s.outputs).unwrap_or_default()))
            .collect();
        let mut run = RunRow {
            id: uuid::Uuid::new_v4().to_string(),
            number: 0,
            status: "queued".into(),
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
                    status: "succeeded".into(),
                    reason: Some(format!("kept from run {id}")),
                    outputs: serde_json::to_string(outputs).unwrap_or_else(|_| "{}".into()),
                    ..StepRow::default()
                },
            )?;
        }
        self.spawn_run(run.clone(), source, done);
        Ok(run)
    }

    /// Approves or rejects the pending approval of `step` in `run`. The caller has checked
    /// that the decider may (see [`Service::pending`]).
    pub fn decide(&self, run: &str, step: &str, decision: Decision) -> Result<(), ServiceError> {
        let pending = self
            .inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(run.to_string(), step.to_string()))
            .ok_or_else(|| {
                ServiceError::NotFound(format!("no pending approval `{step}` in run {run}"))
            })?;
        pending.tx.send(decision).map_err(|_| {
            ServiceError::NotFound(format!("the approval `{step}` is no longer pending"))
        })
    }

    /// The pending approval of `step` in `run`, if it waits.
    pub fn pending(&self, run: &str, step: &str) -> Option<PendingApproval> {
        self.inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(run.to_string(), step.to_string()))
            .map(|p| p.info.clone())
    }

    /// Pending approvals: (run, step).
    pub fn pending_approvals(&self) -> Vec<(String, String)> {
        let mut v: Vec<_> = self
            .inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// After a restart: resumes runs that only waited for approvals (or had not started),
    /// marks the others interrupted, naming the steps that were running.
    pub fn recover(&self) -> Result<(), ServiceError> {
        let unfinished = self.inner.store.unfinished_runs()?;
        // Step commands run in process groups of their own and outlive a crashed server:
        // nothing of these runs may keep running before they are resumed or closed.
        let ids: Vec<String> = unfinished.iter().map(|r| r.id.clone()).collect();
        for (run, processes) in kill_leftovers(&ids) {
            tracing::warn!(%run, processes, "killed processes left by a run cut off by a restart");
        }
        for run in unfinished {
            let steps = self.inner.store.steps(&run.id)?;
            let running: Vec<&str> = steps
                .iter()
                .filter(|s| s.status == "running")
                .map(|s| s.name.as_str())
                .collect();
            if !running.is_empty() {
                let reason = format!(
                    "interrupted: Slipway stopped while {} ran",
                    running
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                self.inner.store.set_run_status(
                    &run.id,
                    "interrupted",
                    Some(&reason),
                    None,
                    Some(now_ms()),
                )?;
                for s in steps.iter().filter(|s| s.status == "running") {
                    let mut row = s.clone();
                    row.status = "cancelled".into();
                    row.reason = Some("interrupted by a restart".into());
                    row.finished_at = Some(now_ms());
                    self.inner.store.put_step(&run.id, &row)?;
                }
                continue;
            }
            let done = steps
                .iter()
                .filter(|s| s.status == "succeeded")
                .map(|s| {
                    (
                        s.name.clone(),
                        serde_json::from_str(&s.outputs).unwrap_or_default(),
                    )
                })
                .collect();
            match self.source(&run.pipeline) {
                Ok(source) => self.spawn_run(run, source, done),
                Err(e) => {
                    self.inner.store.set_run_status(
                        &run.id,
                        "interrupted",
                        Some(&e.to_string()),
                        None,
                        Some(now_ms()),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Polls the branches of pipelines whose file asks for it (`on.push.poll`) and starts a
    /// `push` run when the branch has a commit no run was started for. Runs until shutdown.
    pub fn start_polling(&self) {
        let service = self.clone();
        self.inner.tracker.spawn(async move {
            let stop = service.inner.shutdown.clone();
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                }
                if let Err(e) = service.poll_once().await {
                    tracing::warn!(error = %e, "polling pipelines");
                }
            }
        });
    }

    async fn poll_once(&self) -> Result<(), ServiceError> {
        let now = tokio::time::Instant::now();
        for row in self.inner.store.pipelines()? {
            let Ok(source) = serde_json::from_str::<Source>(&row.source) else {
                continue;
            };
            self.cron_tick(&row.name, &source.cron, now_ms())?;
            let Some(every) = source.poll_ms.map(std::time::Duration::from_millis) else {
                continue;
            };
            let due = {
                let mut polls = self.inner.polls.lock().unwrap_or_else(|e| e.into_inner());
                let state = polls.entry(row.name.clone()).or_insert(PollState {
                    due: now,
                    seen: None,
                });
                if state.due > now {
                    continue;
                }
                state.due = now + every;
                true
            };
            // Runs in progress check out the newest commit anyway.
            let runs = self.inner.store.runs(Some(&row.name), 1)?;
            if !due
                || runs
                    .first()
                    .is_some_and(|r| r.status == "queued" || r.status == "running")
            {
                continue;
            }
            let reference = format!("refs/heads/{}", source.branch);
            let head = match git(&["ls-remote", &source.repo, &reference], None).await {
                Ok(out) => out
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                Err(e) => {
                    tracing::warn!(pipeline = %row.name, error = %e, "cannot poll the repository");
                    continue;
                }
            };
            if head.is_empty() {
                continue;
            }
            let seen = {
                let polls = self.inner.polls.lock().unwrap_or_else(|e| e.into_inner());
                polls.get(&row.name).and_then(|p| p.seen.clone())
            }
            .or_else(|| runs.first().map(|r| r.sha.clone()));
            match seen {
                Some(seen) if seen == head => {}
                // First look after a restart, no run yet: remember, do not start one.
                None => {}
                Some(_) => {
                    tracing::info!(pipeline = %row.name, commit = %head, "new commit; starting a run");
                    self.trigger(&row.name, "push", "poll", BTreeMap::new())?;
                }
            }
            if let Some(p) = self
                .inner
                .polls
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(&row.name)
            {
                p.seen = Some(head);
            }
        }
        Ok(())
    }

    /// Starts a `cron` run when one of `schedules` fires in the current minute and no cron
    /// run was started in it yet (also across a restart: the last run says).
    fn cron_tick(&self, name: &str, schedules: &[String], now_ms: i64) -> Result<(), ServiceError> {
        if schedules.is_empty() {
            return Ok(());
        }
        let minute_start = now_ms.div_euclid(60_000) * 60_000;
        let fires = schedules
            .iter()
            .filter_map(|c| model::pipeline::Cron::parse(c).ok())
            .any(|c| c.matches(minute_start / 1000));
        if !fires {
            return Ok(());
        }
        let already = self
            .inner
            .store
            .runs(Some(name), 20)?
            .iter()
            .any(|r| r.event == "cron" && r.created_at >= minute_start);
        if !already {
            tracing::info!(pipeline = %name, "cron schedule fired; starting a run");
            self.trigger(name, "cron", "cron", BTreeMap::new())?;
        }
        Ok(())
    }

    /// Stops accepting work, cancels running steps and waits for the runs to stop.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    fn spawn_run(&self, run: RunRow, source: Source, done: BTreeMap<String, Outputs>) {
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
            let _turn = queue.lock().await;
            let id = run.id.clone();
            if service
                .inner
                .store
                .run(&id)
                .ok()
                .flatten()
                .is_some_and(|r| r.status == "cancelled")
            {
                return;
            }
            if let Err(e) = service.execute(run, source, done).await {
                let _ = service.inner.store.set_run_status(
                    &id,
                    "failed",
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
    ) -> Result<(), ServiceError> {
        let store = &self.inner.store;
        store.set_run_status(&run.id, "running", None, Some(now_ms()), None)?;
        let workspace = self.inner.runs_dir.join(&run.id).join("workspace");
        let sha = if workspace.join(".git").exists() {
            git(&["rev-parse", "HEAD"], Some(&workspace)).await?
        } else {
            let _ = std::fs::remove_dir_all(&workspace);
            if let Some(parent) = workspace.parent() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    ServiceError::Invalid(format!("cannot create the workspace: {e}"))
                })?;
            }
            let head = checkout(&source.repo, &source.branch, &workspace).await?;
            if run.sha.is_empty() || run.sha == head {
                head
            } else {
                // A retry builds the commit of the run it repeats.
                git(
                    &["checkout", "--quiet", "--detach", &run.sha],
                    Some(&workspace),
                )
                .await?;
                run.sha.clone()
            }
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
        let (pipeline, text) = read_pipeline(&workspace, &source.file)?;
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
                let value = (self.inner.secrets)(name).map_err(|e| {
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
            .checkout_repos(&run.id, &source, &pipeline, &values)
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
        };
        for step in &pipeline.steps {
            if spec.done.contains_key(&step.name) {
                continue;
            }
            store.put_step(
                &run.id,
                &StepRow {
                    name: step.name.clone(),
                    status: "pending".into(),
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
        let observer = Arc::new(StoreObserver {
            store: store.clone(),
            run: run.id.clone(),
            // Start from what is recorded (steps kept from an earlier run, approvals decided
            // before a restart).
            steps: Mutex::new(
                store
                    .steps(&run.id)?
                    .into_iter()
                    .map(|s| (s.name.clone(), s))
                    .collect(),
            ),
        });
        let server_steps = Arc::new(ServerSteps {
            service: self.clone(),
            run: run.id.clone(),
            observer: observer.clone(),
            pipeline: run.pipeline.clone(),
            branch: run.branch.clone(),
            triggered_by: run.triggered_by.clone(),
            number: run.number,
            repos,
            definition: Arc::new(pipeline.clone()),
        });
        let result = crate::execute(spec, observer, server_steps, cancel.clone()).await;
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
            .and_then(|(_, by)| by);
        let (status, reason) = if result.succeeded() {
            ("succeeded", None)
        } else if let Some(by) = cancelled_by {
            ("cancelled", Some(format!("cancelled by {by}")))
        } else {
            let failed: Vec<String> = result
                .steps
                .iter()
                .filter(|(_, s)| matches!(s, StepState::Failed { .. } | StepState::Cancelled))
                .map(|(n, _)| format!("`{n}`"))
                .collect();
            ("failed", Some(format!("failed: {}", failed.join(", "))))
        };
        store.set_run_status(&run.id, status, reason.as_deref(), None, Some(now_ms()))?;
        Ok(())
    }
}

impl Service {
    /// Checks out the pipeline's other repositories (`repos`) for the run, each with its
    /// own credentials, next to the workspace; kept when the run resumes after a restart.
    async fn checkout_repos(
        &self,
        run: &str,
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
                    &(self.inner.secrets)(secret)
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
struct RepoCheckout {
    dir: PathBuf,
    sha: String,
    url: String,
}

/// Writes a run's steps and logs to the store as they happen.
struct StoreObserver {
    store: Arc<Store>,
    run: String,
    steps: Mutex<BTreeMap<String, StepRow>>,
}

impl StoreObserver {
    fn update(&self, step: &str, f: impl FnOnce(&mut StepRow)) {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner());
        let row = steps.entry(step.to_string()).or_insert_with(|| StepRow {
            name: step.to_string(),
            outputs: "{}".into(),
            ..StepRow::default()
        });
        f(row);
        if let Err(e) = self.store.put_step(&self.run, row) {
            tracing::error!(run = %self.run, step, error = %e, "cannot record a step");
        }
    }
}

impl Observer for StoreObserver {
    fn step_started(&self, step: &str, attempt: u32) {
        self.update(step, |r| {
            r.status = "running".into();
            r.attempts = i64::from(attempt);
            r.started_at = r.started_at.or(Some(now_ms()));
        });
    }

    fn step_finished(&self, step: &str, state: &StepState) {
        self.update(step, |r| {
            let (status, reason, outputs, attempts) = match state {
                StepState::Succeeded { outputs, attempts } => (
                    "succeeded",
                    None,
                    serde_json::to_string(outputs).ok(),
                    *attempts,
                ),
                StepState::Failed { reason, attempts } => {
                    ("failed", Some(reason.clone()), None, *attempts)
                }
                StepState::Skipped { reason } => ("skipped", Some(reason.clone()), None, 0),
                StepState::NotRun { reason } => ("not_run", Some(reason.clone()), None, 0),
                StepState::Cancelled => ("cancelled", None, None, 0),
            };
            r.status = status.into();
            // A step kept from an earlier run (0 attempts here) keeps its note.
            if attempts > 0 || reason.is_some() {
                r.reason = reason;
            }
            if let Some(o) = outputs {
                r.outputs = o;
            }
            if attempts > 0 {
                r.attempts = i64::from(attempts);
            }
            r.finished_at = Some(now_ms());
        });
    }

    fn log(&self, step: &str, stream: Stream, line: String) {
        let stream = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::System => "system",
        };
        if let Err(e) = self.store.append_logs(
            &self.run,
            step,
            &[(now_ms(), stream, &line)],
            LOG_LINES_KEPT,
        ) {
            tracing::error!(run = %self.run, step, error = %e, "cannot store a log line");
        }
    }
}

/// The step kinds the server carries out (everything but host `run` steps): approvals
/// waiting for [`Service::decide`] or their timeout, gates, image builds, promotions,
/// containerised `run` steps and deploys.
struct ServerSteps {
    service: Service,
    run: String,
    observer: Arc<StoreObserver>,
    pipeline: String,
    branch: String,
    triggered_by: String,
    number: i64,
    repos: BTreeMap<String, RepoCheckout>,
    definition: Arc<Pipeline>,
}

impl ServerSteps {
    /// Who a `deploy` step deploys as: whoever approved the nearest approval it depends on
    /// (the person who let the release through, e.g. a deployer for prod), else whoever
    /// started the run (a push, poll or cron run deploys as a developer).
    fn deployer_of(&self, step: &Step, cx: &StepContext) -> String {
        let by_name: HashMap<&str, &Step> = self
            .definition
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s))
            .collect();
        let mut queue: std::collections::VecDeque<&str> =
            step.needs.iter().map(String::as_str).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = queue.pop_front() {
            if !seen.insert(name) {
                continue;
            }
            let Some(s) = by_name.get(name) else { continue };
            if matches!(s.kind, StepKind::Approve { .. })
                && let Some(by) = cx
                    .values
                    .outputs
                    .get(name)
                    .and_then(|o| o.get("approved_by"))
            {
                return by.clone();
            }
            queue.extend(s.needs.iter().map(String::as_str));
        }
        self.triggered_by.clone()
    }

    /// The `gate` step: SARIF findings of this run against the last good run of the
    /// baseline branch (this pipeline's gate step of the same name).
    fn gate(&self, step: &Step, cx: &StepContext) -> Result<Outputs, String> {
        let StepKind::Gate {
            sarif,
            baseline,
            max_new,
        } = &step.kind
        else {
            return Err("not a gate step".into());
        };
        let mut current = Vec::new();
        for file in sarif {
            let path = in_workspace(&cx.workspace, file)?;
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("cannot read {file}: {e}"))?;
            current.extend(crate::sarif::findings(&text).map_err(|e| format!("{file}: {e}"))?);
        }
        let branch = baseline.clone().unwrap_or_else(|| self.branch.clone());
        let store = &self.service.inner.store;
        let base_run = store
            .runs(Some(&self.pipeline), 500)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|r| r.id != self.run && r.status == "succeeded" && r.branch == branch);
        let baseline_prints: std::collections::BTreeSet<String> = match &base_run {
            Some(r) => store
                .steps(&r.id)
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|s| s.name == step.name)
                .and_then(|s| serde_json::from_str::<Outputs>(&s.outputs).ok())
                .and_then(|o| {
                    o.get("fingerprints")
                        .and_then(|f| serde_json::from_str(f).ok())
                })
                .unwrap_or_default(),
            None => Default::default(),
        };
        let verdict = crate::sarif::judge(&current, &baseline_prints, max_new);
        match &base_run {
            Some(r) => (cx.log)(
                Stream::System,
                format!(
                    "baseline: run #{} of {branch} ({} findings)",
                    r.number,
                    baseline_prints.len()
                ),
            ),
            None => (cx.log)(
                Stream::System,
                format!("baseline: none yet for {branch}; every finding is new"),
            ),
        }
        let mut outputs = Outputs::new();
        for level in [
            model::pipeline::SarifLevel::Error,
            model::pipeline::SarifLevel::Warning,
            model::pipeline::SarifLevel::Note,
        ] {
            let new = verdict.new.get(&level).map_or(&[][..], Vec::as_slice);
            let name = crate::sarif::level_name(level);
            (cx.log)(Stream::System, format!("{} new {name}(s)", new.len()));
            for f in new.iter().take(50) {
                (cx.log)(
                    Stream::System,
                    format!("  new {name} {} at {}: {}", f.rule, f.location, f.message),
                );
            }
            outputs.insert(format!("new_{name}"), new.len().to_string());
        }
        let prints: Vec<&str> = current.iter().map(|f| f.fingerprint.as_str()).collect();
        outputs.insert("findings".into(), current.len().to_string());
        outputs.insert(
            "fingerprints".into(),
            serde_json::to_string(&prints).unwrap_or_else(|_| "[]".into()),
        );
        if verdict.over.is_empty() {
            Ok(outputs)
        } else {
            let why: Vec<String> = verdict
                .over
                .iter()
                .map(|(level, n, limit)| {
                    format!(
                        "{n} new {}-level finding(s) (at most {limit})",
                        crate::sarif::level_name(*level)
                    )
                })
                .collect();
            Err(format!("quality gate failed: {}", why.join(", ")))
        }
    }
}

impl OtherSteps for ServerSteps {
    fn run(&self, step: &Step, cx: StepContext) -> BoxFuture<'static, Result<Outputs, String>> {
        if matches!(step.kind, StepKind::Gate { .. }) {
            let result = self.gate(step, &cx);
            return Box::pin(async move { result });
        }
        if let StepKind::Run {
            commands,
            image: Some(image),
        } = &step.kind
        {
            let setup = self.service.docker_setup();
            let (commands, image, step) = (commands.clone(), image.clone(), step.clone());
            let run_id = self.run.clone();
            return Box::pin(async move {
                container_step(setup, &cx, &run_id, &step, &image, &commands).await
            });
        }
        if let StepKind::Promote {
            image,
            to,
            require_approval,
            force,
        } = &step.kind
        {
            let deployer = self.service.deployer();
            let setup = self.service.docker_setup();
            let (image, to, approval, force) = (
                image.clone(),
                to.clone(),
                require_approval.clone(),
                force.clone(),
            );
            let (service, who) = (self.service.clone(), self.triggered_by.clone());
            return Box::pin(async move {
                promote_step(
                    &service,
                    deployer,
                    setup,
                    &cx,
                    &who,
                    &image,
                    &to,
                    approval.as_deref(),
                    force.as_deref(),
                )
                .await
            });
        }
        if let StepKind::Docker {
            context,
            dockerfile,
            push,
            tags,
        } = &step.kind
        {
            let setup = self.service.docker_setup();
            let (context, dockerfile, push, tags) = (
                context.clone(),
                dockerfile.clone(),
                push.clone(),
                tags.clone(),
            );
            return Box::pin(async move {
                docker_step(setup, &cx, &context, dockerfile.as_deref(), &push, &tags).await
            });
        }
        if let StepKind::Merge {
            from,
            into,
            fast_forward_only,
            secret,
        } = &step.kind
        {
            let (from, into, ff, secret) = (
                from.clone(),
                into.clone(),
                *fast_forward_only,
                secret.clone(),
            );
            let (service, pipeline, run, number, step_name) = (
                self.service.clone(),
                self.pipeline.clone(),
                self.run.clone(),
                self.number,
                step.name.clone(),
            );
            return Box::pin(async move {
                let from = match from {
                    Some(f) => cx.values.render(&f)?,
                    None => cx.values.run.get("sha").cloned().unwrap_or_default(),
                };
                let into = cx.values.render(&into)?;
                let url = service.source(&pipeline).map_err(|e| e.to_string())?.repo;
                let creds = match &secret {
                    Some(name) => Some(crate::repos::Credentials::from_secret(
                        &(service.inner.secrets)(name)
                            .map_err(|e| format!("secret `{name}`: {e}"))?,
                    )),
                    None => None,
                };
                let short: String = from.chars().take(12).collect();
                (cx.log)(
                    Stream::System,
                    format!("merging {short} into {into} of {url}"),
                );
                let dir = service
                    .inner
                    .runs_dir
                    .join(&run)
                    .join(format!("merge-{step_name}"));
                let message =
                    format!("Merge {short} into {into} (released by {pipeline} #{number})");
                let merged = crate::repos::merge_and_push(
                    &url,
                    &from,
                    &into,
                    ff,
                    &message,
                    &dir,
                    creds.as_ref(),
                )
                .await;
                let _ = std::fs::remove_dir_all(&dir);
                let merged = merged?;
                (cx.log)(
                    Stream::System,
                    if merged.up_to_date {
                        format!("{into} already contains {short}; nothing to push")
                    } else if merged.fast_forward {
                        format!("fast-forwarded {into} to {} and pushed", merged.sha)
                    } else {
                        format!("merged into {into} as {} and pushed", merged.sha)
                    },
                );
                Ok(Outputs::from([
                    ("sha".to_string(), merged.sha),
                    ("before".to_string(), merged.before),
                    ("fast_forward".to_string(), merged.fast_forward.to_string()),
                ]))
            });
        }
        let StepKind::Approve {
            message,
            approvers,
            timeout,
            env,
        } = &step.kind
        else {
            // Only `deploy` is left.
            let deployer = self.service.deployer();
            let setup = self.service.docker_setup();
            let (service, who, repos) = (
                self.service.clone(),
                self.deployer_of(step, &cx),
                self.repos.clone(),
            );
            let step = step.clone();
            return Box::pin(async move {
                deploy_step(&service, deployer, setup, &cx, &step, &who, &repos).await
            });
        };
        let (tx, rx) = oneshot::channel();
        let key = (self.run.clone(), step.name.clone());
        let message = cx
            .values
            .render(message)
            .unwrap_or_else(|_| message.clone());
        let info = PendingApproval {
            run: self.run.clone(),
            step: step.name.clone(),
            message: message.clone(),
            approvers: approvers.clone(),
            // `BB/prod` asks `prod`'s approvers.
            env: env
                .as_ref()
                .map(|e| cx.values.render(e).unwrap_or_else(|_| e.clone()))
                .map(|e| auth::environment_name(&e).to_string())
                .unwrap_or_else(|| "default".into()),
        };
        self.service
            .inner
            .approvals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), Pending { tx, info });
        (cx.log)(
            Stream::System,
            format!(
                "waiting for approval: {message} (approvers: {})",
                if approvers.is_empty() {
                    "per the environment policy".to_string()
                } else {
                    approvers.join(", ")
                }
            ),
        );
        self.observer
            .update(&step.name, |r| r.status = "waiting".into());
        let (observer, service, name, timeout) = (
            self.observer.clone(),
            self.service.clone(),
            step.name.clone(),
            *timeout,
        );
        Box::pin(async move {
            let decision = tokio::select! {
                d = rx => d.ok(),
                () = tokio::time::sleep(timeout) => None,
                () = cx.cancel.cancelled() => None,
            };
            service
                .inner
                .approvals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            match decision {
                Some(d) => {
                    observer.update(&name, |r| {
                        r.decided_by = Some(d.by.clone());
                        r.decided_at = Some(now_ms());
                    });
                    (cx.log)(
                        Stream::System,
                        format!(
                            "{} by {}",
                            if d.approve { "approved" } else { "rejected" },
                            d.by
                        ),
                    );
                    if d.approve {
                        Ok(Outputs::from([("approved_by".into(), d.by)]))
                    } else {
                        Err(format!("rejected by {}", d.by))
                    }
                }
                None if cx.cancel.is_cancelled() => Err("cancelled".into()),
                None => Err(format!(
                    "nobody decided within {}; rejected",
                    crate::runner::human(timeout)
                )),
            }
        })
    }
}

/// SIGKILLs every process whose environment says it belongs to one of the runs `ids`
/// (each step's commands get `SLIPWAY_RUN_ID`, and their children inherit it), in one pass
/// over `/proc`. Returns how many were killed per run.
fn kill_leftovers(ids: &[String]) -> HashMap<String, usize> {
    let mut killed = HashMap::new();
    if ids.is_empty() {
        return killed;
    }
    let markers: Vec<(String, Vec<u8>)> = ids
        .iter()
        .map(|id| (id.clone(), format!("SLIPWAY_RUN_ID={id}").into_bytes()))
        .collect();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return killed;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid <= 1 || pid == std::process::id() as i32 {
            continue;
        }
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let owner = env
            .split(|b| *b == 0)
            .find_map(|kv| markers.iter().find(|(_, m)| kv == m.as_slice()));
        if let Some((id, _)) = owner {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            *killed.entry(id.clone()).or_insert(0) += 1;
        }
    }
    killed
}

/// The `docker` step: `docker build` of the context through the Engine API, then a push;
/// outputs `digest`, `reference` and `image` (`repo@digest`, what deploys should run).
async fn docker_step(
    setup: Option<DockerSetup>,
    cx: &StepContext,
    context: &str,
    dockerfile: Option<&str>,
    push: &str,
    tags: &[String],
) -> Result<Outputs, String> {
    let setup = setup.ok_or("Docker is not enabled on this server (slipway up --docker auto)")?;
    let push = cx.values.render(push)?;
    let context = cx.values.render(context)?;
    let tags: Vec<String> = tags
        .iter()
        .map(|t| cx.values.render(t))
        .collect::<Result<_, _>>()?;
    let dir = in_workspace(&cx.workspace, &context)?;
    let d = docker::Docker::connect(setup.config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let auth = setup
        .registry_config
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|json| docker::credentials_for(&push, &json));
    (cx.log)(Stream::System, format!("building {push} from {context}"));
    let log = cx.log.clone();
    let pushed = d
        .build_and_push(
            &dir,
            dockerfile.unwrap_or("Dockerfile"),
            &push,
            &tags,
            auth.as_ref(),
            &move |l| log(Stream::Stdout, l),
        )
        .await
        .map_err(|e| e.to_string())?;
    let (repo, _) = docker::split_reference(&push);
    (cx.log)(
        Stream::System,
        format!("pushed {push} as {repo}@{}", pushed.digest),
    );
    Ok(Outputs::from([
        ("digest".to_string(), pushed.digest.clone()),
        ("reference".to_string(), push.clone()),
        ("image".to_string(), format!("{repo}@{}", pushed.digest)),
    ]))
}

/// A `run` step with `image:`: each command in a one-shot container of the image, the
/// workspace at `/workspace`, host networking; the step's env, secrets and run facts as
/// the container's environment. The executor's timeout and cancel end it; the container
/// is removed either way.
async fn container_step(
    setup: Option<DockerSetup>,
    cx: &StepContext,
    run_id: &str,
    step: &Step,
    image: &str,
    commands: &[String],
) -> Result<Outputs, String> {
    let setup = setup.ok_or("Docker is not enabled on this server (slipway up --docker auto)")?;
    let image = cx.values.render(image)?;
    let d = docker::Docker::connect(setup.config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let env = crate::step_env(step, &cx.values)?;
    for (i, command) in commands.iter().enumerate() {
        let command = cx.values.render(command)?;
        (cx.log)(Stream::System, format!("+ [{image}] {command}"));
        let name = format!(
            "slipway-step-{run_id}-{}-{i}-{}",
            step.name,
            uuid::Uuid::new_v4().simple()
        );
        let id = d
            .start_oneshot(&image, &command, &env, &cx.workspace, &name)
            .await
            .map_err(|e| e.to_string())?;
        // Removed whatever ends this: exit, timeout or cancel (then the future is dropped
        // and the guard removes the container in the background).
        let _guard = RemoveContainer(Some((d.clone(), id.clone())));
        let log = cx.log.clone();
        let exit = d
            .output_until_exit(&id, &move |is_err, line| {
                log(
                    if is_err {
                        Stream::Stderr
                    } else {
                        Stream::Stdout
                    },
                    line,
                )
            })
            .await
            .map_err(|e| e.to_string())?;
        if exit.code != Some(0) {
            let why = format!("`{command}` in {image}: {}", exit.message);
            (cx.log)(Stream::System, why.clone());
            return Err(why);
        }
    }
    Ok(Outputs::new())
}

/// Removes a step's container when dropped.
struct RemoveContainer(Option<(docker::Docker, String)>);

impl Drop for RemoveContainer {
    fn drop(&mut self) {
        if let Some((d, id)) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = d.remove(&id).await;
            });
        }
    }
}

/// Merges `overlay` into `base`: objects key by key, everything else replaced.
pub fn merge_json(base: &mut serde_json::Value, overlay: serde_json::Value) {
    match (base, overlay) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// The `deploy` step: the app definition for the environment (base file, overlay, the
/// image pinned to what the pipeline built), deployed through the control plane as `who`
/// (see [`ServerSteps::deployer_of`]), under the environment's policy; waits for the
/// deployment and reports its progress. One deploy at a time per environment.
async fn deploy_step(
    service: &Service,
    deployer: Option<Arc<dyn Deployer>>,
    setup: Option<DockerSetup>,
    cx: &StepContext,
    step: &Step,
    who: &str,
    repos: &BTreeMap<String, RepoCheckout>,
) -> Result<Outputs, String> {
    let StepKind::Deploy {
        env,
        repo,
        app,
        overlay,
        image,
        timeout,
    } = &step.kind
    else {
        return Err("not a deploy step".into());
    };
    let deployer = deployer.ok_or("deploys are not enabled on this server")?;
    let root = match repo {
        Some(name) => {
            let r = repos
                .get(name)
                .ok_or_else(|| format!("repository `{name}` is not checked out"))?;
            (cx.log)(
                Stream::System,
                format!("app definitions from {name} ({}) at {}", r.url, r.sha),
            );
            r.dir.clone()
        }
        None => cx.workspace.clone(),
    };
    let read = |file: &str| -> Result<serde_json::Value, String> {
        let path = in_workspace(&root, file)?;
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {file}: {e}"))?;
        let text = cx.values.render(&text)?;
        serde_json::from_str(&text).map_err(|e| format!("{file}: not JSON: {e}"))
    };
    let env = cx.values.render(env)?;
    let mut def = read(&cx.values.render(app)?)?;
    if let Some(o) = overlay {
        merge_json(&mut def, read(&cx.values.render(o)?)?);
    }
    if let Some(image) = image {
        let mut image = cx.values.render(image)?;
        if !image.contains('@')
            && let Ok((registry, repo, _)) = registry_parts(&image)
        {
            // A tag is pinned to the digest it names now: what runs is what was tested,
            // whatever the tag points at later. A registry this server cannot ask (TLS,
            // unreachable) leaves the tag as it is, said in the log.
            match manifest(setup.as_ref(), &image).await {
                Ok((digest, _, _)) => {
                    (cx.log)(Stream::System, format!("{image} is {digest}"));
                    image = format!("{registry}/{repo}@{digest}");
                }
                // The registry answered: the tag is not there (or not for us).
                Err(ManifestError::Refused(e)) => return Err(e),
                Err(ManifestError::Unreachable(e)) => (cx.log)(
                    Stream::System,
                    format!("warning: {image} not pinned to a digest ({e}); deploying the tag"),
                ),
            }
        }
        let docker = def
            .get_mut("container")
            .and_then(|c| c.get_mut("docker"))
            .and_then(serde_json::Value::as_object_mut)
            .ok_or("`image` is set but the app definition has no container.docker")?;
        docker.insert("image".into(), serde_json::Value::String(image.clone()));
        (cx.log)(Stream::System, format!("image: {image}"));
    }
    // The app belongs to the step's environment (a label cannot loosen a stricter path).
    if let Some(obj) = def.as_object_mut() {
        let labels = obj.entry("labels").or_insert_with(|| serde_json::json!({}));
        if let Some(l) = labels.as_object_mut() {
            // `BB/prod` is the environment `prod` (in datacenter BB, which the id names).
            let name = auth::environment_name(&env).to_string();
            l.entry("SLIPWAY_ENV")
                .or_insert_with(|| serde_json::Value::String(name));
        }
    }
    let app_id = def["id"].as_str().unwrap_or("").to_string();
    let pinned = def
        .pointer("/container/docker/image")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    (cx.log)(
        Stream::System,
        format!("waiting for the {env} environment (one deploy at a time)"),
    );
    let lock = service.env_lock(&env);
    let _turn = lock.lock().await;
    let deployment = deployer.deploy(who, def)?;
    (cx.log)(
        Stream::System,
        format!("deploying {app_id} to {env} as {who}: deployment {deployment}"),
    );
    let limit = timeout.unwrap_or(std::time::Duration::from_secs(600));
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = String::new();
    loop {
        match deployer.status(&deployment)? {
            Some(s) if s.status == "success" => {
                (cx.log)(Stream::System, format!("{app_id} is deployed to {env}"));
                let mut out = Outputs::from([
                    ("deployment".to_string(), deployment),
                    ("app".to_string(), app_id),
                    ("env".to_string(), env),
                ]);
                if let Some(image) = pinned {
                    if let Some((_, digest)) = image.split_once('@') {
                        out.insert("digest".into(), digest.to_string());
                    }
                    out.insert("image".into(), image);
                }
                return Ok(out);
            }
            Some(s) if s.status == "failed" => {
                let why = s.reason.unwrap_or_else(|| "the deployment failed".into());
                return Err(format!("deployment of {app_id} to {env} failed: {why}"));
            }
            Some(s) => {
                if s.progress != last && !s.progress.is_empty() {
                    (cx.log)(Stream::System, s.progress.clone());
                    last = s.progress;
                }
            }
            None => return Err(format!("deployment {deployment} vanished")),
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "deployment of {app_id} to {env} did not finish within {}",
                crate::runner::human(limit)
            ));
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
            () = cx.cancel.cancelled() => return Err("cancelled".into()),
        }
    }
}

/// Splits `host[:port]/repo@sha256:…` or `host[:port]/repo:tag` into (registry, repo,
/// reference).
fn registry_parts(image: &str) -> Result<(String, String, String), String> {
    let (name, reference) = match image.split_once('@') {
        Some((n, d)) => (n.to_string(), d.to_string()),
        None => docker::split_reference(image),
    };
    let (registry, repo) = name
        .split_once('/')
        .filter(|(r, _)| r.contains('.') || r.contains(':') || *r == "localhost")
        .ok_or_else(|| format!("`{image}` names no registry (host:port/repo)"))?;
    Ok((registry.to_string(), repo.to_string(), reference))
}

const MANIFEST_TYPES: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";

fn registry_auth(setup: Option<&DockerSetup>, image: &str) -> Option<docker::RegistryAuth> {
    setup
        .and_then(|s| s.registry_config.as_ref())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|json| docker::credentials_for(image, &json))
}

/// The manifest `image` (`registry/repo:tag` or `@digest`) names, through the registry
/// API: (digest, content type, bytes).
async fn manifest(
    setup: Option<&DockerSetup>,
    image: &str,
) -> Result<(String, String, Vec<u8>), ManifestError> {
    let (registry, repo, reference) = registry_parts(image).map_err(ManifestError::Refused)?;
    let mut get = reqwest::Client::new()
        .get(format!("http://{registry}/v2/{repo}/manifests/{reference}"))
        .header("Accept", MANIFEST_TYPES);
    if let Some(a) = registry_auth(setup, image) {
        get = get.basic_auth(&a.username, Some(&a.password));
    }
    let got = get
        .send()
        .await
        .map_err(|e| ManifestError::Unreachable(format!("registry {registry}: {e}")))?;
    if !got.status().is_success() {
        return Err(ManifestError::Refused(format!(
            "{image}: the registry answered {}",
            got.status()
        )));
    }
    let header = |name: &str| {
        got.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type")
        .unwrap_or_else(|| "application/vnd.docker.distribution.manifest.v2+json".into());
    let digest = header("docker-content-digest")
        .ok_or_else(|| ManifestError::Refused("the registry gave no digest".into()))?;
    let bytes = got
        .bytes()
        .await
        .map_err(|e| ManifestError::Unreachable(e.to_string()))?
        .to_vec();
    Ok((digest, content_type, bytes))
}

/// Why [`manifest`] failed.
enum ManifestError {
    /// No answer from the registry (down, TLS only, unreachable).
    Unreachable(String),
    /// The registry answered, but not with the manifest.
    Refused(String),
}

impl From<ManifestError> for String {
    fn from(e: ManifestError) -> String {
        match e {
            ManifestError::Unreachable(m) | ManifestError::Refused(m) => m,
        }
    }
}

/// The `promote` step: tags an image already in the registry by digest, through the
/// registry API (no rebuild), after checking that the digest passed the named approval in
/// an earlier run (an admin may force it).
#[allow(clippy::too_many_arguments)]
async fn promote_step(
    service: &Service,
    deployer: Option<Arc<dyn Deployer>>,
    setup: Option<DockerSetup>,
    cx: &StepContext,
    who: &str,
    image: &str,
    to: &str,
    require_approval: Option<&str>,
    force: Option<&str>,
) -> Result<Outputs, String> {
    let (image, to) = (cx.values.render(image)?, cx.values.render(to)?);
    let (registry, repo, _) = registry_parts(&image)?;
    let (to_registry, to_repo, tag) = registry_parts(&to)?;
    if (to_registry.as_str(), to_repo.as_str()) != (registry.as_str(), repo.as_str()) {
        return Err(format!(
            "`{to}` is not in {registry}/{repo}: promotion only adds a tag"
        ));
    }
    let (digest, content_type, manifest) = manifest(setup.as_ref(), &image).await?;
    if let Some(approval) = require_approval {
        let approved = digest_passed(service, &digest, approval).map_err(|e| e.to_string())?;
        if !approved {
            let forced = force
                .map(|f| cx.values.render(f))
                .transpose()?
                .is_some_and(|f| f == "true");
            let admin = deployer.as_ref().is_some_and(|d| d.is_admin(who));
            if !(forced && admin) {
                return Err(format!(
                    "{repo}@{digest} never passed the approval `{approval}`{}",
                    if forced {
                        " (forcing it takes an admin)"
                    } else {
                        ""
                    }
                ));
            }
            (cx.log)(
                Stream::System,
                format!("{digest} never passed `{approval}`; promoted anyway, forced by {who}"),
            );
        }
    }
    let auth = registry_auth(setup.as_ref(), &image);
    let mut put = reqwest::Client::new()
        .put(format!("http://{registry}/v2/{repo}/manifests/{tag}"))
        .header("Content-Type", content_type)
        .body(manifest);
    if let Some(a) = &auth {
        put = put.basic_auth(&a.username, Some(&a.password));
    }
    let put = put
        .send()
        .await
        .map_err(|e| format!("registry {registry}: {e}"))?;
    if !put.status().is_success() {
        return Err(format!(
            "tagging {to}: the registry answered {}",
            put.status()
        ));
    }
    (cx.log)(
        Stream::System,
        format!("promoted {repo}@{digest} to {to} (no rebuild)"),
    );
    Ok(Outputs::from([
        ("digest".to_string(), digest.clone()),
        ("image".to_string(), format!("{registry}/{repo}@{digest}")),
        ("reference".to_string(), to),
    ]))
}

/// Whether `digest` was an output of a run in which the step `approval` succeeded.
fn digest_passed(
    service: &Service,
    digest: &str,
    approval: &str,
) -> Result<bool, store::StoreError> {
    let store = &service.inner.store;
    for run in store.runs(None, 2000)? {
        let steps = store.steps(&run.id)?;
        let approved = steps
            .iter()
            .any(|s| s.name == approval && s.status == "succeeded");
        let built = steps.iter().any(|s| {
            serde_json::from_str::<Outputs>(&s.outputs)
                .is_ok_and(|o| o.get("digest").map(String::as_str) == Some(digest))
        });
        if approved && built {
            return Ok(true);
        }
    }
    Ok(false)
}
