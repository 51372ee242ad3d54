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
    let output = run_cli(&["serve", "--config", &config, "--cores", "4096"]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(text.contains("4096 cores requested"), "{text}");
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
