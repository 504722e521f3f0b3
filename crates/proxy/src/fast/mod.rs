//! The fast path of HTTP mode: plain HTTP/1.1 exchanges relayed over raw, pooled
//! keep-alive backend sockets, without hyper's parse and re-serialisation.
//!
//! A client connection starts here. Each request head is parsed with `httparse`
//! ([`head`]); one the fast path does not serve (an upgrade, `Expect`, HTTP/1.0, anything
//! odd or malformed) hands the connection, with the bytes already read, to the hyper path
//! ([`crate::http`]) for good. Otherwise the request gets what the hyper path would give
//! it: the same routing, balancing, in-flight guard, passive health, retries, metrics,
//! header rewriting and responses of the proxy's own. Bodies stream both ways as they are
//! framed ([`relay`]); a request body and its response run concurrently, so a backend may
//! answer before it read the whole body.
//!
//! Backend sockets are lent to one request at a time and come back when the response was
//! read to its end; idle ones stay with the client connection and are parked in their
//! endpoint's pool when it ends. A parked socket the backend closed meanwhile is found
//! (the reactor saw the close) before the request is written, and another is used.

mod buf;
mod chunked;
mod head;
#[cfg(test)]
mod props;
mod relay;
mod rewind;

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use self::buf::Buf;
use self::head::{Framing, Parsed};
use self::relay::{Answer, Failure, Left};
pub(crate) use self::rewind::Rewind;
use crate::backend::{Endpoint, TaskStats};
use crate::headers;
use crate::http;
use crate::listener::Target;
use crate::metrics::{AppStats, ErrorKind};
use crate::proxy::Shared;
use crate::table::{Route, Table};

/// Serves one client connection (on the thread this runs on, see `shard`): on the fast
/// path while its requests allow, then (if one does not) on the hyper path.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    stream: std::net::TcpStream,
    peer: SocketAddr,
    target: Target,
    token: CancellationToken,
) {
    let stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(error = %e, "cannot register a client connection");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    if !shared.fast_path.load(Relaxed) {
        let io = Rewind::new(Vec::new(), stream);
        return http::serve(shared, io, peer, target, token).await;
    }
    let mut conn = Conn::new(&shared, stream, peer, target);
    let abort = shared.abort.clone();
    let end = tokio::select! {
        biased;
        end = conn.run(&token) => end,
        () = abort.cancelled() => End::Closed,
    };
    conn.release();
    if end == End::Handover {
        let io = Rewind::new(conn.cbuf.take(), conn.client);
        http::serve(shared, io, peer, target, token).await;
    }
}

/// How the fast path left a client connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Closed (by either side, idle, shutdown, or after an error).
    Closed,
    /// The next request is for the hyper path.
    Handover,
}

/// After an exchange: go on or close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
}

/// What waiting for more of a request head gave.
enum Wait {
    Read,
    End,
}

/// A parsed request, detached from the buffer it came in.
#[derive(Debug, Clone, Copy)]
struct Req {
    len: usize,
    body: Framing,
    resend: bool,
    close: bool,
    head: bool,
}

/// One client connection on the fast path.
struct Conn {
    shared: Arc<Shared>,
    target: Target,
    /// The client's address as `X-Forwarded-For` text.
    xff: Vec<u8>,
    /// This connection's snapshot of the route table.
    rx: watch::Receiver<Arc<Table>>,
    table: Arc<Table>,
    client: TcpStream,
    /// Bytes from the client.
    cbuf: Buf,
    /// Bytes from the backend.
    bbuf: Buf,
    /// The request head for the backend.
    out: Vec<u8>,
    /// Response heads and chunks for the client.
    rout: Vec<u8>,
    /// The host and path of the request being served (vhost listener), to route again.
    host: Vec<u8>,
    path: String,
    /// Idle backend sockets, at most one per endpoint.
    idle_conns: Vec<(Arc<Endpoint>, TcpStream)>,
    /// Requests started or finished; compared at each idle tick.
    activity: u64,
    seen: u64,
    /// Idle ticks in a row with no activity.
    quiet: u32,
    idle: Pin<Box<Sleep>>,
    idle_for: Duration,
}

