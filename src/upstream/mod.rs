//! The servers behind the gateway: upstream kinds (streamable HTTP, stdio, the in-process
//! `builtin` demo), their per-shard connection pools, breakers and input bridge, behind one
//! facade, [`Upstreams`], which the front calls for connecting, ticking, each call's admission
//! and task ([`call`]), and shutdown.
//!
//! Each shard owns its own upstreams; nothing here is shared across shards.

pub mod breaker;
pub mod builtin;
pub mod call;
pub mod input;
pub mod link;
pub mod pool;
pub mod sessions;
pub mod stdio;
pub mod upstreams;

pub use upstreams::Upstreams;
