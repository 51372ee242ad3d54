//! What the gateway says as a client of its upstreams: its `clientInfo`, the protocol version
//! it asks session-era upstreams for, the `initialize` params it opens a session with, and the
//! `_meta` its own 2026-07-28 requests carry.
//!
//! Pure functions: the link (`upstream::link`) sends what these build, and the params of a
//! routed request (`wire::params`) carry the same `clientInfo`.

use serde_json::{json, Map, Value};

use crate::wire::jsonrpc::{META_CLIENT_CAPABILITIES, META_CLIENT_INFO, META_PROTOCOL_VERSION};
use crate::wire::members::write_json_str;
use crate::wire::version::ProtocolVersion;

/// The `name` of the gateway's `clientInfo`.
pub const CLIENT_NAME: &str = "shardgate";
/// The `version` of the gateway's `clientInfo`: the crate's.
pub const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The gateway's `clientInfo`, `{"name":…,"version":…}`.
pub fn client_info() -> Value {
    json!({ "name": CLIENT_NAME, "version": CLIENT_VERSION })
}

/// Appends the gateway's `clientInfo` as JSON text, for params written without a tree.
pub fn write_client_info(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"name\":");
    write_json_str(out, CLIENT_NAME);
    out.extend_from_slice(b",\"version\":");
    write_json_str(out, CLIENT_VERSION);
    out.push(b'}');
}

/// The protocol version the gateway asks session-era upstreams for.
pub const SESSION_ERA_VERSION: ProtocolVersion = ProtocolVersion::V2025_11_25;

/// The params of the gateway's `initialize`.
pub fn initialize_params() -> Value {
    json!({
        "protocolVersion": SESSION_ERA_VERSION.as_str(),
        // Requests an upstream makes during a client's call are relayed to that client, which
        // answers them or says it cannot.
        "capabilities": { "sampling": {}, "elicitation": {}, "roots": { "listChanged": false } },
        "clientInfo": client_info(),
    })
}

/// `params` with the `_meta` a 2026-07-28 request must carry.
pub fn with_stateless_meta(params: Option<Value>) -> Value {
    let mut params = match params {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        meta.insert(
            META_PROTOCOL_VERSION.to_owned(),
            json!(ProtocolVersion::V2026_07_28.as_str()),
        );
        // A stateless client's own capabilities pass through, so an upstream may ask it for
        // input (an `input_required` result the client answers by retrying).
        meta.entry(META_CLIENT_CAPABILITIES)
            .or_insert_with(|| json!({}));
        meta.insert(META_CLIENT_INFO.to_owned(), client_info());
    }
    Value::Object(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateless_meta_is_added_without_losing_the_callers_meta() {
        let params = with_stateless_meta(Some(json!({"name": "x", "_meta": {"progressToken": 7}})));
        assert_eq!(params["name"], "x");
        assert_eq!(params["_meta"]["progressToken"], 7);
        assert_eq!(params["_meta"][META_PROTOCOL_VERSION], "2026-07-28");
        assert!(params["_meta"][META_CLIENT_CAPABILITIES].is_object());
        assert_eq!(params["_meta"][META_CLIENT_INFO], client_info());
        assert_eq!(initialize_params()["clientInfo"], client_info());
    }

    #[test]
    fn the_written_client_info_is_the_client_info() {
        let mut out = Vec::new();
        write_client_info(&mut out);
        let written: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(written, client_info());
        assert_eq!(written["name"], "shardgate");
        assert_eq!(written["version"], env!("CARGO_PKG_VERSION"));
    }
}
