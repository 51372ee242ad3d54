//! The circuit breaker of one upstream on one shard: after `failures_max` consecutive failed
//! requests it opens and refuses calls at once for `open_ms`; then it lets exactly one call
//! through (half-open). That probe's success closes it; its failure opens it for another
//! `open_ms`.
//!
//! A failure is the upstream failing to answer: a transport failure (connect refused or timed
//! out, the connection broken, a dead child), a protocol failure (a response that breaks the
//! rules or the limits) or an HTTP 5xx. A JSON-RPC error it sends is an answer and counts as a
//! success. A call that outlives its deadline is inconclusive: a tool may be slow by design, so
//! timeouts neither count as failures nor reset the count, and a client's slow calls cannot open
//! the breaker for every client (a dead upstream still fails its connects and reads).
//!
//! State: three integers and the counters, shard-local; no timer (the clock is passed in).

/// Where a breaker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until `until_ms`.
    Open { until_ms: u64 },
    /// One probe call is out; others are refused until it ends.
    HalfOpen,
}

impl BreakerState {
    /// Fixed label for `/status`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// What [`Breaker::admit`] decided for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Pass,
    /// Go ahead as the one half-open probe.
    Probe,
    /// Refused: the breaker is open (or its probe is out) for `retry_in_ms` more.
    Refused { retry_in_ms: u64 },
}

/// One upstream's breaker on one shard.
#[derive(Debug)]
pub struct Breaker {
    failures_max: u32,
    open_ms: u64,
    state: BreakerState,
    consecutive_failures: u32,
    opened_total: u64,
    refused_total: u64,
}

impl Breaker {
    /// `failures_max` is `upstreams[].breaker_failures` (≥ 1), `open_ms` `breaker_open_ms`.
    pub fn new(failures_max: u32, open_ms: u64) -> Breaker {
        assert!(
            failures_max >= 1,
            "a breaker opens after at least one failure"
        );
        Breaker {
            failures_max,
            open_ms,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            opened_total: 0,
            refused_total: 0,
        }
    }

    /// Whether a call may go out now.
    pub fn admit(&mut self, now_ms: u64) -> Admission {
        match self.state {
            BreakerState::Closed => Admission::Pass,
            BreakerState::Open { until_ms } if now_ms >= until_ms => {
                self.state = BreakerState::HalfOpen;
                Admission::Probe
            }
            BreakerState::Open { until_ms } => {
                self.refused_total += 1;
                Admission::Refused {
                    retry_in_ms: until_ms - now_ms,
                }
            }
            BreakerState::HalfOpen => {
                self.refused_total += 1;
                Admission::Refused { retry_in_ms: 0 }
            }
        }
    }

    /// An admitted call got an answer.
    pub fn succeeded(&mut self) {
        self.consecutive_failures = 0;
        self.state = BreakerState::Closed;
    }

    /// An admitted call ended without saying whether the upstream works (its deadline passed,
    /// or the client cancelled it): the count stands, and a half-open probe gives its place to
    /// the next call.
    pub fn inconclusive(&mut self, now_ms: u64) {
        if self.state == BreakerState::HalfOpen {
            self.state = BreakerState::Open { until_ms: now_ms };
        }
    }

    /// An admitted call failed.
    pub fn failed(&mut self, now_ms: u64) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let trips = match self.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => self.consecutive_failures >= self.failures_max,
            BreakerState::Open { .. } => false,
        };
        if trips {
            self.state = BreakerState::Open {
                until_ms: now_ms.saturating_add(self.open_ms),
            };
            self.opened_total += 1;
        }
    }

    /// Whether calls are refused now (open, its period not yet over).
    pub fn is_open(&self, now_ms: u64) -> bool {
        matches!(self.state, BreakerState::Open { until_ms } if now_ms < until_ms)
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Times the breaker opened.
    pub fn opened_total(&self) -> u64 {
        self.opened_total
    }

    /// Calls refused while open or half-open.
    pub fn refused_total(&self) -> u64 {
        self.refused_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_only() {
        let mut breaker = Breaker::new(3, 60_000);
        breaker.failed(0);
        breaker.failed(0);
        breaker.succeeded();
        breaker.failed(0);
        breaker.failed(0);
        assert_eq!(breaker.admit(1), Admission::Pass);
        breaker.failed(10);
        assert_eq!(breaker.state(), BreakerState::Open { until_ms: 60_010 });
        assert_eq!(
            breaker.admit(20),
            Admission::Refused {
                retry_in_ms: 59_990
            }
        );
        assert_eq!(breaker.opened_total(), 1);
        assert_eq!(breaker.refused_total(), 1);
    }

    #[test]
    fn lets_one_probe_through_after_the_open_period() {
        let mut breaker = Breaker::new(1, 1_000);
        breaker.failed(0);
        assert_eq!(breaker.admit(1_000), Admission::Probe);
        assert_eq!(breaker.admit(1_001), Admission::Refused { retry_in_ms: 0 });
        breaker.succeeded();
        assert_eq!(breaker.admit(1_002), Admission::Pass);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn timeouts_neither_open_it_nor_reset_the_count() {
        let mut breaker = Breaker::new(2, 1_000);
        for _ in 0..10 {
            breaker.inconclusive(0);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        breaker.failed(0);
        breaker.inconclusive(0);
        breaker.failed(0);
        assert_eq!(breaker.state(), BreakerState::Open { until_ms: 1_000 });
    }

    #[test]
    fn an_inconclusive_probe_lets_the_next_call_probe() {
        let mut breaker = Breaker::new(1, 1_000);
        breaker.failed(0);
        assert_eq!(breaker.admit(1_000), Admission::Probe);
        breaker.inconclusive(1_200);
        assert_eq!(breaker.admit(1_200), Admission::Probe);
        breaker.succeeded();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.opened_total(), 1);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let mut breaker = Breaker::new(3, 1_000);
        for _ in 0..3 {
            breaker.failed(0);
        }
        assert_eq!(breaker.admit(1_500), Admission::Probe);
        breaker.failed(1_600);
        assert_eq!(breaker.state(), BreakerState::Open { until_ms: 2_600 });
        assert_eq!(breaker.opened_total(), 2);
    }
}
