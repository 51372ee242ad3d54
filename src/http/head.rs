//! What the header fields of a message head say, read the same way by the server's request
//! parser and the upstream client's response parser: `Content-Length` (every list element
//! digits, all agreeing), `Transfer-Encoding` (counted, and whether it is exactly `chunked`) and
//! the `Connection` options, plus the comma-separated list and decimal grammars they use, the
//! lookup of a field by name, and the token grammar both writers hold methods and names to.
//!
//! The facts make no decision: each side frames its body by its own RFC 9112 rules (they differ
//! for requests and responses) and turns a [`ContentLengthFault`] into its own error and
//! refusal reason.

use std::fmt;

/// The framing and connection fields of one head, gathered in one pass over its fields.
#[derive(Default)]
pub(super) struct HeadFacts {
    content_length: Option<u64>,
    transfer_encodings: u32,
    /// The last `Transfer-Encoding` field is exactly `chunked`.
    last_coding_chunked: bool,
    close: bool,
    keep_alive: bool,
}

/// Why a head's `Content-Length` fields were refused; `Display` is the message both sides give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ContentLengthFault {
    /// An element is not `1*DIGIT`; `value` is the whole field value as sent.
    Invalid { value: String },
    /// Two elements, in one field or across fields, differ.
    Conflicting { seen: u64, length: u64 },
    /// The field has no element at all.
    Empty,
}

impl fmt::Display for ContentLengthFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid { value } => write!(f, "invalid content-length {value:?}"),
            Self::Conflicting { seen, length } => {
                write!(f, "conflicting content-length values {seen} and {length}")
            }
            Self::Empty => f.write_str("empty content-length"),
        }
    }
}

impl HeadFacts {
    /// Takes in one field; any other than `Content-Length`, `Transfer-Encoding` and
    /// `Connection` is left to the caller.
    pub(super) fn observe(&mut self, name: &[u8], value: &[u8]) -> Result<(), ContentLengthFault> {
        if name.eq_ignore_ascii_case(b"content-length") {
            self.add_content_length(value)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encodings += 1;
            self.last_coding_chunked = value.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in list_elements(value) {
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        Ok(())
    }

    /// Each `Content-Length` (or list element) must be digits and all must agree.
    fn add_content_length(&mut self, value: &[u8]) -> Result<(), ContentLengthFault> {
        let mut any = false;
        for element in list_elements(value) {
            any = true;
            let length = parse_decimal(element).ok_or_else(|| ContentLengthFault::Invalid {
                value: String::from_utf8_lossy(value).into_owned(),
            })?;
            match self.content_length {
                Some(seen) if seen != length => {
                    return Err(ContentLengthFault::Conflicting { seen, length });
                }
                _ => self.content_length = Some(length),
            }
        }
        if !any {
            return Err(ContentLengthFault::Empty);
        }
        Ok(())
    }

    /// The one length all `Content-Length` fields agree on; `None` without any.
    pub(super) fn content_length(&self) -> Option<u64> {
        self.content_length
    }

    /// At least one `Transfer-Encoding` field is present.
    pub(super) fn transfer_encoded(&self) -> bool {
        self.transfer_encodings > 0
    }

    /// Exactly one `Transfer-Encoding` field, and it is exactly `chunked`: the only coding the
    /// codec reads.
    pub(super) fn chunked_only(&self) -> bool {
        self.transfer_encodings == 1 && self.last_coding_chunked
    }

    /// Whether the sender lets the connection carry another message (RFC 9112 §9.3): HTTP/1.1
    /// unless `Connection: close`, HTTP/1.0 only with `Connection: keep-alive`.
    pub(super) fn persistent(&self, minor_version: u8) -> bool {
        !self.close && (minor_version == 1 || self.keep_alive)
    }
}

/// Elements of a comma-separated field value, optional whitespace trimmed, empties skipped.
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(|element| element.trim_ascii())
        .filter(|element| !element.is_empty())
}

/// `1*DIGIT` as a `u64`; values past `u64::MAX` saturate (they exceed any limit anyway).
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// The value of the first of `fields` (name, value) named `name`, ASCII case-insensitive.
pub(super) fn field_value<'a>(
    fields: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    name: &str,
) -> Option<&'a [u8]> {
    fields
        .into_iter()
        .find(|(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, value)| value)
}

