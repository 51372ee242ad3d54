//! What the tests of the envelope, the writers, the codes and `_meta` share.

use serde_json::value::RawValue;
use serde_json::Value;

/// The default `limits.json_depth_max`.
pub(super) const DEPTH_MAX: u32 = crate::config::bounds::JSON_DEPTH_MAX.default as u32;

pub(super) fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).unwrap()
}

pub(super) fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}
