//! Backend connections driven by the client connection's own task.
//!
//! A hyper client connection is a future that must be polled. Instead of one task per
//! backend connection (a cross-task, often cross-thread, hop for every request and every
//! body chunk), each client connection owns the backend connections it uses and polls
//! them in its own task through a [`Driver`]. When the client connection ends, its idle
//! backend connections are parked, unpolled, in their endpoint's pool, and the next
//! client connection that takes one drives it from then on. A parked connection that the
//! backend closed meanwhile fails before the request is written, and the request is
//! simply sent again elsewhere.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hyper::client::conn::http1::{Builder, SendRequest};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::backend::Endpoint;
use crate::body::ProxyBody;
use crate::metrics::ErrorKind;

/// A backend connection's future, tagged so it can find its `SendRequest` again.
pub(crate) struct Pooled {
    id: u64,
    conn: BoxFuture<'static, hyper::Result<()>>,
}

impl Future for Pooled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.conn.as_mut().poll(cx).map(|res| {
            if let Err(e) = res {
                tracing::debug!(error = %e, "backend connection ended");
            }
        })
    }
}

/// A backend connection lent to one request.
pub(crate) struct Lease {
    /// Sends the request.
    pub(crate) sender: SendRequest<ProxyBody>,
    id: u64,
    /// It was parked (unpolled) until now, so it may turn out closed.
    pub(crate) parked: bool,
}

struct LocalIdle {
    ep: Arc<Endpoint>,
    sender: SendRequest<ProxyBody>,
    id: u64,
}

#[derive(Default)]
struct Inner {
    idle: Vec<LocalIdle>,
    adopted: Vec<Pooled>,
    waker: Option<Waker>,
    closed: bool,
}

/// The backend connections of one client connection, and its activity. Only that
/// connection's task uses it, so its lock is never contended.
#[derive(Default)]
pub(crate) struct LocalPool {
    inner: Mutex<Inner>,
    /// Requests started or finished on the client connection.
    activity: AtomicU64,
    /// Requests whose response has not been sent yet.
    busy: AtomicUsize,
}

/// A request being served on a client connection; dropping it ends it.
pub(crate) struct Busy(Arc<LocalPool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.activity.fetch_add(1, Relaxed);
        self.0.busy.fetch_sub(1, Relaxed);
    }
}

impl LocalPool {
    /// Counts a request as started; it is in progress until the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.activity.fetch_add(1, Relaxed);
        self.busy.fetch_add(1, Relaxed);
        Busy(Arc::clone(self))
    }

    /// Whether the connection did nothing since `seen` (its activity count then) and
    /// serves no request; returns the count now.
    fn idle_since(&self, seen: u64) -> (bool, u64) {
        let now = self.activity.load(Relaxed);
        (now == seen && self.busy.load(Relaxed) == 0, now)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands a connection future to the driver.
    fn adopt(&self, pooled: Pooled) {
        let mut inner = self.lock();
        inner.adopted.push(pooled);
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
    }

    /// A connection to `ep`: this client connection's idle one, a parked one, or new.
    pub(crate) async fn checkout(&self, ep: &Arc<Endpoint>) -> Result<Lease, ErrorKind> {
        loop {
            let found = {
                let mut inner = self.lock();
                inner
                    .idle
                    .retain(|c| !c.sender.is_closed() && c.ep.routed.load(Relaxed));
                let at = inner.idle.iter().position(|c| Arc::ptr_eq(&c.ep, ep));
                at.map(|i| inner.idle.swap_remove(i))
            };
            let Some(LocalIdle { mut sender, id, .. }) = found else {
                break;
            };
            if sender.is_ready() || sender.ready().await.is_ok() {
                return Ok(Lease {
                    sender,
                    id,
                    parked: false,
                });
            }
        }
        if let Some((sender, pooled)) = ep.take_parked() {
            let id = pooled.id;
            self.adopt(pooled);
            return Ok(Lease {
                sender,
                id,
                parked: true,
            });
        }
        let stream = ep.connect_tcp().await?;
        let (sender, conn) = Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Connect)?;
        static IDS: AtomicU64 = AtomicU64::new(0);
        let id = IDS.fetch_add(1, Relaxed);
        self.adopt(Pooled {
            id,
            conn: Box::pin(conn.with_upgrades()),
        });
        Ok(Lease {
            sender,
            id,
            parked: false,
        })
    }

    /// Takes back a connection whose response was read to the end.
    pub(crate) fn checkin(&self, ep: &Arc<Endpoint>, lease: Lease) {
        if lease.sender.is_closed() || !ep.routed.load(Relaxed) {
            return;
        }
        let mut inner = self.lock();
        if !inner.closed {
            inner.idle.push(LocalIdle {
                ep: Arc::clone(ep),
                sender: lease.sender,
                id: lease.id,
            });
        }
    }
}

