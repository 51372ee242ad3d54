//! One shard: everything a pinned executor owns, and the tasks it runs.
//!
//! A shard owns its listener (SO_REUSEPORT, shared port), its connections (at most
//! `limits.connections_max`; shard 0 also serves the admin listener's, at most
//! `admin.connections_max` apart from those), its session table, its refusal counters, its end of
//! the mesh and its epoch clock. None of it is `Send`: it lives in an `Rc` on the executor's
//! thread, and only [`MeshMessage`]s leave it.

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::future;
use glommio::net::{TcpListener, TcpStream};
use hashbrown::HashMap;
use serde_json::value::RawValue;

use crate::config::Config;
use crate::http::{self, HttpLimits, ResponseWriter};
use crate::mcp::answer::answer_message;
use crate::mcp::call::Era;
use crate::mcp::router::Router;
use crate::mcp::session::{SessionId, SessionTable};
use crate::mcp::transport::{Endpoint, HttpReply, McpRequest, Refused, Reply};
use crate::pipeline::context::RequestContext;
use crate::pipeline::hooks::Features;
use crate::pipeline::respond::{stream_events, EventSource, Relayed, StreamFeed};
use crate::pipeline::{Decision, Forwarding, Pipeline};
use crate::refusal::RefusalReason;
use crate::runtime::mesh::{
    Asked, ForwardedReply, ForwardedRequest, Mesh, MeshError, MeshMessage, Ticket,
};
use crate::runtime::status::{GenerationStatus, PendingStatus, ShardStatus, UpstreamStatus};
use crate::support::clock::ShardClock;
use crate::support::event::Event;
use crate::upstream::call::Relay;

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
            Front::Mcp => |shard| &shard.pipeline.shutdown,
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
    /// The MCP endpoint's request path, with the session table and refusal counters.
    pub pipeline: Pipeline,
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
        let sessions = SessionTable::for_config(id, &config)?;
        let router = Router::new(&config, id, clock)?;
        let endpoint = Endpoint::new(id, shards, router, config.clone());
        let pipeline = Pipeline::new(id, config.clone(), endpoint, sessions, clock, Features);
        Ok(Shard {
            id,
            core,
            http_limits: HttpLimits::from_config(&config),
            config,
            pipeline,
            drained: Event::default(),
            mesh,
            forwarded_relays: RefCell::new(HashMap::new()),
            connections: Slots::default(),
            admin_connections: Slots::default(),
        })
    }

    /// Milliseconds on the process-wide monotonic clock (the same origin on every shard).
    pub fn now_ms(&self) -> u64 {
        self.pipeline.now_ms()
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
                    let refusals = &shard.pipeline.refusals;
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
            Front::Mcp => {
                let refused = Refused::invalid(
                    RefusalReason::ConnectionsFull,
                    format!(
                        "shard {} holds {} connections (limits.connections_max); retry later",
                        self.id, self.config.limits.connections_max
                    ),
                );
                self.pipeline
                    .endpoint
                    .refuse(refused, &self.pipeline.refusals)
            }
            Front::Admin => {
                self.pipeline
                    .refusals
                    .count(RefusalReason::AdminConnectionsFull);
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
        http::refuse_connection(
            stream,
            &self.http_limits,
            &self.pipeline.refusals,
            stop,
            refusal,
        )
        .await;
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
        while !self.pipeline.shutdown.is_set() {
            let stopped = future::or(
                async {
                    glommio::timer::sleep(tick).await;
                    false
                },
                async {
                    self.pipeline.shutdown.wait().await;
                    true
                },
            )
            .await;
            if stopped {
                break;
            }
            let ended = {
                let mut sessions = self.pipeline.sessions.borrow_mut();
                sessions.advance(self.now_ms());
                sessions.take_ended()
            };
            let router = self.pipeline.endpoint.router();
            router.upstreams().sessions_ended(&ended);
            router.tick();
            for upstream in router.upstreams().take_announced_changes() {
                self.mesh
                    .broadcast(|| MeshMessage::ListsChanged { upstream });
            }
        }
    }

    /// Handles one mesh message addressed to this shard.
    pub async fn on_mesh_message(self: &Rc<Self>, from: u8, message: MeshMessage) {
        match message {
            MeshMessage::Forward { ticket, request } => {
                let (reply, context) = self.answer_forwarded(from, ticket, &request).await;
                let answer = MeshMessage::Reply {
                    ticket,
                    reply,
                    context,
                };
                let _ = self.mesh.answer(from, answer).await;
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
            MeshMessage::ListsChanged { upstream } => self
                .pipeline
                .endpoint
                .router()
                .upstreams()
                .hear_lists_changed(upstream),
            MeshMessage::Reply { ticket, .. }
            | MeshMessage::StatusReply { ticket, .. }
            | MeshMessage::RelayEvent { ticket, .. } => self.mesh.deliver(ticket, message),
        }
    }

    /// Decides a request shard `from` forwarded (its session is this shard's) and returns the
    /// reply with what was decided.
    async fn answer_forwarded(
        &self,
        from: u8,
        ticket: Ticket,
        request: &ForwardedRequest,
    ) -> (ForwardedReply, RequestContext) {
        let mut cx = request.context;
        if request.stream_check {
            let id = request.session_id.as_deref().and_then(SessionId::parse);
            let sessions = self.pipeline.sessions.borrow();
            let reply = match id.is_some_and(|id| sessions.is_live(id, self.now_ms())) {
                true => ForwardedReply::StreamOpened,
                false => ForwardedReply::Http(HttpReply {
                    status: 404,
                    headers: Vec::new(),
                    json: None,
                }),
            };
            return (reply, cx);
        }
        let reply = match self.pipeline.decide(&request.as_request(), &mut cx).await {
            Decision::Reply(Reply::Http(reply)) => ForwardedReply::Http(reply),
            Decision::Reply(Reply::Stream { .. }) => ForwardedReply::StreamOpened,
            Decision::Reply(Reply::Relay { relay, id, era }) => {
                let answer = self
                    .relay_forwarded(from, ticket, relay, &id, era, &mut cx)
                    .await;
                ForwardedReply::Http(
                    answer.unwrap_or_else(|message| self.internal_error(&mut cx, message)),
                )
            }
            Decision::Forward { owner } => {
                let message = format!("session owned by shard {owner} reached shard {}", self.id);
                ForwardedReply::Http(self.internal_error(&mut cx, message))
            }
            // Requests without a session are answered where they arrive, never forwarded.
            Decision::Reply(Reply::Listen(_)) => {
                let message = format!(
                    "a subscriptions/listen reached shard {} over the mesh",
                    self.id
                );
                ForwardedReply::Http(self.internal_error(&mut cx, message))
            }
        };
        (reply, cx)
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
        cx: &mut RequestContext,
    ) -> Result<HttpReply, String> {
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
        if let Some(reason) = relay.refusal() {
            self.pipeline.count(cx, reason);
        }
        let Some(answer) = answer else {
            drop(relay);
            return Err(format!("shard {from}'s client left"));
        };
        let (status, body) = answer_message(id, answer, era);
        Ok(HttpReply {
            status,
            headers: Vec::new(),
            json: Some(body),
        })
    }

    /// This shard's gauges.
    pub fn status(&self) -> ShardStatus {
        let sessions = self.pipeline.sessions.borrow();
        let table = sessions.stats();
        ShardStatus {
            shard: self.id,
            core: self.core,
            draining: self.pipeline.shutdown.is_set(),
            connections: self.connections.open.get(),
            admin_connections: (self.id == 0).then(|| self.admin_connections.open.get()),
            notification_streams: self.pipeline.notification_streams(),
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
            refusals: self.pipeline.refusals.nonzero().collect(),
            pending: self.pending_status(),
            upstreams: self.upstream_statuses(),
        }
    }

    fn pending_status(&self) -> PendingStatus {
        let upstreams = self.pipeline.endpoint.router().upstreams();
        let inflight = upstreams.inflight();
        let stats = inflight.stats();
        let input = upstreams.input_stats();
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
            relayed_requests: upstreams.server_requests().waiting(),
            relayed_requests_refused_total: upstreams.server_requests().refused_total(),
            input_calls: input.calls,
            input_rounds_total: input.rounds_total,
            input_rounds_exceeded_total: input.rounds_exceeded_total,
            refusals: stats.refusals.to_vec(),
        }
    }

    fn upstream_statuses(&self) -> Vec<UpstreamStatus> {
        let upstreams = self.pipeline.endpoint.router().upstreams();
        let per_upstream = upstreams.inflight().stats().per_upstream;
        upstreams
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

impl Forwarding for Shard {
    type Hooks = Features;

    fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Carries `request` to shard `owner` over the mesh and writes what comes back: its reply,
    /// the events of a call it runs ahead of the call's answer, or the session's GET stream.
    async fn forward(
        &self,
        owner: u8,
        request: &McpRequest<'_>,
        cx: &mut RequestContext,
        response: &mut ResponseWriter<'_>,
    ) -> io::Result<()> {
        let pipeline = &self.pipeline;
        let forwarded = ForwardedRequest::from_request(request, *cx);
        let asked = match self.mesh.ask_start(owner, |ticket| MeshMessage::Forward {
            ticket,
            request: forwarded,
        }) {
            Ok(asked) => asked,
            Err(error) => {
                let reply = self.mesh_refusal(cx, error);
                return pipeline.write_reply(response, reply, cx).await;
            }
        };
        let ticket = asked.ticket;
        let client_left = || {
            // The owner abandons the call; if the channel is full it finishes it unheard.
            let _ = self.mesh.send(owner, MeshMessage::RelayCancel { ticket });
            io::Error::new(ErrorKind::ConnectionAborted, "the client left")
        };
        let first = future::or(async { Some(asked.next().await) }, async {
            response.peer_gone().await;
            None
        })
        .await;
        let event = match first.ok_or_else(client_left)? {
            Ok(MeshMessage::RelayEvent { event, .. }) => event,
            Ok(MeshMessage::Reply { reply, context, .. }) => {
                drop(asked);
                cx.decided_by_owner(&context);
                return self
                    .forwarded_reply(owner, request, response, reply, cx)
                    .await;
            }
            Ok(_) => {
                let reply = self.internal_error(
                    cx,
                    format!("shard {owner} answered a forward with another message"),
                );
                return pipeline.write_reply(response, reply, cx).await;
            }
            Err(error) => {
                let reply = self.mesh_refusal(cx, error);
                return pipeline.write_reply(response, reply, cx).await;
            }
        };
        // Events came first: the answer is an event stream, ended by the final message.
        cx.status = Some(200);
        let mut source = ForwardedEvents { asked, cx };
        stream_events(response, event, &mut source, client_left).await
    }
}

/// The events of a call the owner runs, as they come over the mesh, then its answer.
struct ForwardedEvents<'a, 'm> {
    asked: Asked<'m>,
    cx: &'a mut RequestContext,
}

impl EventSource for ForwardedEvents<'_, '_> {
    async fn next_message(&mut self) -> Option<Relayed> {
        match self.asked.next().await {
            Ok(MeshMessage::RelayEvent { event, .. }) => Some(Relayed::Event(event)),
            Ok(MeshMessage::Reply {
                reply: ForwardedReply::Http(reply),
                context,
                ..
            }) => {
                self.cx.decided_by_owner(&context);
                Some(Relayed::Answer(reply.json.unwrap_or_default()))
            }
            _ => None,
        }
    }
}

impl Shard {
    /// Writes the owner's whole answer to a forwarded request: an HTTP reply, or the session's
    /// GET stream, kept open while the owner says the session lives.
    async fn forwarded_reply(
        &self,
        owner: u8,
        request: &McpRequest<'_>,
        response: &mut ResponseWriter<'_>,
        reply: ForwardedReply,
        cx: &mut RequestContext,
    ) -> io::Result<()> {
        let pipeline = &self.pipeline;
        match reply {
            ForwardedReply::Http(reply) => pipeline.write_reply(response, reply, cx).await,
            ForwardedReply::StreamOpened => {
                cx.status = Some(200);
                let owner_still_has_session = || async {
                    loop {
                        glommio::timer::sleep(FORWARDED_STREAM_CHECK).await;
                        match self.session_lives(owner, request).await {
                            // A busy mesh is no answer: ask again at the next check.
                            Ok(true) | Err(_) => {}
                            Ok(false) => return,
                        }
                    }
                };
                let feed = StreamFeed::SessionGet;
                pipeline
                    .notification_stream(response, feed, owner_still_has_session)
                    .await
            }
        }
    }

    /// Asks shard `owner` whether the session `request` names still lives (without extending
    /// its idle deadline); `Err` when the mesh could not carry the question.
    async fn session_lives(&self, owner: u8, request: &McpRequest<'_>) -> Result<bool, MeshError> {
        let mut check = ForwardedRequest::from_request(request, RequestContext::new(self.id, 0));
        check.stream_check = true;
        let answer = self
            .mesh
            .ask(owner, |ticket| MeshMessage::Forward {
                ticket,
                request: check,
            })
            .await?;
        Ok(matches!(
            answer,
            MeshMessage::Reply {
                reply: ForwardedReply::StreamOpened,
                ..
            }
        ))
    }

    /// The 503 for a request the mesh could not carry.
    fn mesh_refusal(&self, cx: &mut RequestContext, error: MeshError) -> HttpReply {
        let refused = Refused::invalid(RefusalReason::MeshFull, error.to_string());
        self.pipeline.refuse(cx, refused)
    }

    fn internal_error(&self, cx: &mut RequestContext, message: String) -> HttpReply {
        let refused = Refused::invalid(RefusalReason::Internal, message);
        self.pipeline.refuse(cx, refused)
    }
}
