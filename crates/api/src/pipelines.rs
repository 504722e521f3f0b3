//! Native pipeline endpoints: register pipelines from git repositories, start runs (by
//! hand or from a push webhook), read runs, their steps and paged logs, and decide
//! approvals under the environment's policy.

use crate::Ctx;
use crate::admin::ts;
use crate::error::ApiError;
use crate::identity::{AuditNote, forbidden};
use crate::params::Params;
use auth::{Action, Principal, Subject};
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::Timestamp;
use pipeline::service::{Decision, Service, ServiceError, Source};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use store::{RunRow, StepRow};

type ApiResult = Result<Response, ApiError>;

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::NotFound(m) => ApiError::message(StatusCode::NOT_FOUND, m),
            ServiceError::Invalid(m) | ServiceError::Git(m) => {
                ApiError::message(StatusCode::UNPROCESSABLE_ENTITY, m)
            }
            ServiceError::Store(e) => e.into(),
        }
    }
}

fn service(ctx: &Ctx) -> Result<&Service, ApiError> {
    ctx.pipelines.as_ref().ok_or_else(|| {
        ApiError::message(
            StatusCode::NOT_FOUND,
            "pipelines are not enabled on this server",
        )
    })
}

/// The request body as `T`; an empty body reads as `{}` (a run without parameters).
fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    crate::admin::json_body(body)
}

fn run_json(r: &RunRow, steps: Option<&[StepRow]>) -> Value {
    run_json_waiting(r, steps, None)
}

/// A run as JSON with what it waits for (`waitingFor`, absent when it does not wait) and
/// each step's duration so far (`durationMs`).
fn run_json_waiting(r: &RunRow, steps: Option<&[StepRow]>, waiting: Option<String>) -> Value {
    let mut v = json!({
        "id": r.id, "pipeline": r.pipeline, "number": r.number, "status": r.status.as_str(),
        "event": r.event, "triggeredBy": r.triggered_by, "branch": r.branch, "sha": r.sha,
        "params": serde_json::from_str::<Value>(&r.params).unwrap_or(Value::Null),
        "reason": r.reason, "createdAt": Timestamp(r.created_at),
        "startedAt": ts(r.started_at), "finishedAt": ts(r.finished_at),
    });
    if let Some(steps) = steps {
        v["steps"] = steps
            .iter()
            .map(|s| {
                json!({
                    "name": s.name, "status": s.status.as_str(), "attempts": s.attempts, "reason": s.reason,
                    "outputs": serde_json::from_str::<Value>(&s.outputs).unwrap_or(Value::Null),
                    "startedAt": ts(s.started_at), "finishedAt": ts(s.finished_at),
                    "decidedBy": s.decided_by, "decidedAt": ts(s.decided_at),
                    "durationMs": s.started_at.map(|start| {
                        s.finished_at.unwrap_or_else(|| Timestamp::now().millis()) - start
                    }),
                })
            })
            .collect();
    }
    if let Some(w) = waiting {
        v["waitingFor"] = json!(w);
    }
    v
}

/// What a run waits for, if it does.
fn waiting(svc: &Service, r: &RunRow) -> Option<String> {
    match r.status {
        store::RunStatus::Queued => svc.waiting_for(&r.id, true),
        store::RunStatus::Running => svc.waiting_for(&r.id, false),
        _ => None,
    }
}

/// `GET /api/v1/pipelines`.
pub(crate) async fn list(State(ctx): State<Ctx>) -> ApiResult {
    service(&ctx)?;
    let rows = ctx.store.pipelines()?;
    let list: Vec<Value> = rows
        .iter()
        .map(|p| {
            let mut source = serde_json::from_str::<Value>(&p.source).unwrap_or(Value::Null);
            // The file's text is kept for checks before runs; it is not part of the source.
            if let Some(o) = source.as_object_mut() {
                o.remove("file_text");
            }
            json!({"name": p.name, "source": source,
                   "createdAt": Timestamp(p.created_at), "updatedAt": Timestamp(p.updated_at)})
        })
        .collect();
    Ok(axum::Json(json!({ "pipelines": list })).into_response())
}

