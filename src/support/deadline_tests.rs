use super::*;
use futures_lite::future;
use glommio::LocalExecutorBuilder;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::Wake;

fn on_executor<T>(work: impl Future<Output = T>) -> T {
    LocalExecutorBuilder::default()
        .io_memory(512 * 1024)
        .make()
        .expect("glommio executor starts")
        .run(work)
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Count(AtomicU32);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Count {
    fn wakes(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }
}

const FAR: Duration = Duration::from_secs(600);

/// Waits (on a glommio timer, not the wheel) until `done` holds, failing after 2 s.
async fn settle(done: impl Fn() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        glommio::timer::sleep(TICK).await;
    }
    panic!("not settled within 2 s");
}

/// Goal: the sweep never wakes a wait before its deadline and never leaves one waiting a tick
/// past it. Method: a wheel without an executor, 800 deadlines spread over more than two turns
/// (some already past), swept at instants that do not fall on tick boundaries; after each
/// sweep every woken wait is due and every wait due a tick ago is woken.
#[test]
fn sweep_wakes_a_wait_at_or_after_its_deadline_and_within_a_tick() {
    let mut wheel = Wheel::new();
    let origin = wheel.origin;
    let waits: Vec<(Instant, Arc<Count>, Key)> = (0..800u64)
        .map(|i| {
            let deadline = origin + Duration::from_nanos(i * 7_300_001);
            let count = Arc::new(Count::default());
            let key = wheel.insert(deadline, Waker::from(count.clone()));
            (deadline, count, key)
        })
        .collect();
    let mut expired = Vec::new();
    let mut now = origin;
    while now < origin + Duration::from_secs(7) {
        now += Duration::from_nanos(4_100_003);
        wheel.sweep(now, &mut expired);
        expired.drain(..).for_each(Waker::wake);
        for (deadline, count, _) in &waits {
            let woken = count.wakes() > 0;
            assert!(
                !woken || *deadline <= now,
                "woken early: {deadline:?} > {now:?}"
            );
            assert!(
                woken || *deadline + TICK > now,
                "not woken a tick after its deadline"
            );
            assert!(count.wakes() <= 1);
        }
    }
    assert_eq!(wheel.waiting, 0);
    assert_eq!(wheel.taken, 800);
    for (_, _, key) in &waits {
        assert!(
            wheel.remove(*key).is_none(),
            "a passed wait gave its waker to the sweep"
        );
    }
    assert_eq!(wheel.taken, 0);
}

/// Goal: a deadline already passed when registered, or registered after the sweep has moved
/// on, is found by the next sweep; a deadline turns away is passed over until it is due.
#[test]
fn sweep_finds_late_registrations_and_passes_over_later_turns() {
    let mut wheel = Wheel::new();
    let origin = wheel.origin;
    let mut expired = Vec::new();
    wheel.sweep(origin + Duration::from_secs(5), &mut expired);
    assert!(expired.is_empty());
    let past = wheel.insert(origin + Duration::from_secs(1), Waker::noop().clone());
    let turns_away = origin + Duration::from_secs(5) + TICK * (BUCKETS as u32) * 3;
    let later = wheel.insert(turns_away, Waker::noop().clone());
    wheel.sweep(origin + Duration::from_secs(5) + TICK, &mut expired);
    assert_eq!(expired.len(), 1);
    assert!(matches!(
        wheel.refresh(past, Waker::noop()).0,
        Refresh::Passed
    ));
    assert!(matches!(
        wheel.refresh(later, Waker::noop()).0,
        Refresh::Waiting
    ));
    expired.clear();
    // One sweep per tick until the tick before it is due: passed over on the earlier turns.
    let mut now = origin + Duration::from_secs(5) + TICK;
    while now + TICK < turns_away {
        now += TICK;
        wheel.sweep(now, &mut expired);
        assert!(
            expired.is_empty(),
            "woken at {:?} before {turns_away:?}",
            now
        );
    }
    wheel.sweep(turns_away, &mut expired);
    assert_eq!(expired.len(), 1);
}

/// Goal: the first poll polls the work first, so work ready at once never takes a slot.
#[test]
fn race_of_ready_work_takes_no_slot() {
    on_executor(async {
        assert_eq!(race(Instant::now() + FAR, async { 7 }).await, Some(7));
        // Already past, but the work is polled first.
        assert_eq!(race(Instant::now(), async { 8 }).await, Some(8));
        assert_eq!(stats().slots, 0);
        assert_eq!(stats().taken, 0);
    });
}

