//! The merged lists follow their upstreams' changes however those are announced: a session-era
//! `http` upstream's `list_changed` on its standalone GET stream (the listen stream the gateway
//! keeps open per shard), and a 2026-07-28 upstream's `ttlMs`, which announces nothing.
//!
//! Method: real peers (the Python SDK fixture over HTTP, in the handshake era alone or both
//! eras, and server-everything) behind the release binary; the scripted SDK client as the
//! downstream client; `/status` for the listen stream's state and counters and the lists' ttl.

mod common;

use common::mcp::upstream_status;
use common::sdk_client::{ok_result, run_client, tool_text};
use common::upstreams::{Everything, PythonUpstream};
use common::{config_with, Gateway};
use serde_json::{json, Value};
use std::time::Duration;

/// How long a test waits for the gateway to reach a state it polls `/status` for.
const SETTLE_DEADLINE: Duration = Duration::from_secs(20);

/// A `[[upstreams]]` entry of kind `http`.
fn http_upstream(name: &str, url: &str) -> String {
    format!("[[upstreams]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\n")
}

/// The listen stream of upstream `name` on every shard.
fn listens(status: &Value, shards: u32, name: &str) -> Vec<Value> {
    (0..shards as usize)
        .map(|shard| upstream_status(status, shard, name)["listen"].clone())
        .collect()
}

/// The sum of listen counter `key` of upstream `name` over every shard.
fn listen_total(status: &Value, shards: u32, name: &str, key: &str) -> u64 {
    listens(status, shards, name)
        .iter()
        .map(|listen| {
            listen[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key}: {listen}"))
        })
        .sum()
}

/// Waits until upstream `name`'s listen stream is open on every shard.
fn wait_listen_open(gw: &Gateway, name: &str) -> Value {
    gw.wait_status(
        SETTLE_DEADLINE,
        &format!("{name} listen streams open"),
        |status| {
            listens(status, gw.shards, name)
                .iter()
                .all(|listen| listen["state"] == "open")
        },
    )
}

/// A legacy client's script: `pyh__add_tool_later` registers `tool` on the upstream after the
/// call returned and announces it outside any request; the client then lists and calls it.
fn late_tool_script(tool: &str) -> Value {
    json!([
        {"op": "call", "tool": "pyh__add_tool_later", "args": {"name": tool, "delay_ms": 300}}, // 0
        {"op": "sleep", "s": 3.0},                                                              // 1
        {"op": "list_tools"},                                                                   // 2
        {"op": "call", "tool": format!("pyh__{tool}"), "args": {}},                             // 3
    ])
}

/// The client heard of the change on its GET stream, saw the tool listed and called it.
fn assert_late_tool_reached_the_client(report: &Value, tool: &str) {
    assert_eq!(
        tool_text(report, 0),
        format!("adding {tool} in 300 ms"),
        "{report:#}"
    );
    assert_eq!(
        report["notifications"],
        json!(["notifications/tools/list_changed"]),
        "{report:#}"
    );
    let listed = ok_result(report, 2)["tools"].as_array().unwrap();
    let name = format!("pyh__{tool}");
    assert!(
        listed.iter().any(|t| t["name"] == name.as_str()),
        "{name} not listed: {listed:?}"
    );
    assert_eq!(tool_text(report, 3), format!("pyh: {tool} called"));
}

