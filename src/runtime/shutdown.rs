//! The per-shard drain signal: set once when SIGINT/SIGTERM arrives, awaited by accept loops and
//! idle keep-alive connections so they stop at a safe point. Shard-local (`!Send`).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Shard-local shutdown flag with async waiters. Owned by one shard (`Rc<ShutdownSignal>`).
#[derive(Default)]
pub struct ShutdownSignal {
    draining: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl ShutdownSignal {
    /// True once draining has begun: finish the current response, then close.
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Starts draining and wakes every waiter. Idempotent.
    pub fn start_draining(&self) {
        self.draining.set(true);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    /// Resolves when draining begins (immediately if it already has).
    pub fn wait(&self) -> Draining<'_> {
        Draining { signal: self }
    }
}

/// Future returned by [`ShutdownSignal::wait`].
pub struct Draining<'a> {
    signal: &'a ShutdownSignal,
}

impl Future for Draining<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_draining() {
            return Poll::Ready(());
        }
        let mut waiters = self.signal.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
