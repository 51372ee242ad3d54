//! One validating pass over a JSON object that finds its top-level members.
//!
//! Every message the gateway receives is read as an object of raw members (the JSON-RPC
//! envelope, then `params`, `_meta` or a `result`). serde_json would do it with a validating
//! pass per member value; this scanner checks the whole text once, by the same rules, and cuts
//! each member's value out of it as a [`RawValue`]. Text it does not accept gets `None`:
//! callers then ask serde_json, which names what is wrong. So the scanner only has to be right about what it
//! accepts, and a differential test holds it to serde_json on that.
//!
//! The rules, as serde_json applies them: whitespace is space, tab, line feed and carriage
//! return; a string holds no byte below 0x20, and its escapes are `\" \\ \/ \b \f \n \r \t`
//! and `\u` with four hex digits (surrogates are not paired here, as serde_json does not pair
//! them in text it only passes on); a number is `-? (0 | [1-9][0-9]*) (. [0-9]+)?
//! ([eE] [+-]? [0-9]+)?`; the literals are `true`, `false` and `null`; nothing but whitespace
//! follows the value. The text is a `&str`, so it is UTF-8 already.

use std::borrow::Cow;

use serde_json::value::RawValue;
use smallvec::SmallVec;

/// Members in order: each key decoded, each value the raw text it came in.
pub type MemberList<'a> = SmallVec<[(Cow<'a, str>, &'a RawValue); 8]>;

/// The members of `text` when it is one valid JSON object, in order, repeated keys included;
/// `None` for anything else (see the module doc). A key with an escape is decoded by
/// serde_json; any other key is borrowed.
pub fn object_members(text: &str) -> Option<MemberList<'_>> {
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    let mut members = SmallVec::new();
    at = skip_space(bytes, at + 1);
    if bytes.get(at) != Some(&b'}') {
        loop {
            let (key, value_start) = key_and_colon(text, at)?;
            let value_end = value_end(bytes, value_start)?;
            members.push((key, valid_raw(&text[value_start..value_end])));
            at = skip_space(bytes, value_end);
            match bytes.get(at) {
                Some(b',') => at = skip_space(bytes, at + 1),
                Some(b'}') => break,
                _ => return None,
            }
        }
    }
    (skip_space(bytes, at + 1) == bytes.len()).then_some(members)
}

/// `text`, one whole valid JSON value, as a `RawValue`.
fn valid_raw(text: &str) -> &RawValue {
    // SAFETY: `RawValue` is `#[repr(transparent)]` over `str` (serde_json casts `&str` to
    // `&RawValue` the same way for the values it borrows), so the cast keeps the pointer and
    // the length. `RawValue`'s own rule, that its text is one valid JSON value, is not a
    // memory-safety matter; it holds because the scanner only cuts out values it validated.
    unsafe { &*(text as *const str as *const RawValue) }
}

/// The key starting at `at` (at its quote) and where the value after its colon starts.
fn key_and_colon(text: &str, at: usize) -> Option<(Cow<'_, str>, usize)> {
    let bytes = text.as_bytes();
    let (end, escaped) = string_span(bytes, at)?;
    let quoted = &text[at..end];
    let key = if escaped {
        Cow::Owned(serde_json::from_str::<String>(quoted).ok()?)
    } else {
        Cow::Borrowed(&quoted[1..quoted.len() - 1])
    };
    let colon = skip_space(bytes, end);
    if bytes.get(colon) != Some(&b':') {
        return None;
    }
    Some((key, skip_space(bytes, colon + 1)))
}

