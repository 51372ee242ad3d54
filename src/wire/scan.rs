//! One validating pass over a JSON object that finds its top-level members.
//!
//! Every message the gateway receives is read as an object of raw members (the JSON-RPC
//! envelope, then `params`, `_meta` or a `result`). serde_json would do it with a validating
//! pass per member value; this scanner checks the whole text once, by the same rules, and cuts
//! each member's value out of it as a [`RawValue`]. Text it does not accept gets
//! [`Refusal::Invalid`]: callers then ask serde_json, which names what is wrong. So the scanner
//! only has to be right about what it accepts, and a differential test holds it to serde_json
//! on that.
//!
//! The rules, as serde_json applies them: whitespace is space, tab, line feed and carriage
//! return; a string holds no byte below 0x20, and its escapes are `\" \\ \/ \b \f \n \r \t`
//! and `\u` with four hex digits (surrogates are not paired here, as serde_json does not pair
//! them in text it only passes on); a number is `-? (0 | [1-9][0-9]*) (. [0-9]+)?
//! ([eE] [+-]? [0-9]+)?`; the literals are `true`, `false` and `null`; nothing but whitespace
//! follows the value. The text is a `&str`, so it is UTF-8 already.
//!
//! Limits: containers (objects and arrays) nest at most `depth_max` deep, the scanned object
//! counting as one (`limits.json_depth_max` for a message): deeper text gets
//! [`Refusal::TooDeep`] as soon as the scan reaches the container one too deep, with the
//! members around the deep one that can still be read (see [`DeepMember`]). serde_json
//! passes over raw values to any depth but reads a tree only 127 deep, so this is what keeps
//! every later parse of an accepted message from failing on its depth; it also keeps the
//! scan's own stack of open containers a fixed two words.

use std::borrow::Cow;

use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::config::bounds;

/// Members in order: each key decoded, each value the raw text it came in.
pub type MemberList<'a> = SmallVec<[(Cow<'a, str>, &'a RawValue); 8]>;

/// The deepest nesting any scan follows: the top of `limits.json_depth_max`'s range. A larger
/// `depth_max` reads as this.
pub const DEPTH_CEILING: u32 = bounds::JSON_DEPTH_MAX.max as u32;

/// Open containers the scan can track: two words of one bit each.
const CONTAINERS_CAPACITY: usize = 128;

const _: () = assert!(DEPTH_CEILING as i64 == bounds::JSON_DEPTH_MAX.max);
const _: () = assert!(DEPTH_CEILING as usize <= CONTAINERS_CAPACITY);

/// Why [`object_members`] refused a text.
#[derive(Debug)]
pub enum Refusal<'a> {
    /// Not one valid JSON object (see the module doc).
    Invalid,
    /// Valid as far as the scan read, up to a container deeper than `depth_max` (boxed: a
    /// refusal is rare, and the members are large).
    TooDeep(Box<DeepMember<'a>>),
}

/// Where a scan stopped for depth: inside the value of member `key`, after the members
/// `before`, and before the members `after` whose values are scalars; a caller may still read
/// either, such as a JSON-RPC id sent ahead of its params or after its result. `after` comes
/// from a skim of the rest of the object (see [`scalars_after`]) and is empty when the skim
/// finds the rest malformed.
#[derive(Debug)]
pub struct DeepMember<'a> {
    pub key: Cow<'a, str>,
    pub before: MemberList<'a>,
    pub after: MemberList<'a>,
}

/// Why [`value_end`] stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Invalid,
    TooDeep,
}

