//! Response writing: one response per request into the connection's reused output buffer.
//!
//! A buffered response ([`ResponseWriter::json`], [`ResponseWriter::empty`]) is written out by
//! the connection loop when the handler returns; a stream ([`ResponseWriter::sse`]) is written
//! out on each [`SseStream::flush`]. The writer owns the framing headers (`Content-Length`,
//! `Transfer-Encoding`, `Connection`) and refuses handler headers that would forge them or split
//! the head (CR, LF or NUL in a value).

use super::head::is_token;
use crate::support::deadline;
use crate::support::decimal::push_decimal;
use crate::support::event::Event;
use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use std::io::{self, Write};
use std::time::Duration;

/// How long a response waits before [`ResponseWriter::peer_gone`] watches for the client
/// leaving: a client gone sooner is noticed this much later (up to one deadline tick more), its
/// work abandoned all the same.
pub const PEER_WATCH_DELAY: Duration = Duration::from_millis(20);

// The watch starts at most half a delay late.
const _: () = assert!(deadline::TICK.as_millis() * 2 <= PEER_WATCH_DELAY.as_millis());

/// The reason phrase for `status`; empty (allowed by RFC 9112) for a status without one here.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// A JSON-RPC error object without an id, as the body of an HTTP-level refusal.
pub(crate) fn jsonrpc_error_body(message: &str) -> Vec<u8> {
    let message = serde_json::Value::from(message).to_string();
    format!(r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":-32600,"message":{message}}}}}"#)
        .into_bytes()
}

/// How far the handler got with its response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// No status line yet.
    Nothing,
    /// A whole response sits in the output buffer.
    Buffered,
    /// A stream's head (and maybe events) went out; more may follow.
    Streaming,
    /// The stream's end went out.
    Finished,
    /// A write failed; the connection is unusable.
    Broken,
}

/// Framing of one response body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyFraming {
    Length(usize),
    Chunked,
    /// HTTP/1.0 peers get a stream ended by closing the connection.
    UntilClose,
}

/// State shared between the writer and its stream.
pub(crate) struct Exchange {
    pub(crate) written: Written,
    /// The response says (or the connection decided) `Connection: close`.
    pub(crate) close: bool,
    /// Start of stream bytes not yet framed into a chunk.
    pending_start: usize,
}

/// Writes the one response to one request. Created by the connection loop per request.
pub struct ResponseWriter<'c> {
    stream: &'c mut TcpStream,
    out: &'c mut Vec<u8>,
    shutdown: &'c Event,
    peer_keep_alive: bool,
    peer_http11: bool,
    head_only: bool,
    close_after: bool,
    pub(crate) exchange: Exchange,
}

