//! `limits.json_depth_max` holds wherever JSON enters the gateway.
//!
//! A message whose objects and arrays nest deeper than the limit (the message's own object
//! counting as one) is refused where it enters: a client's with HTTP 400 and -32600 naming the
//! key and its value, an upstream's by failing the one call it came for with an error naming
//! the upstream and the limit. Each test sends messages nesting exactly the limit, which are
//! served, and one level deeper, which are refused, in each place JSON comes from: request
//! params and tool arguments in both eras, a session-era client's answer to a 2026-07-28
//! upstream's input request (nested 200 deep, it once aborted the whole process), upstream
//! results (a JSON body, an SSE event, a stdio line, one with its id after the result) and an
//! upstream's notification on a call's event stream. After every refusal the process is still running and another client is
//! served. 2-shard gateways, so that requests also cross the mesh.

mod common;

use common::mcp::{
    call_until_asked, open_roots_session, read_answer, rpc, stateless_body, Session,
    SESSION_VERSION_LATEST,
};
use common::upstreams::{
    hostile_stdio_id_last_command, python_stdio_command, toml_string_array, PythonUpstream,
};
use common::{config_with, Gateway};
use serde_json::{json, Value};

/// The default of `limits.json_depth_max`.
const DEFAULT_DEPTH_MAX: usize = 64;
/// The limit the other tests configure, well inside what every fixture writes and reads.
const DEPTH_MAX: usize = 24;

/// `levels` arrays one inside the other around a `0`: a value nesting `levels` deep.
fn nest(levels: usize) -> Value {
    (0..levels).fold(json!(0), |inner, _| json!([inner]))
}

/// What every refusal for depth says, for `limit`.
fn names_limit(limit: usize) -> String {
    format!("limits.json_depth_max ({limit} levels)")
}

fn http_upstream(name: &str, url: &str) -> String {
    format!("[[upstreams]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\n")
}

fn stdio_upstream(name: &str, (program, args): (String, Vec<String>)) -> String {
    format!(
        "[[upstreams]]\nname = \"{name}\"\nkind = \"stdio\"\ncommand = {}\nargs = {}\n",
        toml::Value::String(program),
        toml_string_array(&args)
    )
}

fn limits(depth_max: usize) -> String {
    format!("[limits]\njson_depth_max = {depth_max}\n")
}

/// The sum over shards of `/status` `totals.refusals.json_too_deep`.
fn refused_too_deep(gw: &Gateway) -> u64 {
    gw.status()["totals"]["refusals"]["json_too_deep"]
        .as_u64()
        .unwrap_or(0)
}

/// The sum over shards of upstream `name`'s `messages_too_deep_total`.
fn upstream_too_deep(gw: &Gateway, name: &str) -> u64 {
    let status = gw.status();
    status["shards"]
        .as_array()
        .expect("shards")
        .iter()
        .flat_map(|shard| shard["upstreams"].as_array().expect("upstreams"))
        .filter(|upstream| upstream["name"] == name)
        .map(|upstream| {
            upstream["messages_too_deep_total"]
                .as_u64()
                .expect("counter")
        })
        .sum()
}

/// The text of a `tools/call` answer, or a panic naming what came instead.
fn tool_text(answer: &Value) -> String {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result: {answer}"))
        .to_owned()
}

/// The process still runs, and a new client (its own session) is served by upstream `py`.
fn still_serving(gw: &mut Gateway) {
    assert_eq!(gw.child.try_wait().expect("poll the gateway"), None);
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let call = rpc(
        99,
        "tools/call",
        json!({"name": "py__echo", "arguments": {"text": "after"}}),
    );
    let answer = gw.session_call(&session, &call);
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(tool_text(&answer.json()), "py: after");
}

/// A client's message refused for its depth: 400, -32600, the limit named, the id kept.
fn assert_refused(response: &common::client::Response, id: u64, limit: usize) {
    assert_refused_value(response, &json!(id), limit);
}

fn assert_refused_value(response: &common::client::Response, id: &Value, limit: usize) {
    assert_eq!(response.status, 400, "{}", response.text());
    let body = response.json();
    assert_eq!(body["error"]["code"], -32600, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(&names_limit(limit)), "{body}");
    assert_eq!(&body["id"], id, "{body}");
}

