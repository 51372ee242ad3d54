//! The per-shard connection pool of one `http` upstream: keep-alive connections reused
//! last-in first-out, a bounded FIFO of callers waiting for one, and the request/response
//! exchange on top (buffered JSON bodies or event streams).
//!
//! Ownership: each shard builds one [`UpstreamPool`] per `http` upstream; it is `!Send` (`Rc`,
//! `RefCell`) and touched only by that shard. Responses and event streams hold their connection
//! until they are read to the end (then it goes back to the pool) or dropped (then it is closed).
//!
//! Limits ([`PoolLimits`]): at most `pool_connections_max` connections open or opening (plus
//! the connections [`UpstreamPool::request_dedicated`] opens beside them, one per listen
//! stream, which its caller bounds); at most
//! `pool_waiters_max` callers queued for one (past that a caller is refused at once with an
//! error naming both caps); connects bounded by `connect_timeout_ms`; idle connections closed
//! after `pool_idle_timeout_ms`, and every connection after `pool_lifetime_ms` (when it is next
//! idle). Expiry is checked when a connection is taken and by [`UpstreamPool::close_expired`],
//! which the shard's epoch clock calls each tick, so no timer is kept per connection. Memory:
//! per connection one input buffer of `response_head_bytes_max` bytes plus the output buffer of
//! its largest request (shrunk back to 64 KiB); per waiter one small `Rc`.
//!
//! Refuses, each as an [`UpstreamError`] naming the upstream URL and the limit: a full pool and
//! queue, a host name that does not resolve, a connect that fails or times out, a response over its limits or malformed, a
//! connection closed before the response was whole, and an exchange past its `timeout_ms`.
//! An idle connection the server closed (or that carries bytes nobody asked for) is dropped
//! when taken and never handed to a caller, unless it came back less than
//! [`QUIET_CHECK_IDLE_MIN`] ago (see there for the race that leaves).
//!
//! The errors are [`error`]'s; an event stream's reading, on the connection it came on, is
//! [`sse`]'s.

mod error;
mod sse;

pub use error::{UpstreamError, UpstreamErrorKind};
pub use sse::SseResponse;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use glommio::net::TcpStream;

use crate::config::limits::PoolLimits;
use crate::config::url::UpstreamUrl;
use crate::http::client::{ClientConnection, ClientErrorKind, ResponseHead};
use crate::support::deadline;

/// One request to send. It goes to the upstream URL's path with its `Host`.
#[derive(Clone, Copy, Debug)]
pub struct RequestSpec<'a> {
    /// `POST`, `GET` or `DELETE`.
    pub method: &'a str,
    /// Extra header fields (`Accept`, `Mcp-Session-Id`, ...); the codec owns the framing ones.
    pub headers: &'a [(&'a str, &'a str)],
    /// A JSON body, sent with `Content-Type: application/json` and `Content-Length`.
    pub body: Option<&'a [u8]>,
    /// Waiting for a connection, connecting, writing, and reading the head (and a buffered
    /// body) must all end within this many ms; an event stream's events are not bounded by it.
    pub timeout_ms: u64,
}

/// What an upstream answered.
pub enum Reply {
    /// A whole response (JSON, an error body, or none); its connection is already back.
    Buffered(Response),
    /// A successful `text/event-stream` response, read event by event.
    Stream(SseResponse),
}

/// A whole buffered response.
#[derive(Debug)]
pub struct Response {
    /// Status and header fields.
    pub head: ResponseHead,
    /// The body, decoded; at most `response_body_bytes_max` bytes.
    pub body: Vec<u8>,
}