impl<'c> ResponseWriter<'c> {
    pub(crate) fn new(
        stream: &'c mut TcpStream,
        out: &'c mut Vec<u8>,
        shutdown: &'c Event,
        peer: Peer,
    ) -> ResponseWriter<'c> {
        debug_assert!(out.is_empty());
        ResponseWriter {
            stream,
            out,
            shutdown,
            peer_keep_alive: peer.keep_alive,
            peer_http11: peer.http11,
            head_only: peer.head_only,
            close_after: false,
            exchange: Exchange {
                written: Written::Nothing,
                close: false,
                pending_start: 0,
            },
        }
    }

    /// A whole JSON response: `Content-Type: application/json` (unless `headers` set one) and
    /// `Content-Length`. Refused if a response was already written.
    pub fn json(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> io::Result<()> {
        if status == 204 && !body.is_empty() {
            return Err(invalid_input("a 204 response has no body".to_string()));
        }
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        let content_type: &[(&str, &str)] = if typed {
            &[]
        } else {
            &[("Content-Type", "application/json")]
        };
        self.write_head(
            status,
            content_type,
            headers,
            BodyFraming::Length(body.len()),
        )?;
        if !self.head_only && status != 204 {
            self.out.extend_from_slice(body);
        }
        self.exchange.written = Written::Buffered;
        Ok(())
    }

    /// A response without a body (`Content-Length: 0`, none on 204): 202, 204, 405 and the like.
    pub fn empty(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<()> {
        self.write_head(status, &[], headers, BodyFraming::Length(0))?;
        self.exchange.written = Written::Buffered;
        Ok(())
    }

    /// Starts a Server-Sent Events stream: chunked (close-delimited for HTTP/1.0 peers), with
    /// `Content-Type: text/event-stream`, `Cache-Control: no-cache`, `X-Accel-Buffering: no`.
    /// Nothing is sent until the first [`SseStream::flush`].
    pub fn sse(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<SseStream<'_>> {
        if self.head_only {
            return Err(invalid_input(
                "an event stream answers no head request".to_string(),
            ));
        }
        let framing = if self.peer_http11 {
            BodyFraming::Chunked
        } else {
            BodyFraming::UntilClose
        };
        let fixed = [
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("X-Accel-Buffering", "no"),
        ];
        self.write_head(status, &fixed, headers, framing)?;
        self.exchange.written = Written::Streaming;
        self.exchange.pending_start = self.out.len();
        Ok(self.stream_view())
    }

    /// Resolves when the client closes its connection before this response is written (to
    /// abandon work done for it). Bytes the client sends meanwhile (a pipelined request) are
    /// left unread, and then this never resolves. The watch starts after
    /// [`PEER_WATCH_DELAY`]: most answers come sooner, and each watch costs a socket peek.
    pub async fn peer_gone(&self) {
        deadline::sleep(PEER_WATCH_DELAY).await;
        let mut probe = [0u8; 1];
        match self.stream.peek(&mut probe).await {
            Ok(0) | Err(_) => {}
            Ok(_) => std::future::pending::<()>().await,
        }
    }

    /// Forces `Connection: close` on this response (if called before it is written) and closes
    /// the connection after it in any case.
    pub fn close_after(&mut self) {
        self.close_after = true;
        self.exchange.close = true;
    }

    /// Writes a buffered response out.
    pub(crate) async fn send_buffered(&mut self) -> io::Result<()> {
        debug_assert!(self.exchange.written == Written::Buffered);
        self.stream_view().send().await
    }

    pub(crate) fn stream_view(&mut self) -> SseStream<'_> {
        SseStream {
            stream: self.stream,
            out: self.out,
            exchange: &mut self.exchange,
            chunked: self.peer_http11,
        }
    }

    /// Discards whatever was buffered so the connection loop can answer instead.
    pub(crate) fn discard_buffered(&mut self) {
        debug_assert!(self.exchange.written != Written::Streaming);
        self.out.clear();
        self.exchange.written = Written::Nothing;
    }

    fn write_head(
        &mut self,
        status: u16,
        fixed: &[(&str, &str)],
        headers: &[(&str, &str)],
        framing: BodyFraming,
    ) -> io::Result<()> {
        if self.exchange.written != Written::Nothing {
            return Err(invalid_input("a response was already written".to_string()));
        }
        if !(200..=599).contains(&status) {
            return Err(invalid_input(format!(
                "status {status} is not a final status"
            )));
        }
        for (name, value) in headers {
            check_header(name, value)?;
        }
        let close = self.close_after
            || !self.peer_keep_alive
            || self.shutdown.is_set()
            || framing == BodyFraming::UntilClose;
        self.exchange.close = close;
        let out = &mut *self.out;
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(status));
        for piece in [" ", reason_phrase(status), "\r\n"] {
            out.extend_from_slice(piece.as_bytes());
        }
        for (name, value) in fixed.iter().chain(headers) {
            for piece in [*name, ": ", *value, "\r\n"] {
                out.extend_from_slice(piece.as_bytes());
            }
        }
        match framing {
            BodyFraming::Length(_) if status == 204 => {}
            BodyFraming::Length(length) => {
                out.extend_from_slice(b"Content-Length: ");
                push_decimal(out, length as u64);
                out.extend_from_slice(b"\r\n");
            }
            BodyFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            BodyFraming::UntilClose => {}
        }
        let connection: &[u8] = if close {
            b"Connection: close\r\n\r\n"
        } else {
            b"Connection: keep-alive\r\n\r\n"
        };
        out.extend_from_slice(connection);
        Ok(())
    }
}

/// What the connection knows about the peer of one request.
#[derive(Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) keep_alive: bool,
    pub(crate) http11: bool,
    pub(crate) head_only: bool,
}

/// Refuses names that are not tokens, framing headers the writer owns, and values that could
/// split the head.
pub(super) fn check_header(name: &str, value: &str) -> io::Result<()> {
    if !is_token(name) {
        return Err(invalid_input(format!(
            "header name {name:?} is not a token"
        )));
    }
    let owned = ["content-length", "transfer-encoding", "connection"];
    if owned.iter().any(|o| name.eq_ignore_ascii_case(o)) {
        return Err(invalid_input(format!(
            "header {name} is set by the http codec"
        )));
    }
    if value.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(invalid_input(format!(
            "header {name} value has cr, lf or nul"
        )));
    }
    Ok(())
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// An event stream being written; see [`ResponseWriter::sse`].
pub struct SseStream<'w> {
    stream: &'w mut TcpStream,
    out: &'w mut Vec<u8>,
    exchange: &'w mut Exchange,
    chunked: bool,
}

