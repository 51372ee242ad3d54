//! The listen stream of a session-era `http` upstream: the standalone GET stream on which the
//! server sends what belongs to no request (`notifications/*/list_changed`, log messages,
//! requests of its own).
//!
//! One per upstream per shard, on a connection of its own beside the pool
//! ([`crate::upstream::pool::UpstreamPool::request_dedicated`]): held for the session's life,
//! inside the pool it would take one of the `pool_connections_max` connections calls share for
//! good (all of them at `pool_connections_max = 1`). `shardgate plan` counts it in the
//! upstream's pool row.
//!
//! What arrives on it: a `list_changed` marks the upstream's lists for the epoch tick to
//! refresh, on this shard and, over the mesh, on the others (the server told this shard's
//! session only); clients hear of it once the merged list changed, as for one that arrives
//! during a call; `ping` is answered; any other request has no call to ride on and gets an error
//! answer, counted as the upstream's refused server requests; other notifications are counted
//! and dropped.
//!
//! Lifecycle: opened once a handshake gave the shard a session. A 405 means the server offers
//! no such stream (`not_offered` until the next session). When the stream ends or fails it is
//! opened again after [`LISTEN_BACKOFF_MS_MIN`], doubling up to [`LISTEN_BACKOFF_MS_MAX`]
//! (back to the minimum once a stream stayed open [`LISTEN_HEALTHY_MS`]), with `Last-Event-ID`
//! when the server numbered its events; each reopened stream also marks the lists for a
//! refresh, since what the server sent in the gap is lost unless it replays it. A 404 says the
//! session expired: the lists are marked for refresh, whose first request initializes a new
//! session (the link does that once, transparently), and the stream follows the new session.
//! A new session or the upstream going down ends the stream at once; the task ends when the
//! link shuts down ([`UpstreamLink::shutdown`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_lite::future;
use serde::Serialize;

use super::{LinkKind, UpstreamEra, UpstreamLink};
use crate::support::event::Event;
use crate::upstream::pool::{Reply, RequestSpec};
use crate::wire::jsonrpc::{self, EnvelopeErrorKind, Message};

/// The first wait before a listen stream that ended or failed is opened again.
pub const LISTEN_BACKOFF_MS_MIN: u64 = 500;
/// The longest wait between two attempts: a server that keeps refusing the stream costs one
/// GET per this many ms per shard.
pub const LISTEN_BACKOFF_MS_MAX: u64 = 30_000;
/// A stream that stayed open this long was healthy: the next attempt waits the minimum again.
pub const LISTEN_HEALTHY_MS: u64 = 10_000;

const _: () = assert!(LISTEN_BACKOFF_MS_MIN > 0);
const _: () = assert!(LISTEN_BACKOFF_MS_MIN <= LISTEN_BACKOFF_MS_MAX);

/// Where an upstream's listen stream stands, as `/status` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenState {
    /// Not a session-era `http` upstream: `builtin`, `stdio`, the 2026-07-28 era, or no
    /// handshake yet.
    NotApplicable,
    /// A session-era `http` upstream that is down: the stream opens after its next handshake.
    Closed,
    /// The first GET of this session is under way.
    Connecting,
    /// The stream is open.
    Open,
    /// The stream ended or failed; it is opened again after the backoff.
    Reconnecting,
    /// The server answered the GET with 405: it offers no listen stream in this session.
    NotOffered,
}

impl ListenState {
    /// Fixed label for `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotApplicable => "n/a",
            Self::Closed => "closed",
            Self::Connecting => "connecting",
            Self::Open => "open",
            Self::Reconnecting => "reconnecting",
            Self::NotOffered => "not_offered",
        }
    }
}

/// The listen stream of one upstream on one shard, for `/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ListenStats {
    /// `n/a`, `closed`, `connecting`, `open`, `reconnecting` or `not_offered`.
    pub state: &'static str,
    /// Streams the server opened.
    pub opened_total: u64,
    /// Streams that ended or failed to open (each followed by a reconnect after the backoff).
    pub ended_total: u64,
    /// `notifications/*/list_changed` that arrived on it.
    pub list_changed_total: u64,
    /// Requests that arrived on it and got an error answer (no call to relay them to).
    pub requests_refused_total: u64,
    /// Other notifications that arrived on it, dropped (no client to send them to).
    pub notifications_dropped_total: u64,
    /// Why the last stream ended or failed to open.
    pub last_error: Option<String>,
}

