//! Routes an MCP request to the upstream that answers it, and builds the gateway's own answers
//! (`initialize`, `server/discover`, `ping`, the merged lists).
//!
//! Four phases of the request pipeline are here, in order: [`Router::route`] (the gateway's own
//! methods; the merged lists, answered from the shard's catalogue; for `tools/call`,
//! `prompts/get`, `resources/read` and `completion/complete`, the merged name → upstream and
//! original name), [`Router::admit`] (the upstream's state — down, circuit open: refused at once
//! with its name — and the pending table: a cap refuses with 503 naming it),
//! [`Router::upstream_request`] (the params rewritten for the upstream) and
//! [`Router::start_call`] (the call in a task of its own, whose notifications and answer the
//! [`Relay`] carries). `logging/setLevel` goes to every upstream that logs.
//!
//! Ownership: one router per shard, built from the config at start-up; its links, catalogue and
//! pending table are that shard's.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::task::JoinHandle;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::calls::inflight::{
    CallFailure, CallItem, CallState, ClientRoute, InFlight, Registered, ServerRequests,
};
use crate::calls::pending::{PendingLimits, PendingRefusal};
use crate::config::Config;
use crate::mcp::call::{Call, Client, Era};
use crate::refusal::RefusalReason;
use crate::support::clock::ShardClock;
use crate::support::event::Event;
use crate::support::{deadline, log};
use crate::upstream::breaker::Admission;
use crate::upstream::catalogue::{Catalogue, CatalogueLimits, Listing, Naming, Omission};
use crate::upstream::input::{BridgedCall, InputBridge, InputStats};
use crate::upstream::link::{CallRequest, SessionScope, UpstreamLink, SESSION_CLOSE_TIMEOUT_MS};
use crate::wire::ids::UpstreamRequestId;
use crate::wire::jsonrpc::{self, Outcome, RpcError};
use crate::wire::kind::Kind;
use crate::wire::method::Method;
use crate::wire::params::{CallParams, Rewrite, Routing};
use crate::wire::version::ProtocolVersion;

/// How long a client may cache `server/discover` (and the lists) in the stateless era.
const DISCOVER_TTL_MS: u64 = 60_000;

/// Bounds of the merged catalogue per shard: entries per kind, and bytes of all lists.
const CATALOGUE_LIMITS: CatalogueLimits = CatalogueLimits {
    entries_max: 10_000,
    bytes_max: 16 * 1024 * 1024,
};

/// Why a shard's router cannot start.
#[derive(Debug)]
pub enum StartFailure {
    /// A required upstream is down or was not up within `server.startup_timeout_ms`; the
    /// message names it.
    RequiredDown(String),
    /// Two upstreams that are up offer one merged tool or prompt name: a configuration mistake.
    Collision(String),
}

/// What `check` learned by connecting to every upstream.
pub struct Probe {
    /// One line per upstream: what it offers, or why it is not up.
    pub lines: Vec<String>,
    /// The required upstreams that are not up: `serve` would not start.
    pub required_down: Vec<String>,
    /// Whether merged names collide, naming them.
    pub collisions: Result<(), String>,
}

/// What a client answered a request of an upstream with.
pub enum ClientAnswer<'a> {
    /// Its response: the outcome read from it, and the message as it came.
    Sent(&'a Outcome<'a>, &'a [u8]),
    /// A response the gateway refused (nested too deep): the error it stands for.
    Refused(RpcError),
}

/// How the router answers.
pub enum Answer {
    /// At once.
    Now(Result<Box<RawValue>, RpcError>),
    /// The pending table refused the request: a cap (HTTP 503 with Retry-After) or its id.
    /// `message` names the value, the key and the upstream.
    Full {
        refusal: PendingRefusal,
        message: String,
    },
    /// An upstream call is under way: relay its notifications, then its answer.
    Relay(Relay),
}

/// Where the route phase sends a call.
pub enum Routed<'r, 'm> {
    /// The gateway answers itself: its own methods, the merged lists, or an error.
    Answered(Result<Box<RawValue>, RpcError>),
    /// To the one upstream that owns the name the call carries.
    Upstream(Target<'r, 'm>),
    /// To an upstream that is down: refused as the admit phase refuses.
    Unavailable(NotAdmitted),
}

/// A routed call's upstream, and the call's name for the thing there.
pub struct Target<'r, 'm> {
    link: Rc<UpstreamLink>,
    method: Method,
    /// The name or URI as the upstream knows it.
    original: String,
    params: &'r CallParams<'m>,
}

impl Target<'_, '_> {
    /// The `[[upstreams]]` index of the upstream.
    pub fn upstream(&self) -> u16 {
        self.link.index
    }
}

/// Why the admit phase turned a call away.
pub enum NotAdmitted {
    /// The upstream is down ([`RefusalReason::UpstreamDown`]) or its circuit breaker open
    /// ([`RefusalReason::BreakerOpen`]): the call's error names it.
    Unavailable {
        reason: RefusalReason,
        error: RpcError,
    },
    /// The pending table refused it: a cap (HTTP 503 with Retry-After) or its id.
    Full {
        refusal: PendingRefusal,
        message: String,
    },
}

