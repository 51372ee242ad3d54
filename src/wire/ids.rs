//! The ids the gateway gives its requests to upstreams, and their spellings on the wire.

use serde_json::value::RawValue;

/// The id the gateway gives a request to an upstream: a per-shard counter, never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamRequestId(pub u64);

/// How an [`UpstreamRequestId`] is written on the wire. Either form of an echo maps back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdForm {
    /// A JSON integer, `17`.
    Number,
    /// A JSON string of the decimal digits, `"17"`, for upstreams that want string ids.
    String,
}

/// An [`UpstreamRequestId`] as JSON text, on the stack.
#[derive(Clone, Copy, Debug)]
pub struct IdJson {
    /// 20 digits of `u64::MAX` and two quotes.
    bytes: [u8; 22],
    len: u8,
}

impl IdJson {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl UpstreamRequestId {
    /// The id as JSON text in `form`.
    pub fn to_json(self, form: IdForm) -> IdJson {
        let mut buffer = [0u8; 20];
        let digits = crate::support::decimal::decimal_digits(self.0, &mut buffer);
        let mut json = IdJson {
            bytes: [b'"'; 22],
            len: 0,
        };
        let quoted = usize::from(form == IdForm::String);
        json.bytes[quoted..quoted + digits.len()].copy_from_slice(digits);
        json.len = (digits.len() + 2 * quoted) as u8;
        json
    }

    /// The id an upstream echoed: a JSON integer or a string of decimal digits, without
    /// leading zeros (so each id has one spelling per form). `None` for anything else.
    pub fn parse(raw: &RawValue) -> Option<Self> {
        let text = raw.get().as_bytes();
        let digits = match text {
            [b'"', digits @ .., b'"'] => digits,
            digits => digits,
        };
        let canonical = match digits {
            [] => false,
            [b'0', _, ..] => false,
            digits => digits.len() <= 20 && digits.iter().all(u8::is_ascii_digit),
        };
        if !canonical {
            return None;
        }
        let text = std::str::from_utf8(digits).ok()?;
        text.parse().ok().map(Self)
    }
}
