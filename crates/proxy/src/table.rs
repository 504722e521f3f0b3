//! The immutable route table (swapped whole on every update), backend selection, and
//! the registry of endpoints and counters that outlives tables.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use crate::backend::{Endpoint, TaskStats};
use crate::labels::{Balance, Mode, PortSpec, port_spec, serves};
use crate::metrics::AppStats;
use crate::{AppEndpoints, ProxyConfig, ProxyError};

/// One app port: how it is routed and to which endpoints.
pub(crate) struct Route {
    /// The app's counters.
    pub(crate) app: Arc<AppStats>,
    /// The port index.
    pub(crate) index: usize,
    /// Mode, balance, listener port, vhosts and path.
    pub(crate) spec: PortSpec,
    /// The healthy endpoints, in the engine's order.
    pub(crate) endpoints: Vec<Arc<Endpoint>>,
    rr: AtomicUsize,
}

impl Route {
    /// Chooses an endpoint not in `tried` (pointers of endpoints that failed), preferring
    /// ones not marked down; a down one is used only when nothing else is left.
    pub(crate) fn pick(&self, tried: &[usize]) -> Option<&Arc<Endpoint>> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = if n == 1 {
            0
        } else {
            self.rr.fetch_add(1, Relaxed) % n
        };
        let mut fallback = None;
        let mut best: Option<&Arc<Endpoint>> = None;
        for i in 0..n {
            let ep = &self.endpoints[(start + i) % n];
            if !tried.is_empty() && tried.contains(&(Arc::as_ptr(ep) as usize)) {
                continue;
            }
            if ep.is_down() {
                fallback = fallback.or(Some(ep));
                continue;
            }
            match self.spec.balance {
                Balance::RoundRobin => return Some(ep),
                Balance::LeastConn => {
                    if best.is_none_or(|b| ep.active() < b.active()) {
                        best = Some(ep);
                    }
                }
            }
        }
        best.or(fallback)
    }
}

/// Routes of one vhost, longest path prefix first.
type VhostRoutes = Vec<Arc<Route>>;

/// A snapshot of all routes.
#[derive(Default)]
pub(crate) struct Table {
    /// Service listener port to route.
    pub(crate) ports: HashMap<u16, Arc<Route>>,
    /// Lower-case host name to routes.
    pub(crate) vhosts: HashMap<String, VhostRoutes>,
    /// Every route, by app id and port index.
    pub(crate) routes: Vec<Arc<Route>>,
}

impl Table {
    /// The route for a lower-case host (port stripped) and a path.
    pub(crate) fn vhost(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.vhosts
            .get(host)?
            .iter()
            .find(|r| r.spec.path.as_deref().is_none_or(|p| path.starts_with(p)))
    }

    /// The mode of the service listener on `port`, if it is routed.
    pub(crate) fn port_mode(&self, port: u16) -> Option<Mode> {
        self.ports.get(&port).map(|r| r.spec.mode)
    }
}

/// Endpoints and counters by identity; only touched by updates and by queries.
pub(crate) struct Registry {
    /// Per-task counters by task id.
    pub(crate) tasks: BTreeMap<String, Arc<TaskStats>>,
    /// Per-app counters by app id.
    pub(crate) apps: BTreeMap<String, Arc<AppStats>>,
    endpoints: HashMap<(String, SocketAddr), Arc<Endpoint>>,
    /// Data-plane threads, each with connection pools of its own per endpoint.
    shards: usize,
}

impl Registry {
    /// An empty registry for a proxy with `shards` data-plane threads.
    pub(crate) fn new(shards: usize) -> Registry {
        Registry {
            tasks: BTreeMap::new(),
            apps: BTreeMap::new(),
            endpoints: HashMap::new(),
            shards,
        }
    }

