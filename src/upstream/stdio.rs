//! Stdio upstreams: an MCP server run as a child process, spoken to over its stdin and stdout
//! (one JSON-RPC message per line, the MCP stdio transport), its stderr copied into our log.
//!
//! Ownership: each shard runs its own child per stdio upstream; a [`StdioUpstream`] and
//! everything it holds is shard-local (`!Send`). One supervisor task per upstream owns the child:
//! it reads stdout, writes what [`StdioUpstream::send`] queued, watches for exit, and restarts the
//! child after an exponential backoff. The child's stdin/stdout is one end of a socketpair and
//! its stderr another (glommio reads with `recv()`, which fails on a pipe).
//!
//! Inbound messages arrive in order through [`StdioUpstream::recv`], meant for one dispatcher
//! task that routes answers to pending requests by id. When a child ends (it exits, closes its
//! stdout, writes a line over `message_bytes_max`, or its socket fails), `recv` yields
//! [`StdioError::Exited`] after the last message that child wrote, with its exit code and its
//! last stderr lines ([`tail`]): every request sent to it that has no answer yet will never get
//! one. Sends still queued or blocked for that child get the same error. While the next child
//! waits out its backoff, `send` fails fast with [`StdioError::NotRunning`], which says how the
//! last one ended. A command that cannot be started (a wrong `command` or `cwd`, the first time
//! or later) is tried again after the same backoff: the upstream exists, down, until a child
//! runs.
//!
//! Limits ([`StdioLimits`]): a message is at most `message_bytes_max` bytes either way; memory per
//! upstream per shard is at most `(inbound_messages_max + outbound_messages_max + 1) ×
//! message_bytes_max + stderr_line_bytes_max` plus one 64 KiB read buffer and the stderr tail
//! (`tail::STDERR_TAIL_BYTES_MAX`), plus one message per `send` waiting for room in a full queue
//! (the pending table's cap bounds those). Refused: sends over the limit or containing a newline
//! (they would break the framing), sends while no child runs.
//!
//! Stopping: [`StdioUpstream::shutdown`] (or dropping the upstream) closes the child's stdin, then
//! after `kill_grace_ms` sends SIGTERM to its process group, after another `kill_grace_ms`
//! SIGKILL, and reaps it. A child is never left a zombie: its exit is seen by end-of-file on its
//! stdout and, for children whose own children keep that socket open, by a `waitpid(WNOHANG)`
//! every `exit_poll_ms`. Call `shutdown` before the shard's executor ends: glommio never drops
//! the tasks of an executor that returned, so a stop begun by `drop` would not finish (the
//! child would then see end-of-file on stdin when the gateway exits).

mod child;
mod lines;
pub mod tail;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::net::Shutdown;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future::{or, poll_once};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::UnixStream;
use glommio::timer::sleep;
use glommio::Task;

use crate::config::limits::StdioLimits;
use crate::support::event::Event;
use child::{Backoff, ChildGuard, Spawned};
use lines::LineSplitter;
use tail::StderrTail;

/// Size of the buffer stdout is read into; lines longer than this are assembled across reads.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How long a child whose stdout closed (or whose socket failed) gets to exit by itself before it
/// is sent SIGTERM: its exit closes the socket a moment before it can be reaped.
const EXIT_SETTLE_MS: u64 = 100;

/// After an exit seen by `waitpid` (not by end-of-file), how long stdout is still read for what
/// the child wrote before it exited.
const STDOUT_DRAIN_MS: u64 = 100;

/// After a child is reaped, how long its stderr is still read; a grandchild holding the stderr
/// socket open must not keep the task alive.
const STDERR_LINGER_MS: u64 = 100;

/// What to run. Config: `upstreams[].command`, `.args`, `.env`, `.cwd` with `kind = "stdio"`.
#[derive(Clone, Debug)]
pub struct StdioSpec {
    /// `upstreams[].name`; prefixes every log line about this upstream.
    pub name: String,
    /// `upstreams[].command`: the program, looked up in `PATH` when it has no slash.
    pub command: String,
    /// `upstreams[].args`.
    pub args: Vec<String>,
    /// `upstreams[].env`: set on top of the gateway's own environment, which the child inherits.
    pub env: Vec<(String, String)>,
    /// `upstreams[].cwd`; the gateway's working directory when `None`.
    pub cwd: Option<PathBuf>,
}

