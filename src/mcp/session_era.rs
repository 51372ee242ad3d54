//! The session era's rules (2025-03-26 … 2025-11-25): `initialize` creates a session on this
//! shard, every later request names it in `Mcp-Session-Id`, GET opens its event stream and
//! DELETE ends it. A session another shard owns is forwarded there.

use std::borrow::Cow;
use std::cell::RefCell;

use serde_json::value::RawValue;

use crate::calls::client::Client;
use crate::calls::inflight::ClientRoute;
use crate::mcp::call::{Call, Era};
use crate::mcp::conversation::Conversation;
use crate::mcp::session::{SessionId, SessionRefusal, SessionTable};
use crate::mcp::transport::{
    supported_list, Endpoint, HttpMethod, HttpReply, McpHeaders, McpRequest, Refused, Reply,
};
use crate::refusal::RefusalReason;
use crate::upstream::upstreams::ClientAnswer;
use crate::wire::capabilities::InputCapabilities;
use crate::wire::jsonrpc::{self, EnvelopeError, EnvelopeErrorKind, Message, RpcError};
use crate::wire::method::Method;
use crate::wire::params::CallParams;
use crate::wire::version::ProtocolVersion;

impl Endpoint {
    /// the shard that owns the session), so nothing waits for the answer that never comes.
    pub(super) fn unreadable<'m>(
        &self,
        request: &McpRequest<'_>,
        error: &EnvelopeError<'_>,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Conversation<'m>, Refused> {
        let reason = match error.kind() {
            EnvelopeErrorKind::TooDeep => RefusalReason::JsonTooDeep,
            _ => RefusalReason::InvalidJsonRpc,
        };
        let refused = Refused::new(reason, error.code(), error.message());
        let Some(id) = error.id() else {
            return Err(refused);
        };
        let refused = refused.with_id(id);
        if !error.is_response() {
            return Err(refused);
        }
        let session = match self.owned_session(&request.headers, request.method) {
            Ok(Ok(session)) => session,
            Ok(Err(owner)) => return Ok(Conversation::Forward { owner }),
            Err(_) => return Err(refused),
        };
        if sessions.borrow_mut().touch(session, now_ms).is_some() {
            let answer = RpcError::new(
                jsonrpc::INVALID_REQUEST,
                format!(
                    "the gateway refused the client's answer: {}",
                    error.message()
                ),
            );
            let route = ClientRoute::Session(session.secret);
            self.router
                .upstreams()
                .client_response(route, id, ClientAnswer::Refused(answer));
        }
        Err(refused)
    }

    /// Finds the session a session-era request (`method`) names; `Err(Forward)` style replies
    /// are returned as `Ok(Err(owner))` so callers can forward.
    pub(super) fn owned_session(
        &self,
        h: &McpHeaders<'_>,
        method: HttpMethod,
    ) -> Result<Result<SessionId, u8>, Refused> {
        let Some(text) = h.session_id else {
            let message = match method {
                HttpMethod::Post => missing_session_on_post(),
                _ => MISSING_SESSION.to_owned(),
            };
            return Err(Refused::invalid(RefusalReason::MissingSession, message));
        };
        let id = SessionId::parse(text)
            .filter(|id| id.shard < self.shards)
            .ok_or_else(|| unknown_session(text))?;
        Ok(if id.shard == self.shard {
            Ok(id)
        } else {
            Err(id.shard)
        })
    }

