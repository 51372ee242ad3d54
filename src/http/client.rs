//! HTTP/1.1 client codec for upstream servers: the request writer, the incremental response
//! parser and the Server-Sent Events reader (all I/O-free), and [`ClientConnection`], which runs
//! them over one socket under deadlines. Which connection to use, and when to open or close
//! one, is the upstream pool's business (`crate::upstream::pool`).
//!
//! Owns, per upstream connection: one input buffer, one output buffer and one
//! [`ResponseParser`] (header slots reused across responses); while an event stream is read,
//! one [`SseReader`]. All of it lives on the shard that owns the connection.
//!
//! Limits ([`ClientLimits`]): a response head (interim `1xx` heads included) is at most
//! `response_head_bytes_max` bytes with at most `response_headers_count_max` fields; a buffered
//! body (decoded, if chunked) is at most `response_body_bytes_max` bytes, refused at the head
//! when `Content-Length` already says more; its chunk framing and trailers together are at most
//! another `response_head_bytes_max`. An event stream has no total bound (it may run for
//! hours); each of its events, and each line, is at most `sse_event_bytes_max` bytes.
//!
//! Refuses (strict RFC 9112, the same rules as the server side): unparsable heads, obs-fold,
//! `Content-Length` together with `Transfer-Encoding`, differing or invalid `Content-Length`,
//! any transfer coding other than exactly `chunked`, `101 Switching Protocols` (never asked for),
//! and bodies that end before their framing says. A body without `Content-Length` or
//! `Transfer-Encoding` is read until the server closes, and the connection is not reused.

mod connection;
mod request;
mod response;
mod sse;

#[cfg(test)]
mod tests;

pub use connection::ClientConnection;
pub use request::write_request;
pub use response::{BodyFraming, BodyProgress, ResponseHead, ResponseParser};
pub use sse::{SseEvent, SseReader, SseStep};

use std::fmt;

/// How a response or a request was refused. `as_str` is a fixed, low-cardinality label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientErrorKind {
    /// The response is not HTTP/1.1 as RFC 9112 and these rules read it.
    Malformed,
    /// A head, body, event or line exceeded its limit; the message names the limit.
    TooLarge,
    /// The connection closed before the response was whole.
    ClosedEarly,
    /// The request to write was refused (a framing header, a value that would split the head).
    InvalidRequest,
    /// The deadline passed before the request was written or the response read.
    Timeout,
}

impl ClientErrorKind {
    /// Fixed label for counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed_response",
            Self::TooLarge => "response_too_large",
            Self::ClosedEarly => "closed_early",
            Self::InvalidRequest => "invalid_request",
            Self::Timeout => "timeout",
        }
    }
}

/// A refused response or request: the kind and a lowercase message naming the value and the
/// limit or rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError {
    /// What went wrong, as a closed set.
    pub kind: ClientErrorKind,
    /// Names the offending value and the limit or rule.
    pub message: String,
}

impl ClientError {
    fn new(kind: ClientErrorKind, message: String) -> ClientError {
        ClientError { kind, message }
    }

    fn malformed(message: String) -> ClientError {
        ClientError::new(ClientErrorKind::Malformed, message)
    }

    fn too_large(message: String) -> ClientError {
        ClientError::new(ClientErrorKind::TooLarge, message)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for ClientError {}