/// Gauges and counters of one pool, for `/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Connections established (idle plus busy).
    pub open: u32,
    /// Open connections waiting in the pool.
    pub idle: u32,
    /// Open connections lent to a caller.
    pub busy: u32,
    /// Connects in progress.
    pub connecting: u32,
    /// Callers queued for a connection.
    pub waiters: u32,
    /// Connections established.
    pub connects_total: u64,
    /// Connect attempts that failed or timed out.
    pub connect_failures_total: u64,
    /// Requests that went out on a connection that had served before.
    pub reuses_total: u64,
    /// Connections closed after `pool_idle_timeout_ms` unused, or found closed by the server.
    pub closed_idle_total: u64,
    /// Connections closed at `pool_lifetime_ms`.
    pub closed_lifetime_total: u64,
    /// Callers refused because the pool and its queue were full.
    pub refused_total: u64,
    /// Connections open outside `pool_connections_max` (the upstream's listen stream).
    pub dedicated_open: u32,
}

/// An open connection and its ages; boxed, so handing it over moves a pointer.
struct Pooled {
    connection: ClientConnection,
    opened: Instant,
    idle_since: Instant,
}

/// What a queued caller is handed.
enum Grant {
    /// A connection that just finished an exchange.
    Connection(Box<Pooled>),
    /// A free slot: the caller opens a connection itself.
    Slot,
}

#[derive(Default)]
struct Waiter {
    grant: RefCell<Option<Grant>>,
    waker: Cell<Option<Waker>>,
}

struct State {
    /// Idle connections, most recently used last.
    #[expect(
        clippy::vec_box,
        reason = "connections move between the idle stack, leases and waiters; boxed, a move \
                  is a pointer and a connection is allocated once for its whole life"
    )]
    idle: Vec<Box<Pooled>>,
    /// Connections open or being opened; `idle.len() <= slots_used <= pool_connections_max`.
    slots_used: u32,
    connecting: u32,
    /// Queued callers, first come first served. Non-empty only while every slot is used and
    /// none is idle.
    waiters: VecDeque<Rc<Waiter>>,
    /// Connections lent by `request_dedicated` and not yet closed.
    dedicated_open: u32,
    stats: PoolStats,
}

struct Shared {
    url: UpstreamUrl,
    /// Where connections go: the URL's IP address, or its host name once resolved (kept for
    /// the pool's life, as a URL's address was when it was resolved at start-up).
    address: Cell<Option<SocketAddr>>,
    limits: PoolLimits,
    state: RefCell<State>,
}

/// The connection pool of one upstream on one shard. Cloning shares the pool.
#[derive(Clone)]
pub struct UpstreamPool {
    shared: Rc<Shared>,
}

impl UpstreamPool {
    /// An empty pool for `url`; connections open on demand.
    pub fn new(url: UpstreamUrl, limits: &PoolLimits) -> UpstreamPool {
        assert!(
            limits.pool_connections_max > 0,
            "pool_connections_max is at least 1"
        );
        let state = State {
            idle: Vec::with_capacity(limits.pool_connections_max as usize),
            slots_used: 0,
            connecting: 0,
            waiters: VecDeque::with_capacity(limits.pool_waiters_max as usize),
            dedicated_open: 0,
            stats: PoolStats::default(),
        };
        UpstreamPool {
            shared: Rc::new(Shared {
                address: Cell::new(url.literal()),
                url,
                limits: *limits,
                state: RefCell::new(state),
            }),
        }
    }

    /// The upstream this pool connects to.
    pub fn url(&self) -> &UpstreamUrl {
        &self.shared.url
    }

    /// Sends `spec` on a pooled connection and reads the answer: a whole body, or the head of
    /// an event stream whose events the caller then reads.
    pub async fn request(&self, spec: &RequestSpec<'_>) -> Result<Reply, UpstreamError> {
        let deadline = Instant::now() + Duration::from_millis(spec.timeout_ms);
        let lease = self.acquire(deadline, spec.timeout_ms).await?;
        self.exchange(lease, spec, deadline).await
    }

