//! The validated, immutable configuration: every limit shardgate enforces, with its default.
//!
//! Owns: the TOML schema (`raw.rs`, decoded as written), the defaults and accepted ranges
//! (`bounds.rs`), the checks that turn the raw form into a `Config` (`validate.rs`), and the
//! memory plan that turns the limits into a per-shard ceiling (`plan.rs`).
//!
//! Shards: none owns it. A `Config` is plain `Send + Sync` data built once before the shards
//! start; shards hold an `Arc<Config>` (or a leaked `&'static Config`) and only read it. A reload
//! builds a new `Config` and each shard swaps its handle at a safe point.
//!
//! Limits: every number below is per shard unless its doc says otherwise. Durations stay `_ms`
//! integers (consumers convert). Each field's doc says what it bounds, its default, what memory
//! it reserves per shard and why that number.
//!
//! Refuses: unknown keys anywhere, values of the wrong type, numbers outside their range,
//! malformed addresses, paths and origins, duplicate upstream names, unknown upstream kinds, keys
//! of one upstream kind on another (`url` on a `stdio` upstream), an `http` upstream without a
//! syntactically valid `http://` url or a `stdio` upstream without a command, two upstreams with
//! the same non-empty prefix and separator, a per-upstream pending cap above the shard's, a
//! first restart backoff above the longest, a session TTL shorter than one epoch tick, and a
//! non-loopback listener with no origin allow-list (DNS rebinding). Upstream urls are not
//! resolved here: names resolve at start-up. All problems are reported together, one per line, each naming the
//! file, the key path, the value and what is accepted.

pub mod bounds;
mod error;
pub mod limits;
mod raw;
pub mod url;
mod validate;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use limits::{PoolLimits, StdioLimits};

pub use error::{ConfigError, ConfigErrorKind, ConfigErrors, Location};

/// The shipped default profile; `Config::default_embedded` parses it and a test pins that it
/// equals the built-in defaults.
const DEFAULT_TOML: &str = include_str!("../../tuning/default.toml");

/// The whole validated configuration, one field per TOML table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `[server]`: the MCP listener and the shards behind it.
    pub server: Server,
    /// `[admin]`: the status and metrics listener.
    pub admin: Admin,
    /// `[limits]`: per-connection and per-shard request limits.
    pub limits: Limits,
    /// `[sessions]`: the legacy-era MCP session table.
    pub sessions: Sessions,
    /// `[epoch]`: the clock and arenas that reclaim table state.
    pub epoch: Epoch,
    /// `[pending]`: requests in flight to upstreams.
    pub pending: Pending,
    /// `[[upstreams]]`: the servers behind the gateway; at least one, names unique.
    pub upstreams: Vec<Upstream>,
}

/// `[server]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// MCP listener address, bound by every shard with `SO_REUSEPORT`. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// HTTP path of the MCP endpoint; starts with `/`. Default `/mcp`.
    pub path: String,
    /// Which cores run a shard. Default `all`.
    pub cores: Cores,
    /// Exact `Origin` values accepted. Empty (the default) accepts only localhost origins and is
    /// allowed only on a loopback listener: a page on any site can resolve its own name to a
    /// private address (DNS rebinding), so a reachable gateway must name its origins.
    pub allowed_origins: Vec<String>,
    /// Exact `Host` values accepted (`name` or `name:port`, compared without case), against DNS
    /// rebinding even when a request has no `Origin`. Empty (the default) accepts, on a loopback
    /// listener, only its own names (`localhost`, `127.0.0.1`, `[::1]`, with any port or none),
    /// and any `Host` on another listener, whose names the gateway cannot know.
    pub allowed_hosts: Vec<String>,
    /// How long a draining shard waits for in-flight requests before closing them. Default
    /// 10000 ms: longer than a typical tool call, shorter than an orchestrator's kill timeout
    /// (Kubernetes waits 30 s). Reserves no memory.
    pub drain_timeout_ms: u64,
    /// How long `serve` (and `check`) wait at start-up for the upstreams, which are connected
    /// all at once: a required upstream not up by then stops the start (exit 1) naming it; an
    /// optional one is never waited for by `serve`, and joins the merged lists when it comes
    /// up. Default 60000 ms: room for a stdio server started through `npx` or `uvx`, whose
    /// first run downloads it. Reserves no memory.
    pub startup_timeout_ms: u64,
    /// glommio `io_memory` registered with io_uring per shard (locked memory). Default 1 MiB
    /// (glommio's own default is 10 MiB): enough for socket and timer traffic, and two shards fit
    /// under a common 8 MiB `RLIMIT_MEMLOCK`. Reserves exactly this much locked memory per shard.
    pub io_memory_bytes: u64,
}

