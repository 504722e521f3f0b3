//! Pipeline runs: executes the steps of a [`model::pipeline::Pipeline`] as a DAG, steps
//! whose `needs` are met in parallel (up to a limit), with `when` conditions, retries and
//! timeouts, outputs passed to later steps through `${{ steps.X.outputs.K }}`, and every
//! log line masked for the run's secrets.
//!
//! `run` steps are executed here (see [`runner`]); the other kinds (`gate`, `docker`,
//! `deploy`, `approve`) are carried out by an [`OtherSteps`] implementation that the
//! server provides, because they need the registry, the control plane or a person. An
//! [`Observer`] hears about every state change and log line, to store and stream them.
//! Nothing here touches the store: a run is resumable because the caller records
//! finished steps and passes them back in [`RunSpec::done`].

pub mod lint;
mod render;
pub mod repos;
pub mod runner;
pub mod sarif;
pub mod service;
pub mod step_user;
pub mod webhook;

pub use render::Values;
pub use runner::{LogFn, MAX_LINE, Stream};

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use model::pipeline::{Pipeline, Step, StepKind, WhenContext};
use runner::{Attempt, RunCommands};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Outputs of a step: `key → value`.
pub type Outputs = BTreeMap<String, String>;

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The validated pipeline.
    pub pipeline: Pipeline,
    /// The checked-out workspace every step runs in.
    pub workspace: PathBuf,
    /// Parameters (defaults applied), run facts, secrets; variables are rendered from
    /// them when the run starts.
    pub values: Values,
    /// The branch the run is for.
    pub branch: String,
    /// What started it: `push`, `manual`, `cron` or `retry`.
    pub event: String,
    /// Most steps running at once.
    pub max_parallel: usize,
    /// Steps that succeeded in an earlier attempt of this run, with their outputs: they
    /// are not run again (re-run from the failed step).
    pub done: BTreeMap<String, Outputs>,
    /// Whose privileges host `run` steps run with (`None`: the server's own).
    pub run_as: Option<step_user::StepUser>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepState {
    /// It did its work.
    Succeeded {
        /// What it published for later steps.
        outputs: Outputs,
        /// Attempts it took (0 when it was taken from an earlier attempt of the run).
        attempts: u32,
    },
    /// It failed, after `attempts` attempts.
    Failed {
        /// Why (the last attempt's reason).
        reason: String,
        /// Attempts made.
        attempts: u32,
    },
    /// It did not run because its `when` condition was false; dependents go on.
    Skipped {
        /// Why.
        reason: String,
    },
    /// It did not run because a step it needs did not succeed; dependents do not run
    /// either (unless their condition names `status`).
    NotRun {
        /// Which dependency.
        reason: String,
    },
    /// The run was cancelled while it ran or waited.
    Cancelled,
}

impl StepState {
    fn ok_for_dependents(&self) -> bool {
        matches!(
            self,
            StepState::Succeeded { .. } | StepState::Skipped { .. }
        )
    }
}

/// Hears what happens in a run (to store it and stream it). Called from the run's tasks.
pub trait Observer: Send + Sync {
    /// A step's attempt begins (`attempt` counts from 1).
    fn step_started(&self, step: &str, attempt: u32);
    /// A step ended.
    fn step_finished(&self, step: &str, state: &StepState);
    /// A log line of a step, already masked.
    fn log(&self, step: &str, stream: Stream, line: String);
}

/// What a non-`run` step gets to work with.
#[derive(Clone)]
pub struct StepContext {
    /// The run's workspace.
    pub workspace: PathBuf,
    /// The step's fields after `${{ }}` substitution are rendered with these.
    pub values: Arc<Values>,
    /// Log lines of the step (masked by the executor).
    pub log: LogFn,
    /// Cancelled when the run is.
    pub cancel: CancellationToken,
}

/// Carries out `gate`, `docker`, `deploy` and `approve` steps.
pub trait OtherSteps: Send + Sync {
    /// Runs one attempt of `step`; `Ok(outputs)` or `Err(reason)`.
    fn run(&self, step: &Step, cx: StepContext) -> BoxFuture<'static, Result<Outputs, String>>;
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    /// Every step's end, by name.
    pub steps: BTreeMap<String, StepState>,
}

