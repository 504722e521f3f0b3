//! Pipeline files (`.slipway/pipeline.yaml`): the validated form of a pipeline and the
//! parser that reports every problem at once, each with its line and column.
//!
//! A pipeline is a DAG of named steps. A step is exactly one of `run` (shell commands,
//! on the host or with `image:` in a container), `gate` (SARIF findings against a
//! baseline), `docker` (build and push an image), `promote` (tag a pushed image by
//! digest), `deploy` (an app definition for an environment), `approve` (a human
//! decision) or `merge` (merge the run's commit into another branch and push). Strings may refer to
//! `${{ params.NAME }}`, `${{ vars.NAME }}`, `${{ run.sha }}`/`run.branch`/`run.number`
//! and `${{ steps.STEP.outputs.KEY }}` of a step it depends on; every reference is
//! checked here.
//!
//! ```yaml
//! version: 1
//! name: orders
//! on: { push: { branches: [dev], poll: 10s }, manual: {} }
//! params:
//!   DeployEnv: { type: choice, options: [qa, prod], default: qa }
//! vars: { IMAGE: "127.0.0.1:5000/orders" }
//! steps:
//!   build: { run: [make, make test], timeout: 10m }
//!   image:
//!     needs: [build]
//!     docker: { build: ., push: "${{ vars.IMAGE }}:${{ run.sha }}" }
//!   deploy-qa:
//!     needs: [image]
//!     deploy: { env: qa, app: deploy/app.json, overlay: deploy/qa.json,
//!               image: "${{ vars.IMAGE }}@${{ steps.image.outputs.digest }}" }
//!   signoff:
//!     needs: [deploy-qa]
//!     approve: { message: "Do tests OK?", approvers: [role:deployer], timeout: 72h }
//! ```

mod brackets;
mod cron;
mod expr;
mod raw;
mod suggest;
mod validate;

pub use cron::Cron;
pub use expr::{Condition, ExprError, Operand, ParamValue, WhenContext};
pub use suggest::closest;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A validated pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// Its name (unique per repository).
    pub name: String,
    /// Free text shown with it.
    pub description: Option<String>,
    /// What starts runs.
    pub triggers: Triggers,
    /// Typed parameters of manual runs, by name.
    pub params: BTreeMap<String, Param>,
    /// Variables, by name (values may refer to parameters and the run).
    pub vars: BTreeMap<String, String>,
    /// More git repositories checked out for each run (e.g. ops' deploy configuration),
    /// by name.
    pub repos: BTreeMap<String, Repo>,
    /// The steps in an order where every step comes after the steps it needs.
    pub steps: Vec<Step>,
}

/// What starts runs of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Triggers {
    /// Pushes to these branches (`*` matches any run of characters).
    pub push_branches: Vec<String>,
    /// How often the repository is polled for new commits, besides the webhook.
    pub poll: Option<Duration>,
    /// Manual runs are allowed (always true for a pipeline with parameters).
    pub manual: bool,
    /// Who may start manual runs (`role:…`, `user:…`); empty = the environment policy.
    pub manual_allowed: Vec<String>,
    /// Cron schedules (five fields).
    pub cron: Vec<String>,
}

/// A git repository a run checks out besides its own, such as a deploy-config repository
/// owned by ops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// A URL or path git can clone; `./x` and `../x` are relative to the pipeline's own
    /// repository (like git submodules' relative URLs).
    pub url: String,
    /// The branch (default: the repository's default branch).
    pub branch: Option<String>,
    /// The secret holding its credentials: `user:password` (or a token) for HTTP(S), or an
    /// SSH private key. Never in a URL, a command line or a log.
    pub secret: Option<String>,
}

/// A run parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its type.
    pub kind: ParamKind,
    /// The value when a run does not give one.
    pub default: Option<ParamValue>,
    /// A run must give a value (or the default is used).
    pub required: bool,
    /// Shown when asking for the value.
    pub description: Option<String>,
}

/// The type of a parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamKind {
    /// Any text.
    String,
    /// One of the options.
    Choice(Vec<String>),
    /// true or false.
    Bool,
}

