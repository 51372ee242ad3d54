//! The MCP endpoint's HTTP rules, both eras, in the order a request meets them:
//! `Host` → `Origin` → HTTP method → `Content-Type`/`Accept` → JSON-RPC envelope → era → era rules → route.
//!
//! This room decides; it performs no I/O. It answers with a [`Reply`] the caller writes to the
//! client, or, for a session owned by another shard, with [`Reply::Forward`] so the runtime can
//! carry the request over the mesh. State it touches (the session table) belongs to the shard
//! that calls it.

use crate::mcp::router::ClientAnswer;
use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::calls::inflight::ClientRoute;
use crate::config::Config;
use crate::mcp::listen::Subscription;
use crate::mcp::router::{Answer, Client, Era, Relay, Router, ROUTED_METHODS};
use crate::mcp::session::{SessionId, SessionRefusal, SessionTable};
use crate::refusal::{RefusalCounters, RefusalReason};
use crate::support::event::Event;
use crate::wire::capabilities::InputCapabilities;
use crate::wire::jsonrpc::{self, EnvelopeError, EnvelopeErrorKind, Message, Meta, RpcError};
use crate::wire::params::CallParams;
use crate::wire::version::ProtocolVersion;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

/// The HTTP methods the endpoint distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpMethod {
    Post,
    Get,
    Delete,
    Other,
}

impl HttpMethod {
    pub fn parse(method: &str) -> HttpMethod {
        match method {
            "POST" => HttpMethod::Post,
            "GET" => HttpMethod::Get,
            "DELETE" => HttpMethod::Delete,
            _ => HttpMethod::Other,
        }
    }
}

/// The request headers the MCP rules read (already decoded to UTF-8; absent when not valid).
#[derive(Default, Clone, Copy)]
pub struct McpHeaders<'a> {
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub mcp_method: Option<&'a str>,
    pub mcp_name: Option<&'a str>,
    /// `Mcp-Param-*` fields (name as sent, value), passed on to the upstream a call goes to.
    pub param_headers: &'a [(String, String)],
}

/// One request to the MCP endpoint, independent of where it arrived (socket or mesh).
pub struct McpRequest<'a> {
    pub method: HttpMethod,
    pub headers: McpHeaders<'a>,
    pub body: &'a [u8],
}

/// Extra response headers; names are fixed strings, values are owned.
pub type ReplyHeaders = Vec<(&'static str, String)>;

/// What to send back.
pub enum Reply {
    /// A complete HTTP answer (`Send`, so it can cross the mesh).
    Http(HttpReply),
    /// The session's GET stream: keep it open until `ended` is set or the client leaves.
    Stream { ended: Rc<Event> },
    /// A 2026-07-28 `subscriptions/listen`: keep its stream open until the client leaves or
    /// the shard drains.
    Listen(Subscription),
    /// The session lives on another shard: send the request there.
    Forward { owner: u8 },
    /// An upstream call under way: relay its notifications (as an event stream, once there is
    /// one), then its answer under the client's `id`.
    Relay {
        relay: Relay,
        id: Box<RawValue>,
        era: Era,
    },
}

/// A complete HTTP answer: a JSON body, or none (202 for notifications, 200 for DELETE).
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: ReplyHeaders,
    /// `None` answers with no body and no `Content-Type`.
    pub json: Option<Vec<u8>>,
}

impl HttpReply {
    fn json(status: u16, headers: ReplyHeaders, body: Vec<u8>) -> Reply {
        Reply::Http(HttpReply {
            status,
            headers,
            json: Some(body),
        })
    }

    fn empty(status: u16) -> Reply {
        Reply::Http(HttpReply {
            status,
            headers: ReplyHeaders::new(),
            json: None,
        })
    }
}

/// The shard-local MCP endpoint: its rules, its session table and its router.
pub struct Endpoint {
    shard: u8,
    shards: u8,
    router: Router,
    config: Arc<Config>,
}

/// A refusal: its reason (for counting and the HTTP status) and what the client is told.
struct Refused {
    reason: RefusalReason,
    code: i32,
    message: String,
    id: Option<Box<RawValue>>,
    data: Option<Box<RawValue>>,
    allow: Option<&'static str>,
}

impl Refused {
    fn new(reason: RefusalReason, code: i32, message: impl Into<String>) -> Refused {
        Refused {
            reason,
            code,
            message: message.into(),
            id: None,
            data: None,
            allow: None,
        }
    }

