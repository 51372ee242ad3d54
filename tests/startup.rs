//! Goal: start-up problems a user can meet end in a plain message and a non-zero exit instead of
//! a panic or a silently shared port: a port already taken (glommio always sets SO_REUSEPORT, so
//! the gateway must notice by itself), more cores than the process may use, upstreams that are
//! down, late, crashing or misconfigured. `check` exits as `serve` would (0 starts, 1 cannot
//! start, 2 wrong configuration), optional upstreams never stop the start nor hold it up, and
//! each message names what failed.
//!
//! Method: hold a port with a plain listener, ask for an absurd core count, or name upstreams
//! that refuse, never answer, answer 404, do not resolve or exit at once; run `check` and
//! `serve` to completion (or `serve` to its ready line) and assert the exit code, the message
//! and `/status`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::mcp::{stateless_body, upstream_status};
use common::{config_with, output_text, run_cli, TempDir};
use serde_json::json;

fn write(dir: &TempDir, toml: &str) -> String {
    let path = dir.0.join("shardgate.toml");
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn serve_refuses_a_taken_port_naming_the_key_and_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = TempDir::new("startup");
    let config = write(
        &dir,
        &format!("[server]\nlisten = \"{addr}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n"),
    );
    let output = run_cli(&["serve", "--config", &config, "--cores", "1"]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("server.listen"),
        "names the config key: {text}"
    );
    assert!(
        text.contains(&addr.to_string()),
        "names the address: {text}"
    );
}

#[test]
fn serve_refuses_more_cores_than_the_process_may_use() {
    let dir = TempDir::new("startup");
    let config = write(
        &dir,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let output = run_cli(&["serve", "--config", &config, "--cores", "200"]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("200 cores requested"), "{text}");
    let output = run_cli(&["serve", "--config", &config, "--cores", "300"]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("1..=256"),
        "shard numbers are one byte: {text}"
    );
}

#[test]
fn serve_refuses_a_core_outside_the_affinity_mask() {
    let dir = TempDir::new("startup");
    let config = write(
        &dir,
        "[server]\nlisten = \"127.0.0.1:0\"\ncores = [4095]\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let output = run_cli(&["serve", "--config", &config]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("core 4095"), "{text}");
    assert!(
        text.contains("server.cores"),
        "names the config key: {text}"
    );
}

#[test]
fn serve_refuses_a_memlock_limit_below_the_io_memory_it_needs() {
    let dir = TempDir::new("startup");
    let config = write(
        &dir,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
    );
    let script = format!(
        "ulimit -l 64 && exec '{}' serve --config '{config}' --cores 1",
        common::binary()
    );
    let output = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("RLIMIT_MEMLOCK"), "{text}");
    assert!(
        text.contains("server.io_memory_bytes"),
        "names the config key: {text}"
    );
}

#[test]
fn restart_right_after_sigterm_binds_the_same_port() {
    // Connections the server closed first sit in TIME_WAIT on the gateway's port; a restart
    // must still bind it (SO_REUSEADDR), and the port probe must not blame another process.
    let mut first = common::Gateway::start(&common::config_with(""), 1);
    for _ in 0..5 {
        let request = common::mcp::post(
            "/mcp",
            &common::mcp::initialize_body(1, common::mcp::SESSION_VERSION_LATEST),
        )
        .header("Connection", "close");
        let mut conn = common::client::Conn::connect(&first.mcp_addr);
        assert_eq!(conn.roundtrip(&request.to_bytes()).status, 200);
        // Wait for the server's FIN so the TIME_WAIT side is the gateway's.
        assert!(matches!(
            conn.probe_close(std::time::Duration::from_secs(2)),
            common::client::CloseProbe::Closed(_)
        ));
    }
    common::send_signal(first.pid(), "TERM");
    let status = common::wait_exit(&mut first.child, std::time::Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let again = format!(
        "[server]\nlisten = \"{}\"\n[admin]\nlisten = \"{}\"\n",
        first.mcp_addr, first.admin_addr
    );
    let second = common::Gateway::start(&again, 1);
    assert_eq!(second.mcp_addr, first.mcp_addr);
}

// --- what `check` predicts and `serve` does ---------------------------------------------------
//
// Exit status of both: 0 serve starts, 1 it cannot (a required upstream down or late, this
// machine), 2 the configuration is wrong (it does not validate, merged names collide).

/// How long a `serve` that must fail may take: the upstreams it waits for fail at once.
const FAILED_START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a test waits for `/status` to show what an upstream's first connect found.
const SETTLE_DEADLINE: Duration = Duration::from_secs(15);

/// Runs `shardgate <command> --config <toml in a file>` (`serve` on one shard) to its end;
/// returns its exit code and output. A `serve` that printed its ready line fails the test.
fn run_to_exit(command: &str, toml: &str) -> (Option<i32>, String) {
    let dir = TempDir::new("startup");
    let config = write(&dir, toml);
    let mut args = vec![command, "--config", &config];
    if command == "serve" {
        args.extend(["--cores", "1"]);
    }
    let mut child = Command::new(common::binary())
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shardgate");
    let exited = common::wait_exit(&mut child, FAILED_START_DEADLINE);
    if exited.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().expect("shardgate output");
    let text = output_text(&output);
    assert!(exited.is_some(), "{command} kept running: {text}");
    assert!(!text.contains("shardgate ready:"), "{text}");
    (output.status.code(), text)
}

/// `check`'s line for upstream `name`.
fn upstream_line(text: &str, name: &str) -> String {
    text.lines()
        .find(|line| line.starts_with(&format!("upstream {name}: ")))
        .unwrap_or_else(|| panic!("no line for upstream {name}: {text}"))
        .to_owned()
}

/// A URL on 127.0.0.1 where nothing listens (a port that was free a moment ago).
fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/mcp")
}

fn http_upstream(name: &str, url: &str, extra: &str) -> String {
    format!("[[upstreams]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\n{extra}\n")
}

fn sh_upstream(name: &str, script: &str, extra: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"{name}\"\nkind = \"stdio\"\ncommand = \"sh\"\nargs = [\"-c\", {}]\n\
         {extra}\n",
        toml::Value::String(script.to_owned())
    )
}

