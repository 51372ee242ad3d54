//! The upstream fixtures and the scripted client, checked without a gateway in between.
//!
//! Gateway tests point `tests/interop/gateway_client.py` at the gateway with these fixtures as
//! its upstreams; when such a test fails, the failure must be the gateway's. So each test here
//! runs the same client script straight at a fixture (the Python SDK server over Streamable
//! HTTP, server-everything over Streamable HTTP) in both client modes and asserts what the
//! client saw: tool results, progress callbacks, log messages, the sampling, elicitation and
//! roots round trips, cancellation, prompts, completions and resources. The stdio fixtures are
//! driven over a pipe one JSON-RPC line at a time.

mod common;
use common::sdk_client::{
    log_texts, ok_result, progress_pairs, run_client, tool_text, CLIENT_ROOT,
    CLIENT_SAMPLED_PREFIX, SESSION_ERA, STATELESS_ERA,
};
use common::upstreams::{
    everything_stdio_command, hostile_stdio_id_last_command, hostile_stdio_mute_command,
    python_stdio_command, toml_string_array, Everything, Hostile, PythonUpstream,
};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// Deadline for one answer from a stdio fixture.
const LINE_DEADLINE: Duration = Duration::from_secs(30);

fn python_script(name: &str) -> Value {
    json!([
        {"op": "set_level", "level": "debug"},                                     // 0
        {"op": "list_tools"},                                                      // 1
        {"op": "call", "tool": "echo", "args": {"text": "h\u{e9}llo"}},            // 2
        {"op": "call", "tool": "add", "args": {"a": 2.5, "b": 4}},                 // 3
        {"op": "call_progress", "tool": "progress", "args": {"steps": 3}},         // 4
        {"op": "call", "tool": "log", "args": {"message": "fixture log line"}},    // 5
        {"op": "call", "tool": "sample", "args": {"prompt": "pick a colour"}},     // 6
        {"op": "call", "tool": "elicit", "args": {"message": "proceed?"}},         // 7
        {"op": "call", "tool": "roots", "args": {}},                               // 8
        {"op": "cancel_after", "tool": "hang", "args": {}, "after_s": 0.5},        // 9
        {"op": "call", "tool": "hanging", "args": {"settle_ms": 10000}},           // 10
        {"op": "call", "tool": "slow", "args": {"ms": 30000}, "timeout_s": 0.5},   // 11
        {"op": "call", "tool": "flood", "args": {"count": 20}},                    // 12
        {"op": "list_prompts"},                                                    // 13
        {"op": "get_prompt", "name": "greet", "args": {"name": "Ada"}},            // 14
        {"op": "complete", "prompt": "greet",
         "argument": {"name": "name", "value": "A"}},                              // 15
        {"op": "list_resources"},                                                  // 16
        {"op": "list_resource_templates"},                                         // 17
        {"op": "read_resource", "uri": format!("fixture://{name}/readme")},        // 18
        {"op": "read_resource", "uri": format!("fixture://{name}/items/42")},      // 19
        {"op": "call", "tool": "add_tool", "args": {"name": "late"}},              // 20
        {"op": "call", "tool": "late", "args": {}},                                // 21
        {"op": "call", "tool": "slow", "args": {"ms": 1}},                         // 22
    ])
}