/// `1*tchar` (RFC 9110 §5.6.2): what a method or a field name must be.
pub(super) fn is_token(text: &str) -> bool {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !text.is_empty() && text.bytes().all(tchar)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One head's fields as (name, value).
    type Fields = &'static [(&'static str, &'static str)];

    fn facts(fields: &[(&str, &str)]) -> Result<HeadFacts, ContentLengthFault> {
        let mut facts = HeadFacts::default();
        for (name, value) in fields {
            facts.observe(name.as_bytes(), value.as_bytes())?;
        }
        Ok(facts)
    }

    #[test]
    fn agreeing_content_lengths_are_one_length_and_others_are_faults() {
        let same = facts(&[("Content-Length", "2"), ("content-length", "2, 2")]);
        assert_eq!(same.map(|f| f.content_length()), Ok(Some(2)));
        let conflicting = facts(&[("Content-Length", "5"), ("Content-Length", "6")]);
        let fault = conflicting.map(|_| ()).unwrap_err();
        assert_eq!(
            fault,
            ContentLengthFault::Conflicting { seen: 5, length: 6 }
        );
        assert_eq!(
            fault.to_string(),
            "conflicting content-length values 5 and 6"
        );
        let invalid = facts(&[("Content-Length", "5, +1")])
            .map(|_| ())
            .unwrap_err();
        assert_eq!(invalid.to_string(), "invalid content-length \"5, +1\"");
        let empty = facts(&[("Content-Length", " , ")]).map(|_| ()).unwrap_err();
        assert_eq!(empty, ContentLengthFault::Empty);
    }

    #[test]
    fn only_one_exact_chunked_coding_is_chunked_only() {
        let cases: [(Fields, bool, bool); 4] = [
            (&[], false, false),
            (&[("Transfer-Encoding", "CHUNKED")], true, true),
            (&[("Transfer-Encoding", "gzip, chunked")], true, false),
            (
                &[
                    ("Transfer-Encoding", "chunked"),
                    ("Transfer-Encoding", "chunked"),
                ],
                true,
                false,
            ),
        ];
        for (fields, encoded, chunked_only) in cases {
            let facts = facts(fields).expect("no content-length");
            assert_eq!(facts.transfer_encoded(), encoded, "{fields:?}");
            assert_eq!(facts.chunked_only(), chunked_only, "{fields:?}");
        }
    }

    #[test]
    fn persistence_follows_the_version_and_the_connection_options() {
        let cases: [(Fields, u8, bool); 5] = [
            (&[], 1, true),
            (&[], 0, false),
            (&[("Connection", "upgrade, Close")], 1, false),
            (&[("Connection", "Keep-Alive")], 0, true),
            (
                &[("Connection", "keep-alive"), ("Connection", "close")],
                0,
                false,
            ),
        ];
        for (fields, minor_version, persistent) in cases {
            let facts = facts(fields).expect("no content-length");
            assert_eq!(facts.persistent(minor_version), persistent, "{fields:?}");
        }
    }

    #[test]
    fn list_elements_skip_empties_and_trim() {
        let elements: Vec<&[u8]> = list_elements(b" close , ,keep-alive").collect();
        assert_eq!(elements, [&b"close"[..], b"keep-alive"]);
    }

    #[test]
    fn parse_decimal_refuses_signs_and_saturates() {
        assert_eq!(parse_decimal(b"42"), Some(42));
        assert_eq!(parse_decimal(b"+1"), None);
        assert_eq!(parse_decimal(b""), None);
        assert_eq!(parse_decimal(b"99999999999999999999999"), Some(u64::MAX));
    }

    #[test]
    fn tokens_are_nonempty_tchars() {
        assert!(is_token("POST"));
        assert!(is_token("X-Custom_1!#$%&'*+-.^`|~"));
        for text in ["", "a b", "a:b", "a\r", "é", "a,b", "(a)"] {
            assert!(!is_token(text), "{text:?}");
        }
    }
}