/// What the driver reports to the client connection's loop.
pub(crate) enum Event {
    /// The listener closed: finish the request in progress, then close.
    Close,
    /// The shutdown grace period is over: close now.
    Abort,
    /// Nothing happened on the connection for an idle timeout: close it.
    Idle,
}

/// Polls a client connection's backend connections and its cancellation signals; each
/// is polled only when it was woken.
pub(crate) struct Driver {
    local: Arc<LocalPool>,
    conns: FuturesUnordered<Pooled>,
    events: FuturesUnordered<BoxFuture<'static, Event>>,
}

impl Driver {
    /// A driver for `local`, reporting `close`, `abort` and no request started, finished
    /// or in progress for a whole `idle` period (so a connection is closed after one to
    /// two idle timeouts of doing nothing, e.g. never finishing a request head).
    pub(crate) fn new(
        local: Arc<LocalPool>,
        close: CancellationToken,
        abort: CancellationToken,
        idle: Duration,
    ) -> Driver {
        let events = FuturesUnordered::new();
        events.push(Box::pin(async move {
            close.cancelled_owned().await;
            Event::Close
        }) as BoxFuture<'static, Event>);
        events.push(Box::pin(async move {
            abort.cancelled_owned().await;
            Event::Abort
        }));
        let watched = Arc::clone(&local);
        events.push(Box::pin(async move {
            let mut seen = u64::MAX;
            loop {
                tokio::time::sleep(idle).await;
                let (idle, now) = watched.idle_since(seen);
                if idle {
                    return Event::Idle;
                }
                seen = now;
            }
        }));
        Driver {
            local,
            conns: FuturesUnordered::new(),
            events,
        }
    }

    /// Reports [`Event::Abort`] after `after`.
    pub(crate) fn deadline(&mut self, after: Duration) {
        self.events.push(Box::pin(async move {
            tokio::time::sleep(after).await;
            Event::Abort
        }));
    }

    /// Drives the backend connections; ready with an event when one fired.
    pub(crate) fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        {
            let mut inner = self.local.lock();
            if !inner
                .waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                inner.waker = Some(cx.waker().clone());
            }
            self.conns.extend(inner.adopted.drain(..));
        }
        while let Poll::Ready(Some(())) = self.conns.poll_next_unpin(cx) {}
        match self.events.poll_next_unpin(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(event),
            _ => Poll::Pending,
        }
    }

    /// Ends the client connection: idle backend connections are parked in their
    /// endpoints' pools; busy ones (an upgrade being handed over, an aborted body) are
    /// left to finish in a task of their own.
    pub(crate) fn release(mut self) {
        let (idle, adopted) = {
            let mut inner = self.local.lock();
            inner.closed = true;
            inner.waker = None;
            (
                std::mem::take(&mut inner.idle),
                std::mem::take(&mut inner.adopted),
            )
        };
        self.conns.extend(adopted);
        let mut idle: HashMap<u64, LocalIdle> = idle.into_iter().map(|c| (c.id, c)).collect();
        let busy: FuturesUnordered<Pooled> = FuturesUnordered::new();
        for pooled in self.conns {
            match idle.remove(&pooled.id) {
                Some(c) => c.ep.park(c.sender, pooled),
                None => busy.push(pooled),
            }
        }
        if !busy.is_empty() {
            tokio::spawn(busy.collect::<()>());
        }
    }
}
