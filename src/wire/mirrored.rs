//! Header values the 2026-07-28 era mirrors from a request's body (`Mcp-Name`, and the
//! `Mcp-Param-*` fields intermediaries pass on): visible ASCII as it is, anything else in the
//! `=?base64?…?=` form, which the receiving side decodes. Both directions are here, so the
//! gateway writes exactly the form it reads.

use std::borrow::Cow;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A mirrored header value: as it is when visible ASCII, else the `=?base64?…?=` form.
pub fn header_value(value: &str) -> String {
    if value
        .bytes()
        .all(|b| (0x21..0x7f).contains(&b) || b == b' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ')
    {
        return value.to_owned();
    }
    let bytes = value.as_bytes();
    let mut out = String::from("=?base64?");
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push_str("?=");
    out
}

/// A mirrored header value as the body names it: the `=?base64?…?=` form decoded, any other value as it is;
/// `None` when the base64 is malformed or not UTF-8.
pub fn decoded_header_value(value: &str) -> Option<Cow<'_, str>> {
    let Some(encoded) = value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    else {
        return Some(Cow::Borrowed(value));
    };
    // The encoder's own alphabet, read backwards: a header value is a short name.
    let sextet = |c: u8| ALPHABET.iter().position(|&a| a == c).map(|i| i as u8);
    let trimmed = encoded.trim_end_matches('=');
    if encoded.len() % 4 != 0 || encoded.len() - trimmed.len() > 2 {
        return None;
    }
    let mut bytes = Vec::with_capacity(trimmed.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in trimmed.bytes() {
        acc = (acc << 6) | u32::from(sextet(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_outside_visible_ascii_use_the_base64_form() {
        assert_eq!(header_value("get_weather"), "get_weather");
        assert_eq!(
            header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
    }

    #[test]
    fn mirrored_header_values_decode_the_base64_sentinel() {
        assert_eq!(decoded_header_value("get_weather").unwrap(), "get_weather");
        assert_eq!(
            decoded_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").unwrap(),
            "Hello, 世界"
        );
        assert_eq!(
            decoded_header_value("=?base64?IHBhZGRlZCA=?=").unwrap(),
            " padded "
        );
        assert!(decoded_header_value("=?base64?***?=").is_none());
        assert!(decoded_header_value("=?base64?abc?=").is_none());
    }

    #[test]
    fn every_encoded_value_decodes_to_itself() {
        for value in [
            "",
            "a",
            "ab",
            "abc",
            "tool name",
            " lead",
            "trail ",
            "é",
            "日本語の道具",
            "\t\n",
        ] {
            assert_eq!(decoded_header_value(&header_value(value)).unwrap(), value);
        }
    }
}