/// The listen stream's state inside an `http` link.
#[derive(Default)]
pub(super) struct Listen {
    state: Cell<Option<ListenState>>,
    /// Fired (and replaced) when the session changes: a handshake, a new session, the upstream
    /// going down. The listen task waits on it and reopens for the new session.
    session_changed: RefCell<Rc<Event>>,
    /// Set once when the link shuts down: the task ends.
    stopped: Event,
    /// The server answered 405 in this session.
    not_offered: Cell<bool>,
    /// Whether a stream was opened in this session (a later one is a reopen).
    opened_in_session: Cell<bool>,
    /// The last event id the server gave in this session, sent as `Last-Event-ID`.
    last_event_id: RefCell<String>,
    opened_total: Cell<u64>,
    ended_total: Cell<u64>,
    list_changed_total: Cell<u64>,
    requests_refused_total: Cell<u64>,
    notifications_dropped_total: Cell<u64>,
    last_error: RefCell<Option<String>>,
}

/// How one attempt at the stream ended.
enum ListenEnd {
    /// The server answered 405.
    NotOffered,
    /// The server answered 404 for the session.
    SessionExpired,
    /// The stream could not be opened, or failed or ended after it opened.
    Ended { reason: String, opened: bool },
    /// The session changed while the attempt ran.
    SessionChanged,
    /// The link shut down.
    Stopped,
}

impl Listen {
    /// The session changed (or the upstream went down): forget the old session's stream.
    pub(super) fn session_changed(&self) {
        self.not_offered.set(false);
        self.opened_in_session.set(false);
        self.last_event_id.borrow_mut().clear();
        let fired = self.session_changed.replace(Rc::default());
        fired.set();
    }

    /// Ends the listen task (the link shuts down).
    pub(super) fn stop(&self) {
        self.stopped.set();
        self.session_changed.borrow().set();
    }

    pub(super) fn stats(&self, fallback: ListenState) -> ListenStats {
        ListenStats {
            state: self.state.get().unwrap_or(fallback).as_str(),
            opened_total: self.opened_total.get(),
            ended_total: self.ended_total.get(),
            list_changed_total: self.list_changed_total.get(),
            requests_refused_total: self.requests_refused_total.get(),
            notifications_dropped_total: self.notifications_dropped_total.get(),
            last_error: self.last_error.borrow().clone(),
        }
    }

    fn bump(counter: &Cell<u64>) {
        counter.set(counter.get() + 1);
    }
}

/// Resolves when `signal` fires or the link stops.
async fn changed_or_stopped(signal: &Event, listen: &Listen) {
    future::or(signal.wait(), listen.stopped.wait()).await
}

impl UpstreamLink {
    /// For a session-era `http` upstream: keeps its listen stream open (see the module doc)
    /// until the link shuts down. Returns at once for other kinds.
    pub async fn listen(&self) {
        let LinkKind::Http(http) = &self.kind else {
            return;
        };
        let listen = &http.listen;
        let mut backoff_ms = LISTEN_BACKOFF_MS_MIN;
        while !listen.stopped.is_set() {
            let changed = listen.session_changed.borrow().clone();
            let Some(target) = self.listen_target() else {
                listen.state.set(None);
                changed_or_stopped(&changed, listen).await;
                continue;
            };
            if listen.not_offered.get() {
                listen.state.set(Some(ListenState::NotOffered));
                changed_or_stopped(&changed, listen).await;
                continue;
            }
            let state = match listen.opened_in_session.get() || backoff_ms > LISTEN_BACKOFF_MS_MIN {
                true => ListenState::Reconnecting,
                false => ListenState::Connecting,
            };
            listen.state.set(Some(state));
            let started = Instant::now();
            let attempt = async { self.listen_once(&target).await };
            let interrupted = async {
                changed.wait().await;
                match listen.stopped.is_set() {
                    true => ListenEnd::Stopped,
                    false => ListenEnd::SessionChanged,
                }
            };
            let end = future::or(attempt, interrupted).await;
            let reason = match end {
                ListenEnd::Stopped => return,
                ListenEnd::SessionChanged => {
                    backoff_ms = LISTEN_BACKOFF_MS_MIN;
                    continue;
                }
                ListenEnd::NotOffered => {
                    listen.not_offered.set(true);
                    continue;
                }
                ListenEnd::SessionExpired => {
                    // The next list request initializes a new session; the stream follows it.
                    self.lists_changed.set(true);
                    "the server answered 404: the upstream session expired".to_owned()
                }
                ListenEnd::Ended { reason, opened } => {
                    let healthy = started.elapsed() >= Duration::from_millis(LISTEN_HEALTHY_MS);
                    if opened && healthy {
                        backoff_ms = LISTEN_BACKOFF_MS_MIN;
                    }
                    reason
                }
            };
            Listen::bump(&listen.ended_total);
            *listen.last_error.borrow_mut() = Some(reason);
            listen.state.set(Some(ListenState::Reconnecting));
            let wait = glommio::timer::sleep(Duration::from_millis(backoff_ms));
            future::or(wait, changed_or_stopped(&changed, listen)).await;
            backoff_ms = (backoff_ms * 2).min(LISTEN_BACKOFF_MS_MAX);
        }
    }

