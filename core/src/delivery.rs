//! How far the sinks have delivered: the link from sinks back to sources that
//! at-least-once offset commits stand on.
//!
//! Every sink writer owns a [`DeliveryTracker`] and advances it, after a
//! successful flush, to its input frontier: every record at a time before that
//! frontier is written and flushed. A source reads the minimum over all sinks
//! from [`Delivered::frontier`] and commits only input whose output lies
//! wholly before it.

use std::sync::{Arc, Mutex};

use crate::{EventTime, Shutdown};

/// The delivered frontiers of a group of sinks: those downstream of one
/// Kafka source, which commits by their minimum.
#[derive(Clone, Debug)]
pub struct Delivered {
    frontiers: Arc<Mutex<Vec<Slot>>>,
    shutdown: Shutdown,
}

/// One sink's delivered frontier, and whether it stands for sinks of
/// another process of a cluster (see [`Delivered::register_remote`]).
#[derive(Clone, Copy, Debug)]
struct Slot {
    frontier: EventTime,
    remote: bool,
}

impl Delivered {
    /// No sinks yet. Once `shutdown` fires the frontier is no longer reported:
    /// an interrupted dataflow drains without closing its open windows, so an
    /// empty frontier then does not mean that everything was delivered.
    pub fn new(shutdown: Shutdown) -> Self {
        Self {
            frontiers: Arc::default(),
            shutdown,
        }
    }

    /// Adds a sink, delivered up to nothing yet.
    pub fn register(&self) -> DeliveryTracker {
        self.add(false)
    }

    /// Adds the sinks of another process of a cluster, as that process
    /// reports them: part of [`Delivered::frontier`], not of
    /// [`Delivered::local_frontier`] (what this process reports to the others).
    pub fn register_remote(&self) -> DeliveryTracker {
        self.add(true)
    }

    fn add(&self, remote: bool) -> DeliveryTracker {
        let mut frontiers = self.frontiers.lock().unwrap_or_else(|p| p.into_inner());
        frontiers.push(Slot { frontier: 0, remote });
        DeliveryTracker {
            frontiers: Arc::clone(&self.frontiers),
            slot: frontiers.len() - 1,
        }
    }

    /// The time before which every sink has delivered everything
    /// ([`EventTime::MAX`] when all have finished), or `None` once stopping.
    pub fn frontier(&self) -> Option<EventTime> {
        self.min_over(|_| true)
    }

    /// [`Delivered::frontier`] over this process's own sinks only.
    pub fn local_frontier(&self) -> Option<EventTime> {
        self.min_over(|slot| !slot.remote)
    }

    fn min_over(&self, counts: impl Fn(&Slot) -> bool) -> Option<EventTime> {
        if self.shutdown.is_triggered() {
            return None;
        }
        let frontiers = self.frontiers.lock().unwrap_or_else(|p| p.into_inner());
        let counted = frontiers.iter().filter(|slot| counts(slot));
        Some(counted.map(|slot| slot.frontier).min().unwrap_or(EventTime::MAX))
    }
}

/// One sink's handle on its delivered frontier.
#[derive(Debug)]
pub struct DeliveryTracker {
    frontiers: Arc<Mutex<Vec<Slot>>>,
    slot: usize,
}

impl DeliveryTracker {
    /// Records that everything before `frontier` is delivered. Frontiers only
    /// move forward; an older one is ignored.
    pub fn advance(&self, frontier: EventTime) {
        let mut frontiers = self.frontiers.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut frontiers[self.slot].frontier;
        *slot = (*slot).max(frontier);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slowest_sink_sets_the_frontier() {
        let delivered = Delivered::new(Shutdown::new());
        assert_eq!(
            delivered.frontier(),
            Some(EventTime::MAX),
            "no sinks: nothing to wait for"
        );
        let (a, b) = (delivered.register(), delivered.register());
        assert_eq!(delivered.frontier(), Some(0));
        a.advance(5_000);
        b.advance(3_000);
        assert_eq!(delivered.frontier(), Some(3_000));
        b.advance(1_000);
        assert_eq!(delivered.frontier(), Some(3_000), "frontiers never go back");
        b.advance(EventTime::MAX);
        assert_eq!(delivered.frontier(), Some(5_000));
    }

    #[test]
    fn the_local_frontier_leaves_out_other_processes() {
        let delivered = Delivered::new(Shutdown::new());
        let (local, remote) = (delivered.register(), delivered.register_remote());
        local.advance(5_000);
        remote.advance(2_000);
        assert_eq!(delivered.frontier(), Some(2_000));
        assert_eq!(delivered.local_frontier(), Some(5_000));
    }

    #[test]
    fn nothing_is_reported_once_stopping() {
        let shutdown = Shutdown::new();
        let delivered = Delivered::new(shutdown.clone());
        delivered.register().advance(EventTime::MAX);
        shutdown.trigger();
        assert_eq!(delivered.frontier(), None);
    }
}