/// `[admin]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin {
    /// Status and metrics listener address; must differ from `server.listen`. Default
    /// `127.0.0.1:9090`.
    pub listen: SocketAddr,
    /// Open connections of the admin listener (served by shard 0 beside its MCP connections,
    /// but not counted in `limits.connections_max`); one more is refused
    /// (`AdminConnectionsFull`). Default 16: probes and scrapers open a connection per request
    /// and close it, so a flood of MCP connections never fails a liveness probe and idle admin
    /// connections never take MCP slots. Each may hold the same buffers as an MCP connection.
    pub connections_max: u32,
}

/// `[limits]`; all per shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open client connections per shard; one more is refused (`ConnectionsFull`). Default 256.
    /// Each connection may hold up to `2 × (header_bytes_max + request_body_bytes_max +
    /// response_body_bytes_max)` of buffers, about 650 MiB per shard at the defaults: that worst
    /// case, not typical use, is what `shardgate plan` prints (see `tuning/SIZING.md`).
    pub connections_max: u32,
    /// Request line plus headers, in bytes; more is refused (`HeadersTooLarge`). Default 16384
    /// (Node.js's default): MCP requests carry a handful of short headers plus a bearer token.
    /// Reserves one header buffer of this size per connection.
    pub header_bytes_max: u64,
    /// Request header count; more is refused (`HeadersTooLarge`). Default 64. The parser's header
    /// index is this many slots (32 bytes each) per request being parsed.
    pub headers_count_max: u32,
    /// Request body in bytes; more is refused (`BodyTooLarge`). Default 256 KiB: a JSON-RPC
    /// request with tool arguments; raise it for upstreams that take documents. Up to this much per connection.
    pub request_body_bytes_max: u64,
    /// Upstream response body in bytes relayed as one JSON answer. Default 1 MiB: room for a tool
    /// result with an embedded image; raise it for upstreams that return larger resources. Up to this much per connection.
    pub response_body_bytes_max: u64,
    /// Deadline for the request line and headers (slowloris bound); on expiry the connection is
    /// closed (`HeaderReadTimeout`). Default 10000 ms. Reserves no memory.
    pub header_read_timeout_ms: u64,
    /// Deadline for the whole request body once headers are read. Default 30000 ms: a 1 MiB body
    /// at a slow 35 KiB/s would still fit. Reserves no memory.
    pub body_read_timeout_ms: u64,
    /// Idle time before a keep-alive connection is closed. Default 60000 ms, matching common
    /// load-balancer idle timeouts. Reserves no memory, but an idle connection keeps its slot.
    pub keepalive_idle_timeout_ms: u64,
    /// Capacity of each cross-shard channel, in messages; a full channel refuses (`MeshFull`).
    /// Default 256. Each shard has one inbound channel per shard, so it holds up to `shards ×
    /// mesh_messages_max` messages.
    pub mesh_messages_max: u32,
    /// Requests one shard has in flight on other shards (sessions owned elsewhere); more are
    /// refused (`MeshFull`). Default 256, equal to `connections_max`: every connection may be
    /// waiting on a forwarded request. One pending slot and a copy of the request and its answer
    /// each.
    pub forwarded_requests_max: u32,
    /// Period of `:` comment frames on idle SSE streams. Default 15000 ms: below the 30–60 s idle
    /// timeouts of common proxies, so streams survive them. Reserves no memory.
    pub sse_keepalive_interval_ms: u64,
    /// How deep containers (objects and arrays) may nest in one JSON-RPC message, the
    /// message's own object counting as one; a client's deeper message is refused
    /// (`JsonTooDeep`, 400), an upstream's deeper one fails the call it belongs to. Default
    /// 64: MCP messages, tool schemas included, nest a dozen levels or so. Checked in the scan
    /// every message already gets, so it reserves no memory; it keeps every later parse of an
    /// accepted message within what serde_json reads (range 16..=120).
    pub json_depth_max: u32,
}