impl From<NotAdmitted> for Answer {
    fn from(refused: NotAdmitted) -> Answer {
        match refused {
            NotAdmitted::Unavailable { error, .. } => Answer::Now(Err(error)),
            NotAdmitted::Full { refusal, message } => Answer::Full { refusal, message },
        }
    }
}

/// A call the admit phase let through: its pending entry and its deadline.
pub struct Admitted {
    registered: Registered,
    /// `request_timeout_ms` after the call was registered.
    deadline: Instant,
}

/// One upstream call in flight, held by the connection that answers the client. Dropped before
/// its answer (the client left), it cancels the call upstream.
pub struct Relay {
    state: Rc<CallState>,
    link: Rc<UpstreamLink>,
    router: Rc<RouterState>,
    route: ClientRoute,
    client_id: Box<RawValue>,
    /// The id the upstream knows the call by.
    id: UpstreamRequestId,
    /// `request_timeout_ms` after the call was registered: waited for on the shard's deadline
    /// wheel, so the client's timeout answer comes on time rather than at the next epoch tick.
    deadline: Instant,
    /// The task talking to the upstream; dropping it abandons the exchange.
    task: Option<glommio::Task<()>>,
    done: bool,
    /// Set when the upstream side turned the call away after it started (its pool full).
    refusal: Option<RefusalReason>,
}

impl Relay {
    /// The next notification for the client, or the call's end: its answer, or its timeout
    /// once its deadline passed.
    pub async fn next(&mut self) -> Result<Result<Box<RawValue>, RpcError>, Vec<u8>> {
        let item = match deadline::race(self.deadline, self.state.next()).await {
            Some(item) => item,
            None => {
                self.time_out();
                self.state.next().await
            }
        };
        match item {
            CallItem::Event(message) => Err(message),
            CallItem::Done(outcome) => {
                self.done = true;
                if let Err(CallFailure::Busy(_)) = &outcome {
                    self.refusal = Some(RefusalReason::PoolFull);
                }
                self.link.record(&outcome, self.router.now_ms());
                Ok(outcome.map_err(|failure| self.router.client_error(&self.link, failure)))
            }
        }
    }
}

impl Relay {
    /// Why the upstream side turned the call away, once it ended so.
    pub fn refusal(&self) -> Option<RefusalReason> {
        self.refusal
    }

    /// The call's deadline passed before its answer: abandons the exchange, ends the call in
    /// the pending table (settling it with the timeout) and tells the upstream. A call that had
    /// already ended is settled already.
    fn time_out(&mut self) {
        drop(self.task.take());
        let router = &self.router;
        let names = |upstream: u16| router.name_of(upstream);
        let Some(expired) = router
            .inflight
            .expire_call(self.link.index, self.id, &names)
        else {
            return;
        };
        spawn_cancel(self.link.clone(), expired.id, TIMED_OUT, expired.route);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.router.server_requests.forget_parent(self.id);
        if self.done || self.state.is_settled() {
            return;
        }
        let now = self.router.now_ms();
        self.link.abandoned(now);
        if let Some((_, id)) =
            self.router
                .inflight
                .cancel_by_client(self.route, &self.client_id, now)
        {
            spawn_cancel(self.link.clone(), id, "the client went away", self.route);
        }
    }
}

/// What the router's tasks share: the links, the pending table and the catalogue.
pub struct RouterState {
    links: Vec<Rc<UpstreamLink>>,
    inflight: InFlight,
    /// Requests from upstreams relayed to clients, waiting for their answers.
    server_requests: ServerRequests,
    /// Asks session-era clients for the input 2026-07-28 upstreams require.
    input: InputBridge,
    catalogue: RefCell<Rc<Catalogue>>,
    /// Every upstream's entries, listed or not: routes calls, so a call to an upstream that
    /// dropped out of the lists gets an error naming it rather than "unknown tool".
    routes: RefCell<Rc<Catalogue>>,
    /// Whether each link was in the last catalogue, to rebuild when that changes.
    listed: RefCell<Vec<bool>>,
    clock: ShardClock,
    /// Fired (and replaced) when a merged list changes: session-era clients' GET streams wait
    /// on it to send `notifications/*/list_changed`.
    lists_changed: RefCell<Rc<Event>>,
    /// Which lists changed at the last firing, in [`Kind::ALL`] order.
    changed_kinds: Cell<[bool; 4]>,
    /// Start-up is over: an upstream that comes up now arrived late.
    serving: Cell<bool>,
}

/// Shard-local router. Built once per shard from the config.
pub struct Router {
    state: Rc<RouterState>,
    /// `{"name":"shardgate","version":"…"}`, rendered once.
    server_info: String,
}

impl RouterState {
    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    fn name_of(&self, upstream: u16) -> String {
        self.links
            .get(usize::from(upstream))
            .map_or_else(|| format!("#{upstream}"), |l| l.name().to_owned())
    }

    /// The JSON-RPC error a client gets for a call that ended without an answer.
    fn client_error(&self, link: &UpstreamLink, failure: CallFailure) -> RpcError {
        let name = link.name();
        let data =
            |reason: &str| jsonrpc::value_to_raw(&json!({ "upstream": name, "reason": reason }));
        match failure {
            CallFailure::Rpc(error) => error,
            CallFailure::Unavailable(message) => {
                RpcError::new(jsonrpc::INTERNAL_ERROR, message).with_data(data("unavailable"))
            }
            CallFailure::TimedOut(message) => RpcError::new(jsonrpc::INTERNAL_ERROR, message)
                .with_data(data("request_timeout_ms")),
            CallFailure::Busy(message) => {
                RpcError::new(jsonrpc::INTERNAL_ERROR, message).with_data(data("pool_full"))
            }
            CallFailure::Cancelled => RpcError::new(
                jsonrpc::INTERNAL_ERROR,
                format!("the request to upstream {name} was cancelled"),
            )
            .with_data(data("cancelled")),
        }
    }

