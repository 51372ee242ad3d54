//! The servers behind the gateway: upstream kinds (streamable HTTP, stdio, the in-process
//! `builtin` demo), their per-shard connection pools and the pending table of requests in flight.
//!
//! Each shard owns its own pools and pending entries; nothing here is shared across shards.

pub mod breaker;
pub mod builtin;
pub mod catalogue;
pub mod input;
pub mod link;
pub mod pool;
pub mod sessions;
pub mod stdio;
