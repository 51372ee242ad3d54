//! shardgate: a thread-per-core MCP gateway whose every table is bounded and epoch-reclaimed.
//!
//! Rooms, from the bottom up (a lower room never calls into a higher one):
//! `epoch` (bounded tables) → `http` (HTTP/1.1 codec) → `upstream` (servers behind the gateway)
//! → `mcp` (JSON-RPC, sessions, router) → `runtime` (shards, mesh, signals, admin).
//! `config` is read by all of them; `refusal` names every way a request can be turned away.

pub mod config;
pub mod epoch;
pub mod http;
pub mod mcp;
pub mod refusal;
pub mod runtime;
pub mod upstream;