/// `[sessions]`; all per shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sessions {
    /// Live legacy-era sessions per shard; when the table is full even after retiring the oldest
    /// generation, `initialize` is refused (`SessionsFull`, 503). Default 10000. Reserves the
    /// index (one slot per session) plus the session arenas (`epoch.session_arena_bytes_max`).
    pub sessions_max: u32,
    /// A session idle this long is expired at its generation's retirement. Default 1800000 ms
    /// (30 min); must be at least `epoch.tick_ms`.
    pub session_idle_ttl_ms: u64,
    /// Client info and capabilities kept per session, in bytes; a larger `initialize` is refused.
    /// Default 2048: real clients send well under 1 KiB. Sizes the derived session arena.
    pub session_payload_bytes_max: u64,
    /// `Retry-After` seconds sent with the 503 when the session table is full. Default 5.
    pub retry_after_s: u32,
}

/// `[epoch]`; all per shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Epoch {
    /// Epoch clock period: the granularity of every TTL and deadline. Default 1000 ms. Each tick
    /// retires one generation, so an entry is checked every `tick_ms × generations`.
    pub tick_ms: u64,
    /// Arenas in each table's ring. Default 4: a live entry is copied once every 4 ticks, and
    /// memory is at most 4 arenas. More generations copy less and reserve more.
    pub generations: u32,
    /// Byte limit of each session arena (one per generation). `0` in the file (the default)
    /// derives `sessions_max × session_payload_bytes_max`, so evacuating every live session into
    /// the current arena always fits; explicit values are 65536..=4294967296. Reserves up to
    /// `generations ×` this per shard. Always at least `session_payload_bytes_max`.
    pub session_arena_bytes_max: u64,
    /// Whether `session_arena_bytes_max` was derived (file value 0) rather than set.
    pub session_arena_bytes_derived: bool,
}

/// `server.cores`: which cores run a shard (one pinned executor each).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cores {
    /// Every core the process may run on.
    All,
    /// The first N cores the process may run on.
    Count(u16),
    /// Exactly these core ids (no duplicates); each must be in the process's affinity mask.
    List(Vec<u16>),
}

/// One `[[upstreams]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upstream {
    /// Unique name, `[a-z0-9_-]{1,32}`; errors, logs and `/status` name the upstream by it.
    pub name: String,
    /// What serves it.
    pub kind: UpstreamKind,
    /// `prefix`: prepended to the upstream's tool and prompt names in the merged catalogue.
    /// Default: the upstream's name. May be empty, as long as no merged name collides.
    pub prefix: String,
    /// `separator`: between prefix and name. Default `__`; unused when the prefix is empty.
    pub separator: String,
    /// `required`: when true (the default) the gateway does not start (it is not up within
    /// `server.startup_timeout_ms`), and `/readyz` is not ready, while this upstream cannot be
    /// reached; when false it never stops or holds up the start: it drops out of the lists and
    /// its calls get an error naming it until it is up, while the others keep working.
    pub required: bool,
    /// `request_timeout_ms`: how long one request may wait for this upstream's answer.
    /// Default `pending.request_timeout_ms`, range 100..=86400000. Holds a pending slot that
    /// long at most.
    pub request_timeout_ms: u64,
    /// `breaker_failures`: consecutive failed requests that open this upstream's circuit breaker
    /// (per shard). Default 3, range 1..=1000.
    pub breaker_failures: u32,
    /// `breaker_open_ms`: how long an open breaker refuses calls before one half-open probe.
    /// Default 60000, range 100..=3600000.
    pub breaker_open_ms: u64,
}

