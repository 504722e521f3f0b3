//! Slipway's edge load balancer: routes client traffic to the healthy tasks the engine
//! knows about, with no reloads and no dropped connections, and tells the engine when a
//! task it wants to kill has drained.
//!
//! The engine hands [`Proxy::update`] the whole route table as plain [`AppEndpoints`];
//! the proxy swaps it in atomically. Every client connection keeps a snapshot of the table
//! and refreshes it with one atomic version check per request, so the hot path takes no
//! shared lock. Backend connections are pooled and kept alive; bodies stream both ways.
//!
//! # Labels
//!
//! Per app and port index `n`, marathon-lb's labels are honoured; Slipway's own names win
//! when both are set.
//!
//! | marathon-lb label | Slipway label | meaning | default |
//! | --- | --- | --- | --- |
//! | `HAPROXY_{n}_MODE` | `SLIPWAY_{n}_MODE` | `http` or `tcp` | `http` with a vhost, else `tcp` |
//! | `HAPROXY_{n}_PORT` | `SLIPWAY_{n}_PORT` | bind port of the service listener | the servicePort (0 = none) |
//! | `HAPROXY_GROUP` | `SLIPWAY_GROUP` | comma list of groups of the app | none |
//! | `HAPROXY_{n}_GROUP` | `SLIPWAY_{n}_GROUP` | groups of port `n`, overrides the app's | the app's |
//! | `HAPROXY_{n}_VHOST` | `SLIPWAY_{n}_VHOST` | comma list of host names on the vhost listener | none |
//! | `HAPROXY_{n}_PATH` | `SLIPWAY_{n}_PATH` | path prefix on the vhost listener | any path |
//! | `HAPROXY_{n}_BALANCE` | `SLIPWAY_{n}_BALANCE` | `roundrobin` or `leastconn` | `roundrobin` |
//!
//! With [`ProxyConfig::groups`] empty (or containing `*`) every app is served; otherwise
//! only ports whose group list shares a group with it. Vhosts only apply in `http` mode.
//!
//! # Responses the proxy makes itself
//!
//! * `404` on the vhost listener when no vhost (and path) matches the request's `Host`;
//! * `503` when the matched route has no backend;
//! * `502` when every attempt to reach a backend failed.
//!
//! # Failures and retries
//!
//! A backend that cannot be connected to (refused, unreachable, connect timeout) is
//! marked down for two seconds and the request goes to the next backend; this is always
//! safe, as nothing was sent. A request that failed after it was sent is sent again,
//! elsewhere, only when it is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) and has
//! no body. At most one attempt per backend. A down backend is still used when no other
//! is left.
//!
//! # In flight and drained
//!
//! An HTTP request is in flight for its backend from dispatch until its response body
//! was read to the end or the client went away; a TCP or upgraded connection until it
//! closes. [`Proxy::drained`] pairs with dispatch through sequentially consistent atomics,
//! so once it returned true no request can still reach the task.
//!
//! # Hot path
//!
//! HTTP client connections are served on the proxy's own data-plane threads (`shard`:
//! one single-threaded runtime per core, at most 8), each connection and its backend
//! sockets on one thread, so a request never crosses threads. Plain HTTP/1.1 takes the
//! fast path (`fast`): request heads parsed with `httparse` and rewritten as the hyper path
//! would, relayed with their bodies (as framed: `Content-Length`, chunked, or until close,
//! then re-chunked) over raw keep-alive backend sockets. Anything else (upgrades,
//! `Expect`, HTTP/1.0, odd framing, malformed or huge heads) is handed, with the bytes
//! already read, to the hyper path (`http`), which keeps the connection from then on. Per
//! request: one atomic version check of the connection's table snapshot, a round robin
//! counter (or a scan of in-flight counts), in-flight counters, and lock-free metrics.
//! Idle backend connections outlive their client connection parked in a pool per
//! endpoint and thread ([`Proxy::set_fast_path`] turns the fast path off). Idle client
//! connections are closed after one to two idle timeouts without a request; one that
//! closes its side while its request is answered gives the request up, as hyper does.

mod backend;
mod body;
mod drive;
mod fast;
mod haproxy;
mod headers;
mod http;
mod labels;
mod listener;
mod metrics;
mod pool;
mod proxy;
mod shard;
mod table;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

pub use proxy::{Proxy, SHUTDOWN_GRACE};
pub use tokio_util::sync::CancellationToken;

// What the proxy routes to: defined in `model`, so the engine that computes them and the
// proxy that serves them share the types without depending on each other.
pub use model::endpoints::{AppEndpoints, Backend, PortEndpoints};

/// How the proxy listens and talks to backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The IP the service-port listeners bind (default 127.0.0.1).
    pub bind_ip: IpAddr,
    /// The address of the shared HTTP vhost listener, if any.
    pub vhost_listen: Option<SocketAddr>,
    /// The groups served; empty (or `*`) serves every app.
    pub groups: Vec<String>,
    /// Bound on establishing a backend connection.
    pub connect_timeout: Duration,
    /// How long an idle keep-alive connection (client or pooled backend) is kept.
    pub idle_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            vhost_listen: None,
            groups: Vec::new(),
            connect_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(50),
        }
    }
}

/// What [`Proxy::update`] reports; each error concerns one listener or label only.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listener could not be opened (typically: the port is in use).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Two apps claim the same service port; the first (by app id) keeps it.
    #[error("port {port} of {app} is already used by {owner}")]
    PortConflict {
        /// The contested port.
        port: u16,
        /// The app that did not get it.
        app: String,
        /// The app that has it.
        owner: String,
    },
    /// A label has a value the proxy does not understand; the default is used.
    #[error("app {app}: invalid label {label}={value}")]
    InvalidLabel {
        /// The app carrying the label.
        app: String,
        /// The label's name.
        label: String,
        /// Its value.
        value: String,
    },
}
