//! The JSON-RPC error codes MCP uses, and the error object a handler answers with instead of
//! a result ([`RpcError`]).

use std::fmt;

use serde_json::value::RawValue;

use super::writers::write_error;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::jsonrpc::test_support::{json, raw};

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
}
