//! Slipway's HTTP surface: the Marathon v2 API (`/v2`, `/ping`, `/metrics`), the native
//! API (`/api/v1`) and, later, the web UI. The only crate that knows routes and status codes.

mod error;
mod marathon;
mod native;
mod params;
mod sse;

pub use error::ApiError;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Router, ServiceExt};
use engine::Engine;
use std::net::SocketAddr;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Layer;

/// The Marathon version Slipway reports (the 1.6 line its JSON shapes follow).
pub const MARATHON_VERSION: &str = "1.6.322";

/// Shared handler state.
#[derive(Clone)]
pub struct Ctx {
    /// The engine.
    pub engine: Engine,
    /// Address the server listens on.
    pub listen: SocketAddr,
    /// Server start time.
    pub started: Instant,
}

/// JSON bytes as a response.
pub(crate) fn json_bytes(status: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// All routes.
pub fn router(ctx: Ctx) -> Router {
    Router::new()
        .route("/ping", get(marathon::ping))
        .route("/metrics", get(marathon::metrics))
        .route("/v2/info", get(marathon::info))
        .route(
            "/v2/leader",
            get(marathon::leader).delete(marathon::abdicate),
        )
        .route(
            "/v2/apps",
            get(marathon::list_apps).post(marathon::create_app),
        )
        .route(
            "/v2/apps/{*rest}",
            axum::routing::any(marathon::app_resource),
        )
        .route("/v2/tasks", get(marathon::list_tasks))
        .route("/v2/tasks/delete", post(marathon::delete_tasks))
        .route("/v2/deployments", get(marathon::list_deployments))
        .route("/v2/deployments/{id}", delete(marathon::cancel_deployment))
        .route("/v2/groups", get(marathon::get_group))
        .route("/v2/groups/{*id}", get(marathon::get_group))
        .route("/v2/queue", get(marathon::queue))
        .route("/v2/queue/{*rest}", delete(marathon::reset_delay))
        .route("/v2/events", get(sse::events))
        .route("/api/v1/tasks/{id}/logs", get(native::task_logs))
        .route("/api/v1/deployments", get(native::deployment_history))
        .route("/api/v1/deployments/{id}", get(native::deployment))
        .route("/api/v1/apps/{*rest}", get(native::app_status))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(ctx)
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::message(
        StatusCode::NOT_FOUND,
        format!("no route for {}", uri.path()),
    )
}

/// One structured log line per request; mutations at info, reads at debug.
async fn log_request(req: Request, next: axum::middleware::Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let ms = (start.elapsed().as_secs_f64() * 1e6).round() / 1000.0;
    if method == Method::GET || method == Method::HEAD {
        tracing::debug!(%method, %path, status, ms, "request");
    } else {
        tracing::info!(%method, %path, status, ms, "request");
    }
    resp
}

/// Rewrites the path before routing: collapses `//` (clients put absolute ids after
/// `/v2/apps/`) and strips DC/OS's `/service/marathon` prefix (marathon-autoscale).
fn normalise_path(mut req: Request<Body>) -> Request<Body> {
    let uri = req.uri();
    let path = uri.path();
    let stripped = path
        .strip_prefix("/service/marathon")
        .filter(|p| p.starts_with('/'))
        .unwrap_or(path);
    if stripped.len() == path.len() && !path.contains("//") {
        return req;
    }
    let mut clean = String::with_capacity(stripped.len());
    for c in stripped.chars() {
        if c == '/' && clean.ends_with('/') {
            continue;
        }
        clean.push(c);
    }
    let pq = match uri.query() {
        Some(q) => format!("{clean}?{q}"),
        None => clean,
    };
    if let Ok(new) = pq.parse::<Uri>() {
        *req.uri_mut() = new;
    }
    req
}

/// Serves the API on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Ctx,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let svc = tower::util::MapRequestLayer::new(normalise_path).layer(router(ctx));
    axum::serve(
        listener,
        svc.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await
}

#[cfg(test)]
mod tests;