impl RunResult {
    /// No step failed or was cancelled.
    pub fn succeeded(&self) -> bool {
        self.steps
            .values()
            .all(|s| matches!(s, StepState::Succeeded { .. } | StepState::Skipped { .. }))
    }
}

/// Runs the pipeline to its end (or until `cancel`).
pub async fn execute(
    spec: RunSpec,
    observer: Arc<dyn Observer>,
    other: Arc<dyn OtherSteps>,
    cancel: CancellationToken,
) -> RunResult {
    let mut values = spec.values.clone();
    for (name, text) in &spec.pipeline.vars {
        let rendered = values.render(text).unwrap_or_else(|_| text.clone());
        values.vars.insert(name.clone(), rendered);
    }
    let secrets: Arc<Vec<String>> = Arc::new(values.secrets.values().cloned().collect());
    let mut states: BTreeMap<String, StepState> = BTreeMap::new();
    for (name, outputs) in &spec.done {
        if spec.pipeline.steps.iter().any(|s| s.name == *name) {
            let state = StepState::Succeeded {
                outputs: outputs.clone(),
                attempts: 0,
            };
            values.outputs.insert(name.clone(), outputs.clone());
            observer.step_finished(name, &state);
            states.insert(name.clone(), state);
        }
    }
    let mut running: FuturesUnordered<BoxFuture<'static, (String, StepState)>> =
        FuturesUnordered::new();
    let mut started: std::collections::BTreeSet<String> = states.keys().cloned().collect();
    loop {
        // Decide every step whose dependencies have all ended.
        let mut progress = true;
        while progress {
            progress = false;
            for step in &spec.pipeline.steps {
                if started.contains(&step.name)
                    || !step.needs.iter().all(|n| states.contains_key(n))
                {
                    continue;
                }
                if cancel.is_cancelled() {
                    started.insert(step.name.clone());
                    observer.step_finished(&step.name, &StepState::Cancelled);
                    states.insert(step.name.clone(), StepState::Cancelled);
                    progress = true;
                    continue;
                }
                let failed_need = step
                    .needs
                    .iter()
                    .find(|n| !states[n.as_str()].ok_for_dependents());
                let deps_ok = failed_need.is_none();
                let cx = WhenContext {
                    branch: &spec.branch,
                    event: &spec.event,
                    dependencies_ok: deps_ok,
                    params: &values.params,
                };
                let skip = match (&step.when, failed_need) {
                    (Some(when), _) if when.uses_status() => {
                        (!when.eval(&cx)).then(|| StepState::Skipped {
                            reason: "its `when` condition is false".to_string(),
                        })
                    }
                    (_, Some(n)) => Some(StepState::NotRun {
                        reason: format!("`{n}` did not succeed"),
                    }),
                    (Some(when), None) => (!when.eval(&cx)).then(|| StepState::Skipped {
                        reason: "its `when` condition is false".to_string(),
                    }),
                    (None, None) => None,
                };
                if let Some(state) = skip {
                    started.insert(step.name.clone());
                    observer.step_finished(&step.name, &state);
                    states.insert(step.name.clone(), state);
                    progress = true;
                    continue;
                }
                if running.len() >= spec.max_parallel.max(1) {
                    continue;
                }
                started.insert(step.name.clone());
                running.push(Box::pin(run_step(
                    step.clone(),
                    Place {
                        workspace: spec.workspace.clone(),
                        run_as: spec.run_as.clone(),
                    },
                    Arc::new(values.clone()),
                    secrets.clone(),
                    observer.clone(),
                    other.clone(),
                    cancel.clone(),
                )));
            }
        }
        let Some((name, state)) = running.next().await else {
            break;
        };
        if let StepState::Succeeded { outputs, .. } = &state {
            values.outputs.insert(name.clone(), outputs.clone());
        }
        observer.step_finished(&name, &state);
        states.insert(name, state);
    }
    RunResult { steps: states }
}

/// Where a step runs: the run's workspace, as whom.
struct Place {
    workspace: PathBuf,
    run_as: Option<step_user::StepUser>,
}

