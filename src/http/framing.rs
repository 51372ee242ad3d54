//! Framing shared by the server's request parser and the upstream client's response parser:
//! the incremental chunked-body decoder, the reuse of `httparse`'s header slots and the offsets
//! of what it parsed. What the header fields say about framing is [`super::head`].
//!
//! The decoder is I/O-free and knows no limit names: it reports a [`ChunkError`] and each codec
//! turns that into its own error naming its own limits (`request_body_bytes_max` for the server,
//! `response_body_bytes_max` for the client). State is per body and lives wherever the body is
//! being read, on that connection's shard.

use httparse::{Header, Status, EMPTY_HEADER};
use std::ops::Range;

/// Longest chunk size line, extensions and CRLF included. Real peers send a few hex digits;
/// this leaves room for short extensions while a hostile line is refused after 256 bytes.
pub const CHUNK_LINE_BYTES_MAX: u32 = 256;

/// Longest chunk size in hex digits (`u64`); longer is refused as malformed.
const CHUNK_SIZE_DIGITS_MAX: usize = 16;

/// The bounds one chunked body is decoded under.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChunkLimits {
    /// Decoded data bytes of the whole body.
    pub(super) body_bytes_max: u64,
    /// Size lines, data CRLFs and trailers of the whole body together.
    pub(super) framing_bytes_max: u64,
}

/// Why a chunked body was refused; the codec maps it onto its own error and limit names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ChunkError {
    /// Not chunked framing per RFC 9112 §7.1; the message says what was wrong.
    Malformed(String),
    /// The data would exceed `body_bytes_max`; `length` is the total it would reach.
    BodyTooLarge { length: u64 },
    /// Framing would exceed `framing_bytes_max`; `length` is the total it would reach.
    FramingTooLarge { length: u64 },
    /// The trailer section has more fields than there are header slots.
    TooManyTrailerFields,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkPhase {
    SizeLine,
    Data { remaining: u64 },
    DataEnd,
    Trailers,
}

/// What one [`ChunkedDecoder::decode`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Decoded {
    /// Bytes of the input used; the next call starts right after them.
    pub(super) consumed: usize,
    /// The last chunk and the trailer section are in: the body is complete.
    pub(super) done: bool,
}

/// Incremental decoder of one chunked body. `Copy`, so a parser state can hold it.
#[derive(Clone, Copy, Debug)]
pub(super) struct ChunkedDecoder {
    phase: ChunkPhase,
    /// Size lines, data CRLFs and trailers so far.
    framing_bytes: u64,
    /// Data bytes so far.
    body_bytes: u64,
}