    fn invalid(reason: RefusalReason, message: impl Into<String>) -> Refused {
        Refused::new(reason, jsonrpc::INVALID_REQUEST, message)
    }

    fn method_not_allowed(allow: &'static str, message: &str) -> Refused {
        Refused {
            allow: Some(allow),
            ..Refused::invalid(RefusalReason::MethodNotAllowed, message)
        }
    }

    /// Params the method cannot take (-32602), answered under the request's `id`.
    fn invalid_params(message: String, id: &RawValue) -> Refused {
        Refused::new(
            RefusalReason::InvalidJsonRpc,
            jsonrpc::INVALID_PARAMS,
            message,
        )
        .with_id(id)
    }

    fn with_id(mut self, id: &RawValue) -> Refused {
        self.id = Some(id.to_owned());
        self
    }
}

/// The methods the 2026-07-28 revision removed; they are unknown to a stateless request.
const REMOVED_IN_STATELESS: [&str; 5] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
];

/// Methods whose `Mcp-Name` header mirrors `params.name` or `params.uri`.
const NAMED_METHODS: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

impl Endpoint {
    pub fn new(shard: u8, shards: u8, router: Router, config: Arc<Config>) -> Endpoint {
        Endpoint {
            shard,
            shards,
            router,
            config,
        }
    }

    /// Steps that need no session: origin, HTTP method, media types. Run on the shard that
    /// accepted the connection, before any forwarding.
    pub fn precheck(
        &self,
        request: &McpRequest<'_>,
        refusals: &RefusalCounters,
    ) -> Option<HttpReply> {
        self.check_transport(request)
            .err()
            .map(|refused| self.refuse(refused, refusals))
    }

    /// Handles a request that passed [`Endpoint::precheck`].
    pub async fn handle(
        &self,
        request: &McpRequest<'_>,
        sessions: &RefCell<SessionTable>,
        refusals: &RefusalCounters,
        now_ms: u64,
    ) -> Reply {
        match self.dispatch(request, sessions, now_ms).await {
            Ok(reply) => reply,
            Err(refused) => Reply::Http(self.refuse(refused, refusals)),
        }
    }

    /// A refusal that happened outside this room (mesh full, draining) as a JSON-RPC reply.
    pub fn refusal_reply(
        &self,
        reason: RefusalReason,
        message: String,
        refusals: &RefusalCounters,
    ) -> HttpReply {
        self.refuse(Refused::invalid(reason, message), refusals)
    }

    fn refuse(&self, refused: Refused, refusals: &RefusalCounters) -> HttpReply {
        refusals.count(refused.reason);
        let mut headers = ReplyHeaders::new();
        if let Some(allow) = refused.allow {
            headers.push(("Allow", allow.to_owned()));
        }
        if matches!(refused.reason.http_status(), 503) {
            headers.push((
                "Retry-After",
                self.config.sessions.retry_after_s.to_string(),
            ));
        }
        let body = jsonrpc::error_bytes(
            refused.id.as_deref(),
            refused.code,
            &refused.message,
            refused.data.as_deref(),
        );
        HttpReply {
            status: refused.reason.http_status(),
            headers,
            json: Some(body),
        }
    }

    fn check_transport(&self, request: &McpRequest<'_>) -> Result<(), Refused> {
        let h = &request.headers;
        if !self.config.server.host_allowed(h.host) {
            return Err(Refused::invalid(
                RefusalReason::HostForbidden,
                format!(
                    "host {:?} is not a name of this listener (server.allowed_hosts; a loopback \
                     listener answers to localhost, 127.0.0.1 and [::1] unless it lists others)",
                    h.host.unwrap_or("")
                ),
            ));
        }
        if let Some(origin) = h.origin.filter(|o| !self.config.server.origin_allowed(o)) {
            return Err(Refused::invalid(
                RefusalReason::OriginForbidden,
                format!("origin {origin:?} is not allowed (server.allowed_origins)"),
            ));
        }
        let stateless = h.protocol_version == Some(ProtocolVersion::V2026_07_28.as_str());
        match request.method {
            HttpMethod::Post => self.check_post_media(h),
            HttpMethod::Get | HttpMethod::Delete if stateless => Err(Refused::method_not_allowed(
                "POST",
                "protocol version 2026-07-28 has no GET or DELETE: POST each request",
            )),
            HttpMethod::Get if !accepts(h.accept, "text/event-stream") => Err(Refused::invalid(
                RefusalReason::NotAcceptable,
                format!(
                    "GET opens an event stream: Accept must list text/event-stream, got {:?}",
                    h.accept.unwrap_or("")
                ),
            )),
            HttpMethod::Get | HttpMethod::Delete => Ok(()),
            HttpMethod::Other => Err(Refused::method_not_allowed(
                "POST, GET, DELETE",
                "the MCP endpoint accepts POST, GET and DELETE",
            )),
        }
    }

