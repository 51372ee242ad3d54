//! JSON objects as raw members: each member's key decoded, its value the slice of the text it
//! came in, never parsed into a tree. Rewriting an object (a member replaced, dropped or added)
//! is then one pass that copies every other value as it is.
//!
//! A key that repeats counts once, with its last value, in the place of that last one (as a
//! JSON map reads it).

use std::borrow::Cow;

use hashbrown::HashMap;
use serde_json::value::RawValue;
use smallvec::SmallVec;

/// Members of an object up to which repeated keys are found by comparing every pair; larger
/// objects use a hash map, so a request with many members costs linear time.
const PAIRWISE_MEMBERS_MAX: usize = 16;

/// Members in order: each key decoded, each value the raw text it came in.
type MemberList<'a> = SmallVec<[(Cow<'a, str>, &'a RawValue); 8]>;

/// One object's members in order, keys decoded, values raw; repeated keys already resolved.
pub struct Members<'a> {
    members: MemberList<'a>,
}

impl<'a> Members<'a> {
    /// `None` unless `raw` is a JSON object.
    pub fn read(raw: &'a RawValue) -> Option<Members<'a>> {
        let mut members = Members {
            members: split_members(raw.get())?,
        };
        members.resolve_repeats();
        Some(members)
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> + '_ {
        self.members.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// Keeps only the last member of each key, in its place.
    fn resolve_repeats(&mut self) {
        let count = self.members.len();
        let mut keep: SmallVec<[bool; 16]> = SmallVec::from_elem(true, count);
        if count <= PAIRWISE_MEMBERS_MAX {
            for i in 0..count {
                let key = &self.members[i].0;
                keep[i] = !self.members[i + 1..].iter().any(|(k, _)| k == key);
            }
        } else {
            let mut last: HashMap<&str, usize> = HashMap::with_capacity(count);
            for (i, (key, _)) in self.members.iter().enumerate() {
                last.insert(key.as_ref(), i);
            }
            for (i, (key, _)) in self.members.iter().enumerate() {
                keep[i] = last[key.as_ref()] == i;
            }
        }
        if keep.iter().all(|k| *k) {
            return;
        }
        let mut index = 0;
        self.members.retain(|_| {
            index += 1;
            keep[index - 1]
        });
        debug_assert!(self.members.len() < count);
    }
}

/// The members of the object `text`, in order, or `None` when `text` is not an object.
///
/// `text` is known to be valid JSON (it is a [`RawValue`]), so this only finds where members
/// start and end: a string ends at its first unescaped quote, a nested value where its
/// brackets balance, a number or literal at the next delimiter. A key with an escape is decoded
/// by serde_json; any other key is borrowed.
fn split_members(text: &str) -> Option<MemberList<'_>> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    let mut members = SmallVec::new();
    at = skip_space(bytes, at + 1);
    if bytes.get(at) == Some(&b'}') {
        return Some(members);
    }
    loop {
        let key_end = string_end(bytes, at)?;
        let quoted = &text[at..key_end];
        let key = if quoted.contains('\\') {
            Cow::Owned(serde_json::from_str::<String>(quoted).ok()?)
        } else {
            Cow::Borrowed(&quoted[1..quoted.len() - 1])
        };
        at = skip_space(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        let value_start = skip_space(bytes, at + 1);
        let value_end = value_end(bytes, value_start)?;
        members.push((key, valid_raw(&text[value_start..value_end])));
        at = skip_space(bytes, value_end);
        match bytes.get(at) {
            Some(b',') => at = skip_space(bytes, at + 1),
            Some(b'}') => return Some(members),
            _ => return None,
        }
    }
}

/// `text`, a slice of a [`RawValue`] that is itself one whole JSON value, as a `RawValue`.
fn valid_raw(text: &str) -> &RawValue {
    // SAFETY: `RawValue` is `#[repr(transparent)]` over `str` (serde_json casts `&str` to
    // `&RawValue` the same way for the values it borrows), so the cast keeps the pointer and
    // length; and its one invariant, that the text is one valid JSON value, holds because
    // `split_members` only cuts whole member values out of valid JSON.
    unsafe { &*(text as *const str as *const RawValue) }
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The index just past the string that starts (with its quote) at `at`.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let mut i = at + 1;
    loop {
        // Eight bytes at a time up to the word holding the next quote or backslash: strings
        // are most of an MCP request's text.
        while let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if holds_byte(word, b'"') | holds_byte(word, b'\\') {
                break;
            }
            i += 8;
        }
        match bytes.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

/// Whether any of the eight bytes of `word` is `byte` (the classic zero-byte test on
/// `word ^ byte…`: exact, no false positives).
fn holds_byte(word: u64, byte: u8) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

/// The index just past the value that starts at `at`.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let rest = &bytes[at..];
            let len = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(rest.len());
            Some(at + len)
        }
    }
}

