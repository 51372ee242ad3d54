//! The I/O-free, incremental request parser.
//!
//! Contract: call [`RequestParser::advance`] (or [`RequestParser::parse`]) with the bytes of the
//! connection received so far, starting at the first byte of the request; between calls bytes
//! are only appended. It answers `Incomplete` until one request is framed, then `Complete` with
//! the number of bytes it consumed; the caller drops those bytes and the next call starts the
//! next (pipelined) request. After an error the parser is reset; the connection is closed anyway.
//!
//! Work is linear in the input: the head is re-scanned by `httparse` on each call only while it
//! is incomplete (at most `header_bytes_max` bytes), and a chunked body is decoded as it arrives
//! into a buffer reused across requests.

use super::{HttpError, HttpLimits};
use crate::refusal::RefusalReason;
use httparse::{Header, Status, EMPTY_HEADER};

/// Longest chunk size line, extensions and CRLF included. Real clients send a few hex digits;
/// this leaves room for short extensions while a hostile line is refused after 256 bytes.
pub const CHUNK_LINE_BYTES_MAX: u32 = 256;

/// Longest chunk size in hex digits (`u64`); longer is refused as malformed.
const CHUNK_SIZE_DIGITS_MAX: usize = 16;

/// What an incomplete request is waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// More of the head (request line and header fields).
    Head,
    /// More of the body; the head is complete. `expect_continue`: the client sent
    /// `Expect: 100-continue` on HTTP/1.1 and waits for `100 Continue` before sending it.
    Body {
        /// The client waits for an interim `100 Continue`.
        expect_continue: bool,
    },
}

/// Result of [`RequestParser::advance`]; carries no borrow so the caller can read more bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    Incomplete(Waiting),
    /// One request is framed; [`RequestParser::request`] reads it until the next `advance`.
    Complete {
        /// Bytes of the buffer this request occupied; a pipelined request follows them.
        consumed: u32,
    },
}

