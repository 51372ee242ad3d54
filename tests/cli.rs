//! Goal: the command line keeps its contract: `check` accepts a valid file (exit 0, summary) and
//! rejects a bad one with exit 2 and a message naming the file, the key, the value and the
//! allowed range; unknown keys are named; it reports each upstream reached or not (a down
//! optional one is no error, a down required one exits 1, as `serve` would) and rejects merged
//! names that collide; `plan` prints per-shard and total memory lines whose total follows the
//! config; usage errors exit 2; the usage text lists the exit codes.
//!
//! Method: write config files into a temporary directory, run the binary to completion and
//! assert the exit code and the text on stdout/stderr.

mod common;

use std::path::PathBuf;

use common::{config_with, output_text, plan_total_bytes, run_cli, TempDir};

fn write_config(dir: &TempDir, name: &str, toml: &str) -> PathBuf {
    let path = dir.0.join(name);
    std::fs::write(&path, toml).unwrap();
    path
}

fn path_str(path: &std::path::Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Runs `check --config <toml in a file>`; returns (exit code, text, the file path).
fn check(toml: &str) -> (Option<i32>, String, PathBuf) {
    let dir = TempDir::new("cli");
    let path = write_config(&dir, "shardgate.toml", toml);
    let output = run_cli(&["check", "--config", path_str(&path)]);
    (output.status.code(), output_text(&output), path)
}

#[test]
fn check_accepts_a_valid_file_with_exit_0_and_a_summary() {
    let (code, text, _) = check(&config_with("[sessions]\nsessions_max = 100\n"));
    assert_eq!(code, Some(0), "check on a valid file: {text}");
    assert!(!text.trim().is_empty(), "check prints a summary");
    assert!(
        text.contains("100"),
        "summary shows the configured sessions_max: {text}"
    );
}

#[test]
fn check_rejects_an_out_of_range_value_naming_file_key_value_and_range() {
    let (code, text, path) = check(&config_with("[limits]\nconnections_max = 0\n"));
    assert_eq!(
        code,
        Some(2),
        "out-of-range value is a config error: {text}"
    );
    let file_name = path.file_name().unwrap().to_str().unwrap();
    assert!(text.contains(file_name), "message names the file: {text}");
    assert!(
        text.contains("connections_max"),
        "message names the key: {text}"
    );
    // With the path removed, the message still holds the value and at least one bound.
    let rest = text.replace(path_str(&path), "");
    let numbers: Vec<&str> = rest
        .split(|c: char| !c.is_ascii_digit())
        .filter(|token| !token.is_empty())
        .collect();
    assert!(numbers.contains(&"0"), "message names the value 0: {text}");
    assert!(
        numbers.iter().any(|n| *n != "0"),
        "message names the allowed range: {text}"
    );
}

#[test]
fn check_rejects_an_unknown_key_naming_it() {
    let (code, text, _) = check(&config_with("[limits]\nconections_max = 10\n"));
    assert_eq!(code, Some(2), "unknown key is a config error: {text}");
    assert!(
        text.contains("conections_max"),
        "message names the unknown key: {text}"
    );
}

#[test]
fn check_rejects_invalid_toml_with_exit_2() {
    let (code, text, _) = check("[server\nlisten = ");
    assert_eq!(code, Some(2), "invalid toml: {text}");
}

#[test]
fn check_on_a_missing_file_exits_2_naming_it() {
    let dir = TempDir::new("cli");
    let missing = dir.0.join("absent.toml");
    let output = run_cli(&["check", "--config", path_str(&missing)]);
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "missing file: {text}");
    assert!(
        text.contains("absent.toml"),
        "message names the file: {text}"
    );
}

#[test]
fn unknown_subcommand_exits_2() {
    let output = run_cli(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2), "{}", output_text(&output));
}

#[test]
fn plan_prints_per_shard_and_total_lines() {
    let dir = TempDir::new("cli");
    let path = write_config(&dir, "shardgate.toml", &config_with(""));
    let output = run_cli(&["plan", "--config", path_str(&path), "--cores", "2"]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "plan: {}",
        output_text(&output)
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.to_ascii_lowercase().contains("shard")),
        "plan prints per-shard lines:\n{stdout}"
    );
    assert!(
        plan_total_bytes(&path, 2) > 0,
        "plan prints a total:\n{stdout}"
    );
}

#[test]
fn plan_total_grows_with_cores_and_with_sessions_max() {
    let dir = TempDir::new("cli");
    let small = write_config(
        &dir,
        "small.toml",
        &config_with("[sessions]\nsessions_max = 100\n"),
    );
    let large = write_config(
        &dir,
        "large.toml",
        &config_with("[sessions]\nsessions_max = 100000\n"),
    );
    let one_core = plan_total_bytes(&small, 1);
    assert!(
        plan_total_bytes(&small, 2) > one_core,
        "two shards reserve more than one"
    );
    assert!(
        plan_total_bytes(&large, 1) > one_core,
        "a larger sessions_max reserves more"
    );
}

