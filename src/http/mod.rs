//! HTTP/1.1 server codec: request framing on `httparse`, the per-connection loop and the response
//! writer (JSON bodies and SSE streams). The upstream client codec is [`client`]; both share the
//! chunked decoder and the input buffer.
//!
//! Owns, per connection: one input buffer, one output buffer and one [`RequestParser`]. All of it
//! lives on the shard that accepted the connection and is touched by no other (`!Send` futures).
//!
//! Limits ([`HttpLimits`]): the request head is at most `header_bytes_max` bytes with at most
//! `headers_count_max` fields; a body (decoded, if chunked) is at most `request_body_bytes_max`
//! bytes; chunk size lines, chunk extensions and trailers together are at most another
//! `header_bytes_max` bytes. So the input buffer never grows past
//! [`HttpLimits::input_buffer_bytes_max`]. Deadlines: the whole head within
//! `header_read_timeout_ms` of its first byte, the whole body within `body_read_timeout_ms` of
//! the end of the head, the next request's first byte within `keepalive_idle_timeout_ms`; each
//! waits on the shard's deadline wheel (`support::deadline`), so it is noticed at most one tick
//! late, never early.
//!
//! Refuses (strict RFC 9112), each counted and answered with a JSON-RPC error and
//! `Connection: close`: unparsable heads, obs-fold, a missing or repeated `Host` on HTTP/1.1,
//! `Content-Length` together with `Transfer-Encoding`, differing or invalid `Content-Length`,
//! any transfer coding other than exactly `chunked`, oversized heads, bodies or chunk framing,
//! and heads or bodies that arrive too slowly.

mod buffer;
pub mod client;
mod connection;
mod framing;
mod parse;
mod response;

#[cfg(test)]
mod connection_tests;

pub use connection::{
    refuse_connection, serve_connection, ConnectionEnd, Handler, Refusal,
    REFUSED_CONNECTION_BYTES_MAX,
};
pub use parse::{Parsed, Progress, Request, RequestParser, Waiting, CHUNK_LINE_BYTES_MAX};
pub use response::{reason_phrase, ResponseWriter, SseStream};

use crate::config::Config;
use crate::refusal::RefusalReason;
use std::fmt;

/// Per-connection HTTP limits, taken from the validated config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Bytes of request line plus header fields plus the blank line; also the budget for chunk
    /// framing and trailers of one chunked body.
    pub header_bytes_max: u32,
    /// Header fields in one request head (and in one trailer section).
    pub headers_count_max: u16,
    /// Bytes of one request body, after chunked decoding.
    pub request_body_bytes_max: u32,
    /// The whole head must arrive within this many ms of its first byte.
    pub header_read_timeout_ms: u64,
    /// The whole body must arrive within this many ms of the end of the head.
    pub body_read_timeout_ms: u64,
    /// A connection with no next request started within this many ms is closed silently; also
    /// how long one write may make no progress before the peer counts as gone.
    pub keepalive_idle_timeout_ms: u64,
}

impl HttpLimits {
    /// The codec's limits, from `[limits]`.
    pub fn from_config(config: &Config) -> HttpLimits {
        let l = &config.limits;
        HttpLimits {
            header_bytes_max: l.header_bytes_max as u32,
            headers_count_max: l.headers_count_max as u16,
            request_body_bytes_max: l.request_body_bytes_max as u32,
            header_read_timeout_ms: l.header_read_timeout_ms,
            body_read_timeout_ms: l.body_read_timeout_ms,
            keepalive_idle_timeout_ms: l.keepalive_idle_timeout_ms,
        }
    }

    /// The most bytes a connection's input buffer ever holds: one whole request on the wire.
    pub fn input_buffer_bytes_max(&self) -> u32 {
        let head = self.header_bytes_max;
        let body = self.request_body_bytes_max;
        // Chunk size lines, chunk extensions, chunk CRLFs and trailers share one head's budget.
        let chunk_framing = self.header_bytes_max;
        head.saturating_add(body).saturating_add(chunk_framing)
    }
}

/// A request the codec refuses: the counted reason and a message naming the value and the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpError {
    /// Counter label and HTTP status.
    pub reason: RefusalReason,
    /// Lowercase, names the offending value and the limit or rule.
    pub message: String,
}

impl HttpError {
    pub(crate) fn new(reason: RefusalReason, message: String) -> HttpError {
        HttpError { reason, message }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.message)
    }
}

impl std::error::Error for HttpError {}
