//! Upstream sessions per client session (`session_mode = "per_client"`) against a real
//! session-era server, and the shared mode beside it.
//!
//! Method: the Python SDK fixture over HTTP with `--handshake-only` (it refuses the 2026-07-28
//! era, so the gateway keeps sessions with it) behind a 2-shard gateway. The fixture's tools say
//! which `Mcp-Session-Id` a call came under (`session_id`), which ids it gave and which a
//! `DELETE` ended (`session_log`), and make it answer 404 for an id from then on
//! (`expire_session`). Clients are the Python SDK client in legacy mode (it sends `DELETE` when
//! it closes) and raw session-era requests where a test needs a client that never says goodbye.
//! What is asserted is what the upstream saw and what `/status` shows.

mod common;

use common::mcp::{content_text, stateless_body, Session};
use common::sdk_client::{log_texts, progress_pairs, run_client, tool_text, CLIENT_SAMPLED_PREFIX};
use common::upstreams::PythonUpstream;
use common::{config_with, poll_until, send_signal, wait_exit, Gateway};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// How long a test waits for the gateway or the upstream to reach a state it polls for.
const SETTLE_DEADLINE: Duration = Duration::from_secs(15);
/// Shards of every gateway here.
const SHARDS: u32 = 2;

/// A gateway on two shards in front of the handshake-only fixture `py` with `session_mode`,
/// plus `extra` config sections.
fn gateway(upstream: &PythonUpstream, session_mode: &str, extra: &str) -> Gateway {
    let config = config_with(&format!(
        "[[upstreams]]\nname = \"py\"\nkind = \"http\"\nurl = \"{}\"\nsession_mode = \"{session_mode}\"\n\n{extra}",
        upstream.url()
    ));
    Gateway::start(&config, SHARDS)
}

/// The ids the upstream gave at initialize and the ids a DELETE ended, as it logged them.
struct UpstreamLog {
    opened: Vec<String>,
    deleted: Vec<String>,
}

/// The fixture's `session_log`, asked through the gateway by a stateless-era client (which
/// goes under a shard's shared session).
fn upstream_log(gw: &Gateway) -> UpstreamLog {
    let text = stateless_tool_text(gw, "py__session_log");
    let log: Value = serde_json::from_str(&text).expect("session_log answers JSON");
    let ids = |member: &str| -> Vec<String> {
        log[member]
            .as_array()
            .unwrap_or_else(|| panic!("session_log lacks {member}: {log}"))
            .iter()
            .map(|id| id.as_str().expect("ids are strings").to_owned())
            .collect()
    };
    UpstreamLog {
        opened: ids("opened"),
        deleted: ids("deleted"),
    }
}

/// The text a stateless-era `tools/call` of `tool` (no arguments) answers.
fn stateless_tool_text(gw: &Gateway, tool: &str) -> String {
    let body = stateless_body(1, "tools/call", json!({"name": tool, "arguments": {}}));
    let response = gw.stateless(&body);
    let answer = response.json();
    assert_eq!(response.status, 200, "{tool}: {answer}");
    assert!(answer["result"]["isError"] != true, "{tool}: {answer}");
    content_text(&answer["result"])
}

/// The text a session-era `tools/call` of `tool` on `session` answers; panics on an error.
fn session_tool_text(gw: &Gateway, session: &Session, tool: &str, arguments: Value) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": tool, "arguments": arguments}});
    let response = gw.session_call(session, &body);
    let answer = response.json();
    assert_eq!(response.status, 200, "{tool}: {answer}");
    assert!(
        answer["result"].is_object() && answer["result"]["isError"] != true,
        "{tool} answered an error: {answer}"
    );
    content_text(&answer["result"])
}

/// `upstream_sessions` of upstream `py` on each shard (null for a shared-mode upstream).
fn upstream_sessions(status: &Value) -> Vec<Value> {
    status["shards"]
        .as_array()
        .expect("shards array")
        .iter()
        .map(|shard| {
            let py = shard["upstreams"]
                .as_array()
                .expect("upstreams array")
                .iter()
                .find(|u| u["name"] == "py")
                .unwrap_or_else(|| panic!("no upstream py on a shard: {status:#}"));
            py["upstream_sessions"].clone()
        })
        .collect()
}

