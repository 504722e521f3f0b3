//! Backends: per-task counters, per-address endpoints with passive health, a keep-alive
//! connection pool, and the in-flight accounting that tells the engine a task has drained.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;

use crate::body::ProxyBody;
use crate::metrics::{AppStats, ErrorCounts, ErrorKind, Histogram, StatusCounts};
use crate::pool::Pooled;
use crate::shard;

/// How long a backend that refused a connection is skipped.
pub(crate) const DOWN_FOR: Duration = Duration::from_secs(2);
/// Parked backend connections kept per endpoint.
const MAX_IDLE: usize = 512;

/// Milliseconds since the first call, never 0 (0 means "not down").
fn now_ms() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ms = EPOCH.get_or_init(Instant::now).elapsed().as_millis();
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

/// Counters of one task, kept across route updates until it is unrouted and idle.
#[derive(Debug)]
pub(crate) struct TaskStats {
    /// The task id.
    pub(crate) task_id: String,
    /// The app it belongs to.
    pub(crate) app: Arc<AppStats>,
    /// Requests and TCP connections in flight.
    in_flight: AtomicUsize,
    /// Whether any of its endpoints is in the current table.
    pub(crate) routed: AtomicBool,
    /// `now_ms()` until which one of its endpoints is marked down.
    down_until: AtomicU64,
    /// HTTP responses by status class.
    pub(crate) codes: StatusCounts,
    /// Failed attempts by kind.
    pub(crate) errors: ErrorCounts,
    /// TCP-mode connections.
    pub(crate) connections: AtomicU64,
    /// Time from receiving a request to the end of the response body it answered.
    pub(crate) latency: Histogram,
}

impl TaskStats {
    /// Fresh counters.
    pub(crate) fn new(task_id: &str, app: Arc<AppStats>) -> TaskStats {
        TaskStats {
            task_id: task_id.to_owned(),
            app,
            in_flight: AtomicUsize::new(0),
            routed: AtomicBool::new(false),
            down_until: AtomicU64::new(0),
            codes: StatusCounts::default(),
            errors: ErrorCounts::default(),
            connections: AtomicU64::new(0),
            latency: Histogram::default(),
        }
    }

    /// Records one request this backend answered, in its app's histogram and its own.
    pub(crate) fn observe(&self, elapsed: Duration) {
        self.app.latency.observe(elapsed);
        self.latency.observe(elapsed);
    }

    /// Requests and connections in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(SeqCst)
    }

    /// Routed and not marked down.
    pub(crate) fn is_up(&self) -> bool {
        self.routed.load(Relaxed) && self.down_until.load(Relaxed) <= now_ms()
    }

    /// In no route and nothing in flight. Pairs with [`Endpoint::acquire`]: the flag is
    /// read before the count, both sequentially consistent.
    pub(crate) fn drained(&self) -> bool {
        !self.routed.load(SeqCst) && self.in_flight.load(SeqCst) == 0
    }
}

/// An idle connection parked by a client connection that ended; nobody polls it.
struct Parked {
    sender: SendRequest<ProxyBody>,
    conn: Pooled,
    since: Instant,
}

/// An idle raw connection of the fast path, parked by a client connection that ended.
struct RawParked {
    stream: TcpStream,
    since: Instant,
}

/// One task's address for one port: health, balancing count and connection pools (hyper
/// connections of the hyper path, raw sockets of the fast path).
pub(crate) struct Endpoint {
    /// Where the task listens.
    pub(crate) addr: SocketAddr,
    /// The task's counters.
    pub(crate) task: Arc<TaskStats>,
    /// Whether this endpoint is in the current table.
    pub(crate) routed: AtomicBool,
    /// In flight on this endpoint (least-connections balancing).
    active: AtomicUsize,
    /// `now_ms()` until which the endpoint is skipped; 0 = up.
    down_until: AtomicU64,
    /// Parked connections, per data-plane thread (a socket stays with its reactor).
    pool: Box<[Mutex<Vec<Parked>>]>,
    raw: Box<[Mutex<Vec<RawParked>>]>,
    connect_timeout: Duration,
    idle_timeout: Duration,
}

impl Endpoint {
    /// A routed endpoint with no connection yet, pooling for `shards` threads.
    pub(crate) fn new(
        addr: SocketAddr,
        task: Arc<TaskStats>,
        connect_timeout: Duration,
        idle_timeout: Duration,
        shards: usize,
    ) -> Endpoint {
        let shards = shards.max(1);
        Endpoint {
            addr,
            task,
            routed: AtomicBool::new(true),
            active: AtomicUsize::new(0),
            down_until: AtomicU64::new(0),
            pool: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            raw: (0..shards).map(|_| Mutex::new(Vec::new())).collect(),
            connect_timeout,
            idle_timeout,
        }
    }

