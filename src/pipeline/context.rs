//! What the phases decided about one request, written as they run and read by the log phase.

use crate::mcp::call::Era;
use crate::refusal::RefusalReason;
use crate::wire::method::Method;

/// One request's record: small and `Copy`, so it lives on the stack of the task that serves the
/// request, and crosses the mesh with a forwarded request and back with its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestContext {
    /// The shard whose connection the request arrived on.
    pub shard: u8,
    /// When the pipeline took the request, on the process-wide shard clock (ms).
    pub started_ms: u64,
    /// The JSON-RPC method of a request (`None` for GET, DELETE, notifications, answers).
    pub method: Option<Method>,
    pub era: Option<Era>,
    /// The shard that owns the request's session, when it is another than `shard`.
    pub owner: Option<u8>,
    /// The `[[upstreams]]` index the route phase chose.
    pub upstream: Option<u16>,
    /// Why the gateway refused the request, if it did.
    pub refusal: Option<RefusalReason>,
    /// The HTTP status of the answer, once written.
    pub status: Option<u16>,
}

impl RequestContext {
    pub fn new(shard: u8, started_ms: u64) -> RequestContext {
        RequestContext {
            shard,
            started_ms,
            method: None,
            era: None,
            owner: None,
            upstream: None,
            refusal: None,
            status: None,
        }
    }

    /// Takes what the owning shard decided for a forwarded request; where it arrived and when
    /// stay this shard's.
    pub fn decided_by_owner(&mut self, owner: &RequestContext) {
        *self = RequestContext {
            shard: self.shard,
            started_ms: self.started_ms,
            owner: self.owner,
            status: self.status,
            ..*owner
        };
    }
}