/// A config whose only upstreams are `upstreams`, with `server` keys added.
fn config_of(server: &str, upstreams: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{server}\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         {upstreams}"
    )
}

/// A listener that completes TCP handshakes (the kernel's backlog) and never answers.
fn silent_upstream() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    (listener, url)
}

#[test]
fn a_required_http_upstream_that_is_down_makes_check_and_serve_exit_1() {
    let config = config_with(&http_upstream("needed", &closed_port_url(), ""));
    let (code, text) = run_to_exit("check", &config);
    assert_eq!(code, Some(1), "{text}");
    let line = upstream_line(&text, "needed");
    assert!(
        line.contains("connection refused")
            && line.ends_with("(required: serve refuses to start until it answers)"),
        "{line}"
    );
    assert!(
        text.contains("serve would not start: required upstream(s) needed not up"),
        "{text}"
    );
    let (code, text) = run_to_exit("serve", &config);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("upstream needed") && text.contains("connection refused"),
        "{text}"
    );
}

#[test]
fn a_required_stdio_upstream_whose_command_is_missing_makes_check_and_serve_exit_1() {
    let config = config_with(
        "[[upstreams]]\nname = \"tool\"\nkind = \"stdio\"\ncommand = \"/nonexistent/mcp-server\"\n",
    );
    for command in ["check", "serve"] {
        let (code, text) = run_to_exit(command, &config);
        assert_eq!(code, Some(1), "{command}: {text}");
        assert!(
            text.contains("upstream tool: cannot start `/nonexistent/mcp-server`")
                && text.contains("No such file or directory"),
            "{command}: {text}"
        );
    }
}

