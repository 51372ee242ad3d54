//! The pending table: requests the gateway sent upstream and has not answered downstream yet.
//!
//! Owner: one table per shard, touched only by that shard's thread (`!Send`, no locks). It maps
//! the ids the gateway gives its upstream requests back to the client that asked, and ends every
//! request exactly once: answered ([`PendingTable::complete`]), cancelled by the client
//! ([`PendingTable::cancel_by_client`]) or past its deadline ([`PendingTable::advance`], which
//! hands the caller an [`Expired`] so it can answer the client and cancel upstream).
//!
//! Ids: a per-shard counter, never reused, sent upstream as a JSON number or string
//! ([`IdForm`]); an echo in either form maps back. The request's progress token, if it had one,
//! is replaced upstream by that same id ([`rewrite_request_id`]), so tokens of two clients never
//! collide and a progress notification finds its request through the one index.
//!
//! Storage: an [`EpochTable`] keyed by upstream id, whose arena payload holds the client's
//! JSON-RPC id and original progress token as raw JSON; and a second [`EpochTable`] keyed by
//! (client route, keyed hash of the client id) for cancellation. A second index was chosen
//! over searching the route's entries because the table has no per-route chains and a scan of
//! `pending_max` entries per client `notifications/cancelled` is a cost a client controls; the
//! index costs O(1) per register, end and cancel, and about 200 bytes per entry of reserved
//! memory for an 8-byte route (slab, index and key lists; [`PendingTable::memory_ceiling`]).
//! A hash collision can only occur within one route (the route is part of the key) and is
//! checked against the stored id bytes, so a client can only ever refuse or miss its own
//! requests.
//!
//! Limits ([`PendingLimits`]): `pending_max` entries per shard, `pending_per_upstream_max` per
//! upstream (a count per upstream in a fixed array), `request_id_bytes_max` bytes for the
//! client's id and for its token. Arenas are sized so that a live entry is never evicted:
//! each generation takes `pending_max × payload` bytes of new requests (then the table retires
//! early) plus room for every live payload evacuated into it.
//!
//! Refuses ([`PendingRefusal`]): a full shard or upstream (after retiring both generations
//! early, and without retiring again until the next tick when that freed nothing, so a full
//! table costs O(1) per refusal), an id or token over `request_id_bytes_max`, and a client id
//! already in flight on the same route. Deadlines have the epoch tick's granularity here: with
//! the two generations used here, every `advance` examines every request registered before the
//! previous one, so a request is reported by the first tick that comes at or after its
//! deadline and is not the first tick after its registration. The request path does not wait
//! for that: a client waiting for its answer waits on its deadline on the shard's deadline
//! wheel and ends the request then ([`PendingTable::expire_id`]); the tick is the backstop for
//! requests nobody waits on.
//!
//! ```compile_fail
//! fn shard_local_only<T: Send>() {}
//! shard_local_only::<shardgate::calls::pending::PendingTable<u64>>();
//! ```

mod rewrite;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;
use std::hash::{BuildHasher, Hash};

use hashbrown::DefaultHashBuilder;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::epoch::{EpochTable, MemoryCeiling, RemovalCause, Removed, TableError, TableLimits};
use crate::refusal::RefusalReason;
use crate::wire::ids::UpstreamRequestId;

pub use rewrite::{restore_progress_token, restore_response_id, rewrite_request_id, RewriteError};

/// Arenas per table. Two: every `advance` examines every entry registered before the previous
/// retire, so a deadline is reported at most one tick late (two after registration); each live
/// entry's ids (tens of bytes) are copied once per tick.
const GENERATIONS: u8 = 2;

/// Accepted range of `pending_max`; the top keeps the arena of a generation under 4 GiB.
const PENDING_MAX_RANGE: (u32, u32) = (1, 1_000_000);

/// Accepted range of `request_id_bytes_max`; 16 holds any integer id, 1024 keeps arenas small.
const REQUEST_ID_BYTES_MAX_RANGE: (u32, u32) = (16, 1024);

/// A client id copied out of the table: inline up to 40 bytes (integers, UUID strings).
pub type ClientIdBytes = SmallVec<[u8; 40]>;

