//! Goal: the stateless era (MCP 2026-07-28) is served per request with no session: discovery
//! works, results carry `resultType`, and every mirrored header, `_meta` field, version and
//! method rule is enforced with the HTTP status and JSON-RPC code the contract names.
//!
//! Method: start the real binary on one shard and send stateless POSTs whose `_meta` and
//! `MCP-Protocol-Version` / `Mcp-Method` / `Mcp-Name` headers are correct, then each broken in
//! one way, asserting status, `error.code` and `error.data`.

mod common;

use std::time::Duration;

use common::client::{Conn, Request, Response, SseItem, SseParser};
use common::mcp::{
    post, rpc, stateless_body, stateless_body_for, stateless_post, SESSION_VERSIONS,
    STATELESS_VERSION,
};
use common::{config_with, send_signal, wait_exit, Gateway};
use serde_json::{json, Value};

fn gateway() -> Gateway {
    Gateway::start(&config_with(""), 1)
}

fn echo_body() -> Value {
    stateless_body(
        4,
        "tools/call",
        json!({"name": "demo__echo", "arguments": {"text": "stateless"}}),
    )
}

/// Replaces (or, with `None`, removes) header `name` of a correct stateless request.
fn with_header(request: Request, name: &str, value: Option<&str>) -> Request {
    let request = request.without(name);
    match value {
        Some(value) => request.header(name, value),
        None => request,
    }
}

fn assert_error(response: &Response, status: u16, code: i64) -> Value {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.error_code(), code, "{}", response.text());
    response.json()["error"].clone()
}

#[test]
fn server_discover_lists_every_supported_version() {
    let gw = gateway();
    let response = gw.stateless(&stateless_body(1, "server/discover", json!({})));
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response.header("Mcp-Session-Id").is_none(),
        "stateless era mints no session"
    );
    let result = &response.json()["result"];
    let supported: Vec<&str> = result["supportedVersions"]
        .as_array()
        .expect("supportedVersions array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for version in SESSION_VERSIONS.iter().chain([&STATELESS_VERSION]) {
        assert!(
            supported.contains(version),
            "supportedVersions lacks {version}: {supported:?}"
        );
    }
    assert!(result["capabilities"].is_object(), "capabilities: {result}");
    assert_eq!(result["serverInfo"]["name"], "shardgate");
    assert!(result["instructions"].is_string(), "instructions: {result}");
    assert!(result["ttlMs"].is_u64(), "ttlMs: {result}");
    assert!(result["cacheScope"].is_string(), "cacheScope: {result}");
    assert_eq!(result["resultType"], "complete");
}

#[test]
fn tools_call_with_matching_headers_is_complete() {
    let gw = gateway();
    let response = gw.stateless(&echo_body());
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["id"], 4);
    assert_eq!(body["result"]["resultType"], "complete", "{body}");
    assert!(
        body["result"].to_string().contains("stateless"),
        "echo result: {body}"
    );
}

#[test]
fn session_id_header_is_ignored() {
    let gw = gateway();
    let request = stateless_post(&gw.mcp_path(), &echo_body())
        .header("Mcp-Session-Id", &format!("00-{}", "0".repeat(32)));
    let response = gw.call(&request);
    assert_eq!(response.status, 200, "{}", response.text());
    assert!(
        response.header("Mcp-Session-Id").is_none(),
        "no session id is echoed"
    );
}

#[test]
fn mcp_method_mismatch_is_400_header_mismatch() {
    let gw = gateway();
    let request = stateless_post(&gw.mcp_path(), &echo_body());
    let response = gw.call(&with_header(request, "Mcp-Method", Some("tools/list")));
    assert_error(&response, 400, -32020);
}

#[test]
fn mcp_name_mismatch_is_400_header_mismatch() {
    let gw = gateway();
    let request = stateless_post(&gw.mcp_path(), &echo_body());
    let response = gw.call(&with_header(request, "Mcp-Name", Some("demo__add")));
    assert_error(&response, 400, -32020);
}

