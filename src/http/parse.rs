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

use super::framing::{offset, recycle, ChunkError, ChunkLimits, ChunkedDecoder};
use super::head::{field_value, ContentLengthFault, HeadFacts};
use super::{HttpError, HttpLimits};
use crate::refusal::RefusalReason;
use httparse::{Header, Status, EMPTY_HEADER};

pub use super::framing::CHUNK_LINE_BYTES_MAX;

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
        let range = offset(buf, part);
        // The head lies within header_bytes_max (a u32), so the offsets fit.
        Span {
            start: range.start as u32,
            end: range.end as u32,
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

#[derive(Clone, Copy, Debug)]
struct ChunkCursor {
    /// Next unread byte of the buffer.
    pos: u32,
    /// Size lines, data CRLFs and trailers are bounded by `header_bytes_max`.
    decoder: ChunkedDecoder,
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
                        decoder: ChunkedDecoder::new(),
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
        let mut facts = RequestFacts::default();
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
        let limits = ChunkLimits {
            body_bytes_max: u64::from(self.limits.request_body_bytes_max),
            framing_bytes_max: u64::from(self.limits.header_bytes_max),
        };
        let rest = &buf[cursor.pos as usize..];
        let decoded = cursor
            .decoder
            .decode(rest, &mut self.decoded, &limits, &mut self.slots)
            .map_err(|error| chunk_refusal(error, &self.limits))?;
        // The body lies within the input buffer, whose size is a u32 (`input_buffer_bytes_max`).
        cursor.pos += decoded.consumed as u32;
        Ok(decoded.done.then_some(cursor.pos))
    }
}

/// The server's refusal for a chunked body the decoder refused.
fn chunk_refusal(error: ChunkError, limits: &HttpLimits) -> HttpError {
    match error {
        ChunkError::Malformed(message) => malformed(message),
        ChunkError::BodyTooLarge { length } => body_too_large(length, limits),
        ChunkError::FramingTooLarge { length } => framing_too_large(length, limits),
        ChunkError::TooManyTrailerFields => too_many_fields("trailer", limits),
    }
}

/// What a request's header fields say: the facts both codecs frame by, and those only a
/// server reads.
#[derive(Default)]
struct RequestFacts {
    head: HeadFacts,
    hosts: u32,
    expect_continue: bool,
}

struct Semantics {
    framing: Framing,
    keep_alive: bool,
    expect_continue: bool,
}

impl RequestFacts {
    fn observe(&mut self, name: &[u8], value: &[u8]) -> Result<(), HttpError> {
        if name.eq_ignore_ascii_case(b"host") {
            self.hosts += 1;
        } else if name.eq_ignore_ascii_case(b"expect") {
            self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else {
            self.head
                .observe(name, value)
                .map_err(content_length_refusal)?;
        }
        Ok(())
    }

    fn into_semantics(
        self,
        minor_version: u8,
        limits: &HttpLimits,
    ) -> Result<Semantics, HttpError> {
        let content_length = self.head.content_length();
        let transfer_encoded = self.head.transfer_encoded();
        if content_length.is_some() && transfer_encoded {
            return Err(HttpError::new(
                RefusalReason::AmbiguousFraming,
                "both content-length and transfer-encoding are present".to_string(),
            ));
        }
        if transfer_encoded && minor_version == 0 {
            return Err(malformed(
                "transfer-encoding in an http/1.0 request".to_string(),
            ));
        }
        if transfer_encoded && !self.head.chunked_only() {
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
        let framing = match content_length {
            Some(length) if length > u64::from(limits.request_body_bytes_max) => {
                return Err(body_too_large(length, limits));
            }
            Some(0) => Framing::Empty,
            Some(length) => Framing::Length(length as u32),
            None if transfer_encoded => Framing::Chunked,
            None => Framing::Empty,
        };
        Ok(Semantics {
            framing,
            keep_alive: self.head.persistent(minor_version),
            expect_continue: self.expect_continue,
        })
    }
}

/// The server's refusal for `Content-Length` fields the facts refused: differing lengths are
/// ambiguous framing, anything else malformed.
fn content_length_refusal(fault: ContentLengthFault) -> HttpError {
    let reason = match fault {
        ContentLengthFault::Conflicting { .. } => RefusalReason::AmbiguousFraming,
        ContentLengthFault::Invalid { .. } | ContentLengthFault::Empty => {
            RefusalReason::MalformedHttp
        }
    };
    HttpError::new(reason, fault.to_string())
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
        field_value(self.headers(), name)
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