#[test]
fn a_list_change_sent_outside_any_request_reaches_a_legacy_client_through_the_listen_stream() {
    // The fixture serves the handshake era alone, so the gateway speaks it (after a refused
    // server/discover) and opens the session's GET stream on each shard. The tool is added and
    // announced 300 ms after the call returned: only the GET stream can carry the news.
    let py = PythonUpstream::http_with("pyh", &["--handshake-only"]);
    let gw = Gateway::start(&config_with(&http_upstream("pyh", py.url())), 2);
    let status = wait_listen_open(&gw, "pyh");
    for shard in 0..2 {
        let pyh = upstream_status(&status, shard, "pyh");
        assert_eq!(pyh["up"], true, "{pyh:#}");
        assert_eq!(pyh["lists_ttl_ms"], Value::Null, "session era: no ttl");
        assert_eq!(pyh["listen"]["opened_total"], 1, "{pyh:#}");
        // The stream has a connection of its own, beside the pool's.
        assert_eq!(pyh["pool"]["dedicated_open"], 1, "{pyh:#}");
    }
    let report = run_client(&gw.mcp_url, "legacy", &late_tool_script("later"));
    assert_late_tool_reached_the_client(&report, "later");
    // The announcement arrived on the listen stream of the shard whose upstream session made
    // the call only; that shard told the other over the mesh, and both fetched the lists again
    // (the client's GET stream may live on either).
    let status = gw.status();
    assert_eq!(
        listen_total(&status, 2, "pyh", "list_changed_total"),
        1,
        "{status:#}"
    );
    assert_eq!(listen_total(&status, 2, "pyh", "ended_total"), 0);
    for shard in 0..2 {
        let pyh = upstream_status(&status, shard, "pyh");
        assert_eq!(pyh["lists_refreshes_total"], 2, "shard {shard}: {pyh:#}");
    }
}

#[test]
fn the_listen_stream_reopens_after_the_upstream_restarts_and_follows_its_new_session() {
    // Restarting the fixture ends the stream and forgets the session: the gateway retries the
    // GET (404 for the old session), refreshes the lists, whose request initializes a new
    // session, and opens the stream for that one. A change announced then still arrives.
    let mut py = PythonUpstream::http_with("pyh", &["--handshake-only"]);
    let gw = Gateway::start(&config_with(&http_upstream("pyh", py.url())), 1);
    wait_listen_open(&gw, "pyh");
    py.restart();
    let status = gw.wait_status(SETTLE_DEADLINE, "the listen stream reopened", |status| {
        let listen = &listens(status, 1, "pyh")[0];
        listen["state"] == "open" && listen["opened_total"].as_u64() >= Some(2)
    });
    let pyh = upstream_status(&status, 0, "pyh");
    assert!(pyh["listen"]["ended_total"].as_u64() >= Some(1), "{pyh:#}");
    assert!(pyh["listen"]["last_error"].is_string(), "{pyh:#}");
    assert_eq!(pyh["up"], true, "{pyh:#}");
    assert_eq!(
        pyh["pool"]["dedicated_open"], 1,
        "one stream, the old one closed"
    );
    let report = run_client(&gw.mcp_url, "legacy", &late_tool_script("after_restart"));
    assert_late_tool_reached_the_client(&report, "after_restart");
}

#[test]
fn a_server_without_a_listen_stream_is_asked_once_per_session() {
    // GET answered 405: the server offers no stream. The gateway notes it and stops asking;
    // calls and lists go on as before.
    let py = PythonUpstream::http_with("pyh", &["--handshake-only", "--no-get"]);
    let gw = Gateway::start(&config_with(&http_upstream("pyh", py.url())), 1);
    gw.wait_status(SETTLE_DEADLINE, "listen not offered", |status| {
        listens(status, 1, "pyh")[0]["state"] == "not_offered"
    });
    // Several epoch ticks and backoff periods later, still one GET: nothing was retried.
    std::thread::sleep(Duration::from_millis(2500));
    let pyh = upstream_status(&gw.status(), 0, "pyh");
    assert_eq!(pyh["listen"]["state"], "not_offered", "{pyh:#}");
    assert_eq!(pyh["listen"]["opened_total"], 0, "{pyh:#}");
    assert_eq!(pyh["listen"]["ended_total"], 0, "{pyh:#}");
    assert_eq!(pyh["pool"]["dedicated_open"], 0, "{pyh:#}");
    let report = run_client(
        &gw.mcp_url,
        "legacy",
        &json!([{"op": "call", "tool": "pyh__echo", "args": {"text": "still here"}}]),
    );
    assert_eq!(tool_text(&report, 0), "pyh: still here");
}

