//! Shared harness for integration tests: starts the real `shardgate` binary with a config and
//! finds its ports from the ready line it prints on stdout.
#![allow(dead_code)] // each test crate uses a different subset of the harness

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
        let dir = TempDir::new("gw");
        let config_path = dir.0.join("shardgate.toml");
        std::fs::write(&config_path, config_toml).unwrap();
        let mut child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config_path)
            .args(["--cores", &cores.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
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
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("shardgate printed no ready line within 20 s");
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
        Gateway { child, mcp_url, mcp_addr, admin_addr, shards, config_path, _dir: dir }
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
