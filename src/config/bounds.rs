//! Every numeric limit's default and accepted range, in one table.
//!
//! The serde defaults (`raw.rs`), the validation (`validate.rs`) and `tuning/default.toml` all
//! read these numbers; a test pins that the embedded default file equals them. The `///` docs on
//! the checked fields in `mod.rs` say what each limit bounds and what it costs.

/// The default and the accepted inclusive range of one numeric config key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// Value used when the key is absent.
    pub default: i64,
    /// Smallest accepted value.
    pub min: i64,
    /// Largest accepted value.
    pub max: i64,
}

impl Bound {
    const fn new(default: i64, min: i64, max: i64) -> Bound {
        assert!(min <= default);
        assert!(default <= max);
        Bound { default, min, max }
    }

    /// Whether `value` lies in `min..=max`.
    pub const fn accepts(&self, value: i64) -> bool {
        self.min <= value && value <= self.max
    }
}

/// `server.drain_timeout_ms`.
pub const DRAIN_TIMEOUT_MS: Bound = Bound::new(10_000, 0, 600_000);
/// `server.startup_timeout_ms`.
pub const STARTUP_TIMEOUT_MS: Bound = Bound::new(60_000, 100, 3_600_000);
/// `server.io_memory_bytes`.
pub const IO_MEMORY_BYTES: Bound = Bound::new(1_048_576, 65_536, 67_108_864);
/// `server.cores` as a count.
pub const CORES_COUNT: Bound = Bound::new(1, 1, 256);
/// One entry of `server.cores` as a list of core ids.
pub const CORE_ID: Bound = Bound::new(0, 0, 4_095);

/// `admin.connections_max`.
pub const ADMIN_CONNECTIONS_MAX: Bound = Bound::new(16, 1, 1_024);

/// `limits.connections_max`.
pub const CONNECTIONS_MAX: Bound = Bound::new(256, 1, 65_536);
/// `limits.header_bytes_max`.
pub const HEADER_BYTES_MAX: Bound = Bound::new(16_384, 1_024, 1_048_576);
/// `limits.headers_count_max`.
pub const HEADERS_COUNT_MAX: Bound = Bound::new(64, 8, 1_024);
/// `limits.request_body_bytes_max`.
pub const REQUEST_BODY_BYTES_MAX: Bound = Bound::new(262_144, 1_024, 67_108_864);
/// `limits.response_body_bytes_max`.
pub const RESPONSE_BODY_BYTES_MAX: Bound = Bound::new(1_048_576, 1_024, 268_435_456);
/// `limits.header_read_timeout_ms`.
pub const HEADER_READ_TIMEOUT_MS: Bound = Bound::new(10_000, 100, 600_000);
/// `limits.body_read_timeout_ms`.
pub const BODY_READ_TIMEOUT_MS: Bound = Bound::new(30_000, 100, 600_000);
/// `limits.keepalive_idle_timeout_ms`.
pub const KEEPALIVE_IDLE_TIMEOUT_MS: Bound = Bound::new(60_000, 100, 3_600_000);
/// `limits.mesh_messages_max`.
pub const MESH_MESSAGES_MAX: Bound = Bound::new(256, 1, 65_536);
/// `limits.forwarded_requests_max`.
pub const FORWARDED_REQUESTS_MAX: Bound = Bound::new(256, 1, 65_536);
/// `limits.sse_keepalive_interval_ms`.
pub const SSE_KEEPALIVE_INTERVAL_MS: Bound = Bound::new(15_000, 100, 600_000);
/// `limits.json_depth_max`. The floor leaves room for the tool schemas of a `tools/list`
/// result; the top stays below the deepest tree serde_json reads, so no later parse of a
/// message the gateway accepted can fail for its depth.
pub const JSON_DEPTH_MAX: Bound = Bound::new(64, 16, 120);

/// Containers serde_json reads into a tree, one inside the other, before it refuses with
/// "recursion limit exceeded" (its limit of 128 counts the refusing one); a test pins it.
pub const SERDE_JSON_DEPTH_MAX: i64 = 127;

/// `sessions.sessions_max`.
pub const SESSIONS_MAX: Bound = Bound::new(10_000, 1, 10_000_000);
/// `sessions.session_idle_ttl_ms`.
pub const SESSION_IDLE_TTL_MS: Bound = Bound::new(1_800_000, 1_000, 86_400_000);
/// `sessions.session_payload_bytes_max`.
pub const SESSION_PAYLOAD_BYTES_MAX: Bound = Bound::new(2_048, 256, 65_536);
/// `sessions.retry_after_s`.
pub const RETRY_AFTER_S: Bound = Bound::new(5, 1, 3_600);

/// `epoch.tick_ms`.
pub const TICK_MS: Bound = Bound::new(1_000, 10, 600_000);
/// `epoch.generations`.
pub const GENERATIONS: Bound = Bound::new(4, 2, 16);
/// `epoch.session_arena_bytes_max` when set explicitly (0, the default, means derive it).
pub const SESSION_ARENA_BYTES_MAX: Bound = Bound::new(65_536, 65_536, 4_294_967_296);