    /// Sends `spec` on a connection of its own, outside `pool_connections_max`, for a stream
    /// that stays open as long as the upstream session (the session era's GET stream): in the
    /// pool it would hold one of the connections calls share for good, and with
    /// `pool_connections_max = 1` leave calls none. The connection never joins the pool: it
    /// closes when the reply is read to its end or dropped. Callers bound how many they hold
    /// (the link: one per upstream).
    pub async fn request_dedicated(&self, spec: &RequestSpec<'_>) -> Result<Reply, UpstreamError> {
        let deadline = Instant::now() + Duration::from_millis(spec.timeout_ms);
        let connection = self.dial(deadline).await?;
        let shared = &self.shared;
        shared.state.borrow_mut().dedicated_open += 1;
        let lease = Lease {
            shared: shared.clone(),
            pooled: Some(connection),
            dedicated: true,
        };
        self.exchange(lease, spec, deadline).await
    }

    /// Writes `spec` on the lent connection and reads the head, then the body or the stream.
    async fn exchange(
        &self,
        mut lease: Lease,
        spec: &RequestSpec<'_>,
        deadline: Instant,
    ) -> Result<Reply, UpstreamError> {
        let shared = &self.shared;
        let url = &shared.url;
        let client_error = |error| UpstreamError::from_client(error, url, spec.timeout_ms);
        let connection = lease.connection();
        let sent = connection
            .send(
                spec.method,
                url.path(),
                url.authority(),
                spec.headers,
                spec.body,
                deadline,
            )
            .await;
        if let Err(error) = sent {
            // Nothing went out for a refused request: the connection is still good.
            let intact = error.kind == ClientErrorKind::InvalidRequest;
            lease.release(intact);
            return Err(client_error(error));
        }
        let head = connection
            .read_head(spec.method, deadline)
            .await
            .map_err(client_error)?;
        if head.is_event_stream() {
            let limits = &shared.limits.client;
            let stream = SseResponse::new(head, lease, limits, spec.timeout_ms);
            return Ok(Reply::Stream(stream));
        }
        let body = connection.read_body(deadline).await.map_err(client_error)?;
        let reusable = connection.reusable();
        lease.release(reusable);
        Ok(Reply::Buffered(Response { head, body }))
    }

    /// Closes idle connections past `pool_idle_timeout_ms` or `pool_lifetime_ms`, and those the
    /// server closed; returns how many. The shard's epoch clock calls this each tick.
    pub fn close_expired(&self) -> u32 {
        let now = Instant::now();
        let limits = &self.shared.limits;
        let mut state = self.shared.state.borrow_mut();
        let before = state.idle.len();
        let mut closed_idle = 0;
        let mut closed_lifetime = 0;
        state
            .idle
            .retain(|pooled| match expiry(pooled, now, limits, Duration::ZERO) {
                None => true,
                Some(Expiry::Lifetime) => {
                    closed_lifetime += 1;
                    false
                }
                Some(Expiry::Idle) => {
                    closed_idle += 1;
                    false
                }
            });
        let closed = (before - state.idle.len()) as u32;
        state.slots_used -= closed;
        state.stats.closed_idle_total += closed_idle;
        state.stats.closed_lifetime_total += closed_lifetime;
        closed
    }

    /// The pool's gauges and counters now.
    pub fn stats(&self) -> PoolStats {
        let state = self.shared.state.borrow();
        let idle = state.idle.len() as u32;
        let open = state.slots_used - state.connecting;
        PoolStats {
            open,
            idle,
            busy: open - idle,
            connecting: state.connecting,
            waiters: state.waiters.len() as u32,
            dedicated_open: state.dedicated_open,
            ..state.stats
        }
    }

