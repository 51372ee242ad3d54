//! A `stdio` upstream's side of the link: the handshake with each child the supervisor
//! starts, the gateway's own requests to it, and the reading of its stdout, where answers,
//! notifications and the child's own requests arrive in one stream.

use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{
    failure_text, outcome_of, CallOutcome, LinkKind, StdioLink, UpstreamLink, CONTROL_TIMEOUT_MS,
};
use crate::calls::inflight::{CallFailure, CallState, InFlight, ServerRequests};
use crate::calls::pending::restore_progress_token;
use crate::support::deadline;
use crate::upstream::stdio::StdioError;
use crate::wire::gateway_client::initialize_params;
use crate::wire::jsonrpc::{self, EnvelopeError, EnvelopeErrorKind, Message};

impl UpstreamLink {
    /// `initialize` and `notifications/initialized` with the running child; it takes calls
    /// once this succeeded.
    pub(super) async fn stdio_handshake(&self, stdio: &StdioLink) -> Result<Value, String> {
        stdio.ready.set(false);
        let result = self
            .control_request("initialize", Some(initialize_params()))
            .await
            .map_err(|e| failure_text(&e))?;
        let result: Value = serde_json::from_str(result.get()).map_err(|e| e.to_string())?;
        let body = jsonrpc::notification_bytes("notifications/initialized", None);
        stdio.child.send(&body).await.map_err(|e| e.to_string())?;
        stdio.ready.set(true);
        Ok(result.get("capabilities").cloned().unwrap_or(json!({})))
    }

    /// One of the gateway's own requests to the child, under `id`: its answer comes back
    /// through [`UpstreamLink::dispatch`], within the control timeout.
    pub(super) async fn stdio_request(
        &self,
        stdio: &StdioLink,
        id: String,
        method: &str,
        params: Option<Value>,
    ) -> CallOutcome {
        let state = Rc::new(CallState::new_control());
        stdio.control.borrow_mut().insert(id.clone(), state.clone());
        let body = jsonrpc::request_value_bytes(id.as_bytes(), method, params.as_ref());
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

    /// Reads the child's messages until the link shuts down, settling answers and passing
    /// notifications and requests on; when a child ends, what was sent to it fails and the
    /// upstream is down until the epoch tick handshakes with the next one.
    pub(super) async fn read_stdio(
        self: &Rc<Self>,
        stdio: &StdioLink,
        inflight: &InFlight,
        requests: &ServerRequests,
        now_ms: &dyn Fn() -> u64,
    ) {
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

    /// Takes one message of the child: an answer settles its request, a list change marks the
    /// lists, a progress notification reaches its call, a request goes to the client of the
    /// call it rides on (or gets an error answer); anything else is counted.
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
                    None => self.count_unroutable(),
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
                self.count_unroutable();
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
            _ => self.count_unroutable(),
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
