//! One JSON-RPC message read from bytes: a request, a notification or a response, its members
//! raw and borrowed from the buffer, or an [`EnvelopeError`] naming what was wrong; and what a
//! response answered.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::codes::{RpcError, INTERNAL_ERROR, INVALID_REQUEST, PARSE_ERROR};
use super::writers::write_error;
use crate::wire::scan;

/// The only `jsonrpc` value accepted and written.
pub const JSONRPC_VERSION: &str = "2.0";

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

    /// [`Outcome::answer`], an error object that does not read as one answered as an internal
    /// error: what the gateway passes on when it must pass on something.
    pub fn answer_or_internal(&self) -> Result<Box<RawValue>, RpcError> {
        self.answer().unwrap_or_else(|e| {
            Err(RpcError::new(
                INTERNAL_ERROR,
                format!("unreadable error object: {e}"),
            ))
        })
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
        }) if got.get().as_bytes() == id => Ok(Some(outcome.answer_or_internal())),
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

    /// A message nesting deeper than `depth_max`, in its member `key` when known; `around`,
    /// the top-level members read around it in order, may hold its id.
    fn too_deep<'m>(
        depth_max: u32,
        key: Option<&str>,
        around: impl DoubleEndedIterator<Item = &'m (Cow<'a, str>, &'a RawValue)>,
    ) -> Self
    where
        'a: 'm,
    {
        let id = around
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
    /// refused as too deep, an `id` before the deep member, or after it when the rest of the
    /// message ends the object as JSON would (see [`scan::DeepMember`]).
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
                let around = deep.before.iter().chain(&deep.after);
                return Err(EnvelopeError::too_deep(depth_max, Some(&deep.key), around));
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

/// Deserialises a member that is present as its raw text, `null` included (a plain
/// `Option<&RawValue>` would turn `null` into `None`): for `deserialize_with` with
/// `default`, so that "absent" and "null" stay distinguishable.
pub fn present<'de, D: Deserializer<'de>>(member: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(member).map(Some)
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
        return Err(EnvelopeError::too_deep(depth_max, None, std::iter::empty()));
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
pub(super) fn check_id(id: &RawValue) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::jsonrpc::test_support::{json, DEPTH_MAX};

    fn parse_str(text: &str) -> Result<Message<'_>, EnvelopeError<'_>> {
        parse(text.as_bytes(), DEPTH_MAX)
    }

    fn refusal(text: &str) -> (EnvelopeErrorKind, String, Option<String>) {
        let err = parse_str(text).expect_err(text);
        let id = err.id().map(|id| id.get().to_owned());
        (err.kind(), err.message().to_owned(), id)
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
        // An id after the deep member is read by a skim of the rest, the last id counting as
        // JSON maps do; an invalid one is not echoed, nor one in a message that does not end
        // as JSON would; other keys are not echoed.
        let late_id = format!(r#"{{"jsonrpc":"2.0","result":{deep},"id":"sgr-2"}}"#);
        let error = parse_str(&late_id).unwrap_err();
        assert!(error.is_response());
        assert_eq!(error.id().map(RawValue::get), Some(r#""sgr-2""#));
        let two_ids = format!(r#"{{"id":1,"result":{deep},"id":2}}"#);
        assert_eq!(
            parse_str(&two_ids).unwrap_err().id().map(RawValue::get),
            Some("2")
        );
        for no_id in [
            format!(r#"{{"result":{deep},"id":true}}"#),
            format!(r#"{{"result":{deep},"id":1"#),
        ] {
            assert!(parse_str(&no_id).unwrap_err().id().is_none(), "{no_id}");
        }
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
    fn an_error_answer_keeps_its_data_and_an_unreadable_one_is_internal() {
        let answered = |message: &[u8]| match parse(message, 8) {
            Ok(Message::Response { outcome, .. }) => outcome.answer_or_internal(),
            other => panic!("not a response: {other:?}"),
        };
        let error = answered(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"declined","data":{"why":"user"}}}"#,
        )
        .unwrap_err();
        assert_eq!((error.code, error.message.as_str()), (-1, "declined"));
        assert_eq!(error.data.unwrap().get(), r#"{"why":"user"}"#);
        let unreadable =
            answered(br#"{"jsonrpc":"2.0","id":1,"error":{"code":99999999999,"message":"x"}}"#)
                .unwrap_err();
        assert_eq!(unreadable.code, INTERNAL_ERROR);
        assert!(unreadable.message.starts_with("unreadable error object"));
    }
}