/// The index just past the valid value starting at `at`, or `None`. Nesting is not limited
/// (serde_json does not limit it in values it passes over either); the text's length is.
fn value_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let mut open = Containers::default();
    loop {
        // A value starts at `at`.
        match *bytes.get(at)? {
            b'"' => at = string_end(bytes, at)?,
            bracket @ (b'{' | b'[') => {
                let object = bracket == b'{';
                at = skip_space(bytes, at + 1);
                if bytes.get(at) == Some(if object { &b'}' } else { &b']' }) {
                    at += 1;
                } else {
                    open.push(object);
                    if object {
                        at = key_and_colon_end(bytes, at)?;
                    }
                    continue;
                }
            }
            b't' => at = literal_end(bytes, at, b"true")?,
            b'f' => at = literal_end(bytes, at, b"false")?,
            b'n' => at = literal_end(bytes, at, b"null")?,
            b'-' | b'0'..=b'9' => at = number_end(bytes, at)?,
            _ => return None,
        }
        // A value ended at `at`: close containers until one takes another value.
        loop {
            let Some(in_object) = open.innermost() else {
                return Some(at);
            };
            at = skip_space(bytes, at);
            match (bytes.get(at)?, in_object) {
                (b',', true) => {
                    at = key_and_colon_end(bytes, skip_space(bytes, at + 1))?;
                    break;
                }
                (b',', false) => {
                    at = skip_space(bytes, at + 1);
                    break;
                }
                (b'}', true) | (b']', false) => {
                    open.pop();
                    at += 1;
                }
                _ => return None,
            }
        }
    }
}

/// The open containers around the scan, innermost last: one bit each, set for an object.
#[derive(Default)]
struct Containers {
    bits: SmallVec<[u64; 2]>,
    depth: usize,
}

impl Containers {
    fn push(&mut self, object: bool) {
        let (word, bit) = (self.depth / 64, self.depth % 64);
        if word == self.bits.len() {
            self.bits.push(0);
        }
        self.bits[word] = (self.bits[word] & !(1 << bit)) | (u64::from(object) << bit);
        self.depth += 1;
    }

    fn pop(&mut self) {
        self.depth -= 1;
    }

    /// Whether the innermost open container is an object; `None` when none is open.
    fn innermost(&self) -> Option<bool> {
        let top = self.depth.checked_sub(1)?;
        Some(self.bits[top / 64] & (1 << (top % 64)) != 0)
    }
}

/// Past a nested key and its colon: where its value starts. Nested keys are only checked.
fn key_and_colon_end(bytes: &[u8], at: usize) -> Option<usize> {
    let colon = skip_space(bytes, string_end(bytes, at)?);
    if bytes.get(colon) != Some(&b':') {
        return None;
    }
    Some(skip_space(bytes, colon + 1))
}

fn skip_space(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// The index just past the valid string starting (with its quote) at `at`.
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    string_span(bytes, at).map(|(end, _)| end)
}

/// [`string_end`], and whether the string holds an escape.
fn string_span(bytes: &[u8], at: usize) -> Option<(usize, bool)> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let mut escaped = false;
    let mut i = at + 1;
    loop {
        // Eight bytes at a time up to the first quote, backslash or control byte: strings
        // are most of an MCP message's text.
        while let Some(word) = bytes.get(i..i + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            let found =
                bytes_equal(word, b'"') | bytes_equal(word, b'\\') | bytes_below(word, 0x20);
            if found != 0 {
                i += (found.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        match *bytes.get(i)? {
            b'"' => return Some((i + 1, escaped)),
            b'\\' => {
                escaped = true;
                i += escape_len(bytes.get(i + 1..)?)?;
            }
            0..0x20 => return None,
            _ => i += 1,
        }
    }
}

/// Whether `text` can stand between quotes as a JSON string as it is: no quote, backslash or
/// control byte in it.
pub fn is_plain_string(text: &str) -> bool {
    let bytes = text.as_bytes();
    let words = bytes.chunks_exact(8);
    let tail = words.remainder();
    let mut found = 0;
    for word in words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        found |= bytes_equal(word, b'"') | bytes_equal(word, b'\\') | bytes_below(word, 0x20);
    }
    found == 0 && tail.iter().all(|b| *b >= 0x20 && *b != b'"' && *b != b'\\')
}

/// Bytes of the escape whose backslash precedes `rest`, backslash included.
fn escape_len(rest: &[u8]) -> Option<usize> {
    match rest.first()? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' if rest.get(1..5)?.iter().all(u8::is_ascii_hexdigit) => Some(6),
        _ => None,
    }
}

