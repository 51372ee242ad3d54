//! Property tests: random operation sequences against a `std::collections::HashMap` model.
//!
//! The model holds every entry the table should hold (expired ones included until the table
//! reports them removed). After each operation: the entry count matches and stays within
//! `entries_max`, no generation uses more than `arena_bytes_max`, every lookup by key or by any
//! handle ever issued returns exactly the last value and payload written for that entry or
//! nothing, and expired entries are never visible. Each removal the table reports must be an
//! entry the model holds, with the right payload and a cause that matches its deadline.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const KEYS: u64 = 24;
const START_MS: u64 = 1_000;

#[derive(Clone, Debug)]
enum Op {
    Insert {
        key: u64,
        payload_bytes: usize,
        ttl_ms: u64,
        retire: bool,
    },
    Touch {
        key: u64,
        ttl_ms: u64,
    },
    Get {
        key: u64,
    },
    Remove {
        key: u64,
    },
    ReplacePayload {
        key: u64,
        payload_bytes: usize,
    },
    Advance {
        step_ms: u64,
    },
    Wait {
        step_ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
    prop_oneof![
        4 => (key.clone(), 0..80usize, 1..400u64, any::<bool>()).prop_map(
            |(key, payload_bytes, ttl_ms, retire)| Op::Insert { key, payload_bytes, ttl_ms, retire }
        ),
        1 => (key.clone(), 1..400u64).prop_map(|(key, ttl_ms)| Op::Touch { key, ttl_ms }),
        1 => key.clone().prop_map(|key| Op::Get { key }),
        1 => key.clone().prop_map(|key| Op::Remove { key }),
        1 => (key, 0..80usize).prop_map(|(key, payload_bytes)| Op::ReplacePayload { key, payload_bytes }),
        2 => (0..150u64).prop_map(|step_ms| Op::Advance { step_ms }),
        1 => (0..100u64).prop_map(|step_ms| Op::Wait { step_ms }),
    ]
}

#[derive(Debug)]
struct ModelEntry {
    value: u64,
    payload: Vec<u8>,
    expires_at_ms: u64,
    handle: Handle,
}

struct Harness {
    table: EpochTable<u64, u64>,
    model: HashMap<u64, ModelEntry>,
    issued: Vec<Handle>,
    now_ms: u64,
    writes: u64,
}

type Report = (u64, u64, Vec<u8>, RemovalCause);

impl Harness {
    fn payload(&mut self, payload_bytes: usize) -> Vec<u8> {
        self.writes += 1;
        let seed = self.writes;
        (0..payload_bytes)
            .map(|i| (seed.wrapping_mul(31) + i as u64) as u8)
            .collect()
    }

    fn apply_removals(&mut self, removed: Vec<Report>) {
        for (key, value, payload, cause) in removed {
            let entry = self
                .model
                .remove(&key)
                .expect("the table removed an entry it holds");
            assert_eq!(
                (value, &payload),
                (entry.value, &entry.payload),
                "key {key}"
            );
            let expired = entry.expires_at_ms <= self.now_ms;
            assert_eq!(
                cause == RemovalCause::Expired,
                expired,
                "cause of key {key}"
            );
        }
    }

    fn insert(&mut self, key: u64, payload_bytes: usize, ttl_ms: u64, retire: bool) {
        let payload = self.payload(payload_bytes);
        let value = self.writes;
        let expires_at_ms = self.now_ms + ttl_ms;
        let mut removed: Vec<Report> = Vec::new();
        let inserted = if retire {
            let collect = |r: Removed<'_, u64, u64>| {
                removed.push((r.key, r.value, r.payload.to_vec(), r.cause));
            };
            self.table
                .insert_or_retire(key, value, &payload, expires_at_ms, self.now_ms, collect)
        } else {
            self.table.insert(key, value, &payload, expires_at_ms)
        };
        self.apply_removals(removed);
        match inserted {
            Ok(handle) => {
                assert!(payload_bytes <= 64);
                let entry = ModelEntry {
                    value,
                    payload,
                    expires_at_ms,
                    handle,
                };
                assert!(
                    self.model.insert(key, entry).is_none(),
                    "inserted over key {key}"
                );
                self.issued.push(handle);
            }
            Err(refused) => self.check_refusal(key, payload_bytes, refused),
        }
    }

    fn check_refusal(&self, key: u64, payload_bytes: usize, refused: Refused<u64>) {
        assert_eq!(
            refused.value, self.writes,
            "the refused value is handed back"
        );
        match refused.refusal {
            TableRefusal::PayloadTooLarge { .. } => assert!(payload_bytes > 64),
            TableRefusal::DuplicateKey => assert!(self.model.contains_key(&key)),
            TableRefusal::Full { entries_max } => {
                assert_eq!(self.model.len(), entries_max as usize)
            }
            TableRefusal::ArenaFull { .. } => assert!(payload_bytes > 0),
            TableRefusal::UnknownKey => panic!("insert refused with UnknownKey"),
        }
    }