#[test]
fn plan_has_an_upstream_sessions_row_for_each_per_client_upstream_sized_by_sessions_max() {
    let dir = TempDir::new("cli");
    let upstream = |mode: &str, sessions_max: u32| {
        config_with(&format!(
            "[sessions]\nsessions_max = {sessions_max}\n\n[[upstreams]]\nname = \"api\"\n\
             kind = \"http\"\nurl = \"http://127.0.0.1:9/mcp\"\nsession_mode = \"{mode}\"\n"
        ))
    };
    let row = |name: &str, text: String| {
        let path = write_config(&dir, name, &text);
        let output = run_cli(&["plan", "--config", path_str(&path), "--cores", "1"]);
        assert_eq!(output.status.code(), Some(0), "{}", output_text(&output));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let row = stdout
            .lines()
            .find(|line| line.starts_with("upstream api sessions"))
            .map(str::to_owned);
        (row, plan_total_bytes(&path, 1))
    };
    let (shared, shared_total) = row("shared.toml", upstream("shared", 1000));
    assert_eq!(shared, None, "a shared-mode upstream keeps no table");
    let (small, small_total) = row("small.toml", upstream("per_client", 1000));
    let small = small.expect("a per_client upstream has a sessions row");
    assert!(small.contains("sessions.sessions_max 1000"), "{small}");
    assert!(small_total > shared_total, "the table costs memory");
    let (_, large_total) = row("large.toml", upstream("per_client", 100_000));
    let (_, large_shared) = row("large_shared.toml", upstream("shared", 100_000));
    assert!(
        large_total - large_shared > small_total - shared_total,
        "the table grows with sessions_max"
    );
}

#[test]
fn no_command_serves_with_the_embedded_default_and_help_exits_0() {
    // `cargo run --release` runs the binary with no arguments: it must serve, not print usage.
    let dir = TempDir::new("cli");
    let path = write_config(&dir, "shardgate.toml", &config_with(""));
    let mut child = std::process::Command::new(common::binary())
        .args(["--config", path_str(&path), "--cores", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.starts_with("shardgate ready:"), "{line}");
    common::send_signal(child.id(), "TERM");
    let status = common::wait_exit(&mut child, std::time::Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let help = run_cli(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = output_text(&help);
    assert!(help.contains("usage"), "{help}");
    for code in [
        "  0  ok",
        "  1  serve cannot start",
        "  2  the configuration is wrong",
    ] {
        assert!(
            help.contains(code),
            "the usage lists exit code {code:?}: {help}"
        );
    }
}

#[test]
fn check_reports_each_upstream_reached_or_not_and_exits_1_for_a_down_required_one() {
    // A port nothing listens on: bound by the kernel's choice, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, text, _) = check(&config_with(&format!(
        "[[upstreams]]\nname = \"away\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{closed}/mcp\"\n\
         required = false\n\n\
         [[upstreams]]\nname = \"needed\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{closed}/mcp\"\n"
    )));
    assert_eq!(
        code,
        Some(1),
        "serve would not start without `needed`: {text}"
    );
    let line = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(&format!("upstream {name}: ")))
            .unwrap_or_else(|| panic!("no line for upstream {name}: {text}"))
            .to_owned()
    };
    assert_eq!(
        line("demo"),
        "upstream demo: reachable, offers 3 tools, 1 prompts, 1 resources, 0 resourceTemplates"
    );
    let away = line("away");
    assert!(
        away.contains("connection refused")
            && away.ends_with("(optional: serve starts without it and adds it once it answers)"),
        "{away}"
    );
    let needed = line("needed");
    assert!(
        needed.contains("connection refused")
            && needed.ends_with("(required: serve refuses to start until it answers)"),
        "{needed}"
    );
}

#[test]
fn check_rejects_upstreams_whose_merged_names_collide_naming_both() {
    let (code, text, _) = check(
        "[[upstreams]]\nname = \"first\"\nkind = \"builtin\"\nprefix = \"\"\n\n\
         [[upstreams]]\nname = \"second\"\nkind = \"builtin\"\nprefix = \"\"\n",
    );
    assert_eq!(code, Some(2), "colliding names are a config error: {text}");
    let collision = text
        .lines()
        .find(|line| line.contains("echo"))
        .unwrap_or_else(|| panic!("the colliding tool is named: {text}"));
    assert!(
        collision.contains("first") && collision.contains("second"),
        "{collision}"
    );
    assert!(text.contains("upstreams[].prefix"), "{text}");
}
