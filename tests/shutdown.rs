//! Goal: SIGTERM and SIGINT drain gracefully: listeners close at once (new connects are refused
//! or closed unanswered), requests already in flight finish with their results, and the process
//! exits 0 within `server.drain_timeout_ms`.
//!
//! Method: start three stateless `sleep` 1500 ms tool calls on their own connections, signal the
//! process 300 ms later, probe a new connection, then collect the three answers and the exit
//! status with deadlines.

mod common;

use std::process::Stdio;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::client::{CloseProbe, Conn, Response};
use common::mcp::{stateless_body, stateless_post};
use common::{config_with, send_signal, wait_exit, Gateway};
use serde_json::json;

const SLEEP_MS: u64 = 1500;
const DRAIN_TIMEOUT_MS: u64 = 5000;
const IN_FLIGHT: u64 = 3;

/// A config with `server.drain_timeout_ms` set. `config_with` already opens `[server]`, so the
/// key is added to that table instead of repeating it.
fn drain_config() -> String {
    let server = format!("[server]\ndrain_timeout_ms = {DRAIN_TIMEOUT_MS}\n");
    config_with("").replacen("[server]\n", &server, 1)
}

fn gateway() -> Gateway {
    Gateway::start(&drain_config(), 1)
}

fn start_sleep_call(gw: &Gateway, id: u64) -> JoinHandle<Response> {
    let body = stateless_body(
        id,
        "tools/call",
        json!({"name": "demo__sleep", "arguments": {"ms": SLEEP_MS}}),
    );
    let request = stateless_post(&gw.mcp_path(), &body).to_bytes();
    let mut conn = Conn::connect(&gw.mcp_addr);
    conn.send(&request);
    std::thread::spawn(move || conn.read_response())
}

/// Whether a fresh connection is refused, or accepted and closed without any response.
fn new_connection_is_turned_away(gw: &Gateway) -> Result<(), String> {
    let Ok(mut conn) = Conn::try_connect(&gw.mcp_addr) else {
        return Ok(());
    };
    let body = stateless_body(99, "server/discover", json!({}));
    conn.send_lossy(&stateless_post(&gw.mcp_path(), &body).to_bytes());
    match conn.probe_close(Duration::from_secs(3)) {
        CloseProbe::Closed(_) => Ok(()),
        CloseProbe::Data(bytes) => Err(format!(
            "new connection after the signal got an answer: {}",
            String::from_utf8_lossy(&bytes)
        )),
        CloseProbe::Open => Err("new connection after the signal was left open".to_owned()),
    }
}

fn drain_on(signal: &str) {
    let mut gw = gateway();
    let calls: Vec<JoinHandle<Response>> = (1..=IN_FLIGHT)
        .map(|id| start_sleep_call(&gw, id))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    send_signal(gw.pid(), signal);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "exited with calls still in flight"
    );
    new_connection_is_turned_away(&gw).unwrap();
    // The admin listener stays up while the drain runs, so a load balancer sees "not ready".
    let readyz = gw.admin_get("/readyz");
    assert_eq!(
        readyz.status,
        503,
        "/readyz while draining: {}",
        readyz.text()
    );
    assert!(readyz.text().contains("draining"), "{}", readyz.text());

    for (index, call) in calls.into_iter().enumerate() {
        let id = index as u64 + 1;
        let response = call.join().expect("in-flight call thread");
        assert_eq!(
            response.status,
            200,
            "in-flight call {id}: {}",
            response.text()
        );
        let body = response.json();
        assert_eq!(body["id"], id);
        assert!(
            body.get("error").is_none(),
            "in-flight call {id} finished: {body}"
        );
        assert_ne!(
            body["result"]["isError"], true,
            "in-flight call {id} finished: {body}"
        );
    }
    let within = Duration::from_millis(DRAIN_TIMEOUT_MS + 1000);
    let status = wait_exit(&mut gw.child, within)
        .unwrap_or_else(|| panic!("still running {within:?} after SIG{signal}"));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIG{signal}: {status}"
    );
}

#[test]
fn sigterm_drains_in_flight_calls_refuses_new_connections_and_exits_0() {
    drain_on("TERM");
}

#[test]
fn sigint_drains_like_sigterm() {
    drain_on("INT");
}

#[test]
fn idle_gateway_exits_0_promptly_on_sigterm() {
    let mut gw = gateway();
    let signalled = Instant::now();
    send_signal(gw.pid(), "TERM");
    let status = wait_exit(&mut gw.child, Duration::from_millis(DRAIN_TIMEOUT_MS))
        .expect("idle gateway exits within drain_timeout_ms");
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "nothing to drain, yet exit took {:?}",
        signalled.elapsed()
    );
}

#[test]
fn sigterm_drains_even_when_stderr_is_closed() {
    // A log reader that went away leaves stderr a broken pipe; the signal path must not depend
    // on writing a log line successfully.
    let mut gw = Gateway::start_with_stderr(&drain_config(), 1, Stdio::piped());
    drop(gw.child.stderr.take());
    send_signal(gw.pid(), "TERM");
    let status = wait_exit(&mut gw.child, Duration::from_millis(DRAIN_TIMEOUT_MS))
        .expect("gateway with a closed stderr exits within drain_timeout_ms of SIGTERM");
    assert_eq!(status.code(), Some(0));
}