#[test]
fn client_requests_nested_past_json_depth_max_are_refused_naming_it() {
    let py = PythonUpstream::http("py", false);
    let config = config_with(&format!(
        "{}{}",
        http_upstream("py", py.url()),
        limits(DEPTH_MAX)
    ));
    let mut gw = Gateway::start(&config, 2);
    let session = gw.open_session(SESSION_VERSION_LATEST);
    // Envelope levels: the message, then `params` (2), then `arguments` (3).
    let list = |id: u64, levels: usize| rpc(id, "tools/list", json!({"x": nest(levels)}));
    let echo = |levels: usize| {
        let arguments = json!({"text": "deep", "deep": nest(levels)});
        json!({"name": "py__echo", "arguments": arguments})
    };
    let call = |id: u64, levels: usize| rpc(id, "tools/call", echo(levels));
    let stateless_call = |id: u64, levels: usize| stateless_body(id, "tools/call", echo(levels));

    let listed = gw.session_call(&session, &list(1, DEPTH_MAX - 2));
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert!(listed.json()["result"]["tools"].is_array());
    let called = gw.session_call(&session, &call(2, DEPTH_MAX - 3));
    assert_eq!(tool_text(&called.json()), "py: deep");
    let stateless = gw.stateless(&stateless_call(3, DEPTH_MAX - 3));
    assert_eq!(stateless.status, 200, "{}", stateless.text());
    assert_eq!(tool_text(&stateless.json()), "py: deep");
    assert_eq!(refused_too_deep(&gw), 0);

    assert_refused(
        &gw.session_call(&session, &list(4, DEPTH_MAX - 1)),
        4,
        DEPTH_MAX,
    );
    still_serving(&mut gw);
    let refused = gw.session_call(&session, &call(5, DEPTH_MAX - 2));
    assert_refused(&refused, 5, DEPTH_MAX);
    let message = refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.ends_with("in its \"params\" member"), "{message}");
    still_serving(&mut gw);
    assert_refused(
        &gw.stateless(&stateless_call(6, DEPTH_MAX - 2)),
        6,
        DEPTH_MAX,
    );
    still_serving(&mut gw);
    assert_eq!(refused_too_deep(&gw), 3);
}

/// The client's answer to `request` (roots/list): one root, and `_meta` holding `levels`
/// arrays, so that the message nests `levels + 3` deep (message, result, `_meta`).
fn roots_answer(request: &Value, levels: usize) -> Value {
    let roots = json!([{"uri": "file:///deep", "name": "deep"}]);
    json!({
        "jsonrpc": "2.0",
        "id": request["id"],
        "result": {"roots": roots, "_meta": {"deep": nest(levels)}}
    })
}

#[test]
fn a_session_era_clients_input_answer_nested_too_deep_ends_its_call_not_the_gateway() {
    // The shipped default, as in the defect: no `[limits]` at all.
    let py = PythonUpstream::http("py", false);
    let mut gw = Gateway::start(&config_with(&http_upstream("py", py.url())), 2);
    let session = open_roots_session(&gw);

    let (mut conn, mut parser, request) = call_until_asked(&gw, &session, "py__roots");
    let answer = roots_answer(&request, DEFAULT_DEPTH_MAX - 3);
    assert_eq!(gw.session_call(&session, &answer).status, 202);
    let result = read_answer(&mut conn, &mut parser);
    assert_eq!(tool_text(&result), "file:///deep", "{result}");

    // 200 deep: refused, and the call it answers ends with an error saying so.
    let (mut conn, mut parser, request) = call_until_asked(&gw, &session, "py__roots");
    let refused = gw.session_call(&session, &roots_answer(&request, 197));
    assert_refused_value(&refused, &request["id"], DEFAULT_DEPTH_MAX);
    let ended = read_answer(&mut conn, &mut parser);
    assert_eq!(ended["id"], 7, "{ended}");
    let message = ended["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("upstream py") && message.contains(&names_limit(DEFAULT_DEPTH_MAX)),
        "{ended}"
    );
    assert_eq!(refused_too_deep(&gw), 1);
    still_serving(&mut gw);

    // One level past the limit is refused the same way; the session still works after it.
    let (mut conn, mut parser, request) = call_until_asked(&gw, &session, "py__roots");
    let refused = gw.session_call(&session, &roots_answer(&request, DEFAULT_DEPTH_MAX - 2));
    assert_refused_value(&refused, &request["id"], DEFAULT_DEPTH_MAX);
    assert!(read_answer(&mut conn, &mut parser)["error"].is_object());
    assert_eq!(refused_too_deep(&gw), 2);
    still_serving(&mut gw);
    let (mut conn, mut parser, request) = call_until_asked(&gw, &session, "py__roots");
    let answer = roots_answer(&request, 1);
    assert_eq!(gw.session_call(&session, &answer).status, 202);
    assert_eq!(
        tool_text(&read_answer(&mut conn, &mut parser)),
        "file:///deep"
    );
}

