//! Feeds arbitrary bytes as the `params` of each routed method, inside an envelope that
//! `jsonrpc::parse` reads as the router gets it, to `CallParams::read`, the `_meta` readers and
//! the rewrite for an upstream.
//!
//! Asserts: no panic; whenever the params are read, the rewritten params are JSON text
//! serde_json reads, the routing member holds the upstream's name, and every other member the
//! client sent (in `params`, `params.ref` and `params._meta`, a repeated key counting with its
//! last value) is there with its value, except the `_meta` members the gateway replaces.
//!
//! The first byte picks the method and the rewrite's options. Run:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz params_meta
//! tests/fuzz/corpus/params_meta tests/fuzz/seeds/params_meta -- -max_total_time=60`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use shardgate::config::bounds::JSON_DEPTH_MAX;
use shardgate::wire::capabilities::InputCapabilities;
use shardgate::wire::ids::UpstreamRequestId;
use shardgate::wire::jsonrpc::{self, Message, Meta};
use shardgate::wire::params::{CallParams, Rewrite, RoutingField};

const METHODS: [&str; 4] = [
    "tools/call",
    "prompts/get",
    "resources/read",
    "completion/complete",
];

/// `_meta` members the rewrite may replace or drop.
const REPLACED: [&str; 5] = [
    jsonrpc::META_PROGRESS_TOKEN,
    jsonrpc::META_PROTOCOL_VERSION,
    jsonrpc::META_CLIENT_INFO,
    jsonrpc::META_LOG_LEVEL,
    jsonrpc::META_CLIENT_CAPABILITIES,
];

const ORIGINAL: &str = "upstream \"own\" name";

fn object(value: Option<&Value>) -> Option<&Map<String, Value>> {
    value.and_then(Value::as_object)
}

/// Every member of `sent` but those `skip` names is in `written` with its value.
fn kept(sent: &Map<String, Value>, written: &Map<String, Value>, skip: &[&str], what: &str) {
    for (key, value) in sent {
        if !skip.contains(&key.as_str()) {
            assert_eq!(
                written.get(key),
                Some(value),
                "{what} member {key:?} not kept"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, params)) = data.split_first() else {
        return;
    };
    let method = METHODS[usize::from(choice & 3)];
    let mut body =
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"{method}","params":"#).into_bytes();
    body.extend_from_slice(params);
    body.push(b'}');
    let Ok(Message::Request { params, .. }) = jsonrpc::parse(&body, JSON_DEPTH_MAX.default as u32)
    else {
        return;
    };
    let _ = Meta::from_params(params);
    let _ = Meta::with_routing_name(method, params);
    let _ = jsonrpc::routing_name(method, params);
    let Ok(read) = CallParams::read(method, params) else {
        return;
    };
    let _ = read.protocol_meta();
    let _ = read.progress_token();
    let _ = read.mirrored_name();
    let capabilities = read
        .protocol_meta()
        .ok()
        .and_then(|meta| meta.client_capabilities)
        .map(InputCapabilities::from_client);
    let rewrite = Rewrite {
        original: ORIGINAL,
        progress: (choice & 4 != 0).then_some(UpstreamRequestId(u64::MAX)),
        log_level: (choice & 8 != 0).then_some("warning"),
        client_capabilities: (choice & 16 != 0)
            .then(|| capabilities.unwrap_or(InputCapabilities::NONE)),
        stateless: choice & 32 != 0,
    };
    let mut out = Vec::new();
    read.write(&mut out, &rewrite);

    if let Err(e) = serde_json::from_slice::<&RawValue>(&out) {
        panic!(
            "rewritten params are not JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        );
    }
    // JSON text may hold numbers no `f64` holds (`1e400`): the gateway passes them on as
    // text, but a `Value` cannot hold them, so such params are compared no further.
    let Ok(sent) = serde_json::from_str::<Value>(params.map_or("null", |p| p.get())) else {
        return;
    };
    let written: Value = serde_json::from_slice(&out).expect("its numbers are the client's");
    let (Some(sent), Some(written)) = (sent.as_object(), written.as_object()) else {
        panic!("params read, but sent or written params are not objects");
    };
    let field = read.routing().field;
    let member = match field {
        RoutingField::Name | RoutingField::RefName => "name",
        RoutingField::Uri | RoutingField::RefUri => "uri",
    };
    let in_ref = matches!(field, RoutingField::RefName | RoutingField::RefUri);
    let holder = if in_ref {
        object(written.get("ref"))
    } else {
        Some(written)
    };
    let holder = holder.expect("the routing member's object is written");
    assert_eq!(
        holder.get(member),
        Some(&Value::from(ORIGINAL)),
        "routing name not replaced"
    );
    if in_ref {
        let sent_ref = object(sent.get("ref")).expect("a ref the read found");
        kept(sent_ref, holder, &[member], "params.ref");
        kept(sent, written, &["ref", "_meta"], "params");
    } else {
        kept(sent, written, &[member, "_meta"], "params");
    }
    match (sent.get("_meta"), object(sent.get("_meta"))) {
        (Some(_), Some(sent_meta)) => {
            let empty = Map::new();
            let written_meta = object(written.get("_meta")).unwrap_or(&empty);
            kept(sent_meta, written_meta, &REPLACED, "params._meta");
        }
        (Some(other), None) => assert_eq!(written.get("_meta"), Some(other), "_meta not kept"),
        (None, _) => {}
    }
});
