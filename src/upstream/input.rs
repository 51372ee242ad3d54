//! The bridge between a session-era client and a 2026-07-28 upstream that asks it for input.
//!
//! A 2026-07-28 upstream asks for client input (sampling, elicitation, roots) by answering a
//! call with an `input_required` result; its client is to retry the call with the answers
//! (`inputResponses`, and `requestState` echoed exactly). A session-era client knows nothing of
//! that: it answers server→client requests on the call's event stream. So for such a client the
//! gateway sends each input request on that stream under a gateway id (registered in the
//! shard's [`ServerRequests`], like the requests it relays from session-era upstreams), collects
//! the answers, retries the call upstream with them, and repeats while the upstream asks again.
//! The client finally gets a plain result.
//!
//! An input request goes to the client only if it declared the capability at `initialize`
//! (the gateway passes exactly those capabilities upstream in `_meta`); one it did not declare
//! ends the call with -32021 naming the capability.
//!
//! Ownership: one [`InputBridge`] per shard (its counters), one [`InputRound`] per round of a
//! call, shared (`Rc`) by the call's task, which waits on it, and the shard's
//! [`ServerRequests`], through which the client's answers arrive. Nothing here is `Send`.
//!
//! Limits: rounds per call, `pending.input_rounds_max`; the requests of a round travel as the
//! call's events, within `pending.stream_buffer_bytes_max`, and each waits in [`ServerRequests`]
//! (at most `pending.pending_max` per shard); the answers of a round are charged to the same
//! per-call budget as the call's waiting events; time, the call's deadline. Past a bound the
//! call ends with an error naming the key.

use crate::calls::input_round::InputRound;
use crate::wire::capabilities::InputCapabilities;
use std::borrow::Cow;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::calls::inflight::{CallFailure, CallState, ClientRoute, ServerRequests};
use crate::support::deadline;
use crate::upstream::link::{CallOutcome, UpstreamLink};
use crate::wire::ids::UpstreamRequestId;
use crate::wire::jsonrpc::{self, RpcError};
use crate::wire::members::{member_key, write_json_str, Members};

/// The methods an upstream may ask a client for input with.
const INPUT_METHODS: [&str; 3] = ["sampling/createMessage", "elicitation/create", "roots/list"];

/// One request of an `input_required` result.
struct InputRequest<'a> {
    key: String,
    method: Cow<'a, str>,
    params: Option<&'a RawValue>,
}

/// An `input_required` result, read: its requests in key order, and the state to echo.
pub struct InputRequired<'a> {
    requests: Vec<InputRequest<'a>>,
    request_state: Option<String>,
}

/// Reads an upstream's `result` to a call: `Ok(None)` for a result that is not
/// `input_required` (the call's answer); an error for one that is, but cannot be read.
pub fn input_required(result: &RawValue) -> Result<Option<InputRequired<'_>>, String> {
    #[derive(Deserialize)]
    struct Asked<'a> {
        #[serde(rename = "inputRequests", borrow, default)]
        input_requests: Option<std::collections::BTreeMap<String, &'a RawValue>>,
        #[serde(rename = "requestState", default)]
        request_state: Option<String>,
    }
    #[derive(Deserialize)]
    struct Request<'a> {
        #[serde(borrow)]
        method: Cow<'a, str>,
        #[serde(borrow, default)]
        params: Option<&'a RawValue>,
    }
    let members = Members::read(result);
    let result_type = members.as_ref().and_then(|m| m.get("resultType"));
    if result_type.and_then(jsonrpc::raw_str).as_deref() != Some("input_required") {
        return Ok(None);
    }
    let asked: Asked<'_> = serde_json::from_str(result.get())
        .map_err(|e| format!("an unreadable input_required result: {e}"))?;
    if asked.input_requests.is_none() && asked.request_state.is_none() {
        return Err("an input_required result with neither inputRequests nor requestState".into());
    }
    let mut requests = Vec::new();
    for (key, request) in asked.input_requests.unwrap_or_default() {
        let request: Request<'_> = serde_json::from_str(request.get())
            .map_err(|e| format!("input request {key:?} is not a request: {e}"))?;
        if !INPUT_METHODS.contains(&request.method.as_ref()) {
            return Err(format!(
                "input request {key:?} asks by {}, which is not one of {}",
                request.method,
                INPUT_METHODS.join(", ")
            ));
        }
        requests.push(InputRequest {
            key,
            method: request.method,
            params: request.params,
        });
    }
    Ok(Some(InputRequired {
        requests,
        request_state: asked.request_state,
    }))
}

