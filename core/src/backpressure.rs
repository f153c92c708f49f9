//! Back-pressure from sinks to sources.
//!
//! A sink's operator hands batches to the sink's own task through a bounded
//! channel. When that channel is full the operator keeps what it cannot hand
//! over and marks itself *blocked* here; sources look at the mark before each
//! read and pause while any sink is blocked, so a slow or failing sink holds
//! the input back instead of growing memory or dropping rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many sink operators (one per sink and worker) cannot hand over their
/// batches right now.
#[derive(Clone, Debug, Default)]
pub struct Backpressure {
    blocked: Arc<AtomicUsize>,
}

impl Backpressure {
    /// Nothing blocked.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether sources should pause: some sink has a full buffer.
    pub fn is_blocked(&self) -> bool {
        self.blocked.load(Ordering::Acquire) > 0
    }

    /// A handle for one sink operator, not blocking to begin with.
    pub fn valve(&self) -> Valve {
        Valve {
            blocked: Arc::clone(&self.blocked),
            closed: false,
        }
    }
}

/// One sink operator's part of the [`Backpressure`]: closed while it holds
/// batches its sink's buffer had no room for. Dropping it opens it.
#[derive(Debug)]
pub struct Valve {
    blocked: Arc<AtomicUsize>,
    closed: bool,
}

impl Valve {
    /// Marks this operator blocked (`true`) or free (`false`).
    pub fn set_blocked(&mut self, blocked: bool) {
        if blocked != self.closed {
            self.closed = blocked;
            if blocked {
                self.blocked.fetch_add(1, Ordering::AcqRel);
            } else {
                self.blocked.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl Drop for Valve {
    fn drop(&mut self) {
        self.set_blocked(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_closed_valve_blocks_until_it_opens_or_drops() {
        let pressure = Backpressure::new();
        let (mut a, mut b) = (pressure.valve(), pressure.valve());
        assert!(!pressure.is_blocked());
        a.set_blocked(true);
        a.set_blocked(true);
        b.set_blocked(true);
        assert!(pressure.is_blocked());
        a.set_blocked(false);
        assert!(pressure.is_blocked(), "b still holds batches");
        drop(b);
        assert!(!pressure.is_blocked());
    }
}
