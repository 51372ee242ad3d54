//! Shard-local deadlines: one wheel of waiting `(deadline, waker)` pairs and one periodic sweep
//! that wakes the waits past their deadline, in place of a glommio timer per wait.
//!
//! Why: glommio keeps its timers in a per-reactor `BTreeMap`; each one is created, inserted,
//! polled, removed and dropped, with clock reads and an allocation, and a proxied call waits on
//! three deadlines (the connection's next read, the upstream's answer, the peer watch). Here a wait
//! whose work is ready at once costs nothing, and one that finishes before its deadline costs a
//! slot taken from a free list and given back.
//!
//! Ownership, glommio-style: the wheel is executor-local, a `thread_local` of the executor's
//! thread touched only by the tasks of the executor running there (on a shard, the shard's).
//! The sweep is one task on that same executor, started by the executor's first registration;
//! while anything waits it sleeps on one glommio timer from tick to tick, and while nothing
//! waits it is parked, with no timer. A later executor on the same thread starts afresh: the
//! waits an earlier one left behind are dropped unwoken.
//!
//! Precision: a wait ends at the first sweep that finds its deadline at or before
//! `Instant::now()`, so never early, and at most one [`TICK`] late (plus the executor's
//! scheduling latency).
//!
//! Bound: one slot per wait in progress, each slot ~64 bytes. Every task that waits here is
//! already capped by the config: a connection (`limits.connections_max` per shard) waits on
//! its next read, or its handler waits on the peer watch and the upstream's answer; a call in
//! flight (`pending.pending_max`), a forwarded request (`limits.forwarded_requests_max`) or an
//! upstream exchange (`pool_connections_max` and `pool_waiters_max` per upstream) waits on one
//! deadline at a time. So the slab needs no cap of its own: it grows to the peak number of
//! concurrent waits, a few per connection, keeps that size and reuses its slots.
//!
//! Cost: registering and deregistering are O(1) (a free list, and one doubly-linked list per
//! bucket threaded through the slots); a sweep visits the buckets of the ticks since the last
//! one: the waits due in them plus those due a whole number of turns (`BUCKETS` × [`TICK`])
//! later, which it passes over.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::config::bounds;

/// How often the sweep runs while anything waits, so how late at most a deadline is noticed.
/// 10 ms: a tenth of the shortest request-path deadline the config accepts (100 ms, e.g.
/// `limits.header_read_timeout_ms`), so a timeout is reported within 10 % of its value, while a
/// busy shard pays at most 100 sweeps a second and an idle one none.
pub const TICK: Duration = Duration::from_millis(TICK_MS);
const TICK_MS: u64 = 10;
const TICK_NANOS: u64 = TICK_MS * 1_000_000;

/// Buckets of the wheel, one per tick of a 2.56 s turn: a sweep looks only at the buckets of
/// the ticks it covers, and passes over a wait due `n` turns later `n` times. 256 heads take
/// 1 KiB, and a request-path deadline (seconds to minutes) is passed over a few times at most
/// per second of it.
const BUCKETS: u64 = 256;

/// No slot: the end of a bucket's list or of the free list.
const NIL: u32 = u32::MAX;

const _: () = assert!(BUCKETS.is_power_of_two());
const _: () = assert!(BUCKETS <= NIL as u64);
const _: () = assert!(TICK_MS * 10 <= bounds::HEADER_READ_TIMEOUT_MS.min as u64);
const _: () = assert!(TICK_MS * 10 <= bounds::BODY_READ_TIMEOUT_MS.min as u64);
const _: () = assert!(TICK_MS * 10 <= bounds::KEEPALIVE_IDLE_TIMEOUT_MS.min as u64);
const _: () = assert!(TICK_MS * 10 <= bounds::REQUEST_TIMEOUT_MS.min as u64);

thread_local! {
    static WHEEL: RefCell<Wheel> = RefCell::new(Wheel::new());
}

/// `work`'s output, or `None` once `deadline` has passed first. The first poll polls `work`
/// before anything else and registers the deadline only if `work` is pending; dropping the
/// returned future deregisters it. Work that is always ready when polled is never cut short:
/// a caller looping over such work checks the clock itself.
pub async fn race<F: Future>(deadline: Instant, work: F) -> Option<F::Output> {
    let mut work = pin!(work);
    let mut wait = Wait::new(deadline);
    poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        match wait.poll_passed(cx) {
            true => Poll::Ready(None),
            false => Poll::Pending,
        }
    })
    .await
}

