//! Bounded, epoch-reclaimed tables: the one reclamation primitive of shardgate.
//!
//! [`EpochTable`] owns a fixed number of entries, each a key, a value and a variable-sized byte
//! payload with a deadline. It is reused by the session table, the pending-request table, the
//! metric series and the auth windows. One table belongs to one shard and is touched only by that
//! shard's thread, so it is `!Send` and `!Sync` and uses no locks or atomics.
//!
//! Layout, all reserved by [`EpochTable::new`] and never grown:
//! - the index, a `hashbrown::HashMap<K, u32>` from key to slot, reserved for twice
//!   `entries_max` so that hashbrown always rehashes in place (a table reserved for exactly
//!   `entries_max` resizes under insert/remove churn once tombstones use up its growth room);
//! - the slab of `entries_max` slots holding keys and values, with a free list and a stamp per
//!   slot that changes on every free, so a [`Handle`] of a removed entry never reads another's;
//! - a ring of `generations` bumpalo arenas of `arena_bytes_max` bytes each, holding payloads,
//!   and one key list per generation (capacity `2 × entries_max`) naming the entries written in it.
//!
//! [`EpochTable::advance`] is the epoch tick: it retires the oldest generation, removing the
//! entries whose deadline has passed (reported as [`RemovalCause::Expired`]) and copying the live
//! ones into the current generation (reported as [`RemovalCause::Evicted`] when the copy does not
//! fit), then rewinds that arena in O(1) and makes it the new current generation.
//!
//! Refusals ([`TableRefusal`]): the table at `entries_max`, the current arena out of bytes, a
//! payload over `payload_bytes_max`, a key already present. Nothing grows on demand;
//! [`EpochTable::insert_or_retire`] retires the oldest generation early once before refusing.
//! [`EpochTable::memory_ceiling`] gives the bytes a table can ever hold, term by term.
//!
//! ```compile_fail
//! fn shard_local_only<T: Send>() {}
//! shard_local_only::<shardgate::epoch::EpochTable<u64, u64>>();
//! ```

mod arena;
mod ceiling;
mod table;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::fmt;

pub use ceiling::{index_bytes, MemoryCeiling};
pub use table::EpochTable;

/// The bounds of one table, fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLimits {
    /// Entries the table holds at most; reserves one slab slot, two index buckets and two
    /// listings per generation for each.
    pub entries_max: u32,
    /// Arenas in the ring (at least 2): a live entry is copied once every `generations - 1`
    /// epochs, an expired one is reclaimed at most `generations` epochs after its deadline.
    pub generations: u8,
    /// Payload bytes one generation holds at most; reserved once per generation.
    pub arena_bytes_max: usize,
    /// Bytes one entry's payload holds at most (at most `arena_bytes_max`).
    pub payload_bytes_max: u32,
}

/// Why a table could not be built from its limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableError {
    /// `entries_max` is 0 or so large that slot numbers would collide with the free-list end.
    EntriesMax { entries_max: u32 },
    /// `generations` is below 2: the oldest generation would also be the current one.
    Generations { generations: u8 },
    /// `arena_bytes_max` is above 4 GiB.
    ArenaBytesMax { arena_bytes_max: usize },
    /// `payload_bytes_max` exceeds `arena_bytes_max`: such a payload could never be stored.
    PayloadBytesMax {
        payload_bytes_max: u32,
        arena_bytes_max: usize,
    },
    /// The allocator refused the reservation of one structure.
    Reserve { structure: &'static str, bytes: u64 },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EntriesMax { entries_max } => write!(
                f,
                "entries_max {entries_max} is outside 1..={}",
                table::ENTRIES_MAX_LIMIT
            ),
            Self::Generations { generations } => {
                write!(f, "generations {generations} is below the minimum 2")
            }
            Self::ArenaBytesMax { arena_bytes_max } => write!(
                f,
                "arena_bytes_max {arena_bytes_max} exceeds the limit {}",
                table::ARENA_BYTES_MAX_LIMIT
            ),
            Self::PayloadBytesMax {
                payload_bytes_max,
                arena_bytes_max,
            } => write!(
                f,
                "payload_bytes_max {payload_bytes_max} exceeds arena_bytes_max {arena_bytes_max}"
            ),
            Self::Reserve { structure, bytes } => {
                write!(f, "could not reserve {bytes} bytes for the {structure}")
            }
        }
    }
}

impl std::error::Error for TableError {}

