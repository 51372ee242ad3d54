//! The decode phase: the body read as one JSON-RPC message (within `limits.json_depth_max`),
//! and the era it belongs to.

use serde_json::value::RawValue;

use crate::mcp::transport::{Endpoint, HttpMethod, McpHeaders, McpRequest};
use crate::wire::jsonrpc::{self, EnvelopeError, Message, Meta};
use crate::wire::method::Method;
use crate::wire::version::ProtocolVersion;

/// A request as decoded: a session-era GET or DELETE (no body), a message of either era, or a
/// body that is not one message.
pub enum Decoded<'a> {
    /// Opens the session's event stream.
    Get,
    /// Ends the session.
    Delete,
    Session(Message<'a>),
    Stateless(Message<'a>),
    /// Refused by the scan; an answer among them may still settle the request it answers.
    Unreadable(EnvelopeError<'a>),
}

impl Decoded<'_> {
    /// The method of a request, for the request's context.
    pub fn method(&self) -> Option<Method> {
        match self {
            Decoded::Session(Message::Request { method, .. })
            | Decoded::Stateless(Message::Request { method, .. }) => Some(Method::parse(method)),
            _ => None,
        }
    }
}

impl Endpoint {
    /// Reads `request` as what it asks: a POST's body as one JSON-RPC message, sorted by era.
    pub fn decode<'a>(&self, request: &McpRequest<'a>) -> Decoded<'a> {
        match request.method {
            HttpMethod::Get => return Decoded::Get,
            HttpMethod::Delete => return Decoded::Delete,
            // The early checks let only POST through otherwise.
            HttpMethod::Post | HttpMethod::Other => {}
        }
        match jsonrpc::parse(request.body, self.config.limits.json_depth_max) {
            Ok(message) if is_stateless(&request.headers, &message) => Decoded::Stateless(message),
            Ok(message) => Decoded::Session(message),
            Err(error) => Decoded::Unreadable(error),
        }
    }
}

/// A request is stateless-era when it says so: the 2026-07-28 header, `server/discover`, or a
/// protocol version in `params._meta`.
fn is_stateless(h: &McpHeaders<'_>, message: &Message<'_>) -> bool {
    if h.protocol_version == Some(ProtocolVersion::V2026_07_28.as_str()) {
        return true;
    }
    match message {
        Message::Request { method, params, .. } | Message::Notification { method, params } => {
            Method::parse(method) == Method::ServerDiscover || meta_names_version(*params)
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

#[cfg(test)]
mod tests {
    use super::*;

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