    /// Rebuilds the catalogue from every listed link's cached lists, when the set changed or
    /// `force`.
    fn rebuild(&self, force: bool) {
        let now = self.now_ms();
        let listed: Vec<bool> = self.links.iter().map(|l| l.is_listed(now)).collect();
        if !force && *self.listed.borrow() == listed {
            return;
        }
        let namings: Vec<Naming> = self
            .links
            .iter()
            .map(|l| Naming {
                prefix: l.config.prefix.clone(),
                separator: l.config.separator.clone(),
            })
            .collect();
        let lists: Vec<[Option<Box<RawValue>>; 4]> =
            self.links.iter().map(|l| l.cached_lists()).collect();
        let listings: Vec<Listing<'_>> = self
            .links
            .iter()
            .zip(namings.iter().zip(&lists))
            .map(|(link, (naming, lists))| Listing {
                upstream: link.index,
                name: link.name(),
                naming,
                lists: [0, 1, 2, 3].map(|i| lists[i].as_deref()),
            })
            .collect();
        let routes = Catalogue::build(&listings, CATALOGUE_LIMITS);
        let shown: Vec<Listing<'_>> = listings
            .into_iter()
            .zip(&listed)
            .filter_map(|(listing, listed)| listed.then_some(listing))
            .collect();
        let catalogue = Catalogue::build(&shown, CATALOGUE_LIMITS);
        for omission in catalogue.omissions() {
            log(format_args!("catalogue: {omission}"));
        }
        let previous = self.catalogue.replace(Rc::new(catalogue));
        let current = self.catalogue.borrow().clone();
        let changed = Kind::ALL.map(|kind| previous.list_json(kind) != current.list_json(kind));
        if changed.iter().any(|c| *c) {
            self.changed_kinds.set(changed);
            let fired = self.lists_changed.replace(Rc::default());
            fired.set();
        }
        *self.routes.borrow_mut() = Rc::new(routes);
        *self.listed.borrow_mut() = listed;
    }
}