/// One call whose client can be asked for input: what it takes to ask and to retry.
pub struct BridgedCall {
    pub link: Rc<UpstreamLink>,
    /// The pending-table id of the call.
    pub id: UpstreamRequestId,
    pub method: &'static str,
    /// The params as first sent (JSON text, the gateway's `_meta` in), without
    /// `inputResponses` or `requestState`.
    pub params: Vec<u8>,
    /// What the stateless era mirrors in `Mcp-Name` (`params.name` or `params.uri`).
    pub name: Option<String>,
    pub client_token: Option<Vec<u8>>,
    pub state: Rc<CallState>,
    /// The client that answers, and what it declared.
    pub client: ClientRoute,
    pub capabilities: InputCapabilities,
    /// When the call's `request_timeout_ms` passes.
    pub deadline: Instant,
    pub param_headers: Vec<(String, String)>,
}

/// The shard's bridge: its round limit and counters.
pub struct InputBridge {
    rounds_max: u32,
    /// Calls waiting on a client's input or on the retry it feeds.
    calls: Rc<Cell<u32>>,
    rounds_total: Cell<u64>,
    rounds_exceeded_total: Cell<u64>,
}

/// Counters of the bridge for `/status`.
pub struct InputStats {
    pub calls: u32,
    pub rounds_total: u64,
    pub rounds_exceeded_total: u64,
}

/// Counts a call in the bridge while it lives (its task may be dropped at any await).
struct Bridging(Rc<Cell<u32>>);

impl Drop for Bridging {
    fn drop(&mut self) {
        debug_assert!(self.0.get() > 0, "a bridged call is counted once");
        self.0.set(self.0.get() - 1);
    }
}

impl InputBridge {
    pub fn new(rounds_max: u32) -> InputBridge {
        assert!(rounds_max > 0, "pending.input_rounds_max is at least 1");
        InputBridge {
            rounds_max,
            calls: Rc::new(Cell::new(0)),
            rounds_total: Cell::new(0),
            rounds_exceeded_total: Cell::new(0),
        }
    }

    pub fn stats(&self) -> InputStats {
        InputStats {
            calls: self.calls.get(),
            rounds_total: self.rounds_total.get(),
            rounds_exceeded_total: self.rounds_exceeded_total.get(),
        }
    }

    /// Answers `first`, the upstream's result to `call`: itself unless it is `input_required`;
    /// else the result of retrying the call with the client's answers, as often as the
    /// upstream asks, up to `pending.input_rounds_max` retries.
    pub async fn run(
        &self,
        call: &BridgedCall,
        requests: &ServerRequests,
        first: Box<RawValue>,
    ) -> CallOutcome {
        let mut result = first;
        let mut counted = None;
        for round in 1.. {
            let asked = match input_required(&result) {
                Ok(None) => return Ok(result),
                Ok(Some(asked)) => asked,
                Err(reason) => return Err(upstream_failure(call, &reason)),
            };
            if counted.is_none() {
                self.calls.set(self.calls.get() + 1);
                counted = Some(Bridging(self.calls.clone()));
            }
            if round > self.rounds_max {
                self.rounds_exceeded_total
                    .set(self.rounds_exceeded_total.get() + 1);
                return Err(self.rounds_exceeded(call));
            }
            self.rounds_total.set(self.rounds_total.get() + 1);
            let params = self.ask(call, requests, &asked).await?;
            result = call.link.retry(call, round, params, requests).await?;
        }
        unreachable!("the rounds end by returning")
    }

    /// Asks the client every request of one round and returns the params of the retry.
    async fn ask(
        &self,
        call: &BridgedCall,
        requests: &ServerRequests,
        asked: &InputRequired<'_>,
    ) -> Result<Vec<u8>, CallFailure> {
        for request in &asked.requests {
            if let Some((required, name)) =
                call.capabilities.missing(&request.method, request.params)
            {
                return Err(missing_capability(call, request, required, name));
            }
        }
        let round = Rc::new(InputRound::new(call.state.clone(), asked.requests.len()));
        for (slot, request) in (0..).zip(&asked.requests) {
            let Some(id) = requests.register_input(call.id, call.client, &round, slot) else {
                return Err(registry_full(call, requests));
            };
            let message = request_bytes(&id, &request.method, request.params);
            if !call.state.push_event(message) {
                return Err(stream_full(call));
            }
        }
        let answers = match deadline::race(call.deadline, round.complete()).await {
            None => return Err(timed_out(call)),
            Some(None) => return Err(answers_too_large(call)),
            Some(Some(answers)) => answers,
        };
        let mut results = Vec::with_capacity(answers.len());
        for (request, answer) in asked.requests.iter().zip(answers) {
            results.push(answer.map_err(|error| answered_error(call, request, error))?);
        }
        retry_params(&call.params, asked, &results).ok_or_else(|| unwritable_retry(call))
    }