#[test]
fn a_required_stdio_child_that_crashes_at_start_exits_1_naming_its_exit_code_and_stderr() {
    let script = "echo starting >&2; echo 'fatal: API_KEY is not set' >&2; exit 3";
    let config = config_with(&sh_upstream("crashy", script, ""));
    for command in ["check", "serve"] {
        let (code, text) = run_to_exit(command, &config);
        assert_eq!(code, Some(1), "{command}: {text}");
        let reported = text
            .lines()
            .find(|line| line.contains("upstream crashy: child exited"))
            .unwrap_or_else(|| panic!("{command} names no exit: {text}"));
        assert!(
            reported.contains("exit code 3")
                && reported.contains(r#""starting", "fatal: API_KEY is not set""#),
            "{command}: {reported}"
        );
        assert!(!text.contains("connection reset"), "{command}: {text}");
    }
}

#[test]
fn an_optional_stdio_upstream_whose_command_is_missing_passes_check_and_serve_starts() {
    let config = config_with(
        "[[upstreams]]\nname = \"later\"\nkind = \"stdio\"\ncommand = \"/nonexistent/mcp-server\"\n\
         required = false\n",
    );
    let (code, text) = run_to_exit("check", &config);
    assert_eq!(code, Some(0), "{text}");
    let line = upstream_line(&text, "later");
    assert!(
        line.contains("cannot start `/nonexistent/mcp-server`")
            && line.ends_with("(optional: serve starts without it and adds it once it answers)"),
        "{line}"
    );
    let gw = common::Gateway::start(&config, 1);
    let later = upstream_status(&gw.status(), 0, "later");
    assert_eq!(later["up"], false, "{later:#}");
    assert_eq!(later["stdio"]["running"], false, "{later:#}");
    let why = later["last_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("cannot start `/nonexistent/mcp-server`"),
        "{later:#}"
    );
    let ready = gw.admin_get("/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let listed = gw
        .stateless(&stateless_body(1, "tools/list", json!({})))
        .json();
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(3));
}

#[test]
fn an_optional_http_upstream_that_is_down_passes_check_and_serve_starts() {
    let config = config_with(&http_upstream(
        "away",
        &closed_port_url(),
        "required = false",
    ));
    let (code, text) = run_to_exit("check", &config);
    assert_eq!(code, Some(0), "{text}");
    let line = upstream_line(&text, "away");
    assert!(line.contains("connection refused"), "{line}");
    let gw = common::Gateway::start(&config, 1);
    // The start does not wait for it: its first connect may still be under way.
    let status = gw.wait_status(SETTLE_DEADLINE, "away's connect failed", |status| {
        upstream_status(status, 0, "away")["last_error"]
            .as_str()
            .is_some_and(|why| why.contains("connection refused"))
    });
    let away = upstream_status(&status, 0, "away");
    assert_eq!(away["up"], false, "{away:#}");
}

#[test]
fn upstreams_whose_merged_names_collide_make_check_and_serve_exit_2() {
    let config = config_of(
        "",
        "[[upstreams]]\nname = \"first\"\nkind = \"builtin\"\nprefix = \"\"\n\n\
         [[upstreams]]\nname = \"second\"\nkind = \"builtin\"\nprefix = \"\"\n",
    );
    for command in ["check", "serve"] {
        let (code, text) = run_to_exit(command, &config);
        assert_eq!(code, Some(2), "{command}: {text}");
        assert!(
            text.contains("merged names collide")
                && text.contains(r#"tools "echo" is offered by upstreams "first" and "second""#),
            "{command}: {text}"
        );
    }
}

#[test]
fn an_invalid_config_makes_check_and_serve_exit_2() {
    let config = config_with("[limits]\nconnections_max = 0\n");
    for command in ["check", "serve"] {
        let (code, text) = run_to_exit(command, &config);
        assert_eq!(code, Some(2), "{command}: {text}");
        assert!(text.contains("limits.connections_max"), "{command}: {text}");
    }
}

#[test]
fn a_listen_port_in_use_makes_check_exit_1_as_serve_does() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let config = format!("[server]\nlisten = \"{addr}\"\n[admin]\nlisten = \"127.0.0.1:0\"\n");
    let (code, text) = run_to_exit("check", &config);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("server.listen") && text.contains(&addr.to_string()),
        "{text}"
    );
}

