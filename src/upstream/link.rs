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
//! the client session ends (`sessions.rs` keeps the table). Stateless clients and the
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

mod listen;

pub use listen::{ListenState, ListenStats};

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use hashbrown::HashMap;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::calls::inflight::{
    CallFailure, CallState, ClientRoute, InFlight, ServerRequest, ServerRequests,
};
use crate::calls::pending::{restore_progress_token, rewrite_request_id};
use crate::config::url::UpstreamUrl;
use crate::config::{self, SessionMode, UpstreamKind};
use crate::support::deadline;
use crate::support::log;
use crate::upstream::breaker::{Admission, Breaker};
use crate::upstream::builtin::Demo;
use crate::upstream::input::BridgedCall;
use crate::upstream::pool::{Reply, RequestSpec, Response, UpstreamErrorKind, UpstreamPool};
use crate::upstream::sessions::{ClientSessionStats, ClientSessions, Lookup, SESSION_ID_BYTES_MAX};
use crate::upstream::stdio::{StdioError, StdioSpec, StdioUpstream};
use crate::wire::ids::{IdForm, UpstreamRequestId};
use crate::wire::jsonrpc::{self, EnvelopeError, EnvelopeErrorKind, Message, Outcome, RpcError};
use crate::wire::kind::Kind;
use crate::wire::version::ProtocolVersion;

/// The protocol version the gateway asks session-era upstreams for.
const SESSION_ERA_VERSION: ProtocolVersion = ProtocolVersion::V2025_11_25;

/// Pages fetched per list before the rest is left out (a server that pages forever).
const LIST_PAGES_MAX: usize = 64;

/// How long the gateway's own requests (handshake, lists, `logging/setLevel`) may take at
/// most; an upstream's shorter `request_timeout_ms` applies instead.
const CONTROL_TIMEOUT_MS: u64 = 30_000;

/// The longest `ttlMs` honoured (24 h); a larger one is cut to it.
const LIST_TTL_MS_MAX: u64 = 86_400_000;
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

/// The `ttlMs` of a 2026-07-28 upstream's results and when its lists go stale.
#[derive(Default)]
struct ListsTtl {
    /// The smallest `ttlMs` seen so far in the refresh under way.
    gathering: Cell<Option<u64>>,
    /// The `ttlMs` in force since the last refresh; `None` outside the 2026-07-28 era.
    ttl_ms: Cell<Option<u64>>,
    /// When the lists go stale; `None` outside the 2026-07-28 era.
    stale_at: Cell<Option<Instant>>,
    refreshes_total: Cell<u64>,
}

impl ListsTtl {
    /// Takes the `ttlMs` of one result into the refresh under way.
    fn note(&self, result: &Value) {
        let Some(ttl) = result.get("ttlMs") else {
            return;
        };
        // A negative or fractional `ttlMs` counts as 0: immediately stale.
        let ttl_ms = ttl.as_u64().unwrap_or(0).min(LIST_TTL_MS_MAX);
        let least = self
            .gathering
            .get()
            .map_or(ttl_ms, |least| least.min(ttl_ms));
        self.gathering.set(Some(least));
    }

    /// A refresh finished: in the 2026-07-28 era the lists are fresh for the smallest `ttlMs`
    /// it saw (0 when none carried one).
    fn settle(&self, stateless: bool, now: Instant) {
        let gathered = self.gathering.take();
        self.refreshes_total.set(self.refreshes_total.get() + 1);
        let ttl_ms = stateless.then(|| gathered.unwrap_or(0));
        self.ttl_ms.set(ttl_ms);
        self.stale_at
            .set(ttl_ms.map(|ttl_ms| now + Duration::from_millis(ttl_ms)));
    }

    fn is_stale(&self, now: Instant) -> bool {
        self.stale_at.get().is_some_and(|stale_at| now >= stale_at)
    }
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
        let stateless = match &self.kind {
            LinkKind::Http(http) => *http.era.borrow() == UpstreamEra::Stateless,
            _ => false,
        };
        self.has_capability("logging") && !stateless
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

