//! Slipway's HTTP surface: the Marathon v2 API (`/v2`, `/ping`, `/metrics`), the native
//! API (`/api/v1`) and, later, the web UI. The only crate that knows routes and status codes.

mod admin;
pub mod admission;
pub mod autoscale;
mod error;
mod events;
pub mod identity;
mod influx;
mod marathon;
mod native;
mod params;
mod pipelines;
mod prom;
mod sse;
mod throttle;
mod views;

pub use error::ApiError;
pub use identity::{AuthMode, Identity};
pub use pipelines::EngineDeployer;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, post};
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
    /// Users, tokens, policies and the audit log.
    pub identity: std::sync::Arc<Identity>,
    /// The store (identity endpoints read and write it directly).
    pub store: std::sync::Arc<store::Store>,
    /// Key sealing secrets at rest.
    pub secret_key: std::sync::Arc<auth::SecretKey>,
    /// The edge proxy, when it runs.
    pub proxy: Option<proxy::Proxy>,
    /// Pipeline runs, when enabled.
    pub pipelines: Option<pipeline::service::Service>,
    /// Settings of the checks every app change passes (privileges, ownership, limits).
    pub admission: std::sync::Arc<admission::AdmissionConfig>,
    /// Metrics: collector, store, PromQL (`None` with `--metrics off`).
    pub watch: Option<std::sync::Arc<watch::Watch>>,
}

