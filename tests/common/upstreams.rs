//! Real MCP upstreams for gateway tests (see `tests/interop/fixtures/README.md`): the Python SDK
//! fixture, the npm reference server `server-everything` and the hostile fixture, started over
//! HTTP (a handle that kills the process on drop) or described as a `kind = "stdio"` command
//! (program and arguments, absolute paths). Everything runs from `.deps/`, which
//! `tests/setup-deps` installs; a missing `.deps/` fails the test with the command to run.

// The interop test crates also load this file as their own `support`; the copy here keeps
// `common` usable from crates that do not.
#[allow(clippy::duplicate_mod)]
#[path = "../interop/support.rs"]
mod support;

pub use support::run_with_deadline;
// The conformance fixture server, for crates that put it behind the gateway themselves.
#[allow(unused_imports)]
pub use support::FixtureServer;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an HTTP fixture may take to print its ready line (Python imports the SDK first).
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// The tail of a fixture's stderr kept for failure messages.
const STDERR_KEPT_BYTES_MAX: usize = 64 * 1024;
/// Attempts to start server-everything on a port found free a moment earlier.
const EVERYTHING_PORT_ATTEMPTS_MAX: u32 = 3;
/// The line server-everything prints on stderr once it listens; the port follows it.
const EVERYTHING_READY_PREFIX: &str = "MCP Streamable HTTP Server listening on port ";

/// `tests/interop/fixtures/upstream_server.py` over Streamable HTTP, killed on drop.
pub struct PythonUpstream {
    process: Fixture,
    name: String,
    extra: Vec<String>,
}

impl PythonUpstream {
    /// Starts the fixture named `name` on a free port; `stateless` serves the handshake era
    /// without sessions (`--stateless`). Waits for its ready line.
    pub fn http(name: &str, stateless: bool) -> PythonUpstream {
        let extra: &[&str] = if stateless { &["--stateless"] } else { &[] };
        Self::http_with(name, extra)
    }

    /// Starts the fixture named `name` on a free port with more arguments (`--handshake-only`).
    pub fn http_with(name: &str, extra: &[&str]) -> PythonUpstream {
        let extra: Vec<String> = extra.iter().map(|arg| (*arg).to_owned()).collect();
        PythonUpstream {
            process: Self::start_http(name, &extra, 0),
            name: name.to_owned(),
            extra,
        }
    }

    /// Starts the fixture named `name` speaking only the handshake era (`--handshake-only`):
    /// a gateway in front of it keeps upstream sessions.
    pub fn http_handshake_only(name: &str) -> PythonUpstream {
        Self::http_with(name, &["--handshake-only"])
    }

    /// Kills the fixture and starts a fresh process (no sessions, no runtime tools) on the
    /// same port.
    pub fn restart(&mut self) {
        let port: u16 = self
            .url()
            .rsplit_once(':')
            .and_then(|(_, rest)| rest.split('/').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url()));
        self.process.stop();
        self.process = Self::start_http(&self.name, &self.extra, port);
    }

    fn start_http(name: &str, extra: &[String], port: u16) -> Fixture {
        let mut cmd = Command::new(venv_python());
        let port = port.to_string();
        cmd.arg(fixture_script("upstream_server.py")).args([
            "--name",
            name,
            "--transport",
            "http",
            "--port",
            &port,
        ]);
        cmd.args(extra);
        let what = format!("upstream_server.py --name {name} --transport http {extra:?}");
        Fixture::start(&what, cmd, Stream::Stdout, ready_url)
    }

    /// e.g. `http://127.0.0.1:40123/mcp`
    pub fn url(&self) -> &str {
        &self.process.url
    }

    /// The fixture's stderr so far (its tail), for failure messages.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }
}

/// Program and arguments that run `upstream_server.py --name NAME --transport stdio`.
pub fn python_stdio_command(name: &str) -> (String, Vec<String>) {
    let args = vec![
        path_string(fixture_script("upstream_server.py")),
        "--name".to_owned(),
        name.to_owned(),
        "--transport".to_owned(),
        "stdio".to_owned(),
    ];
    (path_string(venv_python()), args)
}

