//! `[limits]`: the client-facing connection, request and message limits.

use super::Checker;
use crate::config::bounds as b;
use crate::config::raw::RawLimits;
use crate::config::Limits;

impl Checker<'_> {
    pub(super) fn limits(&mut self, raw: &RawLimits) -> Limits {
        ranged!(self, "limits", raw, {
            connections_max: u32 = b::CONNECTIONS_MAX,
            header_bytes_max: u64 = b::HEADER_BYTES_MAX,
            headers_count_max: u32 = b::HEADERS_COUNT_MAX,
            request_body_bytes_max: u64 = b::REQUEST_BODY_BYTES_MAX,
            response_body_bytes_max: u64 = b::RESPONSE_BODY_BYTES_MAX,
            header_read_timeout_ms: u64 = b::HEADER_READ_TIMEOUT_MS,
            body_read_timeout_ms: u64 = b::BODY_READ_TIMEOUT_MS,
            keepalive_idle_timeout_ms: u64 = b::KEEPALIVE_IDLE_TIMEOUT_MS,
            mesh_messages_max: u32 = b::MESH_MESSAGES_MAX,
            forwarded_requests_max: u32 = b::FORWARDED_REQUESTS_MAX,
            sse_keepalive_interval_ms: u64 = b::SSE_KEEPALIVE_INTERVAL_MS,
            json_depth_max: u32 = b::JSON_DEPTH_MAX,
        });
        Limits {
            connections_max,
            header_bytes_max,
            headers_count_max,
            request_body_bytes_max,
            response_body_bytes_max,
            header_read_timeout_ms,
            body_read_timeout_ms,
            keepalive_idle_timeout_ms,
            mesh_messages_max,
            forwarded_requests_max,
            sse_keepalive_interval_ms,
            json_depth_max,
        }
    }
}