    fn check_post_media(&self, h: &McpHeaders<'_>) -> Result<(), Refused> {
        let content_type = h.content_type.unwrap_or("");
        let media = content_type.split(';').next().unwrap_or("").trim();
        if !media.eq_ignore_ascii_case("application/json") {
            return Err(Refused::invalid(
                RefusalReason::UnsupportedMediaType,
                format!("Content-Type must be application/json, got {content_type:?}"),
            ));
        }
        if !(accepts(h.accept, "application/json") && accepts(h.accept, "text/event-stream")) {
            return Err(Refused::invalid(
                RefusalReason::NotAcceptable,
                format!(
                    "Accept must list application/json and text/event-stream, got {:?}",
                    h.accept.unwrap_or("")
                ),
            ));
        }
        Ok(())
    }

    async fn dispatch(
        &self,
        request: &McpRequest<'_>,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Reply, Refused> {
        if request.method != HttpMethod::Post {
            return self.stream_or_delete(request, sessions, now_ms);
        }
        let message = match jsonrpc::parse(request.body, self.config.limits.json_depth_max) {
            Ok(message) => message,
            Err(e) => return self.unreadable(request, &e, sessions, now_ms),
        };
        if is_stateless(&request.headers, &message) {
            return self.stateless(&request.headers, &message).await;
        }
        self.session_era(request, &message, sessions, now_ms).await
    }

