//! Runs as the server keeps them: pipelines registered from git repositories, runs queued
//! per pipeline (one at a time, in order), each checked out into its own workspace and
//! executed with every state change and log line written to the store, approvals that
//! wait for a decision (or their timeout) without holding a worker, and recovery after a
//! restart: a run cut off while a step ran is marked interrupted, naming the step; a run
//! that was only waiting for approvals resumes, and its approvals are pending again.

//!
//! One job per module: `queue` (runs numbered, queued, executed, cancelled, retried),
//! `schedule` (polling and cron), `recover` (after a restart), `observer` (steps and logs
//! to the store), `checkout` and `params` (the run's workspace and values), `registry`
//! (the registry API), and `steps/` (one module per server-side step kind).

mod actor;
mod checkout;
mod observer;
mod params;
mod queue;
mod recover;
pub mod registry;
mod schedule;
mod steps;
mod waits;

pub use actor::{Actor, FORGE_PRINCIPAL};
pub use checkout::{in_workspace, links_stay_inside};
pub use params::{check_params, deploy_envs};
pub use schedule::GitProblem;
pub use steps::merge_json;

use checkout::{checkout, read_pipeline};
use model::pipeline::{Pipeline, StepKind, parse_pipeline};
use params::with_vars;
use schedule::PollState;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use store::Store;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Values;

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

/// A pipeline file as read from its repository by [`Service::inspect`].
#[derive(Debug, Clone)]
pub struct Inspected {
    /// The file, parsed and validated.
    pub pipeline: Pipeline,
    /// Its text.
    pub text: String,
    /// The commit it was read at.
    pub sha: String,
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
    /// The run's pipeline and number (to find older runs it supersedes).
    pipeline: String,
    number: i64,
}

/// Resolves a secret's value by name for the pipeline named first: the server refuses
/// secrets whose scope does not name that pipeline.
pub type SecretLookup = Arc<dyn Fn(&str, &str) -> Result<String, String> + Send + Sync>;

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
    /// Where finished runs and steps are counted (the server's metrics).
    metrics: Mutex<Option<Arc<dyn RunMetrics>>>,
    /// Running runs' cancel tokens, and who cancelled.
    cancels: Mutex<HashMap<String, (CancellationToken, Option<waits::Ending>)>>,
    /// Runs waiting for an environment's deploy lock.
    env_waits: Mutex<HashMap<String, waits::EnvWait>>,
    /// One deploy at a time per environment, in the order they asked (tokio's mutex is
    /// fair), so deploys to one environment land in commit order.
    env_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Whose privileges host `run` steps run with, and what of the server's home they see.
    steps_as: crate::step_user::StepIdentity,
    view: Arc<crate::step_user::View>,
}

/// Where the service reports runs and steps as they end (the server's metrics:
/// `slipway_pipeline_runs_total` and the run and step duration histograms).
pub trait RunMetrics: Send + Sync {
    /// A run of `pipeline` starts executing (so counters can start at 0: PromQL's
    /// `increase` sees the first run end only when the series existed before it).
    fn run_started(&self, pipeline: &str) {
        let _ = pipeline;
    }
    /// A step of `pipeline` that ran in this process ended with `status` (`succeeded` or
    /// `failed`) after `seconds` (from its first attempt's start).
    fn step_finished(&self, pipeline: &str, step: &str, status: &str, seconds: f64);
    /// A run of `pipeline` ended with `status` (`succeeded`, `failed`, `cancelled`,
    /// `superseded`), `seconds` after it started.
    fn run_finished(&self, pipeline: &str, status: &str, seconds: f64);
}

/// How `deploy` steps reach the control plane (the server provides it).
pub trait Deployer: Send + Sync {
    /// Deploys the app definition `app` (Marathon JSON) as `who` under the environment
    /// policy, replacing the app's definition; `Ok(deployment id)`, or `Err(reason)` when
    /// refused or invalid.
    fn deploy(&self, who: &Actor, app: serde_json::Value) -> Result<String, String>;
    /// A deployment's status: `running`, `success` or `failed`, with the reason and the
    /// current step (`current/total`), or `None` when unknown.
    fn status(&self, deployment: &str) -> Result<Option<DeploymentStatus>, String>;
    /// Whether `who` (as in [`Deployer::deploy`]) is an admin (who may force promotions).
    fn is_admin(&self, who: &Actor) -> bool;
    /// News of deployments from now on, for deploy steps to wait on instead of polling:
    /// each item is the id of a deployment that moved (a step done, finished, failed), or
    /// `None` when news may have been missed. `None` (the default): no news, deploy steps
    /// poll [`Deployer::status`].
    fn deployment_news(&self) -> Option<DeploymentNews> {
        None
    }
}

/// What [`Deployer::deployment_news`] yields.
pub type DeploymentNews = futures_util::stream::BoxStream<'static, Option<String>>;

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
    /// CA certificates (PEM) trusted for registries besides the system's roots.
    pub registry_ca: Option<PathBuf>,
}

