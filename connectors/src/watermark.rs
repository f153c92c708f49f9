//! Bounded out-of-orderness watermarks.

use pulse_core::EventTime;

/// Tracks the watermark of one reader: the largest event time seen minus the
/// allowed out-of-orderness. Events older than the watermark are late.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermark {
    max_seen: Option<EventTime>,
    out_of_orderness: u64,
}

impl Watermark {
    /// A watermark that tolerates events up to `out_of_orderness_ms` behind the newest.
    pub fn new(out_of_orderness_ms: u64) -> Self {
        Self {
            max_seen: None,
            out_of_orderness: out_of_orderness_ms,
        }
    }

    /// The watermark: no event older than this is accepted any more.
    pub fn current(&self) -> EventTime {
        self.max_seen.map_or(0, |max| max.saturating_sub(self.out_of_orderness))
    }

    /// Whether an event at `ts` arrives too late.
    #[inline]
    pub fn is_late(&self, ts: EventTime) -> bool {
        ts < self.current()
    }

    /// Takes an accepted event's time into account.
    #[inline]
    pub fn observe(&mut self, ts: EventTime) {
        if self.max_seen.is_none_or(|max| ts > max) {
            self.max_seen = Some(ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_the_newest_event_by_the_allowed_disorder() {
        let mut wm = Watermark::new(2_000);
        assert_eq!(wm.current(), 0);
        wm.observe(10_000);
        assert_eq!(wm.current(), 8_000);
        assert!(!wm.is_late(8_000));
        assert!(wm.is_late(7_999));
        wm.observe(9_000);
        assert_eq!(wm.current(), 8_000, "older events do not move it back");
        wm.observe(1_000);
        assert_eq!(wm.current(), 8_000);
    }
}