    /// In flight on this endpoint.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Relaxed)
    }

    /// Whether passive health currently skips this endpoint.
    pub(crate) fn is_down(&self) -> bool {
        let until = self.down_until.load(Relaxed);
        if until == 0 {
            return false;
        }
        if now_ms() < until {
            return true;
        }
        self.down_until.store(0, Relaxed);
        false
    }

    /// Skips this endpoint for [`DOWN_FOR`] and drops its idle connections.
    pub(crate) fn mark_down(&self, kind: ErrorKind) {
        self.task.errors.record(kind);
        let ms = u64::try_from(DOWN_FOR.as_millis()).unwrap_or(u64::MAX);
        let until = now_ms().saturating_add(ms);
        self.down_until.store(until, Relaxed);
        self.task.down_until.fetch_max(until, Relaxed);
        self.clear_pool();
    }

    /// Counts a request or connection in flight, unless the endpoint left the table (then
    /// the caller must look at the current table again).
    pub(crate) fn acquire(self: &Arc<Self>) -> Option<Flight> {
        self.task.in_flight.fetch_add(1, SeqCst);
        self.active.fetch_add(1, Relaxed);
        let flight = Flight(Arc::clone(self));
        self.routed.load(SeqCst).then_some(flight)
    }

    /// The calling thread's pool of hyper connections.
    fn pool(&self) -> MutexGuard<'_, Vec<Parked>> {
        self.pool[shard::current() % self.pool.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The calling thread's pool of raw sockets.
    fn raw(&self) -> MutexGuard<'_, Vec<RawParked>> {
        self.raw[shard::current() % self.raw.len()]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Drops the parked connections of every thread (the endpoint left the table or
    /// failed).
    pub(crate) fn clear_pool(&self) {
        for pool in &self.pool {
            let idle = std::mem::take(&mut *pool.lock().unwrap_or_else(PoisonError::into_inner));
            drop(idle);
        }
        for raw in &self.raw {
            let idle = std::mem::take(&mut *raw.lock().unwrap_or_else(PoisonError::into_inner));
            drop(idle);
        }
    }

    /// A parked raw connection that is not too old, if any (it may have been closed by
    /// the backend meanwhile: the caller checks).
    pub(crate) fn take_raw(&self) -> Option<TcpStream> {
        let mut raw = self.raw();
        while let Some(RawParked { stream, since }) = raw.pop() {
            if since.elapsed() <= self.idle_timeout {
                return Some(stream);
            }
        }
        None
    }

    /// Parks an idle raw connection whose client connection ended.
    pub(crate) fn park_raw(&self, stream: TcpStream) {
        if !self.routed.load(Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut raw = self.raw();
        if raw
            .first()
            .is_some_and(|old| now.duration_since(old.since) > self.idle_timeout)
        {
            raw.remove(0);
        }
        if raw.len() < MAX_IDLE {
            raw.push(RawParked { stream, since: now });
        }
    }

    /// A parked connection that is not too old, if any.
    pub(crate) fn take_parked(&self) -> Option<(SendRequest<ProxyBody>, Pooled)> {
        let mut pool = self.pool();
        while let Some(Parked {
            sender,
            conn,
            since,
        }) = pool.pop()
        {
            if !sender.is_closed() && since.elapsed() <= self.idle_timeout {
                return Some((sender, conn));
            }
        }
        None
    }

    /// Parks an idle connection whose client connection ended.
    pub(crate) fn park(&self, sender: SendRequest<ProxyBody>, conn: Pooled) {
        if sender.is_closed() || !self.routed.load(Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut pool = self.pool();
        if pool
            .first()
            .is_some_and(|old| now.duration_since(old.since) > self.idle_timeout)
        {
            pool.remove(0);
        }
        if pool.len() < MAX_IDLE {
            pool.push(Parked {
                sender,
                conn,
                since: now,
            });
        }
    }

    /// A new TCP connection to the endpoint, within the connect timeout.
    pub(crate) async fn connect_tcp(&self) -> Result<TcpStream, ErrorKind> {
        match tokio::time::timeout(self.connect_timeout, TcpStream::connect(self.addr)).await {
            Err(_) => Err(ErrorKind::Timeout),
            Ok(Err(_)) => Err(ErrorKind::Connect),
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Ok(stream)
            }
        }
    }
}

/// One request or TCP connection in flight on an endpoint; dropping it ends it.
pub(crate) struct Flight(Arc<Endpoint>);

impl Flight {
    /// The endpoint.
    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
        self.0.task.in_flight.fetch_sub(1, SeqCst);
    }
}