impl Router {
    /// Builds one link per `[[upstreams]]` entry (starting stdio children).
    pub fn new(config: &Config, shard: u8, clock: ShardClock) -> Result<Router, String> {
        let links = config
            .upstreams
            .iter()
            .enumerate()
            .map(|(index, upstream)| {
                UpstreamLink::new(
                    index as u16,
                    upstream,
                    config.sessions.sessions_max,
                    config.limits.json_depth_max,
                )
                .map(Rc::new)
            })
            .collect::<Result<Vec<_>, String>>()?;
        let pending = &config.pending;
        let limits = PendingLimits {
            pending_max: pending.pending_max,
            pending_per_upstream_max: pending.pending_per_upstream_max,
            upstreams_count: links.len() as u16,
            request_id_bytes_max: pending.request_id_bytes_max,
        };
        let inflight = InFlight::new(limits, pending.stream_buffer_bytes_max as usize)
            .map_err(|e| format!("shard {shard}: pending table: {e}"))?;
        let server_requests =
            ServerRequests::new(shard, pending.pending_max, pending.request_id_bytes_max)
                .map_err(|e| format!("shard {shard}: {e}"))?;
        let server_info = json!({
            "name": "shardgate",
            "title": "shardgate MCP gateway",
            "version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        let state = RouterState {
            listed: RefCell::new(vec![false; links.len()]),
            links,
            inflight,
            server_requests,
            input: InputBridge::new(pending.input_rounds_max),
            catalogue: RefCell::new(Rc::new(Catalogue::build(&[], CATALOGUE_LIMITS))),
            routes: RefCell::new(Rc::new(Catalogue::build(&[], CATALOGUE_LIMITS))),
            clock,
            lists_changed: RefCell::new(Rc::default()),
            changed_kinds: Cell::new([false; 4]),
            serving: Cell::new(false),
        };
        Ok(Router {
            state: Rc::new(state),
            server_info,
        })
    }

    pub fn links(&self) -> &[Rc<UpstreamLink>] {
        &self.state.links
    }

    pub fn inflight(&self) -> &InFlight {
        &self.state.inflight
    }

    /// Requests from upstreams relayed to clients and waiting for their answers.
    pub fn server_requests(&self) -> &ServerRequests {
        &self.state.server_requests
    }

    /// Counters of the input bridge (session-era clients asked for 2026-07-28 upstreams).
    pub fn input_stats(&self) -> InputStats {
        self.state.input.stats()
    }

    /// Connects every upstream at once and builds the catalogue once every required one is
    /// up, within `startup_timeout_ms` (`server.startup_timeout_ms`). A required upstream that
    /// cannot be reached, or is not up by then, is an error naming it. Optional ones are not
    /// waited for: those up by then are in the first catalogue; the others are logged, keep
    /// connecting, and join the merged lists when they come up (clients hear
    /// `notifications/*/list_changed`), as an upstream that recovers does; one that fails is
    /// retried each epoch tick.
    pub async fn start(&self, startup_timeout_ms: u64) -> Result<(), StartFailure> {
        let arrivals = self.connect_all(true);
        let deadline = Instant::now() + Duration::from_millis(startup_timeout_ms);
        for (link, arrival) in self.state.links.iter().zip(arrivals) {
            if !link.config.required {
                continue;
            }
            if let Err(reason) = arrived(link, arrival, deadline, startup_timeout_ms).await {
                return Err(StartFailure::RequiredDown(format!(
                    "{reason} (required upstream; set required = false to start without it)"
                )));
            }
        }
        for link in self.state.links.iter().filter(|l| l.is_connecting()) {
            log(format_args!(
                "upstream {}: still connecting; serving without it until it answers",
                link.name()
            ));
        }
        self.state.rebuild(true);
        self.state.serving.set(true);
        self.collisions().map_err(StartFailure::Collision)
    }

    /// For `check`: connects to every upstream at once, as start-up does, waits for each up to
    /// `startup_timeout_ms`, and says for each what it offers or why it is not up, then
    /// whether merged names collide. `required_down` names the required upstreams that would
    /// stop `serve`.
    pub async fn probe(&self, startup_timeout_ms: u64) -> Probe {
        let arrivals = self.connect_all(false);
        let deadline = Instant::now() + Duration::from_millis(startup_timeout_ms);
        let mut lines = Vec::with_capacity(self.state.links.len());
        let mut required_down = Vec::new();
        for (link, arrival) in self.state.links.iter().zip(arrivals) {
            let line = match arrived(link, arrival, deadline, startup_timeout_ms).await {
                Ok(()) => format!(
                    "upstream {}: reachable, offers {}",
                    link.name(),
                    offered(&link.cached_lists())
                ),
                Err(reason) if link.config.required => {
                    required_down.push(link.name().to_owned());
                    format!("{reason} (required: serve refuses to start until it answers)")
                }
                Err(reason) => format!(
                    "{reason} (optional: serve starts without it and adds it once it answers)"
                ),
            };
            lines.push(line);
        }
        self.state.rebuild(true);
        Probe {
            lines,
            required_down,
            collisions: self.collisions(),
        }
    }

    /// Starts the first connection of every upstream, all at once, each in a task of its own
    /// that outlives the wait for it: an upstream still connecting when start-up stops waiting
    /// joins the catalogue when it comes up. Returns each task's outcome, in link order. With
    /// `report`, an optional upstream's failure, and its arrival after start-up, are logged.
    fn connect_all(&self, report: bool) -> Vec<JoinHandle<Result<(), String>>> {
        let connect = |link: &Rc<UpstreamLink>| {
            let (link, state) = (link.clone(), self.state.clone());
            glommio::spawn_local(async move {
                let outcome = link.refresh().await;
                match &outcome {
                    Ok(()) => {
                        if report && state.serving.get() {
                            log(format_args!(
                                "upstream {}: up; it joins the merged lists",
                                link.name()
                            ));
                        }
                        state.rebuild(true);
                    }
                    Err(reason) if report && !link.config.required => log(format_args!(
                        "{reason}; serving without it until it answers (retried each epoch tick)"
                    )),
                    Err(_) => {}
                }
                outcome
            })
            .detach()
        };
        self.state.links.iter().map(connect).collect()
    }

    /// Two upstreams offering one merged tool or prompt name (possible with empty prefixes) is
    /// a configuration mistake: one of them would be unreachable.
    fn collisions(&self) -> Result<(), String> {
        let routes = self.state.routes.borrow().clone();
        let collisions: Vec<String> = routes
            .omissions()
            .iter()
            .filter(|omission| {
                matches!(
                    omission,
                    Omission::Collision {
                        kind: Kind::Tools | Kind::Prompts,
                        ..
                    }
                )
            })
            .map(|omission| omission.to_string())
            .collect();
        match collisions.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "merged names collide (upstreams[].prefix):\n  {}",
                collisions.join("\n  ")
            )),
        }
    }

    /// Runs each stdio upstream's reader until the shard stops.
    pub fn spawn_dispatchers(&self) {
        for link in &self.state.links {
            let link = link.clone();
            let state = self.state.clone();
            glommio::spawn_local(async move {
                let now = || state.now_ms();
                link.dispatch(&state.inflight, &state.server_requests, &now)
                    .await;
            })
            .detach();
        }
    }

    /// The epoch tick: expires requests past their deadline (telling their upstreams), closes
    /// idle pooled connections, retries upstreams that are down, and rebuilds the catalogue
    /// when an upstream came or went.
    pub fn tick(&self) {
        let state = &self.state;
        let now = state.now_ms();
        let names = |upstream: u16| state.name_of(upstream);
        for expired in state.inflight.advance(now, &names) {
            let link = state.links[usize::from(expired.upstream)].clone();
            spawn_cancel(link, expired.id, TIMED_OUT, expired.route);
        }
        for link in &state.links {
            link.close_expired();
            if link.wants_refresh() {
                let link = link.clone();
                let state = state.clone();
                glommio::spawn_local(async move {
                    if link.refresh().await.is_ok() {
                        state.rebuild(true);
                    }
                })
                .detach();
            }
        }
        state.rebuild(false);
    }

    /// The upstreams that announced a list change since the last call, for the other shards
    /// to refresh too (the announcement reached this shard's upstream session only).
    pub fn take_announced_changes(&self) -> Vec<u16> {
        let links = self.state.links.iter();
        links
            .filter(|link| link.take_announced())
            .map(|link| link.index)
            .collect()
    }

    /// Another shard heard upstream `upstream` announce a list change: refresh its lists at the
    /// next tick here too.
    pub fn hear_lists_changed(&self, upstream: u16) {
        if let Some(link) = self.state.links.get(usize::from(upstream)) {
            link.hear_lists_changed();
        }
    }

    /// The signal the next change of a merged list fires.
    pub fn lists_changed(&self) -> Rc<Event> {
        self.state.lists_changed.borrow().clone()
    }

    /// The `notifications/*/list_changed` methods of the last change (tools, prompts,
    /// resources; a template change is a resources change).
    pub fn changed_list_methods(&self) -> Vec<&'static str> {
        let [tools, prompts, resources, templates] = self.state.changed_kinds.get();
        [
            (tools, "notifications/tools/list_changed"),
            (prompts, "notifications/prompts/list_changed"),
            (
                resources || templates,
                "notifications/resources/list_changed",
            ),
        ]
        .into_iter()
        .filter(|(changed, _)| *changed)
        .map(|(_, method)| method)
        .collect()
    }

    /// Client sessions ended (deleted, expired, evicted): their upstream sessions are closed.
    pub fn sessions_ended(&self, secrets: &[u128]) {
        for link in &self.state.links {
            for secret in secrets {
                link.end_client_session(*secret);
            }
        }
    }

    /// Closes every client session's upstream sessions (waiting at most
    /// `SESSION_CLOSE_TIMEOUT_MS` for their `DELETE`s), then stops the stdio children.
    pub async fn shutdown(&self) {
        let links = &self.state.links;
        for link in links {
            link.end_client_sessions();
        }
        let deadline = Instant::now() + std::time::Duration::from_millis(SESSION_CLOSE_TIMEOUT_MS);
        while links.iter().any(|l| l.is_closing_sessions()) && Instant::now() < deadline {
            glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
        }
        for link in links {
            link.shutdown().await;
        }
    }

    /// Capabilities of the merged server. Clients hear of list changes in both eras: on a
    /// session's GET stream, or on a `subscriptions/listen` stream (2026-07-28).
    fn capabilities_json(&self) -> String {
        let links = &self.state.links;
        let any = |capability: &str| links.iter().any(|l| l.has_capability(capability));
        let mut capabilities = Map::new();
        capabilities.insert("tools".into(), json!({ "listChanged": true }));
        capabilities.insert("prompts".into(), json!({ "listChanged": true }));
        capabilities.insert(
            "resources".into(),
            json!({ "subscribe": false, "listChanged": true }),
        );
        if any("logging") {
            capabilities.insert("logging".into(), json!({}));
        }
        if any("completions") {
            capabilities.insert("completions".into(), json!({}));
        }
        Value::Object(capabilities).to_string()
    }

    /// The `instructions` of `initialize` and `server/discover`, as a JSON string.
    fn instructions_json(&self) -> String {
        let names: Vec<String> = self
            .state
            .links
            .iter()
            .map(|l| match l.config.prefix.is_empty() {
                true => format!("{} (unprefixed)", l.name()),
                false => format!(
                    "{} (names {}{}…)",
                    l.name(),
                    l.config.prefix,
                    l.config.separator
                ),
            })
            .collect();
        let text = format!(
            "shardgate serves the tools, prompts and resources of these MCP servers as one: {}.",
            names.join(", ")
        );
        // Every `str` serializes.
        serde_json::to_string(&text).expect("a string serializes")
    }

    /// The `initialize` result for a session-era client at the negotiated `version`.
    pub fn initialize_result(&self, version: ProtocolVersion) -> Box<RawValue> {
        raw(format!(
            r#"{{"protocolVersion":"{}","capabilities":{},"serverInfo":{},"instructions":{}}}"#,
            version.as_str(),
            self.capabilities_json(),
            self.server_info,
            self.instructions_json(),
        ))
    }

    /// The route phase: the gateway's own methods and the merged lists are answered here; a
    /// routed method goes to the upstream that owns the name it carries.
    pub async fn route<'r, 'm>(&self, call: &'r Call<'m>) -> Routed<'r, 'm> {
        if let Some(kind) = call.method.listed_kind() {
            let catalogue = self.state.catalogue.borrow();
            return Routed::Answered(list_result(kind, &catalogue, call.params, call.era));
        }
        if let Some(params) = &call.routed {
            return match params {
                Ok(params) => self.target(call.method, params),
                Err(message) => Routed::Answered(Err(RpcError::invalid_params(message.clone()))),
            };
        }
        let answer = match (call.era, call.method) {
            (Era::Stateless, Method::ServerDiscover) => Ok(self.discover()),
            (Era::Session(_), Method::Ping) => Ok(raw("{}".to_owned())),
            (Era::Session(_), Method::LoggingSetLevel) => {
                let scope = SessionScope::of(call.client.route, call.client.log_level);
                self.set_level(call.params, scope).await
            }
            _ => Err(RpcError::method_not_found(call.method_name)),
        };
        Routed::Answered(answer)
    }

    /// A client's answer to a request relayed from an upstream: back to that upstream under
    /// the id it gave, or to the call that asked it for a 2026-07-28 upstream's input. An
    /// answer nobody waits for (its call ended) is dropped.
    pub fn client_response(&self, route: ClientRoute, id: &RawValue, answer: ClientAnswer<'_>) {
        let state = &self.state;
        if let Some((round, slot)) = state.server_requests.take_input(route, id.get()) {
            let answer = match answer {
                ClientAnswer::Sent(outcome, _) => outcome.answer_or_internal(),
                ClientAnswer::Refused(error) => Err(error),
            };
            round.answer(slot, answer);
            return;
        }
        let Some(request) = state.server_requests.take(route, id.get()) else {
            return;
        };
        let upstream_id = &request.upstream_id;
        let restored = match answer {
            ClientAnswer::Sent(_, message) => {
                let id = upstream_id.get().as_bytes();
                match crate::calls::pending::restore_response_id(message, id) {
                    Ok(restored) => restored,
                    Err(_) => return,
                }
            }
            ClientAnswer::Refused(error) => {
                jsonrpc::error_bytes(Some(upstream_id), error.code, &error.message, None)
            }
        };
        let link = state.links[usize::from(request.upstream)].clone();
        glommio::spawn_local(async move { link.respond(&restored, request.client).await }).detach();
    }

    /// A client's `notifications/cancelled` for its request `request_id`: ends it here and tells
    /// the upstream that owns it (and only that one).
    pub fn cancel(&self, route: ClientRoute, request_id: &RawValue) {
        let state = &self.state;
        if let Some((upstream, id)) =
            state
                .inflight
                .cancel_by_client(route, request_id, state.now_ms())
        {
            let link = state.links[usize::from(upstream)].clone();
            spawn_cancel(link, id, "the client cancelled it", route);
        }
    }

    /// The upstream a routed `method` goes to: the merged name in `params`, looked up among
    /// every upstream's entries.
    fn target<'r, 'm>(&self, method: Method, params: &'r CallParams<'m>) -> Routed<'r, 'm> {
        let state = &self.state;
        let Routing { kind, merged, .. } = params.routing();
        let route = state.routes.borrow().route(*kind, merged);
        let Some(route) = route else {
            return self.unknown(*kind, merged);
        };
        // The routes are built from the links, so every route names one.
        let link = state.links[usize::from(route.upstream)].clone();
        Routed::Upstream(Target {
            link,
            method,
            original: route.original,
            params,
        })
    }

    /// The admit phase: the upstream must be up and its circuit breaker closed, and the
    /// pending table must take the call (a cap refuses with 503). Registers the call.
    pub fn admit(
        &self,
        target: &Target<'_, '_>,
        client: &Client<'_>,
    ) -> Result<Admitted, NotAdmitted> {
        let state = &self.state;
        let link = &target.link;
        let now = state.now_ms();
        if !link.is_up() {
            let why = link.down_reason();
            let error = state.client_error(link, CallFailure::Unavailable(why));
            let reason = RefusalReason::UpstreamDown;
            return Err(NotAdmitted::Unavailable { reason, error });
        }
        if let Admission::Refused { retry_in_ms } = link.admit(now) {
            let message = format!(
                "upstream {} is failing: its circuit breaker is open for {retry_in_ms} ms more \
                 (upstreams[{}].breaker_failures, breaker_open_ms)",
                link.name(),
                link.index
            );
            let error = state.client_error(link, CallFailure::Unavailable(message));
            let reason = RefusalReason::BreakerOpen;
            return Err(NotAdmitted::Unavailable { reason, error });
        }
        let timeout_ms = link.config.request_timeout_ms;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let names = |upstream: u16| state.name_of(upstream);
        let mut timed_out = Vec::new();
        let registered = state.inflight.register(
            link.index,
            client.route,
            client.id,
            target.params.progress_token(),
            (now + timeout_ms, now),
            &names,
            &mut timed_out,
        );
        for expired in timed_out {
            let link = state.links[usize::from(expired.upstream)].clone();
            spawn_cancel(link, expired.id, TIMED_OUT, expired.route);
        }
        let registered = registered.map_err(|refusal| {
            let message = refusal.message(link.name());
            NotAdmitted::Full { refusal, message }
        })?;
        if client.takes_requests {
            registered.state.allow_requests(client.route);
        }
        Ok(Admitted {
            registered,
            deadline,
        })
    }

    /// The upstream-request phase: the client's params rewritten for the upstream — its own
    /// name for the thing, the gateway's progress token and `_meta`.
    pub fn upstream_request(
        &self,
        target: Target<'_, '_>,
        admitted: Admitted,
        client: &Client<'_>,
    ) -> BridgedCall {
        let Target {
            link,
            method,
            original,
            params,
        } = target;
        let id = admitted.registered.id;
        let progress_token = params.progress_token();
        let rewrite = Rewrite {
            original: &original,
            progress: progress_token.map(|_| id),
            log_level: client.log_level,
            client_capabilities: bridges_input(&link, client).then_some(client.input_capabilities),
            stateless: link.speaks_stateless(),
        };
        // Room for the client's params and the members the gateway adds.
        let mut upstream_params = Vec::with_capacity(params.text_len() + 192);
        params.write(&mut upstream_params, &rewrite);
        BridgedCall {
            link,
            id,
            method: method.as_str(),
            params: upstream_params,
            // The stateless era mirrors `params.name` or `params.uri` in `Mcp-Name`.
            name: method.mirrors_name().then_some(original),
            client_token: progress_token.map(|t| t.get().as_bytes().to_vec()),
            state: admitted.registered.state,
            client: client.route,
            capabilities: client.input_capabilities,
            deadline: admitted.deadline,
            param_headers: client.param_headers.to_vec(),
        }
    }

    /// The call phase: the request goes to its upstream in a task of its own; the [`Relay`]
    /// returned carries its notifications and answer to the client, and cancels it if dropped.
    pub fn start_call(&self, call: BridgedCall, client: &Client<'_>) -> Relay {
        let state = &self.state;
        let bridged = bridges_input(&call.link, client);
        let (link, id, deadline) = (call.link.clone(), call.id, call.deadline);
        let call_state = call.state.clone();
        let scope = SessionScope::of(client.route, client.log_level);
        let task = spawn_call(state.clone(), call, bridged, scope);
        Relay {
            state: call_state,
            link,
            router: state.clone(),
            route: client.route,
            client_id: client.id.to_owned(),
            id,
            deadline,
            task: Some(task),
            done: false,
            refusal: None,
        }
    }

    /// The answer for a name no route knows: unknown, or, when it carries the prefix of an
    /// upstream that is down, unavailable, naming that upstream.
    fn unknown<'r, 'm>(&self, kind: Kind, merged: &str) -> Routed<'r, 'm> {
        let state = &self.state;
        let down = state.links.iter().find(|link| {
            let prefix = &link.config.prefix;
            !link.is_up()
                && !prefix.is_empty()
                && merged
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with(link.config.separator.as_str()))
        });
        if let Some(link) = down {
            let why = link.down_reason();
            let error = state.client_error(link, CallFailure::Unavailable(why));
            let reason = RefusalReason::UpstreamDown;
            return Routed::Unavailable(NotAdmitted::Unavailable { reason, error });
        }
        let (what, list) = match kind {
            Kind::Tools => ("tool", "tools/list"),
            Kind::Prompts => ("prompt", "prompts/list"),
            _ => ("resource", "resources/list"),
        };
        let error = RpcError::invalid_params(format!(
            "unknown {what} {merged:?}: no upstream offers it (see {list})"
        ));
        Routed::Answered(Err(match kind {
            Kind::Resources => error.with_data(raw(json!({ "uri": merged }).to_string())),
            _ => error,
        }))
    }

    /// `logging/setLevel`: to every upstream that takes it, under the client's own upstream
    /// session where it has one (`per_client`).
    async fn set_level(
        &self,
        params: Option<&RawValue>,
        scope: SessionScope,
    ) -> Result<Box<RawValue>, RpcError> {
        let params: Value = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        let level = params.get("level").and_then(Value::as_str).unwrap_or("");
        let Some(level) = jsonrpc::LOG_LEVELS.iter().copied().find(|l| *l == level) else {
            return Err(RpcError::invalid_params(format!(
                "logging/setLevel needs params.level, one of {}; got {:?}",
                jsonrpc::LOG_LEVELS.join(", "),
                params.get("level")
            )));
        };
        let mut failures = Vec::new();
        for link in self.state.links.iter().filter(|l| l.takes_set_level()) {
            if let Err(failure) = link.set_level(level, scope).await {
                failures.push(format!("{}: {failure:?}", link.name()));
            }
        }
        if !failures.is_empty() {
            log(format_args!(
                "logging/setLevel {level}: not applied by {}",
                failures.join("; ")
            ));
        }
        Ok(raw("{}".to_owned()))
    }

    fn discover(&self) -> Box<RawValue> {
        let supported = ProtocolVersion::SUPPORTED_JSON;
        let capabilities = self.capabilities_json();
        let info = &self.server_info;
        let instructions = self.instructions_json();
        raw(format!(
            r#"{{"supportedVersions":{supported},"capabilities":{capabilities},"serverInfo":{info},"instructions":{instructions},"ttlMs":{DISCOVER_TTL_MS},"cacheScope":"public","_meta":{{"io.modelcontextprotocol/serverInfo":{info}}}}}"#
        ))
    }
}

