//! Shared harness for integration tests: starts the real `shardgate` binary with a config and
//! finds its ports from the ready line it prints on stdout; `client` speaks raw HTTP/1.1 to it
//! and `mcp` builds MCP requests for both protocol eras; `upstreams` starts real MCP upstreams
//! and `sdk_client` runs the scripted Python SDK client against an endpoint.
#![allow(dead_code)] // each test crate uses a different subset of the harness

pub mod client;
pub mod mcp;
pub mod sdk_client;
pub mod upstreams;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the gateway may take to print its ready line: stdio upstreams start Python or Node
/// and answer the handshake first.
const READY_LINE_DEADLINE: Duration = Duration::from_secs(60);

/// A running gateway process, killed on drop.
pub struct Gateway {
    pub child: Child,
    /// e.g. `http://127.0.0.1:40123/mcp`
    pub mcp_url: String,
    /// e.g. `127.0.0.1:40123`
    pub mcp_addr: String,
    /// e.g. `127.0.0.1:40124`
    pub admin_addr: String,
    pub shards: u32,
    pub config_path: PathBuf,
    _dir: TempDir,
}

/// A directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("shardgate-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_shardgate")
}

/// A config with ephemeral ports; `extra` is appended (later sections may override nothing that
/// is already set here, so pass whole sections: `[sessions]`, `[epoch]`, `[limits]`, ...).
pub fn config_with(extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npath = \"/mcp\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"demo\"\nkind = \"builtin\"\nsleep_ms_max = 60000\n\n{extra}\n"
    )
}

impl Gateway {
    /// Starts `shardgate serve --config <file> --cores <cores>` and waits for its ready line:
    /// `shardgate ready: mcp=http://ADDR/PATH admin=http://ADDR shards=N`.
    pub fn start(config_toml: &str, cores: u32) -> Gateway {
        Self::start_with_stderr(config_toml, cores, Stdio::inherit())
    }

    /// As `start`, with the gateway's stderr connected to `stderr` (e.g. `Stdio::piped()` to
    /// take `child.stderr` and close it, as a log reader that went away would).
    pub fn start_with_stderr(config_toml: &str, cores: u32, stderr: Stdio) -> Gateway {
        let dir = TempDir::new("gw");
        let config_path = dir.0.join("shardgate.toml");
        std::fs::write(&config_path, config_toml).unwrap();
        let mut child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(["--cores", &cores.to_string()])
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn shardgate");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("shardgate ready:") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(READY_LINE_DEADLINE).unwrap_or_else(|_| {
            let exited = wait_exit(&mut child, Duration::from_secs(1));
            let _ = child.kill();
            match exited {
                Some(status) => panic!("shardgate exited ({status}) before its ready line"),
                None => panic!("shardgate printed no ready line within {READY_LINE_DEADLINE:?}"),
            }
        });
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")).map(str::to_owned))
                .unwrap_or_else(|| panic!("ready line lacks {name}=: {line}"))
        };
        let mcp_url = field("mcp");
        let mcp_addr = mcp_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let admin_addr = field("admin").trim_start_matches("http://").to_owned();
        let shards = field("shards").parse().unwrap();
        Gateway {
            child,
            mcp_url,
            mcp_addr,
            admin_addr,
            shards,
            config_path,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `args` to completion (for `check`, `plan`, usage errors).
pub fn run_cli(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .output()
        .expect("run shardgate")
}

/// Stdout and stderr of `output` as one string, for message assertions.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The memory ceiling `shardgate plan` prints for `config` on `cores` cores: the line starting
/// with `total` that contains `(<N> bytes)`.
pub fn plan_total_bytes(config: &Path, cores: u32) -> u64 {
    let config = config.to_str().expect("utf-8 config path");
    let output = run_cli(&["plan", "--config", config, "--cores", &cores.to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "plan failed: {}",
        output_text(&output)
    );
    stdout
        .lines()
        .filter(|line| line.trim_start().starts_with("total"))
        .find_map(bytes_in_parens)
        .unwrap_or_else(|| panic!("plan printed no `total ... (<N> bytes)` line:\n{stdout}"))
}

/// `N` from a line containing `(N bytes)`.
fn bytes_in_parens(line: &str) -> Option<u64> {
    let open = line.find('(')?;
    let inner = &line[open + 1..];
    let close = inner.find(')')?;
    inner[..close]
        .strip_suffix(" bytes")?
        .trim()
        .replace(['_', ','], "")
        .parse()
        .ok()
}

/// Resident set size of process `pid` in bytes, from `/proc/PID/status` (`VmRSS`).
pub fn rss_bytes(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmRSS")
}

/// Peak resident set size of process `pid` in bytes so far (`VmHWM`, the high-water mark).
pub fn rss_peak_bytes(pid: u32) -> u64 {
    proc_status_bytes(pid, "VmHWM")
}

fn proc_status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    kib * 1024
}

/// Sends `signal` (a name such as `TERM` or `INT`) to process `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed: {status}");
}

/// Polls `probe` every `every` until `done` holds for its value (`Ok`), or until `within` has
/// passed (`Err` with the last value).
pub fn poll_until<T>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> Result<T, T> {
    let started = std::time::Instant::now();
    loop {
        let value = probe();
        if done(&value) {
            return Ok(value);
        }
        if started.elapsed() >= within {
            return Err(value);
        }
        std::thread::sleep(every);
    }
}

/// Waits up to `within` for `child` to exit; its status, or `None` if it is still running.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