/// `PUT /api/v1/pipelines/{name}`: `{"repo", "branch", "file"}`; the file is checked out
/// and validated first (422 with `line:column` errors).
pub(crate) async fn put(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let svc = service(&ctx)?;
    let source: Source = json_body(&body)?;
    let p = svc.add_pipeline(&name, &source).await?;
    let steps: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    let params: Vec<&str> = p.params.keys().map(String::as_str).collect();
    Ok(axum::Json(json!({"name": name, "steps": steps, "params": params})).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    #[serde(default)]
    params: BTreeMap<String, Value>,
    /// The caller confirmed a run that deploys to an environment asking for confirmation.
    #[serde(default)]
    confirm: bool,
}

/// `POST /api/v1/pipelines/{name}/runs`: a manual run with `{"params": {...}}`.
pub(crate) async fn start(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let svc = service(&ctx)?;
    let req: RunRequest = json_body(&body)?;
    let params = req
        .params
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    let plan = svc.plan(&name, &params)?;
    // Who may start it: the file's list (if any), and for every environment it deploys
    // to, the environment policy (so a developer cannot run a release job for prod).
    if !plan.manual_allowed.is_empty()
        && !plan
            .manual_allowed
            .iter()
            .filter_map(|s| s.parse::<Subject>().ok())
            .any(|s| s.matches(&who))
    {
        return Err(forbidden(format!(
            "{} may not start {name} (allowed: {})",
            who.user,
            plan.manual_allowed.join(", ")
        )));
    }
    let mut confirm = Vec::new();
    for env in &plan.deploy_envs {
        let (id, labels) = env_target(env);
        ctx.identity.check_deploy(&who, &id, &labels)?;
        if ctx
            .identity
            .policies()
            .environments_for(&id, &labels)
            .iter()
            .any(|p| p.confirm)
        {
            confirm.push(env.clone());
        }
    }
    if !confirm.is_empty() && !req.confirm {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            body: json!({
                "message": format!(
                    "this run deploys to {}, which asks for confirmation: repeat with \"confirm\": true (slipway pipelines run --yes)",
                    confirm.join(", ")
                ),
                "confirm": confirm,
            }),
        });
    }
    let run = svc.trigger(&name, "manual", &format!("user:{}", who.user), params)?;
    let mut resp = (StatusCode::CREATED, axum::Json(run_json(&run, None))).into_response();
    if !plan.deploy_envs.is_empty() {
        let given: Vec<String> = serde_json::from_str::<BTreeMap<String, String>>(&run.params)
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        resp.extensions_mut().insert(AuditNote {
            app: None,
            detail: Some(format!(
                "run #{} of {name} deploying to {}{}{}",
                run.number,
                plan.deploy_envs.join(", "),
                if given.is_empty() { "" } else { " with " },
                given.join(" ")
            )),
        });
    }
    Ok(resp)
}

/// The app id and labels that stand for "an app in `env`" (`qa`, `prod`, `BB/prod`) when
/// applying the environment policy before the real app definition is known.
fn env_target(env: &str) -> (model::PathId, BTreeMap<String, String>) {
    let name = auth::environment_name(env);
    (
        model::PathId::parse(&format!("/{}", env.trim_matches('/'))),
        BTreeMap::from([("SLIPWAY_ENV".to_string(), name.to_string())]),
    )
}

/// `POST /api/v1/pipelines/{name}/hooks/push`: a push webhook. A body with `ref`
/// (GitHub, GitLab, Gitea: `refs/heads/BRANCH`) for another branch is ignored (200);
/// otherwise a run of the pipeline's branch starts (201).
pub(crate) async fn push_hook(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let svc = service(&ctx)?;
    let watched = svc.source(&name)?.branch;
    let pushed = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v["ref"]
            .as_str()
            .map(|r| r.trim_start_matches("refs/heads/").to_string())
    });
    if let Some(branch) = pushed.filter(|b| *b != watched) {
        return Ok(axum::Json(
            json!({"ignored": format!("push to {branch}; {name} watches {watched}")}),
        )
        .into_response());
    }
    let run = svc.trigger(
        &name,
        "push",
        &format!("webhook:{}", who.user),
        BTreeMap::new(),
    )?;
    Ok((StatusCode::CREATED, axum::Json(run_json(&run, None))).into_response())
}

/// `POST /api/v1/runs/{id}/retry`: a new run of the same commit and parameters that keeps
/// the steps that succeeded (and their outputs) and runs the rest.
pub(crate) async fn retry(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let svc = service(&ctx)?;
    let run = svc.retry(&id, &format!("user:{}", who.user))?;
    Ok((StatusCode::CREATED, axum::Json(run_json(&run, None))).into_response())
}