    /// A connection for one exchange: the most recently used idle one, a new one if a slot is
    /// free, else one handed over in turn after queueing.
    async fn acquire(&self, deadline: Instant, timeout_ms: u64) -> Result<Lease, UpstreamError> {
        let shared = &self.shared;
        let queued = {
            let mut state = shared.state.borrow_mut();
            if let Some(pooled) = take_idle(&mut state, &shared.limits) {
                state.stats.reuses_total += 1;
                return Ok(Lease::new(shared, pooled));
            }
            if state.slots_used < shared.limits.pool_connections_max {
                state.slots_used += 1;
                None
            } else if state.waiters.len() < shared.limits.pool_waiters_max as usize {
                let waiter = Rc::new(Waiter::default());
                state.waiters.push_back(waiter.clone());
                Some(Queued {
                    shared: shared.clone(),
                    waiter,
                })
            } else {
                state.stats.refused_total += 1;
                let limits = &shared.limits;
                return Err(UpstreamError::new(
                    UpstreamErrorKind::PoolFull,
                    &shared.url,
                    format_args!(
                        "all pool_connections_max {} connections are busy and \
                         pool_waiters_max {} callers are already waiting",
                        limits.pool_connections_max, limits.pool_waiters_max
                    ),
                ));
            }
        };
        let slot = match queued {
            None => Slot::new(shared),
            Some(queued) => match deadline::race(deadline, queued).await {
                Some(Turn::Reuse(lease)) => return Ok(lease),
                Some(Turn::Connect(slot)) => slot,
                None => {
                    return Err(UpstreamError::new(
                        UpstreamErrorKind::Timeout,
                        &shared.url,
                        format_args!("no pooled connection free within timeout_ms {timeout_ms}"),
                    ))
                }
            },
        };
        self.connect(slot, deadline).await
    }

    /// Opens a connection in `slot`.
    async fn connect(&self, slot: Slot, deadline: Instant) -> Result<Lease, UpstreamError> {
        self.shared.state.borrow_mut().connecting += 1;
        let dialed = self.dial(deadline).await;
        self.shared.state.borrow_mut().connecting -= 1;
        Ok(slot.fill(dialed?))
    }

    /// The address to connect to. A host name is resolved on the executor's blocking thread
    /// (name resolution blocks; the shard goes on meanwhile), once it resolves for good; a
    /// failure is counted as a failed connect and tried again at the next connect.
    async fn address(&self) -> Result<SocketAddr, UpstreamError> {
        let shared = &self.shared;
        if let Some(address) = shared.address.get() {
            return Ok(address);
        }
        let (host, port) = (shared.url.host().to_owned(), shared.url.port());
        let resolved = glommio::executor()
            .spawn_blocking(move || {
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|mut a| a.next())
            })
            .await;
        let host = shared.url.host();
        let failed = |detail: fmt::Arguments<'_>| {
            shared.state.borrow_mut().stats.connect_failures_total += 1;
            UpstreamError::new(UpstreamErrorKind::ResolveFailed, &shared.url, detail)
        };
        match resolved {
            Ok(Some(address)) => {
                shared.address.set(Some(address));
                Ok(address)
            }
            Ok(None) => Err(failed(format_args!("host {host} resolves to no address"))),
            Err(error) => Err(failed(format_args!("cannot resolve host {host}: {error}"))),
        }
    }

    /// Connects to the upstream within `connect_timeout_ms` and before `deadline`, counting
    /// the attempt.
    async fn dial(&self, deadline: Instant) -> Result<Box<Pooled>, UpstreamError> {
        let address = self.address().await?;
        let shared = &self.shared;
        let limits = &shared.limits;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let timeout = Duration::from_millis(limits.connect_timeout_ms)
            .min(remaining)
            .max(Duration::from_millis(1));
        let connected = TcpStream::connect_timeout(address, timeout).await;
        let mut state = shared.state.borrow_mut();
        let stream = match connected {
            Ok(stream) => stream,
            Err(error) => {
                state.stats.connect_failures_total += 1;
                let error = std::io::Error::from(error);
                let (kind, detail) = if error.kind() == std::io::ErrorKind::TimedOut {
                    let ms = timeout.as_millis();
                    let limit = limits.connect_timeout_ms;
                    (
                        UpstreamErrorKind::ConnectTimeout,
                        format!("connect timed out after {ms} ms (connect_timeout_ms {limit})"),
                    )
                } else {
                    let reason = error.to_string().to_lowercase();
                    (
                        UpstreamErrorKind::ConnectFailed,
                        format!("connect failed: {reason}"),
                    )
                };
                return Err(UpstreamError::new(
                    kind,
                    &shared.url,
                    format_args!("{detail}"),
                ));
            }
        };
        // Requests are small and latency-bound: do not wait to coalesce them.
        let _ = stream.set_nodelay(true);
        state.stats.connects_total += 1;
        let now = Instant::now();
        Ok(Box::new(Pooled {
            connection: ClientConnection::new(stream, &limits.client),
            opened: now,
            idle_since: now,
        }))
    }
}

