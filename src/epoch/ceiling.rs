//! The memory ceiling of a table, computed from its limits and the real structure sizes.
//!
//! The index and arena terms follow the allocation rules of the hashbrown 0.17 and bumpalo 3.20
//! versions this crate builds with; tests compare them with what those crates really allocate,
//! so a dependency bump that changes the rules fails here instead of under-reporting. Allocator
//! bookkeeping outside the blocks themselves (malloc headers) is not counted.

use std::mem;

/// Bytes one table can ever hold, one field per structure, each reserved at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryCeiling {
    /// `entries_max` slab slots (key, value, payload reference, deadline, stamp).
    pub slab_bytes: u64,
    /// The hashbrown index: buckets of `(K, u32)` plus one control byte each and a group.
    pub index_bytes: u64,
    /// One key list of `2 × entries_max` listings (8 bytes each) per generation.
    pub key_lists_bytes: u64,
    /// `generations × arena_bytes_max`: payload bytes the arenas may hand out.
    pub arenas_bytes: u64,
    /// What each arena's chunk takes beyond `arena_bytes_max`: bumpalo rounds a chunk up to a
    /// power of two (below 4 KiB) or a page multiple, and adds a footer. An `arena_bytes_max`
    /// of a page multiple minus 64 (for example 65472) wastes nothing.
    pub arena_overhead_bytes: u64,
}

impl MemoryCeiling {
    pub fn total(&self) -> u64 {
        self.slab_bytes
            + self.index_bytes
            + self.key_lists_bytes
            + self.arenas_bytes
            + self.arena_overhead_bytes
    }
}

/// hashbrown's SIMD group width: SSE2 on x86, otherwise eight bytes (NEON or a `u64` word).
const GROUP_WIDTH: usize = if cfg!(all(
    target_feature = "sse2",
    any(target_arch = "x86", target_arch = "x86_64")
)) {
    16
} else {
    8
};

fn round_up(value: usize, multiple: usize) -> usize {
    value.div_ceil(multiple) * multiple
}

/// Buckets hashbrown allocates for `capacity` items of `bucket_bytes` each
/// (`capacity_to_buckets` in hashbrown's `raw.rs`).
fn index_buckets(capacity: usize, bucket_bytes: usize) -> usize {
    if capacity >= 15 {
        return (capacity * 8 / 7).next_power_of_two();
    }
    let capacity_min = match (GROUP_WIDTH, bucket_bytes) {
        (16, 0..=1) => 14,
        (16, 2..=3) | (8, 0..=1) => 7,
        _ => 3,
    };
    match capacity.max(capacity_min) {
        0..=3 => 4,
        4..=7 => 8,
        _ => 16,
    }
}

/// Bytes of a hashbrown table of `T` reserved for `capacity` items
/// (`TableLayout::calculate_layout_for` in hashbrown's `raw.rs`). Other bounded maps use it for
/// their plan terms too.
pub fn index_bytes<T>(capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let buckets = index_buckets(capacity, mem::size_of::<T>());
    let ctrl_align = mem::align_of::<T>().max(GROUP_WIDTH);
    (round_up(buckets * mem::size_of::<T>(), ctrl_align) + buckets + GROUP_WIDTH) as u64
}

/// bumpalo's `ChunkFooter`: five pointer-sized words and a `Layout`, aligned to 16.
const BUMP_FOOTER_BYTES: usize = (6 * mem::size_of::<usize>()).next_multiple_of(16);
/// bumpalo's assumed malloc overhead plus the footer, aligned to 16 (`OVERHEAD` in bumpalo).
const BUMP_OVERHEAD_BYTES: usize = (16 + BUMP_FOOTER_BYTES).next_multiple_of(16);
/// bumpalo's smallest chunk (`DEFAULT_CHUNK_SIZE_WITHOUT_FOOTER`).
const BUMP_CHUNK_MIN_BYTES: usize = 512 - BUMP_OVERHEAD_BYTES;
const PAGE_BYTES: usize = 4096;

/// Bytes `Bump::try_with_capacity(arena_bytes_max)` requests for its one chunk, footer included
/// (`new_chunk_memory_details` in bumpalo's `lib.rs`).
pub(super) fn arena_chunk_bytes(arena_bytes_max: usize) -> u64 {
    if arena_bytes_max == 0 {
        return 0;
    }
    let data = BUMP_CHUNK_MIN_BYTES.max(round_up(arena_bytes_max, 16));
    let data = if data < PAGE_BYTES {
        (data + BUMP_OVERHEAD_BYTES).next_power_of_two() - BUMP_OVERHEAD_BYTES
    } else {
        round_up(data + BUMP_OVERHEAD_BYTES, PAGE_BYTES) - BUMP_OVERHEAD_BYTES
    };
    (data + BUMP_FOOTER_BYTES) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashbrown_bytes<K: Copy + Eq + std::hash::Hash>(capacity: usize) -> u64 {
        let mut map: hashbrown::HashMap<K, u32> = hashbrown::HashMap::new();
        map.try_reserve(capacity).expect("reserve a small index");
        map.allocation_size() as u64
    }

    const CAPACITIES: [usize; 12] = [1, 3, 4, 7, 8, 14, 15, 16, 100, 1000, 2000, 20_000];

    #[test]
    fn index_term_matches_hashbrown_allocation_size() {
        for capacity in CAPACITIES {
            assert_eq!(
                index_bytes::<(u64, u32)>(capacity),
                hashbrown_bytes::<u64>(capacity),
                "u64 keys, capacity {capacity}"
            );
            assert_eq!(
                index_bytes::<([u8; 24], u32)>(capacity),
                hashbrown_bytes::<[u8; 24]>(capacity),
                "24-byte keys, capacity {capacity}"
            );
            assert_eq!(
                index_bytes::<(u128, u32)>(capacity),
                hashbrown_bytes::<u128>(capacity),
                "u128 keys, capacity {capacity}"
            );
        }
    }

    #[test]
    fn arena_term_matches_bumpalo_chunk() {
        for arena_bytes_max in [1, 100, 448, 449, 1000, 4000, 4096, 65_472, 65_536, 1 << 20] {
            let bump = bumpalo::Bump::try_with_capacity(arena_bytes_max).expect("small arena");
            assert_eq!(
                arena_chunk_bytes(arena_bytes_max),
                bump.allocated_bytes_including_metadata() as u64,
                "arena_bytes_max {arena_bytes_max}"
            );
        }
    }

    #[test]
    fn arena_of_page_multiple_minus_overhead_wastes_only_the_footer() {
        assert_eq!(arena_chunk_bytes(65_472), 65_472 + BUMP_FOOTER_BYTES as u64);
        assert!(
            arena_chunk_bytes(65_536) > 65_536 + 4000,
            "one byte past a page costs a page"
        );
    }
}
