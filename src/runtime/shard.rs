//! One shard: everything a pinned executor owns, and the tasks it runs.
//!
//! A shard owns its listener (SO_REUSEPORT, shared port), its connections (at most
//! `limits.connections_max`; shard 0 also serves the admin listener's, at most
//! `admin.connections_max` apart from those), its session table, its refusal counters, its end of
//! the mesh and its epoch clock. None of it is `Send`: it lives in an `Rc` on the executor's
//! thread, and only [`MeshMessage`]s leave it.

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};

use crate::config::Config;
use crate::epoch::TableLimits;
use crate::http::{self, HttpLimits, Request, ResponseWriter};
use crate::mcp::listen::Subscription;
use crate::mcp::router::Router;
use crate::mcp::router::{Era, Relay};
use crate::mcp::session::{SessionId, SessionTable};
use crate::mcp::transport::{
    answer_message, Endpoint, HttpMethod, HttpReply, McpHeaders, McpRequest, Reply,
};
use crate::refusal::{RefusalCounters, RefusalReason};
use crate::runtime::mesh::{
    ForwardedReply, ForwardedRequest, Mesh, MeshError, MeshMessage, Ticket,
};
use crate::runtime::status::{GenerationStatus, PendingStatus, ShardStatus, UpstreamStatus};
use crate::support::clock::ShardClock;
use crate::support::event::Event;
use crate::wire::jsonrpc;
use hashbrown::HashMap;
use serde_json::value::RawValue;

/// How often a stream forwarded from another shard asks the owner whether its session still
/// lives: bounds how late such a stream notices a DELETE or expiry, for one mesh round trip.
const FORWARDED_STREAM_CHECK: Duration = Duration::from_secs(1);

/// A listener a shard serves: the MCP endpoint (every shard) or the admin endpoint (shard 0).
/// Each has its own bound on open connections and its own refusal when full, so a flood of MCP
/// connections cannot make a liveness probe fail, nor idle admin connections take MCP slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Front {
    /// At most `limits.connections_max`; stops accepting when the shard starts draining.
    Mcp,
    /// At most `admin.connections_max`; stops accepting once the shard has drained, so
    /// `/readyz` can answer 503 meanwhile.
    Admin,
}

impl Front {
    /// The signal that stops the front's accepting and closes its idle connections.
    fn stop(self) -> fn(&Shard) -> &Event {
        match self {
            Front::Mcp => |shard| &shard.shutdown,
            Front::Admin => |shard| &shard.drained,
        }
    }
}

/// A front's open connections, and its refused connections still lingering until the peer has
/// read the 503; each at most the front's bound.
#[derive(Default)]
struct Slots {
    open: Cell<u32>,
    refusing: Cell<u32>,
}

/// Which count of [`Slots`] a connection holds.
#[derive(Clone, Copy)]
enum Count {
    Open,
    Refusing,
}

/// One connection's place in its front's count: taken at accept (before its task first runs,
/// so a burst of accepts sees it), given back when its task ends, however it ends.
struct Held {
    shard: Rc<Shard>,
    front: Front,
    count: Count,
}

impl Held {
    fn take(shard: Rc<Shard>, front: Front, count: Count) -> Held {
        let held = Held {
            shard,
            front,
            count,
        };
        let counter = held.counter();
        counter.set(counter.get() + 1);
        held
    }