/// One step of a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Its name, unique in the pipeline.
    pub name: String,
    /// Steps that must finish first (succeeded or skipped, unless `when` names `status`).
    pub needs: Vec<String>,
    /// Runs only when this holds.
    pub when: Option<Condition>,
    /// Longest time one attempt may take; then its whole process tree is killed.
    pub timeout: Option<Duration>,
    /// Attempts after the first when it fails.
    pub retry: u32,
    /// Extra environment of its commands.
    pub env: BTreeMap<String, String>,
    /// Secrets from the server's store, exposed as environment variables of the same name
    /// and masked in every log.
    pub secrets: Vec<String>,
    /// What it does.
    pub kind: StepKind,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// Shell commands in the run's workspace, one after the other.
    Run {
        /// The commands (`sh -c` each).
        commands: Vec<String>,
        /// Run them in a container of this image instead of on the host.
        image: Option<String>,
    },
    /// Fails on new SARIF findings above thresholds, against the last good run of the
    /// baseline branch.
    Gate {
        /// SARIF 2.1.0 files (workspace paths).
        sarif: Vec<String>,
        /// The branch whose last good run is the baseline (default: the run's branch).
        baseline: Option<String>,
        /// Most new findings allowed per level (`error`, `warning`, `note`); a level not
        /// listed is not limited. Default: `error: 0`.
        max_new: BTreeMap<SarifLevel, u32>,
    },
    /// `docker build` of a context, then a push; outputs `digest` and `image`.
    Docker {
        /// Build context (workspace path).
        context: String,
        /// Dockerfile, relative to the context (default `Dockerfile`).
        dockerfile: Option<String>,
        /// Reference to push, `registry/repo:tag`.
        push: String,
        /// More tags pushed for the same image.
        tags: Vec<String>,
    },
    /// Tags an image already in the registry (`repo@sha256:…` or `repo:tag`) as `to`
    /// through the registry API, by digest and without rebuilding; outputs `digest`.
    Promote {
        /// What to promote.
        image: String,
        /// The new reference, `repo:tag` in the same registry and repository.
        to: String,
        /// The name of an approval step (of any pipeline, e.g. the main flow's
        /// `qa-signoff`) that must have succeeded in a run that produced this digest;
        /// `None`: no such check.
        require_approval: Option<String>,
        /// A condition-free override: when it renders to `true` and the run was started
        /// by an admin, an unapproved digest is promoted anyway.
        force: Option<String>,
    },
    /// Deploys an app definition to an environment through the control plane.
    Deploy {
        /// The environment whose policy applies (`qa`, `prod`, `AA/prod`, ...).
        env: String,
        /// Read `app` and `overlay` from this repository of `repos` instead of the
        /// workspace.
        repo: Option<String>,
        /// Marathon app definition (workspace path).
        app: String,
        /// A JSON overlay merged over it for this environment.
        overlay: Option<String>,
        /// The image to run, typically `repo@${{ steps.X.outputs.digest }}`.
        image: Option<String>,
        /// Longest wait for the deployment to finish.
        timeout: Option<Duration>,
    },
    /// Waits for a human decision; holds no worker while waiting.
    Approve {
        /// The question.
        message: String,
        /// Who may decide (`role:…`, `user:…`); can only narrow the environment policy's
        /// approvers. Empty: whoever the policy allows.
        approvers: Vec<String>,
        /// The environment whose approval policy applies (default: `default`).
        env: Option<String>,
        /// Rejected when nobody decided by then.
        timeout: Duration,
    },
    /// Merges (or fast-forwards) a commit into a branch of the pipeline's repository and
    /// pushes it: the seed's "merge dev into master" after a release.
    Merge {
        /// What to merge (default: the run's commit).
        from: Option<String>,
        /// The branch merged into.
        into: String,
        /// Refuse anything but a fast-forward.
        fast_forward_only: bool,
        /// The secret with push credentials (as for `repos`).
        secret: Option<String>,
    },
}

/// A SARIF result level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SarifLevel {
    /// `error`.
    Error,
    /// `warning`.
    Warning,
    /// `note`.
    Note,
}

impl SarifLevel {
    /// Parses `error`, `warning` or `note`.
    pub fn parse(s: &str) -> Option<SarifLevel> {
        match s {
            "error" => Some(SarifLevel::Error),
            "warning" => Some(SarifLevel::Warning),
            "note" => Some(SarifLevel::Note),
            _ => None,
        }
    }
}