/// `@modelcontextprotocol/server-everything` over Streamable HTTP, killed on drop.
pub struct Everything {
    process: Fixture,
}

impl Everything {
    /// Starts `index.js streamableHttp` with `PORT` set to a port that was free a moment
    /// earlier (it cannot report an ephemeral port); retries on another port if that one was
    /// taken in between. Waits for its listening line.
    pub fn http() -> Everything {
        let mut failures = Vec::new();
        for _ in 0..EVERYTHING_PORT_ATTEMPTS_MAX {
            let port = free_port();
            let mut cmd = Command::new(node());
            cmd.arg(everything_index()).arg("streamableHttp");
            cmd.env("PORT", port.to_string());
            let what = format!("server-everything streamableHttp on port {port}");
            match Fixture::try_start(&what, cmd, Stream::Stderr, everything_ready_url) {
                Ok(process) => return Everything { process },
                Err(failure) if failure.contains("already in use") => failures.push(failure),
                Err(failure) => panic!("{failure}"),
            }
        }
        panic!(
            "server-everything found no free port in {EVERYTHING_PORT_ATTEMPTS_MAX} attempts:\n{}",
            failures.join("\n")
        );
    }

    /// e.g. `http://127.0.0.1:40123/mcp`
    pub fn url(&self) -> &str {
        &self.process.url
    }

    /// The server's stderr so far (its tail), for failure messages.
    pub fn stderr(&self) -> String {
        self.process.stderr()
    }
}

/// Program and arguments that run server-everything over stdio.
pub fn everything_stdio_command() -> (String, Vec<String>) {
    (
        path_string(node()),
        vec![path_string(everything_index()), "stdio".to_owned()],
    )
}

/// `hostile_server.py --mode blackhole`: accepts HTTP connections and never answers.
pub struct Hostile {
    process: Fixture,
}

impl Hostile {
    /// Starts the blackhole on a free port and waits for its ready line.
    pub fn blackhole() -> Hostile {
        let mut cmd = Command::new(venv_python());
        cmd.arg(fixture_script("hostile_server.py"))
            .args(["--mode", "blackhole", "--port", "0"]);
        Hostile {
            process: Fixture::start(
                "hostile_server.py --mode blackhole",
                cmd,
                Stream::Stdout,
                ready_url,
            ),
        }
    }

    /// e.g. `http://127.0.0.1:40123/mcp`
    pub fn url(&self) -> &str {
        &self.process.url
    }
}

/// Program and arguments that run `hostile_server.py --mode stdio-mute`: answers `initialize`
/// and `tools/list` (one tool, `mute`), never anything else.
pub fn hostile_stdio_mute_command() -> (String, Vec<String>) {
    hostile_stdio_command("stdio-mute")
}

/// Program and arguments that run `hostile_server.py --mode stdio-id-last`: its one tool,
/// `nested(levels)`, answers `levels` arrays deep with the response's `id` after its `result`.
pub fn hostile_stdio_id_last_command() -> (String, Vec<String>) {
    hostile_stdio_command("stdio-id-last")
}

fn hostile_stdio_command(mode: &str) -> (String, Vec<String>) {
    let args = vec![
        path_string(fixture_script("hostile_server.py")),
        "--mode".to_owned(),
        mode.to_owned(),
    ];
    (path_string(venv_python()), args)
}

/// `values` as a TOML array of strings, e.g. `["a", "b \"c\""]`, escaped for a config file.
pub fn toml_string_array(values: &[String]) -> String {
    let array = values
        .iter()
        .map(|value| toml::Value::String(value.clone()))
        .collect();
    toml::Value::Array(array).to_string()
}

/// The interop venv's Python (`.deps/venv/bin/python`).
pub fn venv_python() -> PathBuf {
    support::dep("venv/bin/python")
}

/// `tests/interop/<relative>`, e.g. `gateway_client.py`.
pub fn interop_file(relative: &str) -> PathBuf {
    support::interop_file(relative)
}

fn fixture_script(file: &str) -> PathBuf {
    let path = support::interop_file("fixtures").join(file);
    assert!(path.is_file(), "fixture {} is missing", path.display());
    path
}

fn node() -> PathBuf {
    support::dep("node/node_modules/.bin/node")
}