#[test]
fn missing_mcp_name_is_400_header_mismatch() {
    let gw = gateway();
    let request = stateless_post(&gw.mcp_path(), &echo_body());
    let response = gw.call(&with_header(request, "Mcp-Name", None));
    assert_error(&response, 400, -32020);
}

#[test]
fn mcp_name_must_equal_the_resource_uri() {
    let gw = gateway();
    let body = stateless_body(6, "resources/read", json!({"uri": "demo://readme"}));
    let good = gw.stateless(&body);
    assert_eq!(good.status, 200, "{}", good.text());
    assert_eq!(good.json()["result"]["resultType"], "complete");
    let request = stateless_post(&gw.mcp_path(), &body);
    let response = gw.call(&with_header(request, "Mcp-Name", Some("demo://other")));
    assert_error(&response, 400, -32020);
}

#[test]
fn missing_mcp_method_is_400_header_mismatch() {
    let gw = gateway();
    let request = stateless_post(&gw.mcp_path(), &echo_body());
    let response = gw.call(&with_header(request, "Mcp-Method", None));
    assert_error(&response, 400, -32020);
}

#[test]
fn protocol_version_header_must_equal_meta_version() {
    let gw = gateway();
    let request = stateless_post(&gw.mcp_path(), &echo_body());
    let response = gw.call(&with_header(
        request,
        "MCP-Protocol-Version",
        Some("2025-11-25"),
    ));
    assert_error(&response, 400, -32020);
}

#[test]
fn missing_meta_is_400_invalid_params() {
    let gw = gateway();
    let body = rpc(
        4,
        "tools/call",
        json!({"name": "demo__echo", "arguments": {"text": "x"}}),
    );
    let response = gw.call(&stateless_post(&gw.mcp_path(), &body));
    assert_error(&response, 400, -32602);
}

#[test]
fn meta_without_client_capabilities_is_400_invalid_params() {
    let gw = gateway();
    let mut body = echo_body();
    let meta = body["params"]["_meta"].as_object_mut().unwrap();
    meta.remove("io.modelcontextprotocol/clientCapabilities");
    let response = gw.stateless(&body);
    assert_error(&response, 400, -32602);
}

#[test]
fn meta_member_of_the_wrong_type_is_400_naming_it_for_routed_and_listed_methods() {
    let gw = gateway();
    let cases = [
        ("progressToken", json!({"a": 1}), "progressToken"),
        (
            "io.modelcontextprotocol/clientInfo",
            json!("wrk"),
            "clientInfo",
        ),
        (
            "io.modelcontextprotocol/logLevel",
            json!("loud"),
            "logLevel",
        ),
    ];
    for (method, params) in [
        (
            "tools/call",
            json!({"name": "demo__echo", "arguments": {"text": "x"}}),
        ),
        ("tools/list", json!({})),
    ] {
        for (key, value, named) in &cases {
            let mut body = stateless_body(4, method, params.clone());
            body["params"]["_meta"][key] = value.clone();
            let error = assert_error(&gw.stateless(&body), 400, -32602);
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains(named), "{method} with {key}: {error}");
        }
        let mut body = stateless_body(4, method, params.clone());
        body["params"]["_meta"] = json!([1]);
        let error = assert_error(&gw.stateless(&body), 400, -32602);
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("_meta must be an object"),
            "{method}: {error}"
        );
    }
}

#[test]
fn unsupported_version_is_400_with_supported_list() {
    let gw = gateway();
    let body = stateless_body_for(
        4,
        "tools/call",
        json!({"name": "demo__echo", "arguments": {"text": "x"}}),
        "1900-01-01",
    );
    let response = gw.stateless(&body);
    let error = assert_error(&response, 400, -32022);
    let supported = error["data"]["supported"]
        .as_array()
        .expect("data.supported array");
    assert!(
        supported.contains(&json!(STATELESS_VERSION)),
        "data.supported: {error}"
    );
    assert_eq!(
        error["data"]["requested"], "1900-01-01",
        "data.requested: {error}"
    );
}