/// `,"key":` (no comma before the first member).
pub fn member_key(out: &mut Vec<u8>, key: &str, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    write_json_str(out, key);
    out.push(b':');
}

pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    let plain = text
        .bytes()
        .all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b != 0x7f);
    if plain {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("a string serializes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(text: &str) -> Option<Vec<(String, String)>> {
        let raw = RawValue::from_string(text.to_owned()).unwrap();
        let read = Members::read(&raw)?;
        Some(
            read.iter()
                .map(|(k, v)| (k.to_owned(), v.get().to_owned()))
                .collect(),
        )
    }

    #[test]
    fn members_keep_their_order_and_values_their_text() {
        let got = members(r#"{ "b" : [1, 2] ,"a":{"x": 1.50},"c":"\u0041"}"#).unwrap();
        let want = [
            ("b", "[1, 2]"),
            ("a", r#"{"x": 1.50}"#),
            ("c", r#""\u0041""#),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(members("[1]").is_none());
        assert!(members(r#""text""#).is_none());
    }

    #[test]
    fn values_end_at_their_own_delimiters_and_keys_are_decoded() {
        let text =
            r#"{"s":"a\"}{[,","n":-1.5e+3 ,"t":true,"o":{"k":["]",{"}":1}]},"\u00e9\"":null}"#;
        let got = members(text).unwrap();
        let want = [
            ("s", r#""a\"}{[,""#),
            ("n", "-1.5e+3"),
            ("t", "true"),
            ("o", r#"{"k":["]",{"}":1}]}"#),
            ("\u{e9}\"", "null"),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(members("{ }").unwrap(), []);
    }

    #[test]
    fn a_word_holds_a_byte_exactly_when_one_of_its_eight_is_it() {
        for position in 0..8 {
            for other in [0u8, b'!', b'#', 0x80, 0xa2, 0xff] {
                let mut bytes = [other; 8];
                assert!(!holds_byte(u64::from_le_bytes(bytes), b'"'), "{other:#x}");
                bytes[position] = b'"';
                assert!(holds_byte(u64::from_le_bytes(bytes), b'"'), "{position}");
            }
        }
    }

    #[test]
    fn a_member_value_is_the_very_slice_of_the_text() {
        let raw = RawValue::from_string(r#"{"a":[1, 2]}"#.to_owned()).unwrap();
        let read = Members::read(&raw).unwrap();
        let value = read.get("a").unwrap();
        assert_eq!(value.get(), "[1, 2]");
        assert_eq!(value.get().as_ptr(), raw.get()[5..].as_ptr());
        let reparsed: serde_json::Value = serde_json::from_str(value.get()).unwrap();
        assert_eq!(reparsed, serde_json::json!([1, 2]));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            // Binary fractions: they survive serde_json's text round trip exactly.
            (any::<i32>(), 0..8u32)
                .prop_map(|(m, e)| Value::from(f64::from(m) / f64::from(1 << e))),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn members_agree_with_serde_json(
            object in prop::collection::btree_map(".*", json_value(), 0..8),
            pretty in any::<bool>(),
        ) {
            let object = serde_json::Value::Object(object.into_iter().collect());
            let text = if pretty {
                serde_json::to_string_pretty(&object).unwrap()
            } else {
                serde_json::to_string(&object).unwrap()
            };
            let got = members(&text).expect("an object");
            let mut read = serde_json::Map::new();
            for (key, value) in got {
                read.insert(key, serde_json::from_str(&value).expect("a whole value"));
            }
            prop_assert_eq!(serde_json::Value::Object(read), object);
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_in_its_last_place() {
        let got = members(r#"{"a":1,"b":2,"a":3}"#).unwrap();
        assert_eq!(got, [("b".into(), "2".into()), ("a".into(), "3".into())]);
    }

    #[test]
    fn strings_are_written_escaped_only_when_they_need_it() {
        let mut out = Vec::new();
        let mut first = true;
        member_key(&mut out, "plain", &mut first);
        write_json_str(&mut out, "tab\there \"q\"");
        member_key(&mut out, "k\u{1}", &mut first);
        out.extend_from_slice(b"1");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#""plain":"tab\there \"q\"","k\u0001":1"#
        );
    }
}
