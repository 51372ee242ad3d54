//! Goal: the session era (MCP 2025-03-26, 2025-06-18, 2025-11-25) works end to end over the
//! Streamable HTTP transport: `initialize` mints a well-formed session id, the demo upstream's
//! tools, resources and prompts answer through the session, every transport refusal has the
//! status the contract names, GET streams live exactly as long as their session, and a session
//! is usable from any shard (forwarded over the mesh to its owner).
//!
//! Method: start the real binary (one shard, or two for forwarding), drive it with raw HTTP/1.1
//! requests and assert statuses, headers and JSON-RPC bodies.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::client::{Conn, Request, SseItem, SseParser};
use common::mcp::{
    content_text, initialize_body, is_session_id_shape, notification, post, rpc, Session,
    SESSION_VERSIONS, SESSION_VERSION_LATEST,
};
use common::{config_with, Gateway};
use serde_json::{json, Value};

const SSE_KEEPALIVE_INTERVAL_MS: u64 = 1000;

fn gateway() -> Gateway {
    let limits = format!("[limits]\nsse_keepalive_interval_ms = {SSE_KEEPALIVE_INTERVAL_MS}\n");
    Gateway::start(&config_with(&limits), 1)
}

/// `result` of a successful JSON-RPC call on `session`, asserting HTTP 200 and no error.
fn call_ok(gw: &Gateway, session: &Session, id: u64, method: &str, params: Value) -> Value {
    let response = gw.session_call(session, &rpc(id, method, params));
    assert_eq!(response.status, 200, "{method}: {}", response.text());
    let body = response.json();
    assert_eq!(body["id"], id, "{method} answers its own id: {body}");
    assert!(body.get("error").is_none(), "{method} failed: {body}");
    body["result"].clone()
}

fn tool_call(gw: &Gateway, session: &Session, name: &str, arguments: Value) -> Value {
    call_ok(
        gw,
        session,
        5,
        "tools/call",
        json!({"name": name, "arguments": arguments}),
    )
}

#[test]
fn initialize_negotiates_each_session_version_and_mints_a_visible_ascii_session_id() {
    let gw = gateway();
    for version in SESSION_VERSIONS {
        let response = gw.post(&initialize_body(1, version));
        assert_eq!(
            response.status,
            200,
            "initialize {version}: {}",
            response.text()
        );
        let content_type = response
            .header("Content-Type")
            .unwrap_or("")
            .to_ascii_lowercase();
        assert!(
            content_type.starts_with("application/json"),
            "initialize is json: {content_type}"
        );
        let id = response
            .header("Mcp-Session-Id")
            .expect("Mcp-Session-Id on initialize");
        assert!(
            id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "visible ASCII: {id:?}"
        );
        assert!(
            is_session_id_shape(id),
            "`<2 hex shard>-<32 hex random>`: {id:?}"
        );
        let result = &response.json()["result"];
        assert_eq!(
            result["protocolVersion"], version,
            "supported version is kept: {result}"
        );
        assert_eq!(result["serverInfo"]["name"], "shardgate");
        assert!(
            result["serverInfo"]["version"].is_string(),
            "serverInfo.version: {result}"
        );
        assert!(result["capabilities"].is_object(), "capabilities: {result}");
        assert!(result["instructions"].is_string(), "instructions: {result}");
    }
}

#[test]
fn initialize_with_unknown_version_negotiates_the_latest() {
    let gw = gateway();
    let response = gw.post(&initialize_body(1, "2024-01-01"));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json()["result"]["protocolVersion"],
        SESSION_VERSION_LATEST
    );
}

#[test]
fn session_ids_are_distinct() {
    let gw = gateway();
    let first = gw.open_session(SESSION_VERSION_LATEST);
    let second = gw.open_session(SESSION_VERSION_LATEST);
    assert_ne!(first.id, second.id);
}

#[test]
fn initialized_notification_is_202_with_empty_body() {
    let gw = gateway();
    let session = gw.open_session("2025-06-18");
    let response = gw.session_call(&session, &notification("notifications/initialized"));
    assert_eq!(response.status, 202);
    assert!(
        response.body.is_empty(),
        "202 has no body: {:?}",
        response.text()
    );
}

#[test]
fn tools_list_lists_the_demo_tools() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let result = call_ok(&gw, &session, 2, "tools/list", json!({}));
    let names: Vec<&str> = result["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    for expected in ["demo__echo", "demo__add", "demo__sleep"] {
        assert!(
            names.contains(&expected),
            "tools/list lacks {expected}: {names:?}"
        );
    }
}