/// Asserts the report of `python_script(name)` run against the Python fixture `name`.
fn assert_python_report(report: &Value, name: &str, era: &str) {
    assert_eq!(report["protocol_version"], era, "{report:#}");
    assert_eq!(report["server_info"]["name"], name, "{report:#}");
    let tools: Vec<&str> = ok_result(report, 1)["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    for tool in [
        "echo", "add", "progress", "log", "sample", "hang", "flood", "crash", "slow",
    ] {
        assert!(tools.contains(&tool), "tools/list lacks {tool}: {tools:?}");
    }
    assert_eq!(tool_text(report, 2), format!("{name}: h\u{e9}llo"));
    assert_eq!(tool_text(report, 3), "6.5");
    assert_eq!(
        ok_result(report, 3)["structuredContent"],
        json!({"result": 6.5})
    );

    assert_eq!(tool_text(report, 4), "done 3");
    assert_eq!(
        progress_pairs(report, 4),
        [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0)],
        "{report:#}"
    );

    assert_eq!(tool_text(report, 5), "logged");
    let logs = log_texts(report);
    assert!(logs.contains(&"fixture log line"), "{logs:?}");
    assert_eq!(
        tool_text(report, 6),
        format!("sampled: {CLIENT_SAMPLED_PREFIX}pick a colour")
    );
    assert_eq!(tool_text(report, 7), "yes");
    assert_eq!(tool_text(report, 8), CLIENT_ROOT);

    assert_eq!(
        ok_result(report, 9),
        &json!({"cancelled": true, "completed": null})
    );
    assert_eq!(
        tool_text(report, 10),
        "hanging 0",
        "the cancelled hang still runs"
    );
    let timed_out = &report["steps"][11];
    assert_eq!(timed_out["ok"], false, "{timed_out:#}");
    assert!(
        timed_out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{timed_out:#}"
    );
    assert_eq!(tool_text(report, 12), "flooded 20");
    let flooded = logs.iter().filter(|l| l.starts_with("flood ")).count();
    assert_eq!(flooded, 20, "{logs:?}");

    assert_eq!(ok_result(report, 13)["prompts"][0]["name"], "greet");
    let message = &ok_result(report, 14)["messages"][0];
    assert_eq!(message["role"], "user");
    assert_eq!(
        message["content"]["text"],
        format!("Hello, Ada from {name}")
    );
    assert_eq!(
        ok_result(report, 15)["completion"]["values"],
        json!(["Ada", "Alan"])
    );
    assert_eq!(
        ok_result(report, 16)["resources"][0]["uri"],
        format!("fixture://{name}/readme")
    );
    assert_eq!(
        ok_result(report, 17)["resourceTemplates"][0]["uriTemplate"],
        format!("fixture://{name}/items/{{id}}")
    );
    assert_eq!(
        ok_result(report, 18)["contents"][0]["text"],
        format!("readme of {name}")
    );
    assert_eq!(ok_result(report, 19)["contents"][0]["text"], "item 42");
    assert_eq!(tool_text(report, 20), "added late");
    assert_eq!(tool_text(report, 21), format!("{name}: late called"));
    assert_eq!(tool_text(report, 22), "slept 1");
}

#[test]
fn python_http_fixture_serves_every_feature_to_a_session_era_client() {
    let upstream = PythonUpstream::http("alpha", false);
    let report = run_client(upstream.url(), "legacy", &python_script("alpha"));
    assert_python_report(&report, "alpha", SESSION_ERA);
    let capabilities = &report["server_capabilities"];
    assert_eq!(
        capabilities["tools"]["listChanged"], true,
        "{capabilities:#}"
    );
    assert!(capabilities["logging"].is_object(), "{capabilities:#}");
    assert!(capabilities["completions"].is_object(), "{capabilities:#}");
    // The session era announces the runtime tool on the session's GET stream.
    let notifications = report["notifications"].as_array().unwrap();
    assert!(
        notifications.contains(&json!("notifications/tools/list_changed")),
        "{report:#}"
    );
    assert_eq!(
        report["server_requests"],
        json!(["sampling/createMessage", "elicitation/create", "roots/list"])
    );
}

#[test]
fn python_http_fixture_serves_every_feature_to_a_stateless_era_client() {
    let upstream = PythonUpstream::http("beta", false);
    let report = run_client(upstream.url(), "auto", &python_script("beta"));
    assert_python_report(&report, "beta", STATELESS_ERA);
}

#[test]
fn python_http_fixture_without_sessions_cannot_ask_the_client_in_the_session_era() {
    let upstream = PythonUpstream::http("gamma", true);
    let script = json!([
        {"op": "call", "tool": "echo", "args": {"text": "x"}},
        {"op": "call", "tool": "sample", "args": {"prompt": "p"}},
    ]);
    let legacy = run_client(upstream.url(), "legacy", &script);
    assert_eq!(legacy["protocol_version"], SESSION_ERA);
    assert_eq!(tool_text(&legacy, 0), "gamma: x");
    let refused = &legacy["steps"][1];
    assert_eq!(refused["ok"], false, "{legacy:#}");
    assert_eq!(refused["error"]["code"], -32600, "{legacy:#}");
    // The 2026-07-28 era carries the sampling request inside the result instead.
    let auto = run_client(upstream.url(), "auto", &script);
    assert_eq!(auto["protocol_version"], STATELESS_ERA);
    assert_eq!(
        tool_text(&auto, 1),
        format!("sampled: {CLIENT_SAMPLED_PREFIX}p")
    );
}