/// Why a child's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// It exited by itself.
    Exited,
    /// It closed its stdout but kept running, and was stopped.
    StdoutClosed,
    /// It wrote a line over `message_bytes_max`, and was stopped (counted in `oversize_lines`).
    MessageTooLarge { bytes_max: u32 },
    /// Reading its stdout failed, and it was stopped.
    ReadFailed(io::ErrorKind),
    /// Writing its stdin failed, and it was stopped.
    WriteFailed(io::ErrorKind),
    /// The upstream was shut down.
    Shutdown,
}

impl fmt::Display for EndCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited => f.write_str("exited"),
            Self::StdoutClosed => f.write_str("closed its stdout and was stopped"),
            Self::MessageTooLarge { bytes_max } => write!(
                f,
                "wrote a line over message_bytes_max {bytes_max} and was stopped"
            ),
            Self::ReadFailed(kind) => write!(f, "stdout read failed ({kind}) and was stopped"),
            Self::WriteFailed(kind) => write!(f, "stdin write failed ({kind}) and was stopped"),
            Self::Shutdown => f.write_str("was stopped for shutdown"),
        }
    }
}

/// Errors of a stdio upstream. Messages are lowercase and name the limit or the cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StdioError {
    /// `send` got a message over `message_bytes_max`.
    MessageTooLarge { bytes: usize, bytes_max: u32 },
    /// `send` got a message containing `\n`, which would split it into two on the wire.
    EmbeddedNewline { offset: usize },
    /// No child is running: the next start waits out its restart backoff. `last` says how the
    /// last attempt ended (an [`StdioError::Exited`] child or a failed [`StdioError::Spawn`]),
    /// when there was one.
    NotRunning { last: Option<Box<StdioError>> },
    /// The child a message was for ended with exit `code` (128 + signal if killed); no answer
    /// will come from it. `stderr` holds the last lines it wrote there.
    Exited {
        code: i32,
        cause: EndCause,
        stderr: StderrTail,
    },
    /// The upstream was shut down or dropped.
    ShutDown,
    /// A child could not be started; the supervisor tries again after the restart backoff.
    Spawn { command: String, reason: String },
}

impl fmt::Display for StdioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MessageTooLarge { bytes, bytes_max } => write!(
                f,
                "message of {bytes} bytes exceeds message_bytes_max {bytes_max}"
            ),
            Self::EmbeddedNewline { offset } => write!(
                f,
                "message contains a newline at byte {offset}; stdio messages are single lines"
            ),
            Self::NotRunning { last: None } => {
                f.write_str("child not running; it starts after a backoff")
            }
            Self::NotRunning { last: Some(last) } => {
                write!(f, "{last}; the next try follows a backoff")
            }
            Self::Exited {
                code,
                cause,
                stderr,
            } => {
                write!(f, "child {cause} (exit code {code})")?;
                match stderr.is_empty() {
                    true => Ok(()),
                    false => write!(f, "; its last stderr lines: {stderr}"),
                }
            }
            Self::ShutDown => f.write_str("stdio upstream shut down"),
            Self::Spawn { command, reason } => write!(f, "cannot start `{command}`: {reason}"),
        }
    }
}

impl std::error::Error for StdioError {}

/// Counters and state of one stdio upstream on one shard, for `/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StdioStats {
    /// Children started after the first.
    pub restarts_total: u64,
    /// A child is running now.
    pub running: bool,
    /// Exit code of the last child that ended (128 + signal if killed).
    pub last_exit_code: Option<i32>,
    /// Messages read from children.
    pub lines_in: u64,
    /// Messages written to children.
    pub lines_out: u64,
    /// Lines over `message_bytes_max` read from children (each one restarted its child).
    pub oversize_lines: u64,
}