/// The members of `text` when it is one valid JSON object nesting at most `depth_max` deep
/// (the object itself counting as one), in order, repeated keys included; a [`Refusal`] for
/// anything else (see the module doc). A key with an escape is decoded by serde_json; any
/// other key is borrowed.
pub fn object_members(text: &str, depth_max: u32) -> Result<MemberList<'_>, Refusal<'_>> {
    debug_assert!(depth_max >= 1, "an object nests one deep");
    let levels_max = depth_max.min(DEPTH_CEILING).saturating_sub(1);
    let bytes = text.as_bytes();
    let mut at = skip_space(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return Err(Refusal::Invalid);
    }
    let mut members = SmallVec::new();
    at = skip_space(bytes, at + 1);
    if bytes.get(at) != Some(&b'}') {
        loop {
            let (key, value_start) = key_and_colon(text, at).ok_or(Refusal::Invalid)?;
            let value_end = match value_end(bytes, value_start, levels_max) {
                Ok(end) => end,
                Err(Stop::Invalid) => return Err(Refusal::Invalid),
                Err(Stop::TooDeep) => {
                    let before = members;
                    let after = scalars_after(text, value_start).unwrap_or_default();
                    let deep = DeepMember { key, before, after };
                    return Err(Refusal::TooDeep(Box::new(deep)));
                }
            };
            // Both ends sit at ASCII bytes of the structure, so on character boundaries.
            members.push((key, valid_raw(&text[value_start..value_end])));
            at = skip_space(bytes, value_end);
            match bytes.get(at) {
                Some(b',') => at = skip_space(bytes, at + 1),
                Some(b'}') => break,
                _ => return Err(Refusal::Invalid),
            }
        }
    }
    match skip_space(bytes, at + 1) == bytes.len() {
        true => Ok(members),
        false => Err(Refusal::Invalid),
    }
}

/// The scalar-valued members that follow a too deep member of the scanned object, whose
/// value starts at `at`, when the rest of `text` ends the object as JSON would. A skim, not a
/// scan: each container is passed over by counting its brackets, never followed, so it costs
/// one pass over the rest of the text whatever its nesting; the text is refused anyway, so it
/// only has to find where the top level resumes. `None` where the skim cannot.
fn scalars_after(text: &str, at: usize) -> Option<MemberList<'_>> {
    let bytes = text.as_bytes();
    let mut after = MemberList::new();
    let mut at = container_end(bytes, at)?;
    loop {
        at = skip_space(bytes, at);
        match bytes.get(at)? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
        let (key, start) = key_and_colon(text, skip_space(bytes, at + 1))?;
        at = match bytes.get(start)? {
            b'{' | b'[' => container_end(bytes, start)?,
            _ => {
                // A scalar nests 0 deep: the scan proper validates it.
                let end = value_end(bytes, start, 0).ok()?;
                after.push((key, valid_raw(&text[start..end])));
                end
            }
        };
    }
    (skip_space(bytes, at + 1) == bytes.len()).then_some(after)
}

