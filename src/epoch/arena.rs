//! The ring of generation arenas and the only `unsafe` of the epoch tables.
//!
//! Owns one `bumpalo::Bump` per generation, each reserved once as a single chunk of at least
//! `arena_bytes_max` bytes and never grown: the ring keeps its own count of the bytes handed out
//! per generation and refuses an allocation that would pass `arena_bytes_max`, so every payload
//! lands in the reserved chunk and `reset` rewinds it without calling the allocator. The bumpalo
//! allocation limit is set to the chunk's real size as a second fence, so the arena cannot add a
//! chunk even if that count were wrong. (A `Bump` whose chunk is already larger than its
//! allocation limit treats itself as unlimited, so the limit must not be set below the chunk.)
//!
//! A payload is named by a [`PayloadRef`]: raw pointer, length, ring index and the stamp the
//! arena carried when it was allocated. Every reset gives the arena a fresh stamp, taken from a
//! per-thread counter, so a stamp names one arena and one lifetime of it on this thread; `get`
//! turns a reference back into `&[u8]` only while that stamp is unchanged. A `PayloadRef` holds a
//! raw pointer and is therefore `!Send`: it cannot reach another thread's ring.
//!
//! Owned by one shard (the ring is `!Send`); no limits of its own beyond `arena_bytes_max`.

use std::cell::Cell;
use std::ptr::NonNull;

use bumpalo::Bump;

thread_local! {
    /// Next arena stamp on this thread; strictly increasing, so no two arena lifetimes share one.
    static STAMP_NEXT: Cell<u64> = const { Cell::new(1) };
}

fn stamp_fresh() -> u64 {
    STAMP_NEXT.with(|next| {
        let stamp = next.get();
        next.set(stamp.checked_add(1).expect("arena stamps exhausted"));
        stamp
    })
}

/// Where a payload lives: valid while `arenas[ring_index].stamp == stamp`.
#[derive(Clone, Copy, Debug)]
pub(super) struct PayloadRef {
    ptr: NonNull<u8>,
    stamp: u64,
    len: u32,
    ring_index: u8,
}

impl PayloadRef {
    /// The empty payload: lives in no arena and is always readable.
    pub(super) const EMPTY: PayloadRef = PayloadRef {
        ptr: NonNull::dangling(),
        stamp: 0,
        len: 0,
        ring_index: 0,
    };
}

struct Arena {
    bump: Bump,
    /// Identifies this arena's current lifetime; replaced on every reset.
    stamp: u64,
    /// Bytes handed out since the last reset (payloads are `u8`, so there is no padding).
    used_bytes: usize,
}

/// Why an arena could not be reserved at construction.
#[derive(Debug)]
pub(super) struct ReserveFailed;

/// The generation arenas, oldest after `current` in ring order.
pub(super) struct ArenaRing {
    arenas: Box<[Arena]>,
    current: usize,
    arena_bytes_max: usize,
}

impl ArenaRing {
    /// Reserves `generations` arenas of `arena_bytes_max` bytes each; the only allocator calls.
    pub(super) fn new(generations: u8, arena_bytes_max: usize) -> Result<Self, ReserveFailed> {
        assert!(generations >= 2, "a ring needs at least two generations");
        let mut arenas = Vec::new();
        arenas
            .try_reserve_exact(usize::from(generations))
            .map_err(|_| ReserveFailed)?;
        for _ in 0..generations {
            let bump = Bump::try_with_capacity(arena_bytes_max).map_err(|_| ReserveFailed)?;
            bump.set_allocation_limit(Some(bump.allocated_bytes()));
            debug_assert!(bump.chunk_capacity() >= arena_bytes_max);
            arenas.push(Arena {
                bump,
                stamp: stamp_fresh(),
                used_bytes: 0,
            });
        }
        Ok(Self {
            arenas: arenas.into_boxed_slice(),
            current: 0,
            arena_bytes_max,
        })
    }

    pub(super) fn current(&self) -> usize {
        self.current
    }

    /// The ring index retired by the next `advance`.
    pub(super) fn oldest(&self) -> usize {
        (self.current + 1) % self.arenas.len()
    }

    pub(super) fn used_bytes(&self, ring_index: usize) -> usize {
        self.arenas[ring_index].used_bytes
    }

    /// `Bump::allocated_bytes` of one arena: the chunk it holds (constant after construction).
    pub(super) fn allocated_bytes(&self, ring_index: usize) -> usize {
        self.arenas[ring_index].bump.allocated_bytes()
    }

    /// Whether `bytes` more fit in the current generation.
    pub(super) fn fits(&self, bytes: usize) -> bool {
        let used = self.arenas[self.current].used_bytes;
        bytes <= self.arena_bytes_max - used
    }

    /// Copies `bytes` into the current generation; `None` when it would pass `arena_bytes_max`.
    pub(super) fn alloc(&mut self, bytes: &[u8]) -> Option<PayloadRef> {
        if bytes.is_empty() {
            return Some(PayloadRef::EMPTY);
        }
        if !self.fits(bytes.len()) {
            return None;
        }
        let payload = Self::copy_into(&self.arenas[self.current], self.current, bytes)?;
        self.charge(bytes.len());
        Some(payload)
    }