#[test]
fn requests_and_notifications_on_server_everythings_listen_stream_are_answered_and_counted() {
    // server-everything asks its client for roots/list on the GET stream after the handshake,
    // and with simulated logging on, sends log messages there every few seconds. No client
    // call is waiting for either: the request gets an error answer, the notifications are
    // dropped, and both are counted.
    let everyh = Everything::http();
    let gw = Gateway::start(&config_with(&http_upstream("everyh", everyh.url())), 1);
    wait_listen_open(&gw, "everyh");
    let report = run_client(
        &gw.mcp_url,
        "legacy",
        &json!([{"op": "call", "tool": "everyh__toggle-simulated-logging", "args": {}}]),
    );
    ok_result(&report, 0);
    let status = gw.wait_status(
        SETTLE_DEADLINE,
        "a refused request and a dropped notification",
        |status| {
            let listen = &listens(status, 1, "everyh")[0];
            listen["requests_refused_total"].as_u64() >= Some(1)
                && listen["notifications_dropped_total"].as_u64() >= Some(1)
        },
    );
    let everyh_status = upstream_status(&status, 0, "everyh");
    assert_eq!(
        everyh_status["listen"]["state"], "open",
        "{everyh_status:#}"
    );
    assert!(
        everyh_status["server_requests_refused_total"].as_u64() >= Some(1),
        "{everyh_status:#}"
    );
}

#[test]
fn a_stateless_upstreams_new_tool_appears_after_its_ttl_without_any_notification() {
    // The fixture in its default mode answers server/discover, so the gateway speaks the
    // 2026-07-28 era to it; its results carry the SDK's default `ttlMs: 0`. `add_tool` announces
    // nothing a gateway can hear (no subscriptions/listen stream is open): the lists are fetched
    // again once their ttl passed, at most once per epoch tick (1 s here).
    let py = PythonUpstream::http("pyd", false);
    let gw = Gateway::start(&config_with(&http_upstream("pyd", py.url())), 2);
    let status = gw.wait_status(SETTLE_DEADLINE, "ttl-driven refreshes", |status| {
        (0..2).all(|shard| {
            upstream_status(status, shard, "pyd")["lists_refreshes_total"].as_u64() >= Some(2)
        })
    });
    for shard in 0..2 {
        let pyd = upstream_status(&status, shard, "pyd");
        assert_eq!(pyd["lists_ttl_ms"], 0, "{pyd:#}");
        assert_eq!(pyd["listen"]["state"], "n/a", "{pyd:#}");
    }
    let script = json!([
        {"op": "call", "tool": "pyd__add_tool", "args": {"name": "fresh"}},   // 0
        {"op": "sleep", "s": 2.5},                                            // 1
        {"op": "list_tools"},                                                 // 2
        {"op": "call", "tool": "pyd__fresh", "args": {}},                     // 3
    ]);
    for mode in ["auto", "legacy"] {
        let report = run_client(&gw.mcp_url, mode, &script);
        let listed = ok_result(&report, 2)["tools"].as_array().unwrap();
        assert!(
            listed.iter().any(|t| t["name"] == "pyd__fresh"),
            "{mode}: pyd__fresh not listed: {listed:?}"
        );
        assert_eq!(tool_text(&report, 3), "pyd: fresh called", "{mode}");
    }
}

#[test]
fn a_stateless_upstreams_lists_are_not_fetched_again_before_their_ttl() {
    // `ttlMs: 60000` on discover and every list: over a few epoch ticks the lists stay as
    // fetched at start-up.
    let py = PythonUpstream::http_with("pyd", &["--list-ttl-ms", "60000"]);
    let gw = Gateway::start(&config_with(&http_upstream("pyd", py.url())), 1);
    let before = upstream_status(&gw.status(), 0, "pyd");
    assert_eq!(before["lists_ttl_ms"], 60000, "{before:#}");
    std::thread::sleep(Duration::from_millis(3500));
    let after = upstream_status(&gw.status(), 0, "pyd");
    assert_eq!(
        after["lists_refreshes_total"], before["lists_refreshes_total"],
        "refreshed before the ttl passed: {after:#}"
    );
}
