//! shardgate: a thread-per-core MCP gateway whose every table is bounded and epoch-reclaimed.
//!
//! Layers, lowest first. A module imports only from layers below its own, never from a higher
//! one or a sibling on its layer; `tests/layers.rs` reads this list and holds the code to it.
//!
//! 1. `config` — the TOML schema, validated into an immutable `Config`; the limits types it
//!    hands each component. Imports nothing of the crate.
//! 2. `refusal` — every way a request is turned away, counted, with its HTTP status.
//! 3. `support` — the shard clock, the deadline wheel, the one-shot event, decimal writers, the
//!    log: what every shard-local component waits and reports with.
//! 4. `epoch` — generational arenas and bounded tables, the one reclamation primitive.
//! 5. `wire` — the MCP wire protocol shared by both sides: JSON-RPC envelope, scan, members,
//!    params and `_meta`, versions, kinds, capabilities, upstream request ids.
//! 6. `http` — the HTTP/1.1 codec: server connections and responses, the upstream client.
//! 7. `calls` — the call table: pending requests, each call's state, server requests.
//! 8. `upstream` — the servers behind the gateway: kinds, pools, breakers, bridges, catalogue.
//! 9. `mcp` — the client-facing endpoint: HTTP rules, decode, each era's rules, sessions,
//!    listen, router, answers.
//! 10. `pipeline` — the request path as phases in order, the per-request context and the hooks
//!     features join it by; the MCP front.
//! 11. `runtime` — shards, mesh, signals, admin, plan: what runs the rest.

pub mod calls;
pub mod config;
pub mod epoch;
pub mod http;
pub mod mcp;
pub mod pipeline;
pub mod refusal;
pub mod runtime;
pub mod support;
pub mod upstream;
pub mod wire;