impl ChunkedDecoder {
    /// A decoder waiting for the first chunk size line.
    pub(super) fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            phase: ChunkPhase::SizeLine,
            framing_bytes: 0,
            body_bytes: 0,
        }
    }

    /// Decodes from the start of `input` (the bytes after those earlier calls consumed),
    /// appending chunk data to `out`. Stops when the input runs out mid-element or the body
    /// ends. `slots` are lent to `httparse` for the trailer section, which is discarded.
    pub(super) fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limits: &ChunkLimits,
        slots: &mut Vec<Header<'static>>,
    ) -> Result<Decoded, ChunkError> {
        let mut consumed = 0usize;
        loop {
            let rest = &input[consumed..];
            let used = match self.phase {
                ChunkPhase::SizeLine => self.size_line(rest, limits)?,
                ChunkPhase::Data { remaining } => {
                    let take = rest
                        .len()
                        .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    out.extend_from_slice(&rest[..take]);
                    let remaining = remaining - take as u64;
                    self.phase = if remaining == 0 {
                        ChunkPhase::DataEnd
                    } else {
                        ChunkPhase::Data { remaining }
                    };
                    (take > 0).then_some(take)
                }
                ChunkPhase::DataEnd => self.data_end(rest)?,
                ChunkPhase::Trailers => {
                    let Some(len) = self.trailers(rest, limits, slots)? else {
                        return Ok(Decoded {
                            consumed,
                            done: false,
                        });
                    };
                    return Ok(Decoded {
                        consumed: consumed + len,
                        done: true,
                    });
                }
            };
            match used {
                Some(len) => consumed += len,
                None => {
                    return Ok(Decoded {
                        consumed,
                        done: false,
                    })
                }
            }
        }
    }

    /// Reads one chunk size line; moves to the chunk's data or to the trailers.
    fn size_line(
        &mut self,
        rest: &[u8],
        limits: &ChunkLimits,
    ) -> Result<Option<usize>, ChunkError> {
        let window = &rest[..rest.len().min(CHUNK_LINE_BYTES_MAX as usize)];
        let Some((len, size)) = parse_chunk_line(window)? else {
            if window.len() >= CHUNK_LINE_BYTES_MAX as usize {
                return Err(ChunkError::Malformed(format!(
                    "chunk size line exceeds {CHUNK_LINE_BYTES_MAX} bytes"
                )));
            }
            charge(self.framing_bytes, window.len(), limits)?;
            return Ok(None);
        };
        self.framing_bytes = charge(self.framing_bytes, len, limits)?;
        let total = self.body_bytes.saturating_add(size);
        if total > limits.body_bytes_max {
            return Err(ChunkError::BodyTooLarge { length: total });
        }
        self.body_bytes = total;
        self.phase = if size == 0 {
            ChunkPhase::Trailers
        } else {
            ChunkPhase::Data { remaining: size }
        };
        Ok(Some(len))
    }

    /// The CRLF after a chunk's data.
    fn data_end(&mut self, rest: &[u8]) -> Result<Option<usize>, ChunkError> {
        let seen = &rest[..rest.len().min(2)];
        if seen != &b"\r\n"[..seen.len()] {
            return Err(ChunkError::Malformed(
                "chunk data not followed by crlf".to_string(),
            ));
        }
        if seen.len() < 2 {
            return Ok(None);
        }
        self.framing_bytes += 2;
        self.phase = ChunkPhase::SizeLine;
        Ok(Some(2))
    }

    /// Reads the trailer section and its blank line; `Some(len)` once whole.
    fn trailers(
        &self,
        rest: &[u8],
        limits: &ChunkLimits,
        slots: &mut Vec<Header<'static>>,
    ) -> Result<Option<usize>, ChunkError> {
        let budget = limits.framing_bytes_max.saturating_sub(self.framing_bytes);
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        let window = &rest[..rest.len().min(budget)];
        let mut lent: Vec<Header<'_>> = std::mem::take(slots);
        let status = match httparse::parse_headers(window, &mut lent) {
            Ok(Status::Complete((len, _))) => Ok(Status::Complete(len)),
            Ok(Status::Partial) => Ok(Status::Partial),
            Err(e) => Err(e),
        };
        *slots = recycle(lent);
        match status {
            Ok(Status::Complete(len)) => Ok(Some(len)),
            Ok(Status::Partial) if window.len() >= budget => Err(ChunkError::FramingTooLarge {
                length: self.framing_bytes.saturating_add(rest.len() as u64),
            }),
            Ok(Status::Partial) => Ok(None),
            Err(httparse::Error::TooManyHeaders) => Err(ChunkError::TooManyTrailerFields),
            Err(e) => Err(ChunkError::Malformed(format!(
                "chunked trailer section: {e}"
            ))),
        }
    }
}

/// Adds `len` framing bytes to `so_far`, refusing past `framing_bytes_max`.
fn charge(so_far: u64, len: usize, limits: &ChunkLimits) -> Result<u64, ChunkError> {
    let total = so_far.saturating_add(len as u64);
    if total > limits.framing_bytes_max {
        return Err(ChunkError::FramingTooLarge { length: total });
    }
    Ok(total)
}