/// How long an approval waits when the file says nothing.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// One problem in a pipeline file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Every problem found in a pipeline file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineErrors(pub Vec<PipelineError>);

impl fmt::Display for PipelineErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PipelineErrors {}

/// Parses and validates a pipeline file.
pub fn parse_pipeline(text: &str) -> Result<Pipeline, PipelineErrors> {
    // An unclosed `[` is reported where it opens (where a person fixes it), not where the
    // parser gave up.
    let brackets = brackets::unbalanced(text);
    if !brackets.is_empty() {
        return Err(PipelineErrors(
            brackets
                .into_iter()
                .map(|(line, column, message)| PipelineError {
                    line,
                    column,
                    message,
                })
                .collect(),
        ));
    }
    // Unknown keys (`timout`) are set aside one by one so that every one of them, and the
    // file's other problems, are reported at once.
    let mut errors = Vec::new();
    let mut current = std::borrow::Cow::Borrowed(text);
    for _ in 0..50 {
        match serde_saphyr::from_str::<raw::RawFile>(&current) {
            Ok(raw) => {
                return match validate::validate(raw, &current) {
                    Ok(p) if errors.is_empty() => Ok(p),
                    Ok(_) => Err(PipelineErrors(errors)),
                    Err(more) => {
                        errors.extend(more.0);
                        errors.sort_by_key(|e| (e.line, e.column));
                        Err(PipelineErrors(errors))
                    }
                };
            }
            Err(e) => {
                let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
                let full = e.without_snippet().to_string();
                let suffix = format!(" at line {line}, column {column}");
                let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
                let unknown_key = message.starts_with("unknown field `");
                errors.push(PipelineError {
                    line: line as u32,
                    column: column as u32,
                    message,
                });
                match unknown_key
                    .then(|| brackets::without_key(&current, line as usize, column as usize))
                    .flatten()
                {
                    Some(next) if next != current.as_ref() => {
                        current = std::borrow::Cow::Owned(next)
                    }
                    _ => break,
                }
            }
        }
    }
    errors.sort_by_key(|e| (e.line, e.column));
    Err(PipelineErrors(errors))
}

/// Parses `500ms`, `45s`, `30m`, `72h`, `1h30m` or `2d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(d)?;
    }
    Some(total)
}

/// A `${{ … }}` reference in a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `params.NAME`.
    Param(String),
    /// `vars.NAME`.
    Var(String),
    /// `run.sha`, `run.branch`, `run.number`, `run.id`.
    Run(String),
    /// `steps.STEP.outputs.KEY`.
    Output {
        /// The step.
        step: String,
        /// The output.
        key: String,
    },
    /// `secrets.NAME` (only in `env` and commands; the value is masked).
    Secret(String),
}

/// The references in `text`, each with its character offset, or the offset and reason of
/// the first malformed one.
pub fn references(text: &str) -> Result<Vec<(usize, Reference)>, (usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text[from..].find("${{") {
        let open = from + start;
        let Some(len) = text[open..].find("}}") else {
            return Err((char_offset(text, open), "`${{` without `}}`".into()));
        };
        let inner = text[open + 3..open + len].trim();
        let parts: Vec<&str> = inner.split('.').collect();
        let reference = match parts.as_slice() {
            ["params", name] => Reference::Param((*name).into()),
            ["vars", name] => Reference::Var((*name).into()),
            ["secrets", name] => Reference::Secret((*name).into()),
            ["run", key @ ("sha" | "branch" | "number" | "id")] => Reference::Run((*key).into()),
            ["steps", step, "outputs", key] => Reference::Output {
                step: (*step).into(),
                key: (*key).into(),
            },
            _ => {
                return Err((
                    char_offset(text, open),
                    format!(
                        "unknown reference `{inner}` (use params.NAME, vars.NAME, secrets.NAME, run.sha|branch|number|id or steps.STEP.outputs.KEY)"
                    ),
                ));
            }
        };
        out.push((char_offset(text, open), reference));
        from = open + len + 2;
    }
    Ok(out)
}

fn char_offset(text: &str, byte: usize) -> usize {
    text[..byte].chars().count()
}

#[cfg(test)]
mod tests;
