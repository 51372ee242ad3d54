//! How a request to an upstream fails: a closed set of kinds, each error naming the upstream
//! URL and the limit or value at fault.

use std::fmt;

use crate::config::url::UpstreamUrl;
use crate::http::client::{ClientError, ClientErrorKind};

/// Why a request to an upstream failed, as a closed set; `as_str` is a fixed label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// The URL's host name did not resolve to an address.
    ResolveFailed,
    /// The connect was refused or failed.
    ConnectFailed,
    /// The connect did not complete within `connect_timeout_ms`.
    ConnectTimeout,
    /// Every connection was busy and the queue of waiters was full.
    PoolFull,
    /// The request's `timeout_ms` passed (waiting, writing, or reading the response).
    Timeout,
    /// The response broke RFC 9112 or the client codec's rules.
    MalformedResponse,
    /// The response head, body or an event exceeded its limit.
    ResponseTooLarge,
    /// The connection closed or failed before the response was whole.
    ClosedEarly,
    /// The request itself was refused before anything was sent.
    InvalidRequest,
}

impl UpstreamErrorKind {
    /// Fixed label for counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResolveFailed => "resolve_failed",
            Self::ConnectFailed => "connect_failed",
            Self::ConnectTimeout => "connect_timeout",
            Self::PoolFull => "pool_full",
            Self::Timeout => "timeout",
            Self::MalformedResponse => "malformed_response",
            Self::ResponseTooLarge => "response_too_large",
            Self::ClosedEarly => "closed_early",
            Self::InvalidRequest => "invalid_request",
        }
    }
}

/// A failed request: the kind and a lowercase message naming the upstream URL and the limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamError {
    /// What went wrong.
    pub kind: UpstreamErrorKind,
    /// Names the upstream URL, the value and the limit.
    pub message: String,
}

impl UpstreamError {
    pub(super) fn new(
        kind: UpstreamErrorKind,
        url: &UpstreamUrl,
        detail: fmt::Arguments<'_>,
    ) -> Self {
        UpstreamError {
            kind,
            message: format!("upstream {url}: {detail}"),
        }
    }

    /// The codec's `error` on a request to `url` that had `timeout_ms`.
    pub(super) fn from_client(
        error: ClientError,
        url: &UpstreamUrl,
        timeout_ms: u64,
    ) -> UpstreamError {
        let kind = match error.kind {
            ClientErrorKind::Malformed => UpstreamErrorKind::MalformedResponse,
            ClientErrorKind::TooLarge => UpstreamErrorKind::ResponseTooLarge,
            ClientErrorKind::ClosedEarly => UpstreamErrorKind::ClosedEarly,
            ClientErrorKind::InvalidRequest => UpstreamErrorKind::InvalidRequest,
            ClientErrorKind::Timeout => UpstreamErrorKind::Timeout,
        };
        if kind == UpstreamErrorKind::Timeout {
            let what = error.message;
            return UpstreamError::new(
                kind,
                url,
                format_args!("{what} within timeout_ms {timeout_ms}"),
            );
        }
        UpstreamError::new(kind, url, format_args!("{}", error.message))
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl std::error::Error for UpstreamError {}
