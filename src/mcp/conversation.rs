//! The session phase: each era's rules between a decoded message and the router. A
//! session-era message finds its session, or the shard that owns it; a 2026-07-28 message
//! carries its own `_meta` and headers, checked here. What comes out is a [`Call`] to route, an
//! answer the era gives itself, or the owner to forward to.

use std::cell::RefCell;

use crate::mcp::call::Call;
use crate::mcp::decode::Decoded;
use crate::mcp::session::SessionTable;
use crate::mcp::transport::{Endpoint, McpRequest, Refused, Reply};

/// Where the session phase leaves a request. It lives on the stack of one request's task for
/// one phase, so the large [`Call`] is not boxed (which would allocate per request).
#[allow(clippy::large_enum_variant)]
pub enum Conversation<'m> {
    /// A request for the router.
    Call(Call<'m>),
    /// Answered by the era's own rules: `initialize`, DELETE, the GET stream, a
    /// `subscriptions/listen`, a notification or a client's answer, a removed method.
    Answered(Reply),
    /// Its session lives on shard `owner`: the request goes there.
    Forward { owner: u8 },
}

impl Endpoint {
    /// Applies the decoded request's era rules on this shard.
    pub fn converse<'m, 'a: 'm>(
        &self,
        request: &McpRequest<'a>,
        decoded: &'m Decoded<'a>,
        sessions: &RefCell<SessionTable>,
        now_ms: u64,
    ) -> Result<Conversation<'m>, Refused> {
        match decoded {
            Decoded::Get | Decoded::Delete => self.stream_or_delete(request, sessions, now_ms),
            Decoded::Unreadable(error) => self.unreadable(request, error, sessions, now_ms),
            Decoded::Session(message) => self.session_era(request, message, sessions, now_ms),
            Decoded::Stateless(message) => self.stateless(&request.headers, message),
        }
    }
}
