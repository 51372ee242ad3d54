//! The Server-Sent Events reader (WHATWG HTML §9.2.6, "interpreting an event stream").
//!
//! Contract: [`SseReader::next_event`] is called with the decoded body bytes not yet consumed
//! (the caller drops `consumed` bytes after each call and appends new ones at the end). Each
//! call reads whole lines until one event is dispatched or no whole line is left; a partial
//! line is never re-scanned. Lines end at CRLF, LF or CR; a leading byte-order mark is dropped.
//! Fields: `data` (appended, lines joined with LF), `event`, `id` (ignored if it holds NUL),
//! `retry` (digits only); lines starting with `:` are comments; other fields are ignored. A
//! blank line dispatches the event if it has data (an `id:` plus an empty `data:` line, the MCP
//! priming event, is dispatched with empty data). An event cut off by the end of the stream is
//! dropped.
//!
//! Bound: an event's `data`, `event` and `id` values together are at most
//! `sse_event_bytes_max` bytes, and any one line at most that plus a field name; past that the
//! stream is refused. So the unconsumed input the caller keeps is bounded too.

use super::ClientError;
use crate::config::limits::ClientLimits;

const BYTE_ORDER_MARK: &[u8] = "\u{feff}".as_bytes();

/// Room on a line for the longest field name with its colon and space (`retry: `), so a line
/// whose value is at the event limit is not refused as a line.
const FIELD_PREFIX_BYTES_MAX: usize = 8;

/// One dispatched event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `id` this event's block set, if it set one. The id in force for the stream (the one
    /// to resume from) is [`SseReader::last_event_id`].
    pub id: Option<String>,
    /// The `event` type, if the block set one (`None` means the default, `message`).
    pub event: Option<String>,
    /// The `data` lines joined with LF, without a final LF.
    pub data: Vec<u8>,
    /// The reconnection delay the block asked for, in ms.
    pub retry_ms: Option<u64>,
}

/// What one [`SseReader::next_event`] call did.
#[derive(Debug, PartialEq, Eq)]
pub struct SseStep {
    /// Bytes of the input used; the caller drops them before the next call.
    pub consumed: usize,
    /// An event, if a blank line dispatched one.
    pub event: Option<SseEvent>,
}

/// Incremental reader of one event stream.
pub struct SseReader {
    event_bytes_max: u32,
    /// Bytes at the start of the unconsumed input already searched for a line end.
    scanned: usize,
    /// The last line ended in CR: an LF right after it belongs to that line end.
    skip_lf: bool,
    /// Whether the stream's first bytes were checked for a byte-order mark.
    started: bool,
    /// The event being built; `data` holds each line plus LF, as the standard says.
    pending: SseEvent,
    has_data: bool,
    pending_bytes: usize,
    last_event_id: String,
}

impl SseReader {
    /// A reader enforcing `sse_event_bytes_max`.
    pub fn new(limits: &ClientLimits) -> SseReader {
        SseReader {
            event_bytes_max: limits.sse_event_bytes_max,
            scanned: 0,
            skip_lf: false,
            started: false,
            pending: SseEvent::default(),
            has_data: false,
            pending_bytes: 0,
            last_event_id: String::new(),
        }
    }

    /// The id in force: set by the last `id` field, kept across events.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// Reads lines from the start of `input` until one event is dispatched or no whole line
    /// is left; see the module contract.
    pub fn next_event(&mut self, input: &[u8]) -> Result<SseStep, ClientError> {
        let mut pos = 0;
        if !self.started {
            if input.len() < BYTE_ORDER_MARK.len() && BYTE_ORDER_MARK.starts_with(input) {
                return Ok(SseStep {
                    consumed: 0,
                    event: None,
                });
            }
            self.started = true;
            if input.starts_with(BYTE_ORDER_MARK) {
                pos = BYTE_ORDER_MARK.len();
            }
        }
        loop {
            if self.skip_lf && pos < input.len() {
                self.skip_lf = false;
                if input[pos] == b'\n' {
                    pos += 1;
                }
            }
            let rest = &input[pos..];
            let Some(end) = rest[self.scanned..]
                .iter()
                .position(|b| matches!(b, b'\r' | b'\n'))
                .map(|i| self.scanned + i)
            else {
                self.scanned = rest.len();
                if rest.len() > self.event_bytes_max as usize + FIELD_PREFIX_BYTES_MAX {
                    return Err(ClientError::too_large(format!(
                        "event stream line exceeds sse_event_bytes_max {}",
                        self.event_bytes_max
                    )));
                }
                return Ok(SseStep {
                    consumed: pos,
                    event: None,
                });
            };
            self.scanned = 0;
            self.skip_lf = rest[end] == b'\r';
            pos += end + 1;
            if let Some(event) = self.line(&rest[..end])? {
                return Ok(SseStep {
                    consumed: pos,
                    event: Some(event),
                });
            }
        }
    }

    /// Applies one line; a blank line may dispatch the event.
    fn line(&mut self, line: &[u8]) -> Result<Option<SseEvent>, ClientError> {
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &line[line.len()..]),
        };
        match name {
            b"data" => {
                self.charge(value.len() + 1)?;
                self.pending.data.extend_from_slice(value);
                self.pending.data.push(b'\n');
                self.has_data = true;
            }
            b"event" => {
                self.charge(value.len())?;
                self.pending.event = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"id" if !value.contains(&0) => {
                self.charge(value.len())?;
                let id = String::from_utf8_lossy(value).into_owned();
                self.last_event_id.clone_from(&id);
                self.pending.id = Some(id);
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |ms, d| {
                    ms.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.pending.retry_ms = Some(ms);
            }
            _ => {}
        }
        Ok(None)
    }

    /// Ends the block: the event if it has data; the pending fields are reset either way.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let mut event = std::mem::take(&mut self.pending);
        let has_data = std::mem::replace(&mut self.has_data, false);
        self.pending_bytes = 0;
        if !has_data {
            return None;
        }
        event.data.pop();
        Some(event)
    }

    fn charge(&mut self, len: usize) -> Result<(), ClientError> {
        self.pending_bytes = self.pending_bytes.saturating_add(len);
        if self.pending_bytes > self.event_bytes_max as usize {
            return Err(ClientError::too_large(format!(
                "event stream event exceeds sse_event_bytes_max {}",
                self.event_bytes_max
            )));
        }
        Ok(())
    }
}