/// The bounds of one shard's pending table. Config keys map onto it one to one; the
/// keys are named on each field (a `[pending]` section, per shard).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingLimits {
    /// Requests in flight per shard, all upstreams together (`pending.pending_max`, default
    /// 1000, range 1..=1000000). Reserves an entry in each of the two tables and two arenas
    /// of `2 × pending_max × 2 × request_id_bytes_max` bytes: about 1.4 MiB per shard at the
    /// defaults, 1 MiB of it arenas ([`PendingTable::memory_ceiling`]).
    pub pending_max: u32,
    /// Requests in flight per shard to one upstream (`pending.pending_per_upstream_max`,
    /// default 500, at most `pending_max`): one stalled upstream holds at most half of the
    /// shard's slots by default, and the others keep working.
    pub pending_per_upstream_max: u32,
    /// Upstreams counted, indices `0..upstreams_count` (the length of `[[upstreams]]`).
    pub upstreams_count: u16,
    /// Bytes of a client's JSON-RPC id, and separately of its progress token, kept until the
    /// answer (`pending.request_id_bytes_max`, default 128, range 16..=1024): integers and
    /// UUIDs take under 40.
    pub request_id_bytes_max: u32,
}

impl PendingLimits {
    fn payload_bytes_max(&self) -> u32 {
        2 * self.request_id_bytes_max
    }

    /// Payload bytes one generation takes for new requests before the table retires early.
    fn term_bytes_max(&self) -> u64 {
        u64::from(self.pending_max) * u64::from(self.payload_bytes_max())
    }

    /// Each arena holds one term of new requests plus every live payload (at most
    /// `pending_max` of `payload_bytes_max`) evacuated into it when the other one retires.
    fn requests_table(&self) -> TableLimits {
        TableLimits {
            entries_max: self.pending_max,
            generations: GENERATIONS,
            arena_bytes_max: (2 * self.term_bytes_max()) as usize,
            payload_bytes_max: self.payload_bytes_max(),
        }
    }

    /// The cancellation index stores no payload and is never advanced: its entries end only
    /// with their request.
    fn by_client_table(&self) -> TableLimits {
        TableLimits {
            entries_max: self.pending_max,
            generations: GENERATIONS,
            arena_bytes_max: 0,
            payload_bytes_max: 0,
        }
    }

    fn validate(&self) -> Result<(), PendingError> {
        let checks = [
            ("pending.pending_max", self.pending_max, PENDING_MAX_RANGE),
            (
                "pending.pending_per_upstream_max",
                self.pending_per_upstream_max,
                (1, self.pending_max),
            ),
            (
                "pending.request_id_bytes_max",
                self.request_id_bytes_max,
                REQUEST_ID_BYTES_MAX_RANGE,
            ),
            (
                "upstreams",
                u32::from(self.upstreams_count),
                (1, u32::from(u16::MAX)),
            ),
        ];
        match checks
            .into_iter()
            .find(|(_, value, (min, max))| value < min || value > max)
        {
            Some((key, value, (min, max))) => Err(PendingError::Limit {
                key,
                value,
                min,
                max,
            }),
            None => Ok(()),
        }
    }
}

/// Why a pending table could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingError {
    /// A limit outside its accepted range; `key` is the config key.
    Limit {
        key: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    /// One of the two tables could not reserve its memory.
    Table {
        table: &'static str,
        error: TableError,
    },
    /// An index beside the tables could not reserve room for `pending.pending_max` entries.
    Reserve {
        what: &'static str,
        pending_max: u32,
    },
}

impl fmt::Display for PendingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limit {
                key,
                value,
                min,
                max,
            } => write!(f, "{key} {value} is outside {min}..={max}"),
            Self::Table { table, error } => write!(f, "pending {table} table: {error}"),
            Self::Reserve { what, pending_max } => write!(
                f,
                "cannot reserve the {what} for pending.pending_max {pending_max} calls"
            ),
        }
    }
}

impl std::error::Error for PendingError {}

/// Which id a [`PendingRefusal::IdTooLarge`] names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    /// The request's JSON-RPC `id`.
    RequestId,
    /// Its `params._meta.progressToken`.
    ProgressToken,
}

