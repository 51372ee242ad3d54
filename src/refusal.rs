//! Every way shardgate turns work away, as one closed enum.
//!
//! Each refusal is counted per shard (`refusals_total{reason}` on `/status`) and maps to one HTTP
//! status here, so the mapping lives in a single place. Free text (which value, which limit) goes
//! in the response message, never in the reason label.

use std::cell::Cell;

/// Why a request or connection was refused. `as_str` is the fixed, low-cardinality label.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalReason {
    /// The request line or headers could not be parsed, or framing was ambiguous.
    MalformedHttp,
    /// Both `Content-Length` and `Transfer-Encoding` were present (request smuggling shape).
    AmbiguousFraming,
    /// A `Transfer-Encoding` other than `chunked`.
    UnsupportedTransferEncoding,
    /// Request headers exceeded `header_bytes_max` or `headers_count_max`.
    HeadersTooLarge,
    /// Request body exceeded `request_body_bytes_max`.
    BodyTooLarge,
    /// Headers did not arrive within `header_read_timeout_ms`.
    HeaderReadTimeout,
    /// The body did not arrive within `body_read_timeout_ms` of the end of the head.
    BodyReadTimeout,
    /// The shard already holds `connections_max` connections.
    ConnectionsFull,
    /// The admin listener already holds `admin.connections_max` connections.
    AdminConnectionsFull,
    /// The session table is at `sessions_max` even after retiring the oldest generation.
    SessionsFull,
    /// The cross-shard channel to the session's owner is full.
    MeshFull,
    /// `Origin` header not in the allow-list.
    OriginForbidden,
    /// `Host` header not one the listener answers to (DNS rebinding).
    HostForbidden,
    /// `Accept` does not list what the transport requires.
    NotAcceptable,
    /// Body was not a valid JSON-RPC message.
    InvalidJsonRpc,
    /// Body nested objects and arrays deeper than `limits.json_depth_max`.
    JsonTooDeep,
    /// `MCP-Protocol-Version` (or `_meta` version) not supported.
    UnsupportedProtocolVersion,
    /// A session-era request without `Mcp-Session-Id`.
    MissingSession,
    /// `Mcp-Session-Id` unknown, expired or deleted.
    UnknownSession,
    /// Stateless-era `Mcp-Method`/`Mcp-Name` header absent or not matching the body.
    HeaderMismatch,
    /// Stateless-era request without the required `_meta` fields.
    MissingMeta,
    /// HTTP method not allowed on this endpoint for this protocol era.
    MethodNotAllowed,
    /// Path is not the MCP endpoint.
    NotFound,
    /// Content-Type of the POST is not `application/json`.
    UnsupportedMediaType,
    /// `initialize` carried clientInfo and capabilities over `session_payload_bytes_max`.
    ClientInfoTooLarge,
    /// The gateway itself failed (random source, a shard gone); never the client's fault.
    Internal,
    /// An answer exceeded `response_body_bytes_max`; the client gets an error instead.
    ResponseTooLarge,
    /// The pending table is at `pending_max` for the shard or `pending_per_upstream_max` for
    /// the upstream, even after retiring its oldest generation.
    PendingFull,
    /// A call routed to an upstream that is down. Answered in the call: its JSON-RPC error
    /// names the upstream and why (as are the two below).
    UpstreamDown,
    /// A call routed to an upstream whose circuit breaker is open.
    BreakerOpen,
    /// A call whose upstream's connection pool had no connection free for it.
    PoolFull,
}

impl RefusalReason {
    /// Every reason, in declaration order; the index is the counter slot.
    pub const ALL: [RefusalReason; 31] = [
        Self::MalformedHttp,
        Self::AmbiguousFraming,
        Self::UnsupportedTransferEncoding,
        Self::HeadersTooLarge,
        Self::BodyTooLarge,
        Self::HeaderReadTimeout,
        Self::BodyReadTimeout,
        Self::ConnectionsFull,
        Self::AdminConnectionsFull,
        Self::SessionsFull,
        Self::MeshFull,
        Self::OriginForbidden,
        Self::HostForbidden,
        Self::NotAcceptable,
        Self::InvalidJsonRpc,
        Self::JsonTooDeep,
        Self::UnsupportedProtocolVersion,
        Self::MissingSession,
        Self::UnknownSession,
        Self::HeaderMismatch,
        Self::MissingMeta,
        Self::MethodNotAllowed,
        Self::NotFound,
        Self::UnsupportedMediaType,
        Self::ClientInfoTooLarge,
        Self::Internal,
        Self::ResponseTooLarge,
        Self::PendingFull,
        Self::UpstreamDown,
        Self::BreakerOpen,
        Self::PoolFull,
    ];

