//! The JSON-RPC 2.0 envelope as MCP uses it: parse one message, write one answer.
//!
//! The gateway reads only the envelope (`jsonrpc`, `id`, `method`, and from `params` the
//! `_meta` block and the routing name); `params`, `result` and `error` stay raw bytes
//! (`&RawValue`) borrowed from the request buffer and are forwarded as they came. Writers append
//! to a caller's `Vec<u8>` (a per-shard buffer) without building a `serde_json::Value` tree.
//!
//! State: none. Everything here is a pure function of its input, callable from any shard.
//!
//! Limits: echoed input in error messages is cut to `PREVIEW_BYTES_MAX` bytes, so a hostile value
//! cannot make an error response larger than a few hundred bytes. Objects and arrays nest at
//! most `limits.json_depth_max` deep in a message (checked by the scan that reads it, so
//! anything read from an accepted message later is as shallow).
//!
//! Refuses (each with an [`EnvelopeError`] whose message names what was wrong): bytes that are not
//! JSON (-32700), a message nesting deeper than `limits.json_depth_max`, JSON arrays (batches,
//! removed from MCP in 2025-06-18), anything that is not an object, `jsonrpc` other than
//! `"2.0"`, an `id` that is not a string or integer (and a `null` id on a request), a
//! non-string or empty `method`, non-object `params`, a message that is both or neither of
//! request and response, and malformed `result`/`error` members (all -32600).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::wire::members::{member_key, write_json_str, Members};
use crate::wire::scan;

/// The only `jsonrpc` value accepted and written.
pub const JSONRPC_VERSION: &str = "2.0";

/// Invalid JSON was received.
pub const PARSE_ERROR: i32 = -32700;
/// The JSON is not a valid JSON-RPC message.
pub const INVALID_REQUEST: i32 = -32600;
/// The method does not exist or is not available (also: removed in this protocol era).
pub const METHOD_NOT_FOUND: i32 = -32601;
/// Invalid method parameters: unknown tool or prompt, bad cursor, missing `_meta` fields, and
/// (2026-07-28) unknown resource.
pub const INVALID_PARAMS: i32 = -32602;
/// Internal error on the receiver.
pub const INTERNAL_ERROR: i32 = -32603;
/// Resource not found, 2025-11-25 and earlier. 2026-07-28 replaced it with `INVALID_PARAMS` and
/// forbids emitting it.
pub const RESOURCE_NOT_FOUND: i32 = -32002;
/// URL-mode elicitation required (2025-11-25 only; reserved, never reused).
pub const URL_ELICITATION_REQUIRED: i32 = -32042;
/// HTTP headers (`Mcp-Method`, `Mcp-Name`, `MCP-Protocol-Version`) missing or not matching the
/// body (2026-07-28, HTTP 400).
pub const HEADER_MISMATCH: i32 = -32020;
/// The request needs a client capability it did not declare (2026-07-28, HTTP 400,
/// `data.requiredCapabilities`).
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i32 = -32021;
/// The request's protocol version is not supported (2026-07-28, HTTP 400,
/// `data: {supported, requested}`).
pub const UNSUPPORTED_PROTOCOL_VERSION: i32 = -32022;

/// `_meta` key carrying the request's protocol version (2026-07-28, required).
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the request's client capabilities (2026-07-28, required).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key carrying the client's name and version (2026-07-28, should).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key carrying the minimum log level for this request (2026-07-28, optional).
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key opting a request into progress notifications (every era).
pub const META_PROGRESS_TOKEN: &str = "progressToken";

/// Log levels accepted in `_meta["io.modelcontextprotocol/logLevel"]` (RFC 5424 names).
pub const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

/// How many bytes of an offending value an error message quotes before cutting it off.
pub const PREVIEW_BYTES_MAX: usize = 48;

/// One parsed JSON-RPC message, borrowing from the buffer it was parsed from.
#[derive(Debug)]
pub enum Message<'a> {
    /// A request: expects exactly one response with the same `id`.
    Request {
        /// String or integer, exactly as sent (never `null`).
        id: &'a RawValue,
        /// Method name, borrowed unless it contained escapes.
        method: Cow<'a, str>,
        /// The `params` object, or `None` when absent or `null`.
        params: Option<&'a RawValue>,
    },
    /// A notification: no `id`, never answered.
    Notification {
        /// Method name, borrowed unless it contained escapes.
        method: Cow<'a, str>,
        /// The `params` object, or `None` when absent or `null`.
        params: Option<&'a RawValue>,
    },
    /// A response to a request this side sent.
    Response {
        /// The request's id; `None` only for an error response whose id was absent or `null`
        /// (the sender could not read the request's id).
        id: Option<&'a RawValue>,
        /// The `result` or the `error` member, raw.
        outcome: Outcome<'a>,
    },
}

/// The payload of a [`Message::Response`].
#[derive(Debug)]
pub enum Outcome<'a> {
    /// `result`: always a JSON object.
    Result(&'a RawValue),
    /// `error`: an object with an integer `code` and a string `message`.
    Error(&'a RawValue),
}

impl Outcome<'_> {
    /// What the response answered: its result, or its error object as an [`RpcError`]
    /// (`code`, `message` and any `data`); `Err` when the error object does not read as one.
    pub fn answer(&self) -> Result<Result<Box<RawValue>, RpcError>, serde_json::Error> {
        match self {
            Outcome::Result(result) => Ok(Ok((*result).to_owned())),
            Outcome::Error(error) => {
                #[derive(Deserialize)]
                struct Error<'a> {
                    code: i32,
                    message: String,
                    #[serde(borrow, default)]
                    data: Option<&'a RawValue>,
                }
                let error: Error<'_> = serde_json::from_str(error.get())?;
                let mut rpc = RpcError::new(error.code, error.message);
                if let Some(data) = error.data {
                    rpc = rpc.with_data(data.to_owned());
                }
                Ok(Err(rpc))
            }
        }
    }
}

/// The answer in `message` when it is the response to request `id` (JSON text); an error
/// object that does not read as one is an internal error. `Err` for a message nesting deeper
/// than `depth_max`, which might be that response.
pub fn answer_to<'m>(
    message: &'m [u8],
    id: &[u8],
    depth_max: u32,
) -> Result<Option<Result<Box<RawValue>, RpcError>>, EnvelopeError<'m>> {
    match parse(message, depth_max) {
        Ok(Message::Response {
            id: Some(got),
            outcome,
        }) if got.get().as_bytes() == id => Ok(Some(outcome.answer().unwrap_or_else(|e| {
            Err(RpcError::new(
                INTERNAL_ERROR,
                format!("unreadable error object: {e}"),
            ))
        }))),
        Err(error) if error.kind() == EnvelopeErrorKind::TooDeep => Err(error),
        _ => Ok(None),
    }
}