    /// The upstream announced a list change (`notifications/*/list_changed`): the epoch tick
    /// refreshes its lists here, and the other shards hear of it too.
    fn announce_lists_changed(&self) {
        self.lists_changed.set(true);
        self.announced.set(true);
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

    async fn refresh_now(&self) -> Result<(), String> {
        self.lists_changed.set(false);
        self.lists_ttl.gathering.set(None);
        // Past its `ttlMs`, `server/discover` is stale too: capabilities may have changed.
        if !self.is_up() || self.lists_ttl.is_stale(Instant::now()) {
            self.connect().await?;
        }
        let mut lists: [Option<Box<RawValue>>; 4] = Default::default();
        for (slot, kind) in lists.iter_mut().zip(Kind::ALL) {
            let method = match kind {
                Kind::Tools => "tools/list",
                Kind::Prompts => "prompts/list",
                Kind::Resources => "resources/list",
                Kind::ResourceTemplates => "resources/templates/list",
            };
            let capability = match kind {
                Kind::Tools => "tools",
                Kind::Prompts => "prompts",
                Kind::Resources | Kind::ResourceTemplates => "resources",
            };
            *slot = match self.list(method, capability, kind.member()).await {
                Ok(list) => list,
                // Templates are optional even for servers with resources.
                Err(_) if kind == Kind::ResourceTemplates => None,
                Err(reason) => {
                    self.mark_down(reason.clone());
                    return Err(reason);
                }
            };
        }
        *self.lists.borrow_mut() = lists;
        self.lists_ttl.settle(self.is_stateless(), Instant::now());
        Ok(())
    }

    /// Whether it speaks the 2026-07-28 era (an `http` upstream that answered
    /// `server/discover`).
    fn is_stateless(&self) -> bool {
        match &self.kind {
            LinkKind::Http(http) => *http.era.borrow() == UpstreamEra::Stateless,
            _ => false,
        }
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

    /// The whole list `method` (`tools/list`, …) returns, every page, as one JSON array of its
    /// `member`; `None` when the upstream lacks the capability.
    async fn list(
        &self,
        method: &str,
        capability: &str,
        member: &str,
    ) -> Result<Option<Box<RawValue>>, String> {
        if !self.has_capability(capability) {
            return Ok(None);
        }
        let mut items: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..LIST_PAGES_MAX {
            let params = cursor.as_ref().map(|c| json!({ "cursor": c }));
            let result = self
                .control_request(method, params)
                .await
                .map_err(|e| format!("upstream {} {method}: {}", self.name(), failure_text(&e)))?;
            let page: Value = serde_json::from_str(result.get())
                .map_err(|e| format!("upstream {} {method}: {e}", self.name()))?;
            self.lists_ttl.note(&page);
            if let Some(Value::Array(entries)) = page.get(member) {
                items.extend(entries.iter().cloned());
            }
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        Ok(Some(jsonrpc::value_to_raw(&Value::Array(items))))
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
                let body = raw_request_body(id_json.as_bytes(), method, request.params);
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
                let body = raw_request_body(id_json.as_bytes(), method, request.params);
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
        let body = raw_request_body(wire_id.as_bytes(), call.method, &params);
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
        let body = notification_body("notifications/cancelled", Some(&params));
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
            LinkKind::Stdio(stdio) => {
                let state = Rc::new(CallState::new_control());
                stdio.control.borrow_mut().insert(id.clone(), state.clone());
                let body = request_body(id.as_bytes(), method, params.as_ref());
                let sent = stdio.child.send(&body).await;
                let outcome = match sent {
                    Err(e) => Err(CallFailure::Unavailable(format!(
                        "upstream {}: {e}",
                        self.name()
                    ))),
                    Ok(()) => {
                        let timeout_ms = self.control_timeout_ms();
                        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
                        match deadline::race(deadline, state.outcome()).await {
                            Some(outcome) => outcome,
                            None => Err(CallFailure::TimedOut(format!(
                                "upstream {} did not answer {method} within {timeout_ms} ms \
                                 (request_timeout_ms, at most {CONTROL_TIMEOUT_MS} for the \
                                 gateway's own requests)",
                                self.name()
                            ))),
                        }
                    }
                };
                stdio.control.borrow_mut().remove(&id);
                outcome
            }
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

    async fn http_handshake(&self, http: &HttpLink) -> Result<Value, String> {
        *http.era.borrow_mut() = UpstreamEra::Stateless;
        let discover = self
            .http_request(
                http,
                b"\"sg-discover\"",
                "server/discover",
                None,
                (self.control_timeout_ms(), SessionScope::Shared),
                &mut |message| self.unrelayed(message),
            )
            .await;
        if let Ok(result) = discover {
            let result: Value = serde_json::from_str(result.get()).map_err(|e| e.to_string())?;
            let stateless = result
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|v| v == ProtocolVersion::V2026_07_28.as_str()));
            if stateless {
                self.lists_ttl.note(&result);
                if http.clients.is_some() && !http.stateless_noted.replace(true) {
                    log(format_args!(
                        "upstream {} speaks 2026-07-28, which has no sessions: session_mode = \
                         \"per_client\" changes nothing for it",
                        self.name()
                    ));
                }
                return Ok(result.get("capabilities").cloned().unwrap_or(json!({})));
            }
        }
        self.http_initialize(http).await
    }

    /// Opens the shared session.
    async fn http_initialize(&self, http: &HttpLink) -> Result<Value, String> {
        *http.era.borrow_mut() = UpstreamEra::Session {
            version: SESSION_ERA_VERSION.as_str(),
            session: None,
        };
        let (version, session, capabilities) = self.open_session(http).await?;
        *http.era.borrow_mut() = UpstreamEra::Session { version, session };
        // A new session: the listen stream moves to it.
        self.session_changed();
        Ok(capabilities)
    }

    /// Opens an upstream session: `initialize`, then `notifications/initialized` under the
    /// session the server gave. Returns its version, its id and the server's capabilities.
    async fn open_session(
        &self,
        http: &HttpLink,
    ) -> Result<(&'static str, Option<String>, Value), String> {
        let opening = UpstreamEra::Session {
            version: SESSION_ERA_VERSION.as_str(),
            session: None,
        };
        let params = initialize_params();
        let body = request_body(b"\"sg-init\"", "initialize", Some(&params));
        let mut session = None;
        let answer = self
            .http_exchange(
                http,
                &opening,
                &body,
                Mirrored::method("initialize"),
                self.control_timeout_ms(),
                b"\"sg-init\"",
                &mut |message| self.unrelayed(message),
                &mut session,
            )
            .await
            .map_err(|e| failure_text(&e))?;
        let result = answer.map_err(|e| failure_text(&CallFailure::Rpc(e)))?;
        let result: Value = serde_json::from_str(result.get()).map_err(|e| e.to_string())?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .and_then(ProtocolVersion::parse)
            .filter(|v| !v.is_stateless())
            .ok_or_else(|| {
                format!(
                    "initialize answered protocolVersion {:?}, which the gateway does not speak",
                    result.get("protocolVersion")
                )
            })?;
        let era = UpstreamEra::Session {
            version: version.as_str(),
            session: session.clone(),
        };
        let initialized = notification_body("notifications/initialized", None);
        self.http_post(
            http,
            &era,
            &initialized,
            "notifications/initialized",
            self.control_timeout_ms(),
            &mut |message| self.unrelayed(message),
        )
        .await
        .map_err(|e| match e {
            CallFailure::Unavailable(reason) if reason == SESSION_EXPIRED => {
                "the session expired again right after initializing (HTTP 404 to \
                 notifications/initialized)"
                    .to_owned()
            }
            other => failure_text(&other),
        })?;
        let capabilities = result.get("capabilities").cloned().unwrap_or(json!({}));
        Ok((version.as_str(), session, capabilities))
    }

    /// One of the gateway's own requests over HTTP in the upstream's era, under the session
    /// `scope` names (see [`UpstreamLink::http_send`]). None of them names a tool, prompt or
    /// resource, so nothing is mirrored beyond `Mcp-Method`.
    async fn http_request(
        &self,
        http: &HttpLink,
        id: &[u8],
        method: &str,
        params: Option<Value>,
        (timeout_ms, scope): (u64, SessionScope),
        on_event: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> CallOutcome {
        let stateless = *http.era.borrow() == UpstreamEra::Stateless;
        let mut params = params;
        if stateless {
            params = Some(with_stateless_meta(params));
        }
        let body = request_body(id, method, params.as_ref());
        drop(params);
        let mirrored = Mirrored::method(method);
        self.http_send(http, id, &body, mirrored, (timeout_ms, scope), on_event)
            .await
    }

    /// Sends request `body` (id `id`) under the session `scope` names and reads its answer; a
    /// session the server says expired is re-initialized once. The body stands for the retry:
    /// a re-initialized session keeps the session era.
    async fn http_send(
        &self,
        http: &HttpLink,
        id: &[u8],
        body: &[u8],
        mirrored: Mirrored<'_>,
        (timeout_ms, scope): (u64, SessionScope),
        on_event: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> CallOutcome {
        let (mut era, own) = self.era_for(http, scope).await?;
        let mut reinitialized = false;
        loop {
            let mut session = None;
            let answer = self
                .http_exchange(
                    http,
                    &era,
                    body,
                    mirrored,
                    timeout_ms,
                    id,
                    on_event,
                    &mut session,
                )
                .await;
            match answer {
                Err(CallFailure::Unavailable(reason))
                    if reason == SESSION_EXPIRED && !reinitialized =>
                {
                    reinitialized = true;
                    era = match own {
                        true => self.reopen_client_session(http, &era, scope).await?,
                        false => self.reopen_shared_session(http).await?,
                    };
                }
                Err(CallFailure::Unavailable(reason)) if reason == SESSION_EXPIRED => {
                    return Err(CallFailure::Unavailable(format!(
                        "upstream {}: its session expired again right after initializing",
                        self.name()
                    )))
                }
                Err(failure) => return Err(failure),
                Ok(answer) => return answer.map_err(CallFailure::Rpc),
            }
        }
    }

    /// Initializes the shared session again after the server said it expired; the upstream
    /// is down when that fails.
    async fn reopen_shared_session(&self, http: &HttpLink) -> Result<UpstreamEra, CallFailure> {
        if let Err(e) = self.http_initialize(http).await {
            self.mark_down(format!("upstream {}: {e}", self.name()));
            return Err(CallFailure::Unavailable(format!(
                "upstream {}: its session expired and initializing again failed: {e}",
                self.name()
            )));
        }
        Ok(http.era.borrow().clone())
    }

    /// Whether the upstream keeps a session per client session: `per_client`, and it speaks
    /// the session era.
    fn keeps_client_sessions(&self, http: &HttpLink) -> bool {
        http.clients.is_some() && matches!(*http.era.borrow(), UpstreamEra::Session { .. })
    }

    /// The era a request under `scope` goes out in, and whether that is a client session's own
    /// (opened now, at its first call).
    async fn era_for(
        &self,
        http: &HttpLink,
        scope: SessionScope,
    ) -> Result<(UpstreamEra, bool), CallFailure> {
        let (SessionScope::Client { secret, log_level }, Some(clients)) = (scope, &http.clients)
        else {
            return Ok((http.era.borrow().clone(), false));
        };
        if !self.keeps_client_sessions(http) {
            return Ok((http.era.borrow().clone(), false));
        }
        let era = self
            .client_session(http, clients, secret, log_level)
            .await
            .map_err(|e| {
                CallFailure::Unavailable(format!(
                    "upstream {}: cannot open a session for this client: {e}",
                    self.name()
                ))
            })?;
        Ok((era, true))
    }

    /// The era of the session `route`'s requests went out in: its own when it has one open,
    /// else the shared one. Opens nothing.
    fn era_of_route(&self, http: &HttpLink, route: ClientRoute) -> UpstreamEra {
        if let (Some(clients), ClientRoute::Session(secret)) = (&http.clients, route) {
            if let Some((version, session)) = clients.open_session(secret) {
                return UpstreamEra::Session { version, session };
            }
        }
        http.era.borrow().clone()
    }

    /// The client session's upstream session: the open one, the one another call is opening,
    /// or a new one.
    async fn client_session(
        &self,
        http: &HttpLink,
        clients: &ClientSessions,
        secret: u128,
        log_level: Option<&'static str>,
    ) -> Result<UpstreamEra, String> {
        let mut waited = false;
        loop {
            match clients.lookup(secret) {
                Lookup::Open { version, session } => {
                    return Ok(UpstreamEra::Session { version, session })
                }
                Lookup::Opening(done) if !waited => {
                    done.wait().await;
                    waited = true;
                }
                Lookup::Opening(_) => {
                    return Err("its session is being opened again after a failed attempt".into())
                }
                Lookup::Full { entries_max } => {
                    return Err(format!(
                        "{entries_max} upstream sessions are open on this shard, one per client \
                         session (sessions.sessions_max)"
                    ))
                }
                Lookup::Reserved(ticket) => {
                    return self
                        .open_client_session(http, clients, (secret, ticket), log_level)
                        .await
                }
            }
        }
    }

    /// Opens the upstream session reserved under `ticket` for client session `secret`, and
    /// sets its log level when the client chose one.
    async fn open_client_session(
        &self,
        http: &HttpLink,
        clients: &ClientSessions,
        (secret, ticket): (u128, u64),
        log_level: Option<&'static str>,
    ) -> Result<UpstreamEra, String> {
        let (version, session) = match self.open_session(http).await {
            Ok((version, Some(id), _)) if id.len() > SESSION_ID_BYTES_MAX => {
                clients.open_failed(secret, ticket);
                self.close_session(http, clients, &id, version).await;
                return Err(format!(
                    "its Mcp-Session-Id is {} bytes, over the {SESSION_ID_BYTES_MAX} the \
                     gateway keeps per client session",
                    id.len()
                ));
            }
            Ok((version, session, _)) => (version, session),
            Err(e) => {
                clients.open_failed(secret, ticket);
                return Err(e);
            }
        };
        let era = UpstreamEra::Session {
            version,
            session: session.clone(),
        };
        if let Some(level) = log_level.filter(|_| self.has_capability("logging")) {
            // The client chose its level before this session existed.
            if let Err(e) = self.set_level_under(http, &era, level).await {
                log(format_args!(
                    "upstream {}: logging/setLevel {level} on a new client session: {}",
                    self.name(),
                    failure_text(&e)
                ));
            }
        }
        if !clients.opened(secret, ticket, version, session.as_deref()) {
            if let Some(session) = &session {
                self.close_session(http, clients, session, version).await;
            }
            return Err("the client session ended while its upstream session opened".into());
        }
        Ok(era)
    }

    /// The upstream said the client session's upstream session (`expired`) is gone: opens
    /// another one once.
    async fn reopen_client_session(
        &self,
        http: &HttpLink,
        expired: &UpstreamEra,
        scope: SessionScope,
    ) -> Result<UpstreamEra, CallFailure> {
        let (SessionScope::Client { secret, log_level }, Some(clients)) = (scope, &http.clients)
        else {
            return self.reopen_shared_session(http).await;
        };
        let stale = match expired {
            UpstreamEra::Session { session, .. } => session.as_deref(),
            _ => None,
        };
        clients.expired(secret, stale);
        self.client_session(http, clients, secret, log_level)
            .await
            .map_err(|e| {
                CallFailure::Unavailable(format!(
                    "upstream {}: its session for this client expired and opening another \
                     failed: {e}",
                    self.name()
                ))
            })
    }

    /// `logging/setLevel` under `era`'s session.
    async fn set_level_under(
        &self,
        http: &HttpLink,
        era: &UpstreamEra,
        level: &str,
    ) -> Result<(), CallFailure> {
        let id = self.next_control_id();
        let params = json!({ "level": level });
        let body = request_body(id.as_bytes(), "logging/setLevel", Some(&params));
        let answer = self
            .http_exchange(
                http,
                era,
                &body,
                Mirrored::method("logging/setLevel"),
                self.control_timeout_ms(),
                id.as_bytes(),
                &mut |message| self.unrelayed(message),
                &mut None,
            )
            .await?;
        answer.map(|_| ()).map_err(CallFailure::Rpc)
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

    /// Starts closer tasks, up to `pool_connections_max`, while sessions wait for `DELETE`.
    fn spawn_closers(self: &Rc<Self>, http: &HttpLink, clients: &ClientSessions) {
        while clients.start_closer(http.closers_max) {
            let link = self.clone();
            glommio::spawn_local(async move { link.run_closer().await }).detach();
        }
    }

    /// One closer: `DELETE`s queued sessions until none wait.
    async fn run_closer(&self) {
        let LinkKind::Http(http) = &self.kind else {
            return;
        };
        let Some(clients) = &http.clients else {
            return;
        };
        while let Some(session) = clients.next_to_close() {
            let version = version_of(&http.era.borrow());
            self.close_session(http, clients, &session, version).await;
        }
    }

    /// Sends `DELETE` for upstream session `session` (best effort, at most
    /// [`SESSION_CLOSE_TIMEOUT_MS`]) and counts the outcome: closed on a 2xx or a 404 (the
    /// server no longer has it), failed otherwise (a 405 means the server keeps it until it
    /// expires).
    async fn close_session(
        &self,
        http: &HttpLink,
        clients: &ClientSessions,
        session: &str,
        version: &str,
    ) {
        let headers = [
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", version),
        ];
        let spec = RequestSpec {
            method: "DELETE",
            headers: &headers,
            body: None,
            timeout_ms: self.control_timeout_ms().min(SESSION_CLOSE_TIMEOUT_MS),
        };
        let closed = match http.pool.request(&spec).await {
            Ok(Reply::Buffered(response)) => {
                let status = response.head.status();
                (200..300).contains(&status) || status == 404
            }
            Ok(Reply::Stream(_)) => true,
            Err(_) => false,
        };
        clients.count_close(closed);
    }

    /// POSTs a notification or response under `era`'s session; `Ok` on 202/200.
    async fn http_post(
        &self,
        http: &HttpLink,
        era: &UpstreamEra,
        body: &[u8],
        method: &str,
        timeout_ms: u64,
        on_event: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> Result<(), CallFailure> {
        let mut session = None;
        self.http_exchange(
            http,
            era,
            body,
            Mirrored::method(method),
            timeout_ms,
            b"",
            on_event,
            &mut session,
        )
        .await
        .map(|_| ())
    }

    /// Sends one POST under `era`'s session and reads its answer: a JSON body, or an event
    /// stream read until the response whose id is `id` (other messages go to `on_event`, and
    /// answers to them go back under the same session). A notification's 202 is
    /// `Ok(Ok(empty result))`. `session` receives an `Mcp-Session-Id` the server set.
    #[allow(clippy::too_many_arguments)]
    async fn http_exchange(
        &self,
        http: &HttpLink,
        era: &UpstreamEra,
        body: &[u8],
        mirrored: Mirrored<'_>,
        timeout_ms: u64,
        id: &[u8],
        on_event: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
        session: &mut Option<String>,
    ) -> Result<Result<Box<RawValue>, RpcError>, CallFailure> {
        let upstream = self.name();
        let Mirrored {
            method,
            name,
            params: param_headers,
        } = mirrored;
        let encoded_name = name.map(header_value);
        let mut headers: Vec<(&str, &str)> =
            vec![("Accept", "application/json, text/event-stream")];
        match era {
            UpstreamEra::Stateless => {
                headers.push((
                    "MCP-Protocol-Version",
                    ProtocolVersion::V2026_07_28.as_str(),
                ));
                headers.push(("Mcp-Method", method));
                if let Some(name) = &encoded_name {
                    headers.push(("Mcp-Name", name));
                }
            }
            UpstreamEra::Session { version, session } => {
                if method != "initialize" {
                    headers.push(("MCP-Protocol-Version", version));
                }
                if let Some(session) = session {
                    headers.push(("Mcp-Session-Id", session));
                }
            }
            UpstreamEra::Unknown => {}
        }
        headers.extend(
            param_headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        let spec = RequestSpec {
            method: "POST",
            headers: &headers,
            body: Some(body),
            timeout_ms,
        };
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let unavailable =
            |reason: String| CallFailure::Unavailable(format!("upstream {upstream}: {reason}"));
        let reply = http.pool.request(&spec).await.map_err(|e| match e.kind {
            // Waiting for a connection or for the answer past the deadline: a slow upstream,
            // not a failing one.
            UpstreamErrorKind::Timeout => CallFailure::TimedOut(format!(
                "upstream {upstream} did not answer {method} within {timeout_ms} ms \
                 (request_timeout_ms): {}",
                e.message
            )),
            UpstreamErrorKind::PoolFull => CallFailure::Busy(format!("upstream {upstream}: {e}")),
            _ => unavailable(e.to_string()),
        })?;
        let session_sent = matches!(
            era,
            UpstreamEra::Session {
                session: Some(_),
                ..
            }
        );
        match reply {
            Reply::Buffered(response) => {
                let status = response.head.status();
                if let Some(id) = response.head.header_str("mcp-session-id") {
                    *session = Some(id.to_owned());
                }
                if status == 404 && session_sent {
                    return Err(CallFailure::Unavailable(SESSION_EXPIRED.to_owned()));
                }
                if id.is_empty() && (status == 202 || status == 200) {
                    return Ok(Ok(empty_result()));
                }
                if status >= 500 {
                    let said = match answer_of(&response.body, id, self.json_depth_max) {
                        Ok(Some(Err(error))) => format!(": {}", error.message),
                        _ => String::new(),
                    };
                    return Err(unavailable(format!(
                        "{method} answered HTTP {status}{said}"
                    )));
                }
                if response.body.is_empty() {
                    return Err(unavailable(format!(
                        "{method} answered HTTP {status} without a body"
                    )));
                }
                match answer_of(&response.body, id, self.json_depth_max) {
                    Err(too_deep) => Ok(Err(self.refuse_too_deep(&too_deep))),
                    Ok(Some(answer)) => Ok(answer),
                    Ok(None) => Err(unavailable(self.not_an_answer(method, &response))),
                }
            }
            Reply::Stream(mut stream) => {
                if let Some(id) = stream.head().header_str("mcp-session-id") {
                    *session = Some(id.to_owned());
                }
                loop {
                    // The clock is read per event: events that are always ready never let the
                    // race wait, and a stream has no size bound.
                    let event = match Instant::now() < deadline {
                        true => deadline::race(deadline, stream.next_event()).await,
                        false => None,
                    };
                    let event = match event {
                        None => {
                            return Err(CallFailure::TimedOut(format!(
                                "upstream {upstream} did not answer {method} within {timeout_ms} ms"
                            )))
                        }
                        Some(Err(e)) => return Err(unavailable(e.to_string())),
                        Some(Ok(None)) => {
                            return Err(unavailable(format!(
                                "the event stream for {method} ended without its response"
                            )))
                        }
                        Some(Ok(Some(event))) => event,
                    };
                    if event.data.is_empty() {
                        continue;
                    }
                    // A message too deep to read may be the answer: the request fails with it.
                    match answer_of(&event.data, id, self.json_depth_max) {
                        Err(too_deep) => return Ok(Err(self.refuse_too_deep(&too_deep))),
                        Ok(Some(answer)) => return Ok(answer),
                        Ok(None) => {}
                    }
                    if let Some(reply) = on_event(&event.data) {
                        // Answered on a connection of its own, as any client POSTs a response.
                        let _ = Box::pin(self.http_post(
                            http,
                            era,
                            &reply,
                            "",
                            self.control_timeout_ms(),
                            &mut |message| self.unrelayed(message),
                        ))
                        .await;
                    }
                }
            }
        }
    }

    /// Why a buffered response to `method` is no JSON-RPC answer to it: its status, media type
    /// and size, a one-line excerpt of the body, and for a 404 the key that is likely wrong.
    fn not_an_answer(&self, method: &str, response: &Response) -> String {
        let status = response.head.status();
        let media = response
            .head
            .header_str("content-type")
            .unwrap_or("no Content-Type");
        let hint = match status {
            404 => format!(
                " (is upstreams[{}].url the server's MCP endpoint?)",
                self.index
            ),
            _ => String::new(),
        };
        format!(
            "{method} answered HTTP {status} ({media}, {} bytes), not a JSON-RPC response to it: \
             {}{hint}",
            response.body.len(),
            body_excerpt(&response.body)
        )
    }

    /// Passes on what the upstream sent during call `parent`: notifications to its client
    /// (progress tokens restored), requests (sampling, elicitation, roots) to its client under
    /// a gateway id when the client can answer. Returns the answer to send back to the upstream
    /// when a request cannot be relayed.
    fn relay(
        &self,
        message: &[u8],
        parent: UpstreamRequestId,
        client_token: Option<&[u8]>,
        state: &CallState,
        requests: &ServerRequests,
    ) -> Option<Vec<u8>> {
        match self.parse(message) {
            Ok(Message::Notification { method, .. }) if method == "notifications/progress" => {
                match client_token.and_then(|t| restore_progress_token(message, t).ok()) {
                    Some(restored) => {
                        state.push_event(restored);
                    }
                    None => self.unroutable_total.set(self.unroutable_total.get() + 1),
                }
                None
            }
            Ok(Message::Notification { method, .. }) if method.ends_with("/list_changed") => {
                // Clients hear of it from the gateway, once the merged lists changed.
                self.announce_lists_changed();
                None
            }
            Ok(Message::Notification { .. }) => {
                state.push_event(message.to_vec());
                None
            }
            Ok(Message::Request { id, method, .. }) => {
                let relayed = state
                    .requests_client()
                    .and_then(|client| {
                        requests.register(ServerRequest {
                            upstream: self.index,
                            upstream_id: id.to_owned(),
                            parent,
                            client,
                        })
                    })
                    .and_then(|gateway_id| rewrite_request_id(message, gateway_id.as_bytes()).ok());
                match relayed.is_some_and(|message| state.push_event(message)) {
                    true => None,
                    false => Some(self.refuse_server_request(id, &method)),
                }
            }
            _ => {
                self.unroutable_total.set(self.unroutable_total.get() + 1);
                None
            }
        }
    }

    /// For the gateway's own requests: an upstream request gets an error answer, anything else
    /// is counted and dropped.
    fn unrelayed(&self, message: &[u8]) -> Option<Vec<u8>> {
        match self.parse(message) {
            Ok(Message::Notification { method, .. }) if method.ends_with("/list_changed") => {
                self.announce_lists_changed();
                None
            }
            Ok(Message::Request { id, method, .. }) => {
                Some(self.refuse_server_request(id, &method))
            }
            _ => {
                self.unroutable_total.set(self.unroutable_total.get() + 1);
                None
            }
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

    /// Counts a request the upstream sent (sampling, elicitation, roots) that cannot reach a
    /// client that answers it, and returns the error answer for it.
    fn refuse_server_request(&self, id: &RawValue, method: &str) -> Vec<u8> {
        self.server_requests_refused_total
            .set(self.server_requests_refused_total.get() + 1);
        jsonrpc::error_bytes(
            Some(id),
            jsonrpc::METHOD_NOT_FOUND,
            &format!(
                "the gateway cannot relay {method} to a client: none that can answer it is \
                 waiting on this server (it relays requests made during a session-era client's \
                 call, over stdio only while that call is the server's only one)"
            ),
            None,
        )
    }

    async fn stdio_handshake(&self, stdio: &StdioLink) -> Result<Value, String> {
        stdio.ready.set(false);
        let result = self
            .control_request("initialize", Some(initialize_params()))
            .await
            .map_err(|e| failure_text(&e))?;
        let result: Value = serde_json::from_str(result.get()).map_err(|e| e.to_string())?;
        let body = notification_body("notifications/initialized", None);
        stdio.child.send(&body).await.map_err(|e| e.to_string())?;
        stdio.ready.set(true);
        Ok(result.get("capabilities").cloned().unwrap_or(json!({})))
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
        let stdio = match &self.kind {
            LinkKind::Stdio(stdio) => stdio,
            LinkKind::Http(_) => return self.listen().await,
            LinkKind::Builtin(_) => return,
        };
        loop {
            let message = match stdio.child.recv().await {
                Ok(message) => message,
                Err(StdioError::ShutDown) => return,
                Err(e) => {
                    // The child is gone: nothing sent to it will be answered. The epoch tick
                    // handshakes with the next one once its backoff has passed.
                    stdio.ready.set(false);
                    let reason = format!("upstream {}: {e}", self.name());
                    for (_, control) in stdio.control.borrow_mut().drain() {
                        control.settle(Err(CallFailure::Unavailable(reason.clone())));
                    }
                    inflight.fail_upstream(self.index, &reason, now_ms());
                    self.mark_down(reason);
                    continue;
                }
            };
            self.route_stdio_message(stdio, &message, (inflight, requests), now_ms());
        }
    }

    fn route_stdio_message(
        self: &Rc<Self>,
        stdio: &StdioLink,
        message: &[u8],
        (inflight, requests): (&InFlight, &ServerRequests),
        now_ms: u64,
    ) {
        let parsed = match self.parse(message) {
            Err(too_deep) if too_deep.kind() == EnvelopeErrorKind::TooDeep => {
                return self.route_too_deep(stdio, &too_deep, inflight, now_ms);
            }
            parsed => parsed,
        };
        match parsed {
            Ok(Message::Response {
                id: Some(id),
                outcome,
            }) => {
                let outcome = outcome_of(&outcome);
                if let Some(control) = stdio.control.borrow_mut().remove(id.get()) {
                    control.settle(outcome);
                    return;
                }
                match inflight.complete(self.index, id, now_ms) {
                    Some(state) => {
                        state.settle(outcome);
                    }
                    None => self.unroutable_total.set(self.unroutable_total.get() + 1),
                }
            }
            Ok(Message::Notification { method, params }) => {
                if method.ends_with("/list_changed") {
                    self.announce_lists_changed();
                    return;
                }
                if method == "notifications/progress" {
                    if let Some((state, token)) =
                        progress_target(inflight, self.index, params, now_ms)
                    {
                        if let Ok(restored) = restore_progress_token(message, &token) {
                            state.push_event(restored);
                            return;
                        }
                    }
                }
                self.unroutable_total.set(self.unroutable_total.get() + 1);
            }
            Ok(Message::Request { id, method, .. }) => {
                let reply = match inflight.sole_call(self.index) {
                    Some((parent, state)) => self.relay(message, parent, None, &state, requests),
                    None => Some(self.refuse_server_request(id, &method)),
                };
                let Some(reply) = reply else { return };
                // Written from a task of its own: the dispatcher keeps reading meanwhile, so a
                // child blocked on a full stdout cannot stall the write to its stdin.
                let link = self.clone();
                glommio::spawn_local(async move {
                    if let LinkKind::Stdio(stdio) = &link.kind {
                        let _ = stdio.child.send(&reply).await;
                    }
                })
                .detach();
            }
            _ => self.unroutable_total.set(self.unroutable_total.get() + 1),
        }
    }

    /// A message from the stdio child too deep to read: when it is an answer whose id can be
    /// read (before the deep member or after it), the request it answers fails with an error
    /// naming the limit; anything else is only counted (nothing can say which call it was
    /// about).
    fn route_too_deep(
        &self,
        stdio: &StdioLink,
        too_deep: &EnvelopeError<'_>,
        inflight: &InFlight,
        now_ms: u64,
    ) {
        let Some(id) = too_deep.id().filter(|_| too_deep.is_response()) else {
            self.count_too_deep();
            return;
        };
        let failure = CallFailure::Rpc(self.refuse_too_deep(too_deep));
        if let Some(control) = stdio.control.borrow_mut().remove(id.get()) {
            control.settle(Err(failure));
            return;
        }
        if let Some(state) = inflight.complete(self.index, id, now_ms) {
            state.settle(Err(failure));
        }
    }

    /// `message` from the upstream, read as JSON-RPC: its objects and arrays nest at most
    /// `limits.json_depth_max` deep.
    fn parse<'m>(&self, message: &'m [u8]) -> Result<Message<'m>, EnvelopeError<'m>> {
        jsonrpc::parse(message, self.json_depth_max)
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
            lists_ttl_ms: self.lists_ttl.ttl_ms.get(),
            lists_refreshes_total: self.lists_ttl.refreshes_total.get(),
            sessions: match &self.kind {
                LinkKind::Http(http) => http.clients.as_ref().map(ClientSessions::stats),
                _ => None,
            },
        }
    }
}

/// What a POST mirrors in headers besides its body: the method and name (2026-07-28 era) and
/// the client's `Mcp-Param-*` fields, which intermediaries pass on.
#[derive(Clone, Copy)]
struct Mirrored<'a> {
    method: &'a str,
    name: Option<&'a str>,
    params: &'a [(String, String)],
}

impl<'a> Mirrored<'a> {
    fn method(method: &'a str) -> Mirrored<'a> {
        Mirrored {
            method,
            name: None,
            params: &[],
        }
    }
}

/// The protocol version a session of `era` speaks (the gateway's own for any other era).
fn version_of(era: &UpstreamEra) -> &'static str {
    match era {
        UpstreamEra::Session { version, .. } => version,
        _ => SESSION_ERA_VERSION.as_str(),
    }
}

/// Bytes of a response body quoted in an error message at most.
const BODY_EXCERPT_BYTES_MAX: usize = 200;

/// The start of `body` as one line: invalid UTF-8 replaced, each run of whitespace and control
/// characters (newlines too) one space, cut to [`BODY_EXCERPT_BYTES_MAX`] bytes with `...`
/// when longer.
fn body_excerpt(body: &[u8]) -> String {
    // Enough of the body for the excerpt even if every byte were a replacement character.
    let lossy = String::from_utf8_lossy(&body[..body.len().min(4 * BODY_EXCERPT_BYTES_MAX)]);
    let text: String = lossy
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut excerpt = String::with_capacity(BODY_EXCERPT_BYTES_MAX + 3);
    for word in text.split_whitespace() {
        let separator = usize::from(!excerpt.is_empty());
        if excerpt.len() + separator + word.len() > BODY_EXCERPT_BYTES_MAX {
            let room = BODY_EXCERPT_BYTES_MAX.saturating_sub(excerpt.len() + separator);
            let mut end = room.min(word.len());
            while !word.is_char_boundary(end) {
                end -= 1;
            }
            if separator == 1 && end > 0 {
                excerpt.push(' ');
            }
            excerpt.push_str(&word[..end]);
            excerpt.push_str("...");
            return excerpt;
        }
        if separator == 1 {
            excerpt.push(' ');
        }
        excerpt.push_str(word);
    }
    if body.len() > 4 * BODY_EXCERPT_BYTES_MAX {
        excerpt.push_str("...");
    }
    excerpt
}

/// The marker `http_exchange` returns for a 404 on a request that carried a session id.
const SESSION_EXPIRED: &str = "\u{0}session expired";

fn failure_text(failure: &CallFailure) -> String {
    match failure {
        CallFailure::Rpc(e) => format!("answered error {}: {}", e.code, e.message),
        CallFailure::Unavailable(m) | CallFailure::TimedOut(m) | CallFailure::Busy(m) => m.clone(),
        CallFailure::Cancelled => "cancelled".to_owned(),
    }
}

fn initialize_params() -> Value {
    json!({
        "protocolVersion": SESSION_ERA_VERSION.as_str(),
        // Requests an upstream makes during a client's call are relayed to that client, which
        // answers them or says it cannot.
        "capabilities": { "sampling": {}, "elicitation": {}, "roots": { "listChanged": false } },
        "clientInfo": { "name": "shardgate", "version": env!("CARGO_PKG_VERSION") },
    })
}

/// `params` with the `_meta` a 2026-07-28 request must carry.
fn with_stateless_meta(params: Option<Value>) -> Value {
    let mut params = match params {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert(
            jsonrpc::META_PROTOCOL_VERSION.to_owned(),
            json!(ProtocolVersion::V2026_07_28.as_str()),
        );
        // A stateless client's own capabilities pass through, so an upstream may ask it for
        // input (an `input_required` result the client answers by retrying).
        meta.entry(jsonrpc::META_CLIENT_CAPABILITIES)
            .or_insert_with(|| json!({}));
        meta.insert(
            jsonrpc::META_CLIENT_INFO.to_owned(),
            json!({ "name": "shardgate", "version": env!("CARGO_PKG_VERSION") }),
        );
    }
    Value::Object(params)
}

fn empty_result() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("`{}` is valid JSON")
}

/// `{"jsonrpc":"2.0","id":<id>,"method":…,"params":…}`.
fn request_body(id: &[u8], method: &str, params: Option<&Value>) -> Vec<u8> {
    let params = params.map(jsonrpc::value_to_raw);
    jsonrpc::request_bytes(id, method, params.as_ref().map(|p| p.get().as_bytes()))
}

/// `{"jsonrpc":"2.0","id":<id>,"method":…,"params":<params>}` with `params` JSON text.
fn raw_request_body(id: &[u8], method: &str, params: &[u8]) -> Vec<u8> {
    jsonrpc::request_bytes(id, method, Some(params))
}

fn notification_body(method: &str, params: Option<&Value>) -> Vec<u8> {
    let params = params.map(jsonrpc::value_to_raw);
    jsonrpc::notification_bytes(method, params.as_deref())
}

/// The answer in `message` when it is the response to request `id` (JSON text); `Err` for a
/// message nesting deeper than `depth_max`, which might be that response.
fn answer_of<'m>(
    message: &'m [u8],
    id: &[u8],
    depth_max: u32,
) -> Result<Option<Result<Box<RawValue>, RpcError>>, EnvelopeError<'m>> {
    match jsonrpc::parse(message, depth_max) {
        Ok(Message::Response {
            id: Some(got),
            outcome,
        }) if got.get().as_bytes() == id => Ok(Some(outcome_of(&outcome).map_err(|f| match f {
            CallFailure::Rpc(e) => e,
            other => RpcError::new(jsonrpc::INTERNAL_ERROR, failure_text(&other)),
        }))),
        Err(error) if error.kind() == EnvelopeErrorKind::TooDeep => Err(error),
        _ => Ok(None),
    }
}

fn outcome_of(outcome: &Outcome<'_>) -> CallOutcome {
    match outcome {
        Outcome::Result(result) => Ok((*result).to_owned()),
        Outcome::Error(error) => {
            #[derive(serde::Deserialize)]
            struct Error<'a> {
                code: i32,
                message: String,
                #[serde(borrow, default)]
                data: Option<&'a RawValue>,
            }
            let error: Error<'_> = serde_json::from_str(error.get())
                .map_err(|e| CallFailure::Unavailable(format!("unreadable error object: {e}")))?;
            let mut rpc = RpcError::new(error.code, error.message);
            if let Some(data) = error.data {
                rpc = rpc.with_data(data.to_owned());
            }
            Err(CallFailure::Rpc(rpc))
        }
    }
}

/// The call a stdio progress notification is about, and the client's own token.
fn progress_target(
    inflight: &InFlight,
    upstream: u16,
    params: Option<&RawValue>,
    now_ms: u64,
) -> Option<(Rc<CallState>, Vec<u8>)> {
    #[derive(serde::Deserialize)]
    struct Progress<'a> {
        #[serde(rename = "progressToken", borrow)]
        token: &'a RawValue,
    }
    let progress: Progress<'_> = serde_json::from_str(params?.get()).ok()?;
    let (state, token) = inflight.progress(upstream, progress.token, now_ms)?;
    Some((state, token))
}

/// A mirrored header value: as it is when visible ASCII, else the `=?base64?…?=` form.
fn header_value(value: &str) -> String {
    if value
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) || b == b' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ')
    {
        return value.to_owned();
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = value.as_bytes();
    let mut out = String::from("=?base64?");
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push_str("?=");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_outside_visible_ascii_use_the_base64_form() {
        assert_eq!(header_value("get_weather"), "get_weather");
        assert_eq!(
            header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
    }

    #[test]
    fn stateless_meta_is_added_without_losing_the_callers_meta() {
        let params = with_stateless_meta(Some(json!({"name": "x", "_meta": {"progressToken": 7}})));
        assert_eq!(params["name"], "x");
        assert_eq!(params["_meta"]["progressToken"], 7);
        assert_eq!(
            params["_meta"][jsonrpc::META_PROTOCOL_VERSION],
            "2026-07-28"
        );
        assert!(params["_meta"][jsonrpc::META_CLIENT_CAPABILITIES].is_object());
    }

    #[test]
    fn lists_go_stale_after_the_smallest_ttl_of_a_stateless_refresh() {
        let ttl = ListsTtl::default();
        let now = Instant::now();
        ttl.note(&json!({"ttlMs": 5000}));
        ttl.note(&json!({"ttlMs": 200}));
        ttl.note(&json!({"tools": []}));
        ttl.settle(true, now);
        assert_eq!(ttl.ttl_ms.get(), Some(200));
        assert!(!ttl.is_stale(now + Duration::from_millis(199)));
        assert!(ttl.is_stale(now + Duration::from_millis(200)));
        // None given, or a negative one: immediately stale (the epoch tick is the floor).
        ttl.settle(true, now);
        assert_eq!(ttl.ttl_ms.get(), Some(0));
        assert!(ttl.is_stale(now));
        ttl.note(&json!({"ttlMs": -5}));
        ttl.settle(true, now);
        assert_eq!(ttl.ttl_ms.get(), Some(0));
        ttl.note(&json!({"ttlMs": u64::MAX}));
        ttl.settle(true, now);
        assert_eq!(ttl.ttl_ms.get(), Some(LIST_TTL_MS_MAX));
        // The session era announces changes instead: no ttl applies.
        ttl.note(&json!({"ttlMs": 0}));
        ttl.settle(false, now);
        assert_eq!(ttl.ttl_ms.get(), None);
        assert!(!ttl.is_stale(now + Duration::from_millis(LIST_TTL_MS_MAX)));
        assert_eq!(ttl.refreshes_total.get(), 5);
    }

    #[test]
    fn a_body_excerpt_is_one_line_of_at_most_body_excerpt_bytes_max() {
        let page = format!(
            "<!DOCTYPE html>\n<html>\n  <head><title>404 Not Found</title></head>\n<body>{}</body>",
            "x ".repeat(300)
        );
        let excerpt = body_excerpt(page.as_bytes());
        assert!(excerpt.starts_with("<!DOCTYPE html> <html> <head><title>404 Not Found</title>"));
        assert!(!excerpt.contains('\n'), "{excerpt}");
        assert!(excerpt.ends_with("..."), "{excerpt}");
        assert!(
            excerpt.len() <= BODY_EXCERPT_BYTES_MAX + 3,
            "{}",
            excerpt.len()
        );
        assert_eq!(body_excerpt(b"  not\x1b found \r\n"), "not found");
        // One long word is cut on a character boundary.
        let long = "é".repeat(BODY_EXCERPT_BYTES_MAX);
        let excerpt = body_excerpt(long.as_bytes());
        assert_eq!(
            excerpt,
            format!("{}...", "é".repeat(BODY_EXCERPT_BYTES_MAX / 2))
        );
    }

    #[test]
    fn answers_match_only_their_own_id() {
        let message = br#"{"jsonrpc":"2.0","id":7,"result":{"ok":true}}"#;
        assert!(answer_of(message, b"7", 2).unwrap().unwrap().is_ok());
        assert!(answer_of(message, b"8", 2).unwrap().is_none());
        let error = br#"{"jsonrpc":"2.0","id":"sg-1","error":{"code":-32602,"message":"no"}}"#;
        assert_eq!(
            answer_of(error, b"\"sg-1\"", 2)
                .unwrap()
                .unwrap()
                .unwrap_err()
                .code,
            -32602
        );
        // Too deep to read: whatever its id, the request it came for cannot take it.
        let too_deep = answer_of(message, b"8", 1).unwrap_err();
        assert_eq!(too_deep.kind(), EnvelopeErrorKind::TooDeep);
        assert!(answer_of(b"{\"id\":7", b"7", 1).unwrap().is_none());
    }
}