impl Conn {
    fn new(shared: &Arc<Shared>, client: TcpStream, peer: SocketAddr, target: Target) -> Conn {
        let mut rx = shared.subscribe();
        let table = Arc::clone(&rx.borrow_and_update());
        let idle_for = shared.cfg.idle_timeout;
        Conn {
            shared: Arc::clone(shared),
            target,
            xff: peer.ip().to_string().into_bytes(),
            rx,
            table,
            client,
            cbuf: Buf::new(head::MAX_HEAD),
            bbuf: Buf::new(head::MAX_HEAD),
            out: Vec::with_capacity(512),
            rout: Vec::new(),
            host: Vec::new(),
            path: String::new(),
            idle_conns: Vec::new(),
            activity: 0,
            seen: 0,
            quiet: 0,
            idle: Box::pin(tokio::time::sleep(idle_for)),
            idle_for,
        }
    }

    /// Serves requests until the connection closes or one is for the hyper path.
    async fn run(&mut self, close: &CancellationToken) -> End {
        loop {
            if self.rx.has_changed().unwrap_or(false) {
                self.table = Arc::clone(&self.rx.borrow_and_update());
            }
            let (req, route) =
                match head::parse_request(self.cbuf.filled(), &self.xff, &mut self.out) {
                    Parsed::Head(r) => {
                        let route = match self.target {
                            Target::Port(port) => self.table.ports.get(&port).cloned(),
                            Target::Vhost => {
                                self.host.clear();
                                self.host.extend_from_slice(r.host);
                                self.path.clear();
                                self.path.push_str(r.path);
                                headers::route_by_host(&self.table, r.host, r.path).cloned()
                            }
                        };
                        let req = Req {
                            len: r.len,
                            body: r.body,
                            resend: r.resend,
                            close: r.close,
                            head: r.head,
                        };
                        (req, route)
                    }
                    Parsed::Unusual => return End::Handover,
                    Parsed::Partial => match self.wait(close).await {
                        Wait::Read => continue,
                        Wait::End => return End::Closed,
                    },
                };
            if self.exchange(req, route, close).await == Next::Close {
                return End::Closed;
            }
        }
    }

    /// Reads more of a request head; ends the connection when the client closed, when
    /// the listener closed and no request is under way, or after one idle timeout
    /// without any request (two when a head is half read).
    async fn wait(&mut self, close: &CancellationToken) -> Wait {
        loop {
            tokio::select! {
                biased;
                read = self.cbuf.read_from(&mut self.client) => {
                    return match read {
                        Ok(n) if n > 0 => Wait::Read,
                        _ => Wait::End,
                    };
                }
                () = close.cancelled(), if self.cbuf.is_empty() => return Wait::End,
                () = &mut self.idle => {
                    if self.activity == self.seen {
                        self.quiet += 1;
                    } else {
                        (self.seen, self.quiet) = (self.activity, 0);
                    }
                    let allowed = if self.cbuf.is_empty() { 1 } else { 2 };
                    if self.quiet >= allowed {
                        return Wait::End;
                    }
                    let at = tokio::time::Instant::now() + self.idle_for;
                    self.idle.as_mut().reset(at);
                }
            }
        }
    }

    /// The route for the current request in a fresh table.
    fn reroute(&mut self) -> Option<Arc<Route>> {
        self.table = Arc::clone(&self.rx.borrow_and_update());
        match self.target {
            Target::Port(port) => self.table.ports.get(&port).cloned(),
            Target::Vhost => headers::route_by_host(&self.table, &self.host, &self.path).cloned(),
        }
    }

    /// Serves one request whose head is at the start of the client buffer.
    async fn exchange(
        &mut self,
        req: Req,
        route: Option<Arc<Route>>,
        close: &CancellationToken,
    ) -> Next {
        self.activity += 1;
        let start = Instant::now();
        self.cbuf.consume(req.len);
        let mut left = Left::new(req.body);
        let closing = req.close || close.is_cancelled();
        let next = self.forward(req, route, &mut left, closing, start).await;
        self.activity += 1;
        // A request body not read to its end leaves the connection unusable.
        if left.is_done() { next } else { Next::Close }
    }