#[test]
fn a_client_answer_nested_too_deep_reaches_a_session_era_upstream_as_an_error() {
    // A session-era upstream asks the client itself; the gateway relays the request and, for
    // an answer it refuses, sends the upstream an error naming the limit in its place.
    let pyh = PythonUpstream::http_handshake_only("pyh");
    let py = PythonUpstream::http("py", false);
    let config = config_with(&format!(
        "{}{}{}",
        http_upstream("pyh", pyh.url()),
        http_upstream("py", py.url()),
        limits(DEPTH_MAX)
    ));
    let mut gw = Gateway::start(&config, 2);
    let session = open_roots_session(&gw);
    let (mut conn, mut parser, request) = call_until_asked(&gw, &session, "pyh__roots");
    let answer = roots_answer(&request, DEPTH_MAX - 3);
    assert_eq!(gw.session_call(&session, &answer).status, 202);
    assert_eq!(
        tool_text(&read_answer(&mut conn, &mut parser)),
        "file:///deep"
    );

    let (mut conn, mut parser, request) = call_until_asked(&gw, &session, "pyh__roots");
    let refused = gw.session_call(&session, &roots_answer(&request, DEPTH_MAX - 2));
    assert_refused_value(&refused, &request["id"], DEPTH_MAX);
    let ended = read_answer(&mut conn, &mut parser);
    assert!(
        ended.to_string().contains(&names_limit(DEPTH_MAX)),
        "{ended}"
    );
    still_serving(&mut gw);
}

#[test]
fn upstream_messages_nested_past_json_depth_max_fail_only_their_call() {
    // `py` answers in a JSON body (2026-07-28 era), `pyh` on an event stream (session era),
    // `pys` in a stdio line.
    let py = PythonUpstream::http("py", false);
    let pyh = PythonUpstream::http_handshake_only("pyh");
    let stdio = stdio_upstream("pys", python_stdio_command("pys"));
    let config = config_with(&format!(
        "{}{}{stdio}{}",
        http_upstream("py", py.url()),
        http_upstream("pyh", pyh.url()),
        limits(DEPTH_MAX)
    ));
    let mut gw = Gateway::start(&config, 2);
    let session = gw.open_session(SESSION_VERSION_LATEST);

    // A result nests levels + 3 deep: the message, `result`, `structuredContent`.
    for upstream in ["py", "pyh", "pys"] {
        let tool = format!("{upstream}__nested");
        let answer = call_levels(&gw, &session, &tool, DEPTH_MAX - 3);
        assert_eq!(
            answer["result"]["structuredContent"]["nested"],
            nest(DEPTH_MAX - 3),
            "{upstream}"
        );
        let answer = call_levels(&gw, &session, &tool, DEPTH_MAX - 2);
        assert_upstream_refused(&answer, upstream);
        assert_eq!(upstream_too_deep(&gw, upstream), 1, "{upstream}");
        still_serving(&mut gw);
    }

    // A notification on the call's event stream nests levels + 2 deep: the message, `params`.
    let answer = call_levels(&gw, &session, "pyh__nested_log", DEPTH_MAX - 2);
    assert_eq!(tool_text(&answer), format!("logged {}", DEPTH_MAX - 2));
    let answer = call_levels(&gw, &session, "pyh__nested_log", DEPTH_MAX - 1);
    assert_upstream_refused(&answer, "pyh");
    assert_eq!(upstream_too_deep(&gw, "pyh"), 2);
    still_serving(&mut gw);
    assert_eq!(
        refused_too_deep(&gw),
        0,
        "upstream messages are not client refusals"
    );
}

#[test]
fn a_stdio_answer_too_deep_with_its_id_after_the_result_fails_its_call_at_once() {
    // The fixture writes each answer's id after its result: to tell which call a too deep
    // answer is for, the gateway must look past the part it refuses to read. A call left
    // waiting would wait for request_timeout_ms (300 s by default), far past the client's
    // read timeout.
    let stdio = stdio_upstream("late", hostile_stdio_id_last_command());
    let config = config_with(&format!("{stdio}{}", limits(DEPTH_MAX)));
    let gw = Gateway::start(&config, 2);
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let nested = |answer: &Value| answer["result"]["structuredContent"]["nested"].clone();

    let answer = call_levels(&gw, &session, "late__nested", DEPTH_MAX - 3);
    assert_eq!(nested(&answer), nest(DEPTH_MAX - 3), "{answer}");
    let answer = call_levels(&gw, &session, "late__nested", DEPTH_MAX - 2);
    assert_upstream_refused(&answer, "late");
    assert_eq!(upstream_too_deep(&gw, "late"), 1);
    // The refusal ended only that call: the upstream still answers the next one.
    let answer = call_levels(&gw, &session, "late__nested", 1);
    assert_eq!(nested(&answer), nest(1), "{answer}");
}

/// The answer to `tools/call tool {"levels": levels}` on `session`.
fn call_levels(gw: &Gateway, session: &Session, tool: &str, levels: usize) -> Value {
    let call = rpc(
        3,
        "tools/call",
        json!({"name": tool, "arguments": {"levels": levels}}),
    );
    let response = gw.session_call(session, &call);
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

/// A call failed for its upstream's message nested too deep: -32603 naming both.
fn assert_upstream_refused(answer: &Value, upstream: &str) {
    let error = &answer["error"];
    assert_eq!(error["code"], -32603, "{answer}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("refused a message from upstream {upstream}"))
            && message.contains(&names_limit(DEPTH_MAX)),
        "{answer}"
    );
    assert_eq!(error["data"]["upstream"], upstream, "{answer}");
    assert_eq!(error["data"]["reason"], "json_depth_max", "{answer}");
}