/// Sum of counter `name` of `upstream_sessions` over the shards.
fn sessions_sum(status: &Value, name: &str) -> u64 {
    upstream_sessions(status)
        .iter()
        .map(|s| {
            s[name]
                .as_u64()
                .unwrap_or_else(|| panic!("upstream_sessions.{name}: {status:#}"))
        })
        .sum()
}

/// Polls until `done` holds; returns its last value or panics naming `what`.
fn wait_for<T>(what: &str, probe: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    poll_until(SETTLE_DEADLINE, Duration::from_millis(100), probe, done)
        .unwrap_or_else(|_| panic!("{what} not reached within {SETTLE_DEADLINE:?}"))
}

/// The session ids the shared sessions use: one per shard, opened at start-up before any
/// client called.
fn shared_sessions(gw: &Gateway) -> HashSet<String> {
    let log = upstream_log(gw);
    assert_eq!(
        log.opened.len(),
        SHARDS as usize,
        "one shared session per shard at start-up: {:?}",
        log.opened
    );
    log.opened.into_iter().collect()
}

#[test]
fn each_sdk_client_session_gets_its_own_upstream_session_closed_when_it_leaves() {
    let upstream = PythonUpstream::http_handshake_only("py");
    let gw = gateway(&upstream, "per_client", "");
    let shared = shared_sessions(&gw);
    let script = json!([
        {"op": "call", "tool": "py__session_id", "args": {}},
        {"op": "call", "tool": "py__session_id", "args": {}},
        {"op": "set_level", "level": "debug"},
        {"op": "call", "tool": "py__log", "args": {"message": "own session", "level": "debug"}},
        {"op": "call", "tool": "py__session_id", "args": {}},
        {"op": "call", "tool": "py__sample", "args": {"prompt": "asked under its session"}},
        {"op": "call_progress", "tool": "py__progress", "args": {"steps": 2}},
    ]);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let report = run_client(&gw.mcp_url, "legacy", &script);
        let first = tool_text(&report, 0).to_owned();
        assert_eq!(
            tool_text(&report, 1),
            first,
            "one client, one upstream session"
        );
        assert_eq!(tool_text(&report, 4), first, "setLevel kept the session");
        assert!(
            log_texts(&report).contains(&"own session"),
            "the log notification reached its client: {report:#}"
        );
        // The upstream's request mid-call reached the client, and its answer went back under
        // the same upstream session.
        assert_eq!(
            tool_text(&report, 5),
            format!("sampled: {CLIENT_SAMPLED_PREFIX}asked under its session")
        );
        assert_eq!(progress_pairs(&report, 6), [(1.0, 2.0), (2.0, 2.0)]);
        assert_eq!(tool_text(&report, 6), "done 2");
        assert!(
            !shared.contains(&first),
            "a session-era client's call went under a shared session {first}"
        );
        seen.push(first);
    }
    assert_ne!(seen[0], seen[1], "two clients, two upstream sessions");
    // Both SDK clients closed with DELETE; the gateway passes that on to their upstream
    // sessions.
    let log = wait_for(
        "the upstream seeing both client sessions deleted",
        || upstream_log(&gw),
        |log| seen.iter().all(|id| log.deleted.contains(id)),
    );
    assert!(
        log.deleted.iter().all(|id| !shared.contains(id)),
        "shared sessions stay open: {:?}",
        log.deleted
    );
    // A stateless-era client goes under a shard's shared session.
    let stateless = stateless_tool_text(&gw, "py__session_id");
    assert!(shared.contains(&stateless), "{stateless} not in {shared:?}");
    let status = wait_for(
        "upstream_sessions.open back at 0",
        || gw.status(),
        |status| sessions_sum(status, "open") == 0 && sessions_sum(status, "closing") == 0,
    );
    assert_eq!(sessions_sum(&status, "opened_total"), 2, "{status:#}");
    assert_eq!(sessions_sum(&status, "closed_total"), 2, "{status:#}");
    assert_eq!(sessions_sum(&status, "close_failed_total"), 0, "{status:#}");
}