    fn replace_payload(&mut self, key: u64, payload_bytes: usize) {
        let payload = self.payload(payload_bytes);
        match self.table.replace_payload(&key, &payload, self.now_ms) {
            Ok(()) => {
                let entry = self.model.get_mut(&key).expect("replaced a held key");
                assert!(entry.expires_at_ms > self.now_ms, "replaced an expired key");
                entry.payload = payload;
            }
            Err(TableRefusal::UnknownKey) => assert!(self
                .model
                .get(&key)
                .is_none_or(|entry| entry.expires_at_ms <= self.now_ms)),
            Err(TableRefusal::PayloadTooLarge { .. }) => assert!(payload_bytes > 64),
            Err(TableRefusal::ArenaFull { .. }) => assert!(payload_bytes > 0),
            Err(other) => panic!("replace_payload refused with {other:?}"),
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Insert {
                key,
                payload_bytes,
                ttl_ms,
                retire,
            } => self.insert(key, payload_bytes, ttl_ms, retire),
            Op::Touch { key, ttl_ms } => {
                let expires_at_ms = self.now_ms + ttl_ms;
                let touched = self.table.touch(&key, expires_at_ms, self.now_ms);
                let entry = self
                    .model
                    .get_mut(&key)
                    .filter(|e| e.expires_at_ms > self.now_ms);
                assert_eq!(touched, entry.is_some(), "touch of key {key}");
                if let Some(entry) = entry {
                    entry.expires_at_ms = expires_at_ms;
                }
            }
            Op::Get { key } => {
                let expected = self
                    .model
                    .get(&key)
                    .filter(|e| e.expires_at_ms > self.now_ms);
                let found = self.table.get_mut(&key, self.now_ms);
                let found = found.map(|f| (*f.value, f.payload.to_vec(), f.handle));
                let expected = expected.map(|e| (e.value, e.payload.clone(), e.handle));
                assert_eq!(found, expected, "get_mut of key {key}");
            }
            Op::Remove { key } => {
                let removed = self.table.remove(&key);
                assert_eq!(
                    removed,
                    self.model.remove(&key).map(|e| e.value),
                    "remove key {key}"
                );
            }
            Op::ReplacePayload { key, payload_bytes } => self.replace_payload(key, payload_bytes),
            Op::Advance { step_ms } => {
                self.now_ms += step_ms;
                let mut removed: Vec<Report> = Vec::new();
                self.table.advance(self.now_ms, |r| {
                    removed.push((r.key, r.value, r.payload.to_vec(), r.cause));
                });
                self.apply_removals(removed);
            }
            Op::Wait { step_ms } => self.now_ms += step_ms,
        }
    }

    fn check(&self) {
        let limits = *self.table.limits();
        assert_eq!(self.table.len() as usize, self.model.len());
        assert!(self.table.len() <= limits.entries_max);
        for generation in self.table.stats().generations {
            assert!(generation.used_bytes <= limits.arena_bytes_max as u64);
        }
        for key in 0..KEYS {
            let expected = self
                .model
                .get(&key)
                .filter(|e| e.expires_at_ms > self.now_ms);
            let found = self.table.get(&key, self.now_ms);
            match (found, expected) {
                (None, None) => {}
                (Some(found), Some(expected)) => {
                    assert_eq!(*found.value, expected.value, "value of key {key}");
                    assert_eq!(found.payload, &expected.payload[..], "payload of key {key}");
                    assert_eq!(found.handle, expected.handle);
                    assert_eq!(found.expires_at_ms, expected.expires_at_ms);
                }
                (found, expected) => panic!("key {key}: table {found:?}, model {expected:?}"),
            }
        }
        for &handle in &self.issued {
            let expected = self
                .model
                .values()
                .find(|e| e.handle == handle && e.expires_at_ms > self.now_ms);
            let found = self.table.by_handle(handle, self.now_ms);
            assert_eq!(
                found.map(|f| (*f.value, f.payload)),
                expected.map(|e| (e.value, &e.payload[..]))
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn table_matches_model_under_random_operations(
        generations in 2u8..5,
        arena_bytes_max in 64usize..600,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let limits = TableLimits { entries_max: 8, generations, arena_bytes_max, payload_bytes_max: 64 };
        let mut harness = Harness {
            table: EpochTable::new(limits).expect("valid limits"),
            model: HashMap::new(),
            issued: Vec::new(),
            now_ms: START_MS,
            writes: 0,
        };
        for op in ops {
            harness.step(op);
            harness.check();
        }
    }
}
