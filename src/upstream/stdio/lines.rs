//! Splitting a byte stream into newline-terminated lines with a hard per-line byte limit.
//!
//! Used for the child's stdout (one JSON-RPC message per line; a line over the limit is an error
//! the caller acts on) and its stderr (a line over the limit is truncated for the log). The buffer
//! for an unfinished line is allocated once, at `line_bytes_max`, and never grows past it: bytes
//! beyond the limit are counted, not kept.

/// One complete line: its first `line_bytes_max` bytes (without `\n` or a trailing `\r`) and how
/// many bytes beyond the limit were dropped.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Line<'a> {
    pub bytes: &'a [u8],
    pub dropped_bytes: u64,
}

/// Line splitter with a fixed-size buffer for the line in progress.
pub(super) struct LineSplitter {
    partial: Vec<u8>,
    line_bytes_max: usize,
    dropped_bytes: u64,
    /// The last `next_line` returned `partial`; clear it before reading on.
    emitted: bool,
}

impl LineSplitter {
    /// A splitter keeping at most `line_bytes_max` bytes of each line.
    pub fn new(line_bytes_max: usize) -> Self {
        assert!(line_bytes_max > 0, "a line limit of 0 bytes keeps nothing");
        Self {
            partial: Vec::with_capacity(line_bytes_max),
            line_bytes_max,
            dropped_bytes: 0,
            emitted: false,
        }
    }

    /// Forgets any unfinished line (a new child starts with a clean stream).
    pub fn reset(&mut self) {
        self.partial.clear();
        self.dropped_bytes = 0;
        self.emitted = false;
    }

    /// Takes bytes from the front of `input` up to and including the next `\n` and returns the
    /// line they complete. Returns `None` once `input` is used up without a `\n`; those bytes are
    /// kept (up to the limit) for the next call. A line that fits and arrived in one piece is
    /// returned straight from `input`, without copying.
    pub fn next_line<'s, 'i: 's>(&'s mut self, input: &mut &'i [u8]) -> Option<Line<'s>> {
        if self.emitted {
            self.reset();
        }
        let Some(newline) = input.iter().position(|&b| b == b'\n') else {
            self.absorb(input);
            *input = &[];
            return None;
        };
        let (line, rest) = (&input[..newline], &input[newline + 1..]);
        *input = rest;
        if self.partial.is_empty() && self.dropped_bytes == 0 && line.len() <= self.line_bytes_max {
            return Some(Line {
                bytes: strip_cr(line),
                dropped_bytes: 0,
            });
        }
        self.absorb(line);
        self.emitted = true;
        Some(Line {
            bytes: strip_cr(&self.partial),
            dropped_bytes: self.dropped_bytes,
        })
    }

    /// Bytes of the unfinished line already beyond the limit (0 while it still fits).
    pub fn partial_dropped_bytes(&self) -> u64 {
        if self.emitted {
            0
        } else {
            self.dropped_bytes
        }
    }

    fn absorb(&mut self, bytes: &[u8]) {
        let room = self.line_bytes_max - self.partial.len();
        let kept = bytes.len().min(room);
        self.partial.extend_from_slice(&bytes[..kept]);
        self.dropped_bytes += (bytes.len() - kept) as u64;
        debug_assert!(self.partial.len() <= self.line_bytes_max);
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` one after another and collects (line, dropped) pairs.
    fn split(line_bytes_max: usize, chunks: &[&[u8]]) -> (Vec<(Vec<u8>, u64)>, u64) {
        let mut splitter = LineSplitter::new(line_bytes_max);
        let mut lines = Vec::new();
        for chunk in chunks {
            let mut rest = *chunk;
            while let Some(line) = splitter.next_line(&mut rest) {
                lines.push((line.bytes.to_vec(), line.dropped_bytes));
            }
        }
        (lines, splitter.partial_dropped_bytes())
    }

    #[test]
    fn lines_split_on_newline_across_chunks_and_strip_cr() {
        let (lines, over) = split(16, &[b"ab\ncd", b"e\r\n", b"\nfg"]);
        assert_eq!(
            lines,
            [(b"ab".to_vec(), 0), (b"cde".to_vec(), 0), (b"".to_vec(), 0)]
        );
        assert_eq!(over, 0);
    }

    #[test]
    fn line_of_exactly_line_bytes_max_is_whole_and_one_more_byte_is_dropped() {
        let (lines, _) = split(4, &[b"abcd\nabcde\n"]);
        assert_eq!(lines, [(b"abcd".to_vec(), 0), (b"abcd".to_vec(), 1)]);
        let (lines, _) = split(4, &[b"ab", b"cd\n", b"ab", b"cde\n"]);
        assert_eq!(lines, [(b"abcd".to_vec(), 0), (b"abcd".to_vec(), 1)]);
    }

    #[test]
    fn unfinished_line_over_the_limit_is_reported_before_its_newline() {
        let (lines, over) = split(4, &[b"ok\nabc", b"def"]);
        assert_eq!(lines, [(b"ok".to_vec(), 0)]);
        assert_eq!(over, 2);
    }

    #[test]
    fn buffer_never_grows_past_line_bytes_max() {
        let mut splitter = LineSplitter::new(8);
        let big = vec![b'x'; 10_000];
        let mut rest = &big[..];
        assert!(splitter.next_line(&mut rest).is_none());
        assert_eq!(splitter.partial.capacity(), 8);
        assert_eq!(splitter.partial_dropped_bytes(), 10_000 - 8);
    }

    #[test]
    fn reset_forgets_the_unfinished_line() {
        let mut splitter = LineSplitter::new(8);
        let mut rest: &[u8] = b"half";
        assert!(splitter.next_line(&mut rest).is_none());
        splitter.reset();
        let mut rest: &[u8] = b"new\n";
        assert_eq!(splitter.next_line(&mut rest).unwrap().bytes, b"new");
    }
}