    /// Refuses a body [`jsonrpc::parse`] refused. A session-era client's answer that nests too
    /// deep is refused too, but first stands as an error answer for the request it answers (on
    /// the shard that owns the session), so nothing waits for the answer that never comes.
    fn unreadable(
        &self,
        request: &McpRequest<'_>,
        error: &EnvelopeError<'_>,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Reply, Refused> {
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
            Ok(Err(owner)) => return Ok(Reply::Forward { owner }),
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
                .client_response(route, id, ClientAnswer::Refused(answer));
        }
        Err(refused)
    }

    /// Finds the session a session-era request (`method`) names; `Err(Forward)` style replies
    /// are returned as `Ok(Err(owner))` so callers can forward.
    fn owned_session(
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

    fn stream_or_delete(
        &self,
        request: &McpRequest<'_>,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Reply, Refused> {
        let id = match self.owned_session(&request.headers, request.method)? {
            Ok(id) => id,
            Err(owner) => return Ok(Reply::Forward { owner }),
        };
        let mut table = sessions.borrow_mut();
        let text = request.headers.session_id.unwrap_or("");
        if request.method == HttpMethod::Delete {
            let deleted = table.delete(id, now_ms);
            let ended = table.take_ended();
            drop(table);
            self.router.sessions_ended(&ended);
            return match deleted {
                true => Ok(HttpReply::empty(200)),
                false => Err(unknown_session(text)),
            };
        }
        let session = table
            .touch(id, now_ms)
            .ok_or_else(|| unknown_session(text))?;
        Ok(Reply::Stream {
            ended: session.ended.clone(),
        })
    }

    async fn session_era(
        &self,
        request: &McpRequest<'_>,
        message: &Message<'_>,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Reply, Refused> {
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
        if let Message::Request { id, method, params } = message {
            if method == "initialize" {
                return self.initialize(id, *params, sessions, now_ms);
            }
        }
        let id = match self.owned_session(h, HttpMethod::Post)? {
            Ok(id) => id,
            Err(owner) => return Ok(Reply::Forward { owner }),
        };
        let (version, log_level, input_capabilities) = {
            let mut table = sessions.borrow_mut();
            let text = h.session_id.unwrap_or("");
            let session = table
                .touch(id, now_ms)
                .ok_or_else(|| unknown_session(text))?;
            if let Message::Request { method, params, .. } = message {
                if method == "logging/setLevel" {
                    session.log_level = requested_log_level(*params).or(session.log_level);
                }
            }
            (
                session.version,
                session.log_level,
                session.input_capabilities,
            )
        };
        let route = ClientRoute::Session(id.secret);
        let (id, method, params) = match message {
            Message::Request { id, method, params } => (*id, method.as_ref(), *params),
            Message::Notification { method, params } if method == "notifications/cancelled" => {
                if let Some(request_id) = cancelled_request_id(*params) {
                    self.router.cancel(route, &request_id);
                }
                return Ok(HttpReply::empty(202));
            }
            Message::Response {
                id: Some(id),
                outcome,
            } => {
                let answer = ClientAnswer::Sent(outcome, request.body);
                self.router.client_response(route, id, answer);
                return Ok(HttpReply::empty(202));
            }
            _ => return Ok(HttpReply::empty(202)),
        };
        let client = Client {
            route,
            id,
            log_level,
            takes_requests: true,
            param_headers: h.param_headers,
            input_capabilities,
        };
        let answer = self
            .router
            .call(Era::Session(version), method, params, client)
            .await;
        self.answer(id, answer, Era::Session(version))
    }

    fn initialize(
        &self,
        id: &RawValue,
        params: Option<&RawValue>,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Reply, Refused> {
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
        self.router.sessions_ended(&ended);
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
        Ok(HttpReply::json(
            200,
            headers,
            jsonrpc::result_bytes(id, &result),
        ))
    }

    async fn stateless(&self, h: &McpHeaders<'_>, message: &Message<'_>) -> Result<Reply, Refused> {
        let (id, method, params) = match message {
            Message::Request { id, method, params } => (*id, method.as_ref(), *params),
            Message::Notification { .. } => return Ok(HttpReply::empty(202)),
            Message::Response { .. } => {
                return Err(Refused::invalid(
                    RefusalReason::InvalidJsonRpc,
                    "clients do not send JSON-RPC responses in protocol version 2026-07-28",
                ))
            }
        };
        // A routed request's params are read once, for the checks here and for the router;
        // params it cannot route by are left to the router to refuse, after the checks.
        let routed = ROUTED_METHODS
            .contains(&method)
            .then(|| CallParams::read(method, params).ok())
            .flatten();
        let read = match &routed {
            Some(call) => call
                .protocol_meta()
                .map(|meta| (meta, call.mirrored_name())),
            None => Meta::with_routing_name(method, params),
        };
        let (meta, body_name) = read.map_err(|error| {
            Refused::new(RefusalReason::MissingMeta, error.code, error.message).with_id(id)
        })?;
        require_stateless_meta(&meta).map_err(|r| r.with_id(id))?;
        // A header that contradicts the body is a mismatch whatever the version says.
        check_mirrored_headers(h, &meta, method, body_name).map_err(|r| r.with_id(id))?;
        check_stateless_version(&meta).map_err(|r| r.with_id(id))?;
        if REMOVED_IN_STATELESS.contains(&method) {
            let error = RpcError::method_not_found(method);
            return Ok(rpc_reply(id, Err(error), Era::Stateless));
        }
        if method == "subscriptions/listen" {
            let subscription = Subscription::parse(id, params)
                .map_err(|message| Refused::invalid_params(message, id))?;
            return Ok(Reply::Listen(subscription));
        }
        let route = self.router.inflight().request_route();
        let client = Client {
            route,
            id,
            log_level: None,
            takes_requests: false,
            param_headers: h.param_headers,
            input_capabilities: InputCapabilities::NONE,
        };
        let answer = match &routed {
            Some(call) => self.router.call_routed(method, call, client),
            None => {
                self.router
                    .call(Era::Stateless, method, params, client)
                    .await
            }
        };
        self.answer(id, answer, Era::Stateless)
    }
}

impl Endpoint {
    /// The router's answer as a reply: written now, refused for a full table, or relayed.
    fn answer(&self, id: &RawValue, answer: Answer, era: Era) -> Result<Reply, Refused> {
        match answer {
            Answer::Now(answer) => Ok(rpc_reply(id, answer, era)),
            Answer::Full { refusal, message } => {
                Err(Refused::invalid(refusal.reason(), message).with_id(id))
            }
            Answer::Relay(relay) => Ok(Reply::Relay {
                relay,
                id: id.to_owned(),
                era,
            }),
        }
    }

    pub fn router(&self) -> &Router {
        &self.router
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

/// Both `_meta` fields every 2026-07-28 request must carry.
fn require_stateless_meta(meta: &Meta<'_>) -> Result<(), Refused> {
    let missing = |key: &str| {
        Refused::new(
            RefusalReason::MissingMeta,
            jsonrpc::INVALID_PARAMS,
            format!("params._meta[{key:?}] is required in protocol version 2026-07-28"),
        )
    };
    if meta.protocol_version.is_none() {
        return Err(missing(jsonrpc::META_PROTOCOL_VERSION));
    }
    if meta.client_capabilities.is_none() {
        return Err(missing(jsonrpc::META_CLIENT_CAPABILITIES));
    }
    Ok(())
}

/// `"2025-03-26, 2025-06-18, …"` for error messages.
fn supported_list() -> String {
    let versions: Vec<&str> = ProtocolVersion::SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect();
    versions.join(", ")
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

fn accepts(accept: Option<&str>, media: &str) -> bool {
    accept.unwrap_or("").split(',').any(|part| {
        let range = part.split(';').next().unwrap_or("").trim();
        range.eq_ignore_ascii_case(media) || range == "*/*"
    })
}

/// A request is stateless-era when it says so: the 2026-07-28 header, `server/discover`, or a
/// protocol version in `params._meta`.
fn is_stateless(h: &McpHeaders<'_>, message: &Message<'_>) -> bool {
    if h.protocol_version == Some(ProtocolVersion::V2026_07_28.as_str()) {
        return true;
    }
    match message {
        Message::Request { method, params, .. } | Message::Notification { method, params } => {
            method == "server/discover" || meta_names_version(*params)
        }
        Message::Response { .. } => false,
    }
}

/// Whether `params._meta` names a protocol version. Text with neither the key's tail nor an
/// escape (which could spell it) cannot, so a session-era request is not parsed for it.
fn meta_names_version(params: Option<&RawValue>) -> bool {
    const KEY_TAIL: &str = "/protocolVersion";
    debug_assert!(jsonrpc::META_PROTOCOL_VERSION.ends_with(KEY_TAIL));
    let Some(text) = params.map(RawValue::get) else {
        return false;
    };
    if !text.contains(KEY_TAIL) && !text.contains('\\') {
        return false;
    }
    Meta::from_params(params).is_ok_and(|m| m.protocol_version.is_some())
}

fn check_stateless_version(meta: &Meta<'_>) -> Result<(), Refused> {
    let requested = meta.protocol_version.as_deref().unwrap_or("");
    if ProtocolVersion::parse(requested).is_some_and(|v| v.is_stateless()) {
        return Ok(());
    }
    // Every `str` serializes.
    let requested_json = serde_json::to_string(requested).expect("a string serializes");
    let data = format!(
        r#"{{"supported":{},"requested":{requested_json}}}"#,
        ProtocolVersion::SUPPORTED_JSON
    );
    Err(Refused {
        data: RawValue::from_string(data).ok(),
        ..Refused::new(
            RefusalReason::UnsupportedProtocolVersion,
            jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
            format!(
                "unsupported protocol version {requested:?}; supported: {}",
                supported_list()
            ),
        )
    })
}

/// `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` must mirror the body exactly.
fn check_mirrored_headers(
    h: &McpHeaders<'_>,
    meta: &Meta<'_>,
    method: &str,
    body_name: Option<Cow<'_, str>>,
) -> Result<(), Refused> {
    let mismatch = |message: String| {
        Refused::new(
            RefusalReason::HeaderMismatch,
            jsonrpc::HEADER_MISMATCH,
            message,
        )
    };
    let body_version = meta.protocol_version.as_deref().unwrap_or("");
    match h.protocol_version {
        Some(v) if v == body_version => {}
        Some(v) => {
            return Err(mismatch(format!(
                "header mismatch: MCP-Protocol-Version header {v:?} does not match body _meta version {body_version:?}"
            )))
        }
        None => return Err(mismatch("header mismatch: MCP-Protocol-Version header is missing".into())),
    }
    match h.mcp_method {
        Some(m) if m == method => {}
        Some(m) => {
            return Err(mismatch(format!(
                "header mismatch: Mcp-Method header {m:?} does not match body method {method:?}"
            )))
        }
        None => {
            return Err(mismatch(format!(
                "header mismatch: Mcp-Method header is missing (body method {method:?})"
            )))
        }
    }
    if !NAMED_METHODS.contains(&method) {
        return Ok(());
    }
    let body_name = body_name.unwrap_or_default();
    let Some(header) = h.mcp_name else {
        return Err(mismatch(format!(
            "header mismatch: Mcp-Name header is missing (body name {body_name:?})"
        )));
    };
    let decoded = decode_header_value(header).ok_or_else(|| {
        mismatch(format!(
            "header mismatch: Mcp-Name header {header:?} has invalid base64"
        ))
    })?;
    if decoded != body_name {
        return Err(mismatch(format!(
            "header mismatch: Mcp-Name header {decoded:?} does not match body value {body_name:?}"
        )));
    }
    Ok(())
}

/// Decodes the `=?base64?…?=` sentinel form of a mirrored header; other values pass unchanged.
fn decode_header_value(value: &str) -> Option<Cow<'_, str>> {
    let Some(encoded) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(Cow::Borrowed(value));
    };
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let trimmed = encoded.trim_end_matches('=');
    if encoded.len() % 4 != 0 || encoded.len() - trimmed.len() > 2 {
        return None;
    }
    let mut bytes = Vec::with_capacity(trimmed.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in trimmed.bytes() {
        acc = (acc << 6) | u32::from(sextet(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

/// A router answer as a JSON reply; stateless results carry `resultType` and an unknown method
/// is a 404 there.
fn rpc_reply(id: &RawValue, answer: Result<Box<RawValue>, RpcError>, era: Era) -> Reply {
    let (status, body) = answer_message(id, answer, era);
    HttpReply::json(status, ReplyHeaders::new(), body)
}

/// The HTTP status and JSON-RPC message that answer request `id` with `answer` in `era`.
pub fn answer_message(
    id: &RawValue,
    answer: Result<Box<RawValue>, RpcError>,
    era: Era,
) -> (u16, Vec<u8>) {
    let written = answer.and_then(|result| {
        let mut body = Vec::with_capacity(result.get().len() + 64);
        match era {
            Era::Session(_) => jsonrpc::write_session_era_result(&mut body, id, &result)
                .map_err(|message| RpcError::new(jsonrpc::INTERNAL_ERROR, message))?,
            Era::Stateless => jsonrpc::write_complete_result(&mut body, id, &result),
        }
        Ok(body)
    });
    match written {
        Ok(body) => (200, body),
        Err(error) => {
            // The 2026-07-28 era gives some errors their own HTTP status, whoever raised them
            // (the gateway, or an upstream whose status the relay does not carry).
            let status = match (era, error.code) {
                (Era::Stateless, jsonrpc::METHOD_NOT_FOUND) => 404,
                (
                    Era::Stateless,
                    jsonrpc::HEADER_MISMATCH
                    | jsonrpc::MISSING_REQUIRED_CLIENT_CAPABILITY
                    | jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
                ) => 400,
                _ => 200,
            };
            let body =
                jsonrpc::error_bytes(Some(id), error.code, &error.message, error.data.as_deref());
            (status, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrored_header_values_decode_the_base64_sentinel() {
        assert_eq!(decode_header_value("get_weather").unwrap(), "get_weather");
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").unwrap(),
            "Hello, 世界"
        );
        assert_eq!(
            decode_header_value("=?base64?IHBhZGRlZCA=?=").unwrap(),
            " padded "
        );
        assert!(decode_header_value("=?base64?***?=").is_none());
        assert!(decode_header_value("=?base64?abc?=").is_none());
    }

    #[test]
    fn accept_header_matching_is_by_media_range() {
        assert!(accepts(
            Some("application/json, text/event-stream"),
            "text/event-stream"
        ));
        assert!(accepts(Some("*/*"), "application/json"));
        assert!(accepts(
            Some("text/event-stream;q=0.9"),
            "text/event-stream"
        ));
        assert!(!accepts(Some("application/jsonx"), "application/json"));
        assert!(!accepts(None, "application/json"));
    }

    #[test]
    fn a_meta_protocol_version_marks_stateless_however_its_key_is_spelled() {
        let request = |params: &str| {
            let raw = RawValue::from_string(params.to_owned()).unwrap();
            meta_names_version(Some(&raw))
        };
        let version = r#"{"name":"x","_meta":{"io.modelcontextprotocol/protocolVersion":"v"}}"#;
        assert!(request(version));
        let escaped =
            r#"{"name":"x","_meta":{"io.modelcontextprotocol\/protocol\u0056ersion":"v"}}"#;
        assert!(request(escaped));
        assert!(!request(r#"{"name":"x","_meta":{"progressToken":1}}"#));
        assert!(!request(r#"{"name":"x","arguments":{"text":"a\\b"}}"#));
        assert!(!meta_names_version(None));
    }
}