#[test]
fn tools_call_echo_returns_the_text() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let result = tool_call(
        &gw,
        &session,
        "demo__echo",
        json!({"text": "hello shardgate"}),
    );
    assert_ne!(result["isError"], true, "echo failed: {result}");
    assert!(
        content_text(&result).contains("hello shardgate"),
        "echo result: {result}"
    );
}

#[test]
fn tools_call_add_returns_the_sum() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let result = tool_call(&gw, &session, "demo__add", json!({"a": 20, "b": 22}));
    assert_ne!(result["isError"], true, "add failed: {result}");
    assert!(content_text(&result).contains("42"), "add result: {result}");
}

#[test]
fn tools_call_unknown_tool_is_an_error() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let body = json!({"name": "no-such-tool", "arguments": {}});
    let response = gw.session_call(&session, &rpc(3, "tools/call", body));
    let value = response.json();
    let is_error = value["error"]["code"].is_i64() || value["result"]["isError"] == true;
    assert!(
        is_error,
        "unknown tool must fail: {} {value}",
        response.status
    );
}

#[test]
fn tools_call_with_bad_arguments_is_a_tool_error() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let result = tool_call(&gw, &session, "demo__add", json!({"a": "two", "b": 2}));
    assert_eq!(
        result["isError"], true,
        "bad arguments give isError: {result}"
    );
}

#[test]
fn resources_list_and_read_serve_the_demo_readme() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let list = call_ok(&gw, &session, 2, "resources/list", json!({}));
    let uris: Vec<&str> = list["resources"]
        .as_array()
        .expect("resources array")
        .iter()
        .filter_map(|r| r["uri"].as_str())
        .collect();
    assert!(uris.contains(&"demo://readme"), "resources/list: {uris:?}");
    let read = call_ok(
        &gw,
        &session,
        3,
        "resources/read",
        json!({"uri": "demo://readme"}),
    );
    let contents = read["contents"].as_array().expect("contents array");
    assert_eq!(contents[0]["uri"], "demo://readme", "read result: {read}");
    assert!(
        !contents[0]["text"].as_str().unwrap_or("").is_empty(),
        "readme text: {read}"
    );
}

#[test]
fn prompts_list_and_get_serve_greet() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let list = call_ok(&gw, &session, 2, "prompts/list", json!({}));
    let names: Vec<&str> = list["prompts"]
        .as_array()
        .expect("prompts array")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert!(names.contains(&"demo__greet"), "prompts/list: {names:?}");
    let params = json!({"name": "demo__greet", "arguments": {"name": "Ada"}});
    let prompt = call_ok(&gw, &session, 3, "prompts/get", params);
    assert!(
        prompt["messages"].to_string().contains("Ada"),
        "greet uses the name: {prompt}"
    );
}

#[test]
fn ping_returns_empty_object() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    assert_eq!(call_ok(&gw, &session, 9, "ping", json!({})), json!({}));
}

#[test]
fn request_without_session_id_is_400_naming_both_ways_in() {
    let gw = gateway();
    let response = gw.post(&rpc(2, "tools/list", json!({})));
    assert_eq!(response.status, 400, "{}", response.text());
    assert_eq!(response.error_code(), -32600);
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    // The session era's way in, and the 2026-07-28 era's, which needs no session.
    for named in [
        "Mcp-Session-Id",
        "initialize",
        "MCP-Protocol-Version: 2026-07-28",
        "_meta",
        "io.modelcontextprotocol/protocolVersion",
        "io.modelcontextprotocol/clientCapabilities",
    ] {
        assert!(message.contains(named), "names {named}: {message}");
    }
}

#[test]
fn request_with_bogus_session_id_is_404() {
    let gw = gateway();
    let bogus = Session {
        id: format!("00-{}", "0".repeat(32)),
        version: "2025-11-25".into(),
    };
    let response = gw.session_call(&bogus, &rpc(2, "tools/list", json!({})));
    assert_eq!(response.status, 404, "{}", response.text());
    let message = response.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(message.contains("unknown session"), "message: {message}");
}

#[test]
fn malformed_or_foreign_shard_session_ids_are_404() {
    let gw = gateway();
    let ids = [
        format!("ff-{}", "0".repeat(32)),
        format!("0g-{}", "0".repeat(32)),
        "00-short".to_owned(),
        "no-dash-at-all".to_owned(),
        "x".repeat(200),
    ];
    for id in ids {
        let session = Session {
            id: id.clone(),
            version: SESSION_VERSION_LATEST.into(),
        };
        let response = gw.session_call(&session, &rpc(2, "tools/list", json!({})));
        assert_eq!(
            response.status,
            404,
            "session id {id:?}: {}",
            response.text()
        );
    }
}

