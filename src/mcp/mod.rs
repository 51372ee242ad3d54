//! MCP on the gateway's front side: the downstream transport by era, sessions, listen streams
//! and the router that sends each request to its upstream.
//!
//! Sessions (legacy era) live in the shard that created them; everything else here is stateless
//! per request. Limits and refusals are documented per submodule.

pub mod listen;
pub mod router;
pub mod session;
pub mod transport;
