//! The Marathon v2 REST API: `/v2/apps`, `/v2/tasks`, `/v2/deployments`, `/v2/groups`,
//! `/v2/queue`, `/v2/info`, `/v2/leader`, `/ping` and `/metrics`.

use crate::error::ApiError;
use crate::identity::AuditNote;
use crate::params::Params;
use crate::views::{self, AppsQuery, Embed};
use crate::{Ctx, json_bytes};
use auth::Principal;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use engine::{AppUpdate, DeploymentResult, Event, KillResult};
use model::{AppDefinition, DefinitionError, PathId, Selector, Timestamp};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;

type ApiResult = Result<Response, ApiError>;

/// A request body as JSON, or Marathon's 400.
fn parse_body(body: &[u8]) -> Result<Value, DefinitionError> {
    serde_json::from_slice(body).map_err(|e| DefinitionError::Malformed(e.to_string()))
}

/// What a `PUT`/`PATCH` body asks of app `id`: a rollback to a stored version (`{"version":
/// ...}`, with nothing but the id beside it), or a new definition, merged onto the current
/// one when `partial` (Marathon's `partialUpdate`).
pub(crate) fn app_update(
    id: &PathId,
    value: Value,
    partial: bool,
) -> Result<AppUpdate<'static>, DefinitionError> {
    if let Some(v) = value.get("version").filter(|v| !v.is_null()) {
        let only_id = value
            .as_object()
            .is_some_and(|m| m.keys().all(|k| k == "id" || k == "version"));
        if !only_id {
            return Err(DefinitionError::invalid(
                "/",
                "The 'version' field may only be combined with the 'id' field.",
            ));
        }
        let ts = v.as_str().and_then(Timestamp::parse).ok_or_else(|| {
            DefinitionError::invalid(
                "/version",
                "must be a version timestamp such as 2017-07-19T17:34:41.967Z",
            )
        })?;
        return Ok(AppUpdate::Rollback(ts));
    }
    let id = id.clone();
    Ok(AppUpdate::Define(Box::new(
        move |current: Option<&AppDefinition>| {
            let merged = match (current, partial) {
                (Some(cur), true) => model::merge_update(cur, &value),
                _ => value,
            };
            // The engine stamps the version it commits at.
            model::input_from_value(merged)?.into_definition(Some(&id), Timestamp(0))
        },
    )))
}

/// Labels given in a request body, if the body is a JSON object with `labels`.
fn body_labels(body: &[u8]) -> Option<BTreeMap<String, String>> {
    let v: Value = serde_json::from_slice(body).ok()?;
    serde_json::from_value(v.get("labels")?.clone()).ok()
}

/// Checks that `who` may change `id` under its current labels and, when the request sets
/// labels, under the new ones too (no moving an app out of an environment's policy).
fn check_app(
    ctx: &Ctx,
    who: &Principal,
    id: &PathId,
    new_labels: Option<&BTreeMap<String, String>>,
) -> Result<(), ApiError> {
    let current = ctx.engine.app_labels(id).unwrap_or_default();
    ctx.identity.check_deploy(who, id, &current)?;
    if let Some(labels) = new_labels {
        ctx.identity.check_deploy(who, id, labels)?;
    }
    Ok(())
}

/// Attaches the app to the audit record of a response.
fn noted(mut resp: Response, app: &PathId) -> Response {
    let detail = resp
        .extensions()
        .get::<AuditNote>()
        .and_then(|n| n.detail.clone());
    resp.extensions_mut().insert(AuditNote {
        app: Some(app.to_string()),
        detail,
    });
    resp
}

