//! Polls a client connection and its backend connections together, in one task, and
//! keeps going while they wake each other.
//!
//! Proxying one request takes several hand-offs between the client connection, the
//! request handler and the backend connection (request sent, response head, body chunk).
//! Each hand-off wakes the task; through the scheduler every wake would be another trip
//! round the runtime and another poll of everything. Here the futures get a waker of
//! our own: a wake while we are polling just sets a flag, and we poll again at once,
//! until nothing woke (or the runtime's cooperative budget is spent). A wake from
//! outside a poll (a socket, another thread) goes to the task as usual.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

use crate::pool::{Driver, Event};

/// Most extra rounds in one poll before yielding to the runtime.
const MAX_ROUNDS: usize = 16;

/// Which side a waker belongs to.
const SERVED: usize = 0;
const DRIVER: usize = 1;

/// Wake flags of one client connection.
struct Signal {
    /// Per side: something woke it since it was last polled.
    woken: [AtomicBool; 2],
    /// A poll is in progress: it will look at `woken` before returning.
    polling: AtomicBool,
    /// The task's own waker.
    task: AtomicWaker,
}

/// The waker one side's futures see.
struct SideWaker {
    signal: Arc<Signal>,
    side: usize,
}

impl Wake for SideWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Flag first, then check: either the poll in progress sees the flag after it
        // clears `polling`, or this sees `polling` cleared and wakes the task.
        let signal = &self.signal;
        signal.woken[self.side].store(true, SeqCst);
        if !signal.polling.load(SeqCst) {
            signal.task.wake();
        }
    }
}

/// What ended a [`Turns::next`].
pub(crate) enum Outcome<T> {
    /// The client connection finished.
    Served(T),
    /// The driver reported an event.
    Event(Event),
}

/// The combined poller of one client connection.
pub(crate) struct Turns {
    signal: Arc<Signal>,
    wakers: [Waker; 2],
}

impl Turns {
    /// A poller with its own wakers.
    pub(crate) fn new() -> Turns {
        let signal = Arc::new(Signal {
            // Both sides are polled the first time.
            woken: [AtomicBool::new(true), AtomicBool::new(true)],
            polling: AtomicBool::new(false),
            task: AtomicWaker::new(),
        });
        let waker = |side| {
            Waker::from(Arc::new(SideWaker {
                signal: Arc::clone(&signal),
                side,
            }))
        };
        let wakers = [waker(SERVED), waker(DRIVER)];
        Turns { signal, wakers }
    }

    /// Makes the next [`Turns::next`] poll both sides (e.g. after a graceful shutdown was
    /// requested, which wakes nothing by itself).
    pub(crate) fn poke(&self) {
        for woken in &self.signal.woken {
            woken.store(true, SeqCst);
        }
    }

    fn poll_both<F: Future>(
        &self,
        cx: &mut Context<'_>,
        mut served: Pin<&mut F>,
        driver: &mut Driver,
    ) -> Poll<Outcome<F::Output>> {
        let signal = &self.signal;
        signal.task.register(cx.waker());
        for _ in 0..MAX_ROUNDS {
            signal.polling.store(true, SeqCst);
            let mut polled = Poll::Pending;
            // The backend side first: a response it just read reaches the handler in
            // the same round.
            if signal.woken[DRIVER].swap(false, SeqCst) {
                let mut cx = Context::from_waker(&self.wakers[DRIVER]);
                polled = driver.poll_event(&mut cx).map(Outcome::Event);
            }
            if polled.is_pending() && signal.woken[SERVED].swap(false, SeqCst) {
                let mut cx = Context::from_waker(&self.wakers[SERVED]);
                polled = served.as_mut().poll(&mut cx).map(Outcome::Served);
            }
            signal.polling.store(false, SeqCst);
            let again = signal.woken.iter().any(|w| w.load(SeqCst));
            if polled.is_ready() {
                if again {
                    cx.waker().wake_by_ref();
                }
                return polled;
            }
            if !again {
                return Poll::Pending;
            }
            if !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        // Woken but out of rounds or budget: let the runtime poll us again later.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Polls `served` and `driver` until one of them has something to report.
    pub(crate) fn next<'a, F: Future>(
        &'a self,
        mut served: Pin<&'a mut F>,
        driver: &'a mut Driver,
    ) -> impl Future<Output = Outcome<F::Output>> + 'a {
        std::future::poll_fn(move |cx| self.poll_both(cx, served.as_mut(), driver))
    }
}