#[test]
fn python_http_fixture_in_handshake_only_mode_announces_a_late_tool_on_the_get_stream() {
    // `--handshake-only`: an `auto` client's server/discover is refused, so it falls back to
    // the handshake era; `add_tool_later` announces the tool after the call returned, which
    // only the client's standalone GET stream can carry.
    let fixture = PythonUpstream::http_with("pyh", &["--handshake-only"]);
    let script = json!([
        {"op": "call", "tool": "add_tool_later", "args": {"name": "later", "delay_ms": 200}},
        {"op": "sleep", "s": 1.0},
        {"op": "call", "tool": "later", "args": {}},
    ]);
    let report = run_client(fixture.url(), "auto", &script);
    assert_eq!(report["protocol_version"], SESSION_ERA, "{report:#}");
    assert_eq!(tool_text(&report, 0), "adding later in 200 ms");
    assert_eq!(
        report["notifications"],
        json!(["notifications/tools/list_changed"]),
        "{report:#}"
    );
    assert_eq!(tool_text(&report, 2), "pyh: later called");
}

#[test]
fn python_http_fixture_handshake_only_keeps_sessions_and_logs_them() {
    let fixture = PythonUpstream::http_handshake_only("hs");
    let script = json!([
        {"op": "call", "tool": "session_id", "args": {}},    // 0
        {"op": "call", "tool": "session_id", "args": {}},    // 1
        {"op": "call", "tool": "session_log", "args": {}},   // 2
    ]);
    // An auto client probes the 2026-07-28 era, is refused, and falls back to initialize.
    let first = run_client(fixture.url(), "auto", &script);
    assert_eq!(first["protocol_version"], SESSION_ERA, "{first:#}");
    let id = tool_text(&first, 0).to_owned();
    assert_ne!(id, "none");
    assert_eq!(tool_text(&first, 1), id, "one connection, one session");
    let log: Value = serde_json::from_str(tool_text(&first, 2)).unwrap();
    assert_eq!(log["opened"], json!([id]), "{log}");
    // The first client closed with DELETE; the next one sees it logged, then expires its own.
    let expire = json!([
        {"op": "call", "tool": "session_log", "args": {}},
        {"op": "call", "tool": "session_id", "args": {}},
    ]);
    let second = run_client(fixture.url(), "legacy", &expire);
    let log: Value = serde_json::from_str(tool_text(&second, 0)).unwrap();
    assert_eq!(log["deleted"], json!([id]), "{log}");
    let own = tool_text(&second, 1).to_owned();
    let script = json!([{"op": "call", "tool": "expire_session", "args": {"id": own}}]);
    let third = run_client(fixture.url(), "legacy", &script);
    assert_eq!(tool_text(&third, 0), format!("expired {own}"));
}

fn everything_script() -> Value {
    json!([
        {"op": "set_level", "level": "debug"},                                          // 0
        {"op": "list_tools"},                                                           // 1
        {"op": "call", "tool": "echo", "args": {"message": "hi"}},                      // 2
        {"op": "call", "tool": "get-sum", "args": {"a": 2, "b": 3}},                    // 3
        {"op": "call_progress", "tool": "trigger-long-running-operation",
         "args": {"duration": 0.3, "steps": 3}},                                        // 4
        {"op": "call", "tool": "toggle-simulated-logging", "args": {}},                 // 5
        {"op": "call", "tool": "trigger-sampling-request", "args": {"prompt": "what?"}}, // 6
        {"op": "call", "tool": "get-roots-list", "args": {}},                           // 7
        {"op": "cancel_after", "tool": "trigger-long-running-operation",
         "args": {"duration": 60, "steps": 2}, "after_s": 0.5},                         // 8
        {"op": "call", "tool": "echo", "args": {"message": "after cancel"}},            // 9
        {"op": "list_prompts"},                                                         // 10
        {"op": "get_prompt", "name": "args-prompt", "args": {"city": "Oslo"}},          // 11
        {"op": "complete", "prompt": "completable-prompt",
         "argument": {"name": "department", "value": "E"}},                             // 12
        {"op": "list_resources"},                                                       // 13
        {"op": "read_resource", "uri": "demo://resource/dynamic/text/7"},               // 14
        {"op": "sleep", "s": 0.5},                                                      // 15
    ])
}

