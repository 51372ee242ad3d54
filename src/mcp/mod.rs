//! MCP on the gateway's front side: the endpoint's rules in the order the pipeline applies
//! them — the HTTP rules and early checks ([`transport`]), [`decode`], each era's rules
//! ([`session_era`], [`stateless`], joined in [`conversation`]), the [`router`] and the
//! [`answer`] — with the session table, the listen streams and the merged [`catalogue`] they
//! keep.
//!
//! Sessions (legacy era) live in the shard that created them; everything else here is stateless
//! per request. Limits and refusals are documented per submodule.

pub mod answer;
pub mod call;
pub mod catalogue;
pub mod conversation;
pub mod decode;
pub mod listen;
pub mod router;
pub mod session;
pub mod session_era;
pub mod stateless;
pub mod transport;
