//! MCP on the gateway's front side: the JSON-RPC envelope, protocol versions, the downstream
//! transport, sessions and the router that sends each request to its upstream.
//!
//! Sessions (legacy era) live in the shard that created them; everything else here is stateless
//! per request. Limits and refusals are documented per submodule.

pub mod jsonrpc;
pub mod listen;
pub mod members;
pub mod params;
pub mod router;
pub mod scan;
pub mod session;
pub mod transport;
pub mod version;