/// `{"deploymentId","version"}` with the `Marathon-Deployment-Id` header.
fn deployment_response(status: StatusCode, d: &DeploymentResult) -> Response {
    let mut resp = (status, axum::Json(views::deployment_result_json(d))).into_response();
    if let Ok(v) = HeaderValue::from_str(&d.deployment_id) {
        resp.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    resp
}

fn app_query(p: &Params) -> Result<AppsQuery, ApiError> {
    let label = match p.get("label") {
        Some(s) => {
            Some(Selector::parse(s).map_err(|e| ApiError::message(StatusCode::BAD_REQUEST, e))?)
        }
        None => None,
    };
    Ok(AppsQuery {
        cmd: p.get("cmd").map(str::to_string),
        id: p.get("id").map(str::to_string),
        label,
        embed: Embed::parse(p.all("embed")),
    })
}

/// `GET /v2/apps`.
pub(crate) async fn list_apps(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let query = app_query(&p)?;
    Ok(json_bytes(
        StatusCode::OK,
        views::apps_json(&ctx.engine, &query),
    ))
}

/// `POST /v2/apps`.
pub(crate) async fn create_app(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    OriginalUri(uri): OriginalUri,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let claimed = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(PathId::parse));
    if let Some(id) = &claimed {
        let labels = body_labels(&body).unwrap_or_default();
        if let Err(e) = ctx.identity.check_deploy(&who, id, &labels) {
            return Ok(noted(e.into_response(), id));
        }
    }
    let def = model::parse_definition(&body, None, Timestamp(0))?;
    let (app, d) = ctx
        .engine
        .create_app(def, p.flag("force", false), &ctx.gate(&who))?;
    let embed = Embed {
        tasks: true,
        ..Embed::default()
    };
    let info = views::app_info_value(&ctx.engine, &app.id, embed).unwrap_or(Value::Null);
    let id = app.id.to_string();
    post_event(&ctx, peer, &uri, app);
    let mut resp = (StatusCode::CREATED, axum::Json(info)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v2/apps{id}")) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&d.deployment_id) {
        resp.headers_mut().insert("Marathon-Deployment-Id", v);
    }
    Ok(noted(resp, &PathId::parse(&id)))
}

fn post_event(ctx: &Ctx, peer: SocketAddr, uri: &axum::http::Uri, app: AppDefinition) {
    ctx.engine.events().publish(Event::AppSubmitted {
        client_ip: peer.ip().to_string(),
        uri: uri.path().to_string(),
        app: std::sync::Arc::new(app),
    });
}

/// What follows `/v2/apps/`: an app id and an optional sub-resource.
#[derive(Debug, PartialEq)]
enum AppPath {
    App(PathId),
    Group(PathId),
    Restart(PathId),
    Tasks(PathId),
    Task(PathId, String),
    Versions(PathId),
    Version(PathId, String),
}

impl AppPath {
    /// The app the path names.
    fn app(&self) -> Option<&PathId> {
        match self {
            AppPath::App(id)
            | AppPath::Restart(id)
            | AppPath::Tasks(id)
            | AppPath::Task(id, _)
            | AppPath::Versions(id)
            | AppPath::Version(id, _) => Some(id),
            AppPath::Group(_) => None,
        }
    }
}

/// Longest-match routing of the rest of the path, as Marathon does.
fn parse_app_path(rest: &str) -> AppPath {
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let id = |n: usize| PathId::parse(&segs[..n].join("/"));
    let n = segs.len();
    if n >= 1 && segs[n - 1] == "*" {
        return AppPath::Group(id(n - 1));
    }
    if n >= 2 && segs[n - 1] == "restart" {
        return AppPath::Restart(id(n - 1));
    }
    if n >= 2 && segs[n - 1] == "tasks" {
        return AppPath::Tasks(id(n - 1));
    }
    if n >= 3 && segs[n - 2] == "tasks" {
        return AppPath::Task(id(n - 2), segs[n - 1].to_string());
    }
    if n >= 2 && segs[n - 1] == "versions" {
        return AppPath::Versions(id(n - 1));
    }
    if n >= 3 && segs[n - 2] == "versions" {
        return AppPath::Version(id(n - 2), segs[n - 1].to_string());
    }
    AppPath::App(id(n))
}

