//! The [`Proxy`] handle: route updates, listener lifecycle, shutdown, and the queries the
//! engine makes (drained, in flight, metrics, HAProxy configuration).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::TaskStats;
use crate::listener::{self, Listener, Target};
use crate::metrics::AppStats;
use crate::shard::Shards;
use crate::table::{Registry, Table};
use crate::{AppEndpoints, ProxyConfig, ProxyError, haproxy, metrics};

/// How long [`Proxy::run`] lets in-flight requests and connections finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// State shared by every listener and connection.
pub(crate) struct Shared {
    pub(crate) cfg: ProxyConfig,
    table: watch::Sender<Arc<Table>>,
    registry: Mutex<Registry>,
    /// Service listeners by port; the lock also serialises updates.
    listeners: tokio::sync::Mutex<HashMap<u16, Listener>>,
    /// Every listener, connection and tunnel task.
    pub(crate) tracker: TaskTracker,
    /// Cancelled at shutdown: stop accepting, finish what is in progress.
    pub(crate) stop: CancellationToken,
    /// Cancelled when the shutdown grace period is over: cut what is left.
    pub(crate) abort: CancellationToken,
    /// Requests that matched no route.
    pub(crate) unrouted: AtomicU64,
    /// Settings of the client-facing HTTP/1.1 server.
    pub(crate) http: hyper::server::conn::http1::Builder,
    /// New client connections start on the fast path (see `fast`).
    pub(crate) fast_path: AtomicBool,
    /// The threads HTTP client connections are served on.
    pub(crate) shards: Shards,
    /// The vhost listener when [`Proxy::open_vhost`] bound it ahead of [`Proxy::run`].
    vhost_bound: Mutex<Option<tokio::net::TcpListener>>,
}

impl Shared {
    /// The current table (takes the snapshot lock briefly; not for the per-request path).
    pub(crate) fn table(&self) -> Arc<Table> {
        Arc::clone(&self.table.borrow())
    }

