//! Listeners: binding (with `SO_REUSEADDR`, so a port can be reopened at once), the
//! accept loop, handing each connection to the HTTP side or, in TCP mode, joining it to
//! one backend connection and copying bytes both ways (a backend that cannot be reached
//! is marked down and the next one is tried).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fast;
use crate::labels::Mode;
use crate::proxy::Shared;

/// Pending connections the kernel queues per listener.
const BACKLOG: u32 = 1024;

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The service listener of one port.
    Port(u16),
    /// The shared HTTP vhost listener.
    Vhost,
}

/// A running listener.
pub(crate) struct Listener {
    token: CancellationToken,
    task: JoinHandle<()>,
}

impl Listener {
    /// Stops accepting and waits until the socket is closed; accepted connections go on
    /// (HTTP ones finish their current request, then close).
    pub(crate) async fn close(self) {
        self.token.cancel();
        let _ = self.task.await;
    }
}

/// Binds `addr` with `SO_REUSEADDR`.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Starts accepting on `listener` for `target` until `token` (a child of the proxy's stop
/// token) is cancelled.
pub(crate) fn start(
    shared: &Arc<Shared>,
    listener: TcpListener,
    target: Target,
    token: CancellationToken,
) -> Listener {
    let task = shared.tracker.spawn(accept_loop(
        Arc::clone(shared),
        listener,
        target,
        token.clone(),
    ));
    Listener { token, task }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    target: Target,
    token: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = token.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, ?target, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let mode = match target {
            Target::Vhost => Some(Mode::Http),
            Target::Port(port) => shared.table().port_mode(port),
        };
        match (mode, target) {
            (Some(Mode::Http), _) => {
                // Served on a data-plane thread: the socket moves to its reactor.
                let Ok(stream) = stream.into_std() else {
                    continue;
                };
                let job = fast::serve(Arc::clone(&shared), stream, peer, target, token.clone());
                shared
                    .shards
                    .spawn(Box::pin(shared.tracker.track_future(job)));
            }
            (Some(Mode::Tcp), Target::Port(port)) => {
                shared
                    .tracker
                    .spawn(serve_tcp(Arc::clone(&shared), stream, port));
            }
            _ => drop(stream),
        }
    }
}

/// Serves one client connection of the service listener on `port`.
async fn serve_tcp(shared: Arc<Shared>, mut client: TcpStream, port: u16) {
    let _ = client.set_nodelay(true);
    let mut table = shared.table();
    let mut tried: Vec<usize> = Vec::new();
    for _ in 0..64 {
        let Some(route) = table.ports.get(&port) else {
            return;
        };
        let Some(ep) = route.pick(&tried).cloned() else {
            tracing::debug!(port, app = %route.app.app_id, "no backend for a TCP connection");
            return;
        };
        let Some(flight) = ep.acquire() else {
            // It left the table since the snapshot was taken: look again.
            table = shared.table();
            continue;
        };
        let mut backend = match ep.connect_tcp().await {
            Ok(stream) => stream,
            Err(kind) => {
                ep.mark_down(kind);
                tried.push(Arc::as_ptr(&ep) as usize);
                continue;
            }
        };
        ep.task.connections.fetch_add(1, Relaxed);
        tokio::select! {
            res = tokio::io::copy_bidirectional(&mut client, &mut backend) => {
                if let Err(e) = res {
                    tracing::debug!(error = %e, backend = %ep.addr, "TCP connection ended");
                }
            }
            () = shared.abort.cancelled() => {}
        }
        drop(flight);
        return;
    }
}