/// Everything under `/v2/apps/{...}`.
// Axum handlers take one argument per extractor; this one needs them all.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn app_resource(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    method: Method,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    OriginalUri(uri): OriginalUri,
    Path(rest): Path<String>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let engine = &ctx.engine;
    let force = p.flag("force", false);
    let not_found = |id: &PathId| {
        ApiError::message(StatusCode::NOT_FOUND, format!("App '{id}' does not exist"))
    };
    let target = parse_app_path(&rest);
    if method != Method::GET
        && let Some(id) = target.app()
    {
        let new_labels = matches!(method, Method::PUT | Method::PATCH)
            .then(|| body_labels(&body))
            .flatten();
        if let Err(e) = check_app(&ctx, &who, id, new_labels.as_ref()) {
            return Ok(noted(e.into_response(), id));
        }
    }
    match (method, target) {
        (Method::GET, AppPath::App(id)) => {
            let mut embed = Embed::parse(p.all("embed"));
            embed.tasks = true;
            embed.last_task_failure = true;
            views::app_json(engine, &id, embed)
                .map(|b| json_bytes(StatusCode::OK, b))
                .ok_or_else(|| not_found(&id))
        }
        (Method::GET, AppPath::Group(id)) => Ok(json_bytes(
            StatusCode::OK,
            views::app_group_json(engine, &id, Embed::parse(p.all("embed"))),
        )),
        (m @ (Method::PUT | Method::PATCH), AppPath::App(id)) => {
            let patch = m == Method::PATCH;
            let partial = patch || p.flag("partialUpdate", true);
            let value = parse_body(&body)?;
            let rollback_to = value
                .get("version")
                .and_then(Value::as_str)
                .map(str::to_string);
            let update = app_update(&id, value, partial)?;
            let engine::Updated {
                deployment: d,
                created,
                app,
            } = engine.update_app(&id, update, force, patch, &ctx.gate(&who))?;
            let image = app
                .container
                .as_ref()
                .and_then(|c| c.docker.as_ref())
                .map(|d| d.image.clone());
            post_event(&ctx, peer, &uri, app);
            let mut resp = deployment_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &d,
            );
            if created && let Ok(v) = HeaderValue::from_str(&format!("/v2/apps{id}")) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            // The audit log says what a change made: a rollback names the version it
            // restored; any other change the version it created and its image.
            let mut detail = match rollback_to {
                Some(v) => format!("rollback to version {v}"),
                None => format!("version {}", d.version),
            };
            if let Some(image) = image {
                detail.push_str(&format!(", image {image}"));
            }
            resp.extensions_mut().insert(AuditNote {
                app: Some(id.to_string()),
                detail: Some(detail),
            });
            Ok(resp)
        }
        (Method::DELETE, AppPath::App(id)) => {
            let d = engine.delete_app(&id, p.flag("force", true), &ctx.gate(&who))?;
            Ok(deployment_response(StatusCode::OK, &d))
        }
        (Method::POST, AppPath::Restart(id)) => {
            let d = engine.restart_app(&id, force, &ctx.gate(&who))?;
            Ok(deployment_response(StatusCode::OK, &d))
        }
        (Method::GET, AppPath::Tasks(id)) => views::app_tasks_json(engine, &id)
            .map(|v| (StatusCode::OK, axum::Json(v)).into_response())
            .ok_or_else(|| not_found(&id)),
        (Method::DELETE, AppPath::Tasks(id)) => kill_response(
            engine,
            engine.kill_app_tasks(
                &id,
                None,
                p.get("host"),
                p.flag("scale", false),
                p.flag("wipe", false),
                force,
                &ctx.gate(&who),
            )?,
        ),
        (Method::DELETE, AppPath::Task(id, task)) => kill_response(
            engine,
            engine.kill_app_tasks(
                &id,
                Some(&task),
                None,
                p.flag("scale", false),
                p.flag("wipe", false),
                force,
                &ctx.gate(&who),
            )?,
        ),
        (Method::GET, AppPath::Versions(id)) => {
            let versions = engine.versions(&id)?.ok_or_else(|| not_found(&id))?;
            Ok((StatusCode::OK, axum::Json(json!({ "versions": versions }))).into_response())
        }
        (Method::GET, AppPath::Version(id, v)) => {
            let missing = || {
                ApiError::message(
                    StatusCode::NOT_FOUND,
                    format!("App '{id}' does not exist in version {v}"),
                )
            };
            let ts = Timestamp::parse(&v).ok_or_else(missing)?;
            let def = engine.app_version(&id, ts)?.ok_or_else(missing)?;
            Ok((StatusCode::OK, axum::Json(def)).into_response())
        }
        (method, _) => Err(ApiError::message(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not supported on {}", uri.path()),
        )),
    }
}

fn kill_response(engine: &engine::Engine, k: KillResult) -> ApiResult {
    Ok(match k {
        KillResult::Tasks(tasks) => {
            let tasks: Vec<Value> = tasks
                .iter()
                .map(|t| views::killed_json(engine, t))
                .collect();
            (StatusCode::OK, axum::Json(json!({ "tasks": tasks }))).into_response()
        }
        KillResult::Task(t) => {
            let t = t.map_or(Value::Null, |t| views::killed_json(engine, &t));
            (StatusCode::OK, axum::Json(json!({ "task": t }))).into_response()
        }
        KillResult::Deployment(d) => deployment_response(StatusCode::OK, &d),
    })
}

/// `GET /v2/tasks`.
pub(crate) async fn list_tasks(State(ctx): State<Ctx>, RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.as_deref());
    let status: Vec<String> = p.all("status").into_iter().map(str::to_string).collect();
    (
        StatusCode::OK,
        axum::Json(views::tasks_json(&ctx.engine, &status)),
    )
        .into_response()
}