    fn rounds_exceeded(&self, call: &BridgedCall) -> CallFailure {
        let name = call.link.name();
        let max = self.rounds_max;
        CallFailure::Rpc(
            RpcError::new(
                jsonrpc::INTERNAL_ERROR,
                format!(
                    "upstream {name} still asks for input after {max} rounds of the client's \
                     answers (pending.input_rounds_max {max})"
                ),
            )
            .with_data(data(call, json!({"reason": "input_rounds_max"}))),
        )
    }
}

/// The params of a retry: the call's first params (less any `inputResponses` or
/// `requestState` of their own), then the client's `results` by input key and the upstream's
/// state. Written from raw members, so nothing the client or the upstream sent is read into a
/// tree. `results` are the client's answers, one per request of `asked`, in its order. `None`
/// only if `first` is not the JSON object the gateway wrote.
pub fn retry_params(
    first: &[u8],
    asked: &InputRequired<'_>,
    results: &[Box<RawValue>],
) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(first).ok()?;
    let first = Members::read_text(text)?;
    let answers_len: usize = results.iter().map(|r| r.get().len() + 8).sum();
    let mut out = Vec::with_capacity(text.len() + answers_len + 64);
    let mut first_member = true;
    out.push(b'{');
    let own = |key: &str| matches!(key, "inputResponses" | "requestState");
    for (key, value) in first.iter().filter(|(key, _)| !own(key)) {
        member_key(&mut out, key, &mut first_member);
        out.extend_from_slice(value.get().as_bytes());
    }
    member_key(&mut out, "inputResponses", &mut first_member);
    let mut first_answer = true;
    out.push(b'{');
    for (request, result) in asked.requests.iter().zip(results) {
        member_key(&mut out, &request.key, &mut first_answer);
        out.extend_from_slice(result.get().as_bytes());
    }
    out.push(b'}');
    if let Some(state) = &asked.request_state {
        member_key(&mut out, "requestState", &mut first_member);
        write_json_str(&mut out, state);
    }
    out.push(b'}');
    Some(out)
}

/// The call's first params could not be read back (see [`retry_params`]).
fn unwritable_retry(call: &BridgedCall) -> CallFailure {
    let message = format!(
        "cannot retry the call to upstream {} with the client's answers: its params are not \
         the JSON object the gateway sent",
        call.link.name()
    );
    CallFailure::Rpc(
        RpcError::new(jsonrpc::INTERNAL_ERROR, message).with_data(data(call, json!({}))),
    )
}

/// `{"upstream": <name>, ...extra}` as error data.
fn data(call: &BridgedCall, extra: Value) -> Box<RawValue> {
    let mut data = Map::new();
    data.insert("upstream".into(), json!(call.link.name()));
    if let Value::Object(extra) = extra {
        data.extend(extra);
    }
    jsonrpc::value_to_raw(&Value::Object(data))
}

fn upstream_failure(call: &BridgedCall, reason: &str) -> CallFailure {
    CallFailure::Unavailable(format!("upstream {} answered {reason}", call.link.name()))
}

fn missing_capability(
    call: &BridgedCall,
    request: &InputRequest<'_>,
    required: Value,
    name: &str,
) -> CallFailure {
    let message = format!(
        "upstream {} asks the client for {} (input {:?}), but the client did not declare the \
         {name} capability at initialize",
        call.link.name(),
        request.method,
        request.key
    );
    let error = RpcError::new(jsonrpc::MISSING_REQUIRED_CLIENT_CAPABILITY, message)
        .with_data(data(call, json!({"requiredCapabilities": required})));
    CallFailure::Rpc(error)
}

fn registry_full(call: &BridgedCall, requests: &ServerRequests) -> CallFailure {
    let message = format!(
        "cannot ask the client for upstream {}'s input: {} requests already wait for clients' \
         answers on this shard (pending.pending_max)",
        call.link.name(),
        requests.waiting()
    );
    let error = RpcError::new(jsonrpc::INTERNAL_ERROR, message)
        .with_data(data(call, json!({"reason": "pending_max"})));
    CallFailure::Rpc(error)
}

fn stream_full(call: &BridgedCall) -> CallFailure {
    let upstream = call.link.name();
    buffer_full(
        call,
        &format!(
            "upstream {upstream}'s input requests do not fit the call's buffer for its client"
        ),
    )
}

fn answers_too_large(call: &BridgedCall) -> CallFailure {
    let upstream = call.link.name();
    buffer_full(
        call,
        &format!(
            "the client's answers to upstream {upstream}'s input requests exceed the call's buffer"
        ),
    )
}

/// What did not fit the call's buffer for its client: `what` says which way it went.
fn buffer_full(call: &BridgedCall, what: &str) -> CallFailure {
    let message = format!(
        "{what} (pending.stream_buffer_bytes_max {} bytes)",
        call.state.buffer_bytes_max()
    );
    let error = RpcError::new(jsonrpc::INTERNAL_ERROR, message)
        .with_data(data(call, json!({"reason": "stream_buffer_bytes_max"})));
    CallFailure::Rpc(error)
}