#[test]
fn delete_ends_the_session_and_later_requests_are_404() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let deleted = gw.call(&session.bare("DELETE", &gw.mcp_path()));
    assert_eq!(deleted.status, 200, "DELETE: {}", deleted.text());
    let after = gw.session_call(&session, &rpc(2, "tools/list", json!({})));
    assert_eq!(after.status, 404, "request after DELETE: {}", after.text());
    let again = gw.call(&session.bare("DELETE", &gw.mcp_path()));
    assert_eq!(again.status, 404, "second DELETE: {}", again.text());
}

#[test]
fn unsupported_protocol_version_header_is_400() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let request = post(&gw.mcp_path(), &rpc(2, "tools/list", json!({})))
        .header("Mcp-Session-Id", &session.id)
        .header("MCP-Protocol-Version", "2024-11-05");
    let response = gw.call(&request);
    assert_eq!(response.status, 400, "{}", response.text());
}

#[test]
fn absent_protocol_version_header_is_accepted_as_2025_03_26() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let request =
        post(&gw.mcp_path(), &rpc(2, "ping", json!({}))).header("Mcp-Session-Id", &session.id);
    let response = gw.call(&request);
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["result"], json!({}));
}

#[test]
fn accept_without_event_stream_is_406() {
    let gw = gateway();
    let request = post(&gw.mcp_path(), &initialize_body(1, SESSION_VERSION_LATEST))
        .without("Accept")
        .header("Accept", "application/json");
    assert_eq!(gw.call(&request).status, 406);
}

#[test]
fn accept_star_star_counts_for_both() {
    let gw = gateway();
    let request = post(&gw.mcp_path(), &initialize_body(1, SESSION_VERSION_LATEST))
        .without("Accept")
        .header("Accept", "*/*");
    let response = gw.call(&request);
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn content_type_other_than_json_is_415() {
    let gw = gateway();
    let request = post(&gw.mcp_path(), &initialize_body(1, SESSION_VERSION_LATEST))
        .without("Content-Type")
        .header("Content-Type", "text/plain");
    assert_eq!(gw.call(&request).status, 415);
}

#[test]
fn foreign_origin_is_403_and_localhost_origin_is_allowed() {
    let gw = gateway();
    let init = || post(&gw.mcp_path(), &initialize_body(1, SESSION_VERSION_LATEST));
    let refused = gw.call(&init().header("Origin", "http://evil.example"));
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.json()["id"].is_null(), "403 error has id null");
    assert!(refused.json()["error"]["code"].is_i64());
    for origin in [
        "http://localhost:5173",
        "http://127.0.0.1:8080",
        "https://[::1]",
    ] {
        let allowed = gw.call(&init().header("Origin", origin));
        assert_eq!(allowed.status, 200, "Origin {origin}: {}", allowed.text());
    }
}

/// Opens a GET stream for `session` on a fresh connection and reads it up to and including the
/// priming event (id, empty data), asserting each step.
fn open_primed_stream(gw: &Gateway, session: &Session) -> (Conn, SseParser) {
    let mut stream = Conn::connect(&gw.mcp_addr);
    let request = session
        .bare("GET", &gw.mcp_path())
        .header("Accept", "text/event-stream");
    stream.send(&request.to_bytes());
    let head = stream.read_head();
    assert_eq!(head.status, 200, "GET stream for {}", session.id);
    let content_type = head
        .header("Content-Type")
        .unwrap_or("")
        .to_ascii_lowercase();
    assert!(
        content_type.starts_with("text/event-stream"),
        "content type: {content_type}"
    );

    let mut parser = SseParser::default();
    // A block carrying only `retry:` sets the reconnection delay and is not an event.
    let priming = loop {
        match stream.next_sse(&mut parser).expect("read priming event") {
            Some(SseItem::Event(event)) if event.id.is_none() && !event.has_data => {
                assert!(
                    event.retry.is_some(),
                    "field-less block before priming: {event:?}"
                );
            }
            Some(SseItem::Event(event)) => break event,
            other => panic!("the stream opens with the priming event, got {other:?}"),
        }
    };
    assert!(
        priming.id.as_deref().is_some_and(|id| !id.is_empty()),
        "priming event has an id: {priming:?}"
    );
    assert!(
        priming.has_data && priming.data.is_empty(),
        "priming data is empty: {priming:?}"
    );
    (stream, parser)
}

