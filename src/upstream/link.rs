//! One upstream as one shard speaks to it: the MCP handshake, the exchange of one request, and
//! what arrives unasked (notifications, answers on a stdio child's stdout).
//!
//! Kinds: `builtin` answers in-process; `http` speaks Streamable HTTP over the shard's pool
//! (the stateless 2026-07-28 era when the server answers `server/discover`, else the session
//! era with one upstream session per shard, re-initialized once when the server says it
//! expired); `stdio` speaks newline-delimited JSON-RPC to the shard's child, handshaking again
//! with every child the supervisor restarts.
//!
//! Sessions of a session-era `http` upstream with `session_mode = "per_client"`: a session-era
//! client's calls go under that client session's own upstream session, opened at its first
//! call (`initialize`, `notifications/initialized`, then its `logging/setLevel` if it chose a
//! level), re-initialized once when the server says it expired, and closed with `DELETE` once
//! the client session ends (`upstream::sessions` keeps the table). Stateless clients and the
//! gateway's own requests use the shared session.
//!
//! Ownership: each shard builds one [`UpstreamLink`] per `[[upstreams]]` entry and keeps it in
//! an `Rc`; nothing here is `Send`.
//!
//! Ids: requests from clients go out under their pending-table id (a JSON integer); the
//! gateway's own requests (handshake, lists, `logging/setLevel`) under `"sg-<n>"` strings, so
//! the two never meet.
//!
//! Freshness of the lists: a session-era upstream announces changes with
//! `notifications/*/list_changed`, during a call, on a stdio child's stdout, or on an `http`
//! upstream's listen stream ([`listen`]); it reaches the upstream session of one shard, which
//! tells the others over the mesh after its epoch tick ([`UpstreamLink::take_announced`]). A
//! 2026-07-28 upstream announces nothing: its results
//! carry `ttlMs`, and the lists go stale when the smallest `ttlMs` of the last refresh
//! (`server/discover` and every list page; none given counts as 0) has passed. Either way the
//! epoch tick refreshes them, so `epoch.tick_ms` is the floor: `ttlMs: 0` means one refresh per
//! tick per shard, never more, and a refresh under way is not started again.
//!
//! This file is the link's state and its public methods; each concern behind them has a file:
//! [`lists`] (fetching the four lists, their `ttlMs`), [`exchange`] (one POST and its answer,
//! a JSON body or the events of an event stream), [`sessions`] (the handshake and the upstream
//! sessions of an `http` upstream: shared and per client, re-initialized when expired, closed),
//! [`stdio`] (the child's handshake, requests and stdout), [`relay`] (what an upstream sends
//! during a call, passed to its client) and [`listen`] (the session era's GET stream).

mod exchange;
mod listen;
mod lists;
mod relay;
mod sessions;
mod stdio;

pub use listen::{ListenState, ListenStats};

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use hashbrown::HashMap;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::calls::inflight::{CallFailure, CallState, ClientRoute, InFlight, ServerRequests};
use crate::config::url::UpstreamUrl;
use crate::config::{self, SessionMode, UpstreamKind};
use crate::upstream::breaker::{Admission, Breaker};
use crate::upstream::builtin::Demo;
use crate::upstream::input::BridgedCall;
use crate::upstream::pool::UpstreamPool;
use crate::upstream::sessions::{ClientSessionStats, ClientSessions};
use crate::upstream::stdio::{StdioSpec, StdioUpstream};
use crate::wire::gateway_client::SESSION_ERA_VERSION;
use crate::wire::ids::{IdForm, UpstreamRequestId};
use crate::wire::jsonrpc::{self, EnvelopeError, EnvelopeErrorKind, Message, Outcome, RpcError};
use exchange::Mirrored;
use lists::ListsTtl;

/// How long the gateway's own requests (handshake, lists, `logging/setLevel`) may take at
/// most; an upstream's shorter `request_timeout_ms` applies instead.
const CONTROL_TIMEOUT_MS: u64 = 30_000;