/// Why a request could not be registered. Each is counted in [`PendingStats::refusals`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PendingRefusal {
    /// The shard has `pending_max` requests in flight, even after retiring early.
    ShardFull { pending_max: u32 },
    /// This upstream has `pending_per_upstream_max` requests in flight from this shard.
    UpstreamFull {
        upstream: u16,
        pending_per_upstream_max: u32,
    },
    /// The client's id or progress token is longer than `request_id_bytes_max`.
    IdTooLarge {
        kind: IdKind,
        bytes: usize,
        request_id_bytes_max: u32,
    },
    /// The client already has a request with this id in flight on this route (JSON-RPC forbids
    /// reusing an id; a second one could not be told apart for cancellation).
    IdInFlight,
}

impl PendingRefusal {
    /// Every refusal kind's label, in counter order (`PendingStats::refusals`).
    pub const LABELS: [&'static str; 4] = [
        "pending_max",
        "pending_per_upstream_max",
        "request_id_bytes_max",
        "request_id_in_flight",
    ];

    fn slot(&self) -> usize {
        match self {
            Self::ShardFull { .. } => 0,
            Self::UpstreamFull { .. } => 1,
            Self::IdTooLarge { .. } => 2,
            Self::IdInFlight => 3,
        }
    }

    /// Fixed, low-cardinality label: the cap's name, or `request_id_in_flight`.
    pub fn as_str(&self) -> &'static str {
        Self::LABELS[self.slot()]
    }

    /// The config key an operator raises to make room, for the caps.
    pub fn config_key(&self) -> Option<&'static str> {
        match self {
            Self::ShardFull { .. } => Some("pending.pending_max"),
            Self::UpstreamFull { .. } => Some("pending.pending_per_upstream_max"),
            Self::IdTooLarge { .. } => Some("pending.request_id_bytes_max"),
            Self::IdInFlight => None,
        }
    }

    /// How the refusal is answered: 503 for a full table, 400 for the client's own mistake.
    pub fn reason(&self) -> RefusalReason {
        match self {
            Self::ShardFull { .. } | Self::UpstreamFull { .. } => RefusalReason::PendingFull,
            Self::IdTooLarge { .. } | Self::IdInFlight => RefusalReason::InvalidJsonRpc,
        }
    }
}

impl PendingRefusal {
    /// The refusal as the client reads it, naming the value and the config key; the table
    /// knows upstreams by index only, so the caller names the one the request was for.
    pub fn message(&self, upstream_name: &str) -> String {
        match *self {
            Self::ShardFull { pending_max } => format!(
                "too many requests in flight: {pending_max} on this shard \
                 (pending.pending_max); retry later"
            ),
            Self::UpstreamFull {
                pending_per_upstream_max,
                ..
            } => format!(
                "too many requests in flight to upstream {upstream_name}: \
                 {pending_per_upstream_max} on this shard (pending.pending_per_upstream_max); \
                 retry later"
            ),
            Self::IdTooLarge {
                kind,
                bytes,
                request_id_bytes_max,
            } => {
                let what = match kind {
                    IdKind::RequestId => "request id",
                    IdKind::ProgressToken => "progress token",
                };
                format!(
                    "{what} of {bytes} bytes exceeds pending.request_id_bytes_max \
                     {request_id_bytes_max}"
                )
            }
            Self::IdInFlight => "a request with this id is already in flight".to_owned(),
        }
    }
}

/// A request answered by its upstream, as [`PendingTable::complete`] hands it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed<R> {
    /// Where the answer goes.
    pub route: R,
    /// The client's id, JSON text as it sent it, for [`restore_response_id`].
    pub client_id: ClientIdBytes,
}

/// A request past its deadline, removed by the table. The caller answers the client at `route`
/// with a JSON-RPC error ([`Expired::message`]) under `client_id`, and sends the upstream
/// `notifications/cancelled` for `upstream_id`.
#[derive(Debug, PartialEq, Eq)]
pub struct Expired<'a, R> {
    pub upstream: u16,
    pub upstream_id: UpstreamRequestId,
    pub route: R,
    /// The client's id, JSON text as it sent it.
    pub client_id: &'a [u8],
    /// The deadline it was given, counted from its registration.
    pub timeout_ms: u64,
}

impl<R> Expired<'_, R> {
    /// The error message for the client, naming the upstream and the timeout.
    pub fn message(&self, upstream_name: &str) -> String {
        format!(
            "upstream {upstream_name} did not answer within {} ms; the request was cancelled",
            self.timeout_ms
        )
    }
}