/// The index just past the container opening at `at`: its brackets counted, not matched, and
/// its strings passed over whole, so that a bracket inside one is text.
fn container_end(bytes: &[u8], mut at: usize) -> Option<usize> {
    let mut open = 0usize;
    loop {
        match *bytes.get(at)? {
            b'"' => {
                at = string_end(bytes, at)?;
                continue;
            }
            b'{' | b'[' => open += 1,
            b'}' | b']' => {
                open = open.checked_sub(1)?;
                if open == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
}

/// Whether the JSON value that `bytes` start with nests deeper than `depth_max`, checked by
/// the same scan without asking for UTF-8: for a message that is not UTF-8, which serde_json
/// reads instead (the structure is ASCII, so the nesting is the same either way). Text that is
/// not JSON is not too deep: serde_json says what is wrong with it.
pub fn nests_deeper(bytes: &[u8], depth_max: u32) -> bool {
    let start = skip_space(bytes, 0);
    value_end(bytes, start, depth_max.min(DEPTH_CEILING)) == Err(Stop::TooDeep)
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

/// The index just past the valid value starting at `at`, whose containers nest at most
/// `depth_max` deep (a scalar is 0 deep, `[]` one).
fn value_end(bytes: &[u8], mut at: usize, depth_max: u32) -> Result<usize, Stop> {
    let mut open = Containers::new(depth_max);
    loop {
        // A value starts at `at`.
        match *bytes.get(at).ok_or(Stop::Invalid)? {
            b'"' => at = string_end(bytes, at).ok_or(Stop::Invalid)?,
            bracket @ (b'{' | b'[') => {
                let object = bracket == b'{';
                open.push(object)?;
                at = skip_space(bytes, at + 1);
                if bytes.get(at) == Some(if object { &b'}' } else { &b']' }) {
                    open.pop();
                    at += 1;
                } else {
                    if object {
                        at = key_and_colon_end(bytes, at).ok_or(Stop::Invalid)?;
                    }
                    continue;
                }
            }
            b't' => at = literal_end(bytes, at, b"true").ok_or(Stop::Invalid)?,
            b'f' => at = literal_end(bytes, at, b"false").ok_or(Stop::Invalid)?,
            b'n' => at = literal_end(bytes, at, b"null").ok_or(Stop::Invalid)?,
            b'-' | b'0'..=b'9' => at = number_end(bytes, at).ok_or(Stop::Invalid)?,
            _ => return Err(Stop::Invalid),
        }
        // A value ended at `at`: close containers until one takes another value.
        loop {
            let Some(in_object) = open.innermost() else {
                return Ok(at);
            };
            at = skip_space(bytes, at);
            match (bytes.get(at).ok_or(Stop::Invalid)?, in_object) {
                (b',', true) => {
                    at =
                        key_and_colon_end(bytes, skip_space(bytes, at + 1)).ok_or(Stop::Invalid)?;
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
                _ => return Err(Stop::Invalid),
            }
        }
    }
}

/// The open containers around the scan, innermost last: one bit each, set for an object.
struct Containers {
    bits: [u64; CONTAINERS_CAPACITY / 64],
    depth: usize,
    depth_max: usize,
}

impl Containers {
    fn new(depth_max: u32) -> Containers {
        let depth_max = usize::try_from(depth_max)
            .unwrap_or(CONTAINERS_CAPACITY)
            .min(CONTAINERS_CAPACITY);
        Containers {
            bits: [0; CONTAINERS_CAPACITY / 64],
            depth: 0,
            depth_max,
        }
    }

    /// Opens a container; `TooDeep` when `depth_max` are open already.
    fn push(&mut self, object: bool) -> Result<(), Stop> {
        if self.depth >= self.depth_max {
            return Err(Stop::TooDeep);
        }
        // `depth < depth_max <= CONTAINERS_CAPACITY`: the word exists.
        let (word, bit) = (self.depth / 64, self.depth % 64);
        self.bits[word] = (self.bits[word] & !(1 << bit)) | (u64::from(object) << bit);
        self.depth += 1;
        Ok(())
    }

    /// Closes the innermost container; called only while [`Containers::innermost`] has one.
    fn pop(&mut self) {
        debug_assert!(self.depth > 0);
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
        while let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
            let word = u64::from_le_bytes(*word);
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
    let mut rest = bytes;
    let mut found = 0;
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let word = u64::from_le_bytes(*word);
        found |= bytes_equal(word, b'"') | bytes_equal(word, b'\\') | bytes_below(word, 0x20);
        rest = tail;
    }
    found == 0 && rest.iter().all(|b| *b >= 0x20 && *b != b'"' && *b != b'\\')
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
        let rest = bytes.get(at..).unwrap_or_default();
        at + rest.iter().take_while(|b| b.is_ascii_digit()).count()
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
        let list = object_members(text, DEPTH_CEILING).ok()?;
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
    fn numbers_past_f64_are_accepted_as_serde_json_passes_them_over() {
        // JSON sets numbers no range: serde_json refuses such a `Value` but passes the number
        // over as raw text, as the envelope does (`envelope_scan` found this difference).
        let text = r#"{"n":1.5e400,"m":[-2e999]}"#;
        let want = [("n", "1.5e400"), ("m", "[-2e999]")];
        let want: Vec<_> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(members(text).unwrap(), want);
        assert!(serde_json::from_str::<&RawValue>(text).is_ok());
        assert!(serde_json::from_str::<Value>(text).is_err());
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
            assert!(
                matches!(object_members(text, DEPTH_CEILING), Err(Refusal::Invalid)),
                "{text:?}"
            );
            let serde: Result<Map<String, Value>, _> = serde_json::from_str(text);
            assert!(serde.is_err(), "serde_json accepts {text:?}");
        }
    }

    /// `{"a":<value nesting depth - 1 deep>,"b":2}`: an object nesting exactly `depth` deep.
    fn nested(depth: usize) -> String {
        let levels = depth - 1;
        let inner = format!(
            "{}1{}",
            r#"[{"k":"#.repeat(levels / 2),
            "}]".repeat(levels / 2)
        );
        let inner = match levels % 2 {
            0 => inner,
            _ => format!("[{inner}]"),
        };
        format!(r#"{{"a":{inner},"b":2}}"#)
    }

    /// Containers open at the deepest point of a JSON value, the way the scan counts them.
    /// Read through raw values, so that a number too large for an `f64` still counts as one.
    struct Depth(usize);

    impl<'de> serde::Deserialize<'de> for Depth {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Depth, D::Error> {
            struct Members;
            impl<'de> serde::de::Visitor<'de> for Members {
                type Value = usize;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut m: A,
                ) -> Result<usize, A::Error> {
                    let mut deepest = 0;
                    while let Some((_, Depth(d))) =
                        m.next_entry::<serde::de::IgnoredAny, Depth>()?
                    {
                        deepest = deepest.max(d);
                    }
                    Ok(deepest)
                }
            }
            let text = <&'de RawValue>::deserialize(d)?.get();
            let inner = match text.as_bytes().first() {
                Some(b'[') => serde_json::from_str::<Vec<Depth>>(text)
                    .map(|items| items.iter().map(|d| d.0).max().unwrap_or(0)),
                Some(b'{') => {
                    let mut reader = serde_json::Deserializer::from_str(text);
                    serde::Deserializer::deserialize_map(&mut reader, Members)
                }
                _ => return Ok(Depth(0)),
            };
            inner
                .map(|d| Depth(d + 1))
                .map_err(serde::de::Error::custom)
        }
    }

    fn depth_of(text: &str) -> Result<usize, serde_json::Error> {
        serde_json::from_str::<Depth>(text).map(|d| d.0)
    }

    #[test]
    fn nesting_is_accepted_up_to_depth_max_and_refused_one_past_it() {
        for depth_max in [2, 16, 64, DEPTH_CEILING] {
            let max = depth_max as usize;
            for depth in [max - 1, max] {
                let text = nested(depth);
                assert_eq!(depth_of(&text).unwrap(), depth);
                let list = object_members(&text, depth_max).expect("within depth_max");
                assert_eq!((list[1].0.as_ref(), list[1].1.get()), ("b", "2"));
            }
            let text = nested(max + 1);
            match object_members(&text, depth_max) {
                Err(Refusal::TooDeep(deep)) => {
                    assert_eq!(deep.key, "a");
                    assert!(deep.before.is_empty());
                }
                other => panic!("depth {} under depth_max {depth_max}: {other:?}", max + 1),
            }
            assert!(nests_deeper(text.as_bytes(), depth_max));
            assert!(!nests_deeper(nested(max).as_bytes(), depth_max));
        }
        // Empty containers count; the members before the deep one are kept.
        let text = r#"{"id":7,"x":[[]],"params":[[[]]]}"#;
        assert!(object_members(text, 4).is_ok());
        let Err(Refusal::TooDeep(deep)) = object_members(text, 3) else {
            panic!("[[[]]] in an object nests 4 deep");
        };
        assert_eq!(deep.key, "params");
        let before: Vec<_> = deep
            .before
            .iter()
            .map(|(k, v)| (k.as_ref(), v.get()))
            .collect();
        assert_eq!(before, [("id", "7"), ("x", "[[]]")]);
        assert!(deep.after.is_empty());
        // Scalar members after the deep one are found by the skim; containers are passed over,
        // a bracket in a string is text, and the rest must end the object.
        let late = r#"{"result":[[["]}",{"k":"[["}]]],"x":[1,"]"],"id":7 ,"e":"\u00e9"} "#;
        let Err(Refusal::TooDeep(deep)) = object_members(late, 3) else {
            panic!("the result nests 4 deep");
        };
        assert_eq!(deep.key, "result");
        let after: Vec<_> = deep
            .after
            .iter()
            .map(|(k, v)| (k.as_ref(), v.get()))
            .collect();
        assert_eq!(after, [("id", "7"), ("e", r#""\u00e9""#)]);
        for malformed in [
            r#"{"result":[[[]]],"id":7"#,
            r#"{"result":[[[]]],"id":7} x"#,
            r#"{"result":[[[]]]],"id":7}"#,
            r#"{"result":[[[]]],"id":07}"#,
            r#"{"result":[[["]]],"id":7}"#,
        ] {
            match object_members(malformed, 3) {
                Err(Refusal::TooDeep(deep)) => assert!(deep.after.is_empty(), "{malformed}"),
                other => panic!("{malformed}: {other:?}"),
            }
        }
        // A limit past the ceiling reads as the ceiling.
        let past = nested(DEPTH_CEILING as usize + 1);
        assert!(object_members(&past, u32::MAX).is_err());
        let unbalanced = format!(r#"{{"a":{}1{}}}"#, "[".repeat(70), "]".repeat(69) + "}");
        assert!(matches!(
            object_members(&unbalanced, DEPTH_CEILING),
            Err(Refusal::Invalid)
        ));
    }

    #[test]
    fn serde_json_reads_every_tree_the_ceiling_lets_through() {
        let max = bounds::SERDE_JSON_DEPTH_MAX as usize;
        let tree = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(serde_json::from_str::<Value>(&tree(max)).is_ok());
        let refused = serde_json::from_str::<Value>(&tree(max + 1)).unwrap_err();
        assert!(refused.to_string().contains("recursion limit"), "{refused}");
        assert!((DEPTH_CEILING as usize) < max);
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
        let list = object_members(text, DEPTH_CEILING).unwrap();
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
        leaf.prop_recursive(6, 48, 6, |inner| {
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
        /// values, as the gateway reads them) and nests at most `depth_max` deep; what
        /// serde_json accepts, the scanner accepts too, unless it nests deeper than
        /// `depth_max`, which is then what the scanner says. The objects nest up to 8 deep,
        /// so every `depth_max` drawn here is met both ways.
        #[test]
        fn the_scanner_agrees_with_serde_json(text in object_text(), depth_max in 1u32..=8) {
            let serde: Result<BTreeMap<String, &RawValue>, _> = serde_json::from_str(&text);
            let depth = depth_of(&text);
            match (object_members(&text, depth_max), serde) {
                (Ok(list), Ok(map)) => {
                    prop_assert!(depth.as_ref().is_ok_and(|d| *d <= depth_max as usize));
                    let mut read = BTreeMap::new();
                    for (key, value) in list {
                        read.insert(key.into_owned(), value.get());
                    }
                    let map: BTreeMap<String, &str> =
                        map.into_iter().map(|(k, v)| (k, v.get())).collect();
                    prop_assert_eq!(read, map);
                }
                (Err(Refusal::TooDeep(_)), Ok(_)) => {
                    prop_assert!(depth.is_ok_and(|d| d > depth_max as usize));
                }
                // Text serde_json refuses may still be refused for its depth first.
                (Err(_), Err(_)) => {}
                (Ok(_), Err(error)) => prop_assert!(false, "accepted; serde_json: {}", error),
                (Err(Refusal::Invalid), Ok(_)) => {
                    prop_assert!(false, "refused what serde_json reads")
                }
            }
        }
    }
}