/// How long a `DELETE` of a per-client upstream session may take at most, and how long the
/// shard waits at shutdown for all of them.
pub const SESSION_CLOSE_TIMEOUT_MS: u64 = 5_000;

/// Which upstream session a client's request goes under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionScope {
    /// The shard's shared session: stateless clients and the gateway's own requests.
    Shared,
    /// A session-era client session (by its secret): its own upstream session where the
    /// upstream is `per_client`, else the shared one. `log_level` is its last
    /// `logging/setLevel`, sent when its upstream session opens.
    Client {
        secret: u128,
        log_level: Option<&'static str>,
    },
}

impl SessionScope {
    /// The scope of a request from `route`.
    pub fn of(route: ClientRoute, log_level: Option<&'static str>) -> SessionScope {
        match route {
            ClientRoute::Session(secret) => SessionScope::Client { secret, log_level },
            ClientRoute::Request(_) => SessionScope::Shared,
        }
    }
}

/// Which era an upstream speaks, learned at the handshake.
#[derive(Clone, Debug, PartialEq, Eq)]
enum UpstreamEra {
    /// Not connected yet, or lost.
    Unknown,
    /// Session era at `version`, under `session` when the server gave one.
    Session {
        version: &'static str,
        session: Option<String>,
    },
    /// 2026-07-28: every request carries its own `_meta`.
    Stateless,
}

/// The reply to a call, for the caller to settle its [`CallState`] with.
pub type CallOutcome = Result<Box<RawValue>, CallFailure>;

/// A client's request as the router hands it over.
pub struct CallRequest<'a> {
    /// One of the routed methods (`tools/call`, …).
    pub method: &'a str,
    /// The params object as JSON text, already rewritten for this upstream (its own names, the
    /// gateway's progress token and `_meta`).
    pub params: &'a [u8],
    /// What the stateless era mirrors in `Mcp-Name` (`params.name` or `params.uri`).
    pub name: Option<&'a str>,
    /// `upstreams[].request_timeout_ms`.
    pub timeout_ms: u64,
    /// The client's `Mcp-Param-*` fields, passed on.
    pub param_headers: &'a [(String, String)],
    /// The upstream session it goes under (a session-era client's own on a per_client
    /// upstream).
    pub scope: SessionScope,
}

/// One upstream on one shard.
pub struct UpstreamLink {
    /// Index in `[[upstreams]]`.
    pub index: u16,
    pub config: config::Upstream,
    /// `limits.json_depth_max`: what it sends nests at most this deep.
    json_depth_max: u32,
    kind: LinkKind,
    breaker: RefCell<Breaker>,
    /// The upstream's `capabilities` from its last handshake; `None` while it is down.
    capabilities: RefCell<Option<Value>>,
    /// Why the last handshake failed, for `/status` and error messages.
    last_error: RefCell<Option<String>>,
    /// The lists of the last refresh, in [`Kind::ALL`] order.
    lists: RefCell<[Option<Box<RawValue>>; 4]>,
    /// A handshake is under way (start-up, a retry, or after a stdio restart).
    connecting: Cell<bool>,
    /// The upstream announced a list change (`notifications/*/list_changed`) since the last
    /// refresh; the epoch tick refreshes its lists.
    lists_changed: Cell<bool>,
    /// It announced a list change since the shard last told the other shards.
    announced: Cell<bool>,
    /// When the lists of a 2026-07-28 upstream go stale.
    lists_ttl: ListsTtl,
    control_next: Cell<u64>,
    unroutable_total: Cell<u64>,
    messages_too_deep_total: Cell<u64>,
    server_requests_refused_total: Cell<u64>,
}

enum LinkKind {
    Builtin(Demo),
    Http(HttpLink),
    Stdio(StdioLink),
}

