//! Interop with the official MCP Python SDK client (PyPI `mcp`, pinned in
//! `tests/interop/requirements.txt`, installed into `.deps/venv` by `tests/setup-deps`).
//!
//! Each test starts a 2-shard gateway and runs `tests/interop/sdk_client.py`, which opens several
//! concurrent SDK client sessions (each with its own connection pool, so the kernel spreads
//! them over both shards), lists tools, calls `echo` and `add`, reads `demo://readme`, gets the
//! `greet` prompt and prints the parsed results plus every HTTP exchange as JSON. The tests
//! assert exact values. `legacy` mode drives the session era (initialize, `Mcp-Session-Id`,
//! DELETE on close); `auto` mode probes `server/discover` and must settle on the stateless era.

mod common;
#[path = "interop/support.rs"]
mod support;

use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// Must match `ECHO_TEXT`, `ADD_ARGS` and `PROMPT_NAME` in `sdk_client.py`.
const ECHO_TEXT: &str = "h\u{e9}llo through the gateway";
const ADD_SUM: f64 = 6.5;
const PROMPT_NAME: &str = "Ada";
const LEGACY_SESSIONS: u32 = 16;
const AUTO_SESSIONS: u32 = 8;
const SHARDS: u32 = 2;

fn run_sdk_client(gw: &common::Gateway, mode: &str, sessions: u32) -> Vec<Value> {
    let mut cmd = Command::new(support::dep("venv/bin/python"));
    cmd.arg(support::interop_file("sdk_client.py"))
        .arg(&gw.mcp_url)
        .arg(mode)
        .arg(sessions.to_string());
    let what = format!("sdk_client.py {mode}");
    let out = support::run_with_deadline(&what, cmd, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let results: Vec<Value> = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{what} printed no JSON array ({e}); status {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            out.status
        )
    });
    for session in &results {
        if let Some(error) = session.get("error") {
            panic!(
                "{what} session {} failed:\n{}\nexchanges: {}",
                session["index"],
                error.as_str().unwrap_or_default(),
                session["exchanges"]
            );
        }
    }
    assert!(
        out.status.success(),
        "{what} exited with {}\nstderr:\n{stderr}",
        out.status
    );
    assert_eq!(
        results.len(),
        sessions as usize,
        "{what}: one result per session"
    );
    results
}

/// The demo upstream's answers, identical in both eras and on every shard.
fn assert_demo_results(session: &Value) {
    let ctx = format!("{} session {}", session["mode"], session["index"]);
    let tools = session["tools"]["tools"]
        .as_array()
        .expect("tools/list tools");
    let mut names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["demo__add", "demo__echo", "demo__sleep"],
        "{ctx}: tool names exposed as-is"
    );
    for tool in tools {
        assert_eq!(
            tool["inputSchema"]["type"], "object",
            "{ctx}: {} inputSchema",
            tool["name"]
        );
    }

    let echo = &session["echo"];
    assert_eq!(
        echo["content"],
        json!([{"type": "text", "text": ECHO_TEXT}]),
        "{ctx}: echo"
    );
    assert_ne!(echo["isError"], true, "{ctx}: echo isError");

    // The spec asks a tool with structured output to mirror it as JSON text.
    let add = &session["add"];
    assert_ne!(add["isError"], true, "{ctx}: add isError: {add}");
    assert_eq!(
        add["structuredContent"],
        json!({"sum": ADD_SUM}),
        "{ctx}: add"
    );
    let content = add["content"].as_array().expect("add content");
    assert_eq!(content.len(), 1, "{ctx}: add content {add}");
    assert_eq!(content[0]["type"], "text", "{ctx}: add content type");
    let text = content[0]["text"].as_str().unwrap();
    let mirrored: Value = serde_json::from_str(text)
        .unwrap_or_else(|e| panic!("{ctx}: add text {text:?} is not JSON: {e}"));
    assert_eq!(
        mirrored, add["structuredContent"],
        "{ctx}: add text mirrors structuredContent"
    );
    let add_tool = tools.iter().find(|t| t["name"] == "demo__add").unwrap();
    assert_eq!(
        add_tool["outputSchema"]["properties"]["sum"]["type"], "number",
        "{ctx}: add declares its structured output"
    );

    let contents = session["resource"]["contents"]
        .as_array()
        .expect("resources/read contents");
    assert_eq!(contents.len(), 1, "{ctx}: demo://readme contents");
    assert_eq!(contents[0]["uri"], "demo://readme", "{ctx}: resource uri");
    assert_eq!(
        contents[0]["mimeType"], "text/plain",
        "{ctx}: resource mimeType"
    );
    let readme = contents[0]["text"].as_str().expect("resource text");
    assert!(
        readme.starts_with("shardgate demo server\n"),
        "{ctx}: readme {readme:?}"
    );

    let messages = session["prompt"]["messages"]
        .as_array()
        .expect("prompts/get messages");
    assert_eq!(messages.len(), 1, "{ctx}: greet messages");
    assert_eq!(messages[0]["role"], "user", "{ctx}: greet role");
    assert_eq!(
        messages[0]["content"]["type"], "text",
        "{ctx}: greet content type"
    );
    let greeting = messages[0]["content"]["text"].as_str().unwrap();
    assert!(
        greeting.contains(PROMPT_NAME),
        "{ctx}: greet text {greeting:?} lacks the name"
    );
}