/// Where log lines go: `crate::support::log` in service, a capture in tests.
type LogSink = fn(fmt::Arguments<'_>);

/// A message read from the child, or the end of that child.
type Inbound = Result<Vec<u8>, StdioError>;

/// A stdio MCP server behind the gateway, on one shard.
pub struct StdioUpstream {
    shared: Rc<Shared>,
    inbound: LocalReceiver<Inbound>,
    supervisor: Cell<Option<Task<()>>>,
}

/// State shared by the handle and the supervisor task.
struct Shared {
    spec: StdioSpec,
    limits: StdioLimits,
    log: LogSink,
    stats: Cell<StdioStats>,
    /// The running child, `None` between children and after shutdown.
    current: RefCell<Option<Rc<Incarnation>>>,
    /// How the last child ended, or why the last start failed: what `send` reports while no
    /// child runs.
    last_end: RefCell<Option<StdioError>>,
    stop: Event,
}

/// One child's run, as `send` sees it.
struct Incarnation {
    pid: u32,
    outbound: LocalSender<Vec<u8>>,
    /// Set before `outbound` closes, so a send that finds it closed can say how the child ended.
    ended: RefCell<Option<StdioError>>,
}

impl StdioUpstream {
    /// Starts the supervisor task of `spec` on the current glommio executor, which starts the
    /// first child before this returns. A child that cannot be started (a wrong command or
    /// `cwd`) is logged and tried again after the restart backoff; meanwhile `send` says why.
    pub fn start(spec: StdioSpec, limits: StdioLimits) -> Self {
        Self::start_with_log(spec, limits, crate::support::log)
    }

    fn start_with_log(spec: StdioSpec, limits: StdioLimits, log: LogSink) -> Self {
        assert!(limits.message_bytes_max > 0, "message_bytes_max is 0");
        assert!(
            limits.stderr_line_bytes_max > 0,
            "stderr_line_bytes_max is 0"
        );
        assert!(limits.inbound_messages_max > 0, "inbound_messages_max is 0");
        assert!(
            limits.outbound_messages_max > 0,
            "outbound_messages_max is 0"
        );
        assert!(limits.exit_poll_ms > 0, "exit_poll_ms is 0");
        assert!(
            limits.restart_backoff_ms <= limits.restart_backoff_max_ms,
            "restart_backoff_ms is over restart_backoff_max_ms"
        );
        let (inbound_tx, inbound) =
            local_channel::new_bounded(limits.inbound_messages_max as usize);
        let shared = Rc::new(Shared {
            spec,
            limits,
            log,
            stats: Cell::new(StdioStats::default()),
            current: RefCell::new(None),
            last_end: RefCell::new(None),
            stop: Event::default(),
        });
        // glommio runs a spawned task at once up to its first wait: the first child is started
        // (or its failure recorded) before this returns.
        let supervisor = glommio::spawn_local(supervise(shared.clone(), inbound_tx));
        Self {
            shared,
            inbound,
            supervisor: Cell::new(Some(supervisor)),
        }
    }

    /// Queues one message (without its newline) for the running child. `Ok` means queued in
    /// order; if the child ends before writing it, `recv` reports that end. Waits while
    /// `outbound_messages_max` messages are queued. Cancel-safe: a message is queued whole or
    /// not at all.
    pub async fn send(&self, message: &[u8]) -> Result<(), StdioError> {
        let bytes_max = self.shared.limits.message_bytes_max;
        if message.len() > bytes_max as usize {
            return Err(StdioError::MessageTooLarge {
                bytes: message.len(),
                bytes_max,
            });
        }
        if let Some(offset) = message.iter().position(|&b| b == b'\n') {
            return Err(StdioError::EmbeddedNewline { offset });
        }
        let incarnation = self.shared.current.borrow().clone();
        let Some(incarnation) = incarnation else {
            return Err(self.not_running());
        };
        let mut line = Vec::with_capacity(message.len() + 1);
        line.extend_from_slice(message);
        line.push(b'\n');
        match incarnation.outbound.send(line).await {
            Ok(()) => Ok(()),
            Err(_) => Err(incarnation
                .ended
                .borrow()
                .clone()
                .unwrap_or_else(|| self.not_running())),
        }
    }

    /// The next message from the child, in the order written, or the end of a child
    /// ([`StdioError::Exited`], after that child's last message), or [`StdioError::ShutDown`]
    /// once the upstream is stopped and every message was taken. Meant for one dispatcher task.
    pub async fn recv(&self) -> Result<Vec<u8>, StdioError> {
        self.inbound
            .recv()
            .await
            .unwrap_or(Err(StdioError::ShutDown))
    }

    /// Counters and state for `/status`.
    pub fn stats(&self) -> StdioStats {
        self.shared.stats.get()
    }

    /// Pid of the running child, if one runs.
    pub fn pid(&self) -> Option<u32> {
        self.shared.current.borrow().as_ref().map(|i| i.pid)
    }

    /// Stops the child (closes its stdin; SIGTERM after `kill_grace_ms`; SIGKILL after another
    /// `kill_grace_ms`), reaps it and ends the supervisor; returns once that is done. Afterwards `send` and `recv` fail with
    /// [`StdioError::ShutDown`]. Idempotent.
    pub async fn shutdown(&self) {
        self.shared.stop.set();
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.await;
        }
    }

    fn not_running(&self) -> StdioError {
        if self.shared.stop.is_set() {
            return StdioError::ShutDown;
        }
        let last = self.shared.last_end.borrow().clone().map(Box::new);
        StdioError::NotRunning { last }
    }
}

