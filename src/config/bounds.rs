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
/// `server.io_memory_bytes`.
pub const IO_MEMORY_BYTES: Bound = Bound::new(1_048_576, 65_536, 67_108_864);
/// `server.cores` as a count.
pub const CORES_COUNT: Bound = Bound::new(1, 1, 4_096);
/// One entry of `server.cores` as a list of core ids.
pub const CORE_ID: Bound = Bound::new(0, 0, 4_095);

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

/// `upstreams[i].sleep_ms_max` (builtin upstreams only).
pub const SLEEP_MS_MAX: Bound = Bound::new(60_000, 0, 3_600_000);

// Counts are stored as u32 in the checked config, so their ranges must fit.
const _: () = assert!(CONNECTIONS_MAX.max <= u32::MAX as i64);
const _: () = assert!(HEADERS_COUNT_MAX.max <= u32::MAX as i64);
const _: () = assert!(MESH_MESSAGES_MAX.max <= u32::MAX as i64);
const _: () = assert!(FORWARDED_REQUESTS_MAX.max <= u32::MAX as i64);
const _: () = assert!(SESSIONS_MAX.max <= u32::MAX as i64);
const _: () = assert!(GENERATIONS.max <= u32::MAX as i64);
const _: () = assert!(RETRY_AFTER_S.max <= u32::MAX as i64);
// Core ids and counts are u16.
const _: () = assert!(CORES_COUNT.max <= u16::MAX as i64);
const _: () = assert!(CORE_ID.max <= u16::MAX as i64);
// Everything else is u64: every range starts at zero or above.
const _: () = assert!(DRAIN_TIMEOUT_MS.min >= 0 && SLEEP_MS_MAX.min >= 0);
// A derived session arena (sessions × payload) is capped by the explicit range's maximum.
const _: () = assert!(SESSION_ARENA_BYTES_MAX.min >= SESSION_PAYLOAD_BYTES_MAX.max);