enum Expiry {
    Idle,
    Lifetime,
}

/// A connection idle for less than this is taken without the check that the server has not
/// closed it ([`ClientConnection::peer_quiet`], one `recv(MSG_PEEK)` syscall): under load a
/// connection comes back every few hundred microseconds, and servers close idle keep-alive
/// connections after seconds. The race this leaves: a server that closes a connection within
/// this long of its last answer (it restarts, or its idle timeout is that short) makes the next
/// request on it fail as `closed_early`. The check narrowed that race but never closed it (the
/// server may close between the peek and the write), and no request is retried on another
/// connection: a `tools/call` is not known to be idempotent. [`UpstreamPool::close_expired`]
/// checks every idle connection each tick whatever its idle time.
const QUIET_CHECK_IDLE_MIN: Duration = Duration::from_millis(100);

/// Why an idle connection must close now, if it must. The server-closed check runs when the
/// connection has been idle `quiet_check_idle_min` or longer.
fn expiry(
    pooled: &Pooled,
    now: Instant,
    limits: &PoolLimits,
    quiet_check_idle_min: Duration,
) -> Option<Expiry> {
    let age = now.saturating_duration_since(pooled.opened);
    let idle = now.saturating_duration_since(pooled.idle_since);
    if age >= Duration::from_millis(limits.pool_lifetime_ms) {
        Some(Expiry::Lifetime)
    } else if idle >= Duration::from_millis(limits.pool_idle_timeout_ms)
        || (idle >= quiet_check_idle_min && !pooled.connection.peer_quiet())
    {
        Some(Expiry::Idle)
    } else {
        None
    }
}

/// Pops idle connections, newest first, closing expired ones, until a usable one turns up.
fn take_idle(state: &mut State, limits: &PoolLimits) -> Option<Box<Pooled>> {
    let now = Instant::now();
    while let Some(pooled) = state.idle.pop() {
        match expiry(&pooled, now, limits, QUIET_CHECK_IDLE_MIN) {
            None => return Some(pooled),
            Some(Expiry::Idle) => state.stats.closed_idle_total += 1,
            Some(Expiry::Lifetime) => state.stats.closed_lifetime_total += 1,
        }
        state.slots_used -= 1;
    }
    None
}

impl Shared {
    /// Takes back a connection after a whole exchange: to the first waiter, else idle.
    fn put_back(&self, mut pooled: Box<Pooled>) {
        let now = Instant::now();
        let mut state = self.state.borrow_mut();
        let age = now.saturating_duration_since(pooled.opened);
        if age >= Duration::from_millis(self.limits.pool_lifetime_ms) {
            state.stats.closed_lifetime_total += 1;
            drop(pooled);
            drop(state);
            return self.free_slot();
        }
        pooled.idle_since = now;
        match state.waiters.pop_front() {
            Some(waiter) => waiter.grant(Grant::Connection(pooled)),
            None => state.idle.push(pooled),
        }
    }

