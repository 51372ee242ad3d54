//! The call table: the requests this shard has in flight upstream and what each call holds.
//!
//! [`pending`] is the bounded, epoch-reclaimed table of gateway request ids (deadlines, caps,
//! id rewriting); [`inflight`] adds each call's state (its events, its answer, the client it
//! answers) and the requests upstreams sent to clients ([`inflight::ServerRequests`]);
//! [`input_round`] is one round of input a call asked its client for; [`client`] is who a call
//! answers. All of it belongs to one shard; nothing here does I/O.

pub mod client;
pub mod inflight;
pub mod input_round;
pub mod pending;