/// Resolves once `deadline` has passed (up to one [`TICK`] after it).
pub async fn sleep_until(deadline: Instant) {
    let mut wait = Wait::new(deadline);
    poll_fn(|cx| match wait.poll_passed(cx) {
        true => Poll::Ready(()),
        false => Poll::Pending,
    })
    .await
}

/// Resolves once `duration` has passed from now (up to one [`TICK`] later).
pub async fn sleep(duration: Duration) {
    sleep_until(Instant::now() + duration).await
}

/// One wait's registration; deregistered when dropped.
struct Wait {
    deadline: Instant,
    key: Option<Key>,
}

impl Wait {
    fn new(deadline: Instant) -> Wait {
        Wait {
            deadline,
            key: None,
        }
    }

    /// True once the sweep found the deadline passed; else registers (first poll) or keeps
    /// the registration's waker current.
    fn poll_passed(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(key) = self.key {
            let (state, replaced) = WHEEL.with(|wheel| wheel.borrow_mut().refresh(key, cx.waker()));
            // Dropped outside the borrow: a waker's drop may run arbitrary code.
            drop(replaced);
            match state {
                Refresh::Waiting => return false,
                Refresh::Passed => return true,
                // An earlier executor's registration: register with this one.
                Refresh::Lost => self.key = None,
            }
        }
        let executor = glommio::executor().id();
        let (key, start, stale) = WHEEL.with(|wheel| {
            let mut wheel = wheel.borrow_mut();
            let stale = match wheel.executor == executor {
                true => Vec::new(),
                false => wheel.adopt(executor),
            };
            let key = wheel.insert(self.deadline, cx.waker().clone());
            (key, wheel.start_sweep(), stale)
        });
        drop(stale);
        self.key = Some(key);
        match start {
            Start::None => {}
            Start::Spawn => {
                glommio::spawn_local(sweep_task(executor)).detach();
            }
            Start::Wake(sweeper) => sweeper.wake(),
        }
        false
    }
}

impl Drop for Wait {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        // At thread exit the wheel may be gone before a future holding a registration.
        let waker = WHEEL
            .try_with(|wheel| wheel.borrow_mut().remove(key))
            .ok()
            .flatten();
        drop(waker);
    }
}

/// The sweep: parked while nothing waits; else, at each tick boundary, wakes the waits past
/// their deadline. Ends when another executor has adopted the wheel.
async fn sweep_task(executor: usize) {
    let mut expired = Vec::new();
    loop {
        let serving = poll_fn(|cx| WHEEL.with(|wheel| wheel.borrow_mut().park(executor, cx))).await;
        if !serving {
            return;
        }
        let pause = WHEEL.with(|wheel| wheel.borrow().until_next_tick(Instant::now()));
        glommio::timer::sleep(pause).await;
        let now = Instant::now();
        let current = WHEEL.with(|wheel| {
            let mut wheel = wheel.borrow_mut();
            let current = wheel.executor == executor;
            if current {
                wheel.sweep(now, &mut expired);
            }
            current
        });
        // Woken outside the borrow: a waker's wake may run arbitrary code.
        for waker in expired.drain(..) {
            waker.wake();
        }
        if !current {
            return;
        }
    }
}

/// A registration: a slot and the generation it had when taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    index: u32,
    generation: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    Free,
    /// Linked into the list of bucket `bucket`.
    Waiting,
    /// Found past its deadline by a sweep and unlinked; freed when its wait is dropped.
    Passed,
}

struct Slot {
    deadline: Instant,
    waker: Option<Waker>,
    /// Bumped each time the slot is freed, so an older key no longer matches.
    generation: u32,
    state: SlotState,
    bucket: u32,
    /// Neighbours in the bucket's list (`next` also links the free list).
    prev: u32,
    next: u32,
}

enum Sweeper {
    /// No sweep task on this executor yet.
    Absent,
    /// Sleeping to the next tick, or about to.
    Running,
    /// Nothing waits; woken by the next registration.
    Parked(Waker),
}

enum Start {
    None,
    Spawn,
    Wake(Waker),
}

enum Refresh {
    Waiting,
    Passed,
    Lost,
}