struct HttpLink {
    pool: UpstreamPool,
    /// The shared session's era (the upstream's, for the stateless era).
    era: RefCell<UpstreamEra>,
    /// The session era's standalone GET stream.
    listen: listen::Listen,
    /// `session_mode = "per_client"`: each client session's own upstream session.
    clients: Option<ClientSessions>,
    /// At most this many `DELETE`s at once (`pool_connections_max`).
    closers_max: u32,
    /// Whether the log said that per_client has nothing to do for a stateless upstream.
    stateless_noted: Cell<bool>,
}

struct StdioLink {
    child: StdioUpstream,
    /// The gateway's own requests waiting for their answer, by id text.
    control: RefCell<HashMap<String, Rc<CallState>>>,
    /// Whether the running child finished its handshake.
    ready: Cell<bool>,
}

/// Counters of one link for `/status`.
pub struct LinkStats {
    pub up: bool,
    /// A handshake or a refresh of its lists is under way.
    pub connecting: bool,
    pub breaker: &'static str,
    pub breaker_opened_total: u64,
    pub breaker_refused_total: u64,
    pub unroutable_total: u64,
    pub messages_too_deep_total: u64,
    pub server_requests_refused_total: u64,
    pub last_error: Option<String>,
    pub pool: Option<crate::upstream::pool::PoolStats>,
    pub stdio: Option<crate::upstream::stdio::StdioStats>,
    /// The session era's listen stream (`n/a` for other kinds and eras).
    pub listen: ListenStats,
    /// The smallest `ttlMs` of the last refresh (2026-07-28 era only).
    pub lists_ttl_ms: Option<u64>,
    /// Refreshes of the lists that succeeded.
    pub lists_refreshes_total: u64,
    pub sessions: Option<ClientSessionStats>,
}