fn now_ms() -> i64 {
    model::Timestamp::now().millis()
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
                metrics: Mutex::new(None),
                cancels: Mutex::new(HashMap::new()),
                env_waits: Mutex::new(HashMap::new()),
                env_locks: Mutex::new(HashMap::new()),
                steps_as: crate::step_user::StepIdentity::Server,
                view: Arc::default(),
            }),
        }
    }

    /// Runs host `run` steps with `identity`'s privileges instead of the server's (set
    /// before the service is shared, i.e. before it is cloned or started).
    ///
    /// # Panics
    /// When the service was already cloned.
    #[must_use]
    pub fn with_step_identity(mut self, identity: crate::step_user::StepIdentity) -> Service {
        let inner = Arc::get_mut(&mut self.inner)
            .expect("the step identity is set before the service is shared");
        if identity != crate::step_user::StepIdentity::Server {
            inner.view = Arc::new(crate::step_user::View::of_server(&inner.runs_dir));
            tracing::info!(view = ?inner.view, "pipeline steps run unprivileged");
        }
        inner.steps_as = identity;
        self
    }

    /// The account `pipeline`'s host steps run as (`None`: the server's own), with its
    /// home directory made; a pipeline's own uid is allocated and stored on its first run.
    fn step_user(
        &self,
        pipeline: &str,
    ) -> Result<Option<crate::step_user::StepUser>, ServiceError> {
        use crate::step_user::{StepIdentity, StepUser, own_dir};
        let (uid, gid) = match &self.inner.steps_as {
            StepIdentity::Server => return Ok(None),
            StepIdentity::Account { uid, gid } => (*uid, *gid),
            StepIdentity::PerPipeline { uids, gid } => {
                let key = format!("pipeline_uid:{pipeline}");
                let uid = self
                    .inner
                    .store
                    .write(|tx| {
                        if let Some(uid) = tx
                            .meta(&key)?
                            .and_then(|v| v.parse::<u32>().ok())
                            .filter(|u| uids.contains(u))
                        {
                            return Ok(Some(uid));
                        }
                        let uid = tx.take_uid(uids)?;
                        if let Some(uid) = uid {
                            tx.set_meta(&key, &uid.to_string())?;
                        }
                        Ok(uid)
                    })?
                    .ok_or_else(|| {
                        ServiceError::Invalid(format!(
                            "no uid left in {}-{} for the steps of `{pipeline}`",
                            uids.start(),
                            uids.end()
                        ))
                    })?;
                (uid, *gid)
            }
        };
        let homes = self.inner.runs_dir.join(".homes");
        let made = std::fs::create_dir_all(&homes)
            .and_then(|()| {
                std::fs::set_permissions(
                    &homes,
                    std::os::unix::fs::PermissionsExt::from_mode(0o711),
                )
            })
            .and_then(|()| own_dir(&homes.join(uid.to_string()), uid, gid, 0o700));
        made.map_err(|e| ServiceError::Invalid(format!("cannot make the steps' home: {e}")))?;
        Ok(Some(StepUser {
            uid,
            gid,
            home: homes.join(uid.to_string()),
            view: self.inner.view.clone(),
        }))
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

    /// Reports runs and steps as they end to `metrics`.
    pub fn set_metrics(&self, metrics: Arc<dyn RunMetrics>) {
        *self.inner.metrics.lock().unwrap_or_else(|e| e.into_inner()) = Some(metrics);
    }

    fn metrics(&self) -> Option<Arc<dyn RunMetrics>> {
        self.inner
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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
        let inspected = self.inspect(source).await?;
        self.register(name, source, inspected, None)
    }

    /// Checks out `source` and reads its pipeline file (which must parse), without
    /// registering anything: the caller applies its checks to what it would deploy first.
    pub async fn inspect(&self, source: &Source) -> Result<Inspected, ServiceError> {
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
        Ok(Inspected {
            pipeline,
            text,
            sha,
        })
    }

    /// Registers (or updates) a pipeline as [`Service::inspect`] read it; `owner` is
    /// recorded for a new pipeline.
    pub fn register(
        &self,
        name: &str,
        source: &Source,
        inspected: Inspected,
        owner: Option<&str>,
    ) -> Result<Pipeline, ServiceError> {
        let Inspected {
            pipeline,
            text,
            sha,
        } = inspected;
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
        self.inner
            .store
            .put_pipeline_owned(name, &json, now_ms(), owner)?;
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
                    problem: None,
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

    /// The pipeline's step names in the file's order (as last read); empty when unknown.
    pub fn step_order(&self, name: &str) -> Vec<String> {
        self.steps_of(name).into_iter().map(|s| s.name).collect()
    }

    /// The pipeline's steps as the file was last read, in order; empty when unknown.
    pub fn steps_of(&self, name: &str) -> Vec<model::pipeline::Step> {
        self.source(name)
            .ok()
            .and_then(|s| s.file_text)
            .and_then(|text| parse_pipeline(&text).ok())
            .map(|p| p.steps)
            .unwrap_or_default()
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

    /// Stops accepting work, cancels running steps and waits for the runs to stop.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}
