//! Which event times a source accepts at all, so that one absurd timestamp
//! cannot move its watermark.
//!
//! The watermark follows the newest event time a split has seen, so a single
//! event stamped in the year 3,170,000 would make every later event late. A
//! source therefore refuses event times outside a sane range before they
//! reach the watermark, and sends them to its dead-letter output with the
//! reason `timestamp_out_of_range`:
//!
//! - **the floor**: before `min_timestamp`. A live source (generator, Kafka
//!   without `until`) stamps its events about now, so by default it refuses
//!   any before 2000-01-01T00:00:00Z (which also catches seconds written where
//!   milliseconds belong); a replay (file, Kafka with `until`) may hold data
//!   of any age and has no floor unless given one. A floor only ever refuses
//!   old events: they cannot move a watermark, which follows the newest;
//! - **the ceiling**: more than `max_future` (default 1 h) after
//!   max(wall clock, newest accepted event time). A live source's events are
//!   near the wall clock, so for it this is the wall clock plus `max_future`.
//!   A replay of last year's data is far behind the wall clock and passes
//!   whole. Data that runs ahead of the wall clock (a generator as fast as
//!   possible) is accepted as long as each event is within `max_future` of
//!   the newest one before it: the ceiling walks with the data, while a
//!   one-off jump is refused and does not move it.

use pulse_core::EventTime;

/// 2000-01-01T00:00:00Z in epoch milliseconds: the default floor.
pub const DEFAULT_MIN_TIMESTAMP: EventTime = 946_684_800_000;

/// The default `max_future`: one hour.
pub const DEFAULT_MAX_FUTURE_MS: u64 = 3_600_000;

/// The reason given in the dead letters of events outside the range.
pub const OUT_OF_RANGE: &str = "timestamp_out_of_range";

/// The range of event times a source accepts, and the newest it accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampBounds {
    min: EventTime,
    max_future_ms: u64,
    wall_clock_ms: EventTime,
    newest: EventTime,
}

impl Default for TimestampBounds {
    /// Accepts every event time (tests that read without a source operator).
    fn default() -> Self {
        Self::new(0, u64::MAX)
    }
}

impl TimestampBounds {
    /// Accepts event times from `min` up to `max_future_ms` after
    /// max(wall clock, newest accepted).
    pub fn new(min: EventTime, max_future_ms: u64) -> Self {
        Self {
            min,
            max_future_ms,
            wall_clock_ms: 0,
            newest: 0,
        }
    }

    /// Sets the wall clock the ceiling is measured from (epoch ms).
    pub fn set_wall_clock(&mut self, now_ms: EventTime) {
        self.wall_clock_ms = now_ms;
    }

    /// The latest event time accepted now.
    pub fn ceiling(&self) -> EventTime {
        self.wall_clock_ms.max(self.newest).saturating_add(self.max_future_ms)
    }

    /// Checks `ts`: `None` when it is in range (and then counts as the newest
    /// if it is), else the dead-letter reason, starting with
    /// `timestamp_out_of_range`.
    #[inline]
    pub fn admit(&mut self, ts: EventTime) -> Option<String> {
        if ts < self.min {
            return Some(format!(
                "{OUT_OF_RANGE}: ts {ts} is before the floor {} (min_timestamp; epoch milliseconds expected)",
                self.min
            ));
        }
        let ceiling = self.ceiling();
        if ts > ceiling {
            return Some(format!(
                "{OUT_OF_RANGE}: ts {ts} is more than max_future ({} ms) after max(wall clock, newest event) = {}",
                self.max_future_ms,
                ceiling - self.max_future_ms
            ));
        }
        self.newest = self.newest.max(ts);
        None
    }
}

/// The wall clock in epoch milliseconds.
pub fn wall_clock_ms() -> EventTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as EventTime)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;
    const NOW: u64 = 1_765_000_000_000;

    fn bounds() -> TimestampBounds {
        let mut bounds = TimestampBounds::new(DEFAULT_MIN_TIMESTAMP, HOUR);
        bounds.set_wall_clock(NOW);
        bounds
    }

    #[test]
    fn a_one_off_absurd_value_is_refused_and_moves_nothing() {
        let mut bounds = bounds();
        let year_ago = NOW - 365 * 24 * HOUR;
        assert_eq!(bounds.admit(year_ago), None, "a replay of last year passes");
        let reason = bounds.admit(99_999_999_999_999_999).expect("refused");
        assert!(
            reason.starts_with("timestamp_out_of_range: ts 99999999999999999"),
            "{reason}"
        );
        assert_eq!(
            bounds.ceiling(),
            NOW + HOUR,
            "the refused value did not move the ceiling"
        );
        assert_eq!(bounds.admit(year_ago + 1), None);
    }

    #[test]
    fn the_floor_refuses_seconds_and_zero() {
        let mut bounds = bounds();
        assert!(bounds.admit(0).unwrap().contains("before the floor"));
        assert!(bounds.admit(1_765_000_000).is_some(), "seconds, not milliseconds");
        assert_eq!(bounds.admit(DEFAULT_MIN_TIMESTAMP), None);
    }

    #[test]
    fn the_ceiling_walks_with_data_ahead_of_the_wall_clock() {
        let mut bounds = bounds();
        assert!(
            bounds.admit(NOW + HOUR + 1).is_some(),
            "more than an hour ahead at once"
        );
        let mut ts = NOW;
        for _ in 0..10 {
            ts += HOUR - 1;
            assert_eq!(bounds.admit(ts), None, "each step is within max_future of the last");
        }
        assert_eq!(bounds.ceiling(), ts + HOUR);
    }

    #[test]
    fn the_default_accepts_everything() {
        let mut bounds = TimestampBounds::default();
        assert_eq!(bounds.admit(0), None);
        assert_eq!(bounds.admit(u64::MAX), None);
    }
}