    /// Frees a slot whose connection closed (or never opened): to the first waiter, else gone.
    fn free_slot(&self) {
        let mut state = self.state.borrow_mut();
        match state.waiters.pop_front() {
            Some(waiter) => waiter.grant(Grant::Slot),
            None => state.slots_used -= 1,
        }
    }
}

impl Waiter {
    fn grant(&self, grant: Grant) {
        *self.grant.borrow_mut() = Some(grant);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// A caller's place in the queue; resolves to its lease. Dropped before that (timeout,
/// cancellation), it leaves the queue, and a grant that raced in is passed on.
struct Queued {
    shared: Rc<Shared>,
    waiter: Rc<Waiter>,
}

/// A queued caller's turn: a connection to reuse, or a slot to connect in.
enum Turn {
    Reuse(Lease),
    Connect(Slot),
}

impl Future for Queued {
    type Output = Turn;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Turn> {
        let grant = self.waiter.grant.borrow_mut().take();
        match grant {
            None => {
                self.waiter.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
            Some(Grant::Slot) => Poll::Ready(Turn::Connect(Slot::new(&self.shared))),
            Some(Grant::Connection(pooled)) => {
                self.shared.state.borrow_mut().stats.reuses_total += 1;
                Poll::Ready(Turn::Reuse(Lease::new(&self.shared, pooled)))
            }
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let granted = self.waiter.grant.borrow_mut().take();
        match granted {
            None => {
                let mut state = self.shared.state.borrow_mut();
                state.waiters.retain(|w| !Rc::ptr_eq(w, &self.waiter));
            }
            Some(Grant::Connection(pooled)) => self.shared.put_back(pooled),
            Some(Grant::Slot) => self.shared.free_slot(),
        }
    }
}

/// A free slot taken to open a connection in; dropped unfilled (the connect failed, the
/// caller left), it is handed on.
struct Slot {
    shared: Rc<Shared>,
    held: bool,
}

impl Slot {
    fn new(shared: &Rc<Shared>) -> Slot {
        Slot {
            shared: shared.clone(),
            held: true,
        }
    }

    /// The slot now holds `pooled`, lent to this caller.
    fn fill(mut self, pooled: Box<Pooled>) -> Lease {
        self.held = false;
        Lease::new(&self.shared, pooled)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.held {
            self.shared.free_slot();
        }
    }
}

/// A connection lent to one caller for one exchange. Released reusable, it returns to the
/// pool; dropped (or released otherwise), it closes and its slot is handed on. A dedicated
/// connection (outside the pool's slots) always closes.
struct Lease {
    shared: Rc<Shared>,
    /// `Some` until released; `release` consumes the lease, so it is never seen empty.
    pooled: Option<Box<Pooled>>,
    /// Opened by `request_dedicated`: it holds no slot and never joins the pool.
    dedicated: bool,
}

impl Lease {
    fn new(shared: &Rc<Shared>, pooled: Box<Pooled>) -> Lease {
        Lease {
            shared: shared.clone(),
            pooled: Some(pooled),
            dedicated: false,
        }
    }

    fn connection(&mut self) -> &mut ClientConnection {
        let pooled = self.pooled.as_mut();
        &mut pooled
            .expect("a lease holds its connection until released")
            .connection
    }

    /// Ends the exchange: a `reusable` connection goes back to the pool, any other closes.
    fn release(mut self, reusable: bool) {
        if reusable && !self.dedicated {
            if let Some(pooled) = self.pooled.take() {
                self.shared.put_back(pooled);
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(pooled) = self.pooled.take() else {
            return;
        };
        // The connection closes before its slot is handed on.
        drop(pooled);
        if self.dedicated {
            let mut state = self.shared.state.borrow_mut();
            assert!(
                state.dedicated_open > 0,
                "a dedicated connection was counted"
            );
            state.dedicated_open -= 1;
        } else {
            self.shared.free_slot();
        }
    }
}

#[cfg(test)]
mod tests;
