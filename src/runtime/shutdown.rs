//! A shard-local one-shot signal with async waiters: set once, awaited by many. The shard's
//! drain signal (set when SIGINT/SIGTERM arrives; awaited by accept loops and idle keep-alive
//! connections) and each session's "ended" signal (awaited by its GET streams) are both one.
//!
//! Waiters are bounded by the futures alive right now: a [`Draining`] future frees its slot
//! when it is dropped, so a connection that waited and went away leaves nothing behind.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Shard-local one-shot signal (`!Send`; shared as `Rc<ShutdownSignal>` or by reference).
#[derive(Default)]
pub struct ShutdownSignal {
    draining: Cell<bool>,
    /// One slot per live waiter; `None` slots are free and reused before the list grows.
    waiters: RefCell<Vec<Option<Waker>>>,
    /// Indexes of the free slots, so registering a waiter is O(1) however many wait.
    free: RefCell<Vec<usize>>,
}

impl ShutdownSignal {
    /// True once the signal is set (for the drain signal: finish the current response, then
    /// close).
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    /// Sets the signal and wakes every waiter. Idempotent.
    pub fn start_draining(&self) {
        self.draining.set(true);
        let wakers: Vec<Waker> = self
            .waiters
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    /// Resolves when the signal is set (immediately if it already is).
    pub fn wait(&self) -> Draining<'_> {
        Draining {
            signal: self,
            slot: None,
        }
    }

    /// Waiters registered right now.
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().iter().filter(|w| w.is_some()).count()
    }
}

/// Future returned by [`ShutdownSignal::wait`]; holds a waiter slot while pending.
pub struct Draining<'a> {
    signal: &'a ShutdownSignal,
    slot: Option<usize>,
}

impl Future for Draining<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_draining() {
            return Poll::Ready(());
        }
        let mut waiters = self.signal.waiters.borrow_mut();
        match self.slot {
            Some(slot) => waiters[slot] = Some(cx.waker().clone()),
            None => {
                let slot = self.signal.free.borrow_mut().pop().unwrap_or_else(|| {
                    waiters.push(None);
                    waiters.len() - 1
                });
                waiters[slot] = Some(cx.waker().clone());
                drop(waiters);
                self.slot = Some(slot);
            }
        }
        Poll::Pending
    }
}

impl Drop for Draining<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.signal.waiters.borrow_mut()[slot] = None;
            self.signal.free.borrow_mut().push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    fn poll_once(future: &mut Draining<'_>) -> Poll<()> {
        let waker = Waker::from(Arc::new(Noop));
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn waiters_that_went_away_leave_no_slot_behind() {
        let signal = ShutdownSignal::default();
        for _ in 0..10_000 {
            let mut waiting = signal.wait();
            assert!(poll_once(&mut waiting).is_pending());
        }
        assert_eq!(signal.waiters(), 0);
        assert!(
            signal.waiters.borrow().len() <= 1,
            "slots are reused, not appended"
        );
    }

    #[test]
    fn setting_the_signal_releases_every_live_waiter() {
        let signal = ShutdownSignal::default();
        let mut first = signal.wait();
        let mut second = signal.wait();
        assert!(poll_once(&mut first).is_pending());
        assert!(poll_once(&mut second).is_pending());
        assert_eq!(signal.waiters(), 2);
        signal.start_draining();
        assert!(poll_once(&mut first).is_ready());
        assert!(poll_once(&mut second).is_ready());
        assert!(
            poll_once(&mut signal.wait()).is_ready(),
            "a late waiter sees it at once"
        );
    }
}