/// `chunk-size [ chunk-ext ] CRLF` → (line length, size); `None` until the CRLF arrives.
/// Extensions are skipped but must be visible characters, spaces or tabs.
fn parse_chunk_line(line: &[u8]) -> Result<Option<(usize, u64)>, ChunkError> {
    let invalid = || {
        let shown = String::from_utf8_lossy(&line[..line.len().min(32)]).into_owned();
        ChunkError::Malformed(format!("invalid chunk size line {shown:?}"))
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits > CHUNK_SIZE_DIGITS_MAX {
        return Err(ChunkError::Malformed(format!(
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
                    Some(b'\n') => Ok(Some((i + 2, size))),
                    Some(_) => Err(ChunkError::Malformed(
                        "chunk size line has a bare cr".to_string(),
                    )),
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

/// Hands `httparse`'s header slots back for the next call, keeping their allocation.
pub(super) fn recycle(slots: Vec<Header<'_>>) -> Vec<Header<'static>> {
    slots.into_iter().map(|_| EMPTY_HEADER).collect()
}

/// Byte range of `part` within `buf`, of which it is a subslice: where a name or value
/// `httparse` parsed lies, kept so no borrow of the header slots outlives the parse.
pub(super) fn offset(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    debug_assert!(start + part.len() <= buf.len());
    start..start + part.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ChunkLimits = ChunkLimits {
        body_bytes_max: 64,
        framing_bytes_max: 128,
    };

    /// Feeds `input` in pieces of `step` bytes as a connection would (unconsumed bytes stay).
    fn decode_in_steps(input: &[u8], step: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut decoder = ChunkedDecoder::new();
        let mut slots = vec![EMPTY_HEADER; 4];
        let mut out = Vec::new();
        let mut pos = 0;
        let mut arrived = 0;
        while arrived < input.len() {
            arrived = (arrived + step).min(input.len());
            let decoded = decoder.decode(&input[pos..arrived], &mut out, &LIMITS, &mut slots)?;
            pos += decoded.consumed;
            if decoded.done {
                return Ok((out, pos));
            }
        }
        Err(ChunkError::Malformed("input ended".to_string()))
    }

    #[test]
    fn chunked_body_decodes_the_same_at_every_arrival_step() {
        let input = b"3\r\nabc\r\n1;ext=1\r\nd\r\n0\r\nX-Trailer: t\r\n\r\nnext";
        for step in 1..=input.len() {
            let (body, consumed) = decode_in_steps(input, step).expect("valid chunked body");
            assert_eq!(body, b"abcd", "step {step}");
            assert_eq!(consumed, input.len() - b"next".len(), "step {step}");
        }
    }

    #[test]
    fn data_past_body_bytes_max_is_refused_at_the_size_line() {
        let error = decode_in_steps(b"40\r\n", 4).map(|_| ()).unwrap_err();
        assert_eq!(error, ChunkError::Malformed("input ended".to_string()));
        let error = decode_in_steps(b"41\r\n", 4).map(|_| ()).unwrap_err();
        assert_eq!(error, ChunkError::BodyTooLarge { length: 65 });
    }

    #[test]
    fn framing_past_framing_bytes_max_is_refused() {
        // 40 one-byte chunks: 40 bytes of data, 40 × 5 framing bytes against a budget of 128.
        let input = b"1\r\nx\r\n".repeat(40);
        let error = decode_in_steps(&input, input.len())
            .map(|_| ())
            .unwrap_err();
        assert!(matches!(error, ChunkError::FramingTooLarge { length } if length > 128));
    }

    #[test]
    fn bad_size_lines_and_missing_crlf_are_malformed() {
        for input in [&b"g\r\n"[..], b"1\rx", b"1\r\nab", b" 1\r\n"] {
            let error = decode_in_steps(input, input.len()).map(|_| ()).unwrap_err();
            assert!(matches!(error, ChunkError::Malformed(_)), "{input:?}");
        }
    }
}
