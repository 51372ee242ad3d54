//! Per-entry costs of `EpochTable` at 10_000 entries with 64-byte payloads.
//!
//! `insert`, `get_hit` and `touch` report one operation per iteration. The two `advance` benches
//! report one retire of a whole generation of 10_000 entries per iteration (divide by 10_000 for
//! the cost per entry): all live (each payload copied into the current generation), or all
//! expired (each entry removed and reported). Run with `cargo bench --bench epoch`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use shardgate::epoch::{EpochTable, Removed, TableLimits};

const ENTRIES: u32 = 10_000;
const PAYLOAD: [u8; 64] = [0x5a; 64];

fn limits() -> TableLimits {
    TableLimits {
        entries_max: ENTRIES,
        generations: 2,
        arena_bytes_max: ENTRIES as usize * PAYLOAD.len(),
        payload_bytes_max: PAYLOAD.len() as u32,
    }
}

fn ignore(removed: Removed<'_, u64, u64>) {
    black_box(removed);
}

/// A table whose current generation holds `ENTRIES` entries, live until `expires_at_ms`.
fn filled(expires_at_ms: u64) -> EpochTable<u64, u64> {
    let mut table = EpochTable::new(limits()).expect("bench limits are valid");
    for key in 0..u64::from(ENTRIES) {
        table
            .insert(key, key, &PAYLOAD, expires_at_ms)
            .expect("room for every entry");
    }
    table
}

/// Times `ENTRIES` inserts into an emptied table, emptying it again (untimed) by expiry.
fn bench_insert(c: &mut Criterion) {
    c.bench_function("insert", |b| {
        b.iter_custom(|iters| {
            let mut table: EpochTable<u64, u64> = EpochTable::new(limits()).expect("valid");
            let (mut now, mut key, mut elapsed) = (0u64, 0u64, Duration::ZERO);
            let mut remaining = iters;
            while remaining > 0 {
                let batch = remaining.min(u64::from(ENTRIES));
                let start = Instant::now();
                for _ in 0..batch {
                    let inserted = table.insert(key, key, black_box(&PAYLOAD), now + 1);
                    black_box(inserted.is_ok());
                    key += 1;
                }
                elapsed += start.elapsed();
                remaining -= batch;
                now += 1;
                table.advance(now, ignore);
                table.advance(now, ignore);
                assert!(table.is_empty());
            }
            elapsed
        })
    });
}

fn bench_get_hit(c: &mut Criterion) {
    let table = filled(u64::MAX);
    let mut key = 0u64;
    c.bench_function("get_hit", |b| {
        b.iter(|| {
            key = (key + 1) % u64::from(ENTRIES);
            black_box(table.get(black_box(&key), 0).map(|e| e.payload.len()))
        })
    });
}

fn bench_touch(c: &mut Criterion) {
    let mut table = filled(u64::MAX);
    let mut key = 0u64;
    c.bench_function("touch", |b| {
        b.iter(|| {
            key = (key + 1) % u64::from(ENTRIES);
            black_box(table.touch(black_box(&key), u64::MAX - 1, 0))
        })
    });
}

/// With two generations, every advance after the first copies all live entries once.
fn bench_advance_live(c: &mut Criterion) {
    let mut table = filled(u64::MAX);
    table.advance(0, ignore);
    c.bench_function("advance_10k_live", |b| {
        b.iter(|| table.advance(0, |r| panic!("live entry {} removed", r.key)))
    });
}

/// Times the retire of a generation of `ENTRIES` expired entries, refilling it untimed.
fn bench_advance_expired(c: &mut Criterion) {
    c.bench_function("advance_10k_expired", |b| {
        b.iter_custom(|iters| {
            let mut table: EpochTable<u64, u64> = EpochTable::new(limits()).expect("valid");
            let (mut now, mut elapsed) = (0u64, Duration::ZERO);
            for _ in 0..iters {
                for key in 0..u64::from(ENTRIES) {
                    table
                        .insert(key, key, &PAYLOAD, now + 1)
                        .expect("emptied table");
                }
                table.advance(now, ignore);
                now += 1;
                let start = Instant::now();
                table.advance(now, ignore);
                elapsed += start.elapsed();
                assert!(table.is_empty());
            }
            elapsed
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_insert, bench_get_hit, bench_touch, bench_advance_live, bench_advance_expired
}
criterion_main!(benches);
