//! A request the era's rules let through, as the router and the phases after it see it: its
//! era, its method, and the client it comes from.

use serde_json::value::RawValue;

use crate::calls::client::Client;
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