    fn counter(&self) -> &Cell<u32> {
        let (slots, _) = self.shard.slots(self.front);
        match self.count {
            Count::Open => &slots.open,
            Count::Refusing => &slots.refusing,
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let counter = self.counter();
        counter.set(counter.get() - 1);
    }
}

/// The state of one shard. Created on its executor, never leaves it.
pub struct Shard {
    pub id: u8,
    pub core: usize,
    pub config: Arc<Config>,
    pub endpoint: Endpoint,
    pub sessions: RefCell<SessionTable>,
    pub refusals: RefusalCounters,
    pub shutdown: Event,
    /// Set once this shard has drained: the admin listener stays open until then, so `/readyz`
    /// can answer 503 while in-flight requests finish.
    pub drained: Event,
    pub mesh: Mesh,
    /// Calls forwarded from other shards whose events are being relayed back, by (origin,
    /// ticket): set when the origin's client left. At most the origins' forwarded requests.
    forwarded_relays: RefCell<HashMap<(u8, Ticket), Rc<Event>>>,
    pub http_limits: HttpLimits,
    connections: Slots,
    /// The admin listener's (shard 0 only).
    admin_connections: Slots,
    /// Open GET and `subscriptions/listen` streams; each holds one of the connections.
    notification_streams: Cell<u32>,
    clock: ShardClock,
}

/// The session table's limits, from `[sessions]` and `[epoch]`.
pub fn session_table_limits(config: &Config) -> TableLimits {
    TableLimits {
        entries_max: config.sessions.sessions_max,
        generations: config.epoch.generations as u8,
        arena_bytes_max: config.epoch.session_arena_bytes_max as usize,
        payload_bytes_max: config.sessions.session_payload_bytes_max as u32,
    }
}

/// The HTTP codec's limits, from `[limits]`.
pub fn http_limits(config: &Config) -> HttpLimits {
    let l = &config.limits;
    HttpLimits {
        header_bytes_max: l.header_bytes_max as u32,
        headers_count_max: l.headers_count_max as u16,
        request_body_bytes_max: l.request_body_bytes_max as u32,
        header_read_timeout_ms: l.header_read_timeout_ms,
        body_read_timeout_ms: l.body_read_timeout_ms,
        keepalive_idle_timeout_ms: l.keepalive_idle_timeout_ms,
    }
}

impl Shard {
    pub fn new(
        id: u8,
        shards: u8,
        core: usize,
        config: Arc<Config>,
        mesh: Mesh,
        clock: ShardClock,
    ) -> Result<Shard, String> {
        let sessions = SessionTable::new(
            id,
            session_table_limits(&config),
            config.sessions.session_idle_ttl_ms,
        )?;
        let router = Router::new(&config, id, clock)?;
        let endpoint = Endpoint::new(id, shards, router, config.clone());
        Ok(Shard {
            id,
            core,
            http_limits: http_limits(&config),
            config,
            endpoint,
            sessions: RefCell::new(sessions),
            refusals: RefusalCounters::default(),
            shutdown: Event::default(),
            drained: Event::default(),
            mesh,
            forwarded_relays: RefCell::new(HashMap::new()),
            connections: Slots::default(),
            admin_connections: Slots::default(),
            notification_streams: Cell::new(0),
            clock,
        })
    }

    /// Milliseconds on the process-wide monotonic clock (the same origin on every shard).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn connections(&self) -> u32 {
        self.connections.open.get()
    }

    /// The open connections of `front` and their bound.
    fn slots(&self, front: Front) -> (&Slots, u32) {
        match front {
            Front::Mcp => (&self.connections, self.config.limits.connections_max),
            Front::Admin => (&self.admin_connections, self.config.admin.connections_max),
        }
    }