#[test]
fn get_stream_primes_keeps_alive_and_ends_when_the_session_is_deleted() {
    let gw = gateway();
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let (mut stream, mut parser) = open_primed_stream(&gw, &session);
    let waited = Instant::now();
    match stream.next_sse(&mut parser).expect("read keep-alive") {
        Some(SseItem::Comment(_)) => {}
        other => panic!("a `:` keep-alive comment follows, got {other:?}"),
    }
    assert!(
        waited.elapsed() < Duration::from_millis(SSE_KEEPALIVE_INTERVAL_MS * 3),
        "keep-alive within sse_keepalive_interval_ms={SSE_KEEPALIVE_INTERVAL_MS}"
    );

    let deleted = gw.call(&session.bare("DELETE", &gw.mcp_path()));
    assert_eq!(deleted.status, 200, "DELETE: {}", deleted.text());
    stream.set_read_timeout(Duration::from_secs(5));
    let ended_by = Instant::now() + Duration::from_secs(5);
    loop {
        match stream.next_sse(&mut parser) {
            Ok(None) => break,
            Ok(Some(SseItem::Comment(_))) => {}
            Ok(Some(item)) => panic!("unexpected item on a deleted session's stream: {item:?}"),
            Err(e) => panic!("stream did not end cleanly after DELETE: {e}"),
        }
        assert!(
            Instant::now() < ended_by,
            "stream still open 5 s after DELETE"
        );
    }
}

#[test]
fn get_without_session_is_400_unknown_is_404_and_wrong_accept_is_406() {
    let gw = gateway();
    let get = || Request::new("GET", &gw.mcp_path());
    assert_eq!(
        gw.call(&get().header("Accept", "text/event-stream")).status,
        400
    );
    let bogus = format!("00-{}", "f".repeat(32));
    let unknown = get()
        .header("Accept", "text/event-stream")
        .header("Mcp-Session-Id", &bogus);
    assert_eq!(gw.call(&unknown).status, 404);
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let wrong_accept = session
        .bare("GET", &gw.mcp_path())
        .header("Accept", "application/json");
    assert_eq!(gw.call(&wrong_accept).status, 406);
}

#[test]
fn sessions_are_usable_from_any_shard_via_forwarding() {
    const CONNECTIONS: usize = 20;
    let gw = Gateway::start(&config_with(""), 2);
    assert_eq!(gw.shards, 2, "ready line reports two shards");
    // Hold every connection open while initializing so the kernel spreads them over both shards.
    let mut conns: Vec<Conn> = (0..CONNECTIONS)
        .map(|_| Conn::connect(&gw.mcp_addr))
        .collect();
    let sessions: Vec<String> = conns
        .iter_mut()
        .map(|conn| {
            let response = gw.initialize_on(conn, 1, SESSION_VERSION_LATEST);
            assert_eq!(response.status, 200, "initialize: {}", response.text());
            response
                .header("Mcp-Session-Id")
                .expect("session id")
                .to_owned()
        })
        .collect();
    let mut by_owner: BTreeMap<String, usize> = BTreeMap::new();
    for id in &sessions {
        *by_owner.entry(id[..2].to_ascii_lowercase()).or_default() += 1;
    }
    assert_eq!(
        by_owner.len(),
        2,
        "20 connections landed on both shards: {by_owner:?}"
    );

    for (index, id) in sessions.iter().enumerate() {
        let session = Session {
            id: id.clone(),
            version: SESSION_VERSION_LATEST.into(),
        };
        let text = format!("call {index}");
        let result = tool_call(&gw, &session, "demo__echo", json!({"text": text}));
        assert!(
            content_text(&result).contains(&text),
            "session {id} echo: {result}"
        );
    }

    let status = gw.status();
    let shards = status["shards"].as_array().expect("shards array");
    assert_eq!(shards.len(), 2, "/status lists both shards: {status}");
    let per_shard: Vec<u64> = shards
        .iter()
        .map(|s| s["sessions"].as_u64().unwrap())
        .collect();
    assert!(
        per_shard.iter().all(|&n| n > 0),
        "sessions on both shards: {per_shard:?}"
    );
    assert_eq!(
        per_shard.iter().sum::<u64>(),
        CONNECTIONS as u64,
        "per-shard sum: {per_shard:?}"
    );
    assert_eq!(status["totals"]["sessions"], CONNECTIONS as u64);
    for shard in shards {
        let index = shard["shard"].as_u64().unwrap();
        let owned = by_owner
            .get(format!("{index:02x}").as_str())
            .copied()
            .unwrap_or(0);
        assert_eq!(
            shard["sessions"], owned as u64,
            "shard {index} holds the sessions it minted"
        );
    }
}