impl Ctx {
    /// The admission checks for changes `who` asks for.
    pub(crate) fn gate<'a>(&'a self, who: &'a auth::Principal) -> admission::Gate<'a> {
        admission::Gate {
            policies: self.identity.policies(),
            who,
            config: &self.admission,
            store: &self.store,
        }
    }
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

/// Every route the server has: path pattern and methods. The router is built from this
/// table, so the route scan in the tests sees every route there is.
pub const ROUTES: &[(&str, &[Method])] = &[
    ("/ping", &[Method::GET]),
    ("/metrics", &[Method::GET]),
    ("/metrics/prometheus", &[Method::GET]),
    ("/v2/info", &[Method::GET]),
    ("/v2/leader", &[Method::GET, Method::DELETE]),
    ("/v2/apps", &[Method::GET, Method::POST]),
    (
        "/v2/apps/{*rest}",
        &[
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ],
    ),
    ("/v2/tasks", &[Method::GET]),
    ("/v2/tasks/delete", &[Method::POST]),
    ("/v2/deployments", &[Method::GET]),
    ("/v2/deployments/{id}", &[Method::DELETE]),
    ("/v2/groups", &[Method::GET]),
    ("/v2/groups/{*id}", &[Method::GET]),
    ("/v2/queue", &[Method::GET]),
    ("/v2/queue/{*rest}", &[Method::DELETE]),
    ("/v2/events", &[Method::GET]),
    ("/api/v1/tasks/{id}/logs", &[Method::GET]),
    ("/api/v1/deployments", &[Method::GET]),
    ("/api/v1/deployments/{id}", &[Method::GET]),
    ("/api/v1/apps/{*rest}", &[Method::GET]),
    ("/api/v1/targets", &[Method::GET]),
    ("/api/v1/whoami", &[Method::GET]),
    ("/api/v1/users", &[Method::GET, Method::POST]),
    ("/api/v1/users/{name}", &[Method::PUT, Method::DELETE]),
    ("/api/v1/tokens", &[Method::GET, Method::POST]),
    ("/api/v1/tokens/{id}", &[Method::DELETE]),
    ("/api/v1/policies", &[Method::GET, Method::PUT]),
    ("/api/v1/audit", &[Method::GET]),
    ("/api/v1/secrets", &[Method::GET]),
    ("/api/v1/secrets/{name}", &[Method::PUT, Method::DELETE]),
    ("/api/v1/lb/haproxy.cfg", &[Method::GET]),
    ("/api/v1/query", &[Method::GET, Method::POST]),
    ("/api/v1/query_range", &[Method::GET, Method::POST]),
    ("/api/v1/series", &[Method::GET, Method::POST]),
    ("/api/v1/labels", &[Method::GET, Method::POST]),
    ("/api/v1/label/{name}/values", &[Method::GET]),
    ("/api/v1/metadata", &[Method::GET]),
    ("/api/v1/status/buildinfo", &[Method::GET]),
    ("/api/v1/query_exemplars", &[Method::GET, Method::POST]),
    ("/api/v1/format_query", &[Method::GET, Method::POST]),
    ("/api/v1/rules", &[Method::GET]),
    ("/api/v1/alerts", &[Method::GET]),
    ("/write", &[Method::POST]),
    ("/api/v2/write", &[Method::POST]),
    ("/query", &[Method::GET, Method::POST]),
    ("/api/v1/pipelines", &[Method::GET]),
    ("/api/v1/pipelines/{name}", &[Method::PUT]),
    ("/api/v1/pipelines/{name}/runs", &[Method::POST]),
    ("/api/v1/pipelines/{name}/hooks/push", &[Method::POST]),
    ("/api/v1/pipelines/{name}/webhook-secret", &[Method::PUT]),
    ("/api/v1/runs", &[Method::GET]),
    ("/api/v1/runs/{id}", &[Method::GET]),
    ("/api/v1/runs/{id}/retry", &[Method::POST]),
    ("/api/v1/runs/{id}/cancel", &[Method::POST]),
    ("/api/v1/runs/{id}/steps/{step}/logs", &[Method::GET]),
    ("/api/v1/runs/{id}/steps/{step}/approve", &[Method::POST]),
    ("/api/v1/runs/{id}/steps/{step}/reject", &[Method::POST]),
    ("/api/v1/autoscalers", &[Method::GET]),
    (
        "/api/v1/autoscalers/{*rest}",
        &[Method::GET, Method::PUT, Method::DELETE],
    ),
];

/// The handlers of one route of [`ROUTES`].
fn handlers(path: &str) -> MethodRouter<Ctx> {
    use axum::routing::{any, put};
    match path {
        "/ping" => get(marathon::ping),
        "/metrics" => get(marathon::metrics),
        "/metrics/prometheus" => get(marathon::metrics_prometheus),
        "/v2/info" => get(marathon::info),
        "/v2/leader" => get(marathon::leader).delete(marathon::abdicate),
        "/v2/apps" => get(marathon::list_apps).post(marathon::create_app),
        "/v2/apps/{*rest}" => any(marathon::app_resource),
        "/v2/tasks" => get(marathon::list_tasks),
        "/v2/tasks/delete" => post(marathon::delete_tasks),
        "/v2/deployments" => get(marathon::list_deployments),
        "/v2/deployments/{id}" => delete(marathon::cancel_deployment),
        "/v2/groups" | "/v2/groups/{*id}" => get(marathon::get_group),
        "/v2/queue" => get(marathon::queue),
        "/v2/queue/{*rest}" => delete(marathon::reset_delay),
        "/v2/events" => get(sse::events),
        "/api/v1/tasks/{id}/logs" => get(native::task_logs),
        "/api/v1/deployments" => get(native::deployment_history),
        "/api/v1/deployments/{id}" => get(native::deployment),
        "/api/v1/apps/{*rest}" => get(native::app_status),
        "/api/v1/targets" => get(native::targets),
        "/api/v1/whoami" => get(admin::whoami),
        "/api/v1/users" => get(admin::list_users).post(admin::create_user),
        "/api/v1/users/{name}" => put(admin::update_user).delete(admin::delete_user),
        "/api/v1/tokens" => get(admin::list_tokens).post(admin::create_token),
        "/api/v1/tokens/{id}" => delete(admin::revoke_token),
        "/api/v1/policies" => get(admin::get_policies).put(admin::put_policies),
        "/api/v1/audit" => get(admin::audit),
        "/api/v1/secrets" => get(admin::list_secrets),
        "/api/v1/secrets/{name}" => put(admin::put_secret).delete(admin::delete_secret),
        "/api/v1/lb/haproxy.cfg" => get(marathon::haproxy_config),
        "/api/v1/query" => get(prom::query).post(prom::query),
        "/api/v1/query_range" => get(prom::query_range).post(prom::query_range),
        "/api/v1/series" => get(prom::series).post(prom::series),
        "/api/v1/labels" => get(prom::labels).post(prom::labels),
        "/api/v1/label/{name}/values" => get(prom::label_values),
        "/api/v1/metadata" => get(prom::metadata),
        "/api/v1/status/buildinfo" => get(prom::buildinfo),
        "/api/v1/query_exemplars" => get(prom::query_exemplars).post(prom::query_exemplars),
        "/api/v1/format_query" => get(prom::format_query).post(prom::format_query),
        "/api/v1/rules" => get(prom::rules),
        "/api/v1/alerts" => get(prom::alerts),
        // Above axum's default 2 MiB, so InfluxDB's 25 MiB batches get through.
        "/write" => post(influx::write_v1).layer(influx::body_limit()),
        "/api/v2/write" => post(influx::write_v2).layer(influx::body_limit()),
        "/query" => get(influx::influxql).post(influx::influxql),
        "/api/v1/pipelines" => get(pipelines::list),
        "/api/v1/pipelines/{name}" => put(pipelines::put),
        "/api/v1/pipelines/{name}/runs" => post(pipelines::start),
        "/api/v1/pipelines/{name}/hooks/push" => post(pipelines::push_hook),
        "/api/v1/pipelines/{name}/webhook-secret" => put(pipelines::webhook_secret),
        "/api/v1/runs" => get(pipelines::list_runs),
        "/api/v1/runs/{id}" => get(pipelines::get_run),
        "/api/v1/runs/{id}/retry" => post(pipelines::retry),
        "/api/v1/runs/{id}/cancel" => post(pipelines::cancel),
        "/api/v1/runs/{id}/steps/{step}/logs" => get(pipelines::logs),
        "/api/v1/runs/{id}/steps/{step}/approve" => post(pipelines::approve),
        "/api/v1/runs/{id}/steps/{step}/reject" => post(pipelines::reject),
        "/api/v1/autoscalers" => get(autoscale::list),
        "/api/v1/autoscalers/{*rest}" => any(autoscale::resource),
        // Every entry of ROUTES has an arm above (the route table test checks it).
        _ => any(not_found),
    }
}

/// All routes, authenticated and audited.
pub fn router(ctx: Ctx) -> Router {
    let mut r = Router::new();
    for (path, _) in ROUTES {
        r = r.route(path, handlers(path));
    }
    r.fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            identity::guard,
        ))
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
    serve_with(listener, ctx, shutdown, ServeLimits::default(), None).await
}

