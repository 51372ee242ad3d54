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
//!
//! Files: [`envelope`] (the message types and [`parse`]), [`writers`] (the `write_*` and
//! `*_bytes` functions), [`codes`] (the error codes and [`RpcError`]) and [`meta`] (`_meta` and
//! the routing name). Everything is re-exported here, so callers name `jsonrpc::X`.

mod codes;
mod envelope;
mod meta;
#[cfg(test)]
mod test_support;
mod writers;

pub use codes::{
    RpcError, HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY, PARSE_ERROR, RESOURCE_NOT_FOUND,
    UNSUPPORTED_PROTOCOL_VERSION, URL_ELICITATION_REQUIRED,
};
pub use envelope::{
    answer_to, json_kind, parse, present, preview, raw_str, EnvelopeError, EnvelopeErrorKind,
    Message, Outcome, JSONRPC_VERSION, PREVIEW_BYTES_MAX,
};
pub use meta::{
    routing_name, Meta, LOG_LEVELS, META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_LOG_LEVEL,
    META_PROGRESS_TOKEN, META_PROTOCOL_VERSION,
};
pub use writers::{
    error_bytes, notification_bytes, request_bytes, request_value_bytes, result_bytes,
    value_to_raw, write_complete_result, write_error, write_notification, write_request,
    write_result, write_session_era_result,
};
