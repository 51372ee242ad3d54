//! `[epoch]`: the tick, the generations and the session arena, plus the rules tying them to
//! `[sessions]`.

use super::Checker;
use crate::config::bounds;
use crate::config::raw::RawEpoch;
use crate::config::{Epoch, Sessions};

impl Checker<'_> {
    pub(super) fn epoch(&mut self, raw: &RawEpoch, sessions: &Sessions) -> Epoch {
        ranged!(self, "epoch", raw, {
            tick_ms: u64 = bounds::TICK_MS,
            generations: u32 = bounds::GENERATIONS,
        });
        let ttl_valid = !self.has_error("sessions.session_idle_ttl_ms");
        if ttl_valid && !self.has_error("epoch.tick_ms") && sessions.session_idle_ttl_ms < tick_ms {
            let reason = format!(
                "{} is shorter than epoch.tick_ms {tick_ms}; sessions expire only on a tick, so \
                 the ttl must span at least one",
                sessions.session_idle_ttl_ms
            );
            self.conflict("sessions.session_idle_ttl_ms", reason);
        }
        let derived = raw.session_arena_bytes_max == 0;
        let session_arena_bytes_max = if derived {
            self.derived_session_arena(sessions)
        } else {
            ranged!(self, "epoch", raw, {
                session_arena_bytes_max: u64 = bounds::SESSION_ARENA_BYTES_MAX,
            });
            session_arena_bytes_max
        };
        Epoch {
            tick_ms,
            generations,
            session_arena_bytes_max,
            session_arena_bytes_derived: derived,
        }
    }

    /// `sessions_max × session_payload_bytes_max`: evacuating every live session always fits.
    /// Never below `session_payload_bytes_max`, since `sessions_max` is at least 1.
    fn derived_session_arena(&mut self, sessions: &Sessions) -> u64 {
        let derived = u64::from(sessions.sessions_max) * sessions.session_payload_bytes_max;
        let limit = bounds::SESSION_ARENA_BYTES_MAX.max.unsigned_abs();
        let inputs_valid = !self.has_error("sessions.sessions_max")
            && !self.has_error("sessions.session_payload_bytes_max");
        if inputs_valid && derived > limit {
            let reason = format!(
                "0 derives sessions.sessions_max {} × sessions.session_payload_bytes_max {} = \
                 {derived} bytes, over the {limit} byte limit; lower either, or set \
                 epoch.session_arena_bytes_max explicitly",
                sessions.sessions_max, sessions.session_payload_bytes_max
            );
            self.conflict("epoch.session_arena_bytes_max", reason);
        }
        derived.max(sessions.session_payload_bytes_max)
    }
}
