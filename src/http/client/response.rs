//! The incremental response parser: one head (after any interim `1xx` heads), then its body.
//!
//! Contract: [`ResponseParser::head`] is called with the connection's bytes from the first byte
//! of the response, only appended to between calls, until it returns the head. Then
//! [`ResponseParser::body`] is called with the bytes after those already consumed (the caller
//! drops consumed bytes, so the input stays small) until it reports the body done, or
//! [`ResponseParser::end_of_input`] when the server closed first.

use super::{ClientError, ClientErrorKind};
use crate::config::limits::ClientLimits;
use crate::http::framing::{offset, recycle, ChunkError, ChunkLimits, ChunkedDecoder, Decoded};
use crate::http::head::{field_value, HeadFacts};
use httparse::{Header, Status, EMPTY_HEADER};
use std::ops::Range;

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: a `HEAD` request, or status 204 or 304.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither header: the body ends when the server closes the connection.
    UntilClose,
}

/// One response head, owned (copied out of the connection's buffer).
#[derive(Clone, Debug)]
pub struct ResponseHead {
    status: u16,
    minor_version: u8,
    /// The final head's bytes, status line to blank line.
    raw: Vec<u8>,
    fields: Vec<(Range<usize>, Range<usize>)>,
    framing: BodyFraming,
    keep_alive: bool,
    /// Bytes of the input the heads took, interim `1xx` heads included.
    consumed: usize,
}

impl ResponseHead {
    /// The status code of the final response.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub fn minor_version(&self) -> u8 {
        self.minor_version
    }

    /// Header fields in arrival order, as (name, value).
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields
            .iter()
            .map(|(name, value)| (&self.raw[name.clone()], &self.raw[value.clone()]))
    }

    /// The first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        field_value(self.headers(), name)
    }

    /// [`header`](Self::header) as UTF-8; `None` if absent or not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// How the body is delimited.
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }

    /// A successful response whose media type is `text/event-stream`: its body is read event
    /// by event, with no total bound.
    pub fn is_event_stream(&self) -> bool {
        let Some(content_type) = self.header("content-type") else {
            return false;
        };
        let media_type = content_type
            .split(|b| *b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        (200..300).contains(&self.status) && media_type.eq_ignore_ascii_case(b"text/event-stream")
    }

    /// The server lets the connection carry another request once this body is read: HTTP/1.1
    /// without `Connection: close` (HTTP/1.0 only with `keep-alive`), and a delimited body.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive && self.framing != BodyFraming::UntilClose
    }

    /// Bytes of the input the head took (interim heads included); the body starts after them.
    pub fn consumed(&self) -> usize {
        self.consumed
    }
}

/// What one [`ResponseParser::body`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyProgress {
    /// Bytes of the input used; the caller drops them before the next call.
    pub consumed: usize,
    /// The body is complete.
    pub done: bool,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Head,
    Body(BodyState),
}

#[derive(Clone, Copy, Debug)]
enum BodyState {
    Length { remaining: u64 },
    Chunked(ChunkedDecoder, ChunkLimits),
    UntilClose { seen: u64, bytes_max: u64 },
    Done,
}

/// Incremental parser for one connection's responses, reused across them.
pub struct ResponseParser {
    limits: ClientLimits,
    /// `response_headers_count_max` slots lent to `httparse` on each call.
    slots: Vec<Header<'static>>,
    state: State,
}