/// Waits until `deadline` for `link`'s first connection (`arrival`): `Err` says why it is not
/// up, naming the link.
async fn arrived(
    link: &UpstreamLink,
    arrival: JoinHandle<Result<(), String>>,
    deadline: Instant,
    startup_timeout_ms: u64,
) -> Result<(), String> {
    match deadline::race(deadline, arrival).await {
        Some(Some(outcome)) => outcome,
        Some(None) => Err(format!(
            "upstream {}: its connection task stopped",
            link.name()
        )),
        None => Err(format!(
            "upstream {}: not up within server.startup_timeout_ms {startup_timeout_ms} ms \
             (its handshake is still under way; raise that key if it is only slow)",
            link.name()
        )),
    }
}

/// The reason an upstream hears when a call's `request_timeout_ms` passed.
const TIMED_OUT: &str = "request_timeout_ms passed";

/// Tells `link` that call `id` is abandoned (`notifications/cancelled` with `reason`), in a
/// task of its own: whoever ends a call does not wait for the upstream to hear it.
fn spawn_cancel(
    link: Rc<UpstreamLink>,
    id: UpstreamRequestId,
    reason: &'static str,
    route: ClientRoute,
) {
    glommio::spawn_local(async move { link.cancel(id, reason, route).await }).detach();
}