/// `pending.pending_max`; the range is the pending table's own (`calls::pending`), pinned
/// equal by a test: the top keeps one generation's arena under 4 GiB.
pub const PENDING_MAX: Bound = Bound::new(1_000, 1, 1_000_000);
/// `pending.pending_per_upstream_max`; also at most `pending.pending_max`.
pub const PENDING_PER_UPSTREAM_MAX: Bound = Bound::new(500, 1, 1_000_000);
/// `pending.request_id_bytes_max`; the pending table's own range, pinned equal by a test.
pub const REQUEST_ID_BYTES_MAX: Bound = Bound::new(128, 16, 1_024);
/// `pending.request_timeout_ms`, and `upstreams[i].request_timeout_ms` (whose default is the
/// value of `pending.request_timeout_ms`).
pub const REQUEST_TIMEOUT_MS: Bound = Bound::new(300_000, 100, 86_400_000);
/// `pending.stream_buffer_bytes_max`: notifications of one call waiting for a slow client.
pub const STREAM_BUFFER_BYTES_MAX: Bound = Bound::new(65_536, 4_096, 67_108_864);
/// `pending.input_rounds_max`: times one session-era client's call is retried with its answers
/// to a 2026-07-28 upstream's `input_required` results.
pub const INPUT_ROUNDS_MAX: Bound = Bound::new(8, 1, 64);

/// Upstreams in `[[upstreams]]`: the pending table keeps one count per upstream, indexed by a
/// `u16`, and every shard runs one pool or child per upstream.
pub const UPSTREAMS_COUNT_MAX: usize = 1_024;

/// `upstreams[i].breaker_failures`.
pub const BREAKER_FAILURES: Bound = Bound::new(3, 1, 1_000);
/// `upstreams[i].breaker_open_ms`.
pub const BREAKER_OPEN_MS: Bound = Bound::new(60_000, 100, 3_600_000);

/// `upstreams[i].sleep_ms_max` (builtin upstreams only).
pub const SLEEP_MS_MAX: Bound = Bound::new(60_000, 0, 3_600_000);

/// `upstreams[i].pool_connections_max` (http).
pub const POOL_CONNECTIONS_MAX: Bound = Bound::new(10, 1, 4_096);
/// `upstreams[i].pool_waiters_max` (http); 0 refuses a caller at once when every connection is
/// busy.
pub const POOL_WAITERS_MAX: Bound = Bound::new(100, 0, 65_536);
/// `upstreams[i].connect_timeout_ms` (http).
pub const CONNECT_TIMEOUT_MS: Bound = Bound::new(10_000, 1, 600_000);
/// `upstreams[i].pool_idle_timeout_ms` (http).
pub const POOL_IDLE_TIMEOUT_MS: Bound = Bound::new(30_000, 1, 3_600_000);
/// `upstreams[i].pool_lifetime_ms` (http).
pub const POOL_LIFETIME_MS: Bound = Bound::new(3_600_000, 1, 86_400_000);
/// `upstreams[i].response_head_bytes_max` (http).
pub const RESPONSE_HEAD_BYTES_MAX: Bound = Bound::new(16_384, 1_024, 1_048_576);
/// `upstreams[i].response_headers_count_max` (http).
pub const RESPONSE_HEADERS_COUNT_MAX: Bound = Bound::new(64, 8, 1_024);
/// `upstreams[i].sse_event_bytes_max` (http). Absent, it takes the value of
/// `limits.response_body_bytes_max` (one event carries one JSON-RPC message); the default here
/// is that key's default.
pub const SSE_EVENT_BYTES_MAX: Bound =
    Bound::new(RESPONSE_BODY_BYTES_MAX.default, 1_024, 268_435_456);

/// `upstreams[i].message_bytes_max` (stdio). Absent, it takes the value of
/// `limits.response_body_bytes_max`; the default here is that key's default.
pub const MESSAGE_BYTES_MAX: Bound =
    Bound::new(RESPONSE_BODY_BYTES_MAX.default, 1_024, 268_435_456);
/// `upstreams[i].stderr_line_bytes_max` (stdio).
pub const STDERR_LINE_BYTES_MAX: Bound = Bound::new(4_096, 64, 1_048_576);
/// `upstreams[i].inbound_messages_max` (stdio).
pub const INBOUND_MESSAGES_MAX: Bound = Bound::new(64, 1, 65_536);
/// `upstreams[i].outbound_messages_max` (stdio).
pub const OUTBOUND_MESSAGES_MAX: Bound = Bound::new(64, 1, 65_536);
/// `upstreams[i].restart_backoff_ms` (stdio); at most `restart_backoff_max_ms`.
pub const RESTART_BACKOFF_MS: Bound = Bound::new(100, 1, 3_600_000);
/// `upstreams[i].restart_backoff_max_ms` (stdio).
pub const RESTART_BACKOFF_MAX_MS: Bound = Bound::new(30_000, 1, 3_600_000);
/// `upstreams[i].healthy_after_ms` (stdio); 0 resets the backoff as soon as a child starts.
pub const HEALTHY_AFTER_MS: Bound = Bound::new(10_000, 0, 3_600_000);
/// `upstreams[i].kill_grace_ms` (stdio); 0 signals at once.
pub const KILL_GRACE_MS: Bound = Bound::new(5_000, 0, 600_000);
/// `upstreams[i].exit_poll_ms` (stdio).
pub const EXIT_POLL_MS: Bound = Bound::new(1_000, 1, 600_000);

