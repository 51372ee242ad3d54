//! `[pending]`: the requests in flight a shard keeps, plus the rule tying its two caps
//! together.

use super::Checker;
use crate::config::bounds as b;
use crate::config::raw::RawPending;
use crate::config::Pending;

impl Checker<'_> {
    pub(super) fn pending(&mut self, raw: &RawPending) -> Pending {
        ranged!(self, "pending", raw, {
            pending_max: u32 = b::PENDING_MAX,
            pending_per_upstream_max: u32 = b::PENDING_PER_UPSTREAM_MAX,
        });
        let both_valid = !self.has_error("pending.pending_max")
            && !self.has_error("pending.pending_per_upstream_max");
        if both_valid && pending_per_upstream_max > pending_max {
            let reason = format!(
                "{pending_per_upstream_max} is more than pending.pending_max {pending_max}; one \
                 upstream's share of the shard's requests in flight cannot exceed the whole"
            );
            self.conflict("pending.pending_per_upstream_max", reason);
        }
        ranged!(self, "pending", raw, {
            request_id_bytes_max: u32 = b::REQUEST_ID_BYTES_MAX,
            request_timeout_ms: u64 = b::REQUEST_TIMEOUT_MS,
            stream_buffer_bytes_max: u64 = b::STREAM_BUFFER_BYTES_MAX,
            input_rounds_max: u32 = b::INPUT_ROUNDS_MAX,
        });
        Pending {
            pending_max,
            pending_per_upstream_max: pending_per_upstream_max.min(pending_max),
            request_id_bytes_max,
            request_timeout_ms,
            stream_buffer_bytes_max,
            input_rounds_max,
        }
    }
}
