//! The data plane's threads: HTTP client connections are served on a few threads of the
//! proxy's own, each a single-threaded runtime with its own reactor, like HAProxy's
//! threads. A connection stays on the thread it was handed to, with its backend sockets
//! (pooled per thread), so a request never crosses threads and no thread steals work
//! from another: on a busy machine that saves about as much CPU per request as the whole
//! user-space part of the proxy costs (see `docs/perf.md`).
//!
//! A thread ends when the proxy is gone (its last handle and connection dropped).

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use tokio::sync::mpsc;

/// Work handed to a shard: one client connection.
pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Most shards, whatever the core count.
const MAX_SHARDS: usize = 8;

thread_local! {
    /// The index of the shard this thread runs (0 elsewhere).
    static SHARD: Cell<usize> = const { Cell::new(0) };
}

/// The shard the calling thread belongs to (0 when it is not a shard's).
pub(crate) fn current() -> usize {
    SHARD.with(Cell::get)
}

/// The shard threads, fed round robin.
pub(crate) struct Shards {
    senders: Vec<mpsc::UnboundedSender<Job>>,
    next: AtomicUsize,
}

impl Shards {
    /// One shard per core (at most [`MAX_SHARDS`]); fewer when threads cannot be made.
    pub(crate) fn start() -> Shards {
        let n = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .min(MAX_SHARDS);
        let mut senders = Vec::with_capacity(n);
        for index in 0..n {
            let (tx, rx) = mpsc::unbounded_channel::<Job>();
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build a proxy thread's runtime");
                    break;
                }
            };
            let spawned = std::thread::Builder::new()
                .name(format!("slipway-proxy-{index}"))
                .spawn(move || {
                    SHARD.with(|s| s.set(index));
                    runtime.block_on(run(rx));
                });
            match spawned {
                Ok(_) => senders.push(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a proxy thread");
                    break;
                }
            }
        }
        Shards {
            senders,
            next: AtomicUsize::new(0),
        }
    }

    /// How many shards there are (at least 1 for sizing per-shard pools).
    pub(crate) fn count(&self) -> usize {
        self.senders.len().max(1)
    }

    /// Runs `job` on the next shard, or on the caller's runtime when there is none.
    pub(crate) fn spawn(&self, job: Job) {
        let job = match self.senders.len() {
            0 => job,
            n => {
                let i = self.next.fetch_add(1, Relaxed) % n;
                match self.senders[i].send(job) {
                    Ok(()) => return,
                    Err(mpsc::error::SendError(job)) => job,
                }
            }
        };
        tokio::spawn(job);
    }
}

/// A shard's loop: runs the jobs it gets until the proxy is dropped.
async fn run(mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        tokio::spawn(job);
    }
}
