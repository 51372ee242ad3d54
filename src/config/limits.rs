//! The limits types the config hands to the components it sizes: each component's own
//! numbers, validated here and read there. Config keys are named on each field.

/// Per-upstream response limits. Config keys map onto them one to one; keys are
/// named on each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimits {
    /// Bytes of the status line, header fields and blank line of one response (interim `1xx`
    /// heads included); also the budget for the chunk framing and trailers of one buffered body.
    /// Key `upstreams[].response_head_bytes_max`, default 16384.
    pub response_head_bytes_max: u32,
    /// Header fields in one response head (and in one trailer section).
    /// Key `upstreams[].response_headers_count_max`, default 64.
    pub response_headers_count_max: u16,
    /// Bytes of one buffered (non-stream) response body, after chunked decoding.
    /// Key `limits.response_body_bytes_max` (exists), default 4194304.
    pub response_body_bytes_max: u32,
    /// Bytes of one event of an event stream (its `data`, `event` and `id` values together),
    /// and of any one line of the stream. An event carries one JSON-RPC message, so the
    /// default equals `response_body_bytes_max`.
    /// Key `upstreams[].sse_event_bytes_max`, default 4194304.
    pub sse_event_bytes_max: u32,
}

/// Pool limits of one upstream, per shard. Config keys map onto them one to one; the
/// keys and defaults are named on each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolLimits {
    /// Connections open or being opened. `upstreams[].pool_connections_max`, default 10.
    pub pool_connections_max: u32,
    /// Callers queued for a connection when all are busy; past this they are refused.
    /// `upstreams[].pool_waiters_max`, default 100.
    pub pool_waiters_max: u32,
    /// One connect attempt. `upstreams[].connect_timeout_ms`, default 10000.
    pub connect_timeout_ms: u64,
    /// An idle connection is closed after this long unused. `upstreams[].pool_idle_timeout_ms`,
    /// default 30000 (servers often close sooner; such connections are dropped when taken).
    pub pool_idle_timeout_ms: u64,
    /// A connection is closed once this old, when it is next idle.
    /// `upstreams[].pool_lifetime_ms`, default 3600000.
    pub pool_lifetime_ms: u64,
    /// Response limits of the HTTP client codec.
    pub client: ClientLimits,
}

/// Limits of one stdio upstream; the config key of each is on its field. Every limit but
/// `kill_grace_ms` and `healthy_after_ms` is at least 1, and `restart_backoff_ms <= restart_backoff_max_ms` (the config validates this;
/// [`StdioUpstream::start`] asserts it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StdioLimits {
    /// `upstreams[].message_bytes_max`, default 4 MiB (the same as
    /// `limits.response_body_bytes_max`): the longest message either way, newline excluded. A
    /// longer line from the child restarts it; a longer `send` is refused. The read buffer for a
    /// line is reserved at this size once per upstream per shard.
    pub message_bytes_max: u32,
    /// `upstreams[].stderr_line_bytes_max`, default 4096: each stderr line is logged cut to this.
    pub stderr_line_bytes_max: u32,
    /// `upstreams[].inbound_messages_max`, default 64: messages read from the child and not yet
    /// taken by `recv`. When full, the child's stdout is not read (it blocks on write).
    pub inbound_messages_max: u32,
    /// `upstreams[].outbound_messages_max`, default 64: messages queued by `send` and not yet
    /// written. When full, `send` waits.
    pub outbound_messages_max: u32,
    /// `upstreams[].restart_backoff_ms`, default 100: the wait before the first restart.
    pub restart_backoff_ms: u32,
    /// `upstreams[].restart_backoff_max_ms`, default 30 000: the wait doubles up to this.
    pub restart_backoff_max_ms: u32,
    /// `upstreams[].healthy_after_ms`, default 10 000: a child up this long resets the backoff.
    pub healthy_after_ms: u32,
    /// `upstreams[].kill_grace_ms`, default 5000: when stopping a child, the wait after closing
    /// its stdin before SIGTERM, and after SIGTERM before SIGKILL.
    pub kill_grace_ms: u32,
    /// `upstreams[].exit_poll_ms`, default 1000: how often a running child is checked with
    /// `waitpid(WNOHANG)`, for children that exit while their own children hold stdout open.
    pub exit_poll_ms: u32,
}

impl Default for StdioLimits {
    fn default() -> Self {
        Self {
            message_bytes_max: 4 * 1024 * 1024,
            stderr_line_bytes_max: 4096,
            inbound_messages_max: 64,
            outbound_messages_max: 64,
            restart_backoff_ms: 100,
            restart_backoff_max_ms: 30_000,
            healthy_after_ms: 10_000,
            kill_grace_ms: 5_000,
            exit_poll_ms: 1_000,
        }
    }
}