    /// A GET (the session's event stream) or a DELETE (its end).
    pub(super) fn stream_or_delete<'m>(
        &self,
        request: &McpRequest<'_>,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Conversation<'m>, Refused> {
        let id = match self.owned_session(&request.headers, request.method)? {
            Ok(id) => id,
            Err(owner) => return Ok(Conversation::Forward { owner }),
        };
        let mut table = sessions.borrow_mut();
        let text = request.headers.session_id.unwrap_or("");
        if request.method == HttpMethod::Delete {
            let deleted = table.delete(id, now_ms);
            let ended = table.take_ended();
            drop(table);
            self.router.upstreams().sessions_ended(&ended);
            return match deleted {
                true => Ok(Conversation::Answered(HttpReply::empty(200))),
                false => Err(unknown_session(text)),
            };
        }
        let session = table
            .touch(id, now_ms)
            .ok_or_else(|| unknown_session(text))?;
        Ok(Conversation::Answered(Reply::Stream {
            ended: session.ended.clone(),
        }))
    }

    /// The session era's rules for a POSTed message: the version header, `initialize`, the
    /// session it names (here, or forwarded to its owner), then what the message is — a request
    /// to route, a cancellation, a client's answer to an upstream's request.
    pub(super) fn session_era<'m, 'a: 'm>(
        &self,
        request: &McpRequest<'a>,
        message: &'m Message<'a>,
        method: Method,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Conversation<'m>, Refused> {
        let h = &request.headers;
        if let Some(text) = h.protocol_version {
            if ProtocolVersion::parse(text).is_none_or(|v| v.is_stateless()) {
                return Err(Refused::invalid(
                    RefusalReason::UnsupportedProtocolVersion,
                    format!(
                        "unsupported MCP-Protocol-Version {text:?}; supported: {}",
                        supported_list()
                    ),
                ));
            }
        }
        if let (Message::Request { id, params, .. }, Method::Initialize) = (message, method) {
            return self.initialize(id, *params, sessions, now_ms);
        }
        let id = match self.owned_session(h, HttpMethod::Post)? {
            Ok(id) => id,
            Err(owner) => return Ok(Conversation::Forward { owner }),
        };
        let (version, log_level, input_capabilities) = {
            let mut table = sessions.borrow_mut();
            let text = h.session_id.unwrap_or("");
            let session = table
                .touch(id, now_ms)
                .ok_or_else(|| unknown_session(text))?;
            if let (Message::Request { params, .. }, Method::LoggingSetLevel) = (message, method) {
                session.log_level = requested_log_level(*params).or(session.log_level);
            }
            (
                session.version,
                session.log_level,
                session.input_capabilities,
            )
        };
        let route = ClientRoute::Session(id.secret);
        let accepted = Conversation::Answered(HttpReply::empty(202));
        let (id, method_name, params) = match message {
            Message::Request { id, method, params } => (*id, method.as_ref(), *params),
            Message::Notification { method, params } if method == "notifications/cancelled" => {
                if let Some(request_id) = cancelled_request_id(*params) {
                    self.router.upstreams().cancel(route, &request_id);
                }
                return Ok(accepted);
            }
            Message::Response {
                id: Some(id),
                outcome,
            } => {
                let answer = ClientAnswer::Sent(outcome, request.body);
                self.router.upstreams().client_response(route, id, answer);
                return Ok(accepted);
            }
            _ => return Ok(accepted),
        };
        Ok(Conversation::Call(Call {
            era: Era::Session(version),
            id,
            method,
            method_name,
            params,
            routed: method
                .is_routed()
                .then(|| CallParams::read(method_name, params)),
            client: Client {
                route,
                id,
                log_level,
                takes_requests: true,
                param_headers: h.param_headers,
                input_capabilities,
            },
        }))
    }

    /// `initialize`: a new session, answered with its id.
    fn initialize<'m>(
        &self,
        id: &RawValue,
        params: Option<&RawValue>,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Conversation<'m>, Refused> {
        let init = InitializeParams::parse(params)
            .map_err(|message| Refused::invalid_params(message, id))?;
        let version = ProtocolVersion::negotiate(&init.protocol_version);
        let client_json = format!(
            r#"{{"clientInfo":{},"capabilities":{}}}"#,
            init.client_info.get(),
            init.capabilities.get()
        );
        let (created, ended) = {
            let mut table = sessions.borrow_mut();
            let created = table.create(version, client_json.as_bytes(), now_ms);
            (created, table.take_ended())
        };
        // Creating may have evicted idle sessions to make room.
        self.router.upstreams().sessions_ended(&ended);
        let mut table = sessions.borrow_mut();
        let session = created.map_err(|refusal| {
            let reason = match refusal {
                SessionRefusal::Full { .. } | SessionRefusal::ArenaFull { .. } => {
                    RefusalReason::SessionsFull
                }
                SessionRefusal::PayloadTooLarge { .. } => RefusalReason::ClientInfoTooLarge,
                SessionRefusal::DuplicateId | SessionRefusal::Random(_) => RefusalReason::Internal,
            };
            Refused::invalid(reason, refusal.to_string()).with_id(id)
        })?;
        if let Some(created) = table.touch(session, now_ms) {
            created.input_capabilities = InputCapabilities::from_client(init.capabilities);
        }
        drop(table);
        let result = self.router.initialize_result(version);
        let headers = vec![("Mcp-Session-Id", session.to_string())];
        Ok(Conversation::Answered(HttpReply::json(
            200,
            headers,
            jsonrpc::result_bytes(id, &result),
        )))
    }
}