    /// Fixed label used in counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedHttp => "malformed_http",
            Self::AmbiguousFraming => "ambiguous_framing",
            Self::UnsupportedTransferEncoding => "unsupported_transfer_encoding",
            Self::HeadersTooLarge => "headers_too_large",
            Self::BodyTooLarge => "body_too_large",
            Self::HeaderReadTimeout => "header_read_timeout",
            Self::BodyReadTimeout => "body_read_timeout",
            Self::ConnectionsFull => "connections_full",
            Self::AdminConnectionsFull => "admin_connections_full",
            Self::SessionsFull => "sessions_full",
            Self::MeshFull => "mesh_full",
            Self::OriginForbidden => "origin_forbidden",
            Self::HostForbidden => "host_forbidden",
            Self::NotAcceptable => "not_acceptable",
            Self::InvalidJsonRpc => "invalid_jsonrpc",
            Self::JsonTooDeep => "json_too_deep",
            Self::UnsupportedProtocolVersion => "unsupported_protocol_version",
            Self::MissingSession => "missing_session",
            Self::UnknownSession => "unknown_session",
            Self::HeaderMismatch => "header_mismatch",
            Self::MissingMeta => "missing_meta",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ClientInfoTooLarge => "client_info_too_large",
            Self::Internal => "internal",
            Self::ResponseTooLarge => "response_too_large",
            Self::PendingFull => "pending_full",
            Self::UpstreamDown => "upstream_down",
            Self::BreakerOpen => "breaker_open",
            Self::PoolFull => "pool_full",
        }
    }

    /// The HTTP status this refusal is answered with. The upstream-side reasons (upstream
    /// down, breaker open, pool full) are answered inside the call, as its JSON-RPC error; their
    /// status is the overload one they would have at the door.
    pub fn http_status(self) -> u16 {
        match self {
            Self::MalformedHttp
            | Self::AmbiguousFraming
            | Self::InvalidJsonRpc
            | Self::JsonTooDeep
            | Self::UnsupportedProtocolVersion
            | Self::MissingSession
            | Self::HeaderMismatch
            | Self::MissingMeta
            | Self::ClientInfoTooLarge => 400,
            Self::OriginForbidden => 403,
            Self::NotFound | Self::UnknownSession => 404,
            Self::HostForbidden => 421,
            Self::MethodNotAllowed => 405,
            Self::NotAcceptable => 406,
            Self::HeaderReadTimeout | Self::BodyReadTimeout => 408,
            Self::BodyTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::HeadersTooLarge => 431,
            Self::Internal => 500,
            Self::UnsupportedTransferEncoding => 501,
            Self::ResponseTooLarge => 502,
            Self::ConnectionsFull
            | Self::AdminConnectionsFull
            | Self::SessionsFull
            | Self::MeshFull
            | Self::PendingFull
            | Self::UpstreamDown
            | Self::BreakerOpen
            | Self::PoolFull => 503,
        }
    }

    fn slot(self) -> usize {
        Self::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every reason is listed in ALL")
    }
}

/// Per-shard refusal counters. Shard-local (`Cell`), read by `/status`.
#[derive(Default)]
pub struct RefusalCounters {
    counts: [Cell<u64>; RefusalReason::ALL.len()],
}

impl RefusalCounters {
    /// Counts one refusal.
    pub fn count(&self, reason: RefusalReason) {
        let slot = &self.counts[reason.slot()];
        slot.set(slot.get() + 1);
    }

    /// How many times `reason` was counted on this shard.
    pub fn get(&self, reason: RefusalReason) -> u64 {
        self.counts[reason.slot()].get()
    }

    /// Non-zero counters as (label, count), for `/status`.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RefusalReason::ALL
            .iter()
            .map(|r| (r.as_str(), self.get(*r)))
            .filter(|(_, n)| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_distinct_label_and_a_client_or_overload_status() {
        let mut labels: Vec<_> = RefusalReason::ALL.iter().map(|r| r.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), RefusalReason::ALL.len());
        for r in RefusalReason::ALL {
            assert!((400..600).contains(&r.http_status()), "{r:?}");
        }
    }

    #[test]
    fn counters_count_per_reason() {
        let c = RefusalCounters::default();
        c.count(RefusalReason::BodyTooLarge);
        c.count(RefusalReason::BodyTooLarge);
        c.count(RefusalReason::MeshFull);
        assert_eq!(c.get(RefusalReason::BodyTooLarge), 2);
        assert_eq!(c.get(RefusalReason::MeshFull), 1);
        assert_eq!(c.get(RefusalReason::SessionsFull), 0);
        assert_eq!(c.nonzero().count(), 2);
    }
}
