//! The last lines a child wrote on stderr, kept so that the report of its end can say why it
//! ended (`child exited (exit code 1); last stderr: "missing API_KEY"`) rather than only that
//! it did.
//!
//! Bounds: at most [`STDERR_TAIL_LINES_MAX`] lines and [`STDERR_TAIL_BYTES_MAX`] bytes of them,
//! the oldest dropped first; a single longer line keeps its first `STDERR_TAIL_BYTES_MAX`
//! bytes. One tail per running child, owned by its run on the shard.

use std::collections::VecDeque;
use std::fmt;

/// Lines of stderr an end report quotes at most.
pub const STDERR_TAIL_LINES_MAX: usize = 5;
/// Bytes of those lines, together, at most.
pub const STDERR_TAIL_BYTES_MAX: usize = 512;

/// The newest stderr lines of one child, within the bounds above.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StderrTail {
    lines: VecDeque<String>,
    bytes: usize,
}

impl StderrTail {
    /// Keeps `line` as the newest, dropping the oldest lines past either bound. Empty lines are
    /// not kept: they say nothing.
    pub fn push(&mut self, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        let line = cut_to(line, STDERR_TAIL_BYTES_MAX);
        self.bytes += line.len();
        self.lines.push_back(line.to_owned());
        while self.lines.len() > STDERR_TAIL_LINES_MAX || self.bytes > STDERR_TAIL_BYTES_MAX {
            let Some(oldest) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
        }
        debug_assert!(self.bytes <= STDERR_TAIL_BYTES_MAX);
        debug_assert!(self.lines.len() <= STDERR_TAIL_LINES_MAX);
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// `"first", "second"`: each line quoted (control characters escaped), oldest first.
impl fmt::Display for StderrTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, line) in self.lines.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{line:?}")?;
        }
        Ok(())
    }
}

/// The longest prefix of `text` of at most `bytes_max` bytes that ends on a character boundary.
fn cut_to(text: &str, bytes_max: usize) -> &str {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_lines_up_to_stderr_tail_lines_max() {
        let mut tail = StderrTail::default();
        for n in 1..=7 {
            tail.push(&format!("line {n}"));
        }
        assert_eq!(
            tail.to_string(),
            r#""line 3", "line 4", "line 5", "line 6", "line 7""#
        );
    }

    #[test]
    fn drops_the_oldest_lines_past_stderr_tail_bytes_max_and_cuts_one_longer_line() {
        let mut tail = StderrTail::default();
        tail.push(&"a".repeat(300));
        tail.push(&"b".repeat(300));
        assert_eq!(tail.to_string(), format!("{:?}", "b".repeat(300)));
        // A multi-byte character across the cut is left out whole.
        tail.push(&format!("{}é", "c".repeat(STDERR_TAIL_BYTES_MAX - 1)));
        assert_eq!(
            tail.to_string(),
            format!("{:?}", "c".repeat(STDERR_TAIL_BYTES_MAX - 1))
        );
        assert!(tail.bytes <= STDERR_TAIL_BYTES_MAX);
    }

    #[test]
    fn blank_lines_are_not_kept_and_control_characters_are_escaped() {
        let mut tail = StderrTail::default();
        tail.push("   ");
        assert!(tail.is_empty());
        tail.push("bad\tvalue \u{1b}[31m");
        assert_eq!(tail.to_string(), r#""bad\tvalue \u{1b}[31m""#);
    }
}
