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
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use model::Timestamp;
use pipeline::service::{Actor, Decision, Service, ServiceError, Source};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
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
    let svc = service(&ctx)?;
    let rows = ctx.store.pipelines()?;
    let list: Vec<Value> = rows
        .iter()
        .map(|p| {
            let mut source = serde_json::from_str::<Value>(&p.source).unwrap_or(Value::Null);
            // The file's text is kept for checks before runs; it is not part of the source
            // (its steps and parameters are shown instead).
            let text = source
                .as_object_mut()
                .and_then(|o| o.remove("file_text"))
                .and_then(|t| t.as_str().map(str::to_string));
            let mut v = json!({"name": p.name, "source": source, "owner": p.owner,
                   "createdAt": Timestamp(p.created_at), "updatedAt": Timestamp(p.updated_at)});
            // Its repository cannot be reached (polling or checkouts fail), until it can.
            if let Some(g) = svc.git_problem(&p.name) {
                v["gitError"] = json!({"error": g.error, "since": Timestamp(g.since_ms),
                                       "failures": g.failures});
            }
            if let Some(file) = text
                .as_deref()
                .and_then(|t| model::pipeline::parse_pipeline(t).ok())
            {
                v["steps"] = file.steps.iter().map(step_json).collect();
                v["params"] = file
                    .params
                    .iter()
                    .map(|(name, p)| param_json(name, p))
                    .collect();
            }
            v
        })
        .collect();
    Ok(axum::Json(json!({ "pipelines": list })).into_response())
}

/// A step as `pipelines show` lists it: name, kind, what it needs.
fn step_json(s: &model::pipeline::Step) -> Value {
    use model::pipeline::StepKind;
    let kind = match &s.kind {
        StepKind::Run { image: None, .. } => "run",
        StepKind::Run { image: Some(_), .. } => "run (container)",
        StepKind::Gate { .. } => "gate",
        StepKind::Docker { .. } => "docker",
        StepKind::Promote { .. } => "promote",
        StepKind::Deploy { .. } => "deploy",
        StepKind::Approve { .. } => "approve",
        StepKind::Merge { .. } => "merge",
    };
    let mut v = json!({"name": s.name, "kind": kind, "needs": s.needs});
    if let StepKind::Deploy { env, .. } | StepKind::Approve { env: Some(env), .. } = &s.kind {
        v["env"] = json!(env);
    }
    v
}

/// A parameter with its type and default.
fn param_json(name: &str, p: &model::pipeline::Param) -> Value {
    use model::pipeline::{ParamKind, ParamValue};
    let (kind, options) = match &p.kind {
        ParamKind::String => ("string", None),
        ParamKind::Bool => ("bool", None),
        ParamKind::Choice(o) => ("choice", Some(o.clone())),
    };
    json!({
        "name": name, "type": kind, "options": options, "required": p.required,
        "default": p.default.as_ref().map(|d| match d {
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Text(t) => t.clone(),
        }),
        "description": p.description,
    })
}

/// `PUT /api/v1/pipelines/{name}`: `{"repo", "branch", "file"}`; the file is checked out
/// and validated first (422 with `line:column` errors). A new pipeline belongs to whoever
/// registered it; changing the source of an existing one takes its owner or an admin;
/// a pipeline whose deploy steps reach an environment that asks for confirmation (prod)
/// takes the role that environment's policy gives for deploying there.
pub(crate) async fn put(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let svc = service(&ctx)?;
    let source: Source = json_body(&body)?;
    let existing = ctx.store.pipelines()?.into_iter().find(|p| p.name == name);
    if let Some(row) = &existing
        && let Ok(current) = svc.source(&name)
        && (&current.repo, &current.branch, &current.file)
            != (&source.repo, &source.branch, &source.file)
    {
        check_owner(&who, &name, row.owner.as_deref(), "change the source of")?;
    }
    let inspected = svc.inspect(&source).await?;
    for env in pipeline::service::deploy_envs(&inspected.pipeline) {
        let (id, labels) = env_target(&env);
        let confirm = ctx
            .identity
            .policies()
            .environments_for(&id, &labels)
            .iter()
            .any(|p| p.confirm);
        if confirm && let Err(e) = ctx.identity.check_deploy(&who, &id, &labels) {
            let why = e.body["message"].as_str().unwrap_or("refused").to_string();
            return Err(forbidden(format!(
                "{name} deploys to {env}, which asks for confirmation; registering it takes who may deploy there: {why}"
            )));
        }
    }
    let p = svc.register(&name, &source, inspected, Some(&who.user))?;
    let steps: Vec<&str> = p.steps.iter().map(|s| s.name.as_str()).collect();
    let params: Vec<&str> = p.params.keys().map(String::as_str).collect();
    Ok(axum::Json(json!({"name": name, "steps": steps, "params": params})).into_response())
}

