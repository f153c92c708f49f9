//! Back-pressure from sinks to sources.
//!
//! A sink's operator hands batches to the sink's own task through a bounded
//! channel. When that channel is full the operator keeps what it cannot hand
//! over and marks itself *blocked* here; sources look at the mark before each
//! read and pause while any sink is blocked, so a slow or failing sink holds
//! the input back instead of growing memory or dropping rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many sink operators (one per sink and worker) downstream of a source
/// cannot hand over their batches right now. Each source has one; a sink's is
/// the [join](Backpressure::joined) of its upstream sources', so a full sink
/// pauses the sources that feed it and no other.
#[derive(Clone, Debug)]
pub struct Backpressure {
    blocked: Vec<Arc<AtomicUsize>>,
}

impl Default for Backpressure {
    fn default() -> Self {
        Self::new()
    }
}

impl Backpressure {
    /// Nothing blocked.
    pub fn new() -> Self {
        Self {
            blocked: vec![Arc::default()],
        }
    }

    /// One handle on all of `parts`: its valves block each of them.
    pub fn joined<'a>(parts: impl IntoIterator<Item = &'a Backpressure>) -> Self {
        Self {
            blocked: parts
                .into_iter()
                .flat_map(|part| part.blocked.iter().cloned())
                .collect(),
        }
    }

    /// Whether sources should pause: some sink has a full buffer.
    pub fn is_blocked(&self) -> bool {
        self.blocked.iter().any(|count| count.load(Ordering::Acquire) > 0)
    }

    /// A handle for one sink operator, not blocking to begin with.
    pub fn valve(&self) -> Valve {
        Valve {
            blocked: self.blocked.clone(),
            closed: false,
        }
    }
}

/// One sink operator's part of the [`Backpressure`]: closed while it holds
/// batches its sink's buffer had no room for. Dropping it opens it.
#[derive(Debug)]
pub struct Valve {
    blocked: Vec<Arc<AtomicUsize>>,
    closed: bool,
}

impl Valve {
    /// Marks this operator blocked (`true`) or free (`false`).
    pub fn set_blocked(&mut self, blocked: bool) {
        if blocked != self.closed {
            self.closed = blocked;
            for count in &self.blocked {
                if blocked {
                    count.fetch_add(1, Ordering::AcqRel);
                } else {
                    count.fetch_sub(1, Ordering::AcqRel);
                }
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

    #[test]
    fn a_joined_valve_blocks_every_part_and_only_those() {
        let (kafka, file, other) = (Backpressure::new(), Backpressure::new(), Backpressure::new());
        let mut valve = Backpressure::joined([&kafka, &file]).valve();
        valve.set_blocked(true);
        assert!(kafka.is_blocked() && file.is_blocked());
        assert!(!other.is_blocked(), "a source the sink does not read goes on");
        valve.set_blocked(false);
        assert!(!kafka.is_blocked() && !file.is_blocked());
    }
}
