//! Requests in flight to upstreams on one shard, as the request path sees them: the pending
//! table (ids, caps, deadlines; `pending.rs`) joined with one [`CallState`] per request, where the
//! upstream side puts what it hears (notifications, then the answer) and the client side takes it.
//!
//! Ownership: one [`InFlight`] per shard, `!Send`. A call's state is shared (`Rc`) by the task
//! that talks to the upstream and the connection that answers the client; whichever side ends
//! first settles it, and the other one sees that.
//!
//! Limits: entries as the pending table caps them (`pending.pending_max`, per upstream
//! `pending.pending_per_upstream_max`); per call, at most `pending.stream_buffer_bytes_max` bytes
//! of notifications waiting for a slow client. Past that they are dropped and counted (per call
//! and per shard), never grown into.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use hashbrown::HashMap;
use serde_json::value::RawValue;

use crate::calls::input_round::InputRound;
use crate::calls::pending::{
    Expired, PendingError, PendingLimits, PendingRefusal, PendingStats, PendingTable,
};
use crate::epoch::index_bytes;
use crate::wire::ids::UpstreamRequestId;
use crate::wire::jsonrpc::RpcError;

/// Who a request in flight answers to: a client session (session era) or one stateless request.
/// Client ids are unique per route, so cancellation by id finds exactly one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientRoute {
    /// A session-era client, by its session's secret.
    Session(u128),
    /// A stateless-era request, by a number unique on this shard.
    Request(u64),
}

/// Why a call ended without the upstream's answer.
#[derive(Clone, Debug)]
pub enum CallFailure {
    /// The upstream answered with a JSON-RPC error, passed to the client as it is.
    Rpc(RpcError),
    /// The upstream could not be asked or did not answer properly (a transport failure, a
    /// protocol failure, HTTP 5xx): counts against its breaker.
    Unavailable(String),
    /// The request's deadline passed (`request_timeout_ms`). Does not count against the
    /// breaker: a tool may be slow by design, and one client's slow calls must not refuse every
    /// client's calls.
    TimedOut(String),
    /// The gateway had no room to send it (the upstream's pool and its queue were full): the
    /// upstream was not asked, so its breaker learns nothing.
    Busy(String),
    /// The client cancelled it.
    Cancelled,
}

/// What the client side takes from a call.
pub enum CallItem {
    /// A JSON-RPC message from the upstream for this client (a notification, ids restored).
    Event(Vec<u8>),
    /// The call's end: the `result`, or why there is none.
    Done(Result<Box<RawValue>, CallFailure>),
}

/// One call's mailbox.
pub struct CallState {
    inner: RefCell<CallInner>,
    buffer_bytes_max: usize,
    /// The client that can answer requests relayed from the upstream (a session-era client
    /// reading this call's event stream), if it can.
    takes_requests: Cell<Option<ClientRoute>>,
}

struct CallInner {
    events: VecDeque<Vec<u8>>,
    buffered_bytes: usize,
    dropped: u64,
    outcome: Option<Result<Box<RawValue>, CallFailure>>,
    waker: Option<Waker>,
}

impl CallState {
    pub(crate) fn new(buffer_bytes_max: usize) -> CallState {
        CallState {
            inner: RefCell::new(CallInner {
                events: VecDeque::new(),
                buffered_bytes: 0,
                dropped: 0,
                outcome: None,
                waker: None,
            }),
            buffer_bytes_max,
            takes_requests: Cell::new(None),
        }
    }

    /// Lets the upstream's requests (sampling, elicitation, roots) reach the client at `route`.
    pub fn allow_requests(&self, route: ClientRoute) {
        self.takes_requests.set(Some(route));
    }

    /// The client that answers requests relayed during this call, if one can.
    pub fn requests_client(&self) -> Option<ClientRoute> {
        self.takes_requests.get()
    }

    /// A mailbox for the gateway's own requests: the outcome only, no notifications.
    pub fn new_control() -> CallState {
        CallState::new(0)
    }

    /// Waits for the outcome, dropping any event.
    pub async fn outcome(&self) -> Result<Box<RawValue>, CallFailure> {
        loop {
            if let CallItem::Done(outcome) = self.next().await {
                return outcome;
            }
        }
    }