/// Whether a 2026-07-28 upstream's requests for input reach `client` through the input bridge:
/// a session-era client reads requests on its call's stream; a stateless one gets
/// `input_required` results itself.
fn bridges_input(link: &UpstreamLink, client: &Client<'_>) -> bool {
    client.takes_requests && link.speaks_stateless()
}

/// Runs one call on its upstream and settles its state, unless the deadline or the client got
/// there first. When `bridged`, an `input_required` result is answered by asking the client
/// and retrying (`upstream::input`) before the call settles.
/// `scope` names the upstream session the call goes under.
fn spawn_call(
    router: Rc<RouterState>,
    call: BridgedCall,
    bridged: bool,
    scope: SessionScope,
) -> glommio::Task<()> {
    glommio::spawn_local(async move {
        let request = CallRequest {
            method: call.method,
            params: &call.params,
            name: call.name.as_deref(),
            timeout_ms: call.link.config.request_timeout_ms,
            param_headers: &call.param_headers,
            scope,
        };
        let outcome = call
            .link
            .call(
                call.id,
                &request,
                call.client_token.as_deref(),
                &call.state,
                &router.server_requests,
            )
            .await;
        // `None`: a stdio request went out; its answer comes through the dispatcher.
        let Some(outcome) = outcome else { return };
        let outcome = match (bridged, outcome) {
            (true, Ok(first)) => {
                router
                    .input
                    .run(&call, &router.server_requests, first)
                    .await
            }
            (_, outcome) => outcome,
        };
        let now = router.now_ms();
        if router
            .inflight
            .complete_id(call.link.index, call.id, now)
            .is_some()
        {
            call.state.settle(outcome);
        }
    })
}

