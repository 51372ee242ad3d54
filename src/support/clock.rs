//! The shard clock: milliseconds on one monotonic origin taken at start-up, the same on every
//! shard, so a deadline computed on one shard means the same instant on another.

use std::time::Instant;

/// Milliseconds since the process-wide origin. `Copy`: each shard's components hold one.
#[derive(Clone, Copy, Debug)]
pub struct ShardClock {
    origin: Instant,
}

impl ShardClock {
    /// A clock whose zero is now; start-up takes one and hands copies to every shard.
    pub fn start() -> ShardClock {
        ShardClock {
            origin: Instant::now(),
        }
    }

    /// Milliseconds since the origin. Saturates rather than wraps: 2^64 ms is far past uptime.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::ShardClock;

    #[test]
    fn copies_share_one_origin() {
        let clock = ShardClock::start();
        let copy = clock;
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (a, b) = (clock.now_ms(), copy.now_ms());
        assert!(
            a >= 2 && b >= 2,
            "both copies count from the same origin: {a}, {b}"
        );
        assert!(a.abs_diff(b) <= 1, "copies read the same time: {a}, {b}");
    }
}
