//! One child process of a stdio upstream: spawning it over socketpairs, signalling its process
//! group, reaping it, and the restart backoff between children.
//!
//! Owned by the supervisor task of one `StdioUpstream`, on one shard. A [`ChildGuard`] is the only
//! owner of the child's pid: signals go out only while the child is not yet reaped, so a pid
//! recycled by the kernel is never signalled. Reaping polls `waitpid(WNOHANG)` (no thread is
//! parked in a blocking `wait` for the child's lifetime: glommio gives each executor one blocking
//! thread, which its own file operations share).

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use glommio::net::UnixStream;

use super::StdioSpec;

/// How often a child being stopped is checked for exit. Short, because a stop is waiting on it.
const REAP_POLL_MS: u64 = 10;

/// A freshly spawned child and the parent ends of its sockets.
pub(super) struct Spawned {
    pub child: ChildGuard,
    /// Parent end of the stdin/stdout socketpair, for reading the child's stdout.
    pub reader: UnixStream,
    /// A second descriptor of the same socket, for writing to the child's stdin.
    pub writer: UnixStream,
    /// Parent end of the stderr socketpair.
    pub stderr: UnixStream,
}

/// Spawns `spec` with its stdin and stdout one end of a socketpair and its stderr one end of
/// another, in a process group of its own (so a terminal's Ctrl-C reaches the gateway, which
/// then stops its children in order, and a stop reaches the child's own children too).
pub(super) fn spawn(spec: &StdioSpec) -> io::Result<Spawned> {
    let (parent, child_io) = StdUnixStream::pair()?;
    let (parent_err, child_err) = StdUnixStream::pair()?;
    let child_in = child_io.try_clone()?;
    let mut command = Command::new(&spec.command);
    command
        .args(&spec.args)
        .envs(spec.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::from(OwnedFd::from(child_in)))
        .stdout(Stdio::from(OwnedFd::from(child_io)))
        .stderr(Stdio::from(OwnedFd::from(child_err)))
        .process_group(0);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    let child = ChildGuard::new(command.spawn()?);
    // `Command` holds the child's ends until dropped; while the parent has them open the child's
    // exit would never show as end-of-file on our side.
    drop(command);
    let writer = parent.try_clone()?;
    Ok(Spawned {
        child,
        reader: into_glommio(parent)?,
        writer: into_glommio(writer)?,
        stderr: into_glommio(parent_err)?,
    })
}

/// Hands a connected std socket to glommio, non-blocking (glommio tries `recv`/`send` first and
/// waits for readiness only on `EAGAIN`).
fn into_glommio(stream: StdUnixStream) -> io::Result<UnixStream> {
    stream.set_nonblocking(true)?;
    let fd = stream.into_raw_fd();
    // SAFETY: `into_raw_fd` just released `fd`, an open, connected stream socket this function
    // owned; nothing else holds or closes it, and the glommio stream takes over that ownership
    // (it closes `fd` on drop). Pinned by the round-trip and shutdown tests.
    Ok(unsafe { UnixStream::from_raw_fd(fd) })
}

/// The exit code reported for a child: its exit status, or 128 + the signal that killed it (the
/// shell's convention), or -1 when its status could not be read.
pub(super) fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(-1)
}

/// How a child ended when it was stopped.
pub(super) struct Stopped {
    pub code: i32,
    /// A signal had to be sent: the child did not exit by itself within the settle time.
    pub signalled: bool,
}

/// Sole owner of a child process. Dropping it unreaped kills the child's process group and
/// reaps it, so no path (a cancelled task, an executor torn down) leaves a zombie or an orphan.
pub(super) struct ChildGuard {
    child: Child,
    /// Set once reaped; from then on the pid is not ours and is never signalled.
    status: Option<ExitStatus>,
}