fn everything_index() -> PathBuf {
    support::dep("node/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
}

fn path_string(path: PathBuf) -> String {
    path.into_os_string()
        .into_string()
        .unwrap_or_else(|path| panic!("path {path:?} is not UTF-8"))
}

/// A port on 127.0.0.1 that was free when this returned.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// `URL` from the fixtures' `ready URL` line.
fn ready_url(line: &str) -> Option<String> {
    line.strip_prefix("ready ").map(|url| url.trim().to_owned())
}

/// The URL of server-everything from its `... listening on port N` line.
fn everything_ready_url(line: &str) -> Option<String> {
    let port: u16 = line
        .strip_prefix(EVERYTHING_READY_PREFIX)?
        .trim()
        .parse()
        .ok()?;
    Some(format!("http://127.0.0.1:{port}/mcp"))
}

/// Which of a child's output streams carries its ready line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

/// A running fixture process: both output streams drained on threads (stderr's tail kept), killed
/// and reaped on drop.
struct Fixture {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Fixture {
    fn start(
        what: &str,
        cmd: Command,
        ready_on: Stream,
        ready: fn(&str) -> Option<String>,
    ) -> Fixture {
        Self::try_start(what, cmd, ready_on, ready).unwrap_or_else(|failure| panic!("{failure}"))
    }

    /// Spawns `cmd` and waits up to `READY_DEADLINE` for a line on `ready_on` that `ready` maps
    /// to the fixture's URL. On failure the child is killed and reaped, and the error names
    /// `what`, how it failed and the child's stderr.
    fn try_start(
        what: &str,
        mut cmd: Command,
        ready_on: Stream,
        ready: fn(&str) -> Option<String>,
    ) -> Result<Fixture, String> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("stdout is piped");
        let err = child.stderr.take().expect("stderr is piped");
        watch_lines(
            out,
            (ready_on == Stream::Stdout).then(|| tx.clone()),
            ready,
            None,
        );
        watch_lines(
            err,
            (ready_on == Stream::Stderr).then_some(tx),
            ready,
            Some(stderr.clone()),
        );
        let mut fixture = Fixture {
            child,
            url: String::new(),
            stderr,
        };
        match fixture.wait_ready(&rx) {
            Ok(url) => {
                fixture.url = url;
                Ok(fixture)
            }
            Err(how) => {
                fixture.stop();
                Err(format!("{what} {how}; stderr:\n{}", fixture.stderr()))
            }
        }
    }

    fn wait_ready(&mut self, rx: &Receiver<String>) -> Result<String, String> {
        let started = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(url) => return Ok(url),
                Err(RecvTimeoutError::Timeout) => {}
                // The watched stream closed without a ready line: the child is exiting.
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
            }
            if let Some(status) = self.child.try_wait().expect("poll fixture") {
                // Let the stderr thread take in the last lines before they are reported.
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!("exited ({status}) before its ready line"));
            }
            if started.elapsed() > READY_DEADLINE {
                return Err(format!("printed no ready line within {READY_DEADLINE:?}"));
            }
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr buffer").clone()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads `pipe` line by line on a thread until it closes: the first line `ready` maps to a URL is
/// sent on `ready_tx`; every line is appended to `keep` (its tail up to
/// `STDERR_KEPT_BYTES_MAX`) when given.
fn watch_lines(
    pipe: impl Read + Send + 'static,
    mut ready_tx: Option<Sender<String>>,
    ready: fn(&str) -> Option<String>,
    keep: Option<Arc<Mutex<String>>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(url) = ready_tx.as_ref().and_then(|_| ready(&line)) {
                let _ = ready_tx.take().expect("checked above").send(url);
            }
            if let Some(keep) = &keep {
                let mut kept = keep.lock().expect("stderr buffer");
                kept.push_str(&line);
                kept.push('\n');
                if kept.len() > STDERR_KEPT_BYTES_MAX {
                    let mut cut = kept.len() - STDERR_KEPT_BYTES_MAX;
                    while !kept.is_char_boundary(cut) {
                        cut += 1;
                    }
                    kept.drain(..cut);
                }
            }
        }
    });
}