/// `params.level` of a `logging/setLevel`, when it is one of the RFC 5424 names.
fn requested_log_level(params: Option<&RawValue>) -> Option<&'static str> {
    #[derive(serde::Deserialize)]
    struct SetLevel<'a> {
        #[serde(borrow)]
        level: Cow<'a, str>,
    }
    let request: SetLevel<'_> = serde_json::from_str(params?.get()).ok()?;
    jsonrpc::LOG_LEVELS
        .iter()
        .find(|level| **level == request.level)
        .copied()
}

/// `params.requestId` of a `notifications/cancelled`.
fn cancelled_request_id(params: Option<&RawValue>) -> Option<Box<RawValue>> {
    #[derive(serde::Deserialize)]
    struct Cancelled<'a> {
        #[serde(rename = "requestId", borrow)]
        request_id: &'a RawValue,
    }
    let cancelled: Cancelled<'_> = serde_json::from_str(params?.get()).ok()?;
    Some(cancelled.request_id.to_owned())
}

/// The `initialize` params the gateway reads; the rest is ignored.
#[derive(serde::Deserialize)]
struct InitializeParams<'a> {
    #[serde(rename = "protocolVersion", borrow)]
    protocol_version: Cow<'a, str>,
    #[serde(borrow)]
    capabilities: &'a RawValue,
    #[serde(rename = "clientInfo", borrow)]
    client_info: &'a RawValue,
}

impl<'a> InitializeParams<'a> {
    fn parse(params: Option<&'a RawValue>) -> Result<InitializeParams<'a>, String> {
        let params =
            params.ok_or("initialize needs params: protocolVersion, capabilities, clientInfo")?;
        serde_json::from_str(params.get()).map_err(|e| format!("invalid initialize params: {e}"))
    }
}

/// A GET or DELETE without a session: both exist only in the session era.
const MISSING_SESSION: &str =
    "missing Mcp-Session-Id header: send initialize first and echo the session id it returns";

/// The refusal of a POST without a session: either era's way in.
fn missing_session_on_post() -> String {
    let version = ProtocolVersion::V2026_07_28.as_str();
    format!(
        "{MISSING_SESSION}; or use protocol version {version}, which needs no session: send the \
         header MCP-Protocol-Version: {version} and, in params._meta, {} \"{version}\" and {} \
         (server/discover says what this server offers)",
        jsonrpc::META_PROTOCOL_VERSION,
        jsonrpc::META_CLIENT_CAPABILITIES
    )
}

fn unknown_session(text: &str) -> Refused {
    Refused::invalid(
        RefusalReason::UnknownSession,
        format!(
            "unknown session {text:?}: it expired, was deleted, or never existed; initialize again"
        ),
    )
}