impl ResponseParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: &ClientLimits) -> ResponseParser {
        ResponseParser {
            limits: *limits,
            slots: vec![EMPTY_HEADER; usize::from(limits.response_headers_count_max)],
            state: State::Head,
        }
    }

    /// Parses the head at the start of `input` once it is whole, skipping interim `1xx` heads;
    /// `None` while it is incomplete. `request_method` decides whether a body follows (`HEAD`).
    /// On success the parser expects that response's body next.
    pub fn head(
        &mut self,
        input: &[u8],
        request_method: &str,
    ) -> Result<Option<ResponseHead>, ClientError> {
        debug_assert!(matches!(self.state, State::Head));
        let window_len = input
            .len()
            .min(self.limits.response_head_bytes_max as usize);
        let mut start = 0;
        loop {
            let Some(head) = self.parse_one(input, start, window_len, request_method)? else {
                return Ok(None);
            };
            if (100..200).contains(&head.status) {
                start = head.consumed;
                continue;
            }
            self.state = State::Body(self.body_state(&head)?);
            return Ok(Some(head));
        }
    }

    /// Decodes body bytes from the start of `input`, appending them to `out`. A buffered body
    /// is bounded by `response_body_bytes_max`; an event stream's is not (its reader bounds each
    /// event). Once `done`, the parser expects the next response's head.
    pub fn body(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<BodyProgress, ClientError> {
        let State::Body(state) = &mut self.state else {
            return Err(ClientError::malformed(
                "no response head was read".to_string(),
            ));
        };
        let progress = match state {
            BodyState::Length { remaining } => {
                let take = input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                BodyProgress {
                    consumed: take,
                    done: *remaining == 0,
                }
            }
            BodyState::Chunked(decoder, limits) => {
                let limits = *limits;
                let Decoded { consumed, done } = decoder
                    .decode(input, out, &limits, &mut self.slots)
                    .map_err(|error| chunk_refusal(error, &limits, &self.limits))?;
                BodyProgress { consumed, done }
            }
            BodyState::UntilClose { seen, bytes_max } => {
                *seen += input.len() as u64;
                if *seen > *bytes_max {
                    return Err(body_too_large(*seen, &self.limits));
                }
                out.extend_from_slice(input);
                BodyProgress {
                    consumed: input.len(),
                    done: false,
                }
            }
            BodyState::Done => BodyProgress {
                consumed: 0,
                done: true,
            },
        };
        if progress.done {
            self.state = State::Head;
        }
        Ok(progress)
    }

    /// The server closed the connection: completes a body read until close, refuses any
    /// other body that is not whole.
    pub fn end_of_input(&mut self) -> Result<(), ClientError> {
        let state = std::mem::replace(&mut self.state, State::Head);
        match state {
            State::Head => Err(closed_early("before the response head was whole")),
            State::Body(BodyState::UntilClose { .. } | BodyState::Done) => Ok(()),
            State::Body(BodyState::Length { remaining }) => Err(closed_early(&format!(
                "with {remaining} bytes of the content-length body missing"
            ))),
            State::Body(BodyState::Chunked(..)) => {
                Err(closed_early("before the last chunk of the chunked body"))
            }
        }
    }

    /// Parses one head at `input[start..]` within the first `window_len` bytes.
    fn parse_one(
        &mut self,
        input: &[u8],
        start: usize,
        window_len: usize,
        request_method: &str,
    ) -> Result<Option<ResponseHead>, ClientError> {
        let window = &input[start..window_len.max(start)];
        let mut slots: Vec<Header<'_>> = std::mem::take(&mut self.slots);
        let mut response = httparse::Response::new(&mut slots);
        let parsed = match response.parse(window) {
            Ok(Status::Complete(len)) => {
                let mut fields = Vec::with_capacity(response.headers.len());
                for header in response.headers.iter() {
                    fields.push((
                        offset(window, header.name.as_bytes()),
                        offset(window, header.value),
                    ));
                }
                let status = response.code.unwrap_or_default();
                let minor_version = response.version.unwrap_or_default();
                Ok(Some((status, minor_version, len, fields)))
            }
            Ok(Status::Partial) if window_len >= self.limits.response_head_bytes_max as usize => {
                Err(ClientError::too_large(format!(
                    "response head exceeds response_head_bytes_max {}",
                    self.limits.response_head_bytes_max
                )))
            }
            Ok(Status::Partial) => Ok(None),
            Err(httparse::Error::TooManyHeaders) => Err(too_many_fields("head", &self.limits)),
            Err(e) => Err(ClientError::malformed(format!("response head: {e}"))),
        };
        self.slots = recycle(slots);
        let Some((status, minor_version, len, fields)) = parsed? else {
            return Ok(None);
        };
        // Read from the ranges once the slots are back, so a refused head keeps them too.
        let mut facts = HeadFacts::default();
        for (name, value) in &fields {
            facts
                .observe(&window[name.clone()], &window[value.clone()])
                .map_err(|fault| ClientError::malformed(fault.to_string()))?;
        }
        let framing = framing(&facts, status, minor_version, request_method)?;
        Ok(Some(ResponseHead {
            status,
            minor_version,
            raw: window[..len].to_vec(),
            fields,
            framing,
            keep_alive: facts.persistent(minor_version),
            consumed: start + len,
        }))
    }

    /// The body state for `head`: buffered bodies bounded by `response_body_bytes_max`, event
    /// streams unbounded in total.
    fn body_state(&self, head: &ResponseHead) -> Result<BodyState, ClientError> {
        let bytes_max = if head.is_event_stream() {
            u64::MAX
        } else {
            u64::from(self.limits.response_body_bytes_max)
        };
        Ok(match head.framing {
            BodyFraming::Empty | BodyFraming::Length(0) => BodyState::Done,
            BodyFraming::Length(length) if length > bytes_max => {
                return Err(body_too_large(length, &self.limits));
            }
            BodyFraming::Length(length) => BodyState::Length { remaining: length },
            BodyFraming::Chunked => {
                // A stream's framing grows with its length, so only each framing element is
                // bounded (by the connection's input buffer); a buffered body's is bounded whole.
                let framing_bytes_max = if head.is_event_stream() {
                    u64::MAX
                } else {
                    u64::from(self.limits.response_head_bytes_max)
                };
                let limits = ChunkLimits {
                    body_bytes_max: bytes_max,
                    framing_bytes_max,
                };
                BodyState::Chunked(ChunkedDecoder::new(), limits)
            }
            BodyFraming::UntilClose => BodyState::UntilClose { seen: 0, bytes_max },
        })
    }
}

