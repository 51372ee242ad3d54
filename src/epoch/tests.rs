//! Unit tests: one rule of `EpochTable` each.

use std::cell::Cell;
use std::rc::Rc;

use super::*;

fn limits(entries_max: u32, generations: u8, arena_bytes_max: usize) -> TableLimits {
    TableLimits {
        entries_max,
        generations,
        arena_bytes_max,
        payload_bytes_max: 64,
    }
}

fn table(entries_max: u32, generations: u8, arena_bytes_max: usize) -> EpochTable<u64, u64> {
    EpochTable::new(limits(entries_max, generations, arena_bytes_max)).expect("valid limits")
}

/// Collects what the table removes on its own.
fn collect(
    removed: &mut Vec<(u64, u64, Vec<u8>, RemovalCause)>,
) -> impl FnMut(Removed<'_, u64, u64>) + '_ {
    |r| removed.push((r.key, r.value, r.payload.to_vec(), r.cause))
}

fn ignore(_: Removed<'_, u64, u64>) {}

#[test]
fn new_refuses_invalid_limits() {
    let refused = |limits| EpochTable::<u64, u64>::new(limits).err();
    assert_eq!(
        refused(limits(0, 2, 1024)),
        Some(TableError::EntriesMax { entries_max: 0 })
    );
    assert_eq!(
        refused(limits(4, 1, 1024)),
        Some(TableError::Generations { generations: 1 })
    );
    assert_eq!(
        refused(limits(4, 2, 63)),
        Some(TableError::PayloadBytesMax {
            payload_bytes_max: 64,
            arena_bytes_max: 63
        })
    );
    assert_eq!(
        refused(limits(4, 2, (1 << 32) + 1)),
        Some(TableError::ArenaBytesMax {
            arena_bytes_max: (1 << 32) + 1
        })
    );
    assert_eq!(
        TableError::Generations { generations: 1 }.to_string(),
        "generations 1 is below the minimum 2"
    );
    assert!(
        refused(limits(1, 2, 64)).is_none(),
        "the edge: payload_bytes_max == arena_bytes_max"
    );
}

#[test]
fn insert_refuses_at_entries_max() {
    let mut table = table(2, 2, 1024);
    table.insert(1, 10, b"a", 100).expect("first");
    table.insert(2, 20, b"b", 100).expect("second");
    let refused = table.insert(3, 30, b"c", 100).expect_err("table full");
    assert_eq!(refused.refusal, TableRefusal::Full { entries_max: 2 });
    assert_eq!(refused.value, 30, "the value is handed back");
    assert_eq!(table.len(), 2);
    assert_eq!(table.stats().refusals, 1);
}

#[test]
fn insert_refuses_duplicate_key_even_when_expired() {
    let mut table = table(4, 2, 1024);
    table.insert(1, 10, b"a", 100).expect("first");
    let refused = table.insert(1, 11, b"b", 300).expect_err("duplicate");
    assert_eq!(refused.refusal, TableRefusal::DuplicateKey);
    assert!(table.get(&1, 200).is_none(), "expired at 200");
    let refused = table
        .insert(1, 12, b"c", 300)
        .expect_err("expired but not retired");
    assert_eq!(refused.refusal, TableRefusal::DuplicateKey);
}

#[test]
fn insert_refuses_payload_above_payload_bytes_max() {
    let mut table = table(4, 2, 1024);
    let refused = table.insert(1, 10, &[0; 65], 100).expect_err("too large");
    assert_eq!(
        refused.refusal,
        TableRefusal::PayloadTooLarge {
            payload_bytes: 65,
            payload_bytes_max: 64
        }
    );
    table.insert(1, 10, &[0; 64], 100).expect("the edge fits");
}

#[test]
fn insert_refuses_when_current_arena_full() {
    let mut table = table(8, 2, 128);
    table.insert(1, 10, &[1; 64], 100).expect("64 of 128");
    table.insert(2, 20, &[2; 64], 100).expect("128 of 128");
    let refused = table.insert(3, 30, &[3; 1], 100).expect_err("arena full");
    assert_eq!(
        refused.refusal,
        TableRefusal::ArenaFull {
            payload_bytes: 1,
            arena_bytes_max: 128
        }
    );
    table
        .insert(3, 30, b"", 100)
        .expect("an empty payload takes no arena bytes");
}

#[test]
fn expired_entries_are_invisible_before_retire() {
    let mut table = table(4, 2, 1024);
    let handle = table.insert(1, 10, b"a", 100).expect("insert");
    assert_eq!(table.get(&1, 99).map(|e| *e.value), Some(10));
    assert!(
        table.get(&1, 100).is_none(),
        "expires_at_ms <= now_ms is expired"
    );
    assert!(table.get_mut(&1, 100).is_none());
    assert!(table.by_handle(handle, 100).is_none());
    assert!(
        !table.touch(&1, 500, 100),
        "an expired entry cannot be revived"
    );
    assert_eq!(table.len(), 1, "still held until its generation retires");
}

#[test]
fn advance_reports_expired_entries_with_their_payload() {
    let mut table = table(4, 2, 1024);
    table.insert(1, 10, b"gone", 100).expect("insert");
    let mut removed = Vec::new();
    table.advance(200, collect(&mut removed));
    assert!(
        removed.is_empty(),
        "the first advance retires the never-used generation"
    );
    table.advance(200, collect(&mut removed));
    assert_eq!(
        removed,
        vec![(1, 10, b"gone".to_vec(), RemovalCause::Expired)]
    );
    assert!(table.is_empty());
    assert_eq!(table.stats().expired, 1);
}

#[test]
fn advance_reclaims_arena_bytes_of_expired_entries() {
    let mut table = table(16, 2, 256);
    for key in 0..4 {
        table
            .insert(key, key, &[7; 64], 100)
            .expect("fills the arena");
    }
    assert_eq!(table.stats().generations[0].used_bytes, 256);
    table.advance(200, ignore);
    table.advance(200, ignore);
    let stats = table.stats();
    assert_eq!(stats.entries, 0);
    assert_eq!(
        stats.generations.iter().map(|g| g.used_bytes).sum::<u64>(),
        0
    );
    for key in 10..14 {
        table
            .insert(key, key, &[8; 64], 300)
            .expect("the reclaimed bytes are usable again");
    }
}

#[test]
fn live_entries_survive_a_full_ring_of_advances() {
    let mut table = table(16, 3, 1024);
    for key in 0..8 {
        table
            .insert(key, key * 10, &[key as u8; 40], u64::MAX)
            .expect("insert");
    }
    for round in 0..10 {
        table.advance(round, |r| panic!("live entry {} removed", r.key));
    }
    for key in 0..8 {
        let entry = table.get(&key, 10).expect("still live");
        assert_eq!(*entry.value, key * 10);
        assert_eq!(entry.payload, &[key as u8; 40][..]);
    }
    assert_eq!(table.epoch(), 10);
}

#[test]
fn advance_evicts_live_entry_whose_payload_does_not_fit() {
    let mut table = table(8, 2, 128);
    table
        .insert(1, 10, &[1; 64], u64::MAX)
        .expect("first generation");
    table.advance(0, ignore);
    table
        .insert(2, 20, &[2; 64], u64::MAX)
        .expect("second generation, 64 of 128");
    table
        .insert(3, 30, &[3; 64], u64::MAX)
        .expect("second generation, 128 of 128");
    let mut removed = Vec::new();
    table.advance(0, collect(&mut removed));
    assert_eq!(removed, vec![(1, 10, vec![1; 64], RemovalCause::Evicted)]);
    assert_eq!(table.stats().evictions, 1);
    assert!(table.get(&2, 0).is_some());
}

#[test]
fn stale_handle_returns_none_after_slot_reuse() {
    let mut table = table(1, 2, 1024);
    let old = table.insert(1, 10, b"old", 100).expect("insert");
    assert_eq!(table.remove(&1), Some(10));
    assert!(table.by_handle(old, 0).is_none(), "removed");
    let new = table
        .insert(2, 20, b"new", 100)
        .expect("reuses the only slot");
    assert_eq!(new.slot, old.slot);
    assert_ne!(new.stamp, old.stamp);
    assert!(
        table.by_handle(old, 0).is_none(),
        "never another entry's data"
    );
    assert_eq!(
        table.by_handle(new, 0).map(|e| e.payload),
        Some(&b"new"[..])
    );
    let forged = Handle { slot: 5, stamp: 0 };
    assert!(table.by_handle(forged, 0).is_none(), "slot out of range");
}

#[test]
fn stale_handle_returns_none_after_expiry_retire() {
    let mut table = table(1, 2, 1024);
    let old = table.insert(1, 10, b"old", 100).expect("insert");
    table.advance(200, ignore);
    table.advance(200, ignore);
    let new = table
        .insert(1, 11, b"new", 300)
        .expect("slot and key reused");
    assert!(table.by_handle(old, 0).is_none());
    assert_eq!(table.by_handle(new, 0).map(|e| *e.value), Some(11));
}

#[test]
fn touch_extends_the_deadline() {
    let mut table = table(4, 2, 1024);
    table.insert(1, 10, b"a", 100).expect("insert");
    assert!(table.touch(&1, 500, 50));
    assert_eq!(table.get(&1, 400).map(|e| e.expires_at_ms), Some(500));
    table.advance(400, ignore);
    table.advance(400, |r| panic!("touched entry {} removed", r.key));
    assert!(table.get(&1, 499).is_some());
    assert!(!table.touch(&2, 500, 50), "absent");
}

#[test]
fn get_mut_changes_the_value_in_place() {
    let mut table = table(4, 2, 1024);
    table.insert(1, 10, b"a", 100).expect("insert");
    let entry = table.get_mut(&1, 0).expect("live");
    assert_eq!(entry.payload, b"a");
    *entry.value += 5;
    assert_eq!(table.get(&1, 0).map(|e| *e.value), Some(15));
}

#[test]
fn replace_payload_moves_payload_to_the_current_generation() {
    let mut table = table(4, 2, 128);
    table
        .insert(1, 10, &[1; 64], u64::MAX)
        .expect("first generation");
    table
        .insert(2, 20, &[2; 64], u64::MAX)
        .expect("first generation full");
    table.advance(0, ignore);
    table
        .replace_payload(&1, b"fresh", 0)
        .expect("written in the second generation");
    let mut removed = Vec::new();
    table.advance(0, collect(&mut removed));
    assert!(
        removed.is_empty(),
        "key 2 evacuated, key 1 already current: {removed:?}"
    );
    assert_eq!(table.get(&1, 0).map(|e| e.payload), Some(&b"fresh"[..]));
    assert_eq!(table.get(&2, 0).map(|e| e.payload), Some(&[2; 64][..]));
}

#[test]
fn replace_payload_refuses_unknown_large_and_unfitting() {
    let mut table = table(4, 2, 128);
    table.insert(1, 10, &[1; 64], 100).expect("insert");
    assert_eq!(
        table.replace_payload(&2, b"x", 0),
        Err(TableRefusal::UnknownKey)
    );
    assert_eq!(
        table.replace_payload(&1, b"x", 100),
        Err(TableRefusal::UnknownKey)
    );
    assert_eq!(
        table.replace_payload(&1, &[0; 65], 0),
        Err(TableRefusal::PayloadTooLarge {
            payload_bytes: 65,
            payload_bytes_max: 64
        })
    );
    table.replace_payload(&1, &[2; 64], 0).expect("128 of 128");
    assert_eq!(
        table.replace_payload(&1, &[3; 1], 0),
        Err(TableRefusal::ArenaFull {
            payload_bytes: 1,
            arena_bytes_max: 128
        })
    );
    assert_eq!(
        table.get(&1, 0).map(|e| e.payload),
        Some(&[2; 64][..]),
        "unchanged on refusal"
    );
    assert_eq!(table.stats().refusals, 4);
}

#[test]
fn early_retire_frees_room_for_insert_when_oldest_expired() {
    let mut table = table(2, 2, 1024);
    table.insert(1, 10, b"a", 100).expect("insert");
    table.advance(50, ignore);
    table.insert(2, 20, b"b", 1000).expect("insert");
    let mut removed = Vec::new();
    let handle = table.insert_or_retire(3, 30, b"c", 1000, 200, collect(&mut removed));
    assert!(
        handle.is_ok(),
        "the oldest generation held an expired entry"
    );
    assert_eq!(removed, vec![(1, 10, b"a".to_vec(), RemovalCause::Expired)]);
    let stats = table.stats();
    assert_eq!(
        (stats.early_retires, stats.refusals, stats.entries),
        (1, 0, 2)
    );
}

#[test]
fn early_retire_refuses_when_oldest_is_live() {
    let mut table = table(2, 2, 1024);
    table.insert(1, 10, b"a", 1000).expect("insert");
    table.advance(50, ignore);
    table.insert(2, 20, b"b", 1000).expect("insert");
    let refused = table
        .insert_or_retire(3, 30, b"c", 1000, 200, |r| {
            panic!("live entry {} removed", r.key)
        })
        .expect_err("nothing expired");
    assert_eq!(
        (refused.refusal, refused.value),
        (TableRefusal::Full { entries_max: 2 }, 30)
    );
    let stats = table.stats();
    assert_eq!(
        (stats.early_retires, stats.refusals, stats.entries),
        (1, 1, 2)
    );
}

#[test]
fn early_retire_frees_arena_room_for_insert() {
    let mut table = table(8, 2, 128);
    table.insert(1, 10, &[1; 64], 100).expect("insert");
    table.insert(2, 20, &[2; 64], 100).expect("arena full");
    let handle = table.insert_or_retire(3, 30, &[3; 64], 1000, 0, ignore);
    assert!(
        handle.is_ok(),
        "the retired, never-used generation becomes current"
    );
    assert_eq!(table.len(), 3);
}

#[test]
fn insert_or_retire_replaces_an_expired_key() {
    let mut table = table(4, 2, 1024);
    table.insert(1, 10, b"old", 100).expect("insert");
    let mut removed = Vec::new();
    table
        .insert_or_retire(1, 11, b"new", 300, 100, collect(&mut removed))
        .expect("replaced");
    assert_eq!(
        removed,
        vec![(1, 10, b"old".to_vec(), RemovalCause::Expired)]
    );
    assert_eq!(
        table.get(&1, 200).map(|e| (*e.value, e.payload)),
        Some((11, &b"new"[..]))
    );
    let refused = table
        .insert_or_retire(1, 12, b"x", 300, 200, ignore)
        .expect_err("live key");
    assert_eq!(refused.refusal, TableRefusal::DuplicateKey);
}

#[test]
fn remove_returns_the_value_and_frees_the_slot() {
    let mut table = table(1, 2, 1024);
    table.insert(1, 10, b"a", 100).expect("insert");
    assert_eq!(table.remove(&1), Some(10));
    assert_eq!(table.remove(&1), None);
    assert!(table.get(&1, 0).is_none());
    table
        .insert(2, 20, b"b", 100)
        .expect("the slot is free again");
}

#[test]
fn values_are_dropped_exactly_once() {
    struct Counted(Rc<Cell<u32>>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    let mut table: EpochTable<u64, Counted> =
        EpochTable::new(limits(4, 2, 1024)).expect("valid limits");
    for key in 0..4 {
        table
            .insert(key, Counted(drops.clone()), b"v", 100 + key)
            .expect("insert");
    }
    drop(
        table
            .insert(9, Counted(drops.clone()), b"v", 100)
            .expect_err("full"),
    );
    assert_eq!(drops.get(), 1, "the refused value");
    drop(table.remove(&0));
    assert_eq!(drops.get(), 2, "the removed value");
    table.advance(1000, |_| ());
    table.advance(1000, |_| ());
    assert_eq!(drops.get(), 5, "the expired values, once each");
    table
        .insert(5, Counted(drops.clone()), b"v", u64::MAX)
        .expect("insert");
    drop(table);
    assert_eq!(drops.get(), 6, "the table drops what it holds");
}

#[test]
fn allocated_bytes_stay_bounded_over_many_rings() {
    // Fill the table and its arenas every round, advance, and check that no arena ever holds
    // more than the chunk reserved at construction, through 100 full trips round the ring.
    let mut table = table(64, 3, 4096);
    let chunk_bytes = table.stats().generations[0].allocated_bytes;
    assert!(chunk_bytes >= 4096);
    let (mut now, mut inserted) = (0, 0u64);
    for round in 0..300u64 {
        now += 10;
        for key in 0..64 {
            let payload = [round as u8; 64];
            let key = round * 64 + key;
            inserted += u64::from(
                table
                    .insert_or_retire(key, key, &payload, now + 25, now, ignore)
                    .is_ok(),
            );
        }
        table.advance(now, ignore);
        for generation in table.stats().generations {
            assert!(generation.used_bytes <= 4096);
            assert_eq!(
                generation.allocated_bytes, chunk_bytes,
                "arena of generation {}",
                generation.generation
            );
        }
    }
    let stats = table.stats();
    assert_eq!(
        inserted,
        stats.expired + stats.evictions + u64::from(stats.entries)
    );
    assert_eq!(inserted + stats.refusals, 300 * 64);
    assert!(
        stats.expired > 5_000 && stats.early_retires > 0,
        "{stats:?}"
    );
}

#[test]
fn index_never_grows_under_churn_at_entries_max() {
    let mut table = table(100, 2, 1024);
    for key in 0..99 {
        table.insert(key, key, b"", u64::MAX).expect("insert");
    }
    for key in 99..100_000 {
        table
            .insert(key, key, b"", u64::MAX)
            .expect("one slot free before each insert");
        assert_eq!(table.remove(&(key - 99)), Some(key - 99));
    }
    assert_eq!(table.len(), 99);
}

#[test]
fn key_list_churn_in_one_epoch_never_refuses() {
    let mut table = table(4, 2, 1 << 20);
    for key in 0..10_000 {
        table
            .insert(key, key, b"x", u64::MAX)
            .expect("churn never fills the key list");
        assert_eq!(table.remove(&key), Some(key));
    }
    assert!(
        table.stats().generations[0].listed <= 8,
        "compacted to 2 × entries_max"
    );
}

#[test]
fn stats_list_generations_oldest_first() {
    let mut table = table(4, 3, 1024);
    assert_eq!(table.stats().generations.len(), 1);
    table.insert(1, 10, b"abc", u64::MAX).expect("insert");
    table.advance(0, ignore);
    table.advance(0, ignore);
    let generations: Vec<(u64, u32, u64)> = table
        .stats()
        .generations
        .iter()
        .map(|g| (g.generation, g.listed, g.used_bytes))
        .collect();
    assert_eq!(generations, vec![(0, 1, 3), (1, 0, 0), (2, 0, 0)]);
    table.advance(0, ignore);
    let stats = table.stats();
    assert_eq!(stats.generations[0].generation, 1);
    assert_eq!(
        (stats.generations[1].listed, stats.generations[1].used_bytes),
        (1, 3),
        "evacuated"
    );
}

#[test]
fn memory_ceiling_covers_every_reserved_structure() {
    let limits = limits(1000, 4, 65_472);
    let ceiling = EpochTable::<u64, u64>::memory_ceiling(&limits);
    let mut table = EpochTable::<u64, u64>::new(limits).expect("valid limits");
    for _ in 0..4 {
        table.advance(0, ignore);
    }
    assert_eq!(ceiling.index_bytes, table.index_allocation_bytes() as u64);
    assert_eq!(
        ceiling.slab_bytes,
        1000 * std::mem::size_of::<table::Slot<u64, u64>>() as u64
    );
    assert_eq!(ceiling.key_lists_bytes, 4 * 2000 * 8);
    assert_eq!(ceiling.arenas_bytes, 4 * 65_472);
    let arena_chunks: u64 = table
        .stats()
        .generations
        .iter()
        .map(|g| g.allocated_bytes)
        .sum();
    assert!(arena_chunks >= ceiling.arenas_bytes);
    assert!(arena_chunks < ceiling.arenas_bytes + ceiling.arena_overhead_bytes);
    assert_eq!(
        ceiling.total(),
        ceiling.slab_bytes
            + ceiling.index_bytes
            + ceiling.key_lists_bytes
            + ceiling.arenas_bytes
            + ceiling.arena_overhead_bytes
    );
}