#[test]
fn an_optional_upstream_that_never_answers_does_not_hold_up_the_start() {
    let (_silent, url) = silent_upstream();
    // Its handshake could take 2 × request_timeout_ms (capped at 30 s each): far past the
    // ready line's deadline, had the start waited for it.
    let config = config_with(&http_upstream(
        "silent",
        &url,
        "required = false\nrequest_timeout_ms = 600000",
    ));
    let gw = common::Gateway::start(&config, 1);
    let silent = upstream_status(&gw.status(), 0, "silent");
    assert_eq!(
        (&silent["up"], &silent["connecting"]),
        (&json!(false), &json!(true))
    );
    let listed = gw
        .stateless(&stateless_body(1, "tools/list", json!({})))
        .json();
    assert_eq!(listed["result"]["tools"].as_array().map(Vec::len), Some(3));
    let answer = gw
        .stateless(&stateless_body(
            2,
            "tools/call",
            json!({"name": "silent__anything", "arguments": {}}),
        ))
        .json();
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("upstream silent is connecting"),
        "{answer}"
    );
    assert_eq!(answer["error"]["data"]["upstream"], "silent", "{answer}");
    // `check` waits for it only up to server.startup_timeout_ms, and passes.
    let config = config_of(
        "startup_timeout_ms = 300",
        &http_upstream("silent", &url, "required = false"),
    );
    let (code, text) = run_to_exit("check", &config);
    assert_eq!(code, Some(0), "{text}");
    let line = upstream_line(&text, "silent");
    assert!(
        line.contains("not up within server.startup_timeout_ms 300 ms"),
        "{line}"
    );
}

#[test]
fn a_required_upstream_not_up_within_startup_timeout_ms_makes_check_and_serve_exit_1() {
    let (_silent, url) = silent_upstream();
    let config = config_of(
        "startup_timeout_ms = 300",
        &http_upstream("silent", &url, ""),
    );
    for command in ["check", "serve"] {
        let (code, text) = run_to_exit(command, &config);
        assert_eq!(code, Some(1), "{command}: {text}");
        assert!(
            text.contains("upstream silent: not up within server.startup_timeout_ms 300 ms"),
            "{command}: {text}"
        );
    }
}

// --- messages a user can act on ---------------------------------------------------------------

/// An HTTP server answering every request with a 404 HTML page of a few KiB, one thread per
/// connection; its URL.
fn not_found_upstream() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_404(stream));
        }
    });
    url
}

fn answer_404(stream: std::net::TcpStream) {
    use std::io::{BufRead, Read, Write};
    let page = format!(
        "<!DOCTYPE html>\n<html>\n<head><title>404 Not Found</title></head>\n<body>\n{}\n\
         END-OF-PAGE</body>\n</html>\n",
        "<p>The requested URL was not found on this server.</p>\n".repeat(60)
    );
    let mut writer = stream.try_clone().unwrap();
    let mut reader = std::io::BufReader::new(stream);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let head = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
            page.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(page.as_bytes()).is_err()
        {
            return;
        }
    }
}

#[test]
fn an_upstream_answering_404_is_reported_with_its_status_and_a_one_line_excerpt() {
    let url = not_found_upstream();
    let (code, text) = run_to_exit("check", &config_with(&http_upstream("web", &url, "")));
    assert_eq!(code, Some(1), "{text}");
    let line = upstream_line(&text, "web");
    assert!(
        line.contains("HTTP 404 (text/html")
            && line.contains("<title>404 Not Found</title>")
            && line.contains("(is upstreams[1].url the server's MCP endpoint?)"),
        "{line}"
    );
    // An excerpt of the page, not the page.
    assert!(!text.contains("END-OF-PAGE"), "{text}");
    assert!(line.len() < 600, "{} bytes: {line}", line.len());
}

#[test]
fn an_upstream_whose_host_does_not_resolve_is_reported_naming_the_host_once() {
    // `.invalid` never resolves (RFC 6761).
    let url = "http://no-such-host.invalid:8000/mcp";
    let config = config_with(&http_upstream("far", url, "required = false"));
    let (code, text) = run_to_exit("check", &config);
    assert_eq!(code, Some(0), "{text}");
    let line = upstream_line(&text, "far");
    assert!(
        line.contains("cannot resolve host no-such-host.invalid"),
        "{line}"
    );
    assert_eq!(line.matches(url).count(), 1, "{line}");
    let gw = common::Gateway::start(&config, 1);
    // The start does not wait for it: its first resolve may still be under way.
    gw.wait_status(SETTLE_DEADLINE, "far's resolve failed", |status| {
        upstream_status(status, 0, "far")["last_error"]
            .as_str()
            .is_some_and(|why| why.contains("cannot resolve host no-such-host.invalid"))
    });
}