/// Why an insert or payload replacement was refused. Each refusal is counted in
/// [`TableStats::refusals`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableRefusal {
    /// The table holds `entries_max` entries (expired ones count until their generation retires).
    Full { entries_max: u32 },
    /// The current generation's arena has no room for the payload.
    ArenaFull {
        payload_bytes: u32,
        arena_bytes_max: usize,
    },
    /// The payload is larger than `payload_bytes_max`.
    PayloadTooLarge {
        payload_bytes: usize,
        payload_bytes_max: u32,
    },
    /// The key is already present (live, or expired and not yet retired, for plain `insert`).
    DuplicateKey,
    /// `replace_payload` named a key that is absent or expired.
    UnknownKey,
}

impl TableRefusal {
    /// Whether retiring the oldest generation can make room for the refused work.
    fn is_capacity(self) -> bool {
        matches!(self, Self::Full { .. } | Self::ArenaFull { .. })
    }
}

impl fmt::Display for TableRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { entries_max } => {
                write!(f, "table holds entries_max {entries_max} entries")
            }
            Self::ArenaFull {
                payload_bytes,
                arena_bytes_max,
            } => write!(
                f,
                "payload of {payload_bytes} bytes does not fit in the current generation \
                 (arena_bytes_max {arena_bytes_max})"
            ),
            Self::PayloadTooLarge {
                payload_bytes,
                payload_bytes_max,
            } => write!(
                f,
                "payload of {payload_bytes} bytes exceeds payload_bytes_max {payload_bytes_max}"
            ),
            Self::DuplicateKey => f.write_str("key is already present"),
            Self::UnknownKey => f.write_str("key is absent or expired"),
        }
    }
}

impl std::error::Error for TableRefusal {}

/// A refused insert: why, and the value handed back to the caller (it may hold a reply channel
/// that still has to be answered).
pub struct Refused<V> {
    pub refusal: TableRefusal,
    pub value: V,
}

impl<V> fmt::Debug for Refused<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("refusal", &self.refusal)
            .finish_non_exhaustive()
    }
}

impl<V> fmt::Display for Refused<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.refusal.fmt(f)
    }
}

impl<V> std::error::Error for Refused<V> {}

impl<V> From<Refused<V>> for TableRefusal {
    fn from(refused: Refused<V>) -> Self {
        refused.refusal
    }
}

/// Names one entry for its lifetime: slot number plus the slot's stamp when it was inserted.
/// A handle of a removed entry resolves to `None`, whether or not its slot was reused (the stamp
/// is a wrapping `u32`, so a handle kept across 2³² reuses of one slot could alias).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handle {
    pub slot: u32,
    pub stamp: u32,
}

/// A live entry, read-only.
#[derive(Debug)]
pub struct EntryRef<'t, V> {
    pub handle: Handle,
    pub value: &'t V,
    pub payload: &'t [u8],
    pub expires_at_ms: u64,
}

/// A live entry whose value may be changed in place.
#[derive(Debug)]
pub struct EntryMut<'t, V> {
    pub handle: Handle,
    pub value: &'t mut V,
    pub payload: &'t [u8],
    pub expires_at_ms: u64,
}

/// Why the table removed an entry on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalCause {
    /// Its deadline had passed when its generation was retired.
    Expired,
    /// It was live, but its payload did not fit in the current generation when evacuated.
    Evicted,
}

/// An entry the table removed on its own, handed to the caller before its arena is rewound.
#[derive(Debug)]
pub struct Removed<'a, K, V> {
    pub key: K,
    pub value: V,
    pub payload: &'a [u8],
    pub cause: RemovalCause,
}

/// One generation of the ring, as seen by [`EpochTable::stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenerationStats {
    /// The epoch this generation was current in.
    pub generation: u64,
    /// Listings recorded in its key list (including entries removed since).
    pub listed: u32,
    /// Payload bytes the table allocated in it since its last reset (≤ `arena_bytes_max`).
    pub used_bytes: u64,
    /// `Bump::allocated_bytes` of its arena: the reserved chunk, constant over the table's life.
    pub allocated_bytes: u64,
}

/// Gauges and counters of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStats {
    pub entries: u32,
    pub entries_max: u32,
    pub epoch: u64,
    /// Generations retired early by `insert_or_retire` to make room.
    pub early_retires: u64,
    /// Inserts and payload replacements refused.
    pub refusals: u64,
    /// Live entries removed because their payload did not fit when evacuated.
    pub evictions: u64,
    /// Entries removed because their deadline had passed.
    pub expired: u64,
    /// The generations that have existed, oldest first (at most `generations`).
    pub generations: Vec<GenerationStats>,
}
