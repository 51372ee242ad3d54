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

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Instant;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::mcp::jsonrpc::{self, Outcome, RpcError};
use crate::mcp::members::{member_key, write_json_str, Members};
use crate::runtime::deadline;
use crate::upstream::inflight::{CallFailure, CallState, ClientRoute, ServerRequests};
use crate::upstream::link::{CallOutcome, UpstreamLink};
use crate::upstream::pending::UpstreamRequestId;

/// The input capabilities a session-era client declared at `initialize`: the members of
/// `capabilities` the bridge can serve (`sampling`, `elicitation`, `roots`) and their
/// sub-capabilities, as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputCapabilities(u8);

impl InputCapabilities {
    /// Declares nothing: every input request is refused.
    pub const NONE: InputCapabilities = InputCapabilities(0);
    const SAMPLING: u8 = 1;
    const SAMPLING_CONTEXT: u8 = 1 << 1;
    const SAMPLING_TOOLS: u8 = 1 << 2;
    const ELICITATION: u8 = 1 << 3;
    const ELICITATION_FORM: u8 = 1 << 4;
    const ELICITATION_URL: u8 = 1 << 5;
    const ROOTS: u8 = 1 << 6;

    /// Reads the client's `initialize` `capabilities` object; anything unreadable declares
    /// nothing.
    pub fn from_client(capabilities: &RawValue) -> InputCapabilities {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Sub {
            context: Option<serde::de::IgnoredAny>,
            tools: Option<serde::de::IgnoredAny>,
            form: Option<serde::de::IgnoredAny>,
            url: Option<serde::de::IgnoredAny>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Declared {
            sampling: Option<Sub>,
            elicitation: Option<Sub>,
            roots: Option<serde::de::IgnoredAny>,
        }
        let declared: Declared = serde_json::from_str(capabilities.get()).unwrap_or_default();
        let mut bits = 0;
        let mut set = |bit: u8, on: bool| {
            if on {
                bits |= bit;
            }
        };
        if let Some(sampling) = &declared.sampling {
            set(Self::SAMPLING, true);
            set(Self::SAMPLING_CONTEXT, sampling.context.is_some());
            set(Self::SAMPLING_TOOLS, sampling.tools.is_some());
        }
        if let Some(elicitation) = &declared.elicitation {
            set(Self::ELICITATION, true);
            set(Self::ELICITATION_FORM, elicitation.form.is_some());
            set(Self::ELICITATION_URL, elicitation.url.is_some());
        }
        set(Self::ROOTS, declared.roots.is_some());
        InputCapabilities(bits)
    }

    fn has(self, bit: u8) -> bool {
        self.0 & bit == bit
    }

    /// Appends the capabilities as a 2026-07-28 upstream reads them in
    /// `_meta["io.modelcontextprotocol/clientCapabilities"]`: written per call, so as text.
    pub fn write_json(self, out: &mut Vec<u8>) {
        /// A capability's bit and name, and those of its modes.
        type Member = (u8, &'static str, &'static [(u8, &'static str)]);
        let members: [Member; 3] = [
            (
                Self::ELICITATION,
                "elicitation",
                &[
                    (Self::ELICITATION_FORM, "form"),
                    (Self::ELICITATION_URL, "url"),
                ],
            ),
            (Self::ROOTS, "roots", &[]),
            (
                Self::SAMPLING,
                "sampling",
                &[
                    (Self::SAMPLING_CONTEXT, "context"),
                    (Self::SAMPLING_TOOLS, "tools"),
                ],
            ),
        ];
        let mut first = true;
        out.push(b'{');
        for (bit, name, modes) in members {
            if !self.has(bit) {
                continue;
            }
            member_key(out, name, &mut first);
            let mut first_mode = true;
            out.push(b'{');
            for (mode_bit, mode) in modes {
                if self.has(*mode_bit) {
                    member_key(out, mode, &mut first_mode);
                    out.extend_from_slice(b"{}");
                }
            }
            out.push(b'}');
        }
        out.push(b'}');
    }

    /// The capability an input request needs that the client did not declare, as the
    /// `requiredCapabilities` object of a -32021 error and its name; `None` when declared.
    fn missing(self, method: &str, params: Option<&RawValue>) -> Option<(Value, &'static str)> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Asked<'a> {
            #[serde(borrow)]
            mode: Option<Cow<'a, str>>,
            tools: Option<serde::de::IgnoredAny>,
        }
        let asked: Asked<'_> = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or_default();
        let needs = |bit: u8, required: Value, name: &'static str| {
            (!self.has(bit)).then_some((required, name))
        };
        match method {
            "sampling/createMessage" => needs(Self::SAMPLING, json!({"sampling": {}}), "sampling")
                .or_else(|| {
                    let tools = asked.tools.is_some();
                    let required = json!({"sampling": {"tools": {}}});
                    tools.then(|| needs(Self::SAMPLING_TOOLS, required, "sampling.tools"))?
                }),
            "elicitation/create" => {
                let base = needs(Self::ELICITATION, json!({"elicitation": {}}), "elicitation");
                base.or_else(|| match asked.mode.as_deref() {
                    Some("url") => needs(
                        Self::ELICITATION_URL,
                        json!({"elicitation": {"url": {}}}),
                        "elicitation.url",
                    ),
                    // A client that names no mode takes forms (the spec's implicit form mode).
                    _ if self.has(Self::ELICITATION_URL) => needs(
                        Self::ELICITATION_FORM,
                        json!({"elicitation": {"form": {}}}),
                        "elicitation.form",
                    ),
                    _ => None,
                })
            }
            _ => needs(Self::ROOTS, json!({"roots": {}}), "roots"),
        }
    }
}

/// The methods an upstream may ask a client for input with.
const INPUT_METHODS: [&str; 3] = ["sampling/createMessage", "elicitation/create", "roots/list"];

/// One request of an `input_required` result.
struct InputRequest<'a> {
    key: String,
    method: Cow<'a, str>,
    params: Option<&'a RawValue>,
}

/// An `input_required` result, read.
struct InputRequired<'a> {
    requests: Vec<InputRequest<'a>>,
    request_state: Option<String>,
}

/// `Ok(None)` for a result that is not `input_required` (the call's answer); an error for
/// one that is, but cannot be read.
fn input_required(result: &RawValue) -> Result<Option<InputRequired<'_>>, String> {
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

/// The client's answer to one input request: its result, or the error it answered with.
pub type InputAnswer = Result<Box<RawValue>, RpcError>;

/// The answer a client's response `outcome` gives.
pub fn answer_of(outcome: &Outcome<'_>) -> InputAnswer {
    match outcome {
        Outcome::Result(result) => Ok((*result).to_owned()),
        Outcome::Error(error) => Err(client_error(error)),
    }
}

/// The answers to one round of input requests, as they arrive from the client.
pub struct InputRound {
    /// The call they serve: its budget holds the answers.
    call: Rc<CallState>,
    answers: RefCell<Vec<Option<InputAnswer>>>,
    /// Bytes of answers charged to the call's budget, released when the round is dropped.
    charged: Cell<usize>,
    /// An answer did not fit the call's budget.
    overflowed: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl InputRound {
    fn new(call: Rc<CallState>, requests: usize) -> InputRound {
        InputRound {
            call,
            answers: RefCell::new((0..requests).map(|_| None).collect()),
            charged: Cell::new(0),
            overflowed: Cell::new(false),
            waker: Cell::new(None),
        }
    }

    /// Takes the client's `answer` to request `slot` of the round.
    pub fn answer(&self, slot: u32, answer: InputAnswer) {
        let bytes = answer.as_ref().map_or(0, |result| result.get().len());
        // Past the budget the answer is dropped, not held: the round ends with an error.
        match self.call.charge(bytes) {
            false => self.overflowed.set(true),
            true => {
                self.charged.set(self.charged.get() + bytes);
                if let Some(entry) = self.answers.borrow_mut().get_mut(slot as usize) {
                    *entry = Some(answer);
                }
            }
        }
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Waits until every request is answered, and takes the answers in slot order; `None`
    /// when an answer overflowed the budget.
    async fn complete(&self) -> Option<Vec<InputAnswer>> {
        poll_fn(|cx| {
            if self.overflowed.get() {
                return Poll::Ready(None);
            }
            let mut answers = self.answers.borrow_mut();
            if answers.iter().all(Option::is_some) {
                return Poll::Ready(Some(answers.iter_mut().filter_map(Option::take).collect()));
            }
            self.waker.set(Some(cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

impl Drop for InputRound {
    fn drop(&mut self) {
        self.call.release(self.charged.get());
    }
}

/// A JSON-RPC error object a client answered with, as an [`RpcError`].
fn client_error(error: &RawValue) -> RpcError {
    #[derive(Deserialize)]
    struct Error {
        code: i32,
        message: String,
    }
    match serde_json::from_str::<Error>(error.get()) {
        Ok(error) => RpcError::new(error.code, error.message),
        Err(e) => RpcError::new(
            jsonrpc::INTERNAL_ERROR,
            format!("an unreadable error object: {e}"),
        ),
    }
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
/// tree. `None` only if `first` is not the JSON object the gateway wrote.
fn retry_params(
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
    // A `Value` always prints as valid JSON.
    RawValue::from_string(Value::Object(data).to_string()).expect("a Value prints as valid JSON")
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
    fn answer(round: &InputRound, slot: u32, message: &str) {
        let depth_max = crate::config::bounds::JSON_DEPTH_MAX.default as u32;
        let Ok(jsonrpc::Message::Response { outcome, .. }) =
            jsonrpc::parse(message.as_bytes(), depth_max)
        else {
            panic!("not a response: {message}");
        };
        round.answer(slot, answer_of(&outcome));
    }

    #[test]
    fn capabilities_keep_the_declared_input_members_and_their_modes() {
        let caps = InputCapabilities::from_client(&raw(
            r#"{"sampling":{"tools":{}},"elicitation":{"form":{},"url":{}},"experimental":{}}"#,
        ));
        let json = |caps: InputCapabilities| {
            let mut out = Vec::new();
            caps.write_json(&mut out);
            serde_json::from_slice::<Value>(&out).expect("valid JSON")
        };
        assert_eq!(
            json(caps),
            json!({"sampling": {"tools": {}}, "elicitation": {"form": {}, "url": {}}})
        );
        let roots = InputCapabilities::from_client(&raw(r#"{"roots":{"listChanged":true}}"#));
        assert_eq!(json(roots), json!({"roots": {}}));
        assert_eq!(json(InputCapabilities::NONE), json!({}));
        assert_eq!(
            InputCapabilities::from_client(&raw("{}")),
            InputCapabilities::NONE
        );
        assert_eq!(
            InputCapabilities::from_client(&raw("[1]")),
            InputCapabilities::NONE
        );
        let nulls = InputCapabilities::from_client(&raw(r#"{"sampling":null,"roots":null}"#));
        assert_eq!(nulls, InputCapabilities::NONE);
    }

    #[test]
    fn an_input_request_needs_the_capability_of_its_method_and_mode() {
        let sampling = InputCapabilities::from_client(&raw(r#"{"sampling":{}}"#));
        assert!(sampling.missing("sampling/createMessage", None).is_none());
        let with_tools = raw(r#"{"messages":[],"maxTokens":5,"tools":[]}"#);
        let (required, name) = sampling
            .missing("sampling/createMessage", Some(&with_tools))
            .unwrap();
        assert_eq!(
            (required, name),
            (json!({"sampling": {"tools": {}}}), "sampling.tools")
        );
        let (required, name) = sampling.missing("roots/list", None).unwrap();
        assert_eq!((required, name), (json!({"roots": {}}), "roots"));
        let (_, name) = sampling.missing("elicitation/create", None).unwrap();
        assert_eq!(name, "elicitation");

        let implicit_form = InputCapabilities::from_client(&raw(r#"{"elicitation":{}}"#));
        let form = raw(r#"{"message":"m","requestedSchema":{}}"#);
        assert!(implicit_form
            .missing("elicitation/create", Some(&form))
            .is_none());
        let url = raw(r#"{"mode":"url","message":"m","url":"https://x","elicitationId":"1"}"#);
        let (_, name) = implicit_form
            .missing("elicitation/create", Some(&url))
            .unwrap();
        assert_eq!(name, "elicitation.url");
        let url_only = InputCapabilities::from_client(&raw(r#"{"elicitation":{"url":{}}}"#));
        assert!(url_only.missing("elicitation/create", Some(&url)).is_none());
        let (_, name) = url_only.missing("elicitation/create", Some(&form)).unwrap();
        assert_eq!(name, "elicitation.form");
    }

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
    fn a_round_completes_when_every_slot_is_answered_within_the_call_budget() {
        let call = Rc::new(CallState::new(64));
        let round = InputRound::new(call.clone(), 2);
        answer(
            &round,
            1,
            r#"{"jsonrpc":"2.0","id":"sgr-0-1","result":{"roots":[]}}"#,
        );
        assert!(round.answers.borrow()[0].is_none());
        answer(
            &round,
            0,
            r#"{"jsonrpc":"2.0","id":"sgr-0-0","error":{"code":-1,"message":"no"}}"#,
        );
        let answers = round.answers.borrow();
        assert_eq!(
            answers[1].as_ref().unwrap().as_ref().unwrap().get(),
            r#"{"roots":[]}"#
        );
        assert_eq!(answers[0].as_ref().unwrap().as_ref().unwrap_err().code, -1);
        drop(answers);
        assert!(!round.overflowed.get());
        let big = format!(
            r#"{{"jsonrpc":"2.0","id":"sgr-0-2","result":{{"t":"{}"}}}}"#,
            "x".repeat(64)
        );
        answer(&round, 0, &big);
        assert!(round.overflowed.get());
        drop(round);
        assert!(call.charge(64), "a dropped round releases what it charged");
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
