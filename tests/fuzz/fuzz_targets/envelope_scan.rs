//! Feeds arbitrary bytes to the JSON-RPC envelope parser and to the object scanner under it, at
//! the default `limits.json_depth_max` and at the top of its range.
//!
//! Asserts: no panic; whenever the scan accepts a text, serde_json reads it into a `Value`
//! too (so its own depth limit is never reached), and the members the scan returns are that
//! object's members, a repeated key counting with its last value, and [`scan::nests_deeper`]
//! does not call it too deep; whenever `parse` accepts a UTF-8 message, serde_json reads it
//! too. A number past f64's range is the one exception: serde_json refuses it as a `Value`
//! but passes it over as raw text, as the scan does. Whenever the scan refuses a text for its
//! depth that serde_json reads, it names the first member too deep, and the members its skim
//! found after that one are the scalar-valued members that follow it.
//!
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir tests/fuzz envelope_scan
//! tests/fuzz/corpus/envelope_scan tests/fuzz/seeds/envelope_scan -- -max_total_time=60`.

#![no_main]

use std::collections::BTreeMap;
use std::fmt;

use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;
use shardgate::config::bounds::JSON_DEPTH_MAX;
use shardgate::wire::jsonrpc;
use shardgate::wire::members::Members;
use shardgate::wire::scan;

const DEPTHS: [u32; 2] = [JSON_DEPTH_MAX.default as u32, JSON_DEPTH_MAX.max as u32];

/// A `Value` refused only for a number past f64's range. JSON sets numbers no range, and
/// serde_json, like the scan and the envelope, passes such a number over as raw text.
fn past_f64(error: &serde_json::Error) -> bool {
    error.to_string().starts_with("number out of range")
}

/// An object's members in order, as serde_json reads them, each value raw.
struct Ordered<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Ordered<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> Visitor<'de> for InOrder {
            type Value = Ordered<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Ordered(members))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// A text the scan refused for its depth, when serde_json reads it: the deep member is the
/// first whose value nests deeper than the object leaves room for, and the skim found after it
/// exactly the scalar-valued members that follow, in order.
fn check_deep(text: &str, depth_max: u32, deep: &scan::DeepMember<'_>) {
    let Ok(Ordered(members)) = serde_json::from_str::<Ordered<'_>>(text) else {
        return;
    };
    let value_depth_max = depth_max.min(scan::DEPTH_CEILING) - 1;
    let too_deep = |(_, value): &(String, &RawValue)| {
        scan::nests_deeper(value.get().as_bytes(), value_depth_max)
    };
    let Some(at) = members.iter().position(too_deep) else {
        panic!("refused for depth at {depth_max}, yet no member nests too deep");
    };
    assert_eq!(
        members[at].0, deep.key,
        "a different member is the deep one"
    );
    let scalars: Vec<(&str, &str)> = members[at + 1..]
        .iter()
        .filter(|(_, value)| !value.get().starts_with(['{', '[']))
        .map(|(key, value)| (key.as_str(), value.get()))
        .collect();
    let after: Vec<(&str, &str)> = deep
        .after
        .iter()
        .map(|(key, value)| (key.as_ref(), value.get()))
        .collect();
    assert_eq!(after, scalars, "the skim's members after {:?}", deep.key);
}

fn check_scan(text: &str, depth_max: u32) {
    let members = match scan::object_members(text, depth_max) {
        Ok(members) => members,
        Err(scan::Refusal::TooDeep(deep)) => return check_deep(text, depth_max, &deep),
        Err(scan::Refusal::Invalid) => return,
    };
    assert!(
        !scan::nests_deeper(text.as_bytes(), depth_max),
        "nests_deeper disagrees with the scan's depth at {depth_max}"
    );
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) if past_f64(&e) => {
            assert!(
                serde_json::from_str::<&RawValue>(text).is_ok(),
                "scan accepted a number serde_json does not pass over ({e})"
            );
            return;
        }
        Err(e) => panic!("scan accepted what serde_json refuses ({e}) at depth {depth_max}"),
    };
    let Value::Object(object) = value else {
        panic!("scan accepted a text that is not an object");
    };
    let mut last_wins = BTreeMap::new();
    for (key, raw) in &members {
        let member: Value = serde_json::from_str(raw.get()).expect("a member serde_json reads");
        last_wins.insert(key.to_string(), member);
    }
    let serde_members: BTreeMap<String, Value> = object.into_iter().collect();
    assert_eq!(
        last_wins, serde_members,
        "scan members differ from serde_json's"
    );

    let resolved = Members::read_text(text).expect("Members reads what the scan accepts");
    let resolved: BTreeMap<String, Value> = resolved
        .iter()
        .map(|(k, v)| (k.to_owned(), serde_json::from_str(v.get()).expect("member")))
        .collect();
    assert_eq!(
        resolved, last_wins,
        "Members resolved repeats unlike a JSON map"
    );
}

fuzz_target!(|data: &[u8]| {
    for depth_max in DEPTHS {
        // Bytes that are not UTF-8 are left to serde_json's envelope, which (as a unit test
        // beside `parse` pins) skips members it ignores without reading them as text.
        let Ok(text) = std::str::from_utf8(data) else {
            let _ = jsonrpc::parse(data, depth_max);
            continue;
        };
        check_scan(text, depth_max);
        if jsonrpc::parse(data, depth_max).is_ok() {
            match serde_json::from_slice::<Value>(data) {
                Err(e) if !past_f64(&e) => {
                    panic!("parse accepted what serde_json refuses ({e}) at depth {depth_max}")
                }
                _ => {}
            }
        }
    }
});
