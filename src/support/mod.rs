//! What every shard-local component waits and reports with: the deadline wheel of the request
//! path ([`deadline`]), the one-shot [`event::Event`], the [`clock::ShardClock`] and the
//! [`log`]. Nothing here knows HTTP or MCP.

pub mod clock;
pub mod deadline;
pub mod decimal;
pub mod event;
mod log;

pub use log::log;
