//! Support shared by the interop test crates (`tests/interop_python.rs`, `tests/conformance.rs`):
//! where `tests/setup-deps` installed the peers, running a peer with a deadline, a one-shot
//! HTTP GET for the admin endpoint, and fixture upstream servers killed on drop. Interop tests
//! never skip: a missing `.deps/` is a failure that names the command to run.
#![allow(dead_code)] // each test crate uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `.deps/<relative>` in the repository; panics when `tests/setup-deps` has not installed it.
pub fn dep(relative: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".deps")
        .join(relative);
    assert!(
        path.exists(),
        "{} is missing: run tests/setup-deps (tests/run does it first)",
        path.display()
    );
    path
}

/// `tests/interop/<relative>` in the repository.
pub fn interop_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/interop")
        .join(relative)
}

/// Runs `cmd` to completion with stdin closed and output captured; kills it and panics naming
/// `what` when it is still running after `deadline`.
pub fn run_with_deadline(what: &str, mut cmd: Command, deadline: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let err = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
            panic!("{what} still running after {deadline:?}; killed. stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Reads a pipe to its end on a thread, so a chatty child never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// `GET path` on `addr` with `Connection: close`; returns the status code and the body
/// (de-chunked when the response is chunked).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("read GET {path} from {addr}: {e}"));
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("response to GET {path} has no header end: {raw:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in response to GET {path}: {head:?}"));
    let chunked = head.lines().any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// Joins the chunks of a chunked body (extensions and trailers ignored).
fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    loop {
        let (size_line, after) = rest.split_once("\r\n").expect("chunk size line");
        let size_hex = size_line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).expect("hex chunk size");
        if size == 0 {
            return body;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// A fixture MCP server from `tests/interop/fixtures/`, run over HTTP with the venv's Python;
/// killed and reaped on drop, so no run leaves a process behind.
pub struct FixtureServer {
    child: Child,
    /// e.g. `http://127.0.0.1:40125/mcp`, from the fixture's ready line.
    pub url: String,
}

impl FixtureServer {
    /// Starts `fixtures/<script> --transport http --port 0` and waits for its
    /// `ready http://127.0.0.1:PORT/mcp` line; panics naming the script when it exits first or
    /// prints none within 60 s (importing the SDK takes seconds on a loaded machine).
    pub fn start_http(script: &str) -> FixtureServer {
        let mut child = Command::new(dep("venv/bin/python"))
            .arg(interop_file("fixtures").join(script))
            .args(["--transport", "http", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start fixture {script}: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        // Keeps reading after the ready line so the fixture never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("ready ") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let mut server = FixtureServer {
            child,
            url: String::new(),
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => server.url = url,
            Err(_) => match server.child.try_wait().expect("wait for fixture") {
                Some(status) => panic!("fixture {script} exited ({status}) before its ready line"),
                None => panic!("fixture {script} printed no ready line within 60 s"),
            },
        }
        assert!(
            server.url.starts_with("http://127.0.0.1:"),
            "fixture {script} announced {}, not a loopback URL",
            server.url
        );
        server
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
