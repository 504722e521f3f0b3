//! HTTP mode's hyper path: a keep-alive HTTP/1.1 server per client connection that
//! forwards each request to a backend over a pooled keep-alive connection, streaming
//! bodies both ways, retrying on another backend when that is safe. It serves what the
//! fast path (`fast`) leaves to it: upgrades, `Expect`, HTTP/1.0 and anything unusual.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body as _, Incoming};
use hyper::header::CONTENT_TYPE;
use hyper::http::request::Parts;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backend::{Endpoint, Flight};
use crate::body::{Done, ProxyBody};
use crate::drive::{Outcome, Turns};
use crate::fast::Rewind;
use crate::headers;
use crate::listener::Target;
use crate::metrics::{AppStats, ErrorKind};
use crate::pool::{Driver, Event, Lease, LocalPool};
use crate::proxy::Shared;
use crate::table::{Route, Table};

/// Serves one client connection until it closes, its listener closes (then the request
/// in progress finishes first) or the proxy's grace period ends.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: Rewind,
    peer: SocketAddr,
    target: Target,
    token: CancellationToken,
) {
    let local = Arc::new(LocalPool::default());
    let idle = shared.cfg.idle_timeout;
    let mut driver = Driver::new(Arc::clone(&local), token, shared.abort.clone(), idle);
    let conn = Arc::new(Conn {
        view: Mutex::new(View::new(shared.subscribe())),
        xff: headers::forwarded_for(peer),
        shared: Arc::clone(&shared),
        target,
        local,
    });
    let service = service_fn(move |req| {
        let conn = Arc::clone(&conn);
        async move {
            let busy = conn.local.begin();
            let mut resp = conn.handle(req).await;
            resp.body_mut().set_busy(busy);
            Ok::<_, Infallible>(resp)
        }
    });
    // Response bodies (and their leases) end with the server connection, in this block.
    {
        let served = shared
            .http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(served);
        let turns = Turns::new();
        loop {
            match turns.next(served.as_mut(), &mut driver).await {
                Outcome::Served(res) => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "client connection ended");
                    }
                    break;
                }
                Outcome::Event(Event::Close) => {
                    served.as_mut().graceful_shutdown();
                    turns.poke();
                }
                Outcome::Event(Event::Idle) => {
                    // Closes at once unless a request head is half read; then give it
                    // one more idle period.
                    served.as_mut().graceful_shutdown();
                    turns.poke();
                    driver.deadline(idle);
                }
                Outcome::Event(Event::Abort) => break,
            }
        }
    }
    driver.release();
}

/// This connection's snapshot of the route table, refreshed when a new one is published.
struct View {
    rx: watch::Receiver<Arc<Table>>,
    table: Arc<Table>,
}

impl View {
    fn new(mut rx: watch::Receiver<Arc<Table>>) -> View {
        let table = Arc::clone(&rx.borrow_and_update());
        View { rx, table }
    }
}

/// One client connection; its requests come one at a time, so `view` is uncontended.
struct Conn {
    shared: Arc<Shared>,
    target: Target,
    xff: hyper::header::HeaderValue,
    view: Mutex<View>,
    local: Arc<LocalPool>,
}

enum Pick {
    Found(Arc<Endpoint>),
    NoRoute,
    NoBackend(Arc<AppStats>),
}