impl Drop for StdioUpstream {
    /// Starts the same stop as [`StdioUpstream::shutdown`] and leaves the supervisor task to
    /// finish it on this executor.
    fn drop(&mut self) {
        self.shared.stop.set();
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.detach();
        }
    }
}

impl Shared {
    fn update(&self, change: impl FnOnce(&mut StdioStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }

    fn log(&self, line: fmt::Arguments<'_>) {
        (self.log)(format_args!("upstream {}: {line}", self.spec.name));
    }

    fn duration(ms: u32) -> Duration {
        Duration::from_millis(ms.into())
    }
}

/// Runs children one after another until the upstream stops.
async fn supervise(shared: Rc<Shared>, inbound: LocalSender<Inbound>) {
    let limits = shared.limits;
    let mut backoff = Backoff::new(
        limits.restart_backoff_ms,
        limits.restart_backoff_max_ms,
        limits.healthy_after_ms,
    );
    let mut stdout = StdoutReader {
        splitter: LineSplitter::new(limits.message_bytes_max as usize),
        chunk: vec![0; READ_CHUNK_BYTES],
    };
    let mut next = start_child(&shared, &mut backoff, Duration::ZERO).await;
    let mut started_total = 0u64;
    while let Some(spawned) = next.take() {
        if started_total > 0 {
            shared.update(|s| s.restarts_total += 1);
        }
        started_total += 1;
        let started = Instant::now();
        let ended = run_child(&shared, &inbound, spawned, &mut stdout).await;
        if shared.stop.is_set() {
            break;
        }
        shared.last_end.replace(Some(ended.clone()));
        let stopped = async {
            shared.stop.wait().await;
            false
        };
        let delivered = async { inbound.send(Err(ended)).await.is_ok() };
        if !or(delivered, stopped).await {
            break;
        }
        let delay = backoff.delay_after(started.elapsed());
        next = start_child(&shared, &mut backoff, delay).await;
    }
}

/// Waits `delay` (none for the first child), then starts a child, trying again after the
/// backoff while that fails; `None` on stop.
async fn start_child(shared: &Shared, backoff: &mut Backoff, delay: Duration) -> Option<Spawned> {
    let mut delay = delay;
    loop {
        if !delay.is_zero() {
            let waited = async {
                sleep(delay).await;
                true
            };
            let stopped = async {
                shared.stop.wait().await;
                false
            };
            if !or(waited, stopped).await {
                return None;
            }
        }
        match child::spawn(&shared.spec) {
            Ok(spawned) => return Some(spawned),
            Err(error) => {
                delay = backoff.delay_after(Duration::ZERO);
                let failed = StdioError::Spawn {
                    command: shared.spec.command.clone(),
                    reason: error.to_string(),
                };
                shared.log(format_args!(
                    "{failed}; next try in {} ms",
                    delay.as_millis()
                ));
                shared.last_end.replace(Some(failed));
            }
        }
    }
}

/// The stdout side kept across children: the line splitter and the read buffer.
struct StdoutReader {
    splitter: LineSplitter,
    chunk: Vec<u8>,
}

/// Runs one child until it ends, then stops and reaps it. Returns the error every waiter on this
/// child gets.
async fn run_child(
    shared: &Shared,
    inbound: &LocalSender<Inbound>,
    spawned: Spawned,
    stdout: &mut StdoutReader,
) -> StdioError {
    let Spawned {
        mut child,
        mut reader,
        mut writer,
        stderr,
    } = spawned;
    let limits = shared.limits;
    let (outbound, queued) = local_channel::new_bounded(limits.outbound_messages_max as usize);
    let incarnation = Rc::new(Incarnation {
        pid: child.pid(),
        outbound,
        ended: RefCell::new(None),
    });
    shared.current.replace(Some(incarnation.clone()));
    shared.update(|s| s.running = true);
    let tail = Rc::new(RefCell::new(StderrTail::default()));
    let stderr_task = glommio::spawn_local(pump_stderr(
        stderr,
        limits.stderr_line_bytes_max as usize,
        (shared.log, shared.spec.name.clone()),
        tail.clone(),
    ));
    stdout.splitter.reset();
    let cause = or(
        stdout.pump(shared, inbound, &mut reader),
        or(
            pump_stdin(shared, &queued, &mut writer),
            or(watch_exit(&mut child, limits.exit_poll_ms), async {
                shared.stop.wait().await;
                EndCause::Shutdown
            }),
        ),
    )
    .await;
    shared.current.replace(None);
    let (code, cause) = stop_child(shared, &mut child, &writer, cause).await;
    // What it wrote on stderr before it ended says why: read to its end first.
    or(stderr_task, sleep(Duration::from_millis(STDERR_LINGER_MS))).await;
    let stderr = match cause {
        EndCause::Shutdown => StderrTail::default(),
        _ => tail.take(),
    };
    let ended = StdioError::Exited {
        code,
        cause,
        stderr,
    };
    incarnation.ended.replace(Some(ended.clone()));
    close_queue(queued).await;
    ended
}

/// Closes a child's send queue once its run ended. Every send waiting for room wakes and finds
/// it closed (then reads `Incarnation::ended`). The queue is emptied first: glommio 0.9 wakes a
/// waiting sender when the receiver drops, but the sender only re-checks for room, so on a full
/// queue it would wait forever.
async fn close_queue(queued: LocalReceiver<Vec<u8>>) {
    while let Some(Some(_unsent)) = poll_once(queued.recv()).await {}
    drop(queued);
}

/// Stops and reaps a child whose run ended with `cause`; counts and logs the end, and returns
/// its exit code and how it ended.
///
/// For a shutdown this follows the MCP stdio transport: close the child's stdin and give it
/// `kill_grace_ms` to exit, then SIGTERM, then SIGKILL after another `kill_grace_ms`. A child
/// whose stdout closed (or whose socket failed) gets a moment to exit by itself; one that wrote
/// an oversize line is sent SIGTERM at once.
async fn stop_child(
    shared: &Shared,
    child: &mut ChildGuard,
    writer: &UnixStream,
    cause: EndCause,
) -> (i32, EndCause) {
    let grace = Shared::duration(shared.limits.kill_grace_ms);
    let settle = match cause {
        EndCause::Shutdown => {
            // Fails only if the socket is already shut or gone: the child sees EOF either way.
            let _ = writer.shutdown(Shutdown::Write).await;
            grace
        }
        EndCause::MessageTooLarge { .. } => Duration::ZERO,
        _ => Duration::from_millis(EXIT_SETTLE_MS),
    };
    let stopped = child.stop(settle, grace).await;
    // A child that exited by itself closes its stdout, or resets the socket when it left
    // unread input there: either way it exited, and its exit code says how.
    let cause = match cause {
        EndCause::StdoutClosed | EndCause::ReadFailed(_) | EndCause::WriteFailed(_)
            if !stopped.signalled =>
        {
            EndCause::Exited
        }
        other => other,
    };
    shared.update(|s| {
        s.running = false;
        s.last_exit_code = Some(stopped.code);
        if matches!(cause, EndCause::MessageTooLarge { .. }) {
            s.oversize_lines += 1;
        }
    });
    // Its stderr lines are in the log already, each as it came.
    shared.log(format_args!(
        "pid {}: child {cause} (exit code {})",
        child.pid(),
        stopped.code
    ));
    (stopped.code, cause)
}

impl StdoutReader {
    /// Reads messages from the child's stdout into `inbound` until the child's run ends.
    async fn pump(
        &mut self,
        shared: &Shared,
        inbound: &LocalSender<Inbound>,
        reader: &mut UnixStream,
    ) -> EndCause {
        let too_large = EndCause::MessageTooLarge {
            bytes_max: shared.limits.message_bytes_max,
        };
        loop {
            let read = match reader.read(&mut self.chunk).await {
                Ok(0) => return EndCause::StdoutClosed,
                Ok(read) => read,
                Err(error) => return EndCause::ReadFailed(error.kind()),
            };
            let mut rest = &self.chunk[..read];
            while let Some(line) = self.splitter.next_line(&mut rest) {
                if line.dropped_bytes > 0 {
                    return too_large;
                }
                if line.bytes.is_empty() {
                    continue;
                }
                let message = line.bytes.to_vec();
                if inbound.send(Ok(message)).await.is_err() {
                    // The handle is gone: nobody will read another message.
                    return EndCause::Shutdown;
                }
                shared.update(|s| s.lines_in += 1);
            }
            if self.splitter.partial_dropped_bytes() > 0 {
                return too_large;
            }
            glommio::yield_if_needed().await;
        }
    }
}

/// Writes queued messages to the child's stdin until writing fails.
async fn pump_stdin(
    shared: &Shared,
    queued: &LocalReceiver<Vec<u8>>,
    writer: &mut UnixStream,
) -> EndCause {
    loop {
        // The queue's sender lives as long as this child's run; `None` cannot come first.
        let Some(line) = queued.recv().await else {
            return EndCause::Shutdown;
        };
        if let Err(error) = writer.write_all(&line).await {
            return EndCause::WriteFailed(error.kind());
        }
        shared.update(|s| s.lines_out += 1);
    }
}

/// Resolves when `waitpid` sees the child gone (and stdout had a moment to drain): for children
/// that exit while their own children still hold the stdout socket open.
async fn watch_exit(child: &mut ChildGuard, exit_poll_ms: u32) -> EndCause {
    let poll = Shared::duration(exit_poll_ms);
    while child.try_reap().is_none() {
        sleep(poll).await;
    }
    sleep(Duration::from_millis(STDOUT_DRAIN_MS)).await;
    EndCause::Exited
}

/// Logs each stderr line of a child, cut to `line_bytes_max`, and keeps the last ones in
/// `tail`, until end-of-file (where an unfinished last line counts as one).
async fn pump_stderr(
    mut stderr: UnixStream,
    line_bytes_max: usize,
    (log, name): (LogSink, String),
    tail: Rc<RefCell<StderrTail>>,
) {
    let mut splitter = LineSplitter::new(line_bytes_max);
    let mut chunk = vec![0; line_bytes_max.clamp(512, 8192)];
    loop {
        let (mut rest, ended): (&[u8], bool) = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => (b"\n", true),
            Ok(read) => (&chunk[..read], false),
        };
        while let Some(line) = splitter.next_line(&mut rest) {
            if ended && line.bytes.is_empty() && line.dropped_bytes == 0 {
                break;
            }
            let text = stderr_text(line.bytes, line.dropped_bytes > 0);
            tail.borrow_mut().push(&text);
            match line.dropped_bytes {
                0 => log(format_args!("upstream {name}: stderr: {text}")),
                dropped => log(format_args!(
                    "upstream {name}: stderr: {text}... ({dropped} bytes over stderr_line_bytes_max {line_bytes_max} cut)"
                )),
            }
        }
        if ended {
            return;
        }
        glommio::yield_if_needed().await;
    }
}

/// A stderr line as text: invalid UTF-8 replaced, and a character cut in half by truncation
/// dropped rather than shown as a replacement character.
fn stderr_text(bytes: &[u8], truncated: bool) -> std::borrow::Cow<'_, str> {
    let bytes = match std::str::from_utf8(bytes) {
        Err(error) if truncated && error.error_len().is_none() => &bytes[..error.valid_up_to()],
        _ => bytes,
    };
    String::from_utf8_lossy(bytes)
}
