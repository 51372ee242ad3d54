//! `[sessions]`: how many client sessions a shard keeps, for how long, and how large.

use super::Checker;
use crate::config::bounds as b;
use crate::config::raw::RawSessions;
use crate::config::Sessions;

impl Checker<'_> {
    pub(super) fn sessions(&mut self, raw: &RawSessions) -> Sessions {
        ranged!(self, "sessions", raw, {
            sessions_max: u32 = b::SESSIONS_MAX,
            session_idle_ttl_ms: u64 = b::SESSION_IDLE_TTL_MS,
            session_payload_bytes_max: u64 = b::SESSION_PAYLOAD_BYTES_MAX,
            retry_after_s: u32 = b::RETRY_AFTER_S,
        });
        Sessions {
            sessions_max,
            session_idle_ttl_ms,
            session_payload_bytes_max,
            retry_after_s,
        }
    }
}