/// Every attempt of one step.
async fn run_step(
    step: Step,
    place: Place,
    values: Arc<Values>,
    secrets: Arc<Vec<String>>,
    observer: Arc<dyn Observer>,
    other: Arc<dyn OtherSteps>,
    cancel: CancellationToken,
) -> (String, StepState) {
    let name = step.name.clone();
    let log: LogFn = {
        let (observer, name, secrets) = (observer.clone(), name.clone(), secrets.clone());
        Arc::new(move |stream, line| {
            let s: Vec<&str> = secrets.iter().map(String::as_str).collect();
            observer.log(&name, stream, auth::mask(&line, &s));
        })
    };
    let attempts = step.retry.saturating_add(1);
    let mut reason = String::new();
    for attempt in 1..=attempts {
        if attempt > 1 {
            log(
                Stream::System,
                format!("retrying (attempt {attempt} of {attempts}): {reason}"),
            );
        }
        observer.step_started(&name, attempt);
        let outcome = match &step.kind {
            StepKind::Run {
                commands,
                image: None,
            } => {
                run_attempt(
                    &step,
                    commands,
                    &place,
                    &values,
                    secrets.clone(),
                    &log,
                    &cancel,
                )
                .await
            }
            _ => {
                let cx = StepContext {
                    workspace: place.workspace.clone(),
                    values: values.clone(),
                    log: log.clone(),
                    cancel: cancel.clone(),
                };
                let work = other.run(&step, cx);
                let timed = async {
                    match step.timeout {
                        Some(t) => tokio::time::timeout(t, work).await.unwrap_or_else(|_| {
                            Err(format!("timed out after {}", runner::human(t)))
                        }),
                        None => work.await,
                    }
                };
                tokio::select! {
                    r = timed => match r {
                        Ok(outputs) => Attempt::Succeeded(outputs),
                        Err(e) => Attempt::Failed(e),
                    },
                    () = cancel.cancelled() => Attempt::Cancelled,
                }
            }
        };
        match outcome {
            Attempt::Succeeded(outputs) => {
                return (
                    name,
                    StepState::Succeeded {
                        outputs,
                        attempts: attempt,
                    },
                );
            }
            Attempt::Cancelled => return (name, StepState::Cancelled),
            Attempt::Failed(why) => reason = why,
            Attempt::TimedOut(t) => reason = format!("timed out after {}", runner::human(t)),
        }
    }
    (name, StepState::Failed { reason, attempts })
}

/// One attempt of a `run` step on the host.
async fn run_attempt(
    step: &Step,
    commands: &[String],
    place: &Place,
    values: &Values,
    secrets: Arc<Vec<String>>,
    log: &LogFn,
    cancel: &CancellationToken,
) -> Attempt {
    let mut rendered = Vec::with_capacity(commands.len());
    for c in commands {
        match values.render(c) {
            Ok(r) => rendered.push(r),
            Err(e) => return Attempt::Failed(e),
        }
    }
    let env = match step_env(step, values) {
        Ok(env) => env,
        Err(e) => return Attempt::Failed(e),
    };
    let workspace = place.workspace.as_path();
    let outputs_file = workspace.join(format!(".slipway-output-{}", step.name));
    let run = RunCommands {
        commands: &rendered,
        workspace,
        env: &env,
        timeout: step.timeout,
        secrets,
        outputs_file,
        user: place.run_as.as_ref(),
    };
    run.run(log, cancel).await
}

/// The environment of a step's commands, on the host or in a container: `CI=true`,
/// `SLIPWAY_STEP`, `SLIPWAY_RUN_*` facts, `SLIPWAY_PARAM_*`, the pipeline's variables, the
/// step's secrets under their names and its rendered `env`.
pub fn step_env(step: &Step, values: &Values) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = vec![
        ("CI".into(), "true".into()),
        ("SLIPWAY_STEP".into(), step.name.clone()),
    ];
    for (k, v) in &values.run {
        env.push((format!("SLIPWAY_RUN_{}", k.to_uppercase()), v.clone()));
    }
    for (k, v) in &values.params {
        let v = match v {
            model::pipeline::ParamValue::Bool(b) => b.to_string(),
            model::pipeline::ParamValue::Text(s) => s.clone(),
        };
        env.push((format!("SLIPWAY_PARAM_{k}"), v));
    }
    for (k, v) in &values.vars {
        env.push((k.clone(), v.clone()));
    }
    for name in &step.secrets {
        let v = values
            .secrets
            .get(name)
            .ok_or_else(|| format!("secret `{name}` is not in the secret store"))?;
        env.push((name.clone(), v.clone()));
    }
    for (k, v) in &step.env {
        env.push((k.clone(), values.render(v)?));
    }
    Ok(env)
}