/// `POST /api/v1/runs/{id}/cancel`: kills the run's running steps and ends it.
pub(crate) async fn cancel(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let svc = service(&ctx)?;
    svc.cancel(&id, &format!("user:{}", who.user))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"run": id, "cancelled": true})),
    )
        .into_response())
}

/// `GET /api/v1/runs?pipeline=NAME&limit=N`: newest first.
pub(crate) async fn list_runs(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> ApiResult {
    let svc = service(&ctx)?;
    let q = Params::parse(q.as_deref());
    let limit = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(50usize)
        .min(1000);
    let runs = ctx.store.runs(q.get("pipeline"), limit)?;
    Ok(
        axum::Json(json!({"runs": runs.iter().map(|r| run_json_waiting(r, None, waiting(svc, r))).collect::<Vec<_>>()}))
            .into_response(),
    )
}

/// `GET /api/v1/runs/{id}`: the run with its steps.
pub(crate) async fn get_run(State(ctx): State<Ctx>, Path(id): Path<String>) -> ApiResult {
    let svc = service(&ctx)?;
    let run = ctx
        .store
        .run(&id)?
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    let mut steps = ctx.store.steps(&id)?;
    // In the pipeline's order (as the file was last read), not by name.
    let order = svc.step_order(&run.pipeline);
    steps.sort_by_key(|s| {
        order
            .iter()
            .position(|n| *n == s.name)
            .unwrap_or(usize::MAX)
    });
    let waits = waiting(svc, &run);
    Ok(axum::Json(run_json_waiting(&run, Some(&steps), waits)).into_response())
}

/// `GET /api/v1/runs/{id}/steps/{step}/logs?after=SEQ&limit=N`: lines after `after`;
/// `next` is the `after` of the following page.
pub(crate) async fn logs(
    State(ctx): State<Ctx>,
    Path((id, step)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    service(&ctx)?;
    let q = Params::parse(q.as_deref());
    let after = q.get("after").and_then(|v| v.parse().ok()).unwrap_or(0i64);
    let limit = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(500usize)
        .min(5000);
    if ctx.store.run(&id)?.is_none() {
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            format!("no run {id}"),
        ));
    }
    let lines = ctx.store.logs(&id, &step, after, limit)?;
    let next = lines.last().map_or(after, |l| l.seq);
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| json!({"seq": l.seq, "at": Timestamp(l.at), "stream": l.stream, "line": l.line}))
        .collect();
    Ok(axum::Json(json!({"lines": lines, "next": next})).into_response())
}

/// `POST /api/v1/runs/{id}/steps/{step}/approve` and `.../reject`.
pub(crate) async fn approve(
    ctx: State<Ctx>,
    who: Extension<Principal>,
    path: Path<(String, String)>,
) -> ApiResult {
    decide(ctx, who, path, true).await
}

/// See [`approve`].
pub(crate) async fn reject(
    ctx: State<Ctx>,
    who: Extension<Principal>,
    path: Path<(String, String)>,
) -> ApiResult {
    decide(ctx, who, path, false).await
}

async fn decide(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path((id, step)): Path<(String, String)>,
    approve: bool,
) -> ApiResult {
    let svc = service(&ctx)?;
    let pending = svc.pending(&id, &step).ok_or_else(|| {
        ApiError::message(
            StatusCode::NOT_FOUND,
            format!("no pending approval `{step}` in run {id}"),
        )
    })?;
    let run = ctx
        .store
        .run(&id)?
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, format!("no run {id}")))?;
    // The environment's policy decides who may approve; the file can only narrow it.
    let started_by = run.triggered_by.strip_prefix("user:").map(str::to_string);
    let action = Action::Approve {
        env: pending.env.clone(),
        started_by,
    };
    if let Err(reason) = ctx
        .identity
        .policies()
        .authorize(&who, &action)
        .into_result()
    {
        return Err(forbidden(reason));
    }
    if !pending.approvers.is_empty() {
        let listed = pending
            .approvers
            .iter()
            .filter_map(|s| s.parse::<Subject>().ok())
            .any(|s| s.matches(&who));
        if !listed {
            return Err(forbidden(format!(
                "{} is not among the approvers of `{step}` ({})",
                who.user,
                pending.approvers.join(", ")
            )));
        }
    }
    svc.decide(
        &id,
        &step,
        Decision {
            approve,
            by: format!("user:{}", who.user),
        },
    )?;
    Ok(
        axum::Json(json!({"run": id, "step": step, "approved": approve, "by": who.user}))
            .into_response(),
    )
}