impl UpstreamLink {
    /// Builds the link; `http` resolves its URL (and, per_client, reserves a table for
    /// `client_sessions_max` client sessions), `stdio` starts its child. Its messages are held
    /// to `json_depth_max`.
    pub fn new(
        index: u16,
        upstream: &config::Upstream,
        client_sessions_max: u32,
        json_depth_max: u32,
    ) -> Result<UpstreamLink, String> {
        let name = &upstream.name;
        let kind = match &upstream.kind {
            UpstreamKind::Builtin { sleep_ms_max } => LinkKind::Builtin(Demo::new(*sleep_ms_max)),
            UpstreamKind::Http(http) => {
                let url = UpstreamUrl::parse(&http.url)
                    .map_err(|e| format!("upstream {name}: url {:?}: {e}", http.url))?;
                let clients = match http.session_mode {
                    SessionMode::Shared => None,
                    SessionMode::PerClient => Some(
                        ClientSessions::new(client_sessions_max)
                            .map_err(|e| format!("upstream {name}: {e}"))?,
                    ),
                };
                LinkKind::Http(HttpLink {
                    pool: UpstreamPool::new(url, &http.pool),
                    era: RefCell::new(UpstreamEra::Unknown),
                    listen: listen::Listen::default(),
                    clients,
                    closers_max: http.pool.pool_connections_max,
                    stateless_noted: Cell::new(false),
                })
            }
            UpstreamKind::Stdio(stdio) => {
                let spec = StdioSpec {
                    name: name.clone(),
                    command: stdio.command.clone(),
                    args: stdio.args.clone(),
                    env: stdio.env.clone(),
                    cwd: stdio.cwd.clone(),
                };
                LinkKind::Stdio(StdioLink {
                    child: StdioUpstream::start(spec, stdio.limits),
                    control: RefCell::new(HashMap::new()),
                    ready: Cell::new(false),
                })
            }
        };
        Ok(UpstreamLink {
            index,
            config: upstream.clone(),
            json_depth_max,
            kind,
            breaker: RefCell::new(Breaker::new(
                upstream.breaker_failures,
                upstream.breaker_open_ms,
            )),
            capabilities: RefCell::new(None),
            last_error: RefCell::new(None),
            lists: RefCell::new(Default::default()),
            connecting: Cell::new(false),
            lists_changed: Cell::new(false),
            announced: Cell::new(false),
            lists_ttl: ListsTtl::default(),
            control_next: Cell::new(0),
            unroutable_total: Cell::new(0),
            messages_too_deep_total: Cell::new(0),
            server_requests_refused_total: Cell::new(0),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Whether the last handshake succeeded and nothing since said the upstream went away.
    pub fn is_up(&self) -> bool {
        self.capabilities.borrow().is_some()
    }

    /// Why the upstream is down, when it is.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.borrow().clone()
    }

    /// Why it is not up, for a call refused because it is not: its last failure, or that its
    /// handshake is under way.
    pub fn down_reason(&self) -> String {
        self.last_error()
            .unwrap_or_else(|| match self.connecting.get() {
                true => format!(
                    "upstream {} is connecting: its handshake is under way",
                    self.name()
                ),
                false => format!("upstream {} is down", self.name()),
            })
    }

    /// Whether a handshake or a refresh of its lists is under way.
    pub fn is_connecting(&self) -> bool {
        self.connecting.get()
    }

    /// Whether the upstream declared capability `name` (`tools`, `logging`, …).
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .borrow()
            .as_ref()
            .is_some_and(|caps| caps.get(name).is_some_and(|c| !c.is_null()))
    }

    /// Whether it takes `logging/setLevel`: it logs and keeps a level per connection (the
    /// stateless era takes the level in each request's `_meta` instead).
    pub fn takes_set_level(&self) -> bool {
        self.has_capability("logging") && !self.speaks_stateless()
    }

    fn mark_down(&self, reason: String) {
        *self.capabilities.borrow_mut() = None;
        *self.last_error.borrow_mut() = Some(reason);
        self.session_changed();
    }

    /// The upstream session changed (a handshake, a new session, the upstream went down): the
    /// listen stream follows.
    fn session_changed(&self) {
        if let LinkKind::Http(http) = &self.kind {
            http.listen.session_changed();
        }
    }

    /// Whether its entries belong in the lists clients see: it is up and its breaker is not
    /// open.
    pub fn is_listed(&self, now_ms: u64) -> bool {
        self.is_up() && !self.breaker.borrow().is_open(now_ms)
    }

    /// Whether the epoch tick should refresh it: it is down (try the handshake again), it
    /// announced a list change, or (2026-07-28 era) its lists' `ttlMs` passed.
    pub fn wants_refresh(&self) -> bool {
        let stale = self.lists_changed.get() || self.lists_ttl.is_stale(Instant::now());
        (!self.is_up() || stale) && !self.connecting.get()
    }

    /// Whether it announced a list change since the last call (for the other shards).
    pub fn take_announced(&self) -> bool {
        self.announced.replace(false)
    }

    /// Another shard heard this upstream announce a list change: refresh here too.
    pub fn hear_lists_changed(&self) {
        self.lists_changed.set(true);
    }

    /// The lists of the last refresh, in [`Kind::ALL`] order.
    pub fn cached_lists(&self) -> [Option<Box<RawValue>>; 4] {
        self.lists.borrow().clone()
    }

    /// Handshakes (when down) and fetches every list. On failure the upstream is down.
    pub async fn refresh(&self) -> Result<(), String> {
        if self.connecting.replace(true) {
            return Err(format!(
                "upstream {}: a handshake is already under way",
                self.name()
            ));
        }
        let refreshed = self.refresh_now().await;
        self.connecting.set(false);
        refreshed
    }

    /// Runs the MCP handshake. `Ok` once the upstream is ready for requests.
    async fn connect(&self) -> Result<(), String> {
        let result = match &self.kind {
            LinkKind::Builtin(_) => serde_json::from_str(Demo::capabilities_json())
                .map_err(|e| format!("builtin capabilities: {e}")),
            LinkKind::Http(http) => self.http_handshake(http).await,
            LinkKind::Stdio(stdio) => self.stdio_handshake(stdio).await,
        };
        match result {
            Ok(capabilities) => {
                *self.capabilities.borrow_mut() = Some(capabilities);
                *self.last_error.borrow_mut() = None;
                self.session_changed();
                Ok(())
            }
            Err(reason) => {
                let own = format!("upstream {}:", self.name());
                let reason = match reason.starts_with(&own) {
                    true => reason,
                    false => format!("{own} {reason}"),
                };
                self.mark_down(reason.clone());
                Err(reason)
            }
        }
    }

    /// Asks the breaker whether a call may go out now.
    pub fn admit(&self, now_ms: u64) -> Admission {
        self.breaker.borrow_mut().admit(now_ms)
    }

    /// Feeds a call's outcome to the breaker: only an upstream that failed to answer counts
    /// against it; a timeout or a cancellation says nothing either way (see `breaker`).
    pub fn record(&self, outcome: &CallOutcome, now_ms: u64) {
        let mut breaker = self.breaker.borrow_mut();
        match outcome {
            Err(CallFailure::Unavailable(_)) => breaker.failed(now_ms),
            Err(CallFailure::TimedOut(_)) | Err(CallFailure::Cancelled) => {
                breaker.inconclusive(now_ms)
            }
            Err(CallFailure::Busy(_)) => {}
            Ok(_) | Err(CallFailure::Rpc(_)) => breaker.succeeded(),
        }
    }

    /// A call given up before its outcome (the client left): its breaker probe, if it was one,
    /// gives its place to the next call.
    pub fn abandoned(&self, now_ms: u64) {
        self.breaker.borrow_mut().inconclusive(now_ms);
    }

    /// Sends a client's request under `id` and returns the answer. Notifications about it go
    /// to `state` as they come. For `stdio` the answer comes through [`UpstreamLink::dispatch`]
    /// into `state`; this returns once sent.
    pub async fn call(
        &self,
        id: UpstreamRequestId,
        request: &CallRequest<'_>,
        client_token: Option<&[u8]>,
        state: &CallState,
        requests: &ServerRequests,
    ) -> Option<CallOutcome> {
        let method = request.method;
        match &self.kind {
            LinkKind::Builtin(demo) => {
                let params = String::from_utf8(request.params.to_vec())
                    .ok()
                    .and_then(|text| RawValue::from_string(text).ok());
                let answer = demo
                    .handle(method, params.as_deref(), SESSION_ERA_VERSION)
                    .await;
                Some(answer.map_err(CallFailure::Rpc))
            }
            LinkKind::Http(http) => {
                let id_json = id.to_json(IdForm::Number);
                let body = jsonrpc::request_bytes(id_json.as_bytes(), method, Some(request.params));
                let mut on_event =
                    |message: &[u8]| self.relay(message, id, client_token, state, requests);
                let mirrored = Mirrored {
                    method,
                    name: request.name,
                    params: request.param_headers,
                };
                let answer = self
                    .http_send(
                        http,
                        id_json.as_bytes(),
                        &body,
                        mirrored,
                        (request.timeout_ms, request.scope),
                        &mut on_event,
                    )
                    .await;
                Some(answer)
            }
            LinkKind::Stdio(stdio) => {
                if !stdio.ready.get() {
                    return Some(Err(self.restarting()));
                }
                let id_json = id.to_json(IdForm::Number);
                let body = jsonrpc::request_bytes(id_json.as_bytes(), method, Some(request.params));
                match stdio.child.send(&body).await {
                    Ok(()) => None,
                    Err(e) => Some(Err(CallFailure::Unavailable(format!(
                        "upstream {}: {e}",
                        self.name()
                    )))),
                }
            }
        }
    }

    /// Whether it speaks the 2026-07-28 era: it asks for client input with `input_required`
    /// results rather than requests of its own, and every request to it carries the
    /// 2026-07-28 members in its `_meta`.
    pub fn speaks_stateless(&self) -> bool {
        match &self.kind {
            LinkKind::Http(http) => *http.era.borrow() == UpstreamEra::Stateless,
            _ => false,
        }
    }

    /// Sends `call` again with `params` carrying the client's input (`inputResponses`,
    /// `requestState`; JSON text, the gateway's `_meta` in as in the first request), as retry
    /// `round` of it: a new request under a wire id of its own (`"sg-<id>-input-<round>"`,
    /// since a retry must not reuse the first request's id), with what is left of the call's
    /// deadline. Notifications about it reach the call's client.
    pub async fn retry(
        &self,
        call: &BridgedCall,
        round: u32,
        params: Vec<u8>,
        requests: &ServerRequests,
    ) -> CallOutcome {
        let LinkKind::Http(http) = &self.kind else {
            return Err(CallFailure::Unavailable(format!(
                "upstream {} answered input_required, which only an http upstream of the \
                 2026-07-28 era may",
                self.name()
            )));
        };
        let left = call.deadline.saturating_duration_since(Instant::now());
        let timeout_ms = (left.as_millis() as u64).max(1);
        let wire_id = format!("\"sg-{}-input-{round}\"", call.id.0);
        let token = call.client_token.as_deref();
        let mut on_event =
            |message: &[u8]| self.relay(message, call.id, token, &call.state, requests);
        let body = jsonrpc::request_bytes(wire_id.as_bytes(), call.method, Some(&params));
        let mirrored = Mirrored {
            method: call.method,
            name: call.name.as_deref(),
            params: &call.param_headers,
        };
        self.http_send(
            http,
            wire_id.as_bytes(),
            &body,
            mirrored,
            // The 2026-07-28 era has no sessions: the shared scope.
            (timeout_ms, SessionScope::Shared),
            &mut on_event,
        )
        .await
    }

    /// Tells the upstream the gateway gave up on request `id` (`notifications/cancelled`),
    /// under the session the request went out in (`route`'s own, when it has one).
    pub async fn cancel(&self, id: UpstreamRequestId, reason: &str, route: ClientRoute) {
        let params = json!({ "requestId": id.0, "reason": reason });
        let body = jsonrpc::notification_bytes(
            "notifications/cancelled",
            Some(&jsonrpc::value_to_raw(&params)),
        );
        self.send_one_way(&body, "notifications/cancelled", route)
            .await;
    }

    /// The gateway's own request: handshake-independent plumbing for lists and
    /// `logging/setLevel`.
    pub async fn control_request(&self, method: &str, params: Option<Value>) -> CallOutcome {
        let id = self.next_control_id();
        match &self.kind {
            LinkKind::Builtin(demo) => {
                let params = params.map(|p| jsonrpc::value_to_raw(&p));
                demo.handle(method, params.as_deref(), SESSION_ERA_VERSION)
                    .await
                    .map_err(CallFailure::Rpc)
            }
            LinkKind::Http(http) => {
                self.http_request(
                    http,
                    id.as_bytes(),
                    method,
                    params,
                    (self.control_timeout_ms(), SessionScope::Shared),
                    &mut |message| self.unrelayed(message),
                )
                .await
            }
            LinkKind::Stdio(stdio) => self.stdio_request(stdio, id, method, params).await,
        }
    }

    fn control_timeout_ms(&self) -> u64 {
        self.config.request_timeout_ms.min(CONTROL_TIMEOUT_MS)
    }

    /// `"sg-<n>"`, JSON text: the id of the gateway's next own request.
    fn next_control_id(&self) -> String {
        let n = self.control_next.get();
        self.control_next.set(n + 1);
        format!("\"sg-{n}\"")
    }

    fn restarting(&self) -> CallFailure {
        CallFailure::Unavailable(self.down_reason())
    }

    /// A client's `logging/setLevel`: under its own upstream session on a per_client upstream
    /// (none open yet: the level goes out when it opens), else under the shared session.
    pub async fn set_level(&self, level: &'static str, scope: SessionScope) -> CallOutcome {
        if let (LinkKind::Http(http), SessionScope::Client { secret, .. }) = (&self.kind, scope) {
            if let (true, Some(clients)) = (self.keeps_client_sessions(http), &http.clients) {
                let Some((version, session)) = clients.open_session(secret) else {
                    return Ok(empty_result());
                };
                let era = UpstreamEra::Session { version, session };
                return self
                    .set_level_under(http, &era, level)
                    .await
                    .map(|_| empty_result());
            }
        }
        self.control_request("logging/setLevel", Some(json!({ "level": level })))
            .await
    }

    /// The client session `secret` ended: its upstream session, if it has one here, gets its
    /// `DELETE` soon.
    pub fn end_client_session(self: &Rc<Self>, secret: u128) {
        let LinkKind::Http(http) = &self.kind else {
            return;
        };
        if let Some(clients) = &http.clients {
            if clients.end(secret) {
                self.spawn_closers(http, clients);
            }
        }
    }

    /// The shard stops: every client session's upstream session gets its `DELETE`.
    pub fn end_client_sessions(self: &Rc<Self>) {
        let LinkKind::Http(http) = &self.kind else {
            return;
        };
        if let Some(clients) = &http.clients {
            clients.end_all();
            self.spawn_closers(http, clients);
        }
    }

    /// Whether upstream sessions wait for, or are in, their `DELETE`.
    pub fn is_closing_sessions(&self) -> bool {
        match &self.kind {
            LinkKind::Http(http) => http.clients.as_ref().is_some_and(|c| c.is_closing()),
            _ => false,
        }
    }

    /// Sends a client's answer to a relayed request (its id already restored), under the
    /// session the request came in (`route`'s own, when it has one).
    pub async fn respond(&self, message: &[u8], route: ClientRoute) {
        self.send_one_way(message, "", route).await;
    }

    /// Sends a notification or a response (`method` names it for the mirrored header; empty
    /// for a response) under `route`'s session; nothing comes back but a status. A stdio
    /// child between restart and handshake gets nothing: what it is told belongs to the one
    /// before it.
    async fn send_one_way(&self, body: &[u8], method: &str, route: ClientRoute) {
        match &self.kind {
            LinkKind::Builtin(_) => {}
            LinkKind::Http(http) => {
                let era = self.era_of_route(http, route);
                let _ = self
                    .http_post(
                        http,
                        &era,
                        body,
                        method,
                        self.control_timeout_ms(),
                        &mut |message| self.unrelayed(message),
                    )
                    .await;
            }
            LinkKind::Stdio(stdio) => {
                if stdio.ready.get() {
                    let _ = stdio.child.send(body).await;
                }
            }
        }
    }

    /// Reads what the upstream sends unasked until it shuts down. For `stdio`: the child's
    /// messages, settling answers and passing notifications and requests on; when a child
    /// ends, what was sent to it fails and the upstream is down until the epoch tick
    /// handshakes with the next one. For `http`: its listen stream ([`listen`]).
    pub async fn dispatch(
        self: &Rc<Self>,
        inflight: &InFlight,
        requests: &ServerRequests,
        now_ms: &dyn Fn() -> u64,
    ) {
        match &self.kind {
            LinkKind::Stdio(stdio) => self.read_stdio(stdio, inflight, requests, now_ms).await,
            LinkKind::Http(_) => self.listen().await,
            LinkKind::Builtin(_) => {}
        }
    }

    /// `message` from the upstream, read as JSON-RPC: its objects and arrays nest at most
    /// `limits.json_depth_max` deep.
    fn parse<'m>(&self, message: &'m [u8]) -> Result<Message<'m>, EnvelopeError<'m>> {
        jsonrpc::parse(message, self.json_depth_max)
    }

