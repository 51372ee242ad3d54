//! The client a call comes from, as the call's upstream side needs it: where its answer and
//! notifications go, its own id, and what it declared it answers.

use serde_json::value::RawValue;

use crate::calls::inflight::ClientRoute;
use crate::wire::capabilities::InputCapabilities;

/// The client a request comes from: where its answer and notifications go, and its own id.
pub struct Client<'a> {
    pub route: ClientRoute,
    pub id: &'a RawValue,
    /// The session's `logging/setLevel`, for upstreams that take it per request.
    pub log_level: Option<&'static str>,
    /// The client reads requests on its call's event stream and answers them (the session
    /// era; a 2026-07-28 client gets `input_required` results instead).
    pub takes_requests: bool,
    /// `Mcp-Param-*` fields of the request, passed on to the upstream.
    pub param_headers: &'a [(String, String)],
    /// What a session-era client declared it answers (sampling, elicitation, roots): a
    /// 2026-07-28 upstream may ask it for those through the input bridge.
    pub input_capabilities: InputCapabilities,
}
