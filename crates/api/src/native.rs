//! Slipway's native API (`/api/v1`): what Marathon's shapes have no room for — task logs,
//! deployment outcomes and history, and why an app is waiting.

use crate::params::Params;
use crate::{Ctx, error::ApiError};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use engine::LogStream;
use model::PathId;
use serde_json::json;

/// Default and maximum bytes per log read.
const DEFAULT_LOG_LIMIT: u64 = 64 * 1024;

/// `GET /api/v1/tasks/{id}/logs?stream=stdout|stderr&offset=N&limit=N`.
///
/// A task's output can carry what its environment holds: reading it needs the right to
/// deploy the task's app (a developer reads QA's logs, not prod's; viewers read none).
pub(crate) async fn task_logs(
    State(ctx): State<Ctx>,
    axum::Extension(who): axum::Extension<auth::Principal>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref());
    if let Some(app) = ctx.engine.task_owner(&id) {
        let labels = ctx.engine.app_labels(&app).unwrap_or_default();
        ctx.identity
            .check_deploy(&who, &app, &labels)
            .map_err(|e| {
                let reason = e.body["message"].as_str().unwrap_or_default().to_string();
                ApiError::message(
                    StatusCode::FORBIDDEN,
                    format!("{reason}; a task's log is for those who may deploy its app"),
                )
            })?;
    }
    let stream = match p.get("stream").unwrap_or("stdout") {
        "stdout" => LogStream::Stdout,
        "stderr" => LogStream::Stderr,
        other => {
            return Err(ApiError::message(
                StatusCode::BAD_REQUEST,
                format!("stream must be stdout or stderr, not '{other}'"),
            ));
        }
    };
    let number = |k: &str| -> Result<Option<u64>, ApiError> {
        p.get(k)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::message(StatusCode::BAD_REQUEST, format!("{k} must be a number"))
                })
            })
            .transpose()
    };
    let offset = number("offset")?;
    let limit = number("limit")?.unwrap_or(DEFAULT_LOG_LIMIT);
    let chunk = ctx
        .engine
        .task_log(&id, stream, offset, limit)
        .ok_or_else(|| {
            ApiError::message(StatusCode::NOT_FOUND, format!("Task '{id}' does not exist"))
        })?
        .map_err(|e| {
            ApiError::message(
                StatusCode::NOT_FOUND,
                format!("no log for task '{id}': {e}"),
            )
        })?;
    Ok(axum::Json(json!({
        "data": String::from_utf8_lossy(&chunk.data),
        "offset": chunk.offset,
        "nextOffset": chunk.next_offset,
        "size": chunk.size,
    }))
    .into_response())
}

/// `GET /api/v1/deployments`: finished deployments, newest first.
pub(crate) async fn deployment_history(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref());
    let limit = p
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(100usize);
    let history = ctx.engine.deployment_history(limit)?;
    Ok(axum::Json(json!({ "deployments": history })).into_response())
}

/// `GET /api/v1/deployments/{id}`: running or finished, with `status` and `reason`.
pub(crate) async fn deployment(
    State(ctx): State<Ctx>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    ctx.engine
        .deployment(&id)?
        .map(|d| axum::Json(crate::views::deployment_status_json(&d)).into_response())
        .ok_or_else(|| {
            ApiError::message(
                StatusCode::NOT_FOUND,
                format!("DeploymentPlan {id} does not exist"),
            )
        })
}

/// `GET /api/v1/apps/{id}/status`.
pub(crate) async fn app_status(
    State(ctx): State<Ctx>,
    Path(rest): Path<String>,
) -> Result<Response, ApiError> {
    let Some(id) = rest.trim_end_matches('/').strip_suffix("/status") else {
        return Err(ApiError::message(
            StatusCode::NOT_FOUND,
            "use GET /api/v1/apps/{id}/status",
        ));
    };
    let id = PathId::parse(id);
    ctx.engine
        .app_status(&id)
        .map(|s| {
            axum::Json(crate::views::app_status_json(
                &s,
                ctx.engine.cgroup_support(),
            ))
            .into_response()
        })
        .ok_or_else(|| {
            ApiError::message(StatusCode::NOT_FOUND, format!("App '{id}' does not exist"))
        })
}

/// `GET /api/v1/targets`: the named targets (datacenters) apps are placed on by the first
/// segment of their ids.
pub(crate) async fn targets(State(ctx): State<Ctx>) -> Response {
    axum::Json(json!({ "targets": ctx.engine.targets() })).into_response()
}