/// What was wrong with a message that could not be parsed as JSON-RPC.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvelopeErrorKind {
    /// Not JSON: syntax error, truncated input, trailing data, invalid UTF-8.
    Parse,
    /// A JSON array, i.e. a batch. MCP removed batching in 2025-06-18; refused in every era.
    Batch,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// `jsonrpc` missing or not exactly `"2.0"`.
    Version,
    /// `id` not a string or integer, `null` on a request, or missing on a result response.
    Id,
    /// `method` not a string, or empty.
    Method,
    /// `params` present but not an object.
    Params,
    /// Members that make no request, notification or response: `method` together with `result`
    /// or `error`, both `result` and `error`, none of the three, a duplicated member, or a
    /// `result`/`error` of the wrong shape.
    Shape,
    /// Objects and arrays nested deeper than `limits.json_depth_max`.
    TooDeep,
}

impl EnvelopeErrorKind {
    /// Fixed, low-cardinality label for counters and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Parse => "parse",
            Self::Batch => "batch",
            Self::NotAnObject => "not_an_object",
            Self::Version => "version",
            Self::Id => "id",
            Self::Method => "method",
            Self::Params => "params",
            Self::Shape => "shape",
            Self::TooDeep => "too_deep",
        }
    }

    /// The JSON-RPC error code the answer carries: -32700 for `Parse`, -32600 otherwise.
    pub fn code(self) -> i32 {
        match self {
            Self::Parse => PARSE_ERROR,
            _ => INVALID_REQUEST,
        }
    }
}

/// A message that is not valid JSON-RPC, with a message naming what was wrong and, when it could
/// be read, the request id the error response must carry.
#[derive(Debug)]
pub struct EnvelopeError<'a> {
    kind: EnvelopeErrorKind,
    message: String,
    id: Option<&'a RawValue>,
    response: bool,
}

impl<'a> EnvelopeError<'a> {
    fn new(kind: EnvelopeErrorKind, message: String, id: Option<&'a RawValue>) -> Self {
        Self {
            kind,
            message,
            id,
            response: false,
        }
    }

    /// A message nesting deeper than `depth_max`, in its member `key` when known; `before`,
    /// the members read ahead of it, may hold its id.
    fn too_deep(depth_max: u32, key: Option<&str>, before: &scan::MemberList<'a>) -> Self {
        let id = before
            .iter()
            .rev()
            .find(|(k, _)| k == "id")
            .map(|(_, id)| *id)
            .filter(|id| check_id(id).is_ok());
        // Only the envelope's own names are echoed: any other key is the sender's text.
        let place = match key {
            Some(key @ ("params" | "result" | "error" | "id" | "method" | "jsonrpc")) => {
                format!(" in its \"{key}\" member")
            }
            Some(_) => " in a member".to_owned(),
            None => String::new(),
        };
        let message = format!(
            "the message nests objects and arrays deeper than limits.json_depth_max \
             ({depth_max} levels){place}"
        );
        Self {
            kind: EnvelopeErrorKind::TooDeep,
            message,
            id,
            response: matches!(key, Some("result" | "error")),
        }
    }

    /// Which rule the message broke.
    pub fn kind(&self) -> EnvelopeErrorKind {
        self.kind
    }

    /// Human-readable, lowercase, names the member and the offending value.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message's `id` if it was present and valid, for the error response. For a message
    /// refused as too deep, only an `id` that came before the deep member was read.
    pub fn id(&self) -> Option<&'a RawValue> {
        self.id
    }

    /// Whether a message refused as too deep reads as a response: its `result` or `error` is
    /// what nests too deep. With an [`EnvelopeError::id`], a request may be waiting for it.
    pub fn is_response(&self) -> bool {
        self.response
    }

    /// -32700 or -32600.
    pub fn code(&self) -> i32 {
        self.kind.code()
    }

    /// Appends the JSON-RPC error response for this error.
    pub fn write_response(&self, out: &mut Vec<u8>) {
        write_error(out, self.id, self.code(), &self.message, None);
    }
}

impl fmt::Display for EnvelopeError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EnvelopeError<'_> {}

/// A JSON-RPC error object to send back: what a handler returns instead of a result.
#[derive(Clone, Debug)]
pub struct RpcError {
    /// One of the code constants of this module, or an application code outside
    /// -32768..=-32000.
    pub code: i32,
    /// One concise, lowercase sentence naming what was wrong.
    pub message: String,
    /// Optional structured detail (`{"uri": ...}`, `{"supported": [...], "requested": ...}`).
    pub data: Option<Box<RawValue>>,
}

impl RpcError {
    /// An error without `data`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// -32602 with `message`.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }

    /// -32601 naming `method`.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(METHOD_NOT_FOUND, format!("method not found: {method}"))
    }

    /// Attaches `data`.
    pub fn with_data(mut self, data: Box<RawValue>) -> Self {
        self.data = Some(data);
        self
    }

    /// Appends the error response for request `id` (`null` when `None`).
    pub fn write_response(&self, out: &mut Vec<u8>, id: Option<&RawValue>) {
        write_error(out, id, self.code, &self.message, self.data.as_deref());
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for RpcError {}

/// The top-level members of a message, all raw. `present` keeps an explicit `null` as
/// `Some("null")` so that "absent" and "null" stay distinguishable.
#[derive(Deserialize, Default)]
struct RawEnvelope<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

impl<'a> RawEnvelope<'a> {
    /// The envelope of `text` by [`scan::object_members`]; `Ok(None)` for text that serde_json
    /// reads instead (see [`parse`]).
    fn scan(text: &'a str, depth_max: u32) -> Result<Option<RawEnvelope<'a>>, EnvelopeError<'a>> {
        let members = match scan::object_members(text, depth_max) {
            Ok(members) => members,
            Err(scan::Refusal::Invalid) => return Ok(None),
            Err(scan::Refusal::TooDeep(deep)) => {
                return Err(EnvelopeError::too_deep(
                    depth_max,
                    Some(&deep.key),
                    &deep.before,
                ))
            }
        };
        let mut envelope = RawEnvelope::default();
        for (key, value) in members {
            let slot = match key.as_ref() {
                "jsonrpc" => &mut envelope.jsonrpc,
                "id" => &mut envelope.id,
                "method" => &mut envelope.method,
                "params" => &mut envelope.params,
                "result" => &mut envelope.result,
                "error" => &mut envelope.error,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Ok(None);
            }
        }
        Ok(Some(envelope))
    }
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

/// Parses one JSON-RPC message from `bytes` (one HTTP body, one stdio line, one event), whose
/// objects and arrays nest at most `depth_max` deep (`limits.json_depth_max`; the message's own
/// object counts as one).
pub fn parse(bytes: &[u8], depth_max: u32) -> Result<Message<'_>, EnvelopeError<'_>> {
    if first_byte(bytes) != Some(b'{') {
        return Err(refuse_non_object(bytes));
    }
    // One scan of UTF-8 text reads a well-formed message; serde_json reads the rest (bytes
    // that are not UTF-8, invalid JSON, a repeated member) and names what is wrong with it.
    let text = std::str::from_utf8(bytes).ok();
    if let Some(text) = text {
        if let Some(envelope) = RawEnvelope::scan(text, depth_max)? {
            return classify(envelope);
        }
    } else if scan::nests_deeper(bytes, depth_max) {
        return Err(EnvelopeError::too_deep(
            depth_max,
            None,
            &scan::MemberList::new(),
        ));
    }
    let envelope: Result<RawEnvelope<'_>, _> = match text {
        Some(text) => serde_json::from_str(text),
        None => serde_json::from_slice(bytes),
    };
    let envelope = envelope.map_err(|e| {
        let kind = if e.is_data() {
            EnvelopeErrorKind::Shape
        } else {
            EnvelopeErrorKind::Parse
        };
        EnvelopeError::new(kind, format!("invalid json-rpc message: {e}"), None)
    })?;
    classify(envelope)
}

fn refuse_non_object(bytes: &[u8]) -> EnvelopeError<'_> {
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return EnvelopeError::new(EnvelopeErrorKind::Parse, format!("invalid json: {e}"), None);
    }
    if first_byte(bytes) == Some(b'[') {
        let message = "batches are not supported: send one json-rpc message per request \
                       (batching was removed in mcp 2025-06-18)";
        return EnvelopeError::new(EnvelopeErrorKind::Batch, message.to_owned(), None);
    }
    let kind = match first_byte(bytes) {
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    };
    let message = format!("a json-rpc message must be a json object, got {kind}");
    EnvelopeError::new(EnvelopeErrorKind::NotAnObject, message, None)
}

fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

fn classify(envelope: RawEnvelope<'_>) -> Result<Message<'_>, EnvelopeError<'_>> {
    use EnvelopeErrorKind as Kind;
    let readable_id = envelope.id.filter(|id| check_id(id).is_ok());
    let fail = |kind, message| EnvelopeError::new(kind, message, readable_id);
    check_version(envelope.jsonrpc).map_err(|m| fail(Kind::Version, m))?;
    match (envelope.method, envelope.result, envelope.error) {
        (Some(method), None, None) => {
            let method = check_method(method).map_err(|m| fail(Kind::Method, m))?;
            let params = check_params(envelope.params).map_err(|m| fail(Kind::Params, m))?;
            match envelope.id {
                None => Ok(Message::Notification { method, params }),
                Some(id) => {
                    check_id(id).map_err(|m| fail(Kind::Id, format!("request {m}")))?;
                    Ok(Message::Request { id, method, params })
                }
            }
        }
        (Some(_), _, _) => Err(fail(
            Kind::Shape,
            "a message with \"method\" must not carry \"result\" or \"error\"".to_owned(),
        )),
        (None, Some(result), None) => {
            let id = envelope.id.ok_or_else(|| {
                fail(
                    Kind::Id,
                    "a result response must carry an \"id\"".to_owned(),
                )
            })?;
            check_id(id).map_err(|m| fail(Kind::Id, format!("response {m}")))?;
            check_result(result).map_err(|m| fail(Kind::Shape, m))?;
            let outcome = Outcome::Result(result);
            Ok(Message::Response {
                id: Some(id),
                outcome,
            })
        }
        (None, None, Some(error)) => {
            let id = envelope.id.filter(|id| id.get() != "null");
            if let Some(id) = id {
                check_id(id).map_err(|m| fail(Kind::Id, format!("response {m}")))?;
            }
            check_error_object(error).map_err(|m| fail(Kind::Shape, m))?;
            let outcome = Outcome::Error(error);
            Ok(Message::Response { id, outcome })
        }
        (None, Some(_), Some(_)) => Err(fail(
            Kind::Shape,
            "a response must carry \"result\" or \"error\", not both".to_owned(),
        )),
        (None, None, None) => Err(fail(
            Kind::Shape,
            "a message needs \"method\" (request, notification) or \"result\"/\"error\" (response)"
                .to_owned(),
        )),
    }
}

fn check_version(jsonrpc: Option<&RawValue>) -> Result<(), String> {
    match jsonrpc {
        None => Err("\"jsonrpc\" is missing; it must be \"2.0\"".to_owned()),
        Some(v) if v.get() == "\"2.0\"" => Ok(()),
        Some(v) => Err(format!("\"jsonrpc\" must be \"2.0\", got {}", preview(v))),
    }
}

/// `Ok` for a string or an integer (no fraction, no exponent).
fn check_id(id: &RawValue) -> Result<(), String> {
    let text = id.get();
    let digits = text.strip_prefix('-').unwrap_or(text);
    let is_integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    if text.starts_with('"') || is_integer {
        return Ok(());
    }
    Err(format!(
        "\"id\" must be a string or integer, got {} {}",
        json_kind(id),
        preview(id)
    ))
}

fn check_method(method: &RawValue) -> Result<Cow<'_, str>, String> {
    let Some(name) = raw_str(method) else {
        return Err(format!(
            "\"method\" must be a string, got {} {}",
            json_kind(method),
            preview(method)
        ));
    };
    if name.is_empty() {
        return Err("\"method\" must not be empty".to_owned());
    }
    Ok(name)
}

/// `null` params count as absent; anything else must be an object (MCP params are named).
fn check_params(params: Option<&RawValue>) -> Result<Option<&RawValue>, String> {
    match params {
        Some(p) if p.get() == "null" => Ok(None),
        Some(p) if json_kind(p) != "object" => Err(format!(
            "\"params\" must be an object, got {} {}",
            json_kind(p),
            preview(p)
        )),
        other => Ok(other),
    }
}

fn check_result(result: &RawValue) -> Result<(), String> {
    if json_kind(result) == "object" {
        return Ok(());
    }
    Err(format!(
        "\"result\" must be an object, got {} {}",
        json_kind(result),
        preview(result)
    ))
}

#[derive(Deserialize)]
struct RawErrorObject<'a> {
    #[serde(borrow, default, deserialize_with = "present")]
    code: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    message: Option<&'a RawValue>,
}

fn check_error_object(error: &RawValue) -> Result<(), String> {
    if json_kind(error) != "object" {
        return Err(format!(
            "\"error\" must be an object, got {} {}",
            json_kind(error),
            preview(error)
        ));
    }
    let fields: RawErrorObject<'_> = serde_json::from_str(error.get())
        .map_err(|e| format!("\"error\" is not a valid error object: {e}"))?;
    match fields.code {
        Some(code) if code.get().parse::<i64>().is_ok() => {}
        Some(code) => {
            return Err(format!(
                "\"error.code\" must be an integer, got {}",
                preview(code)
            ))
        }
        None => return Err("\"error.code\" is missing".to_owned()),
    }
    match fields.message {
        Some(message) if json_kind(message) == "string" => Ok(()),
        Some(message) => Err(format!(
            "\"error.message\" must be a string, got {}",
            preview(message)
        )),
        None => Err("\"error.message\" is missing".to_owned()),
    }
}

