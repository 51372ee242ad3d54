//! One call through its upstream, in the pipeline's order: [`Upstreams::admit`] (the upstream
//! must be up and its circuit breaker closed, and the pending table must take the call),
//! [`Upstreams::upstream_request`] (the client's params rewritten for the upstream) and
//! [`Upstreams::start_call`] (the call in a task of its own, whose notifications and answer the
//! [`Relay`] carries to the client, and which it cancels upstream when dropped early).
//!
//! Ownership: a call's task and its relay are on the shard that admitted it; they share the
//! shard's [`Upstreams`].

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::json;
use serde_json::value::RawValue;

use crate::calls::client::Client;
use crate::calls::inflight::{CallFailure, CallItem, CallState, ClientRoute, Registered};
use crate::calls::pending::PendingRefusal;
use crate::refusal::RefusalReason;
use crate::support::deadline;
use crate::upstream::breaker::Admission;
use crate::upstream::input::BridgedCall;
use crate::upstream::link::{CallRequest, SessionScope, UpstreamLink};
use crate::upstream::upstreams::{Shared, Upstreams};
use crate::wire::ids::UpstreamRequestId;
use crate::wire::jsonrpc::{self, RpcError};
use crate::wire::method::Method;
use crate::wire::params::{CallParams, Rewrite};

/// The reason an upstream hears when a call's `request_timeout_ms` passed.
pub(super) const TIMED_OUT: &str = "request_timeout_ms passed";

/// A routed call: the upstream that owns the name it carries, and that upstream's name for it.
pub struct Target<'r, 'm> {
    /// The `[[upstreams]]` index of the upstream.
    pub upstream: u16,
    pub method: Method,
    /// The name or URI as the upstream knows it.
    pub original: String,
    pub params: &'r CallParams<'m>,
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

/// A call the admit phase let through: its upstream, its pending entry and its deadline.
pub struct Admitted {
    link: Rc<UpstreamLink>,
    registered: Registered,
    /// `request_timeout_ms` after the call was registered.
    deadline: Instant,
}

/// One upstream call in flight, held by the connection that answers the client. Dropped before
/// its answer (the client left), it cancels the call upstream.
pub struct Relay {
    state: Rc<CallState>,
    link: Rc<UpstreamLink>,
    upstreams: Rc<Shared>,
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
                self.link.record(&outcome, self.upstreams.now_ms());
                Ok(outcome.map_err(|failure| client_error(&self.link, failure)))
            }
        }
    }

    /// Why the upstream side turned the call away, once it ended so.
    pub fn refusal(&self) -> Option<RefusalReason> {
        self.refusal
    }

    /// The call's deadline passed before its answer: abandons the exchange, ends the call in
    /// the pending table (settling it with the timeout) and tells the upstream. A call that had
    /// already ended is settled already.
    fn time_out(&mut self) {
        drop(self.task.take());
        let upstreams = &self.upstreams;
        let names = |upstream: u16| upstreams.name_of(upstream);
        let Some(expired) = upstreams
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
        self.upstreams.server_requests.forget_parent(self.id);
        if self.done || self.state.is_settled() {
            return;
        }
        let now = self.upstreams.now_ms();
        self.link.abandoned(now);
        let cancelled = self
            .upstreams
            .inflight
            .cancel_by_client(self.route, &self.client_id, now);
        if let Some((_, id)) = cancelled {
            spawn_cancel(self.link.clone(), id, "the client went away", self.route);
        }
    }
}