/// Whether a path belongs to the web console (served by the `console` router handed to
/// [`serve_with`], with its own sessions) rather than to the API.
pub fn is_console_path(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// How much one listener of the API takes from its clients.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// Connections open at once; beyond it a new connection gets 503 and is closed.
    pub max_connections: usize,
    /// Time a client has to send a request's header, also while a kept-alive
    /// connection waits for its next request (silent connections are closed after it).
    pub header_timeout: std::time::Duration,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 2048,
            header_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// [`serve`] with explicit limits: a connection cap, a header (and idle keep-alive)
/// timeout, and an accept loop that backs off instead of spinning when the process runs
/// out of descriptors.
/// `console`, when given, serves the paths [`is_console_path`] names; everything else is
/// the API behind its authentication guard.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    ctx: Ctx,
    shutdown: CancellationToken,
    limits: ServeLimits,
    console: Option<Router>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tokio::io::AsyncWriteExt;
    let app = tower::util::MapRequestLayer::new(normalise_path).layer(router(ctx));
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let (mut stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE/ENFILE/ENOBUFS: wait for descriptors to come back.
                    tracing::warn!(error = %e, "cannot accept an API connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            connections.spawn(async move {
                let _ = stream
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n{\"message\":\"too many connections, try later\"}")
                    .await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let console = console.clone();
        let svc = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let mut app = app.clone();
            let console = console
                .clone()
                .filter(|_| is_console_path(req.uri().path()));
            async move {
                let req = req.map(Body::new);
                match console {
                    Some(mut c) => tower::Service::call(&mut c, req).await,
                    None => tower::Service::call(&mut app, req).await,
                }
            }
        });
        let svc = hyper_util::service::TowerToHyperService::new(svc);
        let stop = shutdown.clone();
        connections.spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = builder
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    // Event streams never end on their own.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), conn).await;
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_auth;
#[cfg(test)]
mod tests_pipelines;