/// Gauges and counters for `/status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingStats {
    pub entries: u32,
    pub pending_max: u32,
    /// Requests in flight per upstream index (expired ones count until reported).
    pub per_upstream: Vec<u32>,
    pub completed_total: u64,
    pub cancelled_total: u64,
    pub timeouts_total: u64,
    /// Answers for an id that is unknown, ended, past its deadline or another upstream's.
    pub late_answers_total: u64,
    /// Generations retired before their tick to make room.
    pub early_retires_total: u64,
    /// Refusals by kind, labelled as [`PendingRefusal::LABELS`].
    pub refusals: [(&'static str, u64); 4],
}

/// The bytes both tables can ever hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingCeiling {
    pub requests: MemoryCeiling,
    pub by_client: MemoryCeiling,
}

impl PendingCeiling {
    pub fn total(&self) -> u64 {
        self.requests.total() + self.by_client.total()
    }
}

/// What the table keeps per request beside the payload (client id, then the original token).
struct Pending<R> {
    route: R,
    /// Deadline minus registration time, for the timeout message.
    timeout_ms: u64,
    client_id_hash: u64,
    upstream: u16,
    /// Length of the client id at the start of the payload; the rest is the progress token.
    client_id_bytes: u16,
}

/// Key of the cancellation index.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ClientKey<R> {
    route: R,
    client_id_hash: u64,
}

/// The state updated whenever a request ends, kept apart from the requests table so the
/// table's removal callbacks can update it.
struct Books<R> {
    by_client: EpochTable<ClientKey<R>, u64>,
    per_upstream: Box<[u32]>,
    timeouts_total: u64,
}

impl<R: Copy + Eq + Hash + 'static> Books<R> {
    fn forget(&mut self, pending: &Pending<R>) {
        let count = &mut self.per_upstream[usize::from(pending.upstream)];
        assert!(*count > 0, "an upstream's count covers its requests");
        *count -= 1;
        let key = ClientKey {
            route: pending.route,
            client_id_hash: pending.client_id_hash,
        };
        let removed = self.by_client.remove(&key);
        debug_assert!(removed.is_some(), "every request is in the client index");
    }

    fn expire(
        &mut self,
        removed: Removed<'_, u64, Pending<R>>,
        on_timeout: &mut impl FnMut(Expired<'_, R>),
    ) {
        debug_assert_eq!(
            removed.cause,
            RemovalCause::Expired,
            "arenas hold every live payload, so none is evicted"
        );
        let pending = &removed.value;
        self.forget(pending);
        self.timeouts_total += 1;
        on_timeout(Expired {
            upstream: pending.upstream,
            upstream_id: UpstreamRequestId(removed.key),
            route: pending.route,
            client_id: &removed.payload[..usize::from(pending.client_id_bytes)],
            timeout_ms: pending.timeout_ms,
        });
    }
}

/// One shard's requests in flight upstream. `R` is the caller's route to the client (session,
/// connection or stream ticket): opaque, copied, compared and hashed.
pub struct PendingTable<R> {
    limits: PendingLimits,
    requests: EpochTable<u64, Pending<R>>,
    books: Books<R>,
    hasher: DefaultHashBuilder,
    id_next: u64,
    /// Payload under construction, reserved once for the largest payload.
    scratch: Vec<u8>,
    /// Payload bytes registered since the last retire (see [`PendingLimits::term_bytes_max`]).
    term_bytes: u64,
    /// Set when an early retire for a full table freed nothing; cleared by `advance`.
    retire_futile: bool,
    completed_total: u64,
    cancelled_total: u64,
    late_answers_total: u64,
    early_retires_total: u64,
    refusals: [u64; 4],
}