impl Upstreams {
    /// The error for a call to `merged`, a name no upstream offers, when it carries the prefix
    /// of an upstream that is down: that upstream is unavailable, and the error names it.
    pub fn down_owner_of(&self, merged: &str) -> Option<NotAdmitted> {
        let down = self.shared.links.iter().find(|link| {
            let prefix = &link.config.prefix;
            !link.is_up()
                && !prefix.is_empty()
                && merged
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with(link.config.separator.as_str()))
        })?;
        Some(unavailable(
            down,
            down.down_reason(),
            RefusalReason::UpstreamDown,
        ))
    }

    /// The admit phase: the upstream must be up and its circuit breaker closed, and the
    /// pending table must take the call (a cap refuses with 503). Registers the call.
    pub fn admit(
        &self,
        target: &Target<'_, '_>,
        client: &Client<'_>,
    ) -> Result<Admitted, NotAdmitted> {
        let shared = &self.shared;
        // The router's routes are built from the links, so every target names one.
        let link = &shared.links[usize::from(target.upstream)];
        let now = shared.now_ms();
        if !link.is_up() {
            let reason = RefusalReason::UpstreamDown;
            return Err(unavailable(link, link.down_reason(), reason));
        }
        if let Admission::Refused { retry_in_ms } = link.admit(now) {
            let message = format!(
                "upstream {} is failing: its circuit breaker is open for {retry_in_ms} ms more \
                 (upstreams[{}].breaker_failures, breaker_open_ms)",
                link.name(),
                link.index
            );
            return Err(unavailable(link, message, RefusalReason::BreakerOpen));
        }
        let timeout_ms = link.config.request_timeout_ms;
        let deadline = Instant::now() + Duration::from_millis(timeout_ms);
        let names = |upstream: u16| shared.name_of(upstream);
        let mut timed_out = Vec::new();
        let registered = shared.inflight.register(
            link.index,
            client.route,
            client.id,
            target.params.progress_token(),
            (now + timeout_ms, now),
            &names,
            &mut timed_out,
        );
        for expired in timed_out {
            let link = shared.links[usize::from(expired.upstream)].clone();
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
            link: link.clone(),
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
            method,
            original,
            params,
            ..
        } = target;
        let Admitted {
            link,
            registered,
            deadline,
        } = admitted;
        let id = registered.id;
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
            state: registered.state,
            client: client.route,
            capabilities: client.input_capabilities,
            deadline,
            param_headers: client.param_headers.to_vec(),
        }
    }

    /// The call phase: the request goes to its upstream in a task of its own; the [`Relay`]
    /// returned carries its notifications and answer to the client, and cancels it if dropped.
    pub fn start_call(&self, call: BridgedCall, client: &Client<'_>) -> Relay {
        let shared = &self.shared;
        let bridged = bridges_input(&call.link, client);
        let (link, id, deadline) = (call.link.clone(), call.id, call.deadline);
        let call_state = call.state.clone();
        let scope = SessionScope::of(client.route, client.log_level);
        let task = spawn_call(shared.clone(), call, bridged, scope);
        Relay {
            state: call_state,
            link,
            upstreams: shared.clone(),
            route: client.route,
            client_id: client.id.to_owned(),
            id,
            deadline,
            task: Some(task),
            done: false,
            refusal: None,
        }
    }
}

/// `link` cannot take a call, for `reason` (counted as `refusal`): the error names it.
fn unavailable(link: &UpstreamLink, message: String, reason: RefusalReason) -> NotAdmitted {
    let error = client_error(link, CallFailure::Unavailable(message));
    NotAdmitted::Unavailable { reason, error }
}

/// The JSON-RPC error a client gets for a call that ended without an answer.
fn client_error(link: &UpstreamLink, failure: CallFailure) -> RpcError {
    let name = link.name();
    let data = |reason: &str| jsonrpc::value_to_raw(&json!({ "upstream": name, "reason": reason }));
    match failure {
        CallFailure::Rpc(error) => error,
        CallFailure::Unavailable(message) => {
            RpcError::new(jsonrpc::INTERNAL_ERROR, message).with_data(data("unavailable"))
        }
        CallFailure::TimedOut(message) => {
            RpcError::new(jsonrpc::INTERNAL_ERROR, message).with_data(data("request_timeout_ms"))
        }
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

/// Tells `link` that call `id` is abandoned (`notifications/cancelled` with `reason`), in a
/// task of its own: whoever ends a call does not wait for the upstream to hear it.
pub(super) fn spawn_cancel(
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
    shared: Rc<Shared>,
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
                &shared.server_requests,
            )
            .await;
        // `None`: a stdio request went out; its answer comes through the dispatcher.
        let Some(outcome) = outcome else { return };
        let outcome = match (bridged, outcome) {
            (true, Ok(first)) => {
                shared
                    .input
                    .run(&call, &shared.server_requests, first)
                    .await
            }
            (_, outcome) => outcome,
        };
        let now = shared.now_ms();
        let completed = shared.inflight.complete_id(call.link.index, call.id, now);
        if completed.is_some() {
            call.state.settle(outcome);
        }
    })
}
