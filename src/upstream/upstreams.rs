//! The shard's upstreams behind one facade: the front calls [`Upstreams`] for everything it
//! needs of the servers behind the gateway — connecting them at start-up, the epoch tick, a
//! call's admission and its task (in [`call`](super::call)), a client's answers to upstream
//! requests and its cancellations, `logging/setLevel`, and shutdown — and reads their cached
//! lists to build the merged catalogue.
//!
//! Ownership: one per shard, built from the config at start-up; its links, pending table,
//! server requests and input bridge are that shard's. Call tasks share it through an `Rc`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::task::JoinHandle;
use serde_json::value::RawValue;

use crate::calls::inflight::{ClientRoute, InFlight, ServerRequests};
use crate::calls::pending::{restore_response_id, PendingLimits};
use crate::config::Config;
use crate::support::clock::ShardClock;
use crate::support::event::Event;
use crate::support::{deadline, log};
use crate::upstream::call::{spawn_cancel, TIMED_OUT};
use crate::upstream::input::{InputBridge, InputStats};
use crate::upstream::link::{SessionScope, UpstreamLink, SESSION_CLOSE_TIMEOUT_MS};
use crate::wire::jsonrpc::{self, Outcome, RpcError};
use crate::wire::kind::Kind;

/// What a client answered a request of an upstream with.
pub enum ClientAnswer<'a> {
    /// Its response: the outcome read from it, and the message as it came.
    Sent(&'a Outcome<'a>, &'a [u8]),
    /// A response the gateway refused (nested too deep): the error it stands for.
    Refused(RpcError),
}

/// What `check` learned by connecting to every upstream.
pub struct Probe {
    /// One line per upstream: what it offers, or why it is not up.
    pub lines: Vec<String>,
    /// The required upstreams that are not up: `serve` would not start.
    pub required_down: Vec<String>,
}

/// The shard's upstreams. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct Upstreams {
    pub(super) shared: Rc<Shared>,
}

/// What the facade's tasks share.
pub(super) struct Shared {
    pub(super) links: Vec<Rc<UpstreamLink>>,
    pub(super) inflight: InFlight,
    /// Requests from upstreams relayed to clients, waiting for their answers.
    pub(super) server_requests: ServerRequests,
    /// Asks session-era clients for the input 2026-07-28 upstreams require.
    pub(super) input: InputBridge,
    clock: ShardClock,
    /// Fired (and replaced) when an upstream's lists were fetched anew: the merged catalogue
    /// is rebuilt.
    refreshed: RefCell<Rc<Event>>,
    /// Start-up is over: an upstream that comes up now arrived late.
    serving: Cell<bool>,
}

impl Shared {
    pub(super) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(super) fn name_of(&self, upstream: u16) -> String {
        self.links
            .get(usize::from(upstream))
            .map_or_else(|| format!("#{upstream}"), |l| l.name().to_owned())
    }

    /// An upstream's lists were fetched anew.
    fn lists_refreshed(&self) {
        let fired = self.refreshed.replace(Rc::default());
        fired.set();
    }
}

impl Upstreams {
    /// Builds one link per `[[upstreams]]` entry (starting stdio children), the pending table,
    /// the server-request map and the input bridge.
    pub fn new(config: &Config, shard: u8, clock: ShardClock) -> Result<Upstreams, String> {
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
        let shared = Shared {
            links,
            inflight,
            server_requests,
            input: InputBridge::new(pending.input_rounds_max),
            clock,
            refreshed: RefCell::new(Rc::default()),
            serving: Cell::new(false),
        };
        Ok(Upstreams {
            shared: Rc::new(shared),
        })
    }

    pub fn links(&self) -> &[Rc<UpstreamLink>] {
        &self.shared.links
    }

    pub fn inflight(&self) -> &InFlight {
        &self.shared.inflight
    }

    /// Requests from upstreams relayed to clients and waiting for their answers.
    pub fn server_requests(&self) -> &ServerRequests {
        &self.shared.server_requests
    }

    /// Counters of the input bridge (session-era clients asked for 2026-07-28 upstreams).
    pub fn input_stats(&self) -> InputStats {
        self.shared.input.stats()
    }

