//! The gateway in front of real upstreams, friendly and hostile.
//!
//! Each test starts the release binary with a config naming real MCP servers (the Python SDK
//! fixture and server-everything, over Streamable HTTP and over stdio, and the hostile fixture)
//! and drives it as a client would: the scripted Python SDK client in both client modes, or raw
//! HTTP where a test needs control over timing and sockets. What it asserts is what a client
//! sees (answers, errors and the names they carry) and what `/status`, `/readyz` and the
//! process table show: bounded pending entries, counted drops, restarted children, no zombies.

mod common;

use common::client::{Conn, SseItem, SseParser};
use common::mcp::{stateless_body, stateless_post, upstream_status, META_VERSION};
use common::sdk_client::{
    log_texts, ok_result, progress_pairs, run_client, tool_text, SESSION_ERA, STATELESS_ERA,
};
use common::upstreams::{
    everything_stdio_command, hostile_stdio_mute_command, python_stdio_command, toml_string_array,
    Everything, Hostile, PythonUpstream,
};
use common::{config_with, plan_total_bytes, rss_bytes, Gateway};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The `_meta` key a stateless-era request opts in to log messages with.
const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// How long a test waits for the gateway to reach a state it polls `/status` for.
const SETTLE_DEADLINE: Duration = Duration::from_secs(15);
/// Slack over the resident set before a run: allocator caches, thread stacks, io buffers.
const RSS_SLACK_BYTES: u64 = 8 * 1024 * 1024;

/// A `[[upstreams]]` entry of kind `http`; `extra` holds more `key = value` lines.
fn http_upstream(name: &str, url: &str, extra: &str) -> String {
    format!("[[upstreams]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n")
}

/// A `[[upstreams]]` entry of kind `stdio` running `command`; `extra` holds more lines.
fn stdio_upstream(name: &str, (program, args): (String, Vec<String>), extra: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"{name}\"\nkind = \"stdio\"\ncommand = {}\nargs = {}\n{extra}\n",
        toml::Value::String(program),
        toml_string_array(&args)
    )
}

/// A URL on 127.0.0.1 where nothing listens (a port that was free a moment ago).
fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr: SocketAddr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}/mcp")
}

/// A stateless-era `tools/call` of `tool` on a fresh connection; returns status and JSON body.
fn stateless_call(gw: &Gateway, id: u64, tool: &str, arguments: Value) -> (u16, Value) {
    let body = stateless_body(
        id,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    );
    let response = gw.stateless(&body);
    (response.status, response.json())
}

/// The message of a JSON-RPC error answer; panics on a result.
fn error_message(answer: &Value) -> &str {
    answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {answer}"))
}

/// Children of process `pid` that are zombies (state `Z` in `/proc/*/stat`).
fn zombie_children(pid: u32) -> Vec<String> {
    let mut zombies = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.len() > 1 && fields[1] == pid.to_string() && fields[0] == "Z" {
            zombies.push(stat.trim().to_owned());
        }
    }
    zombies
}

// --- 1. the SDK client through the gateway ---------------------------------------------------

/// The script each client runs; `late` names the tool it registers on `py` at runtime.
fn gateway_script(late: &str) -> Value {
    json!([
        {"op": "set_level", "level": "debug"},                                          // 0
        {"op": "list_tools"},                                                           // 1
        {"op": "call", "tool": "demo__echo", "args": {"text": "to demo"}},              // 2
        {"op": "call", "tool": "py__echo", "args": {"text": "to py"}},                  // 3
        {"op": "call", "tool": "pys__echo", "args": {"text": "to pys"}},                // 4
        {"op": "call", "tool": "every__echo", "args": {"message": "to every"}},         // 5
        {"op": "call", "tool": "everyh__echo", "args": {"message": "to everyh"}},       // 6
        {"op": "call_progress", "tool": "py__progress", "args": {"steps": 3}},          // 7
        {"op": "call_progress", "tool": "pys__progress", "args": {"steps": 3}},         // 8
        {"op": "call", "tool": "py__log", "args": {"message": "py log line"}},          // 9
        {"op": "call", "tool": "pys__log", "args": {"message": "pys log line"}},        // 10
        {"op": "list_prompts"},                                                         // 11
        {"op": "get_prompt", "name": "py__greet", "args": {"name": "Ada"}},             // 12
        {"op": "complete", "prompt": "py__greet",
         "argument": {"name": "name", "value": "A"}},                                   // 13
        {"op": "list_resources"},                                                       // 14
        {"op": "list_resource_templates"},                                              // 15
        {"op": "read_resource", "uri": "fixture://py/readme"},                          // 16
        {"op": "read_resource", "uri": "fixture://pys/items/42"},                       // 17
        {"op": "cancel_after", "tool": "py__hang", "args": {}, "after_s": 0.5},         // 18
        {"op": "call", "tool": "py__hanging", "args": {"settle_ms": 10000}},            // 19
        {"op": "call", "tool": "py__sample", "args": {"prompt": "pick"}},               // 20
        {"op": "call", "tool": "py__elicit", "args": {"message": "proceed?"}},          // 21
        {"op": "call", "tool": "py__roots", "args": {}},                                // 22
        {"op": "call", "tool": "every__get-sum", "args": {"a": 2, "b": 3}},             // 23
        {"op": "get_prompt", "name": "every__args-prompt", "args": {"city": "Oslo"}},   // 24
        {"op": "call", "tool": "py__add_tool", "args": {"name": late}},                 // 25
        {"op": "sleep", "s": 2.5},                                                      // 26
        {"op": "list_tools"},                                                           // 27
        {"op": "call", "tool": format!("py__{late}"), "args": {}},                      // 28
        {"op": "call", "tool": "everyh__trigger-sampling-request",
         "args": {"prompt": "relay me", "maxTokens": 5}},                               // 29
    ])
}