    /// Queues a message for the client; `false` (and counted) when the buffer is full or the
    /// call already ended.
    pub fn push_event(&self, message: Vec<u8>) -> bool {
        let mut inner = self.inner.borrow_mut();
        if inner.outcome.is_some() || inner.buffered_bytes + message.len() > self.buffer_bytes_max {
            inner.dropped += 1;
            return false;
        }
        inner.buffered_bytes += message.len();
        inner.events.push_back(message);
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
        true
    }

    /// Ends the call; the first outcome wins. `false` if it had already ended.
    pub fn settle(&self, outcome: Result<Box<RawValue>, CallFailure>) -> bool {
        let mut inner = self.inner.borrow_mut();
        if inner.outcome.is_some() {
            return false;
        }
        inner.outcome = Some(outcome);
        if let Some(waker) = inner.waker.take() {
            waker.wake();
        }
        true
    }

    /// Holds `bytes` of the call's buffer for something other than queued events (the
    /// client's answers to an upstream's input requests); `false`, holding nothing, when they
    /// do not fit beside what is already held.
    pub fn charge(&self, bytes: usize) -> bool {
        let mut inner = self.inner.borrow_mut();
        if inner.buffered_bytes + bytes > self.buffer_bytes_max {
            return false;
        }
        inner.buffered_bytes += bytes;
        true
    }

    /// Gives back `bytes` held by [`CallState::charge`].
    pub fn release(&self, bytes: usize) {
        let mut inner = self.inner.borrow_mut();
        debug_assert!(
            inner.buffered_bytes >= bytes,
            "only charged bytes are released"
        );
        inner.buffered_bytes -= bytes.min(inner.buffered_bytes);
    }

    /// `pending.stream_buffer_bytes_max`: what the call may hold for its client.
    pub fn buffer_bytes_max(&self) -> usize {
        self.buffer_bytes_max
    }

    pub fn is_settled(&self) -> bool {
        self.inner.borrow().outcome.is_some()
    }

    /// Notifications dropped because the client did not take them fast enough.
    pub fn dropped(&self) -> u64 {
        self.inner.borrow().dropped
    }

