//! Retry pacing for a sink: exponential backoff with jitter, and a circuit
//! breaker that stops hammering a destination that keeps failing.
//!
//! The breaker is *closed* while writes succeed. After
//! [`BreakerPolicy::failures_to_open`] consecutive failures it *opens*: no
//! write is tried for [`BreakerPolicy::open_for`]. Then it is *half-open*:
//! one write is tried as a probe; success closes it, failure opens it again.
//! While closed, a failed write is retried after a backoff that doubles from
//! [`RetryPolicy::initial`] up to [`RetryPolicy::max`], each wait drawn
//! between half and all of it (so that many sinks do not retry in step).

use std::time::{Duration, Instant};

/// Backoff between retries of a failed write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1 for the first retry), with
    /// `jitter` in `[0, 1)` choosing where between half and all of the
    /// exponential step it falls.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let step = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }
}

/// When a sink's circuit breaker opens, and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed writes that open the breaker.
    pub failures_to_open: u32,
    /// How long it stays open before a half-open probe.
    pub open_for: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            open_for: Duration::from_secs(5),
        }
    }
}

/// The state of a circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Writes go through.
    Closed,
    /// The next write is a probe.
    HalfOpen,
    /// No writes until the time given.
    Open {
        /// When the probe may go.
        until: Instant,
    },
}

impl BreakerState {
    /// The state's name in `/health/ready`: `closed`, `half_open` or `open`.
    pub fn name(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open { .. } => "open",
        }
    }

    /// The state as the `pulse_sink_breaker_state` gauge: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open { .. } => 2.0,
        }
    }
}

/// A sink's breaker and retry count.
#[derive(Debug)]
pub(crate) struct Breaker {
    policy: BreakerPolicy,
    retry: RetryPolicy,
    state: BreakerState,
    /// Consecutive failures.
    failures: u32,
}

impl Breaker {
    pub(crate) fn new(policy: BreakerPolicy, retry: RetryPolicy) -> Self {
        Self {
            policy,
            retry,
            state: BreakerState::Closed,
            failures: 0,
        }
    }

    pub(crate) fn state(&self) -> BreakerState {
        self.state
    }

    /// How long to wait before the next attempt, at `now`; an open breaker
    /// whose pause is over becomes half-open.
    pub(crate) fn wait_before_attempt(&mut self, now: Instant) -> Duration {
        match self.state {
            BreakerState::Open { until } if until > now => until - now,
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen;
                Duration::ZERO
            }
            _ => Duration::ZERO,
        }
    }

    /// A write succeeded: closed, failures forgotten.
    pub(crate) fn succeeded(&mut self) {
        self.state = BreakerState::Closed;
        self.failures = 0;
    }

    /// A write failed at `now`: returns how long to back off before the next
    /// attempt (the breaker may open, and then the wait is its pause).
    pub(crate) fn failed(&mut self, now: Instant, jitter: f64) -> Duration {
        self.failures += 1;
        let opens = matches!(self.state, BreakerState::HalfOpen) || self.failures >= self.policy.failures_to_open;
        if opens {
            self.state = BreakerState::Open {
                until: now + self.policy.open_for,
            };
            self.policy.open_for
        } else {
            self.retry.backoff(self.failures, jitter)
        }
    }

    /// Consecutive failures so far.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_within_half_of_it() {
        let retry = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        assert_eq!(retry.backoff(1, 0.999_999).as_millis(), 99);
        assert_eq!(retry.backoff(2, 0.0), Duration::from_millis(100));
        assert_eq!(retry.backoff(3, 0.0), Duration::from_millis(200));
        assert_eq!(
            retry.backoff(10, 0.0),
            Duration::from_millis(500),
            "capped, then halved"
        );
        assert_eq!(retry.backoff(60, 1.0), Duration::from_secs(1), "no overflow");
    }

    #[test]
    fn the_breaker_opens_after_n_failures_and_a_probe_closes_or_reopens_it() {
        let start = Instant::now();
        let policy = BreakerPolicy {
            failures_to_open: 3,
            open_for: Duration::from_secs(2),
        };
        let mut breaker = Breaker::new(policy, RetryPolicy::default());
        assert!(breaker.failed(start, 0.5) < Duration::from_secs(1));
        breaker.failed(start, 0.5);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(
            breaker.failed(start, 0.5),
            Duration::from_secs(2),
            "third failure opens"
        );
        assert!(matches!(breaker.state(), BreakerState::Open { .. }));
        assert_eq!(breaker.state().gauge(), 2.0);
        assert_eq!(
            breaker.wait_before_attempt(start + Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert_eq!(
            breaker.wait_before_attempt(start + Duration::from_secs(2)),
            Duration::ZERO
        );
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // The probe fails: open again at once, whatever the count.
        breaker.failed(start + Duration::from_secs(2), 0.5);
        assert!(matches!(breaker.state(), BreakerState::Open { .. }));
        breaker.wait_before_attempt(start + Duration::from_secs(5));
        breaker.succeeded();
        assert_eq!((breaker.state(), breaker.failures()), (BreakerState::Closed, 0));
    }
}