    /// Accepts `front`'s connections until its stop signal (see [`Front`]), then drops the
    /// listener so new connects are refused. Each connection is served by the handler
    /// `make_handler` builds for it, and closes once idle after the same signal; one over the
    /// front's bound is refused.
    pub async fn accept_loop<H: http::Handler + 'static>(
        self: &Rc<Self>,
        listener: TcpListener,
        front: Front,
        make_handler: impl Fn(Rc<Shard>) -> H,
    ) {
        let stop = front.stop();
        loop {
            let accepted = future::or(async { Some(listener.accept().await) }, async {
                stop(self).wait().await;
                None
            })
            .await;
            let stream = match accepted {
                None => break,
                Some(Ok(stream)) => stream,
                Some(Err(e)) => {
                    crate::support::log(format_args!("shard {}: accept failed: {e}", self.id));
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let (slots, connections_max) = self.slots(front);
            if slots.open.get() < connections_max {
                let held = Held::take(self.clone(), front, Count::Open);
                let handler = make_handler(self.clone());
                glommio::spawn_local(async move {
                    let shard = &held.shard;
                    let limits = &shard.http_limits;
                    let refusals = &shard.refusals;
                    http::serve_connection(stream, limits, &handler, refusals, stop(shard)).await;
                })
                .detach();
            } else if slots.refusing.get() < connections_max {
                let held = Held::take(self.clone(), front, Count::Refusing);
                glommio::spawn_local(async move {
                    held.shard.refuse_connection(stream, front).await;
                    drop(held);
                })
                .detach();
            } else {
                // As many refusals linger as the front serves connections; past that, one is
                // counted and its connection closed unanswered.
                self.connection_refusal(front);
            }
        }
        drop(listener);
    }

    /// Counts the refusal of one connection over `front`'s bound and words its answer.
    fn connection_refusal(&self, front: Front) -> HttpReply {
        match front {
            Front::Mcp => self.endpoint.refusal_reply(
                RefusalReason::ConnectionsFull,
                format!(
                    "shard {} holds {} connections (limits.connections_max); retry later",
                    self.id, self.config.limits.connections_max
                ),
                &self.refusals,
            ),
            Front::Admin => {
                self.refusals.count(RefusalReason::AdminConnectionsFull);
                let message = format!(
                    "the admin listener holds {} connections (admin.connections_max); retry \
                     later\n",
                    self.config.admin.connections_max
                );
                let retry_after = self.config.sessions.retry_after_s.to_string();
                HttpReply {
                    status: RefusalReason::AdminConnectionsFull.http_status(),
                    headers: vec![
                        ("Retry-After", retry_after),
                        ("Content-Type", "text/plain; charset=utf-8".to_owned()),
                    ],
                    json: Some(message.into_bytes()),
                }
            }
        }
    }

    /// Answers 503 to a connection over `front`'s bound, then closes it as the codec closes
    /// its own refusals, so a client still writing its request reads the 503.
    async fn refuse_connection(&self, stream: TcpStream, front: Front) {
        let reply = self.connection_refusal(front);
        let headers: Vec<(&str, &str)> = reply
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let refusal = http::Refusal {
            status: reply.status,
            headers: &headers,
            body: reply.json.as_deref().unwrap_or_default(),
        };
        let stop = front.stop()(self);
        http::refuse_connection(stream, &self.http_limits, &self.refusals, stop, refusal).await;
    }

    /// Waits until every connection has finished, or `server.drain_timeout_ms` has passed.
    pub async fn drain(&self) {
        let deadline = Instant::now() + Duration::from_millis(self.config.server.drain_timeout_ms);
        while self.connections.open.get() > 0 && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        self.drained.set();
    }

    /// The epoch clock: every `epoch.tick_ms`, retire the oldest generation of each table.
    pub async fn epoch_clock(&self) {
        let tick = Duration::from_millis(self.config.epoch.tick_ms);
        while !self.shutdown.is_set() {
            let stopped = future::or(
                async {
                    glommio::timer::sleep(tick).await;
                    false
                },
                async {
                    self.shutdown.wait().await;
                    true
                },
            )
            .await;
            if stopped {
                break;
            }
            let ended = {
                let mut sessions = self.sessions.borrow_mut();
                sessions.advance(self.now_ms());
                sessions.take_ended()
            };
            let router = self.endpoint.router();
            router.sessions_ended(&ended);
            router.tick();
            for upstream in router.take_announced_changes() {
                self.mesh
                    .broadcast(|| MeshMessage::ListsChanged { upstream });
            }
        }
    }

    /// Handles one mesh message addressed to this shard.
    pub async fn on_mesh_message(self: &Rc<Self>, from: u8, message: MeshMessage) {
        match message {
            MeshMessage::Forward { ticket, request } => {
                let reply = self.answer_forwarded(from, ticket, &request).await;
                let _ = self
                    .mesh
                    .answer(from, MeshMessage::Reply { ticket, reply })
                    .await;
            }
            MeshMessage::StatusQuery { ticket } => {
                let status = Box::new(self.status());
                let _ = self
                    .mesh
                    .answer(from, MeshMessage::StatusReply { ticket, status })
                    .await;
            }
            MeshMessage::RelayCancel { ticket } => {
                if let Some(cancelled) = self.forwarded_relays.borrow().get(&(from, ticket)) {
                    cancelled.set();
                }
            }
            MeshMessage::ListsChanged { upstream } => {
                self.endpoint.router().hear_lists_changed(upstream)
            }
            MeshMessage::Reply { ticket, .. }
            | MeshMessage::StatusReply { ticket, .. }
            | MeshMessage::RelayEvent { ticket, .. } => self.mesh.deliver(ticket, message),
        }
    }

    async fn answer_forwarded(
        &self,
        from: u8,
        ticket: Ticket,
        request: &ForwardedRequest,
    ) -> ForwardedReply {
        let now = self.now_ms();
        if request.stream_check {
            let id = request.session_id.as_deref().and_then(SessionId::parse);
            return match id.is_some_and(|id| self.sessions.borrow().is_live(id, now)) {
                true => ForwardedReply::StreamOpened,
                false => ForwardedReply::Http(HttpReply {
                    status: 404,
                    headers: Vec::new(),
                    json: None,
                }),
            };
        }
        match self
            .endpoint
            .handle(&request.as_request(), &self.sessions, &self.refusals, now)
            .await
        {
            Reply::Http(reply) => ForwardedReply::Http(reply),
            Reply::Stream { .. } => ForwardedReply::StreamOpened,
            Reply::Relay { relay, id, era } => {
                ForwardedReply::Http(self.relay_forwarded(from, ticket, relay, &id, era).await)
            }
            Reply::Forward { owner } => ForwardedReply::Http(self.internal_error(format!(
                "session owned by shard {owner} reached shard {}",
                self.id
            ))),
            // Requests without a session are answered where they arrive, never forwarded.
            Reply::Listen(_) => ForwardedReply::Http(self.internal_error(format!(
                "a subscriptions/listen reached shard {} over the mesh",
                self.id
            ))),
        }
    }

    /// Runs a call forwarded from shard `from`: its notifications go back over the mesh as they
    /// come (the origin writes them to its client), and the answer is returned for the `Reply`.
    /// The origin's `RelayCancel` (its client left) abandons the call.
    async fn relay_forwarded(
        &self,
        from: u8,
        ticket: Ticket,
        mut relay: Relay,
        id: &RawValue,
        era: Era,
    ) -> HttpReply {
        let cancelled = Rc::new(Event::default());
        self.forwarded_relays
            .borrow_mut()
            .insert((from, ticket), cancelled.clone());
        let answer = loop {
            let next = future::or(async { Some(relay.next().await) }, async {
                cancelled.wait().await;
                None
            })
            .await;
            match next {
                None => break None,
                Some(Ok(answer)) => break Some(answer),
                Some(Err(event)) => {
                    let event = MeshMessage::RelayEvent { ticket, event };
                    if self.mesh.answer(from, event).await.is_err() {
                        break None;
                    }
                }
            }
        };
        self.forwarded_relays.borrow_mut().remove(&(from, ticket));
        let Some(answer) = answer else {
            drop(relay);
            return self.internal_error(format!("shard {from}'s client left"));
        };
        let (status, body) = answer_message(id, answer, era);
        HttpReply {
            status,
            headers: Vec::new(),
            json: Some(body),
        }
    }

    fn internal_error(&self, message: String) -> HttpReply {
        self.endpoint
            .refusal_reply(RefusalReason::Internal, message, &self.refusals)
    }

    /// This shard's gauges.
    pub fn status(&self) -> ShardStatus {
        let sessions = self.sessions.borrow();
        let table = sessions.stats();
        ShardStatus {
            shard: self.id,
            core: self.core,
            draining: self.shutdown.is_set(),
            connections: self.connections.open.get(),
            admin_connections: (self.id == 0).then(|| self.admin_connections.open.get()),
            notification_streams: self.notification_streams.get(),
            connections_max: self.config.limits.connections_max,
            sessions: table.entries,
            sessions_max: table.entries_max,
            sessions_expired_total: sessions.expired_total(),
            epoch: table.epoch,
            early_retires: table.early_retires,
            forwarded_in_flight: self.mesh.waiting() as u32,
            arena: table
                .generations
                .iter()
                .map(|g| GenerationStatus {
                    generation: g.generation,
                    used_bytes: g.used_bytes,
                    allocated_bytes: g.allocated_bytes,
                })
                .collect(),
            refusals: self.refusals.nonzero().collect(),
            pending: self.pending_status(),
            upstreams: self.upstream_statuses(),
        }
    }

    fn pending_status(&self) -> PendingStatus {
        let router = self.endpoint.router();
        let inflight = router.inflight();
        let stats = inflight.stats();
        let input = router.input_stats();
        PendingStatus {
            entries: stats.entries,
            pending_max: stats.pending_max,
            completed_total: stats.completed_total,
            cancelled_total: stats.cancelled_total,
            timeouts_total: stats.timeouts_total,
            late_answers_total: stats.late_answers_total,
            early_retires_total: stats.early_retires_total,
            events_dropped_total: inflight.events_dropped_total()
                + self.mesh.relay_events_dropped(),
            mesh_events_dropped_total: self.mesh.relay_events_dropped(),
            relayed_requests: router.server_requests().waiting(),
            relayed_requests_refused_total: router.server_requests().refused_total(),
            input_calls: input.calls,
            input_rounds_total: input.rounds_total,
            input_rounds_exceeded_total: input.rounds_exceeded_total,
            refusals: stats.refusals.to_vec(),
        }
    }

    fn upstream_statuses(&self) -> Vec<UpstreamStatus> {
        let router = self.endpoint.router();
        let per_upstream = router.inflight().stats().per_upstream;
        router
            .links()
            .iter()
            .map(|link| {
                let stats = link.stats();
                UpstreamStatus {
                    name: link.name().to_owned(),
                    kind: link.config.kind.as_str(),
                    required: link.config.required,
                    up: stats.up,
                    connecting: stats.connecting,
                    last_error: stats.last_error,
                    breaker: stats.breaker,
                    breaker_opened_total: stats.breaker_opened_total,
                    breaker_refused_total: stats.breaker_refused_total,
                    in_flight: per_upstream
                        .get(usize::from(link.index))
                        .copied()
                        .unwrap_or(0),
                    unroutable_total: stats.unroutable_total,
                    messages_too_deep_total: stats.messages_too_deep_total,
                    server_requests_refused_total: stats.server_requests_refused_total,
                    pool: stats.pool,
                    stdio: stats.stdio,
                    listen: stats.listen,
                    lists_ttl_ms: stats.lists_ttl_ms,
                    lists_refreshes_total: stats.lists_refreshes_total,
                    upstream_sessions: stats.sessions,
                }
            })
            .collect()
    }
}

/// The MCP endpoint as an HTTP handler: path check, then the endpoint's rules, then the answer
/// written locally, or fetched from the owning shard.
pub struct McpFront {
    pub shard: Rc<Shard>,
}

impl http::Handler for McpFront {
    async fn handle(
        &self,
        request: &Request<'_>,
        response: &mut ResponseWriter<'_>,
    ) -> std::io::Result<()> {
        let shard = &self.shard;
        let path = request.path().split('?').next().unwrap_or("");
        if path != shard.config.server.path {
            let reply = shard.endpoint.refusal_reply(
                RefusalReason::NotFound,
                format!(
                    "no MCP endpoint at {path:?}; it is at {:?}",
                    shard.config.server.path
                ),
                &shard.refusals,
            );
            return write_reply(shard, response, reply).await;
        }
        let param_headers = mcp_param_headers(request);
        let mcp = McpRequest {
            method: HttpMethod::parse(request.method()),
            headers: McpHeaders {
                param_headers: &param_headers,
                host: request.header_str("host"),
                origin: request.header_str("origin"),
                accept: request.header_str("accept"),
                content_type: request.header_str("content-type"),
                session_id: request.header_str("mcp-session-id"),
                protocol_version: request.header_str("mcp-protocol-version"),
                mcp_method: request.header_str("mcp-method"),
                mcp_name: request.header_str("mcp-name"),
            },
            body: request.body(),
        };
        if let Some(reply) = shard.endpoint.precheck(&mcp, &shard.refusals) {
            return write_reply(shard, response, reply).await;
        }
        let reply = shard
            .endpoint
            .handle(&mcp, &shard.sessions, &shard.refusals, shard.now_ms())
            .await;
        match reply {
            Reply::Http(reply) => write_reply(shard, response, reply).await,
            Reply::Stream { ended } => {
                let ended = || async { ended.wait().await };
                notification_stream(shard, response, StreamFeed::SessionGet, ended).await
            }
            Reply::Listen(subscription) => {
                let feed = StreamFeed::Listen(subscription);
                notification_stream(shard, response, feed, future::pending::<()>).await
            }
            Reply::Forward { owner } => self.forward(owner, &mcp, response).await,
            Reply::Relay { relay, id, era } => relay_call(relay, &id, era, response).await,
        }
    }
}

impl McpFront {
    async fn forward(
        &self,
        owner: u8,
        mcp: &McpRequest<'_>,
        response: &mut ResponseWriter<'_>,
    ) -> std::io::Result<()> {
        let shard = &self.shard;
        let request = ForwardedRequest::from_request(mcp);
        let asked = match shard
            .mesh
            .ask_start(owner, |ticket| MeshMessage::Forward { ticket, request })
        {
            Ok(asked) => asked,
            Err(error) => return write_reply(shard, response, mesh_refusal(shard, error)).await,
        };
        let client_left = || {
            // The owner abandons the call; if the channel is full it finishes it unheard.
            let _ = shard.mesh.send(
                owner,
                MeshMessage::RelayCancel {
                    ticket: asked.ticket,
                },
            );
            std::io::Error::new(ErrorKind::ConnectionAborted, "the client left")
        };
        let first = future::or(async { Some(asked.next().await) }, async {
            response.peer_gone().await;
            None
        })
        .await;
        let mut event = match first.ok_or_else(client_left)? {
            Ok(MeshMessage::RelayEvent { event, .. }) => event,
            Ok(MeshMessage::Reply { reply, .. }) => {
                drop(asked);
                return self.forwarded_reply(owner, mcp, response, reply).await;
            }
            Ok(_) => {
                let reply = shard.internal_error(format!(
                    "shard {owner} answered a forward with another message"
                ));
                return write_reply(shard, response, reply).await;
            }
            Err(error) => return write_reply(shard, response, mesh_refusal(shard, error)).await,
        };
        // Events came first: the answer is an event stream, ended by the final message.
        let mut stream = response.sse(200, &[])?;
        loop {
            stream.event(None, &event)?;
            stream.flush().await?;
            let next = future::or(async { Some(asked.next().await) }, async {
                stream.peer_closed().await;
                None
            })
            .await;
            event = match next.ok_or_else(client_left)? {
                Ok(MeshMessage::RelayEvent { event, .. }) => event,
                Ok(MeshMessage::Reply {
                    reply: ForwardedReply::Http(reply),
                    ..
                }) => {
                    stream.event(None, reply.json.as_deref().unwrap_or_default())?;
                    return stream.finish().await;
                }
                _ => return Err(client_left()),
            };
        }
    }

    /// Writes the owner's whole answer to a forwarded request: an HTTP reply, or the session's
    /// GET stream, kept open while the owner says the session lives.
    async fn forwarded_reply(
        &self,
        owner: u8,
        mcp: &McpRequest<'_>,
        response: &mut ResponseWriter<'_>,
        reply: ForwardedReply,
    ) -> std::io::Result<()> {
        let shard = &self.shard;
        match reply {
            ForwardedReply::Http(reply) => write_reply(shard, response, reply).await,
            ForwardedReply::StreamOpened => {
                let owner_still_has_session = || async {
                    loop {
                        glommio::timer::sleep(FORWARDED_STREAM_CHECK).await;
                        match ask_owner(shard, owner, mcp, true).await {
                            Ok(ForwardedReply::StreamOpened) => {}
                            // A busy mesh is no answer: ask again at the next check.
                            Err(_) => {}
                            Ok(ForwardedReply::Http(_)) => return,
                        }
                    }
                };
                notification_stream(
                    shard,
                    response,
                    StreamFeed::SessionGet,
                    owner_still_has_session,
                )
                .await
            }
        }
    }
}

/// The 503 (or 500) for a request the mesh could not carry.
fn mesh_refusal(shard: &Shard, error: MeshError) -> HttpReply {
    shard
        .endpoint
        .refusal_reply(RefusalReason::MeshFull, error.to_string(), &shard.refusals)
}

/// The request's `Mcp-Param-*` fields, which an intermediary passes on to the server.
fn mcp_param_headers(request: &Request<'_>) -> Vec<(String, String)> {
    request
        .headers()
        .filter(|(name, _)| name.len() > 10 && name[..10].eq_ignore_ascii_case(b"mcp-param-"))
        .filter_map(|(name, value)| {
            let name = std::str::from_utf8(name).ok()?;
            let value = std::str::from_utf8(value).ok()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

/// Forwards `mcp` to the shard that owns its session; overload and failure come back as the
/// HTTP reply to send.
async fn ask_owner(
    shard: &Shard,
    owner: u8,
    mcp: &McpRequest<'_>,
    stream_check: bool,
) -> Result<ForwardedReply, HttpReply> {
    let request = ForwardedRequest {
        stream_check,
        ..ForwardedRequest::from_request(mcp)
    };
    match shard
        .mesh
        .ask(owner, |ticket| MeshMessage::Forward { ticket, request })
        .await
    {
        Ok(MeshMessage::Reply { reply, .. }) => Ok(reply),
        Ok(_) => Err(shard.internal_error(format!(
            "shard {owner} answered a forward with another message"
        ))),
        Err(error) => {
            let reply = shard.endpoint.refusal_reply(
                RefusalReason::MeshFull,
                error.to_string(),
                &shard.refusals,
            );
            Err(reply)
        }
    }
}

/// Writes `reply`, or a 502 naming the limit when its body exceeds `limits.response_body_bytes_max`.
async fn write_reply(
    shard: &Shard,
    response: &mut ResponseWriter<'_>,
    reply: HttpReply,
) -> std::io::Result<()> {
    let body_bytes = reply.json.as_ref().map_or(0, Vec::len) as u64;
    let body_bytes_max = shard.config.limits.response_body_bytes_max;
    let reply = match body_bytes > body_bytes_max {
        false => reply,
        true => shard.endpoint.refusal_reply(
            RefusalReason::ResponseTooLarge,
            format!(
                "response body {body_bytes} bytes exceeds limits.response_body_bytes_max {body_bytes_max}"
            ),
            &shard.refusals,
        ),
    };
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    match &reply.json {
        Some(body) => response.json(reply.status, &headers, body),
        None => response.empty(reply.status, &headers),
    }
}

/// Relays an upstream call to the client as it happens: a JSON answer when nothing came
/// before it, else an event stream opened at the first notification and ended by the answer.
/// Returning early (the client left) drops the relay, which cancels the call upstream.
async fn relay_call(
    mut relay: Relay,
    id: &RawValue,
    era: Era,
    response: &mut ResponseWriter<'_>,
) -> std::io::Result<()> {
    let gone = || std::io::Error::new(ErrorKind::ConnectionAborted, "the client left");
    let first = future::or(async { Some(relay.next().await) }, async {
        response.peer_gone().await;
        None
    })
    .await;
    let mut event = match first.ok_or_else(gone)? {
        Ok(answer) => {
            let (status, body) = answer_message(id, answer, era);
            return response.json(status, &[], &body);
        }
        Err(event) => event,
    };
    let mut stream = response.sse(200, &[])?;
    loop {
        stream.event(None, &event)?;
        stream.flush().await?;
        let next = future::or(async { Some(relay.next().await) }, async {
            stream.peer_closed().await;
            None
        })
        .await;
        event = match next.ok_or_else(gone)? {
            Err(event) => event,
            Ok(answer) => {
                let (_, body) = answer_message(id, answer, era);
                stream.event(None, &body)?;
                return stream.finish().await;
            }
        };
    }
}

/// What a notification stream is for: a session's GET stream, or a 2026-07-28
/// `subscriptions/listen`, which opens with its acknowledgment, carries only what it asked for
/// and ends with its result when the gateway closes it.
enum StreamFeed {
    SessionGet,
    Listen(Subscription),
}

/// Serves a notification stream: its opening event, then `notifications/*/list_changed` when a
/// merged list changes and keep-alive comments every `limits.sse_keepalive_interval_ms`, until
/// the session ends, the client leaves, or the shard drains.
async fn notification_stream<F, Fut>(
    shard: &Shard,
    response: &mut ResponseWriter<'_>,
    feed: StreamFeed,
    session_ended: F,
) -> std::io::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    enum Wake {
        Ended,
        Drained,
        Left,
        KeepAlive,
        ListsChanged,
    }
    let keepalive = Duration::from_millis(shard.config.limits.sse_keepalive_interval_ms);
    let router = shard.endpoint.router();
    let _open = StreamGauge::open(&shard.notification_streams);
    let mut stream = response.sse(200, &[])?;
    match &feed {
        StreamFeed::SessionGet => stream.event(Some("0"), b"")?,
        StreamFeed::Listen(subscription) => stream.event(None, &subscription.acknowledgment())?,
    }
    stream.flush().await?;
    let ended = session_ended();
    futures_lite::pin!(ended);
    let mut lists_changed = router.lists_changed();
    loop {
        let tick = async {
            glommio::timer::sleep(keepalive).await;
            Wake::KeepAlive
        };
        let ended = async {
            ended.as_mut().await;
            Wake::Ended
        };
        let drained = async {
            shard.shutdown.wait().await;
            Wake::Drained
        };
        let changed = async {
            lists_changed.wait().await;
            Wake::ListsChanged
        };
        let left = async {
            stream.peer_closed().await;
            Wake::Left
        };
        let stop = future::or(ended, future::or(drained, left));
        let wake = future::or(stop, future::or(changed, tick)).await;
        match wake {
            Wake::Ended | Wake::Left => break,
            Wake::Drained => {
                if let StreamFeed::Listen(subscription) = &feed {
                    stream.event(None, &subscription.closing())?;
                }
                break;
            }
            Wake::KeepAlive => stream.comment("keep-alive"),
            Wake::ListsChanged => {
                lists_changed = router.lists_changed();
                for method in router.changed_list_methods() {
                    let notification = match &feed {
                        StreamFeed::SessionGet => Some(jsonrpc::notification_bytes(method, None)),
                        StreamFeed::Listen(subscription) => subscription.list_changed(method),
                    };
                    if let Some(notification) = notification {
                        stream.event(None, &notification)?;
                    }
                }
            }
        }
        stream.flush().await?;
    }
    stream.finish().await
}

/// Counts an open notification stream for `/status` while it lives.
struct StreamGauge<'a>(&'a Cell<u32>);

impl<'a> StreamGauge<'a> {
    fn open(gauge: &'a Cell<u32>) -> StreamGauge<'a> {
        gauge.set(gauge.get() + 1);
        StreamGauge(gauge)
    }
}

impl Drop for StreamGauge<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}