struct Wheel {
    slots: Vec<Slot>,
    /// First free slot.
    free: u32,
    /// First waiting slot of each bucket.
    heads: [u32; BUCKETS as usize],
    /// Slots in state `Waiting`.
    waiting: u32,
    /// Slots not `Free`: `Waiting` or `Passed`.
    taken: u32,
    /// Tick 0 starts here; tick `k` ends at `origin + k × TICK`.
    origin: Instant,
    /// The last tick a sweep covered.
    swept: u64,
    /// The glommio executor id the wheel serves; 0 (no executor has that id) before the first.
    executor: usize,
    sweeper: Sweeper,
}

impl Wheel {
    fn new() -> Wheel {
        Wheel {
            slots: Vec::new(),
            free: NIL,
            heads: [NIL; BUCKETS as usize],
            waiting: 0,
            taken: 0,
            origin: Instant::now(),
            swept: 0,
            executor: 0,
            sweeper: Sweeper::Absent,
        }
    }

    /// Serves `executor` from now on; an earlier executor's registrations are freed and their
    /// wakers returned, to be dropped unwoken outside the borrow.
    #[cold]
    fn adopt(&mut self, executor: usize) -> Vec<Waker> {
        assert_ne!(self.executor, executor);
        let mut stale = Vec::new();
        for index in 0..self.slots.len() as u32 {
            if self.slots[index as usize].state != SlotState::Free {
                stale.extend(self.free_slot(index));
            }
        }
        assert_eq!(self.taken, 0);
        assert_eq!(self.waiting, 0);
        self.heads = [NIL; BUCKETS as usize];
        self.origin = Instant::now();
        self.swept = 0;
        self.executor = executor;
        if let Sweeper::Parked(waker) = std::mem::replace(&mut self.sweeper, Sweeper::Absent) {
            stale.push(waker);
        }
        stale
    }

    fn insert(&mut self, deadline: Instant, waker: Waker) -> Key {
        let index = match self.free {
            NIL => {
                let index = u32::try_from(self.slots.len()).expect("deadline slots fit in u32");
                assert!(index < NIL);
                self.slots.push(Slot {
                    deadline,
                    waker: None,
                    generation: 0,
                    state: SlotState::Free,
                    bucket: 0,
                    prev: NIL,
                    next: NIL,
                });
                index
            }
            index => {
                self.free = self.slots[index as usize].next;
                index
            }
        };
        // Due at the first tick boundary at or after the deadline, and never in a tick already
        // swept: a deadline already passed is found by the next sweep.
        let due = self.tick_ceil(deadline).max(self.swept + 1);
        let bucket = (due % BUCKETS) as u32;
        let head = self.heads[bucket as usize];
        let slot = &mut self.slots[index as usize];
        assert_eq!(slot.state, SlotState::Free);
        slot.deadline = deadline;
        slot.waker = Some(waker);
        slot.state = SlotState::Waiting;
        slot.bucket = bucket;
        slot.prev = NIL;
        slot.next = head;
        let generation = slot.generation;
        if head != NIL {
            self.slots[head as usize].prev = index;
        }
        self.heads[bucket as usize] = index;
        self.waiting += 1;
        self.taken += 1;
        Key { index, generation }
    }

    /// The state of `key`'s wait, after making its waker `waker` if it was another; the waker
    /// replaced is returned, to be dropped outside the borrow.
    fn refresh(&mut self, key: Key, waker: &Waker) -> (Refresh, Option<Waker>) {
        let Some(slot) = self.slot_of(key) else {
            return (Refresh::Lost, None);
        };
        match slot.state {
            SlotState::Passed => (Refresh::Passed, None),
            SlotState::Free => unreachable!("a matching key names a taken slot"),
            SlotState::Waiting => match &slot.waker {
                Some(current) if current.will_wake(waker) => (Refresh::Waiting, None),
                _ => (Refresh::Waiting, slot.waker.replace(waker.clone())),
            },
        }
    }

    /// Frees `key`'s slot (if still its own); returns its waker, to be dropped outside the
    /// borrow.
    fn remove(&mut self, key: Key) -> Option<Waker> {
        self.slot_of(key)?;
        self.free_slot(key.index)
    }

    fn slot_of(&mut self, key: Key) -> Option<&mut Slot> {
        let slot = self.slots.get_mut(key.index as usize)?;
        let matches = slot.generation == key.generation && slot.state != SlotState::Free;
        matches.then_some(slot)
    }