    /// The listen stream's state when its task has not set one: what the link is.
    pub(super) fn listen_fallback(&self) -> ListenState {
        match &self.kind {
            LinkKind::Http(http) => match &*http.era.borrow() {
                UpstreamEra::Session { .. } if !self.is_up() => ListenState::Closed,
                _ => ListenState::NotApplicable,
            },
            _ => ListenState::NotApplicable,
        }
    }

    /// The protocol version and session to open the stream for: `Some` while the upstream is
    /// up in the session era.
    fn listen_target(&self) -> Option<(&'static str, Option<String>)> {
        let LinkKind::Http(http) = &self.kind else {
            return None;
        };
        match &*http.era.borrow() {
            UpstreamEra::Session { version, session } if self.is_up() => {
                Some((version, session.clone()))
            }
            _ => None,
        }
    }

    /// One GET: opens the stream and reads it until it ends.
    async fn listen_once(&self, (version, session): &(&'static str, Option<String>)) -> ListenEnd {
        let LinkKind::Http(http) = &self.kind else {
            return ListenEnd::Stopped;
        };
        let listen = &http.listen;
        let last_event_id = listen.last_event_id.borrow().clone();
        let mut headers: Vec<(&str, &str)> = vec![
            ("Accept", "text/event-stream"),
            ("MCP-Protocol-Version", version),
        ];
        if let Some(session) = session {
            headers.push(("Mcp-Session-Id", session));
        }
        if !last_event_id.is_empty() {
            headers.push(("Last-Event-ID", &last_event_id));
        }
        let spec = RequestSpec {
            method: "GET",
            headers: &headers,
            body: None,
            timeout_ms: self.control_timeout_ms(),
        };
        let ended = |reason: String, opened: bool| ListenEnd::Ended { reason, opened };
        let mut stream = match http.pool.request_dedicated(&spec).await {
            Err(e) => return ended(format!("GET failed: {e}"), false),
            Ok(Reply::Buffered(response)) => {
                return match response.head.status() {
                    405 => ListenEnd::NotOffered,
                    404 if session.is_some() => ListenEnd::SessionExpired,
                    status => ended(format!("GET answered HTTP {status}"), false),
                }
            }
            Ok(Reply::Stream(stream)) => stream,
        };
        if listen.opened_in_session.replace(true) {
            // What the server sent while no stream was open is lost unless it replays it.
            self.lists_changed.set(true);
        }
        Listen::bump(&listen.opened_total);
        listen.state.set(Some(ListenState::Open));
        loop {
            let event = match stream.next_event().await {
                Err(e) => return ended(format!("the stream failed: {e}"), true),
                Ok(None) => return ended("the server ended the stream".to_owned(), true),
                Ok(Some(event)) => event,
            };
            if !stream.last_event_id().is_empty() {
                let mut kept = listen.last_event_id.borrow_mut();
                kept.clear();
                kept.push_str(stream.last_event_id());
            }
            if event.data.is_empty() {
                continue;
            }
            if let Some(reply) = self.on_listen_message(&event.data) {
                // The stream belongs to the shared session; so does the answer.
                let era = http.era.borrow().clone();
                let _ = self
                    .http_post(
                        http,
                        &era,
                        &reply,
                        "",
                        self.control_timeout_ms(),
                        &mut |m| self.unrelayed(m),
                    )
                    .await;
            }
        }
    }

    /// Takes one message of the listen stream; returns the answer to a request it carried.
    fn on_listen_message(&self, message: &[u8]) -> Option<Vec<u8>> {
        let LinkKind::Http(http) = &self.kind else {
            return None;
        };
        let listen = &http.listen;
        match self.parse(message) {
            Err(too_deep) if too_deep.kind() == EnvelopeErrorKind::TooDeep => {
                self.count_too_deep();
                None
            }
            Ok(Message::Notification { method, .. }) if method.ends_with("/list_changed") => {
                Listen::bump(&listen.list_changed_total);
                self.announce_lists_changed();
                None
            }
            Ok(Message::Notification { .. }) => {
                Listen::bump(&listen.notifications_dropped_total);
                None
            }
            Ok(Message::Request { id, method, .. }) if method == "ping" => {
                Some(jsonrpc::result_bytes(id, &super::empty_result()))
            }
            Ok(Message::Request { id, method, .. }) => {
                Listen::bump(&listen.requests_refused_total);
                Some(self.refuse_server_request(id, &method))
            }
            _ => {
                self.count_unroutable();
                None
            }
        }
    }
}
