//! [`EpochTable`]: index, slab, key lists and arena ring, and the rules that tie them together.

use std::hash::Hash;
use std::marker::PhantomData;
use std::mem;

use hashbrown::HashMap;

use super::arena::{ArenaRing, PayloadRef};
use super::ceiling::{self, MemoryCeiling};
use super::{
    EntryMut, EntryRef, GenerationStats, Handle, Refused, RemovalCause, Removed, TableError,
    TableLimits, TableRefusal, TableStats,
};

/// Largest accepted `entries_max`: keeps `2 × entries_max` listings and the free-list end
/// marker inside `u32`.
pub(super) const ENTRIES_MAX_LIMIT: u32 = u32::MAX / 2;

/// Largest accepted `arena_bytes_max` (4 GiB per generation), so sizes stay exact in `u64`.
pub(super) const ARENA_BYTES_MAX_LIMIT: usize = 1 << 32;

/// Free-list end marker (never a slot number, as `entries_max <= ENTRIES_MAX_LIMIT`).
const FREE_END: u32 = u32::MAX;

/// Keys the index is reserved for. hashbrown rehashes in place only while the entries after an
/// insert are at most half its capacity; past that, a table whose growth room was used up by
/// tombstones reallocates. Twice `entries_max` keeps every insert on the in-place side.
pub(super) fn index_capacity(entries_max: u32) -> usize {
    2 * entries_max as usize
}

/// Listings one generation's key list holds. A full current list is compacted to its live
/// listings (at most `entries_max`), so twice `entries_max` leaves room for at least
/// `entries_max` pushes between two compactions: amortised O(1), and never a refusal.
pub(super) fn list_capacity(entries_max: u32) -> usize {
    2 * entries_max as usize
}

/// One key-list record: the entry written in that generation, as slot and stamp at the time.
#[derive(Clone, Copy)]
pub(super) struct Listing {
    slot: u32,
    stamp: u32,
}

/// A slab slot; its stamp changes on every free so old handles and listings stop matching.
pub(super) struct Slot<K, V> {
    stamp: u32,
    state: SlotState<K, V>,
}

enum SlotState<K, V> {
    Free { next: u32 },
    Live(Entry<K, V>),
}

struct Entry<K, V> {
    key: K,
    value: V,
    /// In the arena of `listed_epoch` (empty payloads live in no arena).
    payload: PayloadRef,
    expires_at_ms: u64,
    /// The one generation whose key list is authoritative for this entry.
    listed_epoch: u64,
}

/// A bounded table of `K → (V, payload bytes, deadline)` owned by one shard.
///
/// Every structure is reserved by [`EpochTable::new`]; no later call allocates. The table is
/// `!Send` and `!Sync` (it holds raw pointers into its arenas and is meant to be touched only by
/// the shard that built it, without locks): move work to the owning shard, not the table.
pub struct EpochTable<K, V> {
    limits: TableLimits,
    index: HashMap<K, u32>,
    /// `index.allocation_size()` at construction; asserted unchanged (the index never grows).
    index_allocation_bytes: usize,
    slots: Vec<Slot<K, V>>,
    free_head: u32,
    live: u32,
    ring: ArenaRing,
    /// One key list per arena, by ring index.
    lists: Box<[Vec<Listing>]>,
    epoch: u64,
    early_retires: u64,
    refusals: u64,
    evictions: u64,
    expired: u64,
    _shard_local: PhantomData<*const ()>,
}

fn payload_bytes<'r>(ring: &'r ArenaRing, payload: &PayloadRef) -> &'r [u8] {
    let bytes = ring.get(payload);
    debug_assert!(
        bytes.is_some(),
        "a live entry's payload is in a live generation"
    );
    bytes.unwrap_or(&[])
}

fn is_authoritative<K, V>(slots: &[Slot<K, V>], listing: Listing, epoch: u64) -> bool {
    match slots.get(listing.slot as usize) {
        Some(Slot {
            stamp,
            state: SlotState::Live(entry),
        }) => *stamp == listing.stamp && entry.listed_epoch == epoch,
        _ => false,
    }
}