/// How an upstream is reached. `kind` in TOML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamKind {
    /// `kind = "builtin"`: in-process demo tools.
    Builtin {
        /// Cap on the demo `sleep` tool's duration. Default 60000 ms, range 0..=3600000.
        sleep_ms_max: u64,
    },
    /// `kind = "http"`: a Streamable HTTP MCP server.
    Http(HttpUpstream),
    /// `kind = "stdio"`: an MCP server run as a child process, one per shard.
    Stdio(StdioUpstream),
}

/// The keys of a `kind = "http"` upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUpstream {
    /// `url`: `http://host[:port][/path]`, required. Checked for form only; the host is
    /// resolved at start-up. No `https` (there is no TLS here), user info or fragment.
    pub url: String,
    /// `session_mode`: `"shared"` (the default) or `"per_client"`; see [`SessionMode`]. Only
    /// an upstream that speaks the session era keeps sessions; for a 2026-07-28 one the mode
    /// changes nothing.
    pub session_mode: SessionMode,
    /// The pool's keys: `pool_connections_max` (default 10, range 1..=4096),
    /// `pool_waiters_max` (100, 0..=65536), `connect_timeout_ms` (10000, 1..=600000),
    /// `pool_idle_timeout_ms` (30000, 1..=3600000), `pool_lifetime_ms` (3600000,
    /// 1..=86400000), `response_head_bytes_max` (16384, 1024..=1048576),
    /// `response_headers_count_max` (64, 8..=1024) and `sse_event_bytes_max`
    /// (`limits.response_body_bytes_max`, 1024..=268435456); the buffered body limit is
    /// `limits.response_body_bytes_max`. What each bounds: [`PoolLimits`], [`limits::ClientLimits`].
    pub pool: PoolLimits,
}

/// `session_mode` of an `http` upstream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionMode {
    /// `"shared"`: one upstream session per shard, which every client's calls use (requests
    /// an upstream makes during a call still reach that call's client).
    Shared,
    /// `"per_client"`: each session-era client session gets its own upstream session, opened
    /// at its first call and closed with `DELETE` when the client session ends. Stateless
    /// clients and the gateway's own requests use the shared one. At most
    /// `sessions.sessions_max` per shard (one per client session); `shardgate plan` shows
    /// their index.
    PerClient,
}

/// The keys of a `kind = "stdio"` upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StdioUpstream {
    /// `command`, required: the program, looked up in `PATH` when it has no slash.
    pub command: String,
    /// `args`, default none.
    pub args: Vec<String>,
    /// `env`: a table of variables set on top of the gateway's environment.
    pub env: Vec<(String, String)>,
    /// `cwd`, default the gateway's working directory.
    pub cwd: Option<std::path::PathBuf>,
    /// The child's keys: `message_bytes_max` (default `limits.response_body_bytes_max`,
    /// range 1024..=268435456), `stderr_line_bytes_max` (4096, 64..=1048576),
    /// `inbound_messages_max` and `outbound_messages_max` (64, 1..=65536),
    /// `restart_backoff_ms` (100, 1..=3600000, at most `restart_backoff_max_ms`),
    /// `restart_backoff_max_ms` (30000, 1..=3600000), `healthy_after_ms` (10000, 0..=3600000),
    /// `kill_grace_ms` (5000, 0..=600000) and `exit_poll_ms` (1000, 1..=600000). What each
    /// bounds: [`StdioLimits`].
    pub limits: StdioLimits,
}

