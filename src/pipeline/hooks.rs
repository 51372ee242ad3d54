//! The seams where features join the request path: authenticate, authorize, route to a group
//! and log. Each is a method of [`Hooks`] with a default that lets the request through, so a
//! feature overrides only the phases it needs, and the pipeline calls them statically (it is
//! generic over its hooks; nothing is boxed or allocated per phase).

use crate::mcp::call::Call;
use crate::mcp::router::Answer;
use crate::mcp::transport::{McpRequest, Refused};
use crate::pipeline::context::RequestContext;

pub trait Hooks {
    /// Phase 3: who is calling, from the request's headers. An `Err` refuses the request.
    fn authenticate(
        &self,
        _request: &McpRequest<'_>,
        _cx: &mut RequestContext,
    ) -> Result<(), Refused> {
        Ok(())
    }

    /// Phase 6: whether the caller may make this call (runs on the shard that owns the
    /// session, after the era's rules). An `Err` refuses it.
    fn authorize(&self, _call: &Call<'_>, _cx: &mut RequestContext) -> Result<(), Refused> {
        Ok(())
    }

    /// Phase 7, before the router: a call answered by a group of upstreams at once. `Some`
    /// is its answer; `None` leaves the call to the router.
    fn route_group(&self, _call: &Call<'_>, _cx: &mut RequestContext) -> Option<Answer> {
        None
    }

    /// Phase 13: runs once for every request, however it ended, with what the phases decided.
    fn log(&self, _cx: &RequestContext) {}
}

/// The features hooked into a shard's pipeline. None of auth, metrics, audit or experts is
/// built yet, so every hook keeps its default; each adds its state here when it lands.
#[derive(Default)]
pub struct Features;

impl Hooks for Features {}