/// The JSON type of a raw value (`"object"`, `"array"`, `"string"`, `"number"`, `"boolean"`,
/// `"null"`), read from its first byte: serde_json has already validated the value.
pub fn json_kind(raw: &RawValue) -> &'static str {
    match raw.get().as_bytes().first() {
        Some(b'{') => "object",
        Some(b'[') => "array",
        Some(b'"') => "string",
        Some(b't' | b'f') => "boolean",
        Some(b'n') => "null",
        _ => "number",
    }
}

/// The raw JSON text of `raw` for an error message, cut to `PREVIEW_BYTES_MAX` bytes on a
/// character boundary.
pub fn preview(raw: &RawValue) -> String {
    let text = raw.get();
    if text.len() <= PREVIEW_BYTES_MAX {
        return text.to_owned();
    }
    let mut end = PREVIEW_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The string a raw JSON string holds: borrowed when it has no escapes, decoded otherwise.
/// `None` when `raw` is not a string.
pub fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// Appends `{"jsonrpc":"2.0","id":<id>,"result":<result>}`.
pub fn write_result(out: &mut Vec<u8>, id: &RawValue, result: &RawValue) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":");
    out.extend_from_slice(result.get().as_bytes());
    out.push(b'}');
}

/// A result response as a new buffer.
pub fn result_bytes(id: &RawValue, result: &RawValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + id.get().len() + result.get().len());
    write_result(&mut out, id, result);
    out
}

/// Appends a result response for a session-era client: like [`write_result`], but a
/// stateless-era upstream's top-level `"resultType":"complete"` is left out (that era does not
/// have the member; every other member is copied as it came). `Err` (nothing written) names the
/// `resultType` when it asks for something a session-era client cannot give
/// (`input_required`).
pub fn write_session_era_result(
    out: &mut Vec<u8>,
    id: &RawValue,
    result: &RawValue,
) -> Result<(), String> {
    let members = Members::read(result);
    let result_type = members.as_ref().and_then(|m| m.get("resultType"));
    match (result_type.map(RawValue::get), members) {
        (Some("\"complete\""), Some(members)) => {
            out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
            out.extend_from_slice(id.get().as_bytes());
            out.extend_from_slice(b",\"result\":{");
            let mut first = true;
            for (key, value) in members.iter().filter(|(key, _)| *key != "resultType") {
                member_key(out, key, &mut first);
                out.extend_from_slice(value.get().as_bytes());
            }
            out.extend_from_slice(b"}}");
            Ok(())
        }
        (Some(other), _) => Err(format!(
            "the upstream answered with resultType {other}, which needs a client of protocol \
             version 2026-07-28"
        )),
        (None, _) => {
            write_result(out, id, result);
            Ok(())
        }
    }
}

/// Appends a result response for a stateless-era (2026-07-28) client: like [`write_result`], but
/// when `result` is an object without a top-level `resultType` (an answer from a session-era
/// upstream, or from the built-in server) it adds `"resultType":"complete"` as the first member.
/// A result that already has one is copied unchanged.
pub fn write_complete_result(out: &mut Vec<u8>, id: &RawValue, result: &RawValue) {
    let text = result.get();
    // A result that is not an object cannot take a member; it is copied as it is.
    let has_result_type = Members::read(result).is_none_or(|m| m.get("resultType").is_some());
    let Some(members) = text.strip_prefix('{').filter(|_| !has_result_type) else {
        write_result(out, id, result);
        return;
    };
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.get().as_bytes());
    out.extend_from_slice(b",\"result\":{\"resultType\":\"complete\"");
    if !members.trim_start().starts_with('}') {
        out.push(b',');
    }
    out.extend_from_slice(members.as_bytes());
    out.push(b'}');
}

/// Appends `{"jsonrpc":"2.0","id":<id or null>,"error":{"code":..,"message":..,"data":..}}`.
pub fn write_error(
    out: &mut Vec<u8>,
    id: Option<&RawValue>,
    code: i32,
    message: &str,
    data: Option<&RawValue>,
) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id.map_or("null", RawValue::get).as_bytes());
    out.extend_from_slice(b",\"error\":{\"code\":");
    out.extend_from_slice(code.to_string().as_bytes());
    out.extend_from_slice(b",\"message\":");
    write_json_str(out, message);
    if let Some(data) = data {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(data.get().as_bytes());
    }
    out.extend_from_slice(b"}}");
}

/// An error response as a new buffer.
pub fn error_bytes(
    id: Option<&RawValue>,
    code: i32,
    message: &str,
    data: Option<&RawValue>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + message.len());
    write_error(&mut out, id, code, message, data);
    out
}

/// Appends `{"jsonrpc":"2.0","id":<id>,"method":<method>,"params":<params>}`: `id` and
/// `params` JSON text (`params` omitted if `None`).
pub fn write_request(out: &mut Vec<u8>, id: &[u8], method: &str, params: Option<&[u8]>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    out.extend_from_slice(id);
    out.extend_from_slice(b",\"method\":");
    write_json_str(out, method);
    if let Some(params) = params {
        out.extend_from_slice(b",\"params\":");
        out.extend_from_slice(params);
    }
    out.push(b'}');
}

/// A request as a new buffer.
pub fn request_bytes(id: &[u8], method: &str, params: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + id.len() + method.len() + params.map_or(0, <[u8]>::len));
    write_request(&mut out, id, method, params);
    out
}

/// A request whose `params` are a `serde_json::Value` (the gateway's own requests).
pub fn request_value_bytes(id: &[u8], method: &str, params: Option<&serde_json::Value>) -> Vec<u8> {
    let params = params.map(value_to_raw);
    request_bytes(id, method, params.as_ref().map(|p| p.get().as_bytes()))
}

/// Appends `{"jsonrpc":"2.0","method":<method>,"params":<params>}` (`params` omitted if `None`).
pub fn write_notification(out: &mut Vec<u8>, method: &str, params: Option<&RawValue>) {
    out.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"method\":");
    write_json_str(out, method);
    if let Some(params) = params {
        out.extend_from_slice(b",\"params\":");
        out.extend_from_slice(params.get().as_bytes());
    }
    out.push(b'}');
}

/// A notification as a new buffer.
pub fn notification_bytes(method: &str, params: Option<&RawValue>) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + method.len() + params.map_or(0, |p| p.get().len()));
    write_notification(&mut out, method, params);
    out
}