    /// The next queued event, else the outcome once settled. Events queued before the outcome
    /// come out first.
    pub async fn next(&self) -> CallItem {
        poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            if let Some(event) = inner.events.pop_front() {
                inner.buffered_bytes -= event.len();
                return Poll::Ready(CallItem::Event(event));
            }
            match inner.outcome.take() {
                Some(outcome) => Poll::Ready(CallItem::Done(outcome)),
                None => {
                    inner.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// A request registered in flight.
pub struct Registered {
    pub id: UpstreamRequestId,
    pub state: Rc<CallState>,
}

/// The shard's requests in flight.
pub struct InFlight {
    table: RefCell<PendingTable<ClientRoute>>,
    /// Upstream request id → (upstream, call).
    calls: RefCell<HashMap<u64, (u16, Rc<CallState>)>>,
    stream_buffer_bytes_max: usize,
    next_request_route: Cell<u64>,
    events_dropped_total: Cell<u64>,
}

/// A request that passed its deadline, for the caller to tell its upstream.
pub struct TimedOut {
    pub upstream: u16,
    pub id: UpstreamRequestId,
    /// The client it came from: its cancellation goes under the same upstream session.
    pub route: ClientRoute,
}

impl InFlight {
    pub fn new(
        limits: PendingLimits,
        stream_buffer_bytes_max: usize,
    ) -> Result<Self, PendingError> {
        let mut calls = HashMap::new();
        calls
            .try_reserve(limits.pending_max as usize)
            .map_err(|_| PendingError::Reserve {
                what: "call map",
                pending_max: limits.pending_max,
            })?;
        Ok(InFlight {
            calls: RefCell::new(calls),
            table: RefCell::new(PendingTable::new(limits)?),
            stream_buffer_bytes_max,
            next_request_route: Cell::new(0),
            events_dropped_total: Cell::new(0),
        })
    }

    /// The most bytes the call map holds beside the pending table: its index and each call's
    /// state, for `pending_max` calls (their buffered events are a term of their own).
    pub fn calls_memory_ceiling(pending_max: u32) -> u64 {
        let index = index_bytes::<(u64, (u16, Rc<CallState>))>(pending_max as usize);
        // An `Rc` allocation is the value and its two counts.
        let state = (std::mem::size_of::<CallState>() + 2 * std::mem::size_of::<usize>()) as u64;
        index.saturating_add(u64::from(pending_max) * state)
    }

    /// A fresh route for one stateless request.
    pub fn request_route(&self) -> ClientRoute {
        let next = self.next_request_route.get();
        self.next_request_route.set(next + 1);
        ClientRoute::Request(next)
    }

    #[allow(clippy::too_many_arguments)]
    /// Registers a request for `upstream`; `names` gives an upstream's name for timeout
    /// messages of requests retired early to make room.
    pub fn register(
        &self,
        upstream: u16,
        route: ClientRoute,
        client_id: &RawValue,
        progress_token: Option<&RawValue>,
        (deadline_ms, now_ms): (u64, u64),
        names: &dyn Fn(u16) -> String,
        timed_out: &mut Vec<TimedOut>,
    ) -> Result<Registered, PendingRefusal> {
        let registered = self.table.borrow_mut().register(
            upstream,
            route,
            client_id,
            progress_token,
            deadline_ms,
            now_ms,
            |expired| self.expire(&expired, names, timed_out),
        );
        let id = registered?;
        let state = Rc::new(CallState::new(self.stream_buffer_bytes_max));
        self.calls
            .borrow_mut()
            .insert(id.0, (upstream, state.clone()));
        Ok(Registered { id, state })
    }

    fn expire(
        &self,
        expired: &Expired<'_, ClientRoute>,
        names: &dyn Fn(u16) -> String,
        timed_out: &mut Vec<TimedOut>,
    ) {
        if let Some((_, state)) = self.calls.borrow_mut().remove(&expired.upstream_id.0) {
            let message = expired.message(&names(expired.upstream));
            self.count_drops(&state);
            state.settle(Err(CallFailure::TimedOut(message)));
        }
        timed_out.push(TimedOut {
            upstream: expired.upstream,
            id: expired.upstream_id,
            route: expired.route,
        });
    }

    fn count_drops(&self, state: &CallState) {
        self.events_dropped_total
            .set(self.events_dropped_total.get() + state.dropped());
    }

    /// The call `upstream` answered under `upstream_id`, removed from the table; `None` for a
    /// late or foreign answer.
    pub fn complete(
        &self,
        upstream: u16,
        upstream_id: &RawValue,
        now_ms: u64,
    ) -> Option<Rc<CallState>> {
        match UpstreamRequestId::parse(upstream_id) {
            Some(id) => self.complete_id(upstream, id, now_ms),
            // Not an id of ours: the table counts it as a late answer.
            None => self
                .table
                .borrow_mut()
                .complete(upstream, upstream_id, now_ms)
                .and(None),
        }
    }

    /// [`Self::complete`] for an id already read.
    pub fn complete_id(
        &self,
        upstream: u16,
        id: UpstreamRequestId,
        now_ms: u64,
    ) -> Option<Rc<CallState>> {
        drop(self.table.borrow_mut().complete_id(upstream, id, now_ms)?);
        self.remove_call(id)
    }

    fn remove_call(&self, id: UpstreamRequestId) -> Option<Rc<CallState>> {
        let (_, state) = self.calls.borrow_mut().remove(&id.0)?;
        self.count_drops(&state);
        Some(state)
    }

    /// The call in flight under `id`, if it still is (for notifications about it).
    pub fn call(&self, id: UpstreamRequestId) -> Option<Rc<CallState>> {
        self.calls
            .borrow()
            .get(&id.0)
            .map(|(_, state)| state.clone())
    }

    /// The call a progress notification from `upstream` with the gateway's `token` is about,
    /// and the token its client chose (JSON text).
    pub fn progress(
        &self,
        upstream: u16,
        token: &RawValue,
        now_ms: u64,
    ) -> Option<(Rc<CallState>, Vec<u8>)> {
        let table = self.table.borrow();
        let (_, client_token) = table.progress_route(upstream, token, now_ms)?;
        let id = UpstreamRequestId::parse(token)?;
        let state = self.call(id)?;
        Some((state, client_token.to_vec()))
    }

    /// The only call in flight to `upstream`, if exactly one is: a stdio child's request to
    /// the client carries no association with the call it serves, so it can be relayed only
    /// when there is no doubt.
    pub fn sole_call(&self, upstream: u16) -> Option<(UpstreamRequestId, Rc<CallState>)> {
        let calls = self.calls.borrow();
        let mut to_upstream = calls.iter().filter(|(_, (owner, _))| *owner == upstream);
        let (id, (_, state)) = to_upstream.next()?;
        match to_upstream.next() {
            Some(_) => None,
            None => Some((UpstreamRequestId(*id), state.clone())),
        }
    }

    /// The client at `route` cancelled its request `client_id`: settles it and names the
    /// upstream request to cancel.
    pub fn cancel_by_client(
        &self,
        route: ClientRoute,
        client_id: &RawValue,
        now_ms: u64,
    ) -> Option<(u16, UpstreamRequestId)> {
        let (upstream, id) = self
            .table
            .borrow_mut()
            .cancel_by_client(route, client_id, now_ms)?;
        if let Some((_, state)) = self.calls.borrow_mut().remove(&id.0) {
            self.count_drops(&state);
            state.settle(Err(CallFailure::Cancelled));
        }
        Some((upstream, id))
    }

    /// Ends every request in flight to `upstream` with `reason` (its stdio child died: no
    /// answer will come).
    pub fn fail_upstream(&self, upstream: u16, reason: &str, now_ms: u64) {
        let ids: Vec<u64> = self
            .calls
            .borrow()
            .iter()
            .filter(|(_, (owner, _))| *owner == upstream)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(state) = self.complete_id(upstream, UpstreamRequestId(id), now_ms) {
                state.settle(Err(CallFailure::Unavailable(reason.to_owned())));
            }
        }
    }

    /// Ends call `id` to `upstream` when its own deadline passed (its client's wait, on the
    /// shard's deadline wheel, so on time, where the epoch tick finds it up to a tick late):
    /// settles it with the timeout and returns it, for the caller to tell its upstream. `None`
    /// if it had already ended.
    pub fn expire_call(
        &self,
        upstream: u16,
        id: UpstreamRequestId,
        names: &dyn Fn(u16) -> String,
    ) -> Option<TimedOut> {
        let mut timed_out = Vec::new();
        self.table.borrow_mut().expire_id(upstream, id, |expired| {
            self.expire(&expired, names, &mut timed_out)
        });
        timed_out.pop()
    }

    /// The epoch tick: settles requests past their deadline and returns them; a backstop for
    /// calls nobody waits on (their clients wait on their own deadlines).
    pub fn advance(&self, now_ms: u64, names: &dyn Fn(u16) -> String) -> Vec<TimedOut> {
        let mut timed_out = Vec::new();
        self.table.borrow_mut().advance(now_ms, |expired| {
            self.expire(&expired, names, &mut timed_out)
        });
        timed_out
    }

    pub fn stats(&self) -> PendingStats {
        self.table.borrow().stats()
    }

    /// Notifications dropped for slow clients, over calls that ended.
    pub fn events_dropped_total(&self) -> u64 {
        self.events_dropped_total.get()
    }
}

/// A request an upstream sent to a client, relayed under a gateway id.
pub struct ServerRequest {
    pub upstream: u16,
    /// The id the upstream gave it, JSON text.
    pub upstream_id: Box<RawValue>,
    /// The call it was sent during.
    pub parent: UpstreamRequestId,
    /// The client it went to; only that client's answer is taken.
    pub client: ClientRoute,
}

/// An input request of a 2026-07-28 upstream asked of a session-era client (`upstream::input`).
struct InputWait {
    parent: UpstreamRequestId,
    client: ClientRoute,
    round: Rc<InputRound>,
    slot: u32,
}

/// A request waiting for a client's answer.
enum Waiting {
    Relayed(ServerRequest),
    Input(InputWait),
}

impl Waiting {
    fn client(&self) -> ClientRoute {
        match self {
            Waiting::Relayed(request) => request.client,
            Waiting::Input(wait) => wait.client,
        }
    }

    fn parent(&self) -> UpstreamRequestId {
        match self {
            Waiting::Relayed(request) => request.parent,
            Waiting::Input(wait) => wait.parent,
        }
    }
}

/// Requests from upstreams waiting for a client's answer, by gateway id: relayed from a
/// session-era upstream, or asked for a 2026-07-28 upstream's `input_required` result. At most
/// `pending.pending_max` of both together (a request arrives during a call, and ends with it at
/// the latest), in one index reserved at start-up; a relayed request's upstream id is at most
/// `pending.request_id_bytes_max` bytes.
pub struct ServerRequests {
    waiting: RefCell<HashMap<u64, Waiting>>,
    shard: u8,
    next: Cell<u64>,
    entries_max: usize,
    id_bytes_max: usize,
    refused_total: Cell<u64>,
}

impl ServerRequests {
    /// Reserves the index for `entries_max` requests; fails only if memory cannot be reserved.
    pub fn new(shard: u8, entries_max: u32, id_bytes_max: u32) -> Result<ServerRequests, String> {
        let mut waiting = HashMap::new();
        waiting.try_reserve(entries_max as usize).map_err(|e| {
            format!("server requests: cannot reserve pending.pending_max {entries_max}: {e}")
        })?;
        Ok(ServerRequests {
            waiting: RefCell::new(waiting),
            shard,
            next: Cell::new(0),
            entries_max: entries_max as usize,
            id_bytes_max: id_bytes_max as usize,
            refused_total: Cell::new(0),
        })
    }

    /// The most bytes the registry holds for `entries_max` requests whose upstream ids are at
    /// most `id_bytes_max` bytes: its index and each relayed request's id.
    pub fn memory_ceiling(entries_max: u32, id_bytes_max: u32) -> u64 {
        let index = index_bytes::<(u64, Waiting)>(entries_max as usize);
        index.saturating_add(u64::from(entries_max) * u64::from(id_bytes_max))
    }

    /// Records a request and returns the id to relay it under (JSON text), or `None` (counted)
    /// when the registry is full or the upstream's id is longer than
    /// `pending.request_id_bytes_max`.
    pub fn register(&self, request: ServerRequest) -> Option<String> {
        if request.upstream_id.get().len() > self.id_bytes_max {
            self.refused_total.set(self.refused_total.get() + 1);
            return None;
        }
        self.insert(Waiting::Relayed(request))
    }

    /// Records input request `slot` of `round`, asked of `client` during call `parent`, and
    /// returns the id to ask it under (JSON text), or `None` when the registry is full.
    pub fn register_input(
        &self,
        parent: UpstreamRequestId,
        client: ClientRoute,
        round: &Rc<InputRound>,
        slot: u32,
    ) -> Option<String> {
        self.insert(Waiting::Input(InputWait {
            parent,
            client,
            round: round.clone(),
            slot,
        }))
    }

    /// Records `waiting` under a fresh gateway id, or `None` (counted) when `entries_max`
    /// requests already wait.
    fn insert(&self, waiting: Waiting) -> Option<String> {
        let mut map = self.waiting.borrow_mut();
        if map.len() >= self.entries_max {
            self.refused_total.set(self.refused_total.get() + 1);
            return None;
        }
        let n = self.next.get();
        self.next.set(n + 1);
        map.insert(n, waiting);
        Some(format!("\"sgr-{}-{n}\"", self.shard))
    }

    /// The number of a gateway id this shard gave (JSON text `"sgr-<shard>-<n>"`).
    fn number(&self, id: &str) -> Option<u64> {
        let text = id.strip_prefix("\"sgr-")?.strip_suffix('"')?;
        let (shard, n) = text.split_once('-')?;
        (shard.parse::<u8>().ok()? == self.shard).then_some(())?;
        n.parse().ok()
    }

    /// The request of the kind `wanted` that `client` answered under `id`, removed; `None`
    /// when no such request went to that client.
    fn take_waiting(
        &self,
        client: ClientRoute,
        id: &str,
        wanted: fn(&Waiting) -> bool,
    ) -> Option<Waiting> {
        let n = self.number(id)?;
        let mut map = self.waiting.borrow_mut();
        let waiting = map.get(&n)?;
        if waiting.client() != client || !wanted(waiting) {
            return None;
        }
        map.remove(&n)
    }

    /// The input request `client` answered under `id` (JSON text), removed: its round and
    /// slot. `None` when no such request was asked of that client.
    pub fn take_input(&self, client: ClientRoute, id: &str) -> Option<(Rc<InputRound>, u32)> {
        let input = |waiting: &Waiting| matches!(waiting, Waiting::Input(_));
        match self.take_waiting(client, id, input)? {
            Waiting::Input(wait) => Some((wait.round, wait.slot)),
            Waiting::Relayed(_) => None,
        }
    }

    /// The request `client` answered under `id` (JSON text), removed; `None` when no such
    /// request went to that client.
    pub fn take(&self, client: ClientRoute, id: &str) -> Option<ServerRequest> {
        let relayed = |waiting: &Waiting| matches!(waiting, Waiting::Relayed(_));
        match self.take_waiting(client, id, relayed)? {
            Waiting::Relayed(request) => Some(request),
            Waiting::Input(_) => None,
        }
    }

    /// Forgets the requests sent during call `parent` (it ended; their answers have nowhere
    /// to go).
    pub fn forget_parent(&self, parent: UpstreamRequestId) {
        self.waiting
            .borrow_mut()
            .retain(|_, waiting| waiting.parent() != parent);
    }

    /// Requests waiting for a client's answer.
    pub fn waiting(&self) -> u32 {
        self.waiting.borrow().len() as u32
    }

    /// Requests not relayed because `pending.pending_max` were already waiting.
    pub fn refused_total(&self) -> u64 {
        self.refused_total.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: ClientRoute = ClientRoute::Session(7);

    fn relayed(upstream_id: &str, parent: u64) -> ServerRequest {
        ServerRequest {
            upstream: 0,
            upstream_id: RawValue::from_string(upstream_id.to_owned()).unwrap(),
            parent: UpstreamRequestId(parent),
            client: CLIENT,
        }
    }

    #[test]
    fn server_requests_hold_at_most_their_bound_and_count_the_rest() {
        let requests = ServerRequests::new(3, 2, 16).unwrap();
        let first = requests.register(relayed("1", 10)).unwrap();
        let round = Rc::new(InputRound::new(Rc::new(CallState::new_control()), 1));
        let second = requests
            .register_input(UpstreamRequestId(10), CLIENT, &round, 0)
            .unwrap();
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("\"sgr-3-0\"", "\"sgr-3-1\"")
        );
        assert!(
            requests.register(relayed("2", 10)).is_none(),
            "over the bound"
        );
        assert_eq!((requests.waiting(), requests.refused_total()), (2, 1));
        // Each answer is taken once, by its own kind, from its own client only.
        assert!(requests.take(ClientRoute::Session(8), &first).is_none());
        assert!(
            requests.take(CLIENT, &second).is_none(),
            "an input is not a relayed request"
        );
        assert!(requests.take_input(CLIENT, &first).is_none());
        assert_eq!(
            requests.take(CLIENT, &first).unwrap().upstream_id.get(),
            "1"
        );
        assert!(requests.take(CLIENT, &first).is_none());
        assert_eq!(
            requests.take_input(CLIENT, &second).map(|(_, slot)| slot),
            Some(0)
        );
        assert_eq!(requests.waiting(), 0);
    }

    #[test]
    fn server_request_ids_of_another_shard_or_shape_are_not_taken() {
        let requests = ServerRequests::new(0, 4, 16).unwrap();
        let id = requests.register(relayed("1", 1)).unwrap();
        for other in [
            "\"sgr-1-0\"",
            "\"sgr-0-x\"",
            "sgr-0-0",
            "\"sgr-0-0-\"",
            "0",
            "\"\"",
        ] {
            assert!(requests.take(CLIENT, other).is_none(), "{other}");
        }
        assert!(requests.take(CLIENT, &id).is_some());
    }

    #[test]
    fn an_upstream_id_longer_than_the_limit_is_refused_and_counted() {
        let requests = ServerRequests::new(0, 4, 8).unwrap();
        assert!(requests.register(relayed("\"12345678\"", 1)).is_none());
        assert!(requests.register(relayed("\"123456\"", 1)).is_some());
        assert_eq!((requests.waiting(), requests.refused_total()), (1, 1));
    }

    #[test]
    fn forgetting_a_call_drops_its_requests_of_both_kinds() {
        let requests = ServerRequests::new(0, 4, 16).unwrap();
        let round = Rc::new(InputRound::new(Rc::new(CallState::new_control()), 1));
        requests.register(relayed("1", 1)).unwrap();
        requests
            .register_input(UpstreamRequestId(1), CLIENT, &round, 0)
            .unwrap();
        let kept = requests.register(relayed("2", 2)).unwrap();
        requests.forget_parent(UpstreamRequestId(1));
        assert_eq!(requests.waiting(), 1);
        assert!(requests.take(CLIENT, &kept).is_some());
    }
}