fn assert_everything_report(report: &Value) {
    // server-everything speaks only the session era: `auto` falls back to initialize.
    assert_eq!(report["protocol_version"], SESSION_ERA, "{report:#}");
    assert_eq!(report["server_info"]["name"], "mcp-servers/everything");
    let tools = ok_result(report, 1)["tools"].as_array().unwrap();
    assert!(
        tools
            .iter()
            .any(|t| t["name"] == "trigger-sampling-request"),
        "{tools:?}"
    );
    assert_eq!(tool_text(report, 2), "Echo: hi");
    assert_eq!(tool_text(report, 3), "The sum of 2 and 3 is 5.");
    assert_eq!(
        report["steps"][4]["progress"].as_array().unwrap().len(),
        3,
        "{report:#}"
    );
    assert!(
        tool_text(report, 5).starts_with("Started simulated"),
        "{report:#}"
    );
    let sampled = tool_text(report, 6);
    let expected =
        format!("{CLIENT_SAMPLED_PREFIX}Resource trigger-sampling-request context: what?");
    assert!(sampled.contains(&expected), "{sampled}");
    assert!(tool_text(report, 7).contains(CLIENT_ROOT), "{report:#}");
    assert_eq!(
        ok_result(report, 8),
        &json!({"cancelled": true, "completed": null})
    );
    assert_eq!(tool_text(report, 9), "Echo: after cancel");
    let prompts = ok_result(report, 10)["prompts"].as_array().unwrap();
    assert!(
        prompts.iter().any(|p| p["name"] == "simple-prompt"),
        "{prompts:?}"
    );
    let message = ok_result(report, 11)["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(message.contains("Oslo"), "{message}");
    assert_eq!(
        ok_result(report, 12)["completion"]["values"],
        json!(["Engineering"])
    );
    assert!(!ok_result(report, 13)["resources"]
        .as_array()
        .unwrap()
        .is_empty());
    let contents = &ok_result(report, 14)["contents"][0];
    assert_eq!(
        contents["uri"], "demo://resource/dynamic/text/7",
        "{contents:#}"
    );
    // The simulated logger sends one message at once, then one every 5 s.
    assert!(!report["logs"].as_array().unwrap().is_empty(), "{report:#}");
}

#[test]
fn everything_over_http_answers_a_session_era_client() {
    let everything = Everything::http();
    let report = run_client(everything.url(), "legacy", &everything_script());
    assert_everything_report(&report);
}

#[test]
fn everything_over_http_answers_an_auto_client_in_the_session_era() {
    let everything = Everything::http();
    let report = run_client(everything.url(), "auto", &everything_script());
    assert_everything_report(&report);
}

/// A stdio peer with its stdout read line by line on a thread; killed and reaped on drop.
struct Piped {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Piped {
    fn spawn((program, args): (String, Vec<String>)) -> Piped {
        let mut child = Command::new(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} {args:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Piped {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, message: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").expect("write to the stdio peer");
        stdin.flush().expect("flush to the stdio peer");
    }

    /// The next message with JSON-RPC id `id`, skipping notifications and other lines.
    fn answer(&self, id: u64) -> Value {
        let started = Instant::now();
        loop {
            let left = LINE_DEADLINE.saturating_sub(started.elapsed());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|e| {
                panic!("no answer to request {id} within {LINE_DEADLINE:?}: {e}")
            });
            let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!("stdio peer wrote a line that is not JSON ({e}): {line}")
            });
            if message["id"] == id {
                return message;
            }
        }
    }

    /// Sends `initialize` (id 1) and `notifications/initialized`; returns the initialize result.
    fn initialize(&mut self) -> Value {
        self.send(json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {
                "protocolVersion": SESSION_ERA,
                "capabilities": {},
                "clientInfo": {"name": "shardgate-tests", "version": "1.0.0"}
            }
        }));
        let answer = self.answer(1);
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        answer["result"].clone()
    }

    fn tool_names(&mut self, id: u64) -> Vec<String> {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}));
        let answer = self.answer(id);
        answer["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list answer without tools: {answer}"))
            .iter()
            .map(|tool| tool["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the stdio peer") {
                return status;
            }
            assert!(
                started.elapsed() < deadline,
                "stdio peer still running after {deadline:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_stdio_fixture_answers_over_a_pipe_and_crash_exits_with_status_3() {
    let mut peer = Piped::spawn(python_stdio_command("delta"));
    let init = peer.initialize();
    assert_eq!(init["serverInfo"]["name"], "delta", "{init}");
    assert_eq!(init["protocolVersion"], SESSION_ERA, "{init}");
    assert_eq!(init["capabilities"]["tools"]["listChanged"], true, "{init}");
    assert!(init["capabilities"]["logging"].is_object(), "{init}");
    let tools = peer.tool_names(2);
    assert!(
        tools.iter().any(|t| t == "echo") && tools.iter().any(|t| t == "crash"),
        "{tools:?}"
    );
    peer.send(json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "piped"}}
    }));
    assert_eq!(
        peer.answer(3)["result"]["content"][0]["text"],
        "delta: piped"
    );
    peer.send(json!({
        "jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "crash", "arguments": {}}
    }));
    let status = peer.wait_exit(LINE_DEADLINE);
    assert_eq!(status.code(), Some(3), "crash() ended with {status}");
}