fn timed_out(call: &BridgedCall) -> CallFailure {
    CallFailure::TimedOut(format!(
        "the client did not answer upstream {}'s input requests before the call's deadline \
         (request_timeout_ms {})",
        call.link.name(),
        call.link.config.request_timeout_ms
    ))
}

fn answered_error(call: &BridgedCall, request: &InputRequest<'_>, error: RpcError) -> CallFailure {
    let message = format!(
        "the client answered upstream {}'s {} (input {:?}) with an error: {}",
        call.link.name(),
        request.method,
        request.key,
        error.message
    );
    CallFailure::Rpc(RpcError::new(error.code, message).with_data(data(call, json!({}))))
}

/// `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":<params>}` for the client.
fn request_bytes(id: &str, method: &str, params: Option<&RawValue>) -> Vec<u8> {
    let params = params.map(|p| p.get().as_bytes());
    jsonrpc::request_bytes(id.as_bytes(), method, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    /// Gives `round` the client's response `message` to request `slot`.

    #[test]
    fn only_an_input_required_result_is_read_as_one() {
        assert!(input_required(&raw(r#"{"content":[]}"#)).unwrap().is_none());
        let complete = raw(r#"{"resultType":"complete","content":[]}"#);
        assert!(input_required(&complete).unwrap().is_none());
        let asked = raw(
            r#"{"resultType":"input_required","requestState":"s1","inputRequests":{
                "b":{"method":"roots/list"},
                "a":{"method":"elicitation/create","params":{"message":"m"}}}}"#,
        );
        let asked = input_required(&asked).unwrap().unwrap();
        assert_eq!(asked.request_state.as_deref(), Some("s1"));
        let keys: Vec<&str> = asked.requests.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(
            asked.requests[0].params.unwrap().get(),
            r#"{"message":"m"}"#
        );
        let state_only = raw(r#"{"resultType":"input_required","requestState":"x"}"#);
        assert!(input_required(&state_only)
            .unwrap()
            .unwrap()
            .requests
            .is_empty());
    }

    #[test]
    fn malformed_input_required_results_are_refused_with_the_reason() {
        let empty = raw(r#"{"resultType":"input_required"}"#);
        assert!(input_required(&empty).err().unwrap().contains("neither"));
        let foreign =
            raw(r#"{"resultType":"input_required","inputRequests":{"k":{"method":"tools/call"}}}"#);
        let reason = input_required(&foreign).err().unwrap();
        assert!(
            reason.contains("\"k\"") && reason.contains("tools/call"),
            "{reason}"
        );
    }

    #[test]
    fn a_retry_carries_the_first_params_and_the_answers_as_they_came() {
        let asked = raw(
            r#"{"resultType":"input_required","requestState":"s\"1","inputRequests":{
                "b":{"method":"roots/list"},"a":{"method":"roots/list"}}}"#,
        );
        let asked = input_required(&asked).unwrap().unwrap();
        // Numbers past an f64 and the client's own `inputResponses` neither fail nor pass.
        let first =
            br#"{"name":"t","arguments":{"n":1e400},"inputResponses":{"old":1},"_meta":{}}"#;
        let results = [
            raw(r#"{"roots":[],"x":1e400}"#),
            raw(r#"{"roots":[{"uri":"file:///"}]}"#),
        ];
        let params = retry_params(first, &asked, &results).unwrap();
        assert_eq!(
            std::str::from_utf8(&params).unwrap(),
            r#"{"name":"t","arguments":{"n":1e400},"_meta":{},"inputResponses":{"a":{"roots":[],"x":1e400},"b":{"roots":[{"uri":"file:///"}]}},"requestState":"s\"1"}"#
        );
        let state_only = raw(r#"{"resultType":"input_required","requestState":"x"}"#);
        let state_only = input_required(&state_only).unwrap().unwrap();
        let params = retry_params(b"{}", &state_only, &[]).unwrap();
        assert_eq!(params, br#"{"inputResponses":{},"requestState":"x"}"#);
        assert!(retry_params(b"[1]", &asked, &results).is_none());
        assert!(retry_params(b"{\xff}", &asked, &results).is_none());
    }

    #[test]
    fn client_requests_carry_the_gateway_id_and_the_upstream_params() {
        let params = raw(r#"{"message":"m"}"#);
        let bytes = request_bytes("\"sgr-1-7\"", "elicitation/create", Some(&params));
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            value,
            json!({"jsonrpc": "2.0", "id": "sgr-1-7", "method": "elicitation/create",
                   "params": {"message": "m"}})
        );
        let bare: Value =
            serde_json::from_slice(&request_bytes("\"i\"", "roots/list", None)).unwrap();
        assert!(bare.get("params").is_none());
    }
}