impl ChildGuard {
    fn new(child: Child) -> Self {
        Self {
            child,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reaps the child if it has exited; never blocks.
    pub fn try_reap(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = match self.child.try_wait() {
                Ok(status) => status,
                // waitpid on our own unreaped child fails only if someone else reaped it
                // (a SIGCHLD handler set to SIG_IGN): it is gone either way.
                Err(_) => Some(ExitStatus::from_raw(-1)),
            };
        }
        self.status
    }

    /// Stops the child: waits up to `settle` for it to exit by itself, then sends SIGTERM to its
    /// process group, waits up to `grace`, then sends SIGKILL and waits until it is reaped.
    pub async fn stop(&mut self, settle: Duration, grace: Duration) -> Stopped {
        if let Some(status) = self.reap_within(settle).await {
            return Stopped {
                code: exit_code(status),
                signalled: false,
            };
        }
        self.signal(libc::SIGTERM);
        let status = match self.reap_within(grace).await {
            Some(status) => status,
            None => {
                self.signal(libc::SIGKILL);
                self.reap_within(Duration::MAX)
                    .await
                    .expect("waits until reaped")
            }
        };
        Stopped {
            code: exit_code(status),
            signalled: true,
        }
    }

    async fn reap_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let poll = Duration::from_millis(REAP_POLL_MS);
        let mut waited = Duration::ZERO;
        loop {
            if let Some(status) = self.try_reap() {
                return Some(status);
            }
            if waited >= limit {
                return None;
            }
            glommio::timer::sleep(poll).await;
            waited = waited.saturating_add(poll);
        }
    }

    /// Sends `signal` to the child and to its process group (the child may have left the group;
    /// its own children may still be in it). Only while unreaped: the pid, and with it the group
    /// id, cannot have been recycled yet.
    fn signal(&self, signal: libc::c_int) {
        if self.status.is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("pids fit in pid_t");
        // SAFETY: `kill` takes plain integers and touches no memory. `pid` is our own child,
        // not yet reaped (checked above, and `self` is its only owner), so neither `pid` nor the
        // group `-pid` it leads can name an unrelated process.
        unsafe {
            libc::kill(pid, signal);
            libc::kill(-pid, signal);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.signal(libc::SIGKILL);
            // After SIGKILL the child exits promptly; this is the abnormal path (a task cancelled
            // or an executor torn down before `stop`), so a short block beats a zombie.
            let _ = self.child.wait();
        }
    }
}

/// Exponential restart backoff: `initial_ms`, doubling up to `max_ms`, back to `initial_ms`
/// after a child stayed up `healthy_after_ms`.
pub(super) struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    healthy_after_ms: u64,
    next_ms: u64,
}

impl Backoff {
    pub fn new(initial_ms: u32, max_ms: u32, healthy_after_ms: u32) -> Self {
        assert!(
            initial_ms <= max_ms,
            "restart backoff starts above its maximum"
        );
        Self {
            initial_ms: initial_ms.into(),
            max_ms: max_ms.into(),
            healthy_after_ms: healthy_after_ms.into(),
            next_ms: initial_ms.into(),
        }
    }

    /// The wait before the next start, given how long the child that just ended stayed up.
    pub fn delay_after(&mut self, uptime: Duration) -> Duration {
        if uptime >= Duration::from_millis(self.healthy_after_ms) {
            self.next_ms = self.initial_ms;
        }
        let delay = self.next_ms;
        self.next_ms = delay.saturating_mul(2).min(self.max_ms);
        Duration::from_millis(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delays(backoff: &mut Backoff, uptime_ms: u64, count: usize) -> Vec<u128> {
        (0..count)
            .map(|_| {
                backoff
                    .delay_after(Duration::from_millis(uptime_ms))
                    .as_millis()
            })
            .collect()
    }

    #[test]
    fn backoff_doubles_from_initial_up_to_max() {
        let mut backoff = Backoff::new(100, 1_000, 10_000);
        assert_eq!(
            delays(&mut backoff, 0, 6),
            [100, 200, 400, 800, 1_000, 1_000]
        );
    }

    #[test]
    fn backoff_resets_after_a_child_stays_up_healthy_after_ms() {
        let mut backoff = Backoff::new(100, 30_000, 10_000);
        assert_eq!(delays(&mut backoff, 50, 3), [100, 200, 400]);
        assert_eq!(delays(&mut backoff, 9_999, 1), [800]);
        assert_eq!(delays(&mut backoff, 10_000, 1), [100]);
        assert_eq!(delays(&mut backoff, 0, 1), [200]);
    }

    #[test]
    fn exit_code_is_status_or_128_plus_signal() {
        assert_eq!(exit_code(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGKILL)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(libc::SIGTERM)), 143);
    }
}