    /// Counts a message from the upstream that nothing waits for or can take.
    fn count_unroutable(&self) {
        self.unroutable_total.set(self.unroutable_total.get() + 1);
    }

    /// Counts a message from the upstream refused for nesting too deep.
    fn count_too_deep(&self) {
        self.messages_too_deep_total
            .set(self.messages_too_deep_total.get() + 1);
    }

    /// Counts a message from the upstream refused for its depth; the error the request it
    /// came for ends with, naming the upstream and the limit.
    fn refuse_too_deep(&self, too_deep: &EnvelopeError<'_>) -> RpcError {
        debug_assert_eq!(too_deep.kind(), EnvelopeErrorKind::TooDeep);
        self.count_too_deep();
        let name = self.name();
        let message = format!(
            "refused a message from upstream {name}: {}",
            too_deep.message()
        );
        let data = json!({"upstream": name, "reason": "json_depth_max"});
        RpcError::new(jsonrpc::INTERNAL_ERROR, message).with_data(jsonrpc::value_to_raw(&data))
    }

    /// Stops a stdio child (SIGTERM, SIGKILL, reap) or an `http` upstream's listen stream.
    pub async fn shutdown(&self) {
        match &self.kind {
            LinkKind::Stdio(stdio) => stdio.child.shutdown().await,
            LinkKind::Http(http) => http.listen.stop(),
            LinkKind::Builtin(_) => {}
        }
    }