#[test]
fn idle_client_sessions_up_to_sessions_max_close_their_upstream_sessions_when_they_expire() {
    const SESSIONS_MAX: u64 = 3;
    let upstream = PythonUpstream::http_handshake_only("py");
    let extra = format!(
        "[sessions]\nsessions_max = {SESSIONS_MAX}\nsession_idle_ttl_ms = 3000\n\n\
         [epoch]\ntick_ms = 100\ngenerations = 2\n"
    );
    let gw = gateway(&upstream, "per_client", &extra);
    // More clients than both shards hold: each opened session calls once, then goes quiet
    // without a DELETE. The kernel spreads the connections, so which shard refuses is not
    // known; how many it holds is.
    let mut sessions = Vec::new();
    let mut refused = 0;
    for _ in 0..(SESSIONS_MAX * u64::from(SHARDS) + 4) {
        let mut conn = common::client::Conn::connect(&gw.mcp_addr);
        let response = gw.initialize_on(&mut conn, 1, "2025-11-25");
        if response.status == 503 {
            refused += 1;
            continue;
        }
        assert_eq!(response.status, 200, "{}", response.text());
        let session = Session {
            id: response.header("Mcp-Session-Id").unwrap().to_owned(),
            version: "2025-11-25".to_owned(),
        };
        let upstream_id = session_tool_text(&gw, &session, "py__session_id", json!({}));
        sessions.push(upstream_id);
    }
    assert!(
        refused >= 4,
        "sessions_max {SESSIONS_MAX} per shard refused {refused}"
    );
    let status = gw.status();
    for (shard, stats) in upstream_sessions(&status).iter().enumerate() {
        let open = stats["open"].as_u64().unwrap();
        assert_eq!(stats["open_max"], SESSIONS_MAX, "{status:#}");
        assert!(open <= SESSIONS_MAX, "shard {shard}: {stats}");
        assert_eq!(
            open,
            status["shards"][shard]["sessions"].as_u64().unwrap(),
            "one upstream session per client session that called: {status:#}"
        );
    }
    let unique: HashSet<&String> = sessions.iter().collect();
    assert_eq!(
        unique.len(),
        sessions.len(),
        "every client its own: {sessions:?}"
    );
    // Idle past session_idle_ttl_ms: the client sessions expire, and their upstream sessions
    // get their DELETE.
    let log = wait_for(
        "the upstream seeing every idle client's session deleted",
        || upstream_log(&gw),
        |log| sessions.iter().all(|id| log.deleted.contains(id)),
    );
    assert_eq!(log.deleted.len(), sessions.len(), "{:?}", log.deleted);
    let status = wait_for(
        "upstream_sessions.open back at 0",
        || gw.status(),
        |status| sessions_sum(status, "open") == 0 && sessions_sum(status, "closing") == 0,
    );
    assert_eq!(
        sessions_sum(&status, "closed_total"),
        sessions.len() as u64,
        "{status:#}"
    );
}