    /// The event the next fresh fetch of any upstream's lists fires.
    pub fn refreshed(&self) -> Rc<Event> {
        self.shared.refreshed.borrow().clone()
    }

    /// Whether any upstream declared `capability` at its last handshake.
    pub fn any_has_capability(&self, capability: &str) -> bool {
        self.shared
            .links
            .iter()
            .any(|l| l.has_capability(capability))
    }

    /// Connects every upstream at once and waits, within `startup_timeout_ms`
    /// (`server.startup_timeout_ms`), for every required one. A required upstream that cannot
    /// be reached, or is not up by then, is an error naming it. Optional ones are not waited
    /// for: the others are logged, keep connecting, and join when they come up (the lists they
    /// fetch fire [`Upstreams::refreshed`]); one that fails is retried each epoch tick.
    pub async fn start(&self, startup_timeout_ms: u64) -> Result<(), String> {
        let arrivals = self.connect_all(true);
        let deadline = Instant::now() + Duration::from_millis(startup_timeout_ms);
        for (link, arrival) in self.shared.links.iter().zip(arrivals) {
            if !link.config.required {
                continue;
            }
            if let Err(reason) = arrived(link, arrival, deadline, startup_timeout_ms).await {
                return Err(format!(
                    "{reason} (required upstream; set required = false to start without it)"
                ));
            }
        }
        for link in self.shared.links.iter().filter(|l| l.is_connecting()) {
            log(format_args!(
                "upstream {}: still connecting; serving without it until it answers",
                link.name()
            ));
        }
        self.shared.serving.set(true);
        Ok(())
    }

