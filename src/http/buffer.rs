//! A connection's input buffer, shared by the server and client codecs: received bytes at the
//! front, grown on demand up to a fixed maximum, consumed from the front. One per connection,
//! on the connection's shard.

/// Bytes asked of the socket at least per read.
pub(super) const READ_BYTES_MIN: usize = 4096;

/// The connection's input: received bytes at the front, grown up to `capacity_max`.
pub(super) struct InputBuffer {
    bytes: Vec<u8>,
    /// Bytes received and not yet consumed, at the front of `bytes`.
    pub(super) filled: usize,
    capacity_max: usize,
}

impl InputBuffer {
    pub(super) fn new(capacity_max: usize) -> InputBuffer {
        InputBuffer {
            bytes: Vec::new(),
            filled: 0,
            capacity_max,
        }
    }

    pub(super) fn filled(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }

    /// Room for the next read: at least `READ_BYTES_MIN` unless the buffer is at its maximum.
    pub(super) fn spare(&mut self) -> &mut [u8] {
        let free = self.bytes.len() - self.filled;
        if free < READ_BYTES_MIN && self.bytes.len() < self.capacity_max {
            let wanted = (self.bytes.len() * 2).max(self.filled + READ_BYTES_MIN);
            self.bytes.resize(wanted.min(self.capacity_max), 0);
        }
        &mut self.bytes[self.filled..]
    }

    /// Drops the first `count` bytes (those parsed), keeping what follows.
    pub(super) fn consume(&mut self, count: usize) {
        debug_assert!(count <= self.filled);
        self.bytes.copy_within(count..self.filled, 0);
        self.filled -= count;
    }
}