    /// Picks backends and tries them until the request got an answer.
    async fn forward(
        &mut self,
        req: Req,
        route: Option<Arc<Route>>,
        left: &mut Left,
        closing: bool,
        start: Instant,
    ) -> Next {
        let Some(mut route) = route else {
            return self.no_route(req, closing || !left.is_done()).await;
        };
        let mut tried: Vec<usize> = Vec::new();
        let mut last_app: Option<Arc<AppStats>> = None;
        for _ in 0..64 {
            let Some(ep) = route.pick(&tried).cloned() else {
                let failed = !tried.is_empty();
                return self
                    .give_up(&route.app, start, failed, req, closing || !left.is_done())
                    .await;
            };
            let Some(flight) = ep.acquire() else {
                // It left the table after this connection's snapshot: look again.
                match self.reroute() {
                    Some(r) => route = r,
                    None => return self.no_route(req, closing || !left.is_done()).await,
                }
                continue;
            };
            let mut backend = match self.checkout(&ep).await {
                Ok(stream) => stream,
                Err(kind) => {
                    // Nothing was sent: always safe to try the next backend.
                    last_app = Some(Arc::clone(&ep.task.app));
                    ep.mark_down(kind);
                    tried.push(Arc::as_ptr(&ep) as usize);
                    continue;
                }
            };
            self.bbuf.clear();
            let answered = self
                .attempt(&mut backend, left, req.head, closing, &ep.task)
                .await;
            match answered {
                Ok((answer, sent)) => {
                    ep.task.observe(start.elapsed());
                    if answer.reusable && sent {
                        self.checkin(&ep, backend);
                    }
                    drop(flight);
                    let keep = !answer.close && !closing && sent;
                    return if keep { Next::KeepAlive } else { Next::Close };
                }
                Err(Failure::Client) => {
                    ep.task.observe(start.elapsed());
                    return Next::Close;
                }
                Err(Failure::BackendBody) => {
                    tracing::debug!(backend = %ep.addr, "response body cut");
                    ep.task.errors.record(ErrorKind::Reset);
                    ep.task.observe(start.elapsed());
                    return Next::Close;
                }
                Err(Failure::Backend) => {
                    tracing::debug!(backend = %ep.addr, "request failed");
                    ep.task.errors.record(ErrorKind::Reset);
                    last_app = Some(Arc::clone(&ep.task.app));
                    tried.push(Arc::as_ptr(&ep) as usize);
                    if !req.resend {
                        break;
                    }
                }
            }
        }
        let close = closing || !left.is_done();
        match last_app {
            Some(app) => self.give_up(&app, start, true, req, close).await,
            None => self.reply(502, "bad gateway\n", req.head, close).await,
        }
    }

    /// One attempt on one backend socket: the request, then its response. Also says
    /// whether the request body was sent to its end (a backend may answer before).
    async fn attempt(
        &mut self,
        backend: &mut TcpStream,
        left: &mut Left,
        head: bool,
        close: bool,
        task: &TaskStats,
    ) -> Result<(Answer, bool), Failure> {
        let (mut crd, mut cwr) = self.client.split();
        if left.is_done() {
            // No body (the common case): one write, then the answer, unless the client
            // gives up first.
            if tokio::io::AsyncWriteExt::write_all(backend, &self.out)
                .await
                .is_err()
            {
                return Err(Failure::Backend);
            }
            let down = relay::respond(
                backend,
                &mut cwr,
                &mut self.bbuf,
                &mut self.rout,
                head,
                close,
                task,
            );
            return tokio::select! {
                biased;
                answer = down => answer.map(|a| (a, true)),
                () = relay::client_gone(&crd, &mut self.cbuf) => Err(Failure::Client),
            };
        }
        let (mut brd, mut bwr) = backend.split();
        let sent = AtomicBool::new(false);
        let up = async {
            relay::send_request(&mut crd, &mut bwr, &mut self.cbuf, &mut self.out, left).await?;
            sent.store(true, Relaxed);
            relay::client_gone(&crd, &mut self.cbuf).await;
            Err::<(), _>(Failure::Client)
        };
        let down = relay::respond(
            &mut brd,
            &mut cwr,
            &mut self.bbuf,
            &mut self.rout,
            head,
            close,
            task,
        );
        tokio::pin!(up, down);
        let mut sending = true;
        loop {
            tokio::select! {
                biased;
                answer = &mut down => return answer.map(|a| (a, sent.load(Relaxed))),
                res = &mut up, if sending => match res {
                    Err(Failure::Backend) => {
                        // The backend stopped reading; its answer (or failure) tells the rest.
                        sending = false;
                    }
                    _ => return Err(Failure::Client),
                },
            }
        }
    }

