//! A request the era's rules let through, as the router and the phases after it see it: its
//! era, its method, and the client it comes from.

use serde_json::value::RawValue;

use crate::calls::inflight::ClientRoute;
use crate::wire::capabilities::InputCapabilities;
use crate::wire::method::Method;
use crate::wire::params::CallParams;
use crate::wire::version::ProtocolVersion;

/// Which protocol era a request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// 2025-03-26 … 2025-11-25, with the version negotiated for the session.
    Session(ProtocolVersion),
    /// 2026-07-28: per-request `_meta`, no sessions; results carry `resultType`.
    Stateless,
}

/// A request the era's rules let through: who asks, in which era, and for what.
pub struct Call<'m> {
    pub era: Era,
    pub id: &'m RawValue,
    pub method: Method,
    /// The method as sent, which names an unknown one in its error.
    pub method_name: &'m str,
    pub params: Option<&'m RawValue>,
    /// A routed method's params, read once for the era's checks and the route; `Err` is the
    /// invalid-params message the route answers with.
    pub routed: Option<Result<CallParams<'m>, String>>,
    pub client: Client<'m>,
}

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