// Counts are stored as u32 in the checked config, so their ranges must fit.
const _: () = assert!(CONNECTIONS_MAX.max <= u32::MAX as i64);
const _: () = assert!(ADMIN_CONNECTIONS_MAX.max <= u32::MAX as i64);
const _: () = assert!(HEADERS_COUNT_MAX.max <= u32::MAX as i64);
const _: () = assert!(MESH_MESSAGES_MAX.max <= u32::MAX as i64);
const _: () = assert!(FORWARDED_REQUESTS_MAX.max <= u32::MAX as i64);
const _: () = assert!(SESSIONS_MAX.max <= u32::MAX as i64);
const _: () = assert!(GENERATIONS.max <= u32::MAX as i64);
const _: () = assert!(RETRY_AFTER_S.max <= u32::MAX as i64);
const _: () = assert!(PENDING_MAX.max <= u32::MAX as i64);
const _: () = assert!(INPUT_ROUNDS_MAX.max <= u32::MAX as i64);
const _: () = assert!(JSON_DEPTH_MAX.max < SERDE_JSON_DEPTH_MAX);
const _: () = assert!(PENDING_PER_UPSTREAM_MAX.max <= PENDING_MAX.max);
const _: () = assert!(PENDING_PER_UPSTREAM_MAX.default <= PENDING_MAX.default);
const _: () = assert!(REQUEST_ID_BYTES_MAX.max <= u32::MAX as i64);
const _: () = assert!(BREAKER_FAILURES.max <= u32::MAX as i64);
const _: () = assert!(POOL_CONNECTIONS_MAX.max <= u32::MAX as i64);
const _: () = assert!(POOL_WAITERS_MAX.max <= u32::MAX as i64);
const _: () = assert!(RESPONSE_HEAD_BYTES_MAX.max <= u32::MAX as i64);
const _: () = assert!(RESPONSE_HEADERS_COUNT_MAX.max <= u16::MAX as i64);
const _: () = assert!(SSE_EVENT_BYTES_MAX.max <= u32::MAX as i64);
const _: () = assert!(MESSAGE_BYTES_MAX.max <= u32::MAX as i64);
const _: () = assert!(STDERR_LINE_BYTES_MAX.max <= u32::MAX as i64);
const _: () = assert!(INBOUND_MESSAGES_MAX.max <= u32::MAX as i64);
const _: () = assert!(OUTBOUND_MESSAGES_MAX.max <= u32::MAX as i64);
const _: () = assert!(RESTART_BACKOFF_MS.max <= u32::MAX as i64);
const _: () = assert!(RESTART_BACKOFF_MAX_MS.max <= u32::MAX as i64);
const _: () = assert!(HEALTHY_AFTER_MS.max <= u32::MAX as i64);
const _: () = assert!(KILL_GRACE_MS.max <= u32::MAX as i64);
const _: () = assert!(EXIT_POLL_MS.max <= u32::MAX as i64);
const _: () = assert!(RESTART_BACKOFF_MS.default <= RESTART_BACKOFF_MAX_MS.default);
// Upstream indices are u16 in the pending table.
const _: () = assert!(UPSTREAMS_COUNT_MAX <= u16::MAX as usize);
// The response body limit, from which the stdio message and SSE event limits default, fits
// both of their ranges.
const _: () = assert!(MESSAGE_BYTES_MAX.min <= RESPONSE_BODY_BYTES_MAX.min);
const _: () = assert!(MESSAGE_BYTES_MAX.max >= RESPONSE_BODY_BYTES_MAX.max);
const _: () = assert!(SSE_EVENT_BYTES_MAX.min <= RESPONSE_BODY_BYTES_MAX.min);
const _: () = assert!(SSE_EVENT_BYTES_MAX.max >= RESPONSE_BODY_BYTES_MAX.max);
// Core ids and counts are u16.
// Shard numbers travel in session ids and mesh messages as one byte.
const _: () = assert!(CORES_COUNT.max <= 256);
const _: () = assert!(CORE_ID.max <= u16::MAX as i64);
// Everything else is u64: every range starts at zero or above.
const _: () = assert!(DRAIN_TIMEOUT_MS.min >= 0 && SLEEP_MS_MAX.min >= 0);
// A derived session arena (sessions × payload) is capped by the explicit range's maximum.
const _: () = assert!(SESSION_ARENA_BYTES_MAX.min >= SESSION_PAYLOAD_BYTES_MAX.max);
