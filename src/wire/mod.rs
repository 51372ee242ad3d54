//! The MCP wire protocol, shared by the client-facing side and the upstream side: the JSON-RPC
//! envelope and its writers ([`jsonrpc`]), the validating scan ([`scan`]) and member readers
//! ([`members`]), request params and `_meta` ([`params`]), protocol versions ([`version`]), the
//! listable kinds ([`kind`]), the methods known by name ([`method`]), a client's declared
//! capabilities ([`capabilities`]), the ids the gateway gives upstream requests ([`ids`]), what
//! the gateway sends as a client of its upstreams ([`gateway_client`]) and the header values
//! the 2026-07-28 era mirrors ([`mirrored`]).
//!
//! Pure functions of bytes: nothing here keeps state, does I/O or knows which shard it runs on.

pub mod capabilities;
pub mod gateway_client;
pub mod ids;
pub mod jsonrpc;
pub mod kind;
pub mod members;
pub mod method;
pub mod mirrored;
pub mod params;
pub mod scan;
pub mod version;