    /// A socket to `ep`: this connection's idle one, a parked one, or a new one.
    async fn checkout(&mut self, ep: &Arc<Endpoint>) -> Result<TcpStream, ErrorKind> {
        self.idle_conns.retain(|(e, _)| e.routed.load(Relaxed));
        while let Some(i) = self.idle_conns.iter().position(|(e, _)| Arc::ptr_eq(e, ep)) {
            let (_, stream) = self.idle_conns.swap_remove(i);
            if open(&stream) {
                return Ok(stream);
            }
        }
        while let Some(stream) = ep.take_raw() {
            if open(&stream) {
                return Ok(stream);
            }
        }
        ep.connect_tcp().await
    }

    /// Keeps a socket whose response was read to the end for the next request.
    fn checkin(&mut self, ep: &Arc<Endpoint>, stream: TcpStream) {
        if ep.routed.load(Relaxed) {
            self.idle_conns.push((Arc::clone(ep), stream));
        }
    }

    /// Parks the idle backend sockets in their endpoints' pools.
    fn release(&mut self) {
        for (ep, stream) in self.idle_conns.drain(..) {
            ep.park_raw(stream);
        }
    }

    /// 404 (vhost listener) or 503 (service port) for a request no route matches.
    async fn no_route(&mut self, req: Req, close: bool) -> Next {
        self.shared.unrouted.fetch_add(1, Relaxed);
        match self.target {
            Target::Vhost => {
                self.reply(404, "no route for this host\n", req.head, close)
                    .await
            }
            Target::Port(_) => self.reply(503, "no route\n", req.head, close).await,
        }
    }

    /// 503 when no backend was tried, 502 when every attempt failed.
    async fn give_up(
        &mut self,
        app: &AppStats,
        start: Instant,
        failed: bool,
        req: Req,
        close: bool,
    ) -> Next {
        let (status, msg) = if failed {
            (502, "no backend could be reached\n")
        } else {
            (503, "no backend available\n")
        };
        app.codes.record(status);
        app.latency.observe(start.elapsed());
        self.reply(status, msg, req.head, close).await
    }

    /// A short plain-text response made by the proxy (no body for a `HEAD`).
    async fn reply(&mut self, status: u16, msg: &str, head: bool, close: bool) -> Next {
        let reason = match status {
            404 => "Not Found",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            _ => "",
        };
        self.rout.clear();
        let mut text = String::with_capacity(160);
        let _ = write!(
            text,
            "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{}\r\n",
            msg.len(),
            if close { "connection: close\r\n" } else { "" },
        );
        self.rout.extend_from_slice(text.as_bytes());
        if !head {
            self.rout.extend_from_slice(msg.as_bytes());
        }
        match tokio::io::AsyncWriteExt::write_all(&mut self.client, &self.rout).await {
            Ok(()) if !close => Next::KeepAlive,
            _ => Next::Close,
        }
    }
}

/// Whether an idle backend socket is still open: the reactor has seen nothing on it (no
/// close, no stray bytes). Costs no system call unless something arrived.
fn open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}