/// `POST /v2/tasks/delete`.
pub(crate) async fn delete_tasks(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let v: Value = serde_json::from_slice(&body).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        body: json!({"message": "Invalid JSON", "details": e.to_string()}),
    })?;
    let ids: Vec<String> = v
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError {
            status: StatusCode::BAD_REQUEST,
            body: json!({"message": "Invalid JSON", "details": [{"path": "/ids", "errors": ["error.path.missing"]}]}),
        })?
        .iter()
        .filter_map(|x| x.as_str().map(str::to_string))
        .collect();
    for id in &ids {
        if let Some(app) = ctx.engine.task_app(id) {
            check_app(&ctx, &who, &app, None)?;
        }
    }
    kill_response(
        &ctx.engine,
        ctx.engine.kill_tasks(
            &ids,
            p.flag("scale", false),
            p.flag("wipe", false),
            p.flag("force", false),
            &ctx.gate(&who),
        )?,
    )
}

/// `GET /v2/deployments`.
pub(crate) async fn list_deployments(State(ctx): State<Ctx>) -> Response {
    (
        StatusCode::OK,
        axum::Json(views::deployments_json(&ctx.engine)),
    )
        .into_response()
}

/// `DELETE /v2/deployments/{id}`.
pub(crate) async fn cancel_deployment(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    for app in ctx.engine.deployment_apps(&id).unwrap_or_default() {
        check_app(&ctx, &who, &app, None)?;
    }
    match ctx
        .engine
        .cancel_deployment(&id, p.flag("force", false), &ctx.gate(&who))?
    {
        Some(d) => Ok(deployment_response(StatusCode::OK, &d)),
        None => Ok(StatusCode::ACCEPTED.into_response()),
    }
}

/// `GET /v2/groups` and `GET /v2/groups/{id}`.
pub(crate) async fn get_group(
    State(ctx): State<Ctx>,
    path: Option<Path<String>>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q.as_deref());
    let id = PathId::parse(path.as_ref().map_or("", |Path(s)| s.as_str()));
    let mut embed = Embed::parse(p.all("embed"));
    embed.tasks |= p.all("embed").iter().any(|e| e.ends_with("apps.tasks"));
    views::group_json(&ctx.engine, &id, embed)
        .map(|v| (StatusCode::OK, axum::Json(v)).into_response())
        .ok_or_else(|| {
            ApiError::message(
                StatusCode::NOT_FOUND,
                format!("Group '{id}' does not exist"),
            )
        })
}

/// `GET /v2/queue`.
pub(crate) async fn queue(State(ctx): State<Ctx>) -> Response {
    (StatusCode::OK, axum::Json(views::queue_json(&ctx.engine))).into_response()
}

