//! A shard-local one-shot event with async waiters: set once, awaited by many. The shard's
//! drain (set when SIGINT/SIGTERM arrives; awaited by accept loops and idle keep-alive
//! connections), each session's end (awaited by its GET streams), a relay's cancellation and
//! "the merged lists changed" (replaced by a fresh event each time it fires) are all one.
//!
//! Waiters are bounded by the futures alive right now: a [`EventWait`] future frees its slot
//! when it is dropped, so a connection that waited and went away leaves nothing behind.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// Shard-local one-shot event (`!Send`; shared as `Rc<Event>` or by reference).
#[derive(Default)]
pub struct Event {
    set_once: Cell<bool>,
    /// One slot per live waiter; `None` slots are free and reused before the list grows.
    waiters: RefCell<Vec<Option<Waker>>>,
    /// Indexes of the free slots, so registering a waiter is O(1) however many wait.
    free: RefCell<Vec<usize>>,
}

impl Event {
    /// True once the signal is set (for the drain signal: finish the current response, then
    /// close).
    pub fn is_set(&self) -> bool {
        self.set_once.get()
    }

    /// Sets the signal and wakes every waiter. Idempotent.
    pub fn set(&self) {
        self.set_once.set(true);
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
    pub fn wait(&self) -> EventWait<'_> {
        EventWait {
            signal: self,
            slot: None,
        }
    }

    /// Waiters registered right now.
    pub fn waiters(&self) -> usize {
        self.waiters.borrow().iter().filter(|w| w.is_some()).count()
    }
}

/// Future returned by [`Event::wait`]; holds a waiter slot while pending.
pub struct EventWait<'a> {
    signal: &'a Event,
    slot: Option<usize>,
}

impl Future for EventWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.is_set() {
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

impl Drop for EventWait<'_> {
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

    fn poll_once(future: &mut EventWait<'_>) -> Poll<()> {
        let waker = Waker::from(Arc::new(Noop));
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn waiters_that_went_away_leave_no_slot_behind() {
        let signal = Event::default();
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
        let signal = Event::default();
        let mut first = signal.wait();
        let mut second = signal.wait();
        assert!(poll_once(&mut first).is_pending());
        assert!(poll_once(&mut second).is_pending());
        assert_eq!(signal.waiters(), 2);
        signal.set();
        assert!(poll_once(&mut first).is_ready());
        assert!(poll_once(&mut second).is_ready());
        assert!(
            poll_once(&mut signal.wait()).is_ready(),
            "a late waiter sees it at once"
        );
    }
}
