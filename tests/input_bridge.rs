//! Session-era clients and 2026-07-28 upstreams that ask for input.
//!
//! A 2026-07-28 upstream asks for sampling, elicitation or roots by answering a call with an
//! `input_required` result; a session-era client expects those as requests on the call's event
//! stream. Each test starts a 2-shard gateway in front of Python SDK fixtures that speak the
//! 2026-07-28 era (`upstream_server.py` and `conformance_upstream.py`) and drives it with the
//! scripted SDK client in `legacy` mode, or with raw HTTP where a test must control when (or
//! whether) the client answers. What it asserts: the client's callbacks saw the requests, the
//! final results carry their answers, a capability the client did not declare and the round
//! limit end the call with errors naming them, and afterwards nothing waits (`/status`).

mod common;

use common::mcp::{call_until_asked, open_roots_session, read_answer};
use common::sdk_client::{
    ok_result, run_client_answering, step_error, tool_text, CLIENT_ROOT, CLIENT_SAMPLED_PREFIX,
    SESSION_ERA,
};
use common::upstreams::{FixtureServer, PythonUpstream};
use common::{config_with, Gateway};
use serde_json::{json, Value};
use std::time::Duration;

/// How long a test waits for `/status` to show that nothing waits any more.
const SETTLE_DEADLINE: Duration = Duration::from_secs(15);

fn http_upstream(name: &str, url: &str, extra: &str) -> String {
    format!("[[upstreams]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n")
}

/// The sum of `/status` `shards[*].pending.<key>` over every shard.
fn pending_sum(status: &Value, key: &str) -> u64 {
    status["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .map(|shard| {
            shard["pending"][key]
                .as_u64()
                .unwrap_or_else(|| panic!("/status pending lacks {key}: {shard:#}"))
        })
        .sum()
}

/// Polls `/status` until no call is in flight, waits on input, or waits for a client's answer;
/// returns that status.
fn wait_idle(gw: &Gateway) -> Value {
    gw.wait_status(
        SETTLE_DEADLINE,
        "no call in flight, waiting on input or on a client's answer",
        |status| {
            ["entries", "relayed_requests", "input_calls"]
                .iter()
                .all(|key| pending_sum(status, key) == 0)
        },
    )
}

