//! The request writer: one HTTP/1.1 request head and its JSON body into a reused buffer.

use super::{ClientError, ClientErrorKind};
use crate::http::head::is_token;
use crate::http::response::check_header;
use crate::support::decimal::push_decimal;

/// Appends one request to `out`: `method target HTTP/1.1`, `Host: host`, the caller's
/// `headers`, and with a `body` `Content-Type: application/json` (unless `headers` set one) and
/// `Content-Length`. A `POST` without a body gets `Content-Length: 0`.
///
/// Refuses (and leaves `out` as it was) a method that is not a token, a target that is not
/// origin-form visible ASCII, a host with a character outside visible ASCII, and headers the
/// codec owns (`Host`, `Content-Length`, `Transfer-Encoding`, `Connection`) or whose value
/// could split the head.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<(), ClientError> {
    check_request_line(method, target, host)?;
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("host") {
            return Err(invalid("header host is set by the http codec".to_string()));
        }
        check_header(name, value).map_err(|error| invalid(error.to_string()))?;
    }
    write_all(out, method, target, host, headers, body);
    Ok(())
}

fn write_all(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) {
    // Pieces appended one by one: `write!` would run the formatting machinery per header.
    let header_bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
    out.reserve(64 + target.len() + host.len() + header_bytes + body.map_or(0, <[u8]>::len));
    for piece in [method, " ", target, " HTTP/1.1\r\nHost: ", host, "\r\n"] {
        out.extend_from_slice(piece.as_bytes());
    }
    for (name, value) in headers {
        for piece in [*name, ": ", *value, "\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
    }
    match body {
        Some(body) => {
            let typed = headers
                .iter()
                .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
            if !typed {
                out.extend_from_slice(b"Content-Type: application/json\r\n");
            }
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, body.len() as u64);
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(body);
        }
        None if method == "POST" => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
        None => out.extend_from_slice(b"\r\n"),
    }
}

fn check_request_line(method: &str, target: &str, host: &str) -> Result<(), ClientError> {
    if !is_token(method) {
        return Err(invalid(format!("method {method:?} is not a token")));
    }
    let visible = |b: u8| b.is_ascii_graphic();
    if !target.starts_with('/') || !target.bytes().all(visible) {
        return Err(invalid(format!(
            "request target {target:?} is not an origin-form path of visible ascii"
        )));
    }
    if host.is_empty() || !host.bytes().all(visible) {
        return Err(invalid(format!("host {host:?} is not visible ascii")));
    }
    Ok(())
}

fn invalid(message: String) -> ClientError {
    ClientError::new(ClientErrorKind::InvalidRequest, message)
}