/// Goal: pending work loses the race once the deadline passes, and not before.
#[test]
fn race_of_pending_work_ends_at_or_after_the_deadline() {
    on_executor(async {
        for ms in [0, 1, 9, 10, 11, 25] {
            let deadline = Instant::now() + Duration::from_millis(ms);
            assert_eq!(race(deadline, future::pending::<()>()).await, None);
            assert!(Instant::now() >= deadline, "{ms} ms ended early");
        }
        let deadline = Instant::now() + Duration::from_millis(30);
        sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
        assert_eq!(stats().taken, 0);
    });
}

/// Goal: work that finishes while registered wins and gives its slot back.
#[test]
fn race_won_by_the_work_after_waiting_frees_its_slot() {
    on_executor(async {
        let work = async {
            glommio::timer::sleep(Duration::from_millis(5)).await;
            9
        };
        assert_eq!(race(Instant::now() + FAR, work).await, Some(9));
        assert_eq!(stats().slots, 1);
        assert_eq!(stats().taken, 0);
    });
}

/// Goal: dropping a registered wait, pending or passed, leaves no slot taken, and a freed slot
/// is reused rather than a new one made.
#[test]
fn dropped_waits_leave_no_slot_and_slots_are_reused() {
    on_executor(async {
        for round in 0..3 {
            let mut waits: Vec<_> = (0..50)
                .map(|_| Box::pin(race(Instant::now() + FAR, future::pending::<()>())))
                .collect();
            for wait in &mut waits {
                assert_eq!(future::poll_once(wait.as_mut()).await, None);
            }
            assert_eq!(stats().waiting, 50, "round {round}");
            assert_eq!(stats().taken, 50);
            drop(waits);
            assert_eq!(stats().waiting, 0);
            assert_eq!(stats().taken, 0);
            assert_eq!(stats().slots, 50, "round {round} made new slots");
        }
        let mut passed = Box::pin(sleep(Duration::from_millis(1)));
        assert_eq!(future::poll_once(passed.as_mut()).await, None);
        settle(|| stats().waiting == 0).await;
        assert_eq!(stats().taken, 1);
        drop(passed);
        assert_eq!(stats().taken, 0);
    });
}

/// Goal: a wait polled again with another waker is woken through the newest one only.
#[test]
fn repolled_wait_is_woken_through_its_newest_waker() {
    on_executor(async {
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let (first_waker, second_waker) = (Waker::from(first.clone()), Waker::from(second.clone()));
        let deadline = Instant::now() + Duration::from_millis(15);
        let mut wait = Box::pin(race(deadline, future::pending::<()>()));
        let mut cx = Context::from_waker(&first_waker);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        // The same waker again is kept; another one replaces it.
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        let mut cx = Context::from_waker(&second_waker);
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        settle(|| second.wakes() > 0).await;
        assert!(Instant::now() >= deadline);
        assert_eq!(first.wakes(), 0);
        assert_eq!(second.wakes(), 1);
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(None));
    });
}

/// Goal: the sweep's timer runs only while something waits: it parks once the wheel is empty
/// and starts again with the next registration.
#[test]
fn sweep_parks_when_nothing_waits_and_resumes_on_registration() {
    on_executor(async {
        for _ in 0..2 {
            let mut waiting = Box::pin(race(Instant::now() + FAR, future::pending::<()>()));
            assert_eq!(future::poll_once(waiting.as_mut()).await, None);
            glommio::timer::sleep(TICK * 3).await;
            assert!(
                !stats().parked,
                "the sweep stopped while a wait was registered"
            );
            drop(waiting);
            glommio::timer::sleep(TICK * 3).await;
            assert!(
                stats().parked,
                "the sweep kept ticking with nothing to wait for"
            );
        }
        let deadline = Instant::now() + Duration::from_millis(20);
        sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
    });
}

/// Goal: an executor started on a thread after another one gets a working sweep of its own,
/// whatever the earlier one left registered.
#[test]
fn later_executor_on_the_same_thread_sweeps_its_own_waits() {
    on_executor(async {
        glommio::spawn_local(sleep(FAR)).detach();
        future::yield_now().await;
        assert_eq!(stats().waiting, 1);
    });
    on_executor(async {
        let deadline = Instant::now() + Duration::from_millis(20);
        sleep_until(deadline).await;
        assert!(Instant::now() >= deadline);
        assert_eq!(stats().waiting, 0);
    });
}
