//! Goal: start-up problems a user can meet end in a plain message and a non-zero exit instead of
//! a panic or a silently shared port: a port already taken (glommio always sets SO_REUSEPORT, so
//! the gateway must notice by itself), and more cores than the process may use.
//!
//! Method: hold a port with a plain listener, or ask for an absurd core count, run `serve` to
//! completion and assert the exit code and the message.

mod common;

use common::{output_text, run_cli, TempDir};

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