    fn free_slot(&mut self, index: u32) -> Option<Waker> {
        if self.slots[index as usize].state == SlotState::Waiting {
            self.unlink(index);
        }
        let free = self.free;
        let slot = &mut self.slots[index as usize];
        assert_ne!(slot.state, SlotState::Free);
        slot.state = SlotState::Free;
        slot.generation = slot.generation.wrapping_add(1);
        slot.next = free;
        self.free = index;
        self.taken -= 1;
        slot.waker.take()
    }

    fn unlink(&mut self, index: u32) {
        let slot = &self.slots[index as usize];
        assert_eq!(slot.state, SlotState::Waiting);
        let (prev, next, bucket) = (slot.prev, slot.next, slot.bucket);
        match prev {
            NIL => self.heads[bucket as usize] = next,
            prev => self.slots[prev as usize].next = next,
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        }
        self.waiting -= 1;
    }

    /// What the registration just made asks of the sweep task.
    fn start_sweep(&mut self) -> Start {
        assert!(self.waiting > 0);
        match std::mem::replace(&mut self.sweeper, Sweeper::Running) {
            Sweeper::Running => Start::None,
            Sweeper::Absent => Start::Spawn,
            Sweeper::Parked(waker) => Start::Wake(waker),
        }
    }

    /// For the sweep task of `executor`: pending (parked) while nothing waits; `false` once
    /// another executor serves the wheel, `true` when there is work.
    fn park(&mut self, executor: usize, cx: &mut Context<'_>) -> Poll<bool> {
        if self.executor != executor {
            return Poll::Ready(false);
        }
        if self.waiting > 0 {
            self.sweeper = Sweeper::Running;
            return Poll::Ready(true);
        }
        self.sweeper = Sweeper::Parked(cx.waker().clone());
        Poll::Pending
    }

    /// From `now` to the next tick boundary.
    fn until_next_tick(&self, now: Instant) -> Duration {
        let elapsed = nanos(now.saturating_duration_since(self.origin));
        let next = (elapsed / TICK_NANOS + 1) * TICK_NANOS;
        Duration::from_nanos(next - elapsed)
    }

    /// Moves the wakers of every wait whose deadline is at or before `now` into `expired`.
    fn sweep(&mut self, now: Instant, expired: &mut Vec<Waker>) {
        let tick = nanos(now.saturating_duration_since(self.origin)) / TICK_NANOS;
        if tick <= self.swept {
            return;
        }
        // After a long pause every bucket is visited once.
        let ticks = (tick - self.swept).min(BUCKETS);
        for step in 1..=ticks {
            let bucket = ((self.swept + step) % BUCKETS) as usize;
            self.sweep_bucket(bucket, now, expired);
        }
        self.swept = tick;
    }

    fn sweep_bucket(&mut self, bucket: usize, now: Instant, expired: &mut Vec<Waker>) {
        let mut index = self.heads[bucket];
        while index != NIL {
            let next = self.slots[index as usize].next;
            if self.slots[index as usize].deadline <= now {
                self.unlink(index);
                let slot = &mut self.slots[index as usize];
                slot.state = SlotState::Passed;
                expired.extend(slot.waker.take());
            }
            index = next;
        }
    }

    /// The first tick boundary at or after `instant`.
    fn tick_ceil(&self, instant: Instant) -> u64 {
        nanos(instant.saturating_duration_since(self.origin)).div_ceil(TICK_NANOS)
    }
}

/// Nanoseconds of `duration`, saturating (u64 nanoseconds last 584 years).
fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// What the wheel of the current thread holds, for tests.
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WheelStats {
    /// Registrations not yet past their deadline.
    pub waiting: u32,
    /// Slots held by a registration (waiting or passed, not yet dropped).
    pub taken: u32,
    /// Slots ever made; reused once freed.
    pub slots: u32,
    /// The sweep task is parked (no glommio timer).
    pub parked: bool,
}

#[cfg(test)]
pub(crate) fn stats() -> WheelStats {
    WHEEL.with(|wheel| {
        let wheel = wheel.borrow();
        WheelStats {
            waiting: wheel.waiting,
            taken: wheel.taken,
            slots: wheel.slots.len() as u32,
            parked: !matches!(wheel.sweeper, Sweeper::Running),
        }
    })
}

#[cfg(test)]
#[path = "deadline_tests.rs"]
mod tests;