/// Every session saw the same readme: the shards serve one upstream.
fn assert_same_readme(results: &[Value]) {
    let first = &results[0]["resource"];
    for session in results {
        assert_eq!(
            &session["resource"], first,
            "session {} readme differs",
            session["index"]
        );
    }
}

fn exchanges(session: &Value) -> &Vec<Value> {
    session["exchanges"].as_array().expect("exchanges")
}

/// `<shard hex 2>-<32 hex>`; returns the shard.
fn session_shard(id: &str) -> u32 {
    let (shard, random) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("session id {id:?} lacks the shard prefix"));
    let hex = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(
        shard.len() == 2 && hex(shard),
        "session id {id:?}: shard part"
    );
    assert!(
        random.len() == 32 && hex(random),
        "session id {id:?}: 128 random bits as hex"
    );
    u32::from_str_radix(shard, 16).unwrap()
}

fn status_totals_sessions(gw: &common::Gateway) -> u64 {
    let (status, body) = support::http_get(&gw.admin_addr, "/status");
    assert_eq!(status, 200, "GET /status: {body}");
    let doc: Value = serde_json::from_str(&body).expect("/status is JSON");
    doc["totals"]["sessions"].as_u64().expect("totals.sessions")
}

#[test]
fn legacy_sdk_sessions_work_on_both_shards_and_are_deleted_on_close() {
    let gw = common::Gateway::start(&common::config_with(""), SHARDS);
    let results = run_sdk_client(&gw, "legacy", LEGACY_SESSIONS);
    let mut shards_seen = Vec::new();
    let mut ids_seen = Vec::new();
    for session in &results {
        let ctx = format!("legacy session {}", session["index"]);
        assert_demo_results(session);
        assert_eq!(
            session["protocol_version"], "2025-11-25",
            "{ctx}: negotiated version"
        );
        assert_eq!(
            session["server_info"]["name"], "shardgate",
            "{ctx}: serverInfo"
        );

        let wire = exchanges(session);
        let init = &wire[0];
        assert_eq!(
            (&init["rpc_method"], &init["status"]),
            (&json!("initialize"), &json!(200))
        );
        let id = init["session_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: no Mcp-Session-Id"));
        let shard = session_shard(id);
        assert!(shard < SHARDS, "{ctx}: session {id} names shard {shard}");
        shards_seen.push(shard);
        ids_seen.push(id.to_owned());
        // The SDK deletes its session on close; only its GET stream may race past that.
        let delete = wire
            .iter()
            .position(|e| e["http_method"] == "DELETE")
            .unwrap_or_else(|| panic!("{ctx}: the SDK sent no DELETE"));
        assert_eq!(
            wire[delete]["status"], 200,
            "{ctx}: DELETE of a live session"
        );
        for exchange in &wire[1..delete] {
            let expected = match (
                exchange["http_method"].as_str(),
                exchange["rpc_method"].as_str(),
            ) {
                (Some("POST"), Some(m)) if m.starts_with("notifications/") => 202,
                _ => 200,
            };
            assert_eq!(exchange["status"], expected, "{ctx}: {exchange}");
            assert_eq!(
                exchange["request_protocol_version"], "2025-11-25",
                "{ctx}: {exchange}"
            );
        }
        for exchange in &wire[delete + 1..] {
            assert_eq!(
                exchange["http_method"], "GET",
                "{ctx}: only the GET stream follows DELETE"
            );
        }
    }
    shards_seen.sort_unstable();
    shards_seen.dedup();
    assert_eq!(
        shards_seen,
        [0, 1],
        "{LEGACY_SESSIONS} sessions should land on both shards"
    );
    ids_seen.sort_unstable();
    ids_seen.dedup();
    assert_eq!(
        ids_seen.len(),
        LEGACY_SESSIONS as usize,
        "session ids are unique"
    );
    assert_same_readme(&results);
    assert_eq!(
        status_totals_sessions(&gw),
        0,
        "every SDK session was deleted on close"
    );
}

#[test]
fn auto_sdk_sessions_settle_on_the_stateless_era() {
    let gw = common::Gateway::start(&common::config_with(""), SHARDS);
    let results = run_sdk_client(&gw, "auto", AUTO_SESSIONS);
    for session in &results {
        let ctx = format!("auto session {}", session["index"]);
        assert_demo_results(session);
        assert_eq!(
            session["protocol_version"], "2026-07-28",
            "{ctx}: adopted version"
        );
        if !session["server_info"].is_null() {
            assert_eq!(
                session["server_info"]["name"], "shardgate",
                "{ctx}: serverInfo"
            );
        }
        let wire = exchanges(session);
        assert_eq!(
            wire[0]["rpc_method"], "server/discover",
            "{ctx}: the probe comes first"
        );
        for exchange in wire {
            assert_eq!(
                exchange["http_method"], "POST",
                "{ctx}: stateless era is POST only"
            );
            assert_ne!(
                exchange["rpc_method"], "initialize",
                "{ctx}: no handshake fallback"
            );
            assert_eq!(exchange["status"], 200, "{ctx}: {exchange}");
            assert_eq!(
                exchange["request_protocol_version"], "2026-07-28",
                "{ctx}: {exchange}"
            );
            assert!(
                exchange["session_id"].is_null(),
                "{ctx}: no session minted: {exchange}"
            );
        }
    }
    assert_same_readme(&results);
    assert_eq!(
        status_totals_sessions(&gw),
        0,
        "the stateless era keeps no sessions"
    );
}