fn literal_end(bytes: &[u8], at: usize, literal: &[u8]) -> Option<usize> {
    let end = at + literal.len();
    (bytes.get(at..end)? == literal).then_some(end)
}

fn number_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let digits_from = |at: usize| {
        at + bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    if bytes.get(at) == Some(&b'-') {
        at += 1;
    }
    at = match bytes.get(at)? {
        b'0' => at + 1,
        b'1'..=b'9' => digits_from(at + 1),
        _ => return None,
    };
    if bytes.get(at) == Some(&b'.') {
        let end = digits_from(at + 1);
        if end == at + 1 {
            return None;
        }
        at = end;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let end = digits_from(at);
        if end == at {
            return None;
        }
        at = end;
    }
    Some(at)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `word` that is `byte`, and possibly of bytes after one that
/// is: the classic zero-byte test on `word ^ byte…`, whose lowest set bit is exact, and bytes
/// come in little-endian order, so the lowest set bit marks the first match.
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Like [`bytes_equal`], for bytes below `limit` (at most 0x80).
fn bytes_below(word: u64, limit: u8) -> u64 {
    word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGHS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, Value};
    use std::collections::BTreeMap;

    fn members(text: &str) -> Option<Vec<(String, String)>> {
        let list = object_members(text)?;
        Some(
            list.iter()
                .map(|(k, v)| (k.to_string(), v.get().to_owned()))
                .collect(),
        )
    }

    #[test]
    fn values_end_at_their_own_delimiters_and_keys_are_decoded() {
        let text =
            r#" {"s":"a\"}{[,","n":-1.5e+3 ,"t":true,"o":{"k":["]",{"}":1}]},"\u00e9\"":null} "#;
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
        assert_eq!(members(text).unwrap(), want);
        assert_eq!(members("{ }").unwrap(), []);
        assert_eq!(members(r#"{"a":1,"a":2}"#).unwrap().len(), 2);
    }

    #[test]
    fn what_json_refuses_is_not_accepted() {
        for text in [
            "",
            "[1]",
            "{",
            "}",
            r#"{"a"}"#,
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":1e}"#,
            r#"{"a":-}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12g4"}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":1} x"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{"a":{"b"}}"#,
            r#"{"a":{1:2}}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":'b'}"#,
            r#"{"a":1 2}"#,
        ] {
            assert!(object_members(text).is_none(), "{text:?}");
            let serde: Result<Map<String, Value>, _> = serde_json::from_str(text);
            assert!(serde.is_err(), "serde_json accepts {text:?}");
        }
    }

    #[test]
    fn nesting_is_followed_as_deep_as_it_goes() {
        let nested = |depth: usize| {
            let inner = format!("{}1{}", r#"[{"k":"#.repeat(depth), "}]".repeat(depth));
            format!(r#"{{"a":{inner},"b":2}}"#)
        };
        for depth in [1, 63, 64, 65, 130, 1000] {
            let text = nested(depth);
            let list = object_members(&text).expect("valid nesting");
            assert_eq!((list[1].0.as_ref(), list[1].1.get()), ("b", "2"));
            let serde: &RawValue = serde_json::from_str(list[0].1.get()).unwrap();
            assert_eq!(serde.get(), list[0].1.get());
        }
        let unbalanced = format!(r#"{{"a":{}1{}}}"#, "[".repeat(70), "]".repeat(69) + "}");
        assert!(object_members(&unbalanced).is_none());
    }

    #[test]
    fn plain_strings_are_those_with_nothing_to_escape() {
        for plain in [
            "",
            "a",
            "io.modelcontextprotocol/clientCapabilities",
            "é \u{7f} ünï",
        ] {
            assert!(is_plain_string(plain), "{plain:?}");
        }
        for escaped in [
            "\"",
            "0123456789\\",
            "tab\there",
            "\u{1f}",
            "twelve bytes\n",
        ] {
            assert!(!is_plain_string(escaped), "{escaped:?}");
        }
    }

    #[test]
    fn a_member_value_is_the_very_slice_of_the_text() {
        let text = r#"{"a":[1, 2]}"#;
        let list = object_members(text).unwrap();
        let value = list[0].1;
        assert_eq!(value.get(), "[1, 2]");
        assert_eq!(value.get().as_ptr(), text[5..].as_ptr());
        let reparsed: Value = serde_json::from_str(value.get()).unwrap();
        assert_eq!(reparsed, serde_json::json!([1, 2]));
    }

    #[test]
    fn the_lowest_mark_is_the_first_matching_byte() {
        let first = |word: u64| (word != 0).then(|| word.trailing_zeros() / 8);
        for position in 0..8 {
            for other in [b' ', b'!', b'#', b'~', 0x7f, 0x80, 0xa2, 0xff] {
                let mut bytes = [other; 8];
                let word = u64::from_le_bytes(bytes);
                assert_eq!(first(bytes_equal(word, b'"')), None, "{other:#x}");
                assert_eq!(first(bytes_below(word, 0x20)), None, "{other:#x}");
                bytes[position] = b'"';
                let found = first(bytes_equal(u64::from_le_bytes(bytes), b'"'));
                assert_eq!(found, Some(position as u32));
                bytes[position] = 0x1f;
                let found = first(bytes_below(u64::from_le_bytes(bytes), 0x20));
                assert_eq!(found, Some(position as u32));
                // A later match, or a byte just above the one searched for, moves nothing.
                bytes[7] = 0x00;
                let found = first(bytes_below(u64::from_le_bytes(bytes), 0x20));
                assert_eq!(found, Some(position as u32));
            }
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
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

    /// A JSON object's text, compact or pretty, with up to three bytes replaced by bytes JSON
    /// gives meaning to (or by anything).
    fn object_text() -> impl Strategy<Value = String> {
        let object = prop::collection::btree_map(".*", json_value(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect()));
        let edit = (
            any::<prop::sample::Index>(),
            prop_oneof![
                prop::sample::select(br#"{}[]",:\/ 0123456789.eE+-tfnrul"#.to_vec()),
                any::<u8>()
            ],
        );
        (object, any::<bool>(), prop::collection::vec(edit, 0..3)).prop_map(
            |(object, pretty, edits)| {
                let mut bytes = if pretty {
                    serde_json::to_vec_pretty(&object).unwrap()
                } else {
                    serde_json::to_vec(&object).unwrap()
                };
                for (at, byte) in edits {
                    let at = at.index(bytes.len());
                    bytes[at] = byte;
                }
                String::from_utf8_lossy(&bytes).into_owned()
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// What the scanner accepts, serde_json accepts with the same members (read as raw
        /// values, as the gateway reads them); and what serde_json accepts, the scanner does too.
        #[test]
        fn the_scanner_agrees_with_serde_json(text in object_text()) {
            let serde: Result<BTreeMap<String, &RawValue>, _> = serde_json::from_str(&text);
            match (object_members(&text), serde) {
                (Some(list), Ok(map)) => {
                    let mut read = BTreeMap::new();
                    for (key, value) in list {
                        read.insert(key.into_owned(), value.get());
                    }
                    let map: BTreeMap<String, &str> =
                        map.into_iter().map(|(k, v)| (k, v.get())).collect();
                    prop_assert_eq!(read, map);
                }
                (None, Err(_)) => {}
                (Some(_), Err(error)) => prop_assert!(false, "accepted; serde_json: {}", error),
                (None, Ok(_)) => prop_assert!(false, "refused what serde_json reads"),
            }
        }
    }
}
