//! SIGINT/SIGTERM handling. The signals are blocked in every thread and taken by one
//! `sigwait` thread, which raises a process-wide flag; each shard polls it from a timer task
//! (never on a request path) and starts draining. A second signal exits at once.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::runtime::shard::Shard;

/// Set once shutdown was requested, by a signal or by a shard that failed to start.
static SHUTDOWN_REQUESTED: AtomicBool = AtomicBool::new(false);

/// How often each shard looks at the flag: the delay between a signal and draining.
const WATCH_INTERVAL: Duration = Duration::from_millis(50);

/// Asks every shard to drain.
pub fn request_shutdown() {
    SHUTDOWN_REQUESTED.store(true, Ordering::SeqCst);
}

fn shutdown_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset initializes the zeroed set it is given; sigaddset adds valid signal
    // numbers to it. The set is a plain value owned by this function.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread (so in every thread it spawns later) and
/// starts the thread that waits for them. Call before any shard starts.
pub fn install() {
    let set = shutdown_signals();
    // SAFETY: `set` is a valid, initialized signal set; a null old-set pointer is allowed.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            loop {
                let mut signal = 0;
                // SAFETY: `set` is valid and blocked in this thread; `signal` is a valid out-pointer.
                if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                    continue;
                }
                seen += 1;
                if seen > 1 {
                    crate::support::log(format_args!("second signal, exiting without draining"));
                    std::process::exit(1);
                }
                crate::support::log(format_args!("signal {signal}, draining"));
                request_shutdown();
            }
        })
        .expect("spawn the signal thread");
}

/// Starts the shard's drain once shutdown is requested.
pub async fn watch(shard: Rc<Shard>) {
    while !SHUTDOWN_REQUESTED.load(Ordering::SeqCst) {
        glommio::timer::sleep(WATCH_INTERVAL).await;
    }
    shard.pipeline.shutdown.set();
}