    /// Builds the table for `apps`, reusing known endpoints (and their pools) and marking
    /// new ones routed. Returns the endpoints that are no longer in it.
    pub(crate) fn build(
        &mut self,
        apps: &[AppEndpoints],
        cfg: &ProxyConfig,
        errors: &mut Vec<ProxyError>,
    ) -> (Table, Vec<Arc<Endpoint>>) {
        let mut sorted: Vec<&AppEndpoints> = apps.iter().collect();
        sorted.sort_by(|a, b| a.app_id.cmp(&b.app_id));
        let mut table = Table::default();
        let mut live: HashSet<(String, SocketAddr)> = HashSet::new();
        let mut live_apps = HashSet::new();
        for app in sorted {
            let stats = Arc::clone(
                self.apps
                    .entry(app.app_id.clone())
                    .or_insert_with(|| Arc::new(AppStats::new(&app.app_id))),
            );
            live_apps.insert(app.app_id.clone());
            for (index, port) in app.ports.iter().enumerate() {
                let spec = port_spec(app, index, port.service_port, errors);
                if !serves(&cfg.groups, &spec.groups) {
                    continue;
                }
                let mut endpoints = Vec::with_capacity(port.backends.len());
                for b in &port.backends {
                    let key = (b.task_id.clone(), b.addr);
                    if !live.insert(key.clone()) {
                        continue;
                    }
                    let task = self.tasks.entry(b.task_id.clone()).or_insert_with(|| {
                        Arc::new(TaskStats::new(&b.task_id, Arc::clone(&stats)))
                    });
                    task.routed.store(true, SeqCst);
                    let ep = self.endpoints.entry(key).or_insert_with(|| {
                        Arc::new(Endpoint::new(
                            b.addr,
                            Arc::clone(task),
                            cfg.connect_timeout,
                            cfg.idle_timeout,
                            self.shards,
                        ))
                    });
                    ep.routed.store(true, SeqCst);
                    endpoints.push(Arc::clone(ep));
                }
                let route = Arc::new(Route {
                    app: Arc::clone(&stats),
                    index,
                    spec,
                    endpoints,
                    rr: AtomicUsize::new(0),
                });
                let listen = route.spec.listen_port;
                if listen != 0 {
                    if let Some(owner) = table.ports.get(&listen) {
                        errors.push(ProxyError::PortConflict {
                            port: listen,
                            app: app.app_id.clone(),
                            owner: owner.app.app_id.clone(),
                        });
                    } else {
                        table.ports.insert(listen, Arc::clone(&route));
                    }
                }
                for host in &route.spec.vhosts {
                    table
                        .vhosts
                        .entry(host.clone())
                        .or_default()
                        .push(Arc::clone(&route));
                }
                table.routes.push(route);
            }
        }
        for routes in table.vhosts.values_mut() {
            // Stable: among equal prefixes the first app (by id) wins.
            routes.sort_by_key(|r| std::cmp::Reverse(r.spec.path.as_ref().map_or(0, String::len)));
        }
        self.apps.retain(|id, _| live_apps.contains(id));
        let stale = self
            .endpoints
            .iter()
            .filter(|(k, _)| !live.contains(*k))
            .map(|(_, ep)| Arc::clone(ep))
            .collect();
        (table, stale)
    }

    /// After the new table is published: takes `stale` endpoints out of service, then
    /// forgets tasks that are unrouted and idle.
    pub(crate) fn retire(&mut self, stale: &[Arc<Endpoint>]) {
        for ep in stale {
            ep.routed.store(false, SeqCst);
            ep.clear_pool();
        }
        let routed: HashSet<&str> = self
            .endpoints
            .values()
            .filter(|ep| ep.routed.load(SeqCst))
            .map(|ep| ep.task.task_id.as_str())
            .collect();
        for task in self.tasks.values() {
            if !routed.contains(task.task_id.as_str()) {
                task.routed.store(false, SeqCst);
            }
        }
        self.tasks.retain(|_, t| !t.drained());
        let tasks = &self.tasks;
        self.endpoints
            .retain(|(task, _), ep| ep.routed.load(SeqCst) || tasks.contains_key(task));
    }
}