fn validate(limits: &TableLimits) -> Result<(), TableError> {
    let TableLimits {
        entries_max,
        generations,
        arena_bytes_max,
        payload_bytes_max,
    } = *limits;
    if entries_max == 0 || entries_max > ENTRIES_MAX_LIMIT {
        return Err(TableError::EntriesMax { entries_max });
    }
    if generations < 2 {
        return Err(TableError::Generations { generations });
    }
    if arena_bytes_max > ARENA_BYTES_MAX_LIMIT {
        return Err(TableError::ArenaBytesMax { arena_bytes_max });
    }
    if payload_bytes_max as usize > arena_bytes_max {
        return Err(TableError::PayloadBytesMax {
            payload_bytes_max,
            arena_bytes_max,
        });
    }
    Ok(())
}

impl<K: Copy + Eq + Hash, V: 'static> EpochTable<K, V> {
    /// Builds a table, reserving its index, slab, key lists and arenas once.
    pub fn new(limits: TableLimits) -> Result<Self, TableError> {
        validate(&limits)?;
        let ceiling = Self::memory_ceiling(&limits);
        let mut index = HashMap::new();
        index
            .try_reserve(index_capacity(limits.entries_max))
            .map_err(|_| TableError::Reserve {
                structure: "index",
                bytes: ceiling.index_bytes,
            })?;
        let mut slots = Vec::new();
        slots
            .try_reserve_exact(limits.entries_max as usize)
            .map_err(|_| TableError::Reserve {
                structure: "slab",
                bytes: ceiling.slab_bytes,
            })?;
        slots.extend((1..=limits.entries_max).map(|next| Slot {
            stamp: 0,
            state: SlotState::Free {
                next: if next == limits.entries_max {
                    FREE_END
                } else {
                    next
                },
            },
        }));
        let lists_error = TableError::Reserve {
            structure: "key lists",
            bytes: ceiling.key_lists_bytes,
        };
        let mut lists = Vec::new();
        lists
            .try_reserve_exact(usize::from(limits.generations))
            .map_err(|_| lists_error.clone())?;
        for _ in 0..limits.generations {
            let mut list = Vec::new();
            list.try_reserve_exact(list_capacity(limits.entries_max))
                .map_err(|_| lists_error.clone())?;
            lists.push(list);
        }
        let ring = ArenaRing::new(limits.generations, limits.arena_bytes_max).map_err(|_| {
            TableError::Reserve {
                structure: "arenas",
                bytes: ceiling.arenas_bytes + ceiling.arena_overhead_bytes,
            }
        })?;
        Ok(Self {
            limits,
            index_allocation_bytes: index.allocation_size(),
            index,
            slots,
            free_head: 0,
            live: 0,
            ring,
            lists: lists.into_boxed_slice(),
            epoch: 0,
            early_retires: 0,
            refusals: 0,
            evictions: 0,
            expired: 0,
            _shard_local: PhantomData,
        })
    }

    /// The bytes a table with these limits can ever hold, term by term (for limits that
    /// [`Self::new`] accepts).
    pub fn memory_ceiling(limits: &TableLimits) -> MemoryCeiling {
        MemoryCeiling {
            slab_bytes: u64::from(limits.entries_max) * mem::size_of::<Slot<K, V>>() as u64,
            index_bytes: ceiling::index_bytes::<(K, u32)>(index_capacity(limits.entries_max)),
            key_lists_bytes: u64::from(limits.generations)
                * list_capacity(limits.entries_max) as u64
                * mem::size_of::<Listing>() as u64,
            arenas_bytes: u64::from(limits.generations) * limits.arena_bytes_max as u64,
            arena_overhead_bytes: u64::from(limits.generations)
                * (ceiling::arena_chunk_bytes(limits.arena_bytes_max)
                    - limits.arena_bytes_max as u64),
        }
    }

    pub fn limits(&self) -> &TableLimits {
        &self.limits
    }

    /// Entries held, including expired ones whose generation has not been retired yet.
    pub fn len(&self) -> u32 {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Epochs elapsed: one per `advance` and per early retire.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Adds an entry listed in the current generation. Refuses (handing `value` back) at
    /// `entries_max`, when the current arena has no room, for a payload over
    /// `payload_bytes_max`, and for a key already present, even an expired one: use
    /// [`Self::insert_or_retire`] to replace an expired key. Never retires a generation.
    pub fn insert(
        &mut self,
        key: K,
        value: V,
        payload: &[u8],
        expires_at_ms: u64,
    ) -> Result<Handle, Refused<V>> {
        let inserted = self.insert_entry(key, value, payload, expires_at_ms);
        self.count_refusal(inserted)
    }

    /// Like [`Self::insert`], but first removes an expired entry under the same key (reported
    /// as expired), and when the table or the current arena is full retires the oldest
    /// generation early (reporting what it removes) and tries once more before refusing.
    pub fn insert_or_retire(
        &mut self,
        key: K,
        value: V,
        payload: &[u8],
        expires_at_ms: u64,
        now_ms: u64,
        mut on_removed: impl FnMut(Removed<'_, K, V>),
    ) -> Result<Handle, Refused<V>> {
        self.remove_if_expired(&key, now_ms, &mut on_removed);
        let refused = match self.insert_entry(key, value, payload, expires_at_ms) {
            Err(refused) if refused.refusal.is_capacity() => refused,
            inserted => return self.count_refusal(inserted),
        };
        self.retire_oldest(now_ms, &mut on_removed);
        self.early_retires += 1;
        let inserted = self.insert_entry(key, refused.value, payload, expires_at_ms);
        self.count_refusal(inserted)
    }

    /// The live entry under `key`; `None` if absent or if its deadline is at or before `now_ms`.
    pub fn get(&self, key: &K, now_ms: u64) -> Option<EntryRef<'_, V>> {
        let &slot = self.index.get(key)?;
        self.entry_ref(slot, now_ms)
    }

    /// The live entry under `key`, with its value writable.
    pub fn get_mut(&mut self, key: &K, now_ms: u64) -> Option<EntryMut<'_, V>> {
        let &slot = self.index.get(key)?;
        let Slot { stamp, state } = &mut self.slots[slot as usize];
        match state {
            SlotState::Live(entry) if entry.expires_at_ms > now_ms => Some(EntryMut {
                handle: Handle {
                    slot,
                    stamp: *stamp,
                },
                value: &mut entry.value,
                payload: payload_bytes(&self.ring, &entry.payload),
                expires_at_ms: entry.expires_at_ms,
            }),
            _ => None,
        }
    }

    /// The live entry `handle` was issued for; `None` once it was removed or expired, even if
    /// its slot now holds another entry.
    pub fn by_handle(&self, handle: Handle, now_ms: u64) -> Option<EntryRef<'_, V>> {
        let slot = self.slots.get(handle.slot as usize)?;
        if slot.stamp != handle.stamp {
            return None;
        }
        self.entry_ref(handle.slot, now_ms)
    }

    fn entry_ref(&self, slot: u32, now_ms: u64) -> Option<EntryRef<'_, V>> {
        let Slot { stamp, state } = &self.slots[slot as usize];
        match state {
            SlotState::Live(entry) if entry.expires_at_ms > now_ms => Some(EntryRef {
                handle: Handle {
                    slot,
                    stamp: *stamp,
                },
                value: &entry.value,
                payload: payload_bytes(&self.ring, &entry.payload),
                expires_at_ms: entry.expires_at_ms,
            }),
            _ => None,
        }
    }

    fn live_entry_mut(&mut self, key: &K, now_ms: u64) -> Option<(u32, u32, &mut Entry<K, V>)> {
        let &slot = self.index.get(key)?;
        let Slot { stamp, state } = &mut self.slots[slot as usize];
        match state {
            SlotState::Live(entry) if entry.expires_at_ms > now_ms => Some((slot, *stamp, entry)),
            _ => None,
        }
    }

    /// Sets the deadline of the live entry under `key`; `false` if absent or already expired.
    pub fn touch(&mut self, key: &K, expires_at_ms: u64, now_ms: u64) -> bool {
        match self.live_entry_mut(key, now_ms) {
            Some((_, _, entry)) => {
                entry.expires_at_ms = expires_at_ms;
                true
            }
            None => false,
        }
    }

    /// Stores a new payload for the live entry under `key`, in the current generation (the old
    /// bytes are reclaimed when their generation retires).
    pub fn replace_payload(
        &mut self,
        key: &K,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(), TableRefusal> {
        let replaced = self.replace_payload_entry(key, payload, now_ms);
        if replaced.is_err() {
            self.refusals += 1;
        }
        replaced
    }

    fn replace_payload_entry(
        &mut self,
        key: &K,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(), TableRefusal> {
        self.check_payload_size(payload)?;
        let epoch = self.epoch;
        let arena_bytes_max = self.limits.arena_bytes_max;
        let Some(&slot) = self.index.get(key) else {
            return Err(TableRefusal::UnknownKey);
        };
        let Slot {
            stamp,
            state: SlotState::Live(entry),
        } = &mut self.slots[slot as usize]
        else {
            unreachable!("the index names a free slot");
        };
        if entry.expires_at_ms <= now_ms {
            return Err(TableRefusal::UnknownKey);
        }
        let Some(stored) = self.ring.alloc(payload) else {
            return Err(TableRefusal::ArenaFull {
                payload_bytes: payload.len() as u32,
                arena_bytes_max,
            });
        };
        entry.payload = stored;
        if entry.listed_epoch != epoch {
            entry.listed_epoch = epoch;
            let stamp = *stamp;
            self.push_listing(Listing { slot, stamp });
        }
        Ok(())
    }

    /// Removes the entry under `key`, live or expired, and returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.index.remove(key)?;
        let entry = self.free_slot(slot);
        self.check_invariants();
        Some(entry.value)
    }

    /// The epoch tick: retires the oldest generation. Each entry listed in it is removed if its
    /// deadline is at or before `now_ms` (`RemovalCause::Expired`), else its payload is copied
    /// into the current generation (`RemovalCause::Evicted` if that does not fit). `on_removed`
    /// sees each removed entry before the retired arena is rewound and becomes current.
    pub fn advance(&mut self, now_ms: u64, mut on_removed: impl FnMut(Removed<'_, K, V>)) {
        self.retire_oldest(now_ms, &mut on_removed);
    }

    pub fn stats(&self) -> TableStats {
        let generations = u64::from(self.limits.generations);
        let generations = (0..generations)
            .rev()
            .filter_map(|age| self.epoch.checked_sub(age))
            .map(|generation| {
                let ring_index = (generation % generations) as usize;
                GenerationStats {
                    generation,
                    listed: self.lists[ring_index].len() as u32,
                    used_bytes: self.ring.used_bytes(ring_index) as u64,
                    allocated_bytes: self.ring.allocated_bytes(ring_index) as u64,
                }
            })
            .collect();
        TableStats {
            entries: self.live,
            entries_max: self.limits.entries_max,
            epoch: self.epoch,
            early_retires: self.early_retires,
            refusals: self.refusals,
            evictions: self.evictions,
            expired: self.expired,
            generations,
        }
    }

    fn count_refusal(
        &mut self,
        inserted: Result<Handle, Refused<V>>,
    ) -> Result<Handle, Refused<V>> {
        if inserted.is_err() {
            self.refusals += 1;
        }
        inserted
    }

    fn check_payload_size(&self, payload: &[u8]) -> Result<(), TableRefusal> {
        let payload_bytes_max = self.limits.payload_bytes_max;
        if payload.len() > payload_bytes_max as usize {
            return Err(TableRefusal::PayloadTooLarge {
                payload_bytes: payload.len(),
                payload_bytes_max,
            });
        }
        Ok(())
    }

    fn admit(&self, key: &K, payload: &[u8]) -> Result<(), TableRefusal> {
        self.check_payload_size(payload)?;
        if self.index.contains_key(key) {
            return Err(TableRefusal::DuplicateKey);
        }
        if self.live == self.limits.entries_max {
            return Err(TableRefusal::Full {
                entries_max: self.limits.entries_max,
            });
        }
        Ok(())
    }

    fn insert_entry(
        &mut self,
        key: K,
        value: V,
        payload: &[u8],
        expires_at_ms: u64,
    ) -> Result<Handle, Refused<V>> {
        if let Err(refusal) = self.admit(&key, payload) {
            return Err(Refused { refusal, value });
        }
        let Some(payload) = self.ring.alloc(payload) else {
            let refusal = TableRefusal::ArenaFull {
                payload_bytes: payload.len() as u32,
                arena_bytes_max: self.limits.arena_bytes_max,
            };
            return Err(Refused { refusal, value });
        };
        let slot = self.free_head;
        let Slot { stamp, state } = &mut self.slots[slot as usize];
        let SlotState::Free { next } = *state else {
            unreachable!("the free list names a live slot");
        };
        let stamp = *stamp;
        let listed_epoch = self.epoch;
        *state = SlotState::Live(Entry {
            key,
            value,
            payload,
            expires_at_ms,
            listed_epoch,
        });
        self.free_head = next;
        self.live += 1;
        self.index.insert(key, slot);
        self.push_listing(Listing { slot, stamp });
        self.check_invariants();
        Ok(Handle { slot, stamp })
    }

    /// Records `listing` in the current generation, first dropping stale listings if the list
    /// is full (see [`list_capacity`]).
    fn push_listing(&mut self, listing: Listing) {
        let list = &mut self.lists[self.ring.current()];
        if list.len() == list.capacity() {
            let (slots, epoch) = (&self.slots, self.epoch);
            list.retain(|&listed| is_authoritative(slots, listed, epoch));
        }
        assert!(
            list.len() < list.capacity(),
            "live listings exceed entries_max"
        );
        list.push(listing);
    }

    /// Frees `slot` (its index entry must already be gone) and returns the entry it held.
    fn free_slot(&mut self, slot: u32) -> Entry<K, V> {
        let Slot { stamp, state } = &mut self.slots[slot as usize];
        let SlotState::Live(entry) = mem::replace(
            state,
            SlotState::Free {
                next: self.free_head,
            },
        ) else {
            unreachable!("freeing a free slot");
        };
        *stamp = stamp.wrapping_add(1);
        self.free_head = slot;
        self.live -= 1;
        entry
    }

    fn remove_if_expired(
        &mut self,
        key: &K,
        now_ms: u64,
        on_removed: &mut impl FnMut(Removed<'_, K, V>),
    ) {
        let Some(&slot) = self.index.get(key) else {
            return;
        };
        let SlotState::Live(entry) = &self.slots[slot as usize].state else {
            unreachable!("the index names a free slot");
        };
        if entry.expires_at_ms <= now_ms {
            self.index.remove(key);
            self.remove_slot(slot, RemovalCause::Expired, on_removed);
            self.check_invariants();
        }
    }

    /// Frees `slot` (index entry already removed), counts the cause and reports the entry.
    fn remove_slot(
        &mut self,
        slot: u32,
        cause: RemovalCause,
        on_removed: &mut impl FnMut(Removed<'_, K, V>),
    ) {
        let Entry {
            key,
            value,
            payload,
            ..
        } = self.free_slot(slot);
        match cause {
            RemovalCause::Expired => self.expired += 1,
            RemovalCause::Evicted => self.evictions += 1,
        }
        let payload = payload_bytes(&self.ring, &payload);
        on_removed(Removed {
            key,
            value,
            payload,
            cause,
        });
    }

    fn retire_oldest(&mut self, now_ms: u64, on_removed: &mut impl FnMut(Removed<'_, K, V>)) {
        let oldest = self.ring.oldest();
        let generations = u64::from(self.limits.generations);
        let mut list = mem::take(&mut self.lists[oldest]);
        if let Some(retiring_epoch) = (self.epoch + 1).checked_sub(generations) {
            for &listing in &list {
                if is_authoritative(&self.slots, listing, retiring_epoch) {
                    self.retire_entry(listing.slot, now_ms, on_removed);
                }
            }
        }
        debug_assert!(list.is_empty() || self.epoch + 1 >= generations);
        list.clear();
        self.lists[oldest] = list;
        self.ring.advance();
        self.epoch += 1;
        self.check_invariants();
    }

    /// Retires one entry of the oldest generation: evacuate it if live, else remove it.
    fn retire_entry(
        &mut self,
        slot: u32,
        now_ms: u64,
        on_removed: &mut impl FnMut(Removed<'_, K, V>),
    ) {
        let epoch = self.epoch;
        let Slot {
            stamp,
            state: SlotState::Live(entry),
        } = &mut self.slots[slot as usize]
        else {
            unreachable!("an authoritative listing names a free slot");
        };
        let cause = if entry.expires_at_ms <= now_ms {
            RemovalCause::Expired
        } else if let Some(moved) = self.ring.evacuate(entry.payload) {
            entry.payload = moved;
            entry.listed_epoch = epoch;
            let stamp = *stamp;
            self.push_listing(Listing { slot, stamp });
            return;
        } else {
            RemovalCause::Evicted
        };
        let removed = self.index.remove(&entry.key);
        debug_assert_eq!(removed, Some(slot));
        self.remove_slot(slot, cause, on_removed);
    }

    #[cfg(test)]
    pub(super) fn index_allocation_bytes(&self) -> usize {
        self.index.allocation_size()
    }

    fn check_invariants(&self) {
        debug_assert!(self.live <= self.limits.entries_max);
        debug_assert_eq!(self.index.len(), self.live as usize);
        debug_assert_eq!(self.index.allocation_size(), self.index_allocation_bytes);
        debug_assert_eq!(
            self.ring.current() as u64,
            self.epoch % u64::from(self.limits.generations)
        );
        for ring_index in 0..usize::from(self.limits.generations) {
            debug_assert!(self.ring.used_bytes(ring_index) <= self.limits.arena_bytes_max);
        }
    }
}
