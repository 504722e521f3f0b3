//! The one body type the proxy sends both ways: a streamed hyper body (never buffered), a
//! small fixed body, or nothing; a response body also carries its request's in-flight
//! guard and backend connection, released when the body ends or is dropped.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use std::sync::Arc;

use crate::backend::Flight;
use crate::metrics::ErrorKind;
use crate::pool::{Busy, Lease, LocalPool};

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Stream(Incoming),
}

/// What ends with a response body: the in-flight count, the latency sample and the
/// backend connection's stay out of the pool.
pub(crate) struct Done {
    flight: Flight,
    lease: Lease,
    pool: Arc<LocalPool>,
    start: Instant,
}

impl Done {
    /// The response to a request started at `start` came over `lease`, from `pool`.
    pub(crate) fn new(flight: Flight, lease: Lease, pool: Arc<LocalPool>, start: Instant) -> Done {
        Done {
            flight,
            lease,
            pool,
            start,
        }
    }
}

/// A request or response body.
pub(crate) struct ProxyBody {
    kind: Kind,
    done: Option<Done>,
    /// Keeps the client connection from counting as idle until the body is gone.
    busy: Option<Busy>,
}

impl ProxyBody {
    /// No body.
    pub(crate) fn empty() -> ProxyBody {
        ProxyBody {
            kind: Kind::Empty,
            done: None,
            busy: None,
        }
    }

    /// A fixed body.
    pub(crate) fn full(bytes: Bytes) -> ProxyBody {
        ProxyBody {
            kind: Kind::Full(Some(bytes)),
            done: None,
            busy: None,
        }
    }

    /// A streamed body, forwarded frame by frame.
    pub(crate) fn stream(body: Incoming) -> ProxyBody {
        ProxyBody {
            kind: Kind::Stream(body),
            done: None,
            busy: None,
        }
    }

    /// A streamed response body that releases `done` when it ends.
    pub(crate) fn response(body: Incoming, done: Done) -> ProxyBody {
        ProxyBody {
            kind: Kind::Stream(body),
            done: Some(done),
            busy: None,
        }
    }

    /// Marks the client connection busy while this body exists.
    pub(crate) fn set_busy(&mut self, busy: Busy) {
        self.busy = Some(busy);
    }

    /// Ends the request: records its latency and, when the backend's response was read to
    /// the end, pools the connection again.
    fn finish(&mut self, complete: bool) {
        if let Some(Done {
            flight,
            lease,
            pool,
            start,
        }) = self.done.take()
        {
            let endpoint = flight.endpoint();
            endpoint.task.observe(start.elapsed());
            if complete {
                pool.checkin(endpoint, lease);
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Stream(body) => Pin::new(body).poll_frame(cx),
        };
        if this.done.is_some() {
            match &polled {
                Poll::Ready(None) => this.finish(true),
                Poll::Ready(Some(Ok(_))) if this.is_end_stream() => this.finish(true),
                Poll::Ready(Some(Err(_))) => {
                    if let Some(done) = &this.done {
                        done.flight.endpoint().task.errors.record(ErrorKind::Reset);
                    }
                    this.finish(false);
                }
                _ => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(bytes) => bytes.is_none(),
            Kind::Stream(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Stream(body) => body.size_hint(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // Dropped before its end was polled: complete only if nothing was left to read.
        let complete = self.is_end_stream();
        self.finish(complete);
    }
}