/// Every upstream's tools are listed under their prefix, and no unprefixed name leaks.
fn assert_gateway_tools(report: &Value) {
    let tools: Vec<&str> = ok_result(report, 1)["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|tool| tool["name"].as_str().unwrap())
        .collect();
    let expected = [
        "demo__echo",
        "demo__add",
        "demo__sleep",
        "py__echo",
        "py__progress",
        "py__hang",
        "pys__echo",
        "pys__crash",
        "every__echo",
        "every__get-sum",
        "everyh__echo",
        "everyh__get-sum",
    ];
    for name in expected {
        assert!(tools.contains(&name), "tools/list lacks {name}: {tools:?}");
    }
    let prefixes = ["demo__", "py__", "pys__", "every__", "everyh__"];
    for name in &tools {
        assert!(
            prefixes.iter().any(|p| name.starts_with(p)),
            "{name} is listed without an upstream prefix: {tools:?}"
        );
    }
}

/// Steps 20..=22 (sampling, elicitation, roots on `py`), 25..=28 (a tool `late` registered
/// at runtime on `py`) and 29 (sampling on `everyh`). `py` speaks the 2026-07-28 era to the
/// gateway and asks for input with `input_required` results: a 2026-07-28 client gets them and
/// answers by retrying; a session-era client is asked on the call's stream by the gateway,
/// which retries for it. `everyh` speaks the session era: its sampling request reaches a
/// session-era client on the call's stream and the answer goes back; a 2026-07-28 client
/// cannot be asked, and the upstream hears the gateway's refusal. A 2026-07-28 upstream sends
/// no `list_changed`: `late` appears once `py`'s lists are fetched again, at the first epoch
/// tick after their `ttlMs` (0 from this SDK) passed, and session-era clients then hear of the
/// change on their GET stream.
fn assert_gateway_current_gaps(report: &Value, era: &str, late: &str) {
    assert_eq!(tool_text(report, 20), "sampled: sampled-by-client: pick");
    assert_eq!(tool_text(report, 21), "yes");
    assert_eq!(tool_text(report, 22), "file:///tmp/shardgate-root");
    if era == STATELESS_ERA {
        assert_eq!(
            report["server_requests"],
            json!(["sampling/createMessage", "elicitation/create", "roots/list"])
        );
        let refused = ok_result(report, 29);
        assert_eq!(refused["isError"], true, "{refused:#}");
        let text = refused["content"][0]["text"].as_str().unwrap_or_default();
        assert!(
            text.contains("the gateway cannot relay sampling/createMessage"),
            "{refused:#}"
        );
    } else {
        assert_eq!(
            report["server_requests"],
            json!([
                "sampling/createMessage",
                "elicitation/create",
                "roots/list",
                "sampling/createMessage"
            ])
        );
        let sampled = tool_text(report, 29);
        assert!(
            sampled.starts_with("LLM sampling result:")
                && sampled.contains(
                    "sampled-by-client: Resource trigger-sampling-request context: relay me"
                ),
            "{sampled}"
        );
    }
    // Clients hear of list changes in both eras: on the GET stream or subscriptions/listen.
    assert_eq!(report["server_capabilities"]["tools"]["listChanged"], true);
    assert_eq!(tool_text(report, 25), format!("added {late}"));
    let notifications = report["notifications"].as_array().unwrap();
    match era == SESSION_ERA {
        true => assert!(
            !notifications.is_empty()
                && notifications
                    .iter()
                    .all(|n| n == "notifications/tools/list_changed"),
            "{report:#}"
        ),
        false => assert!(notifications.is_empty(), "{report:#}"),
    }
    let late_name = format!("py__{late}");
    let listed = ok_result(report, 27)["tools"].as_array().unwrap();
    assert!(
        listed.iter().any(|t| t["name"] == late_name.as_str()),
        "{late_name} not listed: {listed:?}"
    );
    assert_eq!(tool_text(report, 28), format!("py: {late} called"));
}

fn assert_gateway_report(report: &Value, era: &str) {
    assert_eq!(report["protocol_version"], era, "{report:#}");
    assert_eq!(report["server_info"]["name"], "shardgate", "{report:#}");
    assert_gateway_tools(report);
    assert_eq!(tool_text(report, 2), "to demo");
    assert_eq!(tool_text(report, 3), "py: to py");
    assert_eq!(tool_text(report, 4), "pys: to pys");
    assert_eq!(tool_text(report, 5), "Echo: to every");
    assert_eq!(tool_text(report, 6), "Echo: to everyh");
    for step in [7, 8] {
        assert_eq!(tool_text(report, step), "done 3");
        assert_eq!(
            progress_pairs(report, step),
            [(1.0, 3.0), (2.0, 3.0), (3.0, 3.0)],
            "step {step}: {report:#}"
        );
    }
    assert_eq!(tool_text(report, 9), "logged");
    assert_eq!(tool_text(report, 10), "logged");
    let logs = log_texts(report);
    // Log messages reach the client from the http upstream's response stream; those a stdio
    // upstream writes are not tied to a request on the wire and are dropped (counted in
    // `/status` as the upstream's unroutable_total).
    assert_eq!(logs, ["py log line"], "{report:#}");

    let prompts: Vec<&str> = ok_result(report, 11)["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(prompts.contains(&"py__greet"), "{prompts:?}");
    assert!(prompts.contains(&"pys__greet"), "{prompts:?}");
    let message = &ok_result(report, 12)["messages"][0];
    assert_eq!(message["role"], "user");
    assert_eq!(message["content"]["text"], "Hello, Ada from py");
    assert_eq!(
        ok_result(report, 13)["completion"]["values"],
        json!(["Ada", "Alan"])
    );
    let uris: Vec<&str> = ok_result(report, 14)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert!(uris.contains(&"fixture://py/readme"), "{uris:?}");
    assert!(uris.contains(&"fixture://pys/readme"), "{uris:?}");
    let templates: Vec<&str> = ok_result(report, 15)["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["uriTemplate"].as_str().unwrap())
        .collect();
    assert!(
        templates.contains(&"fixture://pys/items/{id}"),
        "{templates:?}"
    );
    assert_eq!(ok_result(report, 16)["contents"][0]["text"], "readme of py");
    assert_eq!(ok_result(report, 17)["contents"][0]["text"], "item 42");
    assert_eq!(
        ok_result(report, 18),
        &json!({"cancelled": true, "completed": null})
    );
    assert_eq!(
        tool_text(report, 19),
        "hanging 0",
        "the cancelled hang still runs"
    );
    assert_eq!(tool_text(report, 23), "The sum of 2 and 3 is 5.");
    let oslo = ok_result(report, 24)["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(oslo.contains("Oslo"), "{oslo}");
}

#[test]
fn sdk_clients_reach_four_upstreams_through_two_shards() {
    let py = PythonUpstream::http("py", false);
    let everyh = Everything::http();
    let config = config_with(&format!(
        "{}{}{}{}",
        http_upstream("py", py.url(), ""),
        stdio_upstream("pys", python_stdio_command("pys"), ""),
        stdio_upstream("every", everything_stdio_command(), ""),
        http_upstream("everyh", everyh.url(), ""),
    ));
    let gw = Gateway::start(&config, 2);
    assert_eq!(gw.shards, 2);
    let url = gw.mcp_url.clone();
    // Four clients at once, two per mode: concurrent sessions over both shards.
    let reports: Vec<(String, String, Value)> = std::thread::scope(|scope| {
        let runs: Vec<_> = ["legacy", "auto", "legacy", "auto"]
            .into_iter()
            .enumerate()
            .map(|(run, mode)| {
                let url = &url;
                scope.spawn(move || {
                    let late = format!("late{run}");
                    let report = run_client(url, mode, &gateway_script(&late));
                    (mode.to_owned(), late, report)
                })
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    for (mode, late, report) in &reports {
        let era = if mode == "legacy" {
            SESSION_ERA
        } else {
            STATELESS_ERA
        };
        assert_gateway_report(report, era);
        assert_gateway_current_gaps(report, era, late);
    }
    let status = gw.status();
    let unroutable: u64 = (0..2)
        .map(|shard| {
            upstream_status(&status, shard, "pys")["unroutable_total"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(unroutable >= 4, "pys log messages not counted: {status:#}");
}

#[test]
fn a_stdio_upstreams_list_change_and_requests_reach_a_session_era_client() {
    // One shard: the stdio child whose list changes is the one the client's calls reach.
    let config = config_with(&stdio_upstream("pys", python_stdio_command("pys"), ""));
    let gw = Gateway::start(&config, 1);
    let script = json!([
        {"op": "call", "tool": "pys__add_tool", "args": {"name": "late"}},          // 0
        {"op": "sleep", "s": 2.5},                                                   // 1
        {"op": "list_tools"},                                                        // 2
        {"op": "call", "tool": "pys__late", "args": {}},                             // 3
        {"op": "call", "tool": "pys__sample", "args": {"prompt": "over stdio"}},     // 4
        {"op": "call", "tool": "pys__roots", "args": {}},                            // 5
    ]);
    let report = run_client(&gw.mcp_url, "legacy", &script);
    assert_eq!(tool_text(&report, 0), "added late");
    // The child announced the change; the gateway refreshed its lists at the next epoch tick
    // and told the client on its GET stream.
    assert_eq!(
        report["notifications"],
        json!(["notifications/tools/list_changed"]),
        "{report:#}"
    );
    let tools = ok_result(&report, 2)["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "pys__late"), "{tools:?}");
    assert_eq!(tool_text(&report, 3), "pys: late called");
    // Requests the child makes during the client's call reach that client and come back.
    assert_eq!(
        tool_text(&report, 4),
        "sampled: sampled-by-client: over stdio"
    );
    assert_eq!(tool_text(&report, 5), "file:///tmp/shardgate-root");
    assert_eq!(
        report["server_requests"],
        json!(["sampling/createMessage", "roots/list"])
    );
}

#[test]
fn a_stdio_upstreams_list_change_reaches_a_2026_client_on_its_listen_stream() {
    // One shard: the stdio child whose list changes is the one the client's calls reach.
    let config = config_with(&stdio_upstream("pys", python_stdio_command("pys"), ""));
    let gw = Gateway::start(&config, 1);
    let script = json!([
        {"op": "listen", "filter": {"tools": true, "prompts": true}, "events": 1, "wait_s": 20,
         "steps": [{"op": "call", "tool": "pys__add_tool", "args": {"name": "heard"}}]},  // 0
        {"op": "list_tools"},                                                             // 1
        {"op": "call", "tool": "pys__heard", "args": {}},                                 // 2
    ]);
    let report = run_client(&gw.mcp_url, "auto", &script);
    assert_eq!(report["protocol_version"], STATELESS_ERA, "{report:#}");
    let listened = ok_result(&report, 0);
    assert_eq!(
        listened["honored"],
        json!({"toolsListChanged": true, "promptsListChanged": true}),
        "{report:#}"
    );
    assert_eq!(listened["steps"][0]["ok"], true, "{report:#}");
    // The child announced the change; the gateway refreshed its lists at the next epoch tick
    // and told the listening client.
    assert_eq!(
        listened["events"],
        json!(["ToolsListChanged"]),
        "{report:#}"
    );
    let tools = ok_result(&report, 1)["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "pys__heard"), "{tools:?}");
    assert_eq!(tool_text(&report, 2), "pys: heard called");
    // The client closed its stream on leaving; the gateway lets go of it.
    gw.wait_status(SETTLE_DEADLINE, "no notification stream open", |s| {
        s["totals"]["notification_streams"] == 0
    });
}

// --- 2. an upstream that never answers -------------------------------------------------------

/// `[pending]` caps and the mute stdio upstream with a 1000 ms deadline, behind the demo.
fn mute_config(pending_max: u32, pending_per_upstream_max: u32) -> String {
    config_with(&format!(
        "{}\n[pending]\npending_max = {pending_max}\npending_per_upstream_max = \
         {pending_per_upstream_max}\n",
        stdio_upstream(
            "mute",
            hostile_stdio_mute_command(),
            "request_timeout_ms = 1000\nbreaker_failures = 1000"
        ),
    ))
}

/// How one call to the mute upstream ended.
#[derive(Debug, PartialEq, Eq, Hash, Clone, Copy)]
enum MuteOutcome {
    TimedOut,
    RefusedPendingMax,
    RefusedPerUpstreamMax,
}

/// Classifies one answer to `tools/call mute__mute`; panics on anything but the two allowed
/// endings, naming what came back.
fn mute_outcome(status: u16, retry_after: Option<&str>, answer: &Value) -> MuteOutcome {
    let message = error_message(answer);
    match status {
        200 => {
            assert_eq!(answer["error"]["data"]["upstream"], "mute", "{answer}");
            assert!(
                message.contains("upstream mute") && message.contains("1000 ms"),
                "a timeout must name the upstream and its deadline: {answer}"
            );
            MuteOutcome::TimedOut
        }
        503 => {
            assert!(retry_after.is_some(), "503 without Retry-After: {answer}");
            if message.contains("pending.pending_per_upstream_max") {
                assert!(
                    message.contains("upstream mute:"),
                    "the per-upstream cap must name the upstream: {answer}"
                );
                MuteOutcome::RefusedPerUpstreamMax
            } else {
                assert!(message.contains("pending.pending_max"), "{answer}");
                MuteOutcome::RefusedPendingMax
            }
        }
        other => panic!("tools/call mute__mute answered {other}: {answer}"),
    }
}

/// Sends `calls` stateless `tools/call mute__mute` requests from `connections` threads at once,
/// each thread one request at a time on its own keep-alive connection; returns each outcome.
fn flood_mute(gw: &Gateway, connections: u64, calls: u64) -> Vec<MuteOutcome> {
    let per_connection = calls / connections;
    let path = gw.mcp_path();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..connections)
            .map(|worker| {
                let path = path.clone();
                scope.spawn(move || {
                    let mut conn = Conn::connect(&gw.mcp_addr);
                    (0..per_connection)
                        .map(|n| {
                            let id = worker * per_connection + n + 1;
                            let body = stateless_body(
                                id,
                                "tools/call",
                                json!({"name": "mute__mute", "arguments": {}}),
                            );
                            let response = conn.roundtrip(&stateless_post(&path, &body).to_bytes());
                            let answer = response.json();
                            assert_eq!(answer["id"], id, "{answer}");
                            mute_outcome(response.status, response.header("retry-after"), &answer)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker"))
            .collect()
    })
}

/// Polls `pending.entries` of shard 0 on a thread until `stop`; returns the largest seen.
fn watch_pending_entries(gw: &Gateway, stop: &AtomicBool, peak: &AtomicU64) {
    while !stop.load(Ordering::Relaxed) {
        let entries = gw.status()["shards"][0]["pending"]["entries"]
            .as_u64()
            .expect("pending.entries");
        peak.fetch_max(entries, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_upstream_that_never_answers_costs_bounded_memory() {
    let gw = Gateway::start(&mute_config(50, 50), 1);
    // Warm up the allocator and the connection paths before the baseline.
    let warm_up = flood_mute(&gw, 10, 10);
    assert_eq!(warm_up, [MuteOutcome::TimedOut; 10]);
    gw.wait_status(
        SETTLE_DEADLINE,
        "pending entries back to 0 after warm-up",
        |s| s["shards"][0]["pending"]["entries"] == 0,
    );
    let rss_before = rss_bytes(gw.pid());
    let stop = AtomicBool::new(false);
    let peak = AtomicU64::new(0);
    let outcomes = std::thread::scope(|scope| {
        scope.spawn(|| watch_pending_entries(&gw, &stop, &peak));
        let outcomes = flood_mute(&gw, 100, 500);
        stop.store(true, Ordering::Relaxed);
        outcomes
    });
    assert_eq!(outcomes.len(), 500);
    let timed_out = outcomes
        .iter()
        .filter(|o| **o == MuteOutcome::TimedOut)
        .count();
    assert!(timed_out > 0, "no call timed out: {outcomes:?}");
    assert!(
        outcomes.contains(&MuteOutcome::RefusedPendingMax)
            || outcomes.contains(&MuteOutcome::RefusedPerUpstreamMax),
        "500 calls against a cap of 50 were never refused: {outcomes:?}"
    );
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= 50,
        "pending.entries reached {peak}, over pending_max 50"
    );
    assert!(peak > 0, "the watcher never saw a pending entry");
    let status = gw.wait_status(SETTLE_DEADLINE, "pending entries back to 0", |s| {
        s["shards"][0]["pending"]["entries"] == 0
    });
    let pending = &status["shards"][0]["pending"];
    let refused = (outcomes.len() - timed_out) as u64;
    assert_eq!(
        pending["timeouts_total"],
        warm_up.len() + timed_out,
        "{pending:#}"
    );
    let refusals = &pending["refusals"];
    assert_eq!(
        refusals["pending_max"].as_u64().unwrap()
            + refusals["pending_per_upstream_max"].as_u64().unwrap(),
        refused,
        "{pending:#}"
    );
    let rss_after = rss_bytes(gw.pid());
    assert!(
        rss_after <= rss_before + RSS_SLACK_BYTES,
        "rss grew from {rss_before} to {rss_after} bytes"
    );
    let plan_total = plan_total_bytes(&gw.config_path, 1);
    assert!(
        rss_after < plan_total,
        "rss {rss_after} bytes over the plan total {plan_total}"
    );
}

#[test]
fn a_saturated_upstream_leaves_room_for_the_others() {
    let gw = Gateway::start(&mute_config(50, 25), 1);
    let outcomes = std::thread::scope(|scope| {
        let flood = scope.spawn(|| flood_mute(&gw, 50, 150));
        gw.wait_status(
            SETTLE_DEADLINE,
            "mute saturated at pending_per_upstream_max",
            |s| upstream_status(s, 0, "mute")["in_flight"] == 25,
        );
        for id in 0..5 {
            let (status, answer) =
                stateless_call(&gw, 9000 + id, "demo__echo", json!({"text": "still here"}));
            assert_eq!(status, 200, "{answer}");
            assert_eq!(
                answer["result"]["content"][0]["text"], "still here",
                "{answer}"
            );
        }
        flood.join().expect("flood")
    });
    assert!(
        outcomes.contains(&MuteOutcome::RefusedPerUpstreamMax),
        "{outcomes:?}"
    );
    assert!(
        !outcomes.contains(&MuteOutcome::RefusedPendingMax),
        "{outcomes:?}"
    );
}

// --- 3. a notification flood to a slow client ------------------------------------------------

/// Log messages the fixture's `flood` sends in one call.
const FLOOD_COUNT: u64 = 20000;
/// The client's socket receive buffer: small, so the gateway's socket backs up at once.
const SLOW_CLIENT_RCVBUF_BYTES: usize = 4096;
/// How long the slow client reads nothing.
const SLOW_CLIENT_STALL: Duration = Duration::from_secs(4);

/// A connection to `addr` whose receive buffer was shrunk before connecting.
fn small_window_conn(addr: &str) -> Conn {
    let addr: SocketAddr = addr.parse().expect("socket address");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("tcp socket");
    socket
        .set_recv_buffer_size(SLOW_CLIENT_RCVBUF_BYTES)
        .expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    Conn::from_stream(socket.into()).expect("client connection")
}

#[test]
fn notification_flood_to_a_slow_client_is_bounded_and_counted() {
    let py = PythonUpstream::http("py", false);
    let config = config_with(&format!(
        "{}\n[pending]\nstream_buffer_bytes_max = 4096\n",
        http_upstream("py", py.url(), ""),
    ));
    let gw = Gateway::start(&config, 1);
    let rss_before = rss_bytes(gw.pid());
    let mut body = stateless_body(
        1,
        "tools/call",
        json!({"name": "py__flood", "arguments": {"count": FLOOD_COUNT}}),
    );
    body["params"]["_meta"][META_LOG_LEVEL] = json!("info");
    assert_eq!(body["params"]["_meta"][META_VERSION], STATELESS_ERA);
    let mut conn = small_window_conn(&gw.mcp_addr);
    conn.send(&stateless_post(&gw.mcp_path(), &body).to_bytes());
    std::thread::sleep(SLOW_CLIENT_STALL);
    let rss_stalled = rss_bytes(gw.pid());
    conn.set_read_timeout(Duration::from_secs(30));
    let head = conn.read_head();
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(
        head.header("content-type"),
        Some("text/event-stream"),
        "{head:?}"
    );
    let mut parser = SseParser::default();
    let (mut logs, mut answer) = (0u64, None);
    while let Some(item) = conn.next_sse(&mut parser).expect("read the event stream") {
        let SseItem::Event(event) = item else {
            continue;
        };
        let message: Value = serde_json::from_str(&event.data).expect("json event");
        match message["method"].as_str() {
            Some("notifications/message") => {
                assert!(
                    answer.is_none(),
                    "a log message after the answer: {message}"
                );
                logs += 1;
            }
            Some(other) => panic!("unexpected {other} on the call's stream: {message}"),
            None => answer = Some(message),
        }
    }
    let answer = answer.expect("the stream ended without the call's answer");
    assert_eq!(answer["id"], 1, "{answer}");
    if answer["error"].is_null() {
        assert_eq!(
            answer["result"]["content"][0]["text"],
            format!("flooded {FLOOD_COUNT}"),
            "{answer}"
        );
    }
    let status = gw.status();
    let dropped = status["shards"][0]["pending"]["events_dropped_total"]
        .as_u64()
        .expect("events_dropped_total");
    assert!(
        dropped > 0,
        "nothing dropped for a stalled client: {status:#}"
    );
    assert_eq!(
        logs + dropped,
        FLOOD_COUNT,
        "{logs} log messages received and {dropped} dropped"
    );
    assert!(
        rss_stalled <= rss_before + RSS_SLACK_BYTES,
        "rss grew from {rss_before} to {rss_stalled} bytes while the client stalled"
    );
}

// --- 4. a stdio child killed mid-request -----------------------------------------------------

#[test]
fn a_stdio_upstream_killed_mid_request_is_restarted_without_zombies() {
    let config = config_with(&stdio_upstream(
        "pys",
        python_stdio_command("pys"),
        "restart_backoff_ms = 100",
    ));
    let gw = Gateway::start(&config, 1);
    let (slow, crash) = std::thread::scope(|scope| {
        let slow = scope.spawn(|| {
            let started = Instant::now();
            let answer = stateless_call(&gw, 1, "pys__slow", json!({"ms": 5000}));
            (answer, started.elapsed())
        });
        gw.wait_status(SETTLE_DEADLINE, "the slow call in flight", |s| {
            upstream_status(s, 0, "pys")["in_flight"] == 1
        });
        let crash = stateless_call(&gw, 2, "pys__crash", json!({}));
        (slow.join().expect("slow call"), crash)
    });
    let ((status, answer), took) = slow;
    assert_eq!(status, 200, "{answer}");
    assert!(
        took < Duration::from_millis(4500),
        "the slow call waited {took:?}, past the child's death"
    );
    assert_eq!(answer["error"]["data"]["upstream"], "pys", "{answer}");
    assert!(error_message(&answer).contains("pys"), "{answer}");
    let (status, crashed) = crash;
    assert_eq!(status, 200, "{crashed}");
    assert_eq!(crashed["error"]["data"]["upstream"], "pys", "{crashed}");

    let status = gw.wait_status(SETTLE_DEADLINE, "pys restarted and up", |s| {
        let pys = upstream_status(s, 0, "pys");
        pys["up"] == true && pys["stdio"]["restarts_total"].as_u64() >= Some(1)
    });
    let pys = upstream_status(&status, 0, "pys");
    assert_eq!(pys["stdio"]["running"], true, "{pys:#}");
    assert_eq!(pys["stdio"]["last_exit_code"], 3, "{pys:#}");
    let (status, echoed) = stateless_call(&gw, 3, "pys__echo", json!({"text": "again"}));
    assert_eq!(status, 200, "{echoed}");
    assert_eq!(
        echoed["result"]["content"][0]["text"], "pys: again",
        "{echoed}"
    );
    let zombies = zombie_children(gw.pid());
    assert!(
        zombies.is_empty(),
        "zombie children of the gateway: {zombies:?}"
    );
}

// --- 5. an upstream that is down at startup --------------------------------------------------

#[test]
fn an_optional_upstream_that_is_down_drops_out_and_the_gateway_stays_ready() {
    let blackhole = Hostile::blackhole();
    let config = config_with(&format!(
        "{}{}",
        http_upstream(
            "hole",
            blackhole.url(),
            "required = false\nrequest_timeout_ms = 1000"
        ),
        http_upstream("gone", &closed_port_url(), "required = false"),
    ));
    let gw = Gateway::start(&config, 1);
    let body = stateless_body(1, "tools/list", json!({}));
    let listed = gw.stateless(&body).json();
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("tools/list: {listed}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["demo__echo", "demo__add", "demo__sleep"]);
    for (id, upstream) in [(2, "hole"), (3, "gone")] {
        let (status, answer) = stateless_call(&gw, id, &format!("{upstream}__anything"), json!({}));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["error"]["data"]["upstream"], upstream, "{answer}");
        assert!(
            error_message(&answer).contains(&format!("upstream {upstream}")),
            "{answer}"
        );
    }
    let refusals = &gw.status()["totals"]["refusals"];
    assert_eq!(refusals["upstream_down"], 2, "{refusals}");
    let ready = gw.admin_get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let (status, answer) = stateless_call(&gw, 4, "demo__echo", json!({"text": "up"}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "up");
}

#[test]
fn an_optional_stdio_upstream_whose_command_appears_later_joins_the_merged_lists() {
    // The command is a script that does not exist yet: the gateway starts without it, the
    // child is tried again with its backoff, and once it runs its tools join the lists.
    let dir = common::TempDir::new("late");
    let script = dir.0.join("late-server");
    let config = config_with(&format!(
        "[[upstreams]]\nname = \"late\"\nkind = \"stdio\"\ncommand = {}\nrequired = false\n\
         restart_backoff_max_ms = 500\n",
        toml::Value::String(script.to_str().expect("utf-8 path").to_owned())
    ));
    let gw = Gateway::start(&config, 1);
    let late = upstream_status(&gw.status(), 0, "late");
    assert_eq!(late["up"], false, "{late:#}");
    assert!(
        late["last_error"]
            .as_str()
            .is_some_and(|why| why.contains("cannot start")),
        "{late:#}"
    );
    let tool_names = |gw: &Gateway| -> Vec<String> {
        let listed = gw
            .stateless(&stateless_body(1, "tools/list", json!({})))
            .json();
        listed["result"]["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools/list: {listed}"))
            .iter()
            .map(|tool| tool["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(!tool_names(&gw)
        .iter()
        .any(|name| name.starts_with("late__")));
    let (program, args) = python_stdio_command("late");
    let quoted: Vec<String> = std::iter::once(program)
        .chain(args)
        .map(|arg| format!("'{arg}'"))
        .collect();
    std::fs::write(&script, format!("#!/bin/sh\nexec {}\n", quoted.join(" "))).unwrap();
    let made_executable = Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    assert!(made_executable.success());
    gw.wait_status(SETTLE_DEADLINE, "late up", |s| {
        upstream_status(s, 0, "late")["up"] == true
    });
    // Its lists are fetched once it is up, so the merged list may lag the status a moment.
    let listed = common::poll_until(
        SETTLE_DEADLINE,
        Duration::from_millis(50),
        || tool_names(&gw),
        |names| names.iter().any(|name| name == "late__echo"),
    );
    assert!(listed.is_ok(), "late__echo never listed: {listed:?}");
    let (status, answer) = stateless_call(&gw, 2, "late__echo", json!({"text": "at last"}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "late: at last");
}

#[test]
fn a_required_upstream_that_is_down_stops_the_gateway_at_startup() {
    let url = closed_port_url();
    let text = failed_start(
        "required-down",
        &config_with(&http_upstream("gone", &url, "")),
    );
    assert!(text.contains("upstream gone"), "{text}");
    assert!(text.contains("required = false"), "{text}");
}

#[test]
fn unprefixed_upstreams_whose_tool_names_collide_stop_the_gateway_at_startup() {
    let config = config_with(&format!(
        "{}{}",
        stdio_upstream("one", python_stdio_command("one"), "prefix = \"\""),
        stdio_upstream("two", python_stdio_command("two"), "prefix = \"\""),
    ));
    let text = failed_start("collision", &config);
    assert!(text.contains("merged names collide"), "{text}");
    assert!(
        text.contains(r#"tools "echo" is offered by upstreams "one" and "two""#),
        "{text}"
    );
}

/// Runs `serve` with `config` on one shard, which must exit unready; returns its output.
fn failed_start(tag: &str, config: &str) -> String {
    let dir = common::TempDir::new(tag);
    let config_path = dir.0.join("shardgate.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(common::binary())
        .args(["serve", "--config"])
        .arg(&config_path)
        .args(["--cores", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardgate");
    let exited = common::wait_exit(&mut child, Duration::from_secs(60));
    if exited.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("gateway output");
    let status = exited.expect("the gateway kept running");
    let text = common::output_text(&output);
    assert!(!status.success(), "{status}: {text}");
    assert!(!text.contains("shardgate ready:"), "{text}");
    text
}

// --- 6. the circuit breaker ------------------------------------------------------------------

#[test]
fn an_http_upstream_that_dies_opens_its_breaker_after_breaker_failures() {
    let py = PythonUpstream::http("brk", false);
    let config = config_with(&http_upstream(
        "brk",
        py.url(),
        "breaker_failures = 3\nbreaker_open_ms = 600000",
    ));
    let gw = Gateway::start(&config, 1);
    let (status, answer) = stateless_call(&gw, 1, "brk__echo", json!({"text": "alive"}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "brk: alive");
    drop(py);
    for id in 2..5 {
        let (status, answer) = stateless_call(&gw, id, "brk__echo", json!({"text": "dead"}));
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["error"]["data"]["upstream"], "brk", "{answer}");
        assert_eq!(answer["error"]["data"]["reason"], "unavailable", "{answer}");
        assert!(
            !error_message(&answer).contains("breaker"),
            "call {id} refused by the breaker before breaker_failures: {answer}"
        );
    }
    let (status, answer) = stateless_call(&gw, 5, "brk__echo", json!({"text": "refused"}));
    assert_eq!(status, 200, "{answer}");
    let message = error_message(&answer);
    assert!(
        message.contains("circuit breaker is open") && message.contains("breaker_failures"),
        "{answer}"
    );
    let status = gw.status();
    let brk = upstream_status(&status, 0, "brk");
    assert_eq!(brk["breaker"], "open", "{brk:#}");
    assert_eq!(brk["breaker_opened_total"], 1, "{brk:#}");
    assert_eq!(brk["breaker_refused_total"], 1, "{brk:#}");
    assert_eq!(
        status["totals"]["refusals"]["breaker_open"], 1,
        "{status:#}"
    );
}

/// Asserts `answer` is the timeout of a call to `upstream` after `timeout_ms`, not a breaker's
/// refusal or an upstream failure.
fn assert_timed_out(answer: &Value, upstream: &str, timeout_ms: u64) {
    assert_eq!(answer["error"]["data"]["upstream"], upstream, "{answer}");
    assert_eq!(
        answer["error"]["data"]["reason"], "request_timeout_ms",
        "{answer}"
    );
    let message = error_message(answer);
    assert!(
        message.contains(&format!("upstream {upstream}"))
            && message.contains(&format!("{timeout_ms} ms")),
        "a timeout names the upstream and its deadline: {answer}"
    );
}

/// Sends `calls` slow `tool` calls at once, one connection each; returns their answers.
fn slow_calls(gw: &Gateway, calls: u64, tool: &str, arguments: &Value) -> Vec<Value> {
    std::thread::scope(|scope| {
        let callers: Vec<_> = (1..=calls)
            .map(|id| scope.spawn(move || stateless_call(gw, id, tool, arguments.clone())))
            .collect();
        callers
            .into_iter()
            .map(|caller| {
                let (status, answer) = caller.join().expect("caller");
                assert_eq!(status, 200, "{answer}");
                answer
            })
            .collect()
    })
}

#[test]
fn slow_builtin_calls_that_time_out_leave_the_breaker_closed() {
    // Goal: one client's calls to a slow tool, each past request_timeout_ms, do not open the
    // breaker (3 failures would), so every client's next call still goes through.
    let gw = Gateway::start(&config_with("[pending]\nrequest_timeout_ms = 200\n"), 1);
    let answers = slow_calls(&gw, 16, "demo__sleep", &json!({"ms": 5000}));
    for answer in &answers {
        assert_timed_out(answer, "demo", 200);
    }
    let (status, answer) = stateless_call(&gw, 99, "demo__echo", json!({"text": "after"}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "after", "{answer}");
    let demo = upstream_status(&gw.status(), 0, "demo");
    assert_eq!(demo["breaker"], "closed", "{demo:#}");
    assert_eq!(demo["breaker_opened_total"], 0, "{demo:#}");
}

#[test]
fn slow_http_calls_that_time_out_leave_the_breaker_closed() {
    // Goal: the same for an http upstream, whose exchange times out in the pool: a slow answer
    // is not a transport failure (a dead upstream still opens it: the test above this one).
    let py = PythonUpstream::http("slw", false);
    let config = config_with(&http_upstream(
        "slw",
        py.url(),
        "request_timeout_ms = 300\nbreaker_failures = 3\nbreaker_open_ms = 600000",
    ));
    let gw = Gateway::start(&config, 1);
    let answers = slow_calls(&gw, 8, "slw__slow", &json!({"ms": 3000}));
    for answer in &answers {
        assert_timed_out(answer, "slw", 300);
    }
    let (status, answer) = stateless_call(&gw, 99, "slw__echo", json!({"text": "after"}));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"]["content"][0]["text"], "slw: after",
        "{answer}"
    );
    let slw = upstream_status(&gw.status(), 0, "slw");
    assert_eq!(slw["breaker"], "closed", "{slw:#}");
    assert_eq!(slw["breaker_opened_total"], 0, "{slw:#}");
}

#[test]
fn a_call_the_full_pool_turns_away_is_answered_and_counted() {
    // Goal: with one pooled connection and no waiters, calls beside a slow one are turned
    // away by the pool; each gets an error naming the upstream and is counted as pool_full.
    let py = PythonUpstream::http("one", false);
    let config = config_with(&http_upstream(
        "one",
        py.url(),
        "pool_connections_max = 1\npool_waiters_max = 0\nrequest_timeout_ms = 10000",
    ));
    let gw = Gateway::start(&config, 1);
    let answers = slow_calls(&gw, 4, "one__slow", &json!({"ms": 1500}));
    let turned_away: Vec<&Value> = answers
        .iter()
        .filter(|answer| answer["error"]["data"]["reason"] == "pool_full")
        .collect();
    assert!(
        !turned_away.is_empty(),
        "no call was turned away: {answers:#?}"
    );
    for answer in &turned_away {
        assert_eq!(answer["error"]["data"]["upstream"], "one", "{answer}");
        assert!(
            error_message(answer).contains("pool_connections_max"),
            "{answer}"
        );
    }
    let refusals = &gw.status()["totals"]["refusals"];
    assert_eq!(refusals["pool_full"], turned_away.len(), "{refusals}");
}

// --- 7. upstream timeouts on the deadline wheel ------------------------------------------------

#[test]
fn a_request_timeout_answers_at_its_deadline_not_at_the_next_epoch_tick() {
    // Goal: request_timeout_ms is waited for on the deadline wheel: with a 60 s epoch tick the
    // client still gets its timeout soon after 500 ms, and the call ended before any tick ran
    // (the epoch counter is still 0, the pending table already empty).
    let gw = Gateway::start(
        &config_with("[epoch]\ntick_ms = 60000\n\n[pending]\nrequest_timeout_ms = 500\n"),
        1,
    );
    let started = Instant::now();
    let (status, answer) = stateless_call(&gw, 1, "demo__sleep", json!({"ms": 30000}));
    let answered_after = started.elapsed();
    assert_eq!(status, 200, "{answer}");
    assert_timed_out(&answer, "demo", 500);
    assert!(
        answered_after >= Duration::from_millis(500),
        "the timeout came before request_timeout_ms: {answered_after:?}"
    );
    // Far below the 60 s tick that would otherwise end it, and clear of any scheduling delay.
    assert!(
        answered_after < Duration::from_secs(5),
        "the timeout waited for an epoch tick: {answered_after:?}"
    );
    let shard = &gw.status()["shards"][0];
    assert_eq!(shard["epoch"], 0, "no epoch tick ran yet: {shard:#}");
    assert_eq!(shard["pending"]["entries"], 0, "{shard:#}");
    assert_eq!(shard["pending"]["timeouts_total"], 1, "{shard:#}");
}