/// Pipelines' `deploy` steps through the engine, under the environment policy of the
/// user who started the run (runs started by polling or cron deploy as a developer), and
/// recorded in the audit log like any other deploy.
pub struct EngineDeployer {
    /// The engine.
    pub engine: engine::Engine,
    /// Policies and the audit log.
    pub identity: std::sync::Arc<crate::Identity>,
    /// Users (for the role of the run's starter).
    pub store: std::sync::Arc<store::Store>,
    /// Settings of the admission checks deploys pass, as API changes do.
    pub admission: std::sync::Arc<crate::admission::AdmissionConfig>,
}

impl EngineDeployer {
    fn principal(&self, who: &str) -> Principal {
        let user = who
            .strip_prefix("user:")
            .or_else(|| who.strip_prefix("webhook:"))
            .map(str::to_string);
        match user.and_then(|u| self.store.user(&u).ok().flatten()) {
            Some(row) if !row.disabled => Principal {
                role: row.role.parse().unwrap_or(auth::Role::Viewer),
                user: row.name,
            },
            _ => Principal {
                user: format!("pipeline ({who})"),
                role: auth::Role::Developer,
            },
        }
    }
}

impl pipeline::service::Deployer for EngineDeployer {
    fn deploy(&self, who: &str, app: Value) -> Result<String, String> {
        let principal = self.principal(who);
        let id = model::PathId::parse(app["id"].as_str().ok_or("the app definition has no id")?);
        let labels: BTreeMap<String, String> =
            serde_json::from_value(app["labels"].clone()).unwrap_or_default();
        let current = self.engine.app_labels(&id).unwrap_or_default();
        let checked = self
            .identity
            .check_deploy(&principal, &id, &current)
            .and_then(|()| self.identity.check_deploy(&principal, &id, &labels));
        let body = serde_json::to_vec(&app).map_err(|e| e.to_string())?;
        let result = checked.and_then(|()| {
            let gate = crate::admission::Gate {
                policies: self.identity.policies(),
                who: &principal,
                config: &self.admission,
                store: &self.store,
            };
            self.engine
                .update_app(&id, &body, true, false, false, &gate)
                .map_err(ApiError::from)
        });
        let (status, outcome, detail) = match &result {
            Ok(_) => (200, "allowed", None),
            Err(e) if e.status == StatusCode::FORBIDDEN => (
                403,
                "denied",
                e.body["message"].as_str().map(str::to_string),
            ),
            Err(e) => (
                e.status.as_u16(),
                "failed",
                e.body["message"].as_str().map(str::to_string),
            ),
        };
        let _ = self.store.append_audit(&store::AuditRow {
            seq: 0,
            at: Timestamp::now().millis(),
            user: principal.user.clone(),
            action: format!("deploy step {who}"),
            target: format!("app:{id}"),
            app: Some(id.to_string()),
            source: "pipeline".into(),
            status,
            outcome: outcome.into(),
            detail,
        });
        match result {
            Ok((d, _)) => Ok(d.deployment_id),
            Err(e) => {
                let message = e.body["message"].as_str().unwrap_or("refused").to_string();
                let details = e.body["details"].as_array().map(|d| {
                    d.iter()
                        .map(|x| format!("{}: {}", x["path"].as_str().unwrap_or(""), x["errors"]))
                        .collect::<Vec<_>>()
                        .join("; ")
                });
                Err(match details {
                    Some(d) if !d.is_empty() => format!("{message} ({d})"),
                    _ => message,
                })
            }
        }
    }

    fn is_admin(&self, who: &str) -> bool {
        self.principal(who).role == auth::Role::Admin
    }

    fn status(
        &self,
        deployment: &str,
    ) -> Result<Option<pipeline::service::DeploymentStatus>, String> {
        let Some(v) = self
            .engine
            .deployment_status(deployment)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let actions: Vec<String> = v["currentActions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                format!(
                    "{} {}",
                    a["action"].as_str().unwrap_or(""),
                    a["app"].as_str().unwrap_or("")
                )
            })
            .collect();
        let progress = match (v["currentStep"].as_u64(), v["totalSteps"].as_u64()) {
            (Some(c), Some(t)) if !actions.is_empty() => {
                format!("step {c}/{t}: {}", actions.join(", "))
            }
            _ => String::new(),
        };
        Ok(Some(pipeline::service::DeploymentStatus {
            status: v["status"].as_str().unwrap_or("running").to_string(),
            reason: v["reason"].as_str().map(str::to_string),
            progress,
        }))
    }
}