    /// Copies a payload of an older generation into the current one; `None` when it does not
    /// fit (or no longer exists). A payload already in the current generation is returned as is.
    pub(super) fn evacuate(&mut self, payload: PayloadRef) -> Option<PayloadRef> {
        if payload.len == 0 || usize::from(payload.ring_index) == self.current {
            return self.get(&payload).map(|_| payload);
        }
        let source = self.get(&payload)?;
        if !self.fits(source.len()) {
            return None;
        }
        let copied = Self::copy_into(&self.arenas[self.current], self.current, source)?;
        self.charge(usize::try_from(payload.len).ok()?);
        Some(copied)
    }

    fn copy_into(arena: &Arena, ring_index: usize, bytes: &[u8]) -> Option<PayloadRef> {
        let copied = arena.bump.try_alloc_slice_copy(bytes).ok()?;
        Some(PayloadRef {
            ptr: NonNull::from(copied).cast(),
            stamp: arena.stamp,
            len: u32::try_from(bytes.len()).ok()?,
            ring_index: u8::try_from(ring_index).ok()?,
        })
    }

    fn charge(&mut self, bytes: usize) {
        let arena = &mut self.arenas[self.current];
        arena.used_bytes += bytes;
        debug_assert!(arena.used_bytes <= self.arena_bytes_max);
    }

    /// The bytes of `payload`, or `None` if its arena was reset since it was allocated.
    pub(super) fn get(&self, payload: &PayloadRef) -> Option<&[u8]> {
        if payload.len == 0 {
            return Some(&[]);
        }
        let arena = self.arenas.get(usize::from(payload.ring_index))?;
        if arena.stamp != payload.stamp {
            return None;
        }
        let len = usize::try_from(payload.len).ok()?;
        // SAFETY: a non-empty `PayloadRef` is made only by `copy_into`, from the slice that
        // `arena.bump` returned, while the arena carried `payload.stamp`. Stamps come from a
        // strictly increasing per-thread counter and `PayloadRef` is `!Send`, so the equal stamp
        // checked above means this is that same arena and it has not been reset since (`advance`
        // replaces the stamp before it resets). The chunk stays allocated until the `Bump` is
        // reset or dropped, both of which need `&mut self` and so cannot happen while the
        // returned borrow of `self` lives. The `len` bytes were initialised by the copy and are
        // never written again: bumpalo hands out disjoint ranges and the `&mut [u8]` it returned
        // was dropped in `copy_into`. Exercised by `stale_payload_ref_returns_none_after_reset`
        // and `live_entries_survive_a_full_ring_of_advances`.
        Some(unsafe { std::slice::from_raw_parts(payload.ptr.as_ptr(), len) })
    }

    /// Retires the oldest generation: gives its arena a new stamp (invalidating every
    /// `PayloadRef` into it), rewinds it and makes it current.
    pub(super) fn advance(&mut self) {
        let oldest = self.oldest();
        let arena = &mut self.arenas[oldest];
        arena.stamp = stamp_fresh();
        arena.bump.reset();
        arena.used_bytes = 0;
        self.current = oldest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> ArenaRing {
        ArenaRing::new(2, 256).expect("ring of two 256-byte arenas")
    }

    #[test]
    fn stale_payload_ref_returns_none_after_reset() {
        let mut ring = ring();
        let payload = ring.alloc(b"first").expect("fits");
        assert_eq!(ring.get(&payload), Some(&b"first"[..]));
        ring.advance();
        assert_eq!(
            ring.get(&payload),
            Some(&b"first"[..]),
            "not yet the oldest"
        );
        ring.advance();
        assert_eq!(ring.get(&payload), None, "its arena was reset");
        let reused = ring.alloc(b"other").expect("fits after reset");
        assert_eq!(ring.get(&payload), None);
        assert_eq!(ring.get(&reused), Some(&b"other"[..]));
    }

    #[test]
    fn payload_ref_of_another_ring_returns_none() {
        let mut first = ring();
        let second = ring();
        let payload = first.alloc(b"mine").expect("fits");
        assert_eq!(second.get(&payload), None);
    }

    #[test]
    fn alloc_refuses_past_arena_bytes_max_and_reset_restores_room() {
        let mut ring = ring();
        assert!(ring.alloc(&[7; 200]).is_some());
        assert!(ring.alloc(&[7; 56]).is_some());
        assert!(ring.alloc(&[7; 1]).is_none(), "256 bytes used of 256");
        assert_eq!(ring.used_bytes(0), 256);
        ring.advance();
        ring.advance();
        assert_eq!(ring.current(), 0);
        assert_eq!(ring.used_bytes(0), 0);
        assert!(ring.alloc(&[7; 256]).is_some());
    }

    #[test]
    fn evacuate_copies_into_current_generation() {
        let mut ring = ring();
        let payload = ring.alloc(b"keep me").expect("fits");
        ring.advance();
        let moved = ring.evacuate(payload).expect("fits in the new generation");
        ring.advance();
        assert_eq!(ring.get(&payload), None);
        assert_eq!(ring.get(&moved), Some(&b"keep me"[..]));
    }
}