impl SseStream<'_> {
    /// Queues one event: `id:` if given, then each line of `data` (split at CRLF, LF or CR) as
    /// a `data:` line. Empty `data` makes a bare `data:` (a priming event that sets the id).
    pub fn event(&mut self, id: Option<&str>, data: &[u8]) -> io::Result<()> {
        if let Some(id) = id {
            if id.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
                return Err(invalid_input("event id has cr, lf or nul".to_string()));
            }
            writeln!(self.out, "id: {id}")?;
        }
        for line in sse_lines(data) {
            self.field_line(b"data", line);
        }
        self.out.push(b'\n');
        Ok(())
    }

    /// Queues a comment block (`: text`, one per line of `text`, then a blank line, so
    /// block-oriented parsers see it at once); keeps idle streams open through proxies.
    pub fn comment(&mut self, text: &str) {
        for line in sse_lines(text.as_bytes()) {
            self.field_line(b"", line);
        }
        self.out.push(b'\n');
    }

    /// Queues `retry: ms`, the client's reconnection delay.
    pub fn retry(&mut self, ms: u64) {
        // Writing into a Vec cannot fail.
        let _ = writeln!(self.out, "retry: {ms}\n");
    }

    /// Sends everything queued (the response head too, the first time) as one chunk.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.frame_pending();
        self.send().await
    }

    /// Sends everything queued and ends the stream (the terminating zero chunk).
    pub async fn finish(mut self) -> io::Result<()> {
        self.finish_in_place().await
    }

    /// Resolves when the peer closes its side or the connection fails. Bytes the peer sends
    /// meanwhile (a request pipelined behind a stream) are discarded and the connection is
    /// closed after this response.
    pub async fn peer_closed(&mut self) {
        let mut scratch = [0u8; 512];
        loop {
            match self.stream.read(&mut scratch).await {
                Ok(0) | Err(_) => return,
                Ok(_) => self.exchange.close = true,
            }
        }
    }

    pub(crate) async fn finish_in_place(&mut self) -> io::Result<()> {
        self.frame_pending();
        if self.chunked {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        self.send().await?;
        self.exchange.written = Written::Finished;
        Ok(())
    }

    fn field_line(&mut self, name: &[u8], line: &[u8]) {
        self.out.extend_from_slice(name);
        self.out.push(b':');
        if !line.is_empty() {
            self.out.push(b' ');
            self.out.extend_from_slice(line);
        }
        self.out.push(b'\n');
    }

    /// Wraps the bytes queued since the last flush into one chunk.
    fn frame_pending(&mut self) {
        let start = self.exchange.pending_start;
        let length = self.out.len() - start;
        if !self.chunked || length == 0 {
            return;
        }
        let size_line = format!("{length:x}\r\n");
        self.out.splice(start..start, size_line.bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    async fn send(&mut self) -> io::Result<()> {
        let result = self.stream.write_all(self.out).await;
        self.out.clear();
        self.exchange.pending_start = 0;
        if result.is_err() {
            self.exchange.written = Written::Broken;
        }
        result
    }
}

/// Lines of SSE `data` split at CRLF, LF or CR; always at least one (possibly empty).
fn sse_lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.iter().position(|b| matches!(b, b'\r' | b'\n')) {
            None => {
                rest = None;
                Some(text)
            }
            Some(i) => {
                let skip = if text[i..].starts_with(b"\r\n") { 2 } else { 1 };
                rest = Some(&text[i + skip..]);
                Some(&text[..i])
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_lines_split_at_crlf_lf_and_cr_and_keep_empty_lines() {
        let lines: Vec<&[u8]> = sse_lines(b"a\r\nb\nc\rd\n").collect();
        assert_eq!(lines, [&b"a"[..], b"b", b"c", b"d", b""]);
        assert_eq!(sse_lines(b"").collect::<Vec<_>>(), [&b""[..]]);
    }

    #[test]
    fn jsonrpc_error_body_escapes_the_message() {
        let body = jsonrpc_error_body("bad \"value\"\n");
        let parsed: serde_json::Value = serde_json::from_slice(&body).expect("valid json");
        assert_eq!(parsed["error"]["message"], "bad \"value\"\n");
        assert_eq!(parsed["error"]["code"], -32600);
        assert!(parsed["id"].is_null());
    }

    #[test]
    fn header_check_refuses_framing_headers_and_head_splitting() {
        assert!(check_header("Mcp-Session-Id", "abc").is_ok());
        assert!(check_header("content-length", "5").is_err());
        assert!(check_header("Connection", "close").is_err());
        assert!(check_header("X-A", "a\r\nInjected: 1").is_err());
        assert!(check_header("bad name", "x").is_err());
        assert!(check_header("", "x").is_err());
    }

    #[test]
    fn every_status_the_gateway_uses_has_a_reason_phrase() {
        for status in [
            200, 202, 204, 400, 403, 404, 405, 406, 408, 413, 415, 431, 500, 501, 503,
        ] {
            assert!(!reason_phrase(status).is_empty(), "{status}");
        }
    }
}