#[test]
fn get_stream_and_delete_work_for_sessions_owned_by_either_shard() {
    const STREAMS_PER_SESSION: usize = 4;
    let gw = Gateway::start(&config_with(""), 2);
    // Open sessions until each shard owns one (the kernel picks the shard per connection).
    let mut opened: Vec<Session> = Vec::new();
    let mut owned: BTreeMap<String, Session> = BTreeMap::new();
    while owned.len() < 2 && opened.len() < 64 {
        let session = gw.open_session(SESSION_VERSION_LATEST);
        owned
            .entry(session.id[..2].to_ascii_lowercase())
            .or_insert_with(|| session.clone());
        opened.push(session);
    }
    assert_eq!(
        owned.len(),
        2,
        "64 sessions all landed on one shard: {opened:?}"
    );
    // Fresh connections land on either shard, so some streams are served across the mesh.
    for session in owned.values() {
        for _ in 0..STREAMS_PER_SESSION {
            drop(open_primed_stream(&gw, session));
        }
    }
    // Fresh connections again: some DELETEs reach the owner only through the mesh.
    for session in &opened {
        let deleted = gw.call(&session.bare("DELETE", &gw.mcp_path()));
        assert_eq!(
            deleted.status,
            200,
            "DELETE {}: {}",
            session.id,
            deleted.text()
        );
        let after = gw.session_call(session, &rpc(2, "ping", json!({})));
        assert_eq!(
            after.status,
            404,
            "{} after DELETE: {}",
            session.id,
            after.text()
        );
    }
    assert_eq!(
        gw.sessions_total(),
        0,
        "both shards dropped every deleted session"
    );
}

#[test]
fn get_streams_end_at_the_session_idle_ttl_on_either_shard() {
    // Goal: an open GET stream does not keep its session alive, whichever shard serves it: the
    // stream held by the non-owning shard checks the owner without touching the session, so
    // both kinds end once the session idles past session_idle_ttl_ms (regression: forwarded
    // streams used to renew their session every second and never ended).
    const TTL_MS: u64 = 1500;
    let extra = format!(
        "[sessions]\nsession_idle_ttl_ms = {TTL_MS}\n[epoch]\ntick_ms = 100\n\
         [limits]\nsse_keepalive_interval_ms = {SSE_KEEPALIVE_INTERVAL_MS}\n"
    );
    let gw = Gateway::start(&config_with(&extra), 2);
    let mut owned: BTreeMap<String, Session> = BTreeMap::new();
    for _ in 0..64 {
        let session = gw.open_session(SESSION_VERSION_LATEST);
        owned.entry(session.id[..2].to_owned()).or_insert(session);
        if owned.len() == 2 {
            break;
        }
    }
    assert_eq!(owned.len(), 2, "sessions on both shards");
    let opened = Instant::now();
    let mut streams: Vec<(Conn, SseParser)> = Vec::new();
    for session in owned.values() {
        for _ in 0..4 {
            streams.push(open_primed_stream(&gw, session));
        }
    }
    // TTL, plus a full ring of ticks to retire it, plus one forwarded check, plus slack for CI.
    let bound = Duration::from_millis(TTL_MS + 4 * 100 + 1000 + 3000);
    for (stream, parser) in &mut streams {
        stream.set_read_timeout(bound);
        loop {
            match stream.next_sse(parser) {
                Ok(None) => break,
                Ok(Some(SseItem::Comment(_))) => assert!(
                    opened.elapsed() < bound,
                    "stream still open {:?} after opening",
                    opened.elapsed()
                ),
                Ok(Some(item)) => panic!("unexpected item on an expiring stream: {item:?}"),
                Err(e) => panic!(
                    "stream still open {:?} after opening: {e}",
                    opened.elapsed()
                ),
            }
        }
    }
    assert!(
        opened.elapsed() >= Duration::from_millis(TTL_MS),
        "streams ended before the idle TTL: {:?}",
        opened.elapsed()
    );
    assert_eq!(gw.sessions_total(), 0, "both sessions were reclaimed");
}