/// Whether `who` may `what` the pipeline `name` owned by `owner`: its owner or an admin.
fn check_owner(
    who: &Principal,
    name: &str,
    owner: Option<&str>,
    what: &str,
) -> Result<(), ApiError> {
    if who.role == auth::Role::Admin || owner == Some(who.user.as_str()) {
        return Ok(());
    }
    Err(forbidden(format!(
        "{} may not {what} the pipeline {name}: it belongs to {} (its owner or an admin may)",
        who.user,
        owner.unwrap_or("nobody recorded")
    )))
}

/// The name of a pipeline's webhook secret in the secret store.
fn webhook_secret_name(pipeline: &str) -> String {
    format!("webhook@{pipeline}")
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WebhookSecretRequest {
    /// The secret to use (a new random one when absent).
    #[serde(default)]
    value: Option<String>,
}

/// `PUT /api/v1/pipelines/{name}/webhook-secret`: sets the secret forges sign their push
/// webhooks with (stored sealed in the secret store, usable by no step or app), and shows
/// it this once. Its owner or an admin.
pub(crate) async fn webhook_secret(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    service(&ctx)?;
    let row = ctx
        .store
        .pipelines()?
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::message(StatusCode::NOT_FOUND, format!("no pipeline `{name}`")))?;
    check_owner(
        &who,
        &name,
        row.owner.as_deref(),
        "set the webhook secret of",
    )?;
    // The body holds the secret: never echo it, not even in a parse error.
    let req: WebhookSecretRequest = json_body(&body).map_err(|_| {
        ApiError::message(
            StatusCode::BAD_REQUEST,
            "expected {} or {\"value\": \"...\"}",
        )
    })?;
    let value = match req.value {
        Some(v) if v.len() >= 16 => v,
        Some(_) => {
            return Err(ApiError::message(
                StatusCode::UNPROCESSABLE_ENTITY,
                "a webhook secret has at least 16 characters",
            ));
        }
        None => auth::new_token(),
    };
    let secret = webhook_secret_name(&name);
    let sealed = ctx
        .secret_key
        .seal(&secret, value.as_bytes())
        .map_err(|e| ApiError::message(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    ctx.store
        .put_secret(&secret, &sealed, Timestamp::now().millis(), &who.user, None)?;
    Ok(axum::Json(json!({
        "pipeline": name,
        "secret": value,
        "url": format!("/api/v1/pipelines/{name}/hooks/push"),
        "headers": ["X-Hub-Signature-256 (GitHub)", "X-Gitlab-Token (GitLab)", "X-Gitea-Signature (Gitea, Forgejo)"],
    }))
    .into_response())
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

/// `POST /api/v1/pipelines/{name}/hooks/push`: a push webhook, either from a forge that
/// signs it with the pipeline's webhook secret (GitHub, GitLab, Gitea, Forgejo; the run
/// starts as the service principal [`pipeline::service::FORGE_PRINCIPAL`] with the
/// developer role) or from a Slipway user's token (the run is theirs, and deploys at most
/// as a developer). Only pipelines with a push trigger start from it. A push to another
/// branch, of a deleted branch or any other event is ignored (200); otherwise a run of the
/// pushed commit starts (201). Forge deliveries without valid credentials get 401 and are
/// audited.
pub(crate) async fn push_hook(
    State(ctx): State<Ctx>,
    who: Option<Extension<Principal>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let svc = service(&ctx)?;
    let header = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (starter, forge) = match who {
        Some(Extension(p)) => (format!("user:{}", p.user), None),
        None => match verify_forge(&ctx, &name, &header, &body) {
            Ok(forge) => (
                format!("service:{}", pipeline::service::FORGE_PRINCIPAL),
                Some(forge),
            ),
            Err(why) => {
                audit_hook(&ctx, &name, peer, 401, "denied", &why);
                return Err(ApiError::message(
                    StatusCode::UNAUTHORIZED,
                    format!("Unauthorized: {why}"),
                ));
            }
        },
    };
    let source = svc.source(&name)?;
    let has_push_trigger = source
        .file_text
        .as_deref()
        .and_then(|t| model::pipeline::parse_pipeline(t).ok())
        .is_some_and(|p| !p.triggers.push_branches.is_empty());
    if !has_push_trigger {
        let why = format!(
            "{name} has no push trigger (on: {{ push: {{ branches: [...] }} }}): webhooks do not start it"
        );
        if forge.is_some() {
            audit_hook(&ctx, &name, peer, 409, "failed", &why);
        }
        return Err(ApiError::message(StatusCode::CONFLICT, why));
    }
    let watched = source.branch;
    let ignored =
        |why: String| -> ApiResult { Ok(axum::Json(json!({ "ignored": why })).into_response()) };
    let (branch, sha) = match pipeline::webhook::event(&header, &body) {
        pipeline::webhook::Event::Other(kind) => {
            return ignored(format!("a {kind} event; only pushes start runs"));
        }
        pipeline::webhook::Event::Push { branch, sha } => (branch, sha),
    };
    if let Some(branch) = branch.as_ref().filter(|b| **b != watched) {
        return ignored(format!("push to {branch}; {name} watches {watched}"));
    }
    let body_has_ref = serde_json::from_slice::<Value>(&body).is_ok_and(|v| v["ref"].is_string());
    if body_has_ref && branch.is_none() {
        return ignored("a push of a tag; only branches start runs".into());
    }
    if body_has_ref && sha.is_none() && forge.is_some() {
        return ignored(format!("{watched} was deleted"));
    }
    let run = svc.trigger_at(&name, "push", &starter, BTreeMap::new(), sha.as_deref())?;
    if let Some(forge) = forge {
        audit_hook(
            &ctx,
            &name,
            peer,
            201,
            "allowed",
            &format!(
                "{} push of {} started run #{}",
                forge.name(),
                sha.as_deref().unwrap_or("the branch head"),
                run.number
            ),
        );
    }
    Ok((StatusCode::CREATED, axum::Json(run_json(&run, None))).into_response())
}

/// Checks a forge delivery against the pipeline's webhook secret.
fn verify_forge(
    ctx: &Ctx,
    name: &str,
    header: &dyn Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<pipeline::webhook::Forge, String> {
    let secret_name = webhook_secret_name(name);
    // An unknown pipeline and one without a secret look the same from outside.
    let sealed = ctx
        .store
        .sealed_secret(&secret_name)
        .ok()
        .flatten()
        .ok_or("no valid webhook credentials (the pipeline has no webhook secret: slipway pipelines webhook-secret NAME)")?;
    let secret = ctx
        .secret_key
        .open(&secret_name, &sealed)
        .map_err(|_| "the webhook secret cannot be read".to_string())?;
    pipeline::webhook::verify(header, body, &secret)
}

/// Audits a forge delivery (who: the forge principal; never the secret or the body).
fn audit_hook(ctx: &Ctx, name: &str, peer: SocketAddr, status: u16, outcome: &str, detail: &str) {
    let _ = ctx.store.append_audit(&store::AuditRow {
        seq: 0,
        at: Timestamp::now().millis(),
        user: format!("service:{}", pipeline::service::FORGE_PRINCIPAL),
        action: format!("POST /api/v1/pipelines/{name}/hooks/push"),
        target: format!("pipeline:{name}"),
        app: None,
        source: peer.ip().to_string(),
        status,
        outcome: outcome.into(),
        detail: Some(detail.chars().take(512).collect()),
    });
}

/// The run a request names: its id, a unique prefix of it (4 characters or more), or
/// `PIPELINE#NUMBER`.
fn resolve_run(ctx: &Ctx, id: &str) -> Result<RunRow, ApiError> {
    let not_found = || ApiError::message(StatusCode::NOT_FOUND, format!("no run {id}"));
    if let Some((pipeline, number)) = id.rsplit_once('#') {
        let number: i64 = number.trim().parse().map_err(|_| {
            ApiError::message(
                StatusCode::NOT_FOUND,
                format!(
                    "no run {id} (runs are named by id, a unique id prefix or PIPELINE#NUMBER)"
                ),
            )
        })?;
        return ctx
            .store
            .run_by_number(pipeline, number)?
            .ok_or_else(not_found);
    }
    if let Some(run) = ctx.store.run(id)? {
        return Ok(run);
    }
    if id.len() < 4 {
        return Err(not_found());
    }
    let mut found = ctx.store.runs_by_prefix(id, 5)?;
    match found.len() {
        0 => Err(not_found()),
        1 => Ok(found.remove(0)),
        _ => Err(ApiError::message(
            StatusCode::CONFLICT,
            format!(
                "{id} names more than one run ({}): give more of the id, or PIPELINE#NUMBER",
                found
                    .iter()
                    .map(|r| format!("{}#{} {}", r.pipeline, r.number, r.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Whether `who` may cancel or retry `run`: an admin, whoever started it, or anyone who
/// may deploy to every environment it deploys to (a developer cannot stop or repeat a
/// deployer's prod run).
fn check_run_control(
    ctx: &Ctx,
    svc: &Service,
    who: &Principal,
    run: &RunRow,
    what: &str,
) -> Result<(), ApiError> {
    if who.role == auth::Role::Admin
        || Actor::starter_user(&run.triggered_by).as_deref() == Some(who.user.as_str())
    {
        return Ok(());
    }
    let given: BTreeMap<String, String> = serde_json::from_str(&run.params).unwrap_or_default();
    let envs = svc
        .plan(&run.pipeline, &given)
        .map(|p| p.deploy_envs)
        .unwrap_or_default();
    for env in envs {
        let (id, labels) = env_target(&env);
        if ctx.identity.check_deploy(who, &id, &labels).is_err() {
            return Err(forbidden(format!(
                "{} may not {what} run #{} of {}: it deploys to {env}, where {} may not deploy (started by {})",
                who.user, run.number, run.pipeline, who.user, run.triggered_by
            )));
        }
    }
    Ok(())
}

/// `POST /api/v1/runs/{id}/retry`: a new run of the same commit and parameters that keeps
/// the steps that succeeded (and their outputs) and runs the rest.
pub(crate) async fn retry(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let svc = service(&ctx)?;
    let old = resolve_run(&ctx, &id)?;
    check_run_control(&ctx, svc, &who, &old, "retry")?;
    let run = svc.retry(&old.id, &format!("user:{}", who.user))?;
    Ok((StatusCode::CREATED, axum::Json(run_json(&run, None))).into_response())
}

/// `POST /api/v1/runs/{id}/cancel`: kills the run's running steps and ends it.
pub(crate) async fn cancel(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult {
    let svc = service(&ctx)?;
    let run = resolve_run(&ctx, &id)?;
    check_run_control(&ctx, svc, &who, &run, "cancel")?;
    svc.cancel(&run.id, &format!("user:{}", who.user))?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"run": run.id, "cancelled": true})),
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
    let run = resolve_run(&ctx, &id)?;
    let mut steps = ctx.store.steps(&run.id)?;
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
    let svc = service(&ctx)?;
    let q = Params::parse(q.as_deref());
    let after = q.get("after").and_then(|v| v.parse().ok()).unwrap_or(0i64);
    let limit = q
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(500usize)
        .min(5000);
    let run = resolve_run(&ctx, &id)?;
    let names = step_names(&ctx, svc, &run)?;
    if !names.contains(&step) {
        return Err(no_step(&run, &step, &names));
    }
    let lines = ctx.store.logs(&run.id, &step, after, limit)?;
    let next = lines.last().map_or(after, |l| l.seq);
    let lines: Vec<Value> = lines
        .iter()
        .map(|l| json!({"seq": l.seq, "at": Timestamp(l.at), "stream": l.stream, "line": l.line}))
        .collect();
    Ok(axum::Json(json!({"lines": lines, "next": next})).into_response())
}

/// The steps of a run: those recorded, and those of the pipeline file, in pipeline order.
fn step_names(ctx: &Ctx, svc: &Service, run: &RunRow) -> Result<Vec<String>, ApiError> {
    let mut names = svc.step_order(&run.pipeline);
    for s in ctx.store.steps(&run.id)? {
        if !names.contains(&s.name) {
            names.push(s.name);
        }
    }
    Ok(names)
}

/// 404 for a step the run does not have, naming its steps and the likely one.
fn no_step(run: &RunRow, step: &str, names: &[String]) -> ApiError {
    let hint = model::pipeline::closest(step, names.iter().map(String::as_str))
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    ApiError::message(
        StatusCode::NOT_FOUND,
        format!(
            "run #{} of {} has no step `{step}`{hint}; its steps: {}",
            run.number,
            run.pipeline,
            names.join(", ")
        ),
    )
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
    let run = resolve_run(&ctx, &id)?;
    let id = run.id.clone();
    let Some(pending) = svc.pending(&id, &step) else {
        return Err(why_not_pending(&ctx, svc, &run, &step)?);
    };
    // The environment's policy decides who may approve; the file can only narrow it.
    let started_by = Actor::starter_user(&run.triggered_by);
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

/// Why `step` of `run` has no pending approval: a typo, not an approval step, already
/// decided or ended, or not reached yet.
fn why_not_pending(
    ctx: &Ctx,
    svc: &Service,
    run: &RunRow,
    step: &str,
) -> Result<ApiError, ApiError> {
    let names = step_names(ctx, svc, run)?;
    if !names.iter().any(|n| n == step) {
        return Ok(no_step(run, step, &names));
    }
    let what = format!("run #{} of {}", run.number, run.pipeline);
    let conflict = |m: String| ApiError::message(StatusCode::CONFLICT, m);
    let definition = svc
        .steps_of(&run.pipeline)
        .into_iter()
        .find(|s| s.name == step);
    if let Some(d) = &definition
        && !matches!(d.kind, model::pipeline::StepKind::Approve { .. })
    {
        return Ok(conflict(format!(
            "`{step}` of {what} is not an approval step; its approvals: {}",
            svc.steps_of(&run.pipeline)
                .iter()
                .filter(|s| matches!(s.kind, model::pipeline::StepKind::Approve { .. }))
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let recorded = ctx
        .store
        .steps(&run.id)?
        .into_iter()
        .find(|s| s.name == step);
    if let Some(s) = &recorded {
        if let Some(by) = &s.decided_by {
            let verdict = if s.status == store::StepStatus::Succeeded {
                "approved"
            } else {
                "rejected"
            };
            return Ok(conflict(format!(
                "`{step}` of {what} was already decided: {verdict} by {by}"
            )));
        }
        if !matches!(
            s.status,
            store::StepStatus::Pending | store::StepStatus::Running
        ) {
            return Ok(conflict(format!(
                "`{step}` of {what} has ended: {}{}",
                s.status,
                s.reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )));
        }
    }
    if run.status.is_finished() {
        return Ok(conflict(format!(
            "{what} has ended ({}); `{step}` was never reached",
            run.status
        )));
    }
    let needs = definition.map(|d| d.needs).unwrap_or_default();
    Ok(conflict(format!(
        "`{step}` of {what} is not reached yet{}",
        if needs.is_empty() {
            String::new()
        } else {
            format!(": it waits for {}", needs.join(", "))
        }
    )))
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
    /// The principal a step acts as: a user with their role (capped for pushes; a
    /// disabled or deleted user is a viewer), or a service principal with the developer
    /// role.
    fn principal(&self, who: &Actor) -> Principal {
        match who {
            Actor::User { name, at_most } => {
                let role = match self.store.user(name).ok().flatten() {
                    Some(row) if !row.disabled => row.role.parse().unwrap_or(auth::Role::Viewer),
                    _ => auth::Role::Viewer,
                };
                Principal {
                    user: name.clone(),
                    role: at_most.map_or(role, |cap| role.min(cap)),
                }
            }
            Actor::Service(name) => Principal {
                user: format!("service:{name}"),
                role: auth::Role::Developer,
            },
        }
    }
}

impl pipeline::service::Deployer for EngineDeployer {
    fn deploy(&self, who: &Actor, app: Value) -> Result<String, String> {
        let principal = self.principal(who);
        let id = model::PathId::parse(app["id"].as_str().ok_or("the app definition has no id")?);
        let labels: BTreeMap<String, String> =
            serde_json::from_value(app["labels"].clone()).unwrap_or_default();
        let current = self.engine.app_labels(&id).unwrap_or_default();
        let checked = self
            .identity
            .check_deploy(&principal, &id, &current)
            .and_then(|()| self.identity.check_deploy(&principal, &id, &labels));
        let result = checked.and_then(|()| {
            let gate = crate::admission::Gate {
                policies: self.identity.policies(),
                who: &principal,
                config: &self.admission,
                store: &self.store,
            };
            let update = crate::marathon::app_update(&id, app, false)?;
            self.engine
                .update_app(&id, update, true, false, &gate)
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
            Ok(u) => Ok(u.deployment.deployment_id),
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

    fn is_admin(&self, who: &Actor) -> bool {
        self.principal(who).role == auth::Role::Admin
    }

    fn deployment_news(&self) -> Option<pipeline::service::DeploymentNews> {
        use tokio::sync::broadcast::error::RecvError;
        let rx = self.engine.events().subscribe();
        let news = futures_util::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(p) => {
                        if let Some(d) = p.event.deployment() {
                            return Some((Some(d.id.clone()), rx));
                        }
                    }
                    Err(RecvError::Lagged(_)) => return Some((None, rx)),
                    Err(RecvError::Closed) => return None,
                }
            }
        });
        Some(Box::pin(news))
    }

    fn status(
        &self,
        deployment: &str,
    ) -> Result<Option<pipeline::service::DeploymentStatus>, String> {
        let Some(d) = self
            .engine
            .deployment(deployment)
            .map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        let v = crate::views::deployment_status_json(&d);
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