    /// For `check`: connects to every upstream at once, as start-up does, waits for each up to
    /// `startup_timeout_ms`, and says for each what it offers or why it is not up.
    /// `required_down` names the required upstreams that would stop `serve`.
    pub async fn probe(&self, startup_timeout_ms: u64) -> Probe {
        let arrivals = self.connect_all(false);
        let deadline = Instant::now() + Duration::from_millis(startup_timeout_ms);
        let mut lines = Vec::with_capacity(self.shared.links.len());
        let mut required_down = Vec::new();
        for (link, arrival) in self.shared.links.iter().zip(arrivals) {
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
        Probe {
            lines,
            required_down,
        }
    }

    /// Starts the first connection of every upstream, all at once, each in a task of its own
    /// that outlives the wait for it: an upstream still connecting when start-up stops waiting
    /// joins when it comes up. Returns each task's outcome, in link order. With `report`, an
    /// optional upstream's failure, and its arrival after start-up, are logged.
    fn connect_all(&self, report: bool) -> Vec<JoinHandle<Result<(), String>>> {
        let connect = |link: &Rc<UpstreamLink>| {
            let (link, shared) = (link.clone(), self.shared.clone());
            glommio::spawn_local(async move {
                let outcome = link.refresh().await;
                match &outcome {
                    Ok(()) => {
                        if report && shared.serving.get() {
                            log(format_args!(
                                "upstream {}: up; it joins the merged lists",
                                link.name()
                            ));
                        }
                        shared.lists_refreshed();
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
        self.shared.links.iter().map(connect).collect()
    }

    /// Runs each stdio upstream's reader until the shard stops.
    pub fn spawn_dispatchers(&self) {
        for link in &self.shared.links {
            let (link, shared) = (link.clone(), self.shared.clone());
            glommio::spawn_local(async move {
                let now = || shared.now_ms();
                link.dispatch(&shared.inflight, &shared.server_requests, &now)
                    .await;
            })
            .detach();
        }
    }

    /// The epoch tick: expires requests past their deadline (telling their upstreams), closes
    /// idle pooled connections and retries upstreams that are down.
    pub fn tick(&self) {
        let shared = &self.shared;
        let now = shared.now_ms();
        let names = |upstream: u16| shared.name_of(upstream);
        for expired in shared.inflight.advance(now, &names) {
            let link = shared.links[usize::from(expired.upstream)].clone();
            spawn_cancel(link, expired.id, TIMED_OUT, expired.route);
        }
        for link in &shared.links {
            link.close_expired();
            if link.wants_refresh() {
                let (link, shared) = (link.clone(), shared.clone());
                glommio::spawn_local(async move {
                    if link.refresh().await.is_ok() {
                        shared.lists_refreshed();
                    }
                })
                .detach();
            }
        }
    }

    /// The upstreams that announced a list change since the last call, for the other shards
    /// to refresh too (the announcement reached this shard's upstream session only).
    pub fn take_announced_changes(&self) -> Vec<u16> {
        let links = self.shared.links.iter();
        links
            .filter(|link| link.take_announced())
            .map(|link| link.index)
            .collect()
    }

    /// Another shard heard upstream `upstream` announce a list change: refresh its lists at the
    /// next tick here too.
    pub fn hear_lists_changed(&self, upstream: u16) {
        if let Some(link) = self.shared.links.get(usize::from(upstream)) {
            link.hear_lists_changed();
        }
    }

    /// Client sessions ended (deleted, expired, evicted): their upstream sessions are closed.
    pub fn sessions_ended(&self, secrets: &[u128]) {
        for link in &self.shared.links {
            for secret in secrets {
                link.end_client_session(*secret);
            }
        }
    }

    /// Closes every client session's upstream sessions (waiting at most
    /// `SESSION_CLOSE_TIMEOUT_MS` for their `DELETE`s), then stops the stdio children.
    pub async fn shutdown(&self) {
        let links = &self.shared.links;
        for link in links {
            link.end_client_sessions();
        }
        let deadline = Instant::now() + Duration::from_millis(SESSION_CLOSE_TIMEOUT_MS);
        while links.iter().any(|l| l.is_closing_sessions()) && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        for link in links {
            link.shutdown().await;
        }
    }

    /// A client's answer to a request relayed from an upstream: back to that upstream under
    /// the id it gave, or to the call that asked it for a 2026-07-28 upstream's input. An
    /// answer nobody waits for (its call ended) is dropped.
    pub fn client_response(&self, route: ClientRoute, id: &RawValue, answer: ClientAnswer<'_>) {
        let shared = &self.shared;
        if let Some((round, slot)) = shared.server_requests.take_input(route, id.get()) {
            let answer = match answer {
                ClientAnswer::Sent(outcome, _) => outcome.answer_or_internal(),
                ClientAnswer::Refused(error) => Err(error),
            };
            round.answer(slot, answer);
            return;
        }
        let Some(request) = shared.server_requests.take(route, id.get()) else {
            return;
        };
        let upstream_id = &request.upstream_id;
        let restored = match answer {
            ClientAnswer::Sent(_, message) => {
                match restore_response_id(message, upstream_id.get().as_bytes()) {
                    Ok(restored) => restored,
                    Err(_) => return,
                }
            }
            ClientAnswer::Refused(error) => {
                jsonrpc::error_bytes(Some(upstream_id), error.code, &error.message, None)
            }
        };
        let link = shared.links[usize::from(request.upstream)].clone();
        glommio::spawn_local(async move { link.respond(&restored, request.client).await }).detach();
    }

    /// A client's `notifications/cancelled` for its request `request_id`: ends it here and tells
    /// the upstream that owns it (and only that one).
    pub fn cancel(&self, route: ClientRoute, request_id: &RawValue) {
        let shared = &self.shared;
        let cancelled = shared
            .inflight
            .cancel_by_client(route, request_id, shared.now_ms());
        if let Some((upstream, id)) = cancelled {
            let link = shared.links[usize::from(upstream)].clone();
            spawn_cancel(link, id, "the client cancelled it", route);
        }
    }

    /// `logging/setLevel` `level` to every upstream that takes it, under the client's own
    /// upstream session where it has one (`per_client`). An upstream that does not apply it
    /// is logged: the client's request is answered either way.
    pub async fn set_level(&self, level: &'static str, scope: SessionScope) {
        let mut failures = Vec::new();
        for link in self.shared.links.iter().filter(|l| l.takes_set_level()) {
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