#[test]
fn get_and_delete_are_405_allow_post() {
    let gw = gateway();
    for method in ["GET", "DELETE"] {
        let request = Request::new(method, &gw.mcp_path())
            .header("Accept", "text/event-stream")
            .header("MCP-Protocol-Version", STATELESS_VERSION);
        let response = gw.call(&request);
        assert_eq!(response.status, 405, "{method}: {}", response.text());
        assert_eq!(
            response.header("Allow"),
            Some("POST"),
            "{method} Allow header"
        );
    }
}

#[test]
fn unknown_method_is_404_method_not_found() {
    let gw = gateway();
    let response = gw.stateless(&stateless_body(8, "tools/frobnicate", json!({})));
    assert_error(&response, 404, -32601);
}

#[test]
fn removed_session_methods_are_404_method_not_found() {
    let gw = gateway();
    for method in ["initialize", "ping"] {
        let response = gw.stateless(&stateless_body(9, method, json!({})));
        assert_error(&response, 404, -32601);
    }
}

#[test]
fn era_is_chosen_by_meta_even_without_version_header() {
    let gw = gateway();
    // No MCP-Protocol-Version header at all: `_meta` alone makes it stateless, so the missing
    // mirrored header is a mismatch rather than a missing session.
    let request = post(&gw.mcp_path(), &echo_body())
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "demo__echo");
    let response = gw.call(&request);
    assert_error(&response, 400, -32020);
}

/// The next event that carries data, parsed; `retry:`-only blocks and keep-alives are skipped.
fn next_message(stream: &mut Conn, parser: &mut SseParser) -> Value {
    loop {
        match stream.next_sse(parser).expect("read the listen stream") {
            Some(SseItem::Event(event)) if event.has_data => {
                return serde_json::from_str(&event.data).expect("event data is JSON")
            }
            Some(_) => {}
            None => panic!("the listen stream ended early"),
        }
    }
}

#[test]
fn subscriptions_listen_acknowledges_what_it_honours_and_ends_with_its_result_at_shutdown() {
    let mut gw = gateway();
    let listen = stateless_body(
        9,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["demo://x"]}}),
    );
    let mut stream = Conn::connect(&gw.mcp_addr);
    stream.send(&stateless_post(&gw.mcp_path(), &listen).to_bytes());
    let head = stream.read_head();
    assert_eq!(head.status, 200);
    assert!(head
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/event-stream")));
    let mut parser = SseParser::default();
    // The first message is the acknowledgment: the list change it honours, not the resource
    // subscriptions, which the gateway does not offer.
    let ack = next_message(&mut stream, &mut parser);
    assert_eq!(ack["method"], "notifications/subscriptions/acknowledged");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true})
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    assert_eq!(gw.status()["totals"]["notification_streams"], 1);

    // Shutting down ends the subscription gracefully: its `complete` result, then the end.
    send_signal(gw.pid(), "TERM");
    let closing = next_message(&mut stream, &mut parser);
    assert_eq!(closing["id"], 9, "{closing}");
    assert_eq!(closing["result"]["resultType"], "complete", "{closing}");
    assert_eq!(
        closing["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        9
    );
    assert!(stream
        .next_sse(&mut parser)
        .expect("read the end")
        .is_none());
    assert!(wait_exit(&mut gw.child, Duration::from_secs(10)).is_some());
}

#[test]
fn subscriptions_listen_with_a_malformed_filter_is_400_naming_it() {
    let gw = gateway();
    let listen = stateless_body(
        3,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": "yes"}}),
    );
    let response = gw.call(&stateless_post(&gw.mcp_path(), &listen));
    let error = assert_error(&response, 400, -32602);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("params.notifications"),
        "{error}"
    );
}