/// A merged list as one page; a cursor cannot come from this gateway, so any is refused.
fn list_result(
    kind: Kind,
    catalogue: &Catalogue,
    params: Option<&RawValue>,
    era: Era,
) -> Result<Box<RawValue>, RpcError> {
    let cursor = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|p| p.get("cursor").cloned());
    if let Some(cursor) = cursor.filter(|c| !c.is_null()) {
        return Err(RpcError::invalid_params(format!(
            "invalid cursor {cursor}: this server returns every entry in one page"
        )));
    }
    // Stateless clients may cache a list; the merged one changes when an upstream comes, goes
    // or announces a change, so the hint is as short as discover's.
    let caching = match era {
        Era::Stateless => format!(r#","ttlMs":{DISCOVER_TTL_MS},"cacheScope":"public""#),
        Era::Session(_) => String::new(),
    };
    Ok(raw(format!(
        r#"{{"{}":{}{caching}}}"#,
        kind.member(),
        catalogue.list_json(kind)
    )))
}

/// What one upstream's lists hold, for `check`: `3 tools, 1 prompts, 0 resources, …`.
fn offered(lists: &[Option<Box<RawValue>>; 4]) -> String {
    let counted = Kind::ALL.iter().zip(lists).map(|(kind, list)| {
        let entries = list
            .as_ref()
            .and_then(|list| serde_json::from_str::<Vec<&RawValue>>(list.get()).ok())
            .map_or(0, |entries| entries.len());
        format!("{entries} {}", kind.member())
    });
    counted.collect::<Vec<_>>().join(", ")
}