impl<R: Copy + Eq + Hash + 'static> PendingTable<R> {
    /// Builds the table, reserving both tables, their arenas and the per-upstream counts once.
    pub fn new(limits: PendingLimits) -> Result<Self, PendingError> {
        limits.validate()?;
        let requests =
            EpochTable::new(limits.requests_table()).map_err(|error| PendingError::Table {
                table: "requests",
                error,
            })?;
        let by_client =
            EpochTable::new(limits.by_client_table()).map_err(|error| PendingError::Table {
                table: "client index",
                error,
            })?;
        Ok(Self {
            limits,
            requests,
            books: Books {
                by_client,
                per_upstream: vec![0; usize::from(limits.upstreams_count)].into_boxed_slice(),
                timeouts_total: 0,
            },
            hasher: DefaultHashBuilder::default(),
            id_next: 1,
            scratch: Vec::with_capacity(limits.payload_bytes_max() as usize),
            term_bytes: 0,
            retire_futile: false,
            completed_total: 0,
            cancelled_total: 0,
            late_answers_total: 0,
            early_retires_total: 0,
            refusals: [0; 4],
        })
    }

    /// The bytes a table with these limits can ever hold (for limits [`Self::new`] accepts).
    pub fn memory_ceiling(limits: &PendingLimits) -> PendingCeiling {
        PendingCeiling {
            requests: EpochTable::<u64, Pending<R>>::memory_ceiling(&limits.requests_table()),
            by_client: EpochTable::<ClientKey<R>, u64>::memory_ceiling(&limits.by_client_table()),
        }
    }

    pub fn limits(&self) -> &PendingLimits {
        &self.limits
    }

    /// Requests in flight, including expired ones not yet reported by `advance`.
    pub fn len(&self) -> u32 {
        self.requests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Records a request about to be sent to `upstream` and returns the id to send it under.
    /// `client_id` and `progress_token` are the request's `id` and `params._meta.progressToken`
    /// as the client sent them; `deadline_ms` is absolute, on the same clock as `now_ms`.
    /// When a cap is reached both generations are retired early (requests past their
    /// deadline go to `on_timeout`, like in [`Self::advance`]) before refusing; when that
    /// freed nothing, later refusals skip it until the next `advance`.
    ///
    /// Panics if `upstream` is not below `upstreams_count`.
    #[allow(clippy::too_many_arguments)]
    pub fn register(
        &mut self,
        upstream: u16,
        route: R,
        client_id: &RawValue,
        progress_token: Option<&RawValue>,
        deadline_ms: u64,
        now_ms: u64,
        mut on_timeout: impl FnMut(Expired<'_, R>),
    ) -> Result<UpstreamRequestId, PendingRefusal> {
        let client_id = client_id.get().as_bytes();
        let token = progress_token.map_or(&b""[..], |token| token.get().as_bytes());
        let registered = self.try_register(
            upstream,
            route,
            (client_id, token),
            (deadline_ms, now_ms),
            &mut on_timeout,
        );
        if let Err(refusal) = &registered {
            self.refusals[refusal.slot()] += 1;
        }
        registered
    }

    fn try_register(
        &mut self,
        upstream: u16,
        route: R,
        (client_id, token): (&[u8], &[u8]),
        (deadline_ms, now_ms): (u64, u64),
        on_timeout: &mut impl FnMut(Expired<'_, R>),
    ) -> Result<UpstreamRequestId, PendingRefusal> {
        assert!(
            upstream < self.limits.upstreams_count,
            "upstream index {upstream} is outside the {} upstreams counted",
            self.limits.upstreams_count
        );
        self.check_id_bytes(IdKind::RequestId, client_id)?;
        self.check_id_bytes(IdKind::ProgressToken, token)?;
        let key = ClientKey {
            route,
            client_id_hash: self.hasher.hash_one(client_id),
        };
        if self.books.by_client.get(&key, now_ms).is_some() {
            return Err(PendingRefusal::IdInFlight);
        }
        let payload_bytes = client_id.len() + token.len();
        self.make_room(upstream, payload_bytes as u64, now_ms, on_timeout)?;
        let id = self.id_next;
        let pending = Pending {
            route,
            timeout_ms: deadline_ms.saturating_sub(now_ms),
            client_id_hash: key.client_id_hash,
            upstream,
            client_id_bytes: client_id.len() as u16,
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(client_id);
        self.scratch.extend_from_slice(token);
        debug_assert!(
            self.scratch.len() <= self.scratch.capacity(),
            "scratch never grows"
        );
        if let Err(refused) = self
            .requests
            .insert(id, pending, &self.scratch, deadline_ms)
        {
            unreachable!("room was made and the id is fresh: {refused}");
        }
        if let Err(refused) = self.books.by_client.insert(key, id, &[], u64::MAX) {
            unreachable!("the client index mirrors the requests table: {refused}");
        }
        self.books.per_upstream[usize::from(upstream)] += 1;
        self.term_bytes += payload_bytes as u64;
        self.id_next += 1;
        Ok(UpstreamRequestId(id))
    }

    fn check_id_bytes(&self, kind: IdKind, id: &[u8]) -> Result<(), PendingRefusal> {
        let request_id_bytes_max = self.limits.request_id_bytes_max;
        if id.len() > request_id_bytes_max as usize {
            return Err(PendingRefusal::IdTooLarge {
                kind,
                bytes: id.len(),
                request_id_bytes_max,
            });
        }
        Ok(())
    }

    /// Ensures a slot on the shard and for `upstream` (retiring both generations early, which
    /// reports every request past its deadline, unless that freed nothing since the last
    /// tick), and arena room for `payload_bytes` (retiring the oldest generation early, which
    /// starts an empty one).
    fn make_room(
        &mut self,
        upstream: u16,
        payload_bytes: u64,
        now_ms: u64,
        on_timeout: &mut impl FnMut(Expired<'_, R>),
    ) -> Result<(), PendingRefusal> {
        if let Some(refusal) = self.full(upstream) {
            if self.retire_futile {
                return Err(refusal);
            }
            // Two retires: the first one only examines requests registered before the last
            // retire, the second one the rest.
            self.retire_early(now_ms, on_timeout);
            self.retire_early(now_ms, on_timeout);
            if let Some(refusal) = self.full(upstream) {
                self.retire_futile = true;
                return Err(refusal);
            }
        }
        if self.term_bytes + payload_bytes > self.limits.term_bytes_max() {
            self.retire_early(now_ms, on_timeout);
        }
        debug_assert!(self.term_bytes + payload_bytes <= self.limits.term_bytes_max());
        Ok(())
    }

    /// The cap a new request for `upstream` would exceed, if any.
    fn full(&self, upstream: u16) -> Option<PendingRefusal> {
        let PendingLimits {
            pending_max,
            pending_per_upstream_max,
            ..
        } = self.limits;
        if self.requests.len() >= pending_max {
            return Some(PendingRefusal::ShardFull { pending_max });
        }
        if self.books.per_upstream[usize::from(upstream)] >= pending_per_upstream_max {
            return Some(PendingRefusal::UpstreamFull {
                upstream,
                pending_per_upstream_max,
            });
        }
        None
    }

    fn retire_early(&mut self, now_ms: u64, on_timeout: &mut impl FnMut(Expired<'_, R>)) {
        self.retire(now_ms, on_timeout);
        self.early_retires_total += 1;
    }

    fn retire(&mut self, now_ms: u64, on_timeout: &mut impl FnMut(Expired<'_, R>)) {
        let books = &mut self.books;
        self.requests
            .advance(now_ms, |removed| books.expire(removed, on_timeout));
        self.term_bytes = 0;
        debug_assert_eq!(self.books.by_client.len(), self.requests.len());
    }

    /// The epoch tick: retires the oldest generation, handing each request past its deadline
    /// to `on_timeout` (and forgetting it) before its arena is rewound.
    pub fn advance(&mut self, now_ms: u64, mut on_timeout: impl FnMut(Expired<'_, R>)) {
        self.retire(now_ms, &mut on_timeout);
        self.retire_futile = false;
    }

    /// Ends request `id` to `upstream` as past its deadline, handing it to `on_timeout` as
    /// [`Self::advance`] does: for a caller whose own wait for it (on the shard's deadline
    /// wheel) ended at its deadline, before a tick found it. Counted as a timeout. `false` if it
    /// is not in flight to `upstream`.
    pub fn expire_id(
        &mut self,
        upstream: u16,
        id: UpstreamRequestId,
        on_timeout: impl FnOnce(Expired<'_, R>),
    ) -> bool {
        // Read at time 0, so whatever the table's millisecond clock says of its deadline: the
        // caller's clock found it passed (every deadline lies after 0).
        let Some(entry) = self.requests.get(&id.0, 0) else {
            return false;
        };
        if entry.value.upstream != upstream {
            return false;
        }
        let client_id =
            ClientIdBytes::from_slice(&entry.payload[..usize::from(entry.value.client_id_bytes)]);
        let (route, timeout_ms) = (entry.value.route, entry.value.timeout_ms);
        self.end(id.0);
        self.books.timeouts_total += 1;
        on_timeout(Expired {
            upstream,
            upstream_id: id,
            route,
            client_id: &client_id,
            timeout_ms,
        });
        true
    }

    /// Ends the request `upstream` answered under `upstream_id` and says where the answer
    /// goes. `None`, counted as a late answer, for an id that is not one of ours, already
    /// ended, past its deadline (it will be reported by `advance`) or sent to another upstream.
    pub fn complete(
        &mut self,
        upstream: u16,
        upstream_id: &RawValue,
        now_ms: u64,
    ) -> Option<Completed<R>> {
        let Some(id) = UpstreamRequestId::parse(upstream_id) else {
            self.late_answers_total += 1;
            return None;
        };
        self.complete_id(upstream, id, now_ms)
    }

    /// [`Self::complete`] for an id already read (an answer that came on the request's own
    /// exchange, or the end of a child that will never answer).
    pub fn complete_id(
        &mut self,
        upstream: u16,
        id: UpstreamRequestId,
        now_ms: u64,
    ) -> Option<Completed<R>> {
        let completed = self.take(upstream, id.0, now_ms);
        match completed {
            Some(_) => self.completed_total += 1,
            None => self.late_answers_total += 1,
        }
        completed
    }

    fn take(&mut self, upstream: u16, id: u64, now_ms: u64) -> Option<Completed<R>> {
        let entry = self.requests.get(&id, now_ms)?;
        if entry.value.upstream != upstream {
            return None;
        }
        let completed = Completed {
            route: entry.value.route,
            client_id: ClientIdBytes::from_slice(
                &entry.payload[..usize::from(entry.value.client_id_bytes)],
            ),
        };
        self.end(id);
        Some(completed)
    }

    /// Ends the request the client at `route` sent under `client_id` (its
    /// `notifications/cancelled`, or its response stream closing) and names the upstream and
    /// id to send `notifications/cancelled` to. Its answer, if one comes, is a late answer.
    /// `None` if no such request is in flight (or it is past its deadline).
    pub fn cancel_by_client(
        &mut self,
        route: R,
        client_id: &RawValue,
        now_ms: u64,
    ) -> Option<(u16, UpstreamRequestId)> {
        let client_id = client_id.get().as_bytes();
        let key = ClientKey {
            route,
            client_id_hash: self.hasher.hash_one(client_id),
        };
        let id = *self.books.by_client.get(&key, now_ms)?.value;
        let entry = self.requests.get(&id, now_ms)?;
        let stored = &entry.payload[..usize::from(entry.value.client_id_bytes)];
        if stored != client_id {
            return None;
        }
        let upstream = entry.value.upstream;
        self.end(id);
        self.cancelled_total += 1;
        Some((upstream, UpstreamRequestId(id)))
    }

    /// Where a progress notification from `upstream` with `token` (the gateway's token, i.e.
    /// an upstream request id) goes: the client's route and the token it chose, JSON text, for
    /// [`restore_progress_token`]. `None` if the request is not in flight, belongs to another
    /// upstream, or was sent without a progress token.
    pub fn progress_route(
        &self,
        upstream: u16,
        token: &RawValue,
        now_ms: u64,
    ) -> Option<(R, &[u8])> {
        let id = UpstreamRequestId::parse(token)?.0;
        let entry = self.requests.get(&id, now_ms)?;
        let client_token = &entry.payload[usize::from(entry.value.client_id_bytes)..];
        if entry.value.upstream != upstream || client_token.is_empty() {
            return None;
        }
        Some((entry.value.route, client_token))
    }

    /// Removes a request that ended by an answer or a cancellation.
    fn end(&mut self, id: u64) {
        let pending = self.requests.remove(&id);
        let pending = pending.expect("a request found in flight is removed once");
        self.books.forget(&pending);
        debug_assert_eq!(self.books.by_client.len(), self.requests.len());
    }

    /// Gauges and counters for `/status`.
    pub fn stats(&self) -> PendingStats {
        let mut refusals = [("", 0); 4];
        for ((slot, label), count) in refusals
            .iter_mut()
            .zip(PendingRefusal::LABELS)
            .zip(self.refusals)
        {
            *slot = (label, count);
        }
        PendingStats {
            entries: self.requests.len(),
            pending_max: self.limits.pending_max,
            per_upstream: self.books.per_upstream.to_vec(),
            completed_total: self.completed_total,
            cancelled_total: self.cancelled_total,
            timeouts_total: self.books.timeouts_total,
            late_answers_total: self.late_answers_total,
            early_retires_total: self.early_retires_total,
            refusals,
        }
    }
}