/// `[pending]`: requests in flight to upstreams; all per shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// `pending_max`: requests in flight per shard, all upstreams together; one more is
    /// refused. Default 1000, range 1..=1000000. Reserves about 1.4 MiB per shard at the
    /// defaults (two indexes and two arenas; `shardgate plan` prints the exact figure).
    pub pending_max: u32,
    /// `pending_per_upstream_max`: requests in flight per shard to one upstream. Default 500,
    /// range 1..=1000000 and at most `pending_max`: one stalled upstream holds at most half of
    /// the shard's slots by default, and the others keep working. Reserves nothing more.
    pub pending_per_upstream_max: u32,
    /// `request_id_bytes_max`: bytes of a client's JSON-RPC id, and separately of its progress
    /// token, kept until the answer. Default 128, range 16..=1024: integers and UUIDs take
    /// under 40. Sizes the pending arenas.
    pub request_id_bytes_max: u32,
    /// `request_timeout_ms`: how long a request may wait upstream before the client gets a
    /// timeout. Default 300000 (5 min, for long tool calls), range 100..=86400000; the
    /// default of every upstream's own `request_timeout_ms`.
    pub request_timeout_ms: u64,
    /// `stream_buffer_bytes_max`, default 65536 (a few hundred progress or log messages): notifications of one call buffered for a
    /// client that reads slower than its upstream writes; past it they are dropped and counted.
    /// The answers a session-era client gives to one round of a 2026-07-28 upstream's input
    /// requests are held within the same budget; past it the call ends with an error naming it.
    pub stream_buffer_bytes_max: u64,
    /// `input_rounds_max`: how often one session-era client's call to a 2026-07-28 upstream is
    /// retried with the client's answers when the upstream answers `input_required`. Default 8,
    /// range 1..=64; one more request for input ends the call with an error naming this key.
    /// Reserves nothing: each round waits within the call's deadline and buffer.
    pub input_rounds_max: u32,
}

impl Upstream {
    /// One line: the name, the kind with its main values, then naming and failure policy.
    fn summary(&self) -> String {
        let detail = match &self.kind {
            UpstreamKind::Builtin { sleep_ms_max } => {
                format!("builtin, sleep_ms_max {sleep_ms_max}")
            }
            UpstreamKind::Http(http) => format!(
                "http {}, session {}, pool {} conns / {} waiters, connect {} ms, idle {} ms, \
                 lifetime {} ms, head {} bytes / {} headers, sse event {} bytes",
                http.url,
                http.session_mode.as_str(),
                http.pool.pool_connections_max,
                http.pool.pool_waiters_max,
                http.pool.connect_timeout_ms,
                http.pool.pool_idle_timeout_ms,
                http.pool.pool_lifetime_ms,
                http.pool.client.response_head_bytes_max,
                http.pool.client.response_headers_count_max,
                http.pool.client.sse_event_bytes_max
            ),
            UpstreamKind::Stdio(stdio) => format!(
                "stdio {:?} {:?}, {} env, cwd {}, message {} bytes, queues {} in / {} out, \
                 stderr line {} bytes, backoff {}..{} ms, healthy after {} ms, kill grace {} ms, \
                 exit poll {} ms",
                stdio.command,
                stdio.args,
                stdio.env.len(),
                stdio
                    .cwd
                    .as_ref()
                    .map_or_else(|| "inherited".to_owned(), |cwd| format!("{cwd:?}")),
                stdio.limits.message_bytes_max,
                stdio.limits.inbound_messages_max,
                stdio.limits.outbound_messages_max,
                stdio.limits.stderr_line_bytes_max,
                stdio.limits.restart_backoff_ms,
                stdio.limits.restart_backoff_max_ms,
                stdio.limits.healthy_after_ms,
                stdio.limits.kill_grace_ms,
                stdio.limits.exit_poll_ms
            ),
        };
        let naming = if self.prefix.is_empty() {
            "unprefixed".to_owned()
        } else {
            format!(
                "names {:?}",
                format!("{}{}<name>", self.prefix, self.separator)
            )
        };
        format!(
            "{} ({detail}; {naming}, {}, timeout {} ms, breaker {} failures / {} ms)",
            self.name,
            if self.required {
                "required"
            } else {
                "optional"
            },
            self.request_timeout_ms,
            self.breaker_failures,
            self.breaker_open_ms
        )
    }
}