#[test]
fn everything_stdio_answers_initialize_and_tools_list_over_a_pipe() {
    let mut peer = Piped::spawn(everything_stdio_command());
    let init = peer.initialize();
    assert_eq!(
        init["serverInfo"]["name"], "mcp-servers/everything",
        "{init}"
    );
    let tools = peer.tool_names(2);
    assert!(tools.iter().any(|t| t == "echo"), "{tools:?}");
}

#[test]
fn hostile_stdio_mute_answers_the_handshake_and_tools_list_and_nothing_else() {
    let mut peer = Piped::spawn(hostile_stdio_mute_command());
    let init = peer.initialize();
    assert_eq!(init["serverInfo"]["name"], "stdio-mute", "{init}");
    assert_eq!(peer.tool_names(2), ["mute"]);
    peer.send(json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "mute", "arguments": {}}
    }));
    // A ping after the call: it stays unanswered too, and no answer to either arrives.
    peer.send(json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}));
    let unanswered = peer.lines.recv_timeout(Duration::from_secs(1));
    assert!(
        unanswered.is_err(),
        "the mute server answered: {unanswered:?}"
    );
    drop(peer.stdin.take());
    assert!(peer.wait_exit(LINE_DEADLINE).success());
}

#[test]
fn hostile_stdio_id_last_answers_nested_with_the_id_after_the_result() {
    let mut peer = Piped::spawn(hostile_stdio_id_last_command());
    let init = peer.initialize();
    assert_eq!(init["serverInfo"]["name"], "stdio-id-last", "{init}");
    assert_eq!(peer.tool_names(2), ["nested"]);
    peer.send(json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "nested", "arguments": {"levels": 2}}
    }));
    // The raw line: a parsed answer would not show the order of its members.
    let line = peer
        .lines
        .recv_timeout(LINE_DEADLINE)
        .expect("an answer to the call");
    assert!(
        line.starts_with(r#"{"jsonrpc":"2.0","result":"#) && line.ends_with(r#","id":3}"#),
        "{line}"
    );
    let answer: Value = serde_json::from_str(&line).expect("the answer is JSON");
    assert_eq!(
        answer["result"]["structuredContent"]["nested"],
        json!([[0]])
    );
    drop(peer.stdin.take());
    assert!(peer.wait_exit(LINE_DEADLINE).success());
}

#[test]
fn hostile_blackhole_accepts_a_request_and_never_answers() {
    let blackhole = Hostile::blackhole();
    let addr = blackhole
        .url()
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let mut stream = TcpStream::connect(&addr).expect("connect to the blackhole");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    write!(
        stream,
        "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send a request");
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("set read timeout");
    let mut byte = [0u8; 1];
    let read = stream.read(&mut byte);
    let kind = read.as_ref().map_err(|e| e.kind());
    assert!(
        matches!(kind, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "the blackhole answered or closed: {read:?}"
    );
}

#[test]
fn toml_string_array_round_trips_quotes_backslashes_and_newlines() {
    let values = vec![
        "/usr/bin/python3".to_owned(),
        "say \"hi\"".to_owned(),
        "C:\\path".to_owned(),
        "two\nlines".to_owned(),
    ];
    let text = format!("args = {}", toml_string_array(&values));
    let parsed: toml::Table = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
    let args: Vec<&str> = parsed["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(args, values);
}