/// The protocol fields of a request's `params._meta`, validated for type, still raw where the
/// gateway only forwards them.
#[derive(Debug, Default)]
pub struct Meta<'a> {
    /// `progressToken`: a string or integer.
    pub progress_token: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/protocolVersion` (not checked against the supported list here).
    pub protocol_version: Option<Cow<'a, str>>,
    /// `io.modelcontextprotocol/clientCapabilities`: an object.
    pub client_capabilities: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/clientInfo`: an object.
    pub client_info: Option<&'a RawValue>,
    /// `io.modelcontextprotocol/logLevel`: one of [`LOG_LEVELS`].
    pub log_level: Option<&'static str>,
}

/// `params` as members; `None` without params, -32602 when they are not an object.
fn params_members(params: Option<&RawValue>) -> Result<Option<Members<'_>>, RpcError> {
    let Some(params) = params else {
        return Ok(None);
    };
    let not_object = || {
        RpcError::invalid_params(format!(
            "params must be an object, got {}",
            json_kind(params)
        ))
    };
    Members::read(params).ok_or_else(not_object).map(Some)
}

impl<'a> Meta<'a> {
    /// Reads `params._meta`. No `params` or no `_meta` gives an empty `Meta`; whether a field is
    /// required depends on the era and is the caller's decision. Errors (-32602) name the key:
    /// `_meta` not an object, `protocolVersion` not a string, capabilities or client info not
    /// objects, a progress token that is not a string or integer, an unknown log level. A key
    /// that repeats counts with its last value, as [`Members`] reads it.
    pub fn from_params(params: Option<&'a RawValue>) -> Result<Meta<'a>, RpcError> {
        Self::of_params(params_members(params)?.as_ref())
    }

    /// [`Meta::from_params`] and [`routing_name`] of `method` from one read of `params`.
    pub fn with_routing_name(
        method: &str,
        params: Option<&'a RawValue>,
    ) -> Result<(Meta<'a>, Option<Cow<'a, str>>), RpcError> {
        let params = params_members(params)?;
        let name = params.as_ref().and_then(|p| routing_member(method, p));
        Ok((Self::of_params(params.as_ref())?, name))
    }

    fn of_params(params: Option<&Members<'a>>) -> Result<Meta<'a>, RpcError> {
        let meta = params.and_then(|p| p.get("_meta"));
        Self::from_members(meta, meta.and_then(Members::read).as_ref())
    }

    /// [`Meta::from_params`] from members already read: `meta` is `params._meta` as sent,
    /// `members` its members when it is an object.
    pub fn from_members(
        meta: Option<&'a RawValue>,
        members: Option<&Members<'a>>,
    ) -> Result<Meta<'a>, RpcError> {
        let Some(meta) = meta else {
            return Ok(Meta::default());
        };
        check_meta_object(meta)?;
        let get = |key: &str| members.and_then(|m| m.get(key));
        Ok(Meta {
            progress_token: get(META_PROGRESS_TOKEN)
                .map(check_progress_token)
                .transpose()?,
            protocol_version: get(META_PROTOCOL_VERSION).map(meta_string).transpose()?,
            client_capabilities: get(META_CLIENT_CAPABILITIES)
                .map(|v| meta_object(META_CLIENT_CAPABILITIES, v))
                .transpose()?,
            client_info: get(META_CLIENT_INFO)
                .map(|v| meta_object(META_CLIENT_INFO, v))
                .transpose()?,
            log_level: get(META_LOG_LEVEL).map(check_log_level).transpose()?,
        })
    }
}

fn check_meta_object(meta: &RawValue) -> Result<(), RpcError> {
    if json_kind(meta) == "object" {
        return Ok(());
    }
    Err(RpcError::invalid_params(format!(
        "params._meta must be an object, got {}",
        json_kind(meta)
    )))
}

fn meta_type_error(key: &str, expected: &str, value: &RawValue) -> RpcError {
    RpcError::invalid_params(format!(
        "params._meta[\"{key}\"] must be {expected}, got {} {}",
        json_kind(value),
        preview(value)
    ))
}

fn check_progress_token(token: &RawValue) -> Result<&RawValue, RpcError> {
    match check_id(token) {
        Ok(()) => Ok(token),
        Err(_) => Err(meta_type_error(
            META_PROGRESS_TOKEN,
            "a string or integer",
            token,
        )),
    }
}

fn meta_string(value: &RawValue) -> Result<Cow<'_, str>, RpcError> {
    raw_str(value).ok_or_else(|| meta_type_error(META_PROTOCOL_VERSION, "a string", value))
}

fn meta_object<'v>(key: &str, value: &'v RawValue) -> Result<&'v RawValue, RpcError> {
    if json_kind(value) == "object" {
        return Ok(value);
    }
    Err(meta_type_error(key, "an object", value))
}

fn check_log_level(value: &RawValue) -> Result<&'static str, RpcError> {
    let level = raw_str(value).and_then(|s| LOG_LEVELS.into_iter().find(|l| *l == s));
    level.ok_or_else(|| {
        meta_type_error(
            META_LOG_LEVEL,
            "one of debug, info, notice, warning, error, critical, alert, emergency",
            value,
        )
    })
}

/// The name a request is routed by, as the stateless era mirrors it in `Mcp-Name`:
/// `params.name` for `tools/call` and `prompts/get`, `params.uri` for `resources/read`.
/// `None` for other methods, or when the member is missing or not a string.
pub fn routing_name<'a>(method: &str, params: Option<&'a RawValue>) -> Option<Cow<'a, str>> {
    routing_member(method, &params_members(params).ok()??)
}

fn routing_member<'a>(method: &str, params: &Members<'a>) -> Option<Cow<'a, str>> {
    let member = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params.get(member).and_then(raw_str)
}