/// `DELETE /v2/queue/{appId}/delay`.
pub(crate) async fn reset_delay(
    State(ctx): State<Ctx>,
    Extension(who): Extension<Principal>,
    Path(rest): Path<String>,
) -> ApiResult {
    let Some(app) = rest.trim_end_matches('/').strip_suffix("/delay") else {
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            "use DELETE /v2/queue/{appId}/delay",
        ));
    };
    let app = PathId::parse(app);
    check_app(&ctx, &who, &app, None)?;
    ctx.engine.reset_delay(&app)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v2/info`.
pub(crate) async fn info(State(ctx): State<Ctx>) -> Response {
    let port = ctx.listen.port();
    let leader = format!("{}:{port}", ctx.engine.config().host);
    let range = &ctx.engine.config().host_ports;
    let body = json!({
        "name": "marathon",
        "version": crate::MARATHON_VERSION,
        "buildref": format!("slipway-{}", env!("CARGO_PKG_VERSION")),
        "elected": true,
        "leader": leader,
        "frameworkId": ctx.engine.agent_id(),
        "marathon_config": {
            "checkpoint": true,
            "executor": "//cmd",
            "failover_timeout": 604800,
            "features": [],
            "framework_name": "slipway",
            "ha": false,
            "hostname": ctx.engine.config().host,
            "leader_proxy_connection_timeout_ms": 5000,
            "leader_proxy_read_timeout_ms": 10000,
            "local_port_min": range.start(),
            "local_port_max": range.end(),
            "master": "local",
            "mesos_role": null,
            "mesos_user": "root",
            "reconciliation_initial_delay": 15000,
            "reconciliation_interval": 600000,
            "task_launch_timeout": 300000,
            "task_reservation_timeout": 20000,
            "webui_url": null
        },
        "zookeeper_config": {
            "zk": null,
            "zk_timeout": 10000,
            "zk_session_timeout": 10000,
            "zk_max_versions": store::MAX_VERSIONS
        },
        "http_config": {"http_port": port, "https_port": 8443}
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `GET /v2/leader`.
pub(crate) async fn leader(State(ctx): State<Ctx>) -> Response {
    let leader = format!("{}:{}", ctx.engine.config().host, ctx.listen.port());
    (StatusCode::OK, axum::Json(json!({ "leader": leader }))).into_response()
}

/// `DELETE /v2/leader`: a single binary is always the leader; nothing to abdicate.
pub(crate) async fn abdicate() -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"message": "Leadership abdicated"})),
    )
        .into_response()
}

/// `GET /ping`.
pub(crate) async fn ping(headers: HeaderMap) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("application/json"));
    if wants_json {
        (StatusCode::OK, axum::Json(json!("pong"))).into_response()
    } else {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "pong",
        )
            .into_response()
    }
}

/// `GET /metrics`: Marathon's Dropwizard-style JSON (what marathon-python and curl get),
/// or Prometheus text for a client that asks for it the way Prometheus scrapers do
/// (`Accept: text/plain` or `application/openmetrics-text`).
pub(crate) async fn metrics(State(ctx): State<Ctx>, headers: HeaderMap) -> Response {
    let wants_text = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/plain") || a.contains("application/openmetrics-text"));
    if wants_text {
        if let Some(w) = &ctx.watch {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let (content_type, body) = w.exposition(accept);
            return (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response();
        }
        return prometheus_text(&ctx);
    }
    let (apps, tasks, deployments) = ctx
        .engine
        .read(|st| (st.apps.len(), st.tasks.len(), st.deployments.len()));
    let body = json!({
        "version": "4.0.0",
        "counters": {},
        "gauges": {
            "marathon.apps.active.gauge": {"value": apps},
            "marathon.tasks.running.gauge": {"value": tasks},
            "marathon.deployments.active.gauge": {"value": deployments},
            "marathon.uptime.gauge": {"value": ctx.started.elapsed().as_millis() as u64},
        },
        "histograms": {},
        "meters": {},
        "timers": {}
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `GET /metrics/prometheus` (Marathon 1.7+'s path): Prometheus text format 0.0.4.
pub(crate) async fn metrics_prometheus(State(ctx): State<Ctx>) -> Response {
    prometheus_text(&ctx)
}

/// Engine gauges and the edge proxy's per-app and per-backend metrics as Prometheus text.
fn prometheus_text(ctx: &Ctx) -> Response {
    let (apps, tasks, deployments) = ctx
        .engine
        .read(|st| (st.apps.len(), st.tasks.len(), st.deployments.len()));
    let mut text = format!(
        "# HELP slipway_apps Apps defined.\n# TYPE slipway_apps gauge\nslipway_apps {apps}\n\
         # HELP slipway_tasks Tasks known to the engine.\n# TYPE slipway_tasks gauge\nslipway_tasks {tasks}\n\
         # HELP slipway_deployments Deployments in progress.\n# TYPE slipway_deployments gauge\nslipway_deployments {deployments}\n\
         # HELP slipway_uptime_seconds Seconds since the server started.\n# TYPE slipway_uptime_seconds gauge\nslipway_uptime_seconds {}\n",
        ctx.started.elapsed().as_secs()
    );
    if let Some(p) = &ctx.proxy {
        text.push_str(&p.metrics_text());
    }
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /api/v1/lb/haproxy.cfg`: an HAProxy configuration equivalent to the proxy's routes.
pub(crate) async fn haproxy_config(State(ctx): State<Ctx>) -> ApiResult {
    let p = ctx.proxy.as_ref().ok_or_else(|| {
        ApiError::message(
            StatusCode::NOT_FOUND,
            "the edge proxy is off (slipway up --proxy off)",
        )
    })?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        p.haproxy_config(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_paths_route_by_longest_match() {
        let id = |s: &str| PathId::parse(s);
        assert_eq!(parse_app_path("a"), AppPath::App(id("/a")));
        assert_eq!(parse_app_path("/a/b"), AppPath::App(id("/a/b")));
        assert_eq!(parse_app_path("a/b/restart"), AppPath::Restart(id("/a/b")));
        assert_eq!(parse_app_path("a/tasks"), AppPath::Tasks(id("/a")));
        assert_eq!(
            parse_app_path("a/tasks/a.123"),
            AppPath::Task(id("/a"), "a.123".into())
        );
        assert_eq!(parse_app_path("a/versions"), AppPath::Versions(id("/a")));
        assert_eq!(
            parse_app_path("a/versions/2017-07-19T17:34:41.967Z"),
            AppPath::Version(id("/a"), "2017-07-19T17:34:41.967Z".into())
        );
        assert_eq!(parse_app_path("grp/*"), AppPath::Group(id("/grp")));
        assert_eq!(parse_app_path("restart"), AppPath::App(id("/restart")));
    }
}