    /// Closes idle pooled connections past their time; the epoch clock calls it.
    pub fn close_expired(&self) {
        if let LinkKind::Http(http) = &self.kind {
            http.pool.close_expired();
        }
    }

    pub fn stats(&self) -> LinkStats {
        let breaker = self.breaker.borrow();
        LinkStats {
            up: self.is_up(),
            connecting: self.is_connecting(),
            breaker: breaker.state().as_str(),
            breaker_opened_total: breaker.opened_total(),
            breaker_refused_total: breaker.refused_total(),
            unroutable_total: self.unroutable_total.get(),
            messages_too_deep_total: self.messages_too_deep_total.get(),
            server_requests_refused_total: self.server_requests_refused_total.get(),
            last_error: self.last_error(),
            pool: match &self.kind {
                LinkKind::Http(http) => Some(http.pool.stats()),
                _ => None,
            },
            stdio: match &self.kind {
                LinkKind::Stdio(stdio) => Some(stdio.child.stats()),
                _ => None,
            },
            listen: match &self.kind {
                LinkKind::Http(http) => http.listen.stats(self.listen_fallback()),
                _ => listen::Listen::default().stats(ListenState::NotApplicable),
            },
            lists_ttl_ms: self.lists_ttl.ttl_ms(),
            lists_refreshes_total: self.lists_ttl.refreshes_total(),
            sessions: match &self.kind {
                LinkKind::Http(http) => http.clients.as_ref().map(ClientSessions::stats),
                _ => None,
            },
        }
    }
}

fn failure_text(failure: &CallFailure) -> String {
    match failure {
        CallFailure::Rpc(e) => format!("answered error {}: {}", e.code, e.message),
        CallFailure::Unavailable(m) | CallFailure::TimedOut(m) | CallFailure::Busy(m) => m.clone(),
        CallFailure::Cancelled => "cancelled".to_owned(),
    }
}

fn empty_result() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("`{}` is valid JSON")
}

/// A response's outcome as a call settles with it.
fn outcome_of(outcome: &Outcome<'_>) -> CallOutcome {
    match outcome.answer() {
        Ok(answer) => answer.map_err(CallFailure::Rpc),
        Err(e) => Err(CallFailure::Unavailable(format!(
            "unreadable error object: {e}"
        ))),
    }
}
