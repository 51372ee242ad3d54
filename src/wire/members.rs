//! JSON objects as raw members: each member's key decoded, its value the slice of the text it
//! came in, never parsed into a tree. Rewriting an object (a member replaced, dropped or added)
//! is then one pass that copies every other value as it is.
//!
//! A key that repeats counts once, with its last value, in the place of that last one (as a
//! JSON map reads it).

use crate::wire::scan::DEPTH_CEILING;
use hashbrown::HashMap;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use crate::wire::scan::{is_plain_string, object_members, MemberList};

/// Members of an object up to which repeated keys are found by comparing every pair; larger
/// objects use a hash map, so a request with many members costs linear time.
const PAIRWISE_MEMBERS_MAX: usize = 16;

/// One object's members in order, keys decoded, values raw; repeated keys already resolved.
pub struct Members<'a> {
    members: MemberList<'a>,
}

impl<'a> Members<'a> {
    /// `None` unless `raw` is a JSON object. What is read here is part of a message whose scan
    /// held it to `limits.json_depth_max` already, which is at most [`DEPTH_CEILING`]: this
    /// scan goes that deep, so it never refuses for depth.
    pub fn read(raw: &'a RawValue) -> Option<Members<'a>> {
        Self::read_text(raw.get())
    }

    /// [`Members::read`] of JSON text.
    pub fn read_text(text: &'a str) -> Option<Members<'a>> {
        let mut members = Members {
            members: object_members(text, DEPTH_CEILING).ok()?,
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

/// `,"key":` (no comma before the first member).
pub fn member_key(out: &mut Vec<u8>, key: &str, first: &mut bool) {
    if !std::mem::take(first) {
        out.push(b',');
    }
    write_json_str(out, key);
    out.push(b':');
}

/// Appends `text` as a JSON string: between quotes as it is when nothing in it needs an
/// escape, else escaped by serde_json.
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    if is_plain_string(text) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        // Writing to a `Vec` cannot fail, and every `str` serializes.
        serde_json::to_writer(&mut *out, text).expect("a string serializes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