/// RFC 9112 §6.3, strictly: no body for `HEAD`, 1xx, 204 and 304; otherwise exactly one of
/// `chunked` or `Content-Length`, or read until close.
fn framing(
    facts: &HeadFacts,
    status: u16,
    minor_version: u8,
    request_method: &str,
) -> Result<BodyFraming, ClientError> {
    if status == 101 {
        return Err(ClientError::malformed(
            "101 switching protocols was not asked for".to_string(),
        ));
    }
    if request_method == "HEAD" || (100..200).contains(&status) || matches!(status, 204 | 304) {
        return Ok(BodyFraming::Empty);
    }
    let content_length = facts.content_length();
    let transfer_encoded = facts.transfer_encoded();
    if content_length.is_some() && transfer_encoded {
        return Err(ClientError::malformed(
            "both content-length and transfer-encoding are present".to_string(),
        ));
    }
    if transfer_encoded && minor_version == 0 {
        return Err(ClientError::malformed(
            "transfer-encoding in an http/1.0 response".to_string(),
        ));
    }
    if transfer_encoded && !facts.chunked_only() {
        return Err(ClientError::malformed(
            "transfer-encoding other than exactly chunked is not supported".to_string(),
        ));
    }
    Ok(match content_length {
        Some(length) => BodyFraming::Length(length),
        None if transfer_encoded => BodyFraming::Chunked,
        None => BodyFraming::UntilClose,
    })
}

/// The client's error for a chunked body the decoder refused.
fn chunk_refusal(error: ChunkError, chunk: &ChunkLimits, limits: &ClientLimits) -> ClientError {
    match error {
        ChunkError::Malformed(message) => ClientError::malformed(message),
        ChunkError::BodyTooLarge { length } => body_too_large(length, limits),
        ChunkError::FramingTooLarge { length } => ClientError::too_large(format!(
            "chunk framing and trailers {length} bytes exceed response_head_bytes_max {}",
            chunk.framing_bytes_max
        )),
        ChunkError::TooManyTrailerFields => too_many_fields("trailer section", limits),
    }
}

fn body_too_large(length: u64, limits: &ClientLimits) -> ClientError {
    ClientError::too_large(format!(
        "response body {length} bytes exceeds response_body_bytes_max {}",
        limits.response_body_bytes_max
    ))
}

fn too_many_fields(section: &str, limits: &ClientLimits) -> ClientError {
    ClientError::too_large(format!(
        "response {section} has more than response_headers_count_max {} fields",
        limits.response_headers_count_max
    ))
}

fn closed_early(when: &str) -> ClientError {
    ClientError::new(
        ClientErrorKind::ClosedEarly,
        format!("connection closed {when}"),
    )
}
