//! The MCP wire protocol, shared by the client-facing side and the upstream side: the JSON-RPC
//! envelope and its writers ([`jsonrpc`]), the validating scan ([`scan`]) and member readers
//! ([`members`]), request params and `_meta` ([`params`]), protocol versions ([`version`]), the
//! listable kinds ([`kind`]), the methods known by name ([`method`]), a client's declared
//! capabilities ([`capabilities`]) and the ids the gateway gives upstream requests ([`ids`]).
//!
//! Pure functions of bytes: nothing here keeps state, does I/O or knows which shard it runs on.

pub mod capabilities;
pub mod ids;
pub mod jsonrpc;
pub mod kind;
pub mod members;
pub mod method;
pub mod params;
pub mod scan;
pub mod version;