/// The text of every content block of a prompt's messages, in order.
fn prompt_texts(result: &Value) -> Vec<&str> {
    result["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["content"]["text"].as_str())
        .collect()
}

/// A 2-shard gateway before the Python stateless fixture (`py`) and the conformance fixture
/// (`conf`); the upstreams run while their handles live.
fn gateway_before_py_and_conf() -> (PythonUpstream, FixtureServer, Gateway) {
    let py = PythonUpstream::http("py", false);
    let conf = FixtureServer::start_http("conformance_upstream.py");
    let config = config_with(&format!(
        "{}{}",
        http_upstream("py", py.url(), ""),
        http_upstream("conf", &conf.url, "")
    ));
    let gw = Gateway::start(&config, 2);
    (py, conf, gw)
}

#[test]
fn session_era_clients_answer_a_stateless_upstreams_input_requests_on_the_calls_stream() {
    let (_py, _conf, gw) = gateway_before_py_and_conf();
    let script = json!([
        {"op": "call", "tool": "py__sample", "args": {"prompt": "pick"}},                      // 0
        {"op": "call", "tool": "py__elicit", "args": {"message": "proceed?"}},                 // 1
        {"op": "call", "tool": "py__roots", "args": {}},                                       // 2
        {"op": "call", "tool": "conf__test_input_required_result_sampling", "args": {}},       // 3
        {"op": "call", "tool": "conf__test_input_required_result_multiple_inputs", "args": {}},// 4
        {"op": "call", "tool": "conf__test_input_required_result_request_state", "args": {}},  // 5
        {"op": "call", "tool": "conf__test_input_required_result_multi_round", "args": {}},    // 6
        {"op": "get_prompt", "name": "conf__test_input_required_result_prompt", "args": {}},   // 7
        {"op": "call", "tool": "py__echo", "args": {"text": "plain"}},                         // 8
    ]);
    let report = run_client_answering(&gw.mcp_url, "legacy", &script, None);
    assert_eq!(report["protocol_version"], SESSION_ERA, "{report:#}");
    assert_eq!(
        tool_text(&report, 0),
        format!("sampled: {CLIENT_SAMPLED_PREFIX}pick")
    );
    assert_eq!(tool_text(&report, 1), "yes");
    assert_eq!(tool_text(&report, 2), CLIENT_ROOT);
    assert_eq!(
        tool_text(&report, 3),
        format!("Model said: {CLIENT_SAMPLED_PREFIX}What is the capital of France?")
    );
    assert_eq!(tool_text(&report, 4), "All inputs received.");
    assert_eq!(tool_text(&report, 5), "state-ok: confirmation received");
    // Two rounds: the name, then the colour, each answered "yes" by the client.
    assert_eq!(tool_text(&report, 6), "yes likes yes.");
    assert_eq!(
        prompt_texts(ok_result(&report, 7)),
        ["Use the following context: yes"]
    );
    assert_eq!(tool_text(&report, 8), "py: plain");
    let asked: Vec<&str> = report["server_requests"]
        .as_array()
        .expect("server_requests")
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let count = |method: &str| asked.iter().filter(|m| **m == method).count();
    // py: one of each; conf: sampling, then three at once, one, two rounds, one for the prompt.
    assert_eq!(count("sampling/createMessage"), 3, "{asked:?}");
    assert_eq!(count("elicitation/create"), 6, "{asked:?}");
    assert_eq!(count("roots/list"), 2, "{asked:?}");
    let status = wait_idle(&gw);
    assert_eq!(pending_sum(&status, "input_rounds_total"), 9, "{status:#}");
    assert_eq!(pending_sum(&status, "input_rounds_exceeded_total"), 0);
}

#[test]
fn an_input_request_for_an_undeclared_capability_ends_the_call_with_an_error_naming_it() {
    let (_py, _conf, gw) = gateway_before_py_and_conf();
    let script = json!([
        // Asks for an elicitation whatever the client declared: the gateway refuses it.
        {"op": "call", "tool": "conf__test_streaming_elicitation", "args": {}},   // 0
        // Reads the declared capabilities the gateway passes on, and refuses by itself.
        {"op": "call", "tool": "py__elicit", "args": {"message": "proceed?"}},    // 1
        // What the client declared still reaches it.
        {"op": "call", "tool": "py__sample", "args": {"prompt": "still"}},        // 2
    ]);
    let report = run_client_answering(&gw.mcp_url, "legacy", &script, Some("sampling"));
    let refused = step_error(&report, 0);
    assert_eq!(refused["code"], -32021, "{refused:#}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("upstream conf asks the client for elicitation/create")
            && message.contains("did not declare the elicitation capability"),
        "{refused:#}"
    );
    let upstream_refused = step_error(&report, 1);
    assert_eq!(upstream_refused["code"], -32021, "{upstream_refused:#}");
    assert!(
        upstream_refused["message"]
            .as_str()
            .unwrap()
            .contains("elicitation"),
        "{upstream_refused:#}"
    );
    assert_eq!(
        tool_text(&report, 2),
        format!("sampled: {CLIENT_SAMPLED_PREFIX}still")
    );
    assert_eq!(report["server_requests"], json!(["sampling/createMessage"]));
    wait_idle(&gw);
}

#[test]
fn a_call_whose_upstream_asks_forever_ends_at_input_rounds_max() {
    const ROUNDS_MAX: u64 = 3;
    let py = PythonUpstream::http("py", false);
    let config = config_with(&format!(
        "{}\n[pending]\ninput_rounds_max = {ROUNDS_MAX}\n",
        http_upstream("py", py.url(), "")
    ));
    let gw = Gateway::start(&config, 2);
    let script = json!([
        {"op": "call", "tool": "py__ask_forever", "args": {}},       // 0
        {"op": "call", "tool": "py__roots", "args": {}},             // 1
    ]);
    let report = run_client_answering(&gw.mcp_url, "legacy", &script, None);
    let error = step_error(&report, 0);
    let message = error["message"].as_str().unwrap();
    assert_eq!(
        message,
        format!(
            "upstream py still asks for input after {ROUNDS_MAX} rounds of the client's answers \
             (pending.input_rounds_max {ROUNDS_MAX})"
        ),
        "{error:#}"
    );
    // Every round was asked of the client; the call after it works as before.
    assert_eq!(tool_text(&report, 1), CLIENT_ROOT);
    let roots = report["server_requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| *m == "roots/list")
        .count() as u64;
    assert_eq!(roots, ROUNDS_MAX + 1, "{report:#}");
    let status = wait_idle(&gw);
    assert_eq!(pending_sum(&status, "input_rounds_exceeded_total"), 1);
    assert_eq!(pending_sum(&status, "input_rounds_total"), ROUNDS_MAX + 1);
}

#[test]
fn input_requests_end_with_the_call_when_its_client_is_silent_or_leaves() {
    let py = PythonUpstream::http("py", false);
    let config = config_with(&http_upstream("py", py.url(), "request_timeout_ms = 1500"));
    let gw = Gateway::start(&config, 1);
    let session = open_roots_session(&gw);

    // Answered on the wire: the final answer is a session-era result, no resultType.
    let (mut conn, mut parser, request) = call_until_asked(&gw, &session, "py__roots");
    let roots = json!({"roots": [{"uri": "file:///wire", "name": "wire"}]});
    let reply = json!({"jsonrpc": "2.0", "id": request["id"], "result": roots});
    assert_eq!(gw.session_call(&session, &reply).status, 202);
    let answer = read_answer(&mut conn, &mut parser);
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(
        answer["result"]["content"][0]["text"], "file:///wire",
        "{answer}"
    );
    assert!(answer["result"].get("resultType").is_none(), "{answer}");
    wait_idle(&gw);

    // Silent: the call's deadline ends it, with an error naming the wait.
    let (mut conn, mut parser, _) = call_until_asked(&gw, &session, "py__roots");
    let answer = read_answer(&mut conn, &mut parser);
    assert_eq!(answer["id"], 7, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("did not answer") || message.contains("request_timeout_ms"),
        "{answer}"
    );
    wait_idle(&gw);

    // Gone: closing the stream cancels the call and forgets its input request.
    let (conn, _, request) = call_until_asked(&gw, &session, "py__roots");
    let status = gw.status();
    assert_eq!(pending_sum(&status, "input_calls"), 1, "{status:#}");
    assert_eq!(pending_sum(&status, "relayed_requests"), 1, "{status:#}");
    drop(conn);
    let status = wait_idle(&gw);
    assert!(pending_sum(&status, "cancelled_total") >= 1, "{status:#}");
    // A late answer to the forgotten request is accepted and dropped.
    let late = json!({"jsonrpc": "2.0", "id": request["id"], "result": {"roots": []}});
    assert_eq!(gw.session_call(&session, &late).status, 202);
    wait_idle(&gw);
}