/// The router's own answers as raw values. It writes them from literals, values it printed
/// with serde_json and strings it escaped, never from text it was sent, so they are valid JSON.
fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).expect("the router renders valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &RawValue) -> Value {
        serde_json::from_str(raw.get()).unwrap()
    }

    fn router() -> Router {
        Router::new(&Config::default(), 0, ShardClock::start()).unwrap()
    }

    #[test]
    fn initialize_result_names_the_negotiated_version_and_the_gateway() {
        let result = parse(&router().initialize_result(ProtocolVersion::V2025_06_18));
        assert_eq!(result["protocolVersion"], "2025-06-18");
        assert_eq!(result["serverInfo"]["name"], "shardgate");
        assert!(result["capabilities"]["tools"].is_object());
        assert!(result["instructions"]
            .as_str()
            .unwrap()
            .contains("demo (names demo__…)"));
    }

    #[test]
    fn discover_lists_every_supported_version_with_caching_hints() {
        let router = router();
        let result = parse(&router.discover());
        let versions = result["supportedVersions"].as_array().unwrap();
        assert_eq!(versions.len(), ProtocolVersion::SUPPORTED.len());
        assert!(versions.iter().any(|v| v == "2026-07-28"));
        assert_eq!(result["cacheScope"], "public");
        assert!(result["ttlMs"].as_u64().unwrap() > 0);
        assert_eq!(result["serverInfo"]["name"], "shardgate");
        assert_eq!(
            result["_meta"]["io.modelcontextprotocol/serverInfo"],
            result["serverInfo"]
        );
    }
}