/// `value` as JSON text. A `Value` always prints as valid JSON (it holds no NaN or infinity,
/// its keys are strings), so the check `RawValue` makes cannot fail.
pub fn value_to_raw(value: &serde_json::Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a Value prints as valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The default `limits.json_depth_max`.
    const DEPTH_MAX: u32 = crate::config::bounds::JSON_DEPTH_MAX.default as u32;

    fn parse_str(text: &str) -> Result<Message<'_>, EnvelopeError<'_>> {
        parse(text.as_bytes(), DEPTH_MAX)
    }

    fn refusal(text: &str) -> (EnvelopeErrorKind, String, Option<String>) {
        let err = parse_str(text).expect_err(text);
        let id = err.id().map(|id| id.get().to_owned());
        (err.kind(), err.message().to_owned(), id)
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    fn json(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn parse_reads_request_borrowing_id_method_and_params() {
        let text = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo"}}"#;
        let Ok(Message::Request { id, method, params }) = parse_str(text) else {
            panic!("not a request");
        };
        assert_eq!(id.get(), "7");
        assert!(matches!(method, Cow::Borrowed("tools/call")));
        assert_eq!(params.unwrap().get(), r#"{"name":"echo"}"#);
    }

    #[test]
    fn parse_accepts_string_and_negative_integer_ids() {
        for id in [r#""abc""#, "-3", "0", "12345678901234567890"] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let Ok(Message::Request { id: got, .. }) = parse_str(&text) else {
                panic!("{text}");
            };
            assert_eq!(got.get(), id);
        }
    }

    #[test]
    fn parse_reads_notification_without_id_and_null_params_as_absent() {
        let text = r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":null}"#;
        let Ok(Message::Notification { method, params }) = parse_str(text) else {
            panic!("not a notification");
        };
        assert_eq!(method, "notifications/initialized");
        assert!(params.is_none());
    }

    #[test]
    fn parse_decodes_escaped_method() {
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"tools\/list"}"#;
        let Ok(Message::Request { method, .. }) = parse_str(text) else {
            panic!("not a request");
        };
        assert!(matches!(method, Cow::Owned(_)));
        assert_eq!(method, "tools/list");
    }

    #[test]
    fn parse_reads_result_and_error_responses() {
        let text = r#"{"jsonrpc":"2.0","id":"s-1","result":{"content":[]}}"#;
        let Ok(Message::Response {
            id,
            outcome: Outcome::Result(result),
        }) = parse_str(text)
        else {
            panic!("not a result");
        };
        assert_eq!(id.unwrap().get(), r#""s-1""#);
        assert_eq!(result.get(), r#"{"content":[]}"#);

        let text = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}"#;
        let Ok(Message::Response {
            id,
            outcome: Outcome::Error(error),
        }) = parse_str(text)
        else {
            panic!("not an error");
        };
        assert!(id.is_none());
        assert!(error.get().contains("-32700"));
    }

    #[test]
    fn parse_refuses_invalid_json_with_parse_error() {
        for text in ["", "{", r#"{"jsonrpc":"2.0""#, "{} trailing", "nope", "[1,"] {
            let err = parse_str(text).expect_err(text);
            assert_eq!(err.kind(), EnvelopeErrorKind::Parse, "{text:?}");
            assert_eq!(err.code(), PARSE_ERROR);
        }
        let err = parse(b"{\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}", DEPTH_MAX).unwrap_err();
        assert_eq!(err.kind(), EnvelopeErrorKind::Parse);
    }

    /// A request whose `params` hold arrays nesting the whole message `depth` deep.
    fn request_nested(depth: usize) -> String {
        let levels = depth - 2;
        let deep = format!("{}0{}", "[".repeat(levels), "]".repeat(levels));
        format!(r#"{{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{{"x":{deep}}}}}"#)
    }

    #[test]
    fn a_message_nesting_past_json_depth_max_is_refused_naming_the_limit() {
        let max = DEPTH_MAX as usize;
        for depth in [max - 1, max] {
            let text = request_nested(depth);
            assert!(
                matches!(parse_str(&text), Ok(Message::Request { .. })),
                "{depth}"
            );
        }
        let text = request_nested(max + 1);
        let error = parse_str(&text).unwrap_err();
        assert_eq!(error.kind(), EnvelopeErrorKind::TooDeep);
        assert_eq!(error.code(), INVALID_REQUEST);
        assert_eq!(
            error.message(),
            format!(
                "the message nests objects and arrays deeper than limits.json_depth_max \
                 ({DEPTH_MAX} levels) in its \"params\" member"
            )
        );
        // The id came first, so the answer can carry it; a request is not a response.
        assert_eq!(error.id().map(RawValue::get), Some("5"));
        assert!(!error.is_response());
        // A smaller limit refuses what the default takes.
        let text = request_nested(17);
        let error = parse(text.as_bytes(), 16).unwrap_err();
        assert!(error.message().contains("(16 levels)"), "{error}");

        let deep = format!("{}0{}", "[".repeat(max), "]".repeat(max));
        let answer = format!(r#"{{"id":"sgr-1","jsonrpc":"2.0","result":{{"x":{deep}}}}}"#);
        let error = parse_str(&answer).unwrap_err();
        assert!(error.is_response());
        assert_eq!(error.id().map(RawValue::get), Some(r#""sgr-1""#));
        // An id after the deep member is never reached; other keys are not echoed.
        let late_id = format!(r#"{{"result":{deep},"id":1}}"#);
        assert!(parse_str(&late_id).unwrap_err().id().is_none());
        let other = format!(r#"{{"{}":{deep}}}"#, "k".repeat(500));
        assert!(parse_str(&other)
            .unwrap_err()
            .message()
            .ends_with("in a member"));
        // Bytes that are not UTF-8 are held to the same limit before serde_json reads them.
        let mut bytes = request_nested(max + 1).into_bytes();
        bytes.splice(1..1, b"\"x\":\"\xff\",".iter().copied());
        let error = parse(&bytes, DEPTH_MAX).unwrap_err();
        assert_eq!(error.kind(), EnvelopeErrorKind::TooDeep, "{error}");
        let mut bytes = request_nested(max).into_bytes();
        bytes.splice(1..1, b"\"x\":\"\xff\",".iter().copied());
        assert!(matches!(
            parse(&bytes, DEPTH_MAX),
            Ok(Message::Request { .. })
        ));
    }

    #[test]
    fn the_envelope_scan_reads_what_serde_json_reads() {
        fn fields(e: &RawEnvelope<'_>) -> [Option<String>; 6] {
            [e.jsonrpc, e.id, e.method, e.params, e.result, e.error]
                .map(|f| f.map(|v| v.get().to_owned()))
        }
        for text in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","x":[1,{"y":null}]}}"#,
            r#" { "id" : "s-1" , "jsonrpc" : "2.0", "result" : {"content":[]} , "z": -0.5e3 } "#,
            r#"{"jsonrpc":"2.0","method":"notifications/x","params":null,"extra":{"id":2}}"#,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"m\n\"q\""}}"#,
            "{}",
        ] {
            let scanned = RawEnvelope::scan(text, DEPTH_MAX)
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("not scanned: {text}"));
            let read: RawEnvelope<'_> = serde_json::from_str(text).unwrap();
            assert_eq!(fields(&scanned), fields(&read), "{text}");
        }
        let repeated = r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#;
        assert!(matches!(RawEnvelope::scan(repeated, DEPTH_MAX), Ok(None)));
        let error = parse_str(repeated).unwrap_err();
        assert!(
            error.message().contains("duplicate field"),
            "{}",
            error.message()
        );
    }

    #[test]
    fn parse_checks_utf8_where_json_does() {
        let ignored = b"{\"jsonrpc\":\"2.0\",\"x\":\"\xff\",\"id\":1,\"method\":\"ping\"}";
        assert!(matches!(
            parse(ignored, DEPTH_MAX),
            Ok(Message::Request { .. })
        ));
        let in_method = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}";
        let error = parse(in_method, DEPTH_MAX).unwrap_err();
        assert_eq!(
            error.kind(),
            EnvelopeErrorKind::Parse,
            "{}",
            error.message()
        );
        let text = r#"{"jsonrpc":"2.0","id":1,"method":"télé","params":{"n":"é"}}"#;
        match parse_str(text) {
            Ok(Message::Request { method, params, .. }) => {
                assert_eq!(method, "télé");
                assert_eq!(params.unwrap().get(), r#"{"n":"é"}"#);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_refuses_batches_by_name() {
        let (kind, message, _) = refusal(r#" [{"jsonrpc":"2.0","id":1,"method":"ping"}]"#);
        assert_eq!(kind, EnvelopeErrorKind::Batch);
        assert!(
            message.starts_with("batches are not supported"),
            "{message}"
        );
        assert_eq!(kind.code(), INVALID_REQUEST);
    }

    #[test]
    fn parse_refuses_non_object_json() {
        for (text, kind) in [("\"x\"", "string"), ("42", "number"), ("null", "null")] {
            let (got, message, _) = refusal(text);
            assert_eq!(got, EnvelopeErrorKind::NotAnObject);
            assert!(message.ends_with(&format!("got {kind}")), "{message}");
        }
    }

    #[test]
    fn parse_refuses_wrong_or_missing_jsonrpc_version_keeping_the_id() {
        let (kind, message, id) = refusal(r#"{"jsonrpc":"1.0","id":5,"method":"ping"}"#);
        assert_eq!(kind, EnvelopeErrorKind::Version);
        assert_eq!(message, r#""jsonrpc" must be "2.0", got "1.0""#);
        assert_eq!(id.as_deref(), Some("5"));

        let (kind, message, _) = refusal(r#"{"jsonrpc":2.0,"id":5,"method":"ping"}"#);
        assert_eq!(kind, EnvelopeErrorKind::Version);
        assert_eq!(message, r#""jsonrpc" must be "2.0", got 2.0"#);

        let (kind, message, _) = refusal(r#"{"id":5,"method":"ping"}"#);
        assert_eq!(kind, EnvelopeErrorKind::Version);
        assert!(message.contains("missing"), "{message}");
    }

    #[test]
    fn parse_refuses_request_ids_that_are_not_string_or_integer() {
        for (id, kind) in [
            ("null", "null"),
            ("1.5", "number"),
            ("1e3", "number"),
            ("true", "boolean"),
            ("[1]", "array"),
            (r#"{"a":1}"#, "object"),
        ] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            let (got, message, reply_id) = refusal(&text);
            assert_eq!(got, EnvelopeErrorKind::Id, "{text}");
            assert_eq!(
                message,
                format!("request \"id\" must be a string or integer, got {kind} {id}")
            );
            assert_eq!(reply_id, None, "an unreadable id is answered with null");
        }
    }

    #[test]
    fn parse_refuses_bad_method() {
        let (kind, message, id) = refusal(r#"{"jsonrpc":"2.0","id":1,"method":3}"#);
        assert_eq!(kind, EnvelopeErrorKind::Method);
        assert_eq!(message, r#""method" must be a string, got number 3"#);
        assert_eq!(id.as_deref(), Some("1"));
        let (kind, message, _) = refusal(r#"{"jsonrpc":"2.0","id":1,"method":""}"#);
        assert_eq!(kind, EnvelopeErrorKind::Method);
        assert!(message.contains("must not be empty"));
    }

    #[test]
    fn parse_refuses_params_that_are_not_an_object() {
        for (params, kind) in [("[1,2]", "array"), ("\"x\"", "string"), ("3", "number")] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"m","params":{params}}}"#);
            let (got, message, _) = refusal(&text);
            assert_eq!(got, EnvelopeErrorKind::Params);
            assert_eq!(
                message,
                format!("\"params\" must be an object, got {kind} {params}")
            );
        }
    }

    #[test]
    fn parse_refuses_messages_that_are_both_or_neither() {
        let cases = [
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"m","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"m"}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":[]}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":"boom"}"#,
        ];
        for text in cases {
            let (kind, message, _) = refusal(text);
            assert_eq!(kind, EnvelopeErrorKind::Shape, "{text}: {message}");
            assert_eq!(kind.code(), INVALID_REQUEST);
        }
    }

    #[test]
    fn parse_refuses_result_response_without_id() {
        let (kind, message, _) = refusal(r#"{"jsonrpc":"2.0","result":{}}"#);
        assert_eq!(kind, EnvelopeErrorKind::Id);
        assert!(message.contains("must carry an \"id\""), "{message}");
    }

    #[test]
    fn error_messages_cut_long_values_at_preview_bytes_max() {
        let long = "é".repeat(200);
        let text = format!(r#"{{"jsonrpc":"{long}","id":1,"method":"m"}}"#);
        let (_, message, _) = refusal(&text);
        assert!(message.len() < 40 + PREVIEW_BYTES_MAX, "{}", message.len());
        assert!(message.ends_with("..."));
    }

    #[test]
    fn envelope_error_response_carries_readable_id_and_code() {
        let text = r#"{"jsonrpc":"1.0","id":"a","method":"m"}"#;
        let mut out = Vec::new();
        parse_str(text).unwrap_err().write_response(&mut out);
        let v = json(&out);
        assert_eq!(v["id"], "a");
        assert_eq!(v["error"]["code"], INVALID_REQUEST);
        assert_eq!(
            v["error"]["message"],
            r#""jsonrpc" must be "2.0", got "1.0""#
        );
    }

    #[test]
    fn answers_match_only_their_own_id() {
        let message = br#"{"jsonrpc":"2.0","id":7,"result":{"ok":true}}"#;
        assert!(answer_to(message, b"7", 2).unwrap().unwrap().is_ok());
        assert!(answer_to(message, b"8", 2).unwrap().is_none());
        let error = br#"{"jsonrpc":"2.0","id":"sg-1","error":{"code":-32602,"message":"no"}}"#;
        assert_eq!(
            answer_to(error, b"\"sg-1\"", 2)
                .unwrap()
                .unwrap()
                .unwrap_err()
                .code,
            -32602
        );
        // Too deep to read: whatever its id, the request it came for cannot take it.
        let too_deep = answer_to(message, b"8", 1).unwrap_err();
        assert_eq!(too_deep.kind(), EnvelopeErrorKind::TooDeep);
        assert!(answer_to(b"{\"id\":7", b"7", 1).unwrap().is_none());
    }

    #[test]
    fn result_bytes_is_a_valid_response() {
        let out = result_bytes(&raw("3"), &raw(r#"{"tools":[]}"#));
        assert_eq!(out, br#"{"jsonrpc":"2.0","id":3,"result":{"tools":[]}}"#);
        let Ok(Message::Response { .. }) = parse(&out, DEPTH_MAX) else {
            panic!("writer output does not parse");
        };
    }

    #[test]
    fn error_bytes_escapes_message_and_writes_null_id() {
        let message = "bad \"x\"\\\n\t\u{1}é";
        let out = error_bytes(None, INVALID_PARAMS, message, Some(&raw(r#"{"k":1}"#)));
        let v = json(&out);
        assert_eq!(v["jsonrpc"], "2.0");
        assert!(v["id"].is_null());
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], message);
        assert_eq!(v["error"]["data"]["k"], 1);
        let no_data = json(&error_bytes(Some(&raw("9")), -1, "m", None));
        assert!(no_data["error"].get("data").is_none());
        assert_eq!(no_data["id"], 9);
    }

    #[test]
    fn notification_bytes_omits_absent_params() {
        let out = notification_bytes("notifications/initialized", None);
        assert_eq!(
            out,
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#
        );
        let out = notification_bytes("notifications/progress", Some(&raw(r#"{"p":1}"#)));
        let Ok(Message::Notification { method, params }) = parse(&out, DEPTH_MAX) else {
            panic!("writer output does not parse");
        };
        assert_eq!(method, "notifications/progress");
        assert_eq!(params.unwrap().get(), r#"{"p":1}"#);
    }

    #[test]
    fn session_era_results_lose_a_complete_result_type_and_refuse_other_ones() {
        let id = raw("1");
        let written = |result: &str| {
            let mut out = Vec::new();
            write_session_era_result(&mut out, &id, &raw(result)).map(|()| out)
        };
        let plain = written(r#"{"content":[ ]}"#).unwrap();
        assert_eq!(
            plain,
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[ ]}}"#
        );
        let complete = written(r#"{"resultType":"complete","content":[],"n":1.50}"#).unwrap();
        assert_eq!(
            complete,
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"n":1.50}}"#
        );
        let nested = written(r#"{"inner":{"resultType":"input_required"}}"#).unwrap();
        assert_eq!(
            json(&nested)["result"]["inner"]["resultType"],
            "input_required"
        );
        let input = written(r#"{"resultType":"input_required"}"#);
        assert!(input.unwrap_err().contains("input_required"));
    }

    #[test]
    fn write_complete_result_adds_result_type_only_when_missing() {
        let id = raw("1");
        let mut out = Vec::new();
        write_complete_result(&mut out, &id, &raw(r#"{"tools":[]}"#));
        assert_eq!(json(&out)["result"]["resultType"], "complete");
        assert_eq!(json(&out)["result"]["tools"], serde_json::json!([]));

        out.clear();
        write_complete_result(&mut out, &id, &raw("{ }"));
        assert_eq!(
            json(&out)["result"],
            serde_json::json!({"resultType": "complete"})
        );

        out.clear();
        let input_required = raw(r#"{"resultType":"input_required","inputRequests":{}}"#);
        write_complete_result(&mut out, &id, &input_required);
        assert_eq!(json(&out)["result"]["resultType"], "input_required");

        out.clear();
        write_complete_result(&mut out, &id, &raw(r#"{"nested":{"resultType":"x"}}"#));
        assert_eq!(json(&out)["result"]["resultType"], "complete");
    }

    #[test]
    fn rpc_error_writes_its_data() {
        let err = RpcError::new(UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol version")
            .with_data(raw(
                r#"{"supported":["2026-07-28"],"requested":"1900-01-01"}"#,
            ));
        let mut out = Vec::new();
        err.write_response(&mut out, Some(&raw("\"r\"")));
        let v = json(&out);
        assert_eq!(v["id"], "r");
        assert_eq!(v["error"]["code"], -32022);
        assert_eq!(v["error"]["data"]["requested"], "1900-01-01");
        assert_eq!(
            RpcError::method_not_found("x/y").message,
            "method not found: x/y"
        );
    }

    #[test]
    fn meta_reads_protocol_fields() {
        let params = raw(r#"{"name":"echo","_meta":{"progressToken":"p1",
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{"sampling":{}},
            "io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"},
            "io.modelcontextprotocol/logLevel":"warning","com.example/x":[1]}}"#);
        let meta = Meta::from_params(Some(&params)).unwrap();
        assert_eq!(meta.progress_token.unwrap().get(), r#""p1""#);
        assert_eq!(meta.protocol_version.as_deref(), Some("2026-07-28"));
        assert_eq!(
            meta.client_capabilities.unwrap().get(),
            r#"{"sampling":{}}"#
        );
        assert_eq!(
            meta.client_info.unwrap().get(),
            r#"{"name":"c","version":"1"}"#
        );
        assert_eq!(meta.log_level, Some("warning"));
    }

    #[test]
    fn meta_is_empty_without_params_or_meta() {
        let meta = Meta::from_params(None).unwrap();
        assert!(meta.protocol_version.is_none() && meta.client_capabilities.is_none());
        let params = raw(r#"{"cursor":"c"}"#);
        let meta = Meta::from_params(Some(&params)).unwrap();
        assert!(meta.progress_token.is_none() && meta.log_level.is_none());
    }

    #[test]
    fn meta_refuses_wrong_types_naming_the_key() {
        let cases = [
            (
                r#"{"_meta":[]}"#,
                "params._meta must be an object, got array",
            ),
            (
                r#"{"_meta":{"io.modelcontextprotocol/protocolVersion":20260728}}"#,
                "protocolVersion\"] must be a string, got number 20260728",
            ),
            (
                r#"{"_meta":{"io.modelcontextprotocol/clientCapabilities":null}}"#,
                "clientCapabilities\"] must be an object, got null",
            ),
            (
                r#"{"_meta":{"progressToken":1.5}}"#,
                "progressToken\"] must be a string or integer, got number 1.5",
            ),
            (
                r#"{"_meta":{"io.modelcontextprotocol/logLevel":"loud"}}"#,
                "logLevel\"] must be one of debug",
            ),
        ];
        for (params, expected) in cases {
            let err = Meta::from_params(Some(&raw(params))).unwrap_err();
            assert_eq!(err.code, INVALID_PARAMS);
            assert!(err.message.contains(expected), "{params}: {}", err.message);
        }
    }

    #[test]
    fn routing_name_reads_name_or_uri_by_method() {
        let params = raw(r#"{"name":"echo","uri":"demo://readme","arguments":{"name":"x"}}"#);
        assert_eq!(
            routing_name("tools/call", Some(&params)).as_deref(),
            Some("echo")
        );
        assert_eq!(
            routing_name("prompts/get", Some(&params)).as_deref(),
            Some("echo")
        );
        assert_eq!(
            routing_name("resources/read", Some(&params)).as_deref(),
            Some("demo://readme")
        );
        assert_eq!(routing_name("tools/list", Some(&params)), None);
        assert_eq!(routing_name("tools/call", None), None);
        assert_eq!(
            routing_name("tools/call", Some(&raw(r#"{"name":3}"#))),
            None
        );
        let escaped = raw(r#"{"name":"a\u00e9"}"#);
        assert_eq!(
            routing_name("tools/call", Some(&escaped)).as_deref(),
            Some("aé")
        );
    }
}