/// Result of [`RequestParser::parse`].
#[derive(Debug)]
pub enum Parsed<'a> {
    /// More bytes are needed.
    Incomplete(Waiting),
    /// One framed request.
    Complete(Request<'a>),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of(buf: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - buf.as_ptr() as usize;
        debug_assert!(start + part.len() <= buf.len());
        // The head lies within header_bytes_max (a u32), so the offsets fit.
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

#[derive(Clone, Copy, Debug)]
struct Field {
    name: Span,
    value: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// No body (no `Content-Length`, no `Transfer-Encoding`).
    Empty,
    Length(u32),
    Chunked,
}

#[derive(Clone, Copy, Debug)]
struct Head {
    method: Span,
    path: Span,
    minor_version: u8,
    /// Bytes of the head, blank line included.
    len: u32,
    keep_alive: bool,
    expect_continue: bool,
    framing: Framing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkPhase {
    SizeLine,
    Data { remaining: u32 },
    DataEnd,
    Trailers,
}

#[derive(Clone, Copy, Debug)]
struct ChunkCursor {
    /// Next unread byte of the buffer.
    pos: u32,
    /// Size lines, data CRLFs and trailers so far; bounded by `header_bytes_max`.
    framing_bytes: u32,
    phase: ChunkPhase,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Head,
    Body(Head, ChunkCursor),
    Done {
        head: Head,
        body: Option<Span>,
        consumed: u32,
    },
}

/// Incremental parser for one connection's requests, reused across them.
pub struct RequestParser {
    limits: HttpLimits,
    /// `headers_count_max` slots lent to `httparse` on each call.
    slots: Vec<Header<'static>>,
    fields: Vec<Field>,
    /// Decoded chunked body, at most `request_body_bytes_max` bytes.
    decoded: Vec<u8>,
    state: State,
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: &HttpLimits) -> RequestParser {
        let count = usize::from(limits.headers_count_max);
        RequestParser {
            limits: *limits,
            slots: vec![EMPTY_HEADER; count],
            fields: Vec::with_capacity(count),
            decoded: Vec::new(),
            state: State::Head,
        }
    }

    /// Frames as much of `buf` as has arrived; see the module contract.
    pub fn advance(&mut self, buf: &[u8]) -> Result<Progress, HttpError> {
        let result = self.step(buf);
        if result.is_err() {
            self.state = State::Head;
        }
        result
    }

    /// [`advance`](Self::advance), then the framed request if there is one.
    pub fn parse<'a>(&'a mut self, buf: &'a [u8]) -> Result<Parsed<'a>, HttpError> {
        match self.advance(buf)? {
            Progress::Incomplete(waiting) => Ok(Parsed::Incomplete(waiting)),
            Progress::Complete { .. } => Ok(self
                .request(buf)
                .map_or(Parsed::Incomplete(Waiting::Head), Parsed::Complete)),
        }
    }

    /// The request framed by the last `advance`, read from the same `buf`; `None` otherwise.
    pub fn request<'a>(&'a self, buf: &'a [u8]) -> Option<Request<'a>> {
        let State::Done {
            head,
            body,
            consumed,
        } = self.state
        else {
            return None;
        };
        Some(Request {
            buf,
            method: std::str::from_utf8(head.method.get(buf)).ok()?,
            path: std::str::from_utf8(head.path.get(buf)).ok()?,
            minor_version: head.minor_version,
            keep_alive: head.keep_alive,
            fields: &self.fields,
            body: body.map_or(&self.decoded[..], |span| span.get(buf)),
            consumed,
        })
    }

    fn step(&mut self, buf: &[u8]) -> Result<Progress, HttpError> {
        let (head, mut cursor) = match self.state {
            State::Body(head, cursor) => (head, cursor),
            State::Head | State::Done { .. } => match self.parse_head(buf)? {
                None => return Ok(Progress::Incomplete(Waiting::Head)),
                Some(head) => {
                    let cursor = ChunkCursor {
                        pos: head.len,
                        framing_bytes: 0,
                        phase: ChunkPhase::SizeLine,
                    };
                    (head, cursor)
                }
            },
        };
        let done = match head.framing {
            Framing::Empty => Some((None, head.len)),
            Framing::Length(length) => {
                let end = u64::from(head.len) + u64::from(length);
                let start = head.len;
                (buf.len() as u64 >= end).then_some((
                    Some(Span {
                        start,
                        end: end as u32,
                    }),
                    end as u32,
                ))
            }
            Framing::Chunked => self.decode_chunks(buf, &mut cursor)?.map(|end| (None, end)),
        };
        let Some((body, consumed)) = done else {
            self.state = State::Body(head, cursor);
            let expect_continue = head.expect_continue;
            return Ok(Progress::Incomplete(Waiting::Body { expect_continue }));
        };
        self.state = State::Done {
            head,
            body,
            consumed,
        };
        Ok(Progress::Complete { consumed })
    }

    /// Parses the head once it is whole; `None` while it is incomplete.
    fn parse_head(&mut self, buf: &[u8]) -> Result<Option<Head>, HttpError> {
        let window_len = buf.len().min(self.limits.header_bytes_max as usize);
        let window = &buf[..window_len];
        let mut slots: Vec<Header<'_>> = std::mem::take(&mut self.slots);
        let mut request = httparse::Request::new(&mut slots);
        let status = request.parse(window);
        let parsed = match status {
            Ok(Status::Complete(len)) => {
                self.fields.clear();
                for header in request.headers.iter() {
                    let name = Span::of(buf, header.name.as_bytes());
                    let value = Span::of(buf, header.value);
                    self.fields.push(Field { name, value });
                }
                let method = Span::of(buf, request.method.unwrap_or_default().as_bytes());
                let path = Span::of(buf, request.path.unwrap_or_default().as_bytes());
                let minor_version = request.version.unwrap_or_default();
                Ok(Some((method, path, minor_version, len as u32)))
            }
            Ok(Status::Partial) if window_len >= self.limits.header_bytes_max as usize => {
                Err(head_too_large(&self.limits))
            }
            Ok(Status::Partial) => Ok(None),
            Err(httparse::Error::TooManyHeaders) => Err(too_many_fields("request", &self.limits)),
            Err(e) => Err(malformed(format!("request head: {e}"))),
        };
        self.slots = recycle(slots);
        match parsed? {
            None => Ok(None),
            Some((method, path, minor_version, len)) => {
                self.decoded.clear();
                let framing = self.head_semantics(buf, minor_version)?;
                Ok(Some(Head {
                    method,
                    path,
                    minor_version,
                    len,
                    keep_alive: framing.keep_alive,
                    expect_continue: framing.expect_continue && minor_version == 1,
                    framing: framing.framing,
                }))
            }
        }
    }

    /// Applies RFC 9112 framing and connection rules to the parsed fields.
    fn head_semantics(&self, buf: &[u8], minor_version: u8) -> Result<Semantics, HttpError> {
        let mut facts = HeadFacts::default();
        for field in &self.fields {
            facts.observe(field.name.get(buf), field.value.get(buf))?;
        }
        facts.into_semantics(minor_version, &self.limits)
    }

    /// Decodes chunks from `cursor.pos`; `Some(end)` once the last chunk and trailers are in.
    fn decode_chunks(
        &mut self,
        buf: &[u8],
        cursor: &mut ChunkCursor,
    ) -> Result<Option<u32>, HttpError> {
        loop {
            let rest = &buf[cursor.pos as usize..];
            let used = match cursor.phase {
                ChunkPhase::SizeLine => self.chunk_size_line(rest, cursor)?,
                ChunkPhase::Data { remaining } => {
                    let take = rest.len().min(remaining as usize);
                    self.decoded.extend_from_slice(&rest[..take]);
                    let remaining = remaining - take as u32;
                    cursor.phase = if remaining == 0 {
                        ChunkPhase::DataEnd
                    } else {
                        ChunkPhase::Data { remaining }
                    };
                    (take > 0).then_some(take as u32)
                }
                ChunkPhase::DataEnd => chunk_data_end(rest, cursor)?,
                ChunkPhase::Trailers => {
                    let Some(len) = self.trailers(rest, cursor)? else {
                        return Ok(None);
                    };
                    return Ok(Some(cursor.pos + len));
                }
            };
            match used {
                Some(len) => cursor.pos += len,
                None => return Ok(None),
            }
        }
    }

    /// Reads one chunk size line; moves to the chunk's data or to the trailers.
    fn chunk_size_line(
        &self,
        rest: &[u8],
        cursor: &mut ChunkCursor,
    ) -> Result<Option<u32>, HttpError> {
        let window = &rest[..rest.len().min(CHUNK_LINE_BYTES_MAX as usize)];
        let Some((len, size)) = parse_chunk_line(window)? else {
            if window.len() >= CHUNK_LINE_BYTES_MAX as usize {
                return Err(malformed(format!(
                    "chunk size line exceeds {CHUNK_LINE_BYTES_MAX} bytes"
                )));
            }
            self.charge_framing(cursor.framing_bytes, window.len() as u32)?;
            return Ok(None);
        };
        cursor.framing_bytes = self.charge_framing(cursor.framing_bytes, len)?;
        let total = self.decoded.len() as u64 + size;
        if total > u64::from(self.limits.request_body_bytes_max) {
            return Err(body_too_large(total, &self.limits));
        }
        cursor.phase = if size == 0 {
            ChunkPhase::Trailers
        } else {
            // size ≤ request_body_bytes_max, a u32, by the check above.
            ChunkPhase::Data {
                remaining: size as u32,
            }
        };
        Ok(Some(len))
    }

    /// Reads the trailer section (discarded) and its blank line; `Some(len)` once whole.
    fn trailers(&mut self, rest: &[u8], cursor: &ChunkCursor) -> Result<Option<u32>, HttpError> {
        let budget = self.limits.header_bytes_max - cursor.framing_bytes;
        let window = &rest[..rest.len().min(budget as usize)];
        let mut slots: Vec<Header<'_>> = std::mem::take(&mut self.slots);
        let status = match httparse::parse_headers(window, &mut slots) {
            Ok(Status::Complete((len, _))) => Ok(Status::Complete(len)),
            Ok(Status::Partial) => Ok(Status::Partial),
            Err(e) => Err(e),
        };
        self.slots = recycle(slots);
        match status {
            Ok(Status::Complete(len)) => Ok(Some(len as u32)),
            Ok(Status::Partial) if window.len() >= budget as usize => Err(framing_too_large(
                u64::from(cursor.framing_bytes) + rest.len() as u64,
                &self.limits,
            )),
            Ok(Status::Partial) => Ok(None),
            Err(httparse::Error::TooManyHeaders) => Err(too_many_fields("trailer", &self.limits)),
            Err(e) => Err(malformed(format!("chunked trailer section: {e}"))),
        }
    }

    /// Adds `len` framing bytes to `so_far`, refusing past `header_bytes_max`.
    fn charge_framing(&self, so_far: u32, len: u32) -> Result<u32, HttpError> {
        let total = u64::from(so_far) + u64::from(len);
        if total > u64::from(self.limits.header_bytes_max) {
            return Err(framing_too_large(total, &self.limits));
        }
        Ok(total as u32)
    }
}

/// Hands `httparse`'s header slots back for the next call, keeping their allocation.
fn recycle(slots: Vec<Header<'_>>) -> Vec<Header<'static>> {
    slots.into_iter().map(|_| EMPTY_HEADER).collect()
}

/// The CRLF after a chunk's data.
fn chunk_data_end(rest: &[u8], cursor: &mut ChunkCursor) -> Result<Option<u32>, HttpError> {
    let seen = &rest[..rest.len().min(2)];
    if seen != &b"\r\n"[..seen.len()] {
        return Err(malformed("chunk data not followed by crlf".to_string()));
    }
    if seen.len() < 2 {
        return Ok(None);
    }
    cursor.framing_bytes += 2;
    cursor.phase = ChunkPhase::SizeLine;
    Ok(Some(2))
}

/// `chunk-size [ chunk-ext ] CRLF` → (line length, size); `None` until the CRLF arrives.
/// Extensions are skipped but must be visible characters, spaces or tabs.
fn parse_chunk_line(line: &[u8]) -> Result<Option<(u32, u64)>, HttpError> {
    let invalid = || {
        let shown = String::from_utf8_lossy(&line[..line.len().min(32)]).into_owned();
        malformed(format!("invalid chunk size line {shown:?}"))
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits > CHUNK_SIZE_DIGITS_MAX {
        return Err(malformed(format!(
            "chunk size has more than {CHUNK_SIZE_DIGITS_MAX} hex digits"
        )));
    }
    if digits == 0 {
        return if line.is_empty() {
            Ok(None)
        } else {
            Err(invalid())
        };
    }
    let size = line[..digits].iter().fold(0u64, |size, digit| {
        let value = (*digit as char).to_digit(16).unwrap_or_default();
        (size << 4) | u64::from(value)
    });
    let mut in_extension = false;
    for (i, byte) in line.iter().enumerate().skip(digits) {
        match byte {
            b'\r' => {
                return match line.get(i + 1) {
                    None => Ok(None),
                    Some(b'\n') => Ok(Some(((i + 2) as u32, size))),
                    Some(_) => Err(malformed("chunk size line has a bare cr".to_string())),
                };
            }
            b';' => in_extension = true,
            b' ' | b'\t' => {}
            0x21..=0x7e | 0x80..=0xff if in_extension => {}
            _ => return Err(invalid()),
        }
    }
    Ok(None)
}

/// What the header fields say, gathered in one pass.
#[derive(Default)]
struct HeadFacts {
    content_length: Option<u64>,
    transfer_encoding: Option<bool>,
    transfer_encodings: u32,
    hosts: u32,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

struct Semantics {
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

impl HeadFacts {
    fn observe(&mut self, name: &[u8], value: &[u8]) -> Result<(), HttpError> {
        if name.eq_ignore_ascii_case(b"content-length") {
            self.content_length(value)?;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            self.transfer_encodings += 1;
            self.transfer_encoding = Some(value.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"host") {
            self.hosts += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in list_elements(value) {
                self.close |= token.eq_ignore_ascii_case(b"close");
                self.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        }
        Ok(())
    }

    /// Each `Content-Length` (or list element) must be digits and all must agree.
    fn content_length(&mut self, value: &[u8]) -> Result<(), HttpError> {
        let mut any = false;
        for element in list_elements(value) {
            any = true;
            let length = parse_decimal(element).ok_or_else(|| {
                malformed(format!(
                    "invalid content-length {:?}",
                    String::from_utf8_lossy(value)
                ))
            })?;
            match self.content_length {
                Some(seen) if seen != length => {
                    return Err(HttpError::new(
                        RefusalReason::AmbiguousFraming,
                        format!("conflicting content-length values {seen} and {length}"),
                    ));
                }
                _ => self.content_length = Some(length),
            }
        }
        if !any {
            return Err(malformed("empty content-length".to_string()));
        }
        Ok(())
    }

    fn into_semantics(
        self,
        minor_version: u8,
        limits: &HttpLimits,
    ) -> Result<Semantics, HttpError> {
        if self.content_length.is_some() && self.transfer_encoding.is_some() {
            return Err(HttpError::new(
                RefusalReason::AmbiguousFraming,
                "both content-length and transfer-encoding are present".to_string(),
            ));
        }
        if self.transfer_encoding.is_some() && minor_version == 0 {
            return Err(malformed(
                "transfer-encoding in an http/1.0 request".to_string(),
            ));
        }
        if self.transfer_encoding == Some(false) || self.transfer_encodings > 1 {
            return Err(HttpError::new(
                RefusalReason::UnsupportedTransferEncoding,
                "transfer-encoding other than exactly chunked is not supported".to_string(),
            ));
        }
        if minor_version == 1 && self.hosts != 1 {
            return Err(malformed(format!(
                "http/1.1 request needs exactly one host header, got {}",
                self.hosts
            )));
        }
        let framing = match (self.content_length, self.transfer_encoding) {
            (Some(length), _) if length > u64::from(limits.request_body_bytes_max) => {
                return Err(body_too_large(length, limits));
            }
            (Some(0), _) | (None, None) => Framing::Empty,
            (Some(length), _) => Framing::Length(length as u32),
            (None, Some(_)) => Framing::Chunked,
        };
        let keep_alive = !self.close && (minor_version == 1 || self.keep_alive);
        Ok(Semantics {
            framing,
            keep_alive,
            expect_continue: self.expect_continue,
        })
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

fn malformed(message: String) -> HttpError {
    HttpError::new(RefusalReason::MalformedHttp, message)
}

fn head_too_large(limits: &HttpLimits) -> HttpError {
    HttpError::new(
        RefusalReason::HeadersTooLarge,
        format!(
            "request head exceeds header_bytes_max {}",
            limits.header_bytes_max
        ),
    )
}

fn too_many_fields(section: &str, limits: &HttpLimits) -> HttpError {
    HttpError::new(
        RefusalReason::HeadersTooLarge,
        format!(
            "{section} has more than headers_count_max {} header fields",
            limits.headers_count_max
        ),
    )
}

fn body_too_large(length: u64, limits: &HttpLimits) -> HttpError {
    HttpError::new(
        RefusalReason::BodyTooLarge,
        format!(
            "request body {length} bytes exceeds request_body_bytes_max {}",
            limits.request_body_bytes_max
        ),
    )
}

fn framing_too_large(length: u64, limits: &HttpLimits) -> HttpError {
    HttpError::new(
        RefusalReason::BodyTooLarge,
        format!(
            "chunk framing and trailers {length} bytes exceed header_bytes_max {}",
            limits.header_bytes_max
        ),
    )
}

/// One framed request, borrowed from the connection's buffer and parser.
#[derive(Debug)]
pub struct Request<'a> {
    buf: &'a [u8],
    method: &'a str,
    path: &'a str,
    minor_version: u8,
    keep_alive: bool,
    fields: &'a [Field],
    body: &'a [u8],
    consumed: u32,
}

impl<'a> Request<'a> {
    /// The method token, e.g. `POST`.
    pub fn method(&self) -> &'a str {
        self.method
    }

    /// The request target as sent, e.g. `/mcp?x=1`.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// Header fields in arrival order, as (name, value) with surrounding whitespace trimmed.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        self.fields
            .iter()
            .map(|field| (field.name.get(self.buf), field.value.get(self.buf)))
    }

    /// The first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, value)| value)
    }

    /// [`header`](Self::header) as UTF-8; `None` if absent or not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&'a str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Whether the client allows another request on this connection: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The body, decoded if it was chunked; empty when there was none.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Bytes of the buffer this request occupied, head and framing included.
    pub fn consumed(&self) -> u32 {
        self.consumed
    }
}

#[cfg(test)]
mod tests;