    /// A per-connection view of the table.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Table>> {
        self.table.subscribe()
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The edge load balancer; cheap to clone, every clone is the same proxy.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy with an empty route table; nothing listens until [`Proxy::update`] (service
    /// ports) and [`Proxy::run`] (the vhost listener).
    pub fn new(cfg: ProxyConfig) -> Proxy {
        let mut http = hyper::server::conn::http1::Builder::new();
        // Small responses go out in one write; backends date their own responses. No
        // hyper timer: a per-request header timer costs an allocation and two timer
        // wheel updates; idle connections are closed by their own idle check instead.
        http.keep_alive(true).writev(false).auto_date_header(false);
        let (table, _) = watch::channel(Arc::new(Table::default()));
        let shards = Shards::start();
        let registry = Registry::new(shards.count());
        Proxy {
            shared: Arc::new(Shared {
                cfg,
                table,
                registry: Mutex::new(registry),
                listeners: tokio::sync::Mutex::new(HashMap::new()),
                tracker: TaskTracker::new(),
                stop: CancellationToken::new(),
                abort: CancellationToken::new(),
                unrouted: AtomicU64::new(0),
                http,
                fast_path: AtomicBool::new(true),
                shards,
                vhost_bound: Mutex::new(None),
            }),
        }
    }

    /// Whether new HTTP client connections start on the fast path (the default): plain
    /// HTTP/1.1 relayed without hyper, everything else handed to hyper. With `false`
    /// hyper serves every request (for comparison and as a way out).
    pub fn set_fast_path(&self, on: bool) {
        self.shared.fast_path.store(on, Relaxed);
    }

    /// Replaces the route table atomically: opens new listeners, closes vanished ones,
    /// and from this call on no new request or connection goes to a backend that is not
    /// in `apps`. Returns errors for listeners it could not open (port in use) and for
    /// labels it could not read, without failing the rest.
    pub async fn update(&self, apps: Vec<AppEndpoints>) -> Vec<ProxyError> {
        let shared = &self.shared;
        let mut listeners = shared.listeners.lock().await;
        let mut errors = Vec::new();
        let (table, stale) = shared.registry().build(&apps, &shared.cfg, &mut errors);
        let table = Arc::new(table);
        shared.table.send_replace(Arc::clone(&table));
        // Only after publishing: a request that finds a backend unrouted then sees the
        // new table when it looks again.
        shared.registry().retire(&stale);

        let mut gone: Vec<u16> = listeners
            .keys()
            .filter(|p| !table.ports.contains_key(p))
            .copied()
            .collect();
        gone.sort_unstable();
        for port in gone {
            if let Some(listener) = listeners.remove(&port) {
                listener.close().await;
            }
        }
        let mut wanted: Vec<u16> = table
            .ports
            .keys()
            .filter(|p| !listeners.contains_key(p))
            .copied()
            .collect();
        wanted.sort_unstable();
        for port in wanted {
            if shared.stop.is_cancelled() {
                break;
            }
            let addr = SocketAddr::new(shared.cfg.bind_ip, port);
            match listener::bind(addr) {
                Ok(l) => {
                    let token = shared.stop.child_token();
                    listeners.insert(port, listener::start(shared, l, Target::Port(port), token));
                }
                Err(source) => errors.push(ProxyError::Bind { addr, source }),
            }
        }
        errors
    }

    /// Binds the vhost listener (if configured) now, so that an address in use fails the
    /// caller's start-up instead of only being logged by [`Proxy::run`]. Call it on the
    /// runtime that will run the proxy.
    pub async fn open_vhost(&self) -> std::io::Result<()> {
        if let Some(addr) = self.shared.cfg.vhost_listen {
            let l = listener::bind(addr)?;
            *self
                .shared
                .vhost_bound
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(l);
        }
        Ok(())
    }

    /// Runs the vhost listener (if configured) until `shutdown`; service listeners run as
    /// tracked tasks. Shutdown stops accepting everywhere and lets in-flight requests and
    /// connections finish for at most [`SHUTDOWN_GRACE`].
    pub async fn run(self, shutdown: CancellationToken) {
        let shared = &self.shared;
        let bound = shared
            .vhost_bound
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let vhost = match shared.cfg.vhost_listen {
            None => None,
            Some(addr) => match bound.map_or_else(|| listener::bind(addr), Ok) {
                Ok(l) => Some(listener::start(
                    shared,
                    l,
                    Target::Vhost,
                    shared.stop.child_token(),
                )),
                Err(e) => {
                    tracing::error!(%addr, error = %e, "cannot open the vhost listener");
                    None
                }
            },
        };
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = shared.stop.cancelled() => {}
        }
        shared.stop.cancel();
        if let Some(vhost) = vhost {
            vhost.close().await;
        }
        let listeners: Vec<Listener> = shared
            .listeners
            .lock()
            .await
            .drain()
            .map(|(_, l)| l)
            .collect();
        for listener in listeners {
            listener.close().await;
        }
        shared.tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, shared.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("shutdown grace period over; closing the remaining connections");
            shared.abort.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), shared.tracker.wait()).await;
        }
    }

    /// True when `task_id` is in no route and has no request or TCP connection in
    /// flight: the engine may now SIGTERM it.
    pub fn drained(&self, task_id: &str) -> bool {
        self.shared
            .registry()
            .tasks
            .get(task_id)
            .is_none_or(|t| t.drained())
    }

    /// Requests and TCP connections in flight to `task_id`.
    pub fn in_flight(&self, task_id: &str) -> usize {
        self.shared
            .registry()
            .tasks
            .get(task_id)
            .map_or(0, |t| t.in_flight())
    }

    /// Prometheus text exposition: per app and per backend requests by status class,
    /// errors by kind, in-flight gauges and a latency histogram.
    pub fn metrics_text(&self) -> String {
        let (apps, tasks) = self.stats();
        let apps: Vec<_> = apps.iter().map(Arc::as_ref).collect();
        let tasks: Vec<_> = tasks.iter().map(Arc::as_ref).collect();
        metrics::render(&apps, &tasks, self.shared.unrouted.load(Relaxed))
    }

    /// The samples of [`Proxy::metrics_text`], handed to `f` one at a time without
    /// rendering or allocating them: the collector stores them each round.
    pub fn visit_metrics(&self, f: &mut dyn FnMut(&::metrics::SampleRef<'_>)) {
        let (apps, tasks) = self.stats();
        let apps: Vec<_> = apps.iter().map(Arc::as_ref).collect();
        let tasks: Vec<_> = tasks.iter().map(Arc::as_ref).collect();
        metrics::visit(&apps, &tasks, self.shared.unrouted.load(Relaxed), f);
    }

    /// The counters of every app and backend, sorted by id, taken under the registry's
    /// lock and read after it is released: what reads them (the collector, storing
    /// them) never holds up a table update.
    fn stats(&self) -> (Vec<Arc<AppStats>>, Vec<Arc<TaskStats>>) {
        let registry = self.shared.registry();
        (
            registry.apps.values().cloned().collect(),
            registry.tasks.values().cloned().collect(),
        )
    }

    /// An equivalent HAProxy 2.6 configuration for the current table.
    pub fn haproxy_config(&self) -> String {
        haproxy::render(&self.shared.table(), &self.shared.cfg)
    }
}