impl SessionMode {
    /// The `session_mode` value in TOML.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionMode::Shared => "shared",
            SessionMode::PerClient => "per_client",
        }
    }
}

impl UpstreamKind {
    /// The `kind` value in TOML.
    pub fn as_str(&self) -> &'static str {
        match self {
            UpstreamKind::Builtin { .. } => "builtin",
            UpstreamKind::Http(_) => "http",
            UpstreamKind::Stdio(_) => "stdio",
        }
    }
}

impl Config {
    /// Reads and validates the TOML file at `path`; errors name the path.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let origin = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_toml_str(&text, &origin),
            Err(error) => Err(ConfigErrors::new(vec![ConfigError {
                origin,
                location: None,
                key: String::new(),
                kind: ConfigErrorKind::Io {
                    error: error.to_string().to_lowercase(),
                },
            }])),
        }
    }

    /// Validates TOML `text`; `origin` (a path or a label) prefixes every error.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigErrors> {
        let decoded = raw::decode(text, origin);
        let mut errors = decoded.errors;
        match validate::validate(&decoded.raw, origin) {
            Ok(config) if errors.is_empty() => return Ok(config),
            Ok(_) => {}
            Err(found) => {
                // A section that did not decode was validated at its defaults: what validation
                // says about it concerns the defaults, not the file.
                let about_file = |error: &ConfigError| {
                    !decoded
                        .undecoded
                        .iter()
                        .any(|section| is_under(&error.key, section))
                };
                errors.extend(found.into_iter().filter(about_file));
            }
        }
        Err(ConfigErrors::new(errors))
    }

    /// The shipped `tuning/default.toml`, validated.
    pub fn default_embedded() -> Config {
        match Config::from_toml_str(DEFAULT_TOML, "tuning/default.toml") {
            Ok(config) => config,
            Err(errors) => panic!("the embedded default config is invalid:\n{errors}"),
        }
    }

    /// A human-readable multi-line summary of every setting (`shardgate check` prints it).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let server = &self.server;
        let origins = if server.allowed_origins.is_empty() {
            "localhost only".to_owned()
        } else {
            server.allowed_origins.join(", ")
        };
        let mut line = |key: &str, value: &dyn std::fmt::Display| {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "  {key:<36} {value}");
        };
        line("server.listen", &server.listen);
        line("server.path", &server.path);
        line("server.cores", &server.cores);
        line("server.allowed_origins", &origins);
        let hosts = match (
            server.allowed_hosts.is_empty(),
            server.listen.ip().is_loopback(),
        ) {
            (false, _) => server.allowed_hosts.join(", "),
            (true, true) => "localhost only".to_owned(),
            (true, false) => "any".to_owned(),
        };
        line("server.allowed_hosts", &hosts);
        line("server.drain_timeout_ms", &server.drain_timeout_ms);
        line("server.startup_timeout_ms", &server.startup_timeout_ms);
        line("server.io_memory_bytes", &server.io_memory_bytes);
        line("admin.listen", &self.admin.listen);
        line("admin.connections_max", &self.admin.connections_max);
        let limits = &self.limits;
        line("limits.connections_max", &limits.connections_max);
        line("limits.header_bytes_max", &limits.header_bytes_max);
        line("limits.headers_count_max", &limits.headers_count_max);
        line(
            "limits.request_body_bytes_max",
            &limits.request_body_bytes_max,
        );
        line(
            "limits.response_body_bytes_max",
            &limits.response_body_bytes_max,
        );
        line(
            "limits.header_read_timeout_ms",
            &limits.header_read_timeout_ms,
        );
        line("limits.body_read_timeout_ms", &limits.body_read_timeout_ms);
        line(
            "limits.keepalive_idle_timeout_ms",
            &limits.keepalive_idle_timeout_ms,
        );
        line("limits.mesh_messages_max", &limits.mesh_messages_max);
        line(
            "limits.forwarded_requests_max",
            &limits.forwarded_requests_max,
        );
        line(
            "limits.sse_keepalive_interval_ms",
            &limits.sse_keepalive_interval_ms,
        );
        line("limits.json_depth_max", &limits.json_depth_max);
        let sessions = &self.sessions;
        line("sessions.sessions_max", &sessions.sessions_max);
        line(
            "sessions.session_idle_ttl_ms",
            &sessions.session_idle_ttl_ms,
        );
        line(
            "sessions.session_payload_bytes_max",
            &sessions.session_payload_bytes_max,
        );
        line("sessions.retry_after_s", &sessions.retry_after_s);
        let epoch = &self.epoch;
        let arena_source = if epoch.session_arena_bytes_derived {
            " (derived: sessions_max × session_payload_bytes_max)"
        } else {
            ""
        };
        line("epoch.tick_ms", &epoch.tick_ms);
        line("epoch.generations", &epoch.generations);
        line(
            "epoch.session_arena_bytes_max",
            &format_args!("{}{arena_source}", epoch.session_arena_bytes_max),
        );
        let pending = &self.pending;
        line("pending.pending_max", &pending.pending_max);
        line(
            "pending.pending_per_upstream_max",
            &pending.pending_per_upstream_max,
        );
        line(
            "pending.request_id_bytes_max",
            &pending.request_id_bytes_max,
        );
        line("pending.request_timeout_ms", &pending.request_timeout_ms);
        line("pending.input_rounds_max", &pending.input_rounds_max);
        for (index, upstream) in self.upstreams.iter().enumerate() {
            line(&format!("upstreams[{index}]"), &upstream.summary());
        }
        out
    }
}