impl Conn {
    /// Chooses a backend from the current table (one atomic version check, unless
    /// `refresh` asks to look again after a backend was found to have left it).
    fn pick(&self, head: &Parts, tried: &[usize], refresh: bool) -> Pick {
        let mut guard = self.view.lock().unwrap_or_else(PoisonError::into_inner);
        let view = &mut *guard;
        if refresh || view.rx.has_changed().unwrap_or(false) {
            view.table = Arc::clone(&view.rx.borrow_and_update());
        }
        let route: Option<&Arc<Route>> = match self.target {
            Target::Port(port) => view.table.ports.get(&port),
            Target::Vhost => headers::vhost_route(&view.table, head),
        };
        let Some(route) = route else {
            return Pick::NoRoute;
        };
        match route.pick(tried) {
            Some(ep) => Pick::Found(Arc::clone(ep)),
            None => Pick::NoBackend(Arc::clone(&route.app)),
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<ProxyBody> {
        let start = Instant::now();
        // Two Host headers make the route ambiguous (one backend may read the other host):
        // refused as nginx does.
        if req.headers().get_all(hyper::header::HOST).iter().count() > 1 {
            return text(StatusCode::BAD_REQUEST, "duplicate Host header\n");
        }
        let (mut head, body) = req.into_parts();
        let upgrade = headers::prepare_request(&mut head, &self.xff);
        let bodiless = body.is_end_stream();
        // Only a request we can send again as it was may be retried once it was sent.
        let resend = bodiless && upgrade.is_none() && idempotent(&head.method);
        let mut body = (!bodiless).then(|| ProxyBody::stream(body));
        let mut head = Some(head);
        let mut tried: Vec<usize> = Vec::new();
        let (mut refresh, mut rounds) = (false, 0usize);
        let mut last_app = None;
        while let Some(h) = head.as_ref() {
            rounds += 1;
            let ep = match self.pick(h, &tried, refresh) {
                Pick::Found(ep) => ep,
                Pick::NoRoute => {
                    self.shared.unrouted.fetch_add(1, Relaxed);
                    return match self.target {
                        Target::Vhost => text(StatusCode::NOT_FOUND, "no route for this host\n"),
                        Target::Port(_) => text(StatusCode::SERVICE_UNAVAILABLE, "no route\n"),
                    };
                }
                Pick::NoBackend(app) => {
                    let failed = !tried.is_empty();
                    return give_up(&app, start, failed);
                }
            };
            refresh = false;
            let Some(flight) = ep.acquire() else {
                // It left the table after this connection's snapshot: look again.
                refresh = true;
                if rounds > 64 {
                    break;
                }
                continue;
            };
            let mut lease = match self.local.checkout(&ep).await {
                Ok(lease) => lease,
                Err(kind) => {
                    // Nothing was sent: always safe to try the next backend.
                    last_app = Some(Arc::clone(&ep.task.app));
                    ep.mark_down(kind);
                    tried.push(Arc::as_ptr(&ep) as usize);
                    continue;
                }
            };
            let h = if resend { head.clone() } else { head.take() };
            let Some(h) = h else { break };
            let req = Request::from_parts(h, body.take().unwrap_or_else(ProxyBody::empty));
            match lease.sender.try_send_request(req).await {
                Ok(resp) => return self.respond(resp, flight, lease, start, upgrade),
                Err(mut e) => {
                    if let Some(req) = e.take_message() {
                        // Never written: the connection had closed. When a parked one
                        // did, the others parked with it (older) most likely did too.
                        if lease.parked {
                            ep.clear_pool();
                        }
                        let (h, b) = req.into_parts();
                        (head, body) = (Some(h), Some(b));
                        if rounds > 64 {
                            break;
                        }
                        continue;
                    }
                    tracing::debug!(error = %e.error(), backend = %ep.addr, "request failed");
                    ep.task.errors.record(ErrorKind::Reset);
                    last_app = Some(Arc::clone(&ep.task.app));
                    tried.push(Arc::as_ptr(&ep) as usize);
                }
            }
        }
        match last_app {
            Some(app) => give_up(&app, start, true),
            None => text(StatusCode::BAD_GATEWAY, "bad gateway\n"),
        }
    }

    /// Forwards the backend's response; its body carries the in-flight guard.
    fn respond(
        &self,
        mut resp: Response<Incoming>,
        flight: Flight,
        lease: Lease,
        start: Instant,
        upgrade: Option<OnUpgrade>,
    ) -> Response<ProxyBody> {
        let task = &flight.endpoint().task;
        let status = resp.status();
        task.codes.record(status.as_u16());
        task.app.codes.record(status.as_u16());
        if status == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client) = upgrade
        {
            let backend = hyper::upgrade::on(&mut resp);
            let abort = self.shared.abort.clone();
            self.shared
                .tracker
                .spawn(tunnel(client, backend, flight, abort));
            let (head, _) = resp.into_parts();
            return Response::from_parts(head, ProxyBody::empty());
        }
        let (mut head, body) = resp.into_parts();
        headers::strip_hop_by_hop(&mut head.headers);
        Response::from_parts(
            head,
            ProxyBody::response(
                body,
                Done::new(flight, lease, Arc::clone(&self.local), start),
            ),
        )
    }
}

/// Copies an upgraded connection (e.g. a WebSocket) both ways; in flight until closed.
async fn tunnel(client: OnUpgrade, backend: OnUpgrade, flight: Flight, abort: CancellationToken) {
    let (Ok(client), Ok(backend)) = tokio::join!(client, backend) else {
        return;
    };
    let (mut client, mut backend) = (TokioIo::new(client), TokioIo::new(backend));
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut backend) => {}
        () = abort.cancelled() => {}
    }
    drop(flight);
}

/// 503 when no backend was tried, 502 when every attempt failed.
fn give_up(app: &AppStats, start: Instant, failed: bool) -> Response<ProxyBody> {
    let (status, msg) = if failed {
        (StatusCode::BAD_GATEWAY, "no backend could be reached\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no backend available\n")
    };
    app.codes.record(status.as_u16());
    app.latency.observe(start.elapsed());
    text(status, msg)
}

/// A short plain-text response made by the proxy.
fn text(status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(Bytes::from_static(msg.as_bytes())));
    *resp.status_mut() = status;
    let headers: &mut HeaderMap = resp.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Methods that may be sent twice.
fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_safe_methods_are_resent() {
        assert!(idempotent(&Method::GET) && idempotent(&Method::PUT));
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
    }
}