#[test]
fn an_upstream_session_the_server_expired_is_initialized_again_transparently() {
    let upstream = PythonUpstream::http_handshake_only("py");
    let gw = gateway(&upstream, "per_client", "");
    let session = gw.open_session("2025-11-25");
    let first = session_tool_text(&gw, &session, "py__session_id", json!({}));
    let expired = session_tool_text(&gw, &session, "py__expire_session", json!({"id": first}));
    assert_eq!(expired, format!("expired {first}"));
    // The upstream now answers 404 under `first`: the gateway initializes again and the call
    // goes through under the new session, the client none the wiser.
    let second = session_tool_text(&gw, &session, "py__session_id", json!({}));
    assert_ne!(second, first);
    assert_eq!(
        session_tool_text(&gw, &session, "py__session_id", json!({})),
        second,
        "later calls keep the new session"
    );
    let status = gw.status();
    assert_eq!(sessions_sum(&status, "expired_total"), 1, "{status:#}");
    assert_eq!(sessions_sum(&status, "opened_total"), 2, "{status:#}");
    // The client's DELETE closes the session it has now, not the expired one.
    let deleted = gw.call(&session.bare("DELETE", &gw.mcp_path()));
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    let log = wait_for(
        "the upstream seeing the new session deleted",
        || upstream_log(&gw),
        |log| log.deleted.contains(&second),
    );
    assert!(!log.deleted.contains(&first), "{:?}", log.deleted);
    wait_for(
        "upstream_sessions.open back at 0",
        || gw.status(),
        |status| sessions_sum(status, "open") == 0,
    );
}

#[test]
fn a_shared_mode_upstream_sees_one_session_per_shard_whatever_the_clients() {
    let upstream = PythonUpstream::http_handshake_only("py");
    let gw = gateway(&upstream, "shared", "");
    let shared = shared_sessions(&gw);
    let script = json!([{"op": "call", "tool": "py__session_id", "args": {}}]);
    for _ in 0..3 {
        let report = run_client(&gw.mcp_url, "legacy", &script);
        let id = tool_text(&report, 0).to_owned();
        assert!(shared.contains(&id), "{id} not in {shared:?}");
    }
    let log = upstream_log(&gw);
    assert_eq!(log.opened.len(), SHARDS as usize, "{:?}", log.opened);
    assert!(log.deleted.is_empty(), "{:?}", log.deleted);
    let status = gw.status();
    assert!(
        upstream_sessions(&status).iter().all(Value::is_null),
        "a shared-mode upstream keeps no per-client table: {status:#}"
    );
}

#[test]
fn a_stopping_gateway_deletes_the_upstream_sessions_of_its_client_sessions() {
    let upstream = PythonUpstream::http_handshake_only("py");
    let mut gw = gateway(&upstream, "per_client", "");
    let ids: Vec<String> = (0..3)
        .map(|_| {
            let session = gw.open_session("2025-11-25");
            session_tool_text(&gw, &session, "py__session_id", json!({}))
        })
        .collect();
    send_signal(gw.pid(), "TERM");
    let exited = wait_exit(&mut gw.child, SETTLE_DEADLINE).expect("the gateway stops");
    assert!(exited.success(), "{exited}");
    // Asked directly: the gateway is gone.
    let script = json!([{"op": "call", "tool": "session_log", "args": {}}]);
    let report = run_client(upstream.url(), "legacy", &script);
    let log: Value = serde_json::from_str(tool_text(&report, 0)).unwrap();
    let deleted: Vec<&str> = log["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for id in &ids {
        assert!(deleted.contains(&id.as_str()), "{id} not deleted: {log}");
    }
}

#[test]
fn a_session_that_expires_again_right_after_initializing_is_an_error_naming_the_upstream() {
    let upstream = PythonUpstream::http_handshake_only("py");
    let gw = gateway(&upstream, "per_client", "");
    let session = gw.open_session("2025-11-25");
    session_tool_text(&gw, &session, "py__session_id", json!({}));
    session_tool_text(&gw, &session, "py__expire_all_sessions", json!({}));
    // 404 under the old session, initialize again (the server gives a new one), 404 again:
    // the client gets an error rather than a loop.
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                      "params": {"name": "py__session_id", "arguments": {}}});
    let answer = gw.session_call(&session, &body).json();
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {answer}"));
    assert!(
        message.contains("upstream py") && message.contains("expired again"),
        "{message}"
    );
    assert_eq!(answer["error"]["data"]["upstream"], "py", "{answer}");
    let status = gw.status();
    assert_eq!(sessions_sum(&status, "expired_total"), 1, "{status:#}");
    assert_eq!(
        sessions_sum(&status, "open"),
        0,
        "a failed open keeps nothing: {status:#}"
    );
}