/// Whether key path `key` is `section` or lies under it (`section.x`, `section[i]`); every key
/// lies under the empty section (the whole file).
fn is_under(key: &str, section: &str) -> bool {
    key.strip_prefix(section)
        .is_some_and(|rest| section.is_empty() || rest.is_empty() || rest.starts_with(['.', '[']))
}

impl Default for Config {
    /// The built-in defaults (the serde defaults of every key), validated.
    fn default() -> Config {
        match validate::validate(&raw::RawConfig::default(), "built-in defaults") {
            Ok(config) => config,
            Err(errors) => panic!(
                "the built-in defaults are invalid:\n{}",
                ConfigErrors::new(errors)
            ),
        }
    }
}

impl Server {
    /// Whether a request's `Origin` header value is allowed: an exact match in
    /// `allowed_origins`, or, when that list is empty, an `http`/`https` origin on `localhost`,
    /// `127.0.0.1` or `[::1]` with any port.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        if self.allowed_origins.is_empty() {
            validate::is_localhost_origin(origin)
        } else {
            self.allowed_origins.iter().any(|allowed| allowed == origin)
        }
    }
}

impl Server {
    /// Whether a request's `Host` header value (`None`: it sent none) names this listener: an
    /// entry of `allowed_hosts`, compared without case; or, when that list is empty, on a
    /// loopback listener `localhost`, `127.0.0.1` or `[::1]` with any port or none, and on
    /// another listener anything.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let loopback = self.listen.ip().is_loopback();
        match host {
            _ if self.allowed_hosts.is_empty() && !loopback => true,
            None => false,
            Some(host) if self.allowed_hosts.is_empty() => validate::is_localhost_authority(host),
            Some(host) => self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(host)),
        }
    }
}

impl std::fmt::Display for Cores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cores::All => write!(f, "all"),
            Cores::Count(count) => write!(f, "first {count}"),
            Cores::List(ids) => {
                let ids: Vec<String> = ids.iter().map(u16::to_string).collect();
                write!(f, "[{}]", ids.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests;
