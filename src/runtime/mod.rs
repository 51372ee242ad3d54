//! Shard bootstrap, pinning, the cross-shard mesh, signals, the epoch clock and graceful drain.

pub mod shutdown;
