//! Starting a partition at an exact offset, even on brokers that fetch from
//! the next record batch when asked for an offset inside one.
//!
//! Kafka answers a fetch at offset `n` with the record batch that contains
//! `n` and the client drops the records before it. tansu 0.6 instead answers
//! with the first batch that *starts* after `n`, so resuming from a commit
//! point inside a batch would silently lose the rest of that batch (and its
//! high watermark is the last batch's base offset + 1, so the same can happen
//! at the end of a partition). So the consumer starts some way before the
//! resume point, drops what comes before it, and rewinds further (doubling
//! the distance, down to the partition's low watermark) until the first
//! record it receives is at or before the resume point. On a broker that
//! behaves like Kafka this costs one extra fetch of at most [`FIRST_REWIND`]
//! records per partition at start.

/// How far before the resume point the first fetch starts (librdkafka's
/// producers put at most 10,000 records in a batch by default).
pub const FIRST_REWIND: i64 = 10_000;

/// What to do with a record of a partition that is being started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it on.
    Accept,
    /// Drop it: it is before the resume point.
    Skip,
    /// Drop it and fetch again from this offset: records between the fetch
    /// position and the resume point may have been skipped by the broker.
    SeekTo(i64),
}

/// Starts one partition at `start`.
#[derive(Clone, Copy, Debug)]
pub struct Rewind {
    start: i64,
    low: i64,
    /// Where the current fetch began.
    fetching_from: i64,
    /// Whether a record at or before `start` has been seen (or nothing
    /// before it exists), so every record from `start` on will arrive.
    settled: bool,
    /// The offset after the last record handed on: a record before it is
    /// one a rewind fetches again, or one still buffered from before a seek.
    next: i64,
}

impl Rewind {
    /// Starting at `start` of a partition whose first offset is `low`.
    pub fn new(start: i64, low: i64) -> Self {
        let fetching_from = (start - FIRST_REWIND).max(low);
        Self {
            start,
            low,
            fetching_from,
            settled: start <= low,
            next: start,
        }
    }

    /// The offset to fetch from first.
    pub fn first_fetch(&self) -> i64 {
        self.fetching_from
    }

    /// Whether every record from the resume point on is sure to arrive.
    pub fn is_settled(&self) -> bool {
        self.settled
    }

    /// Judges a record at `offset`. No offset is accepted twice.
    #[inline]
    pub fn check(&mut self, offset: i64) -> Verdict {
        if offset < self.next {
            self.settled |= offset < self.start;
            return Verdict::Skip;
        }
        if !self.settled && offset > self.start {
            let verdict = self.rewind();
            if verdict != Verdict::Accept {
                return verdict;
            }
        }
        self.settled = true;
        self.next = offset + 1;
        Verdict::Accept
    }

    /// The partition reported its end before any record at or before the
    /// resume point arrived: rewind, unless there is nothing earlier.
    pub fn at_end(&mut self) -> Option<i64> {
        match self.rewind() {
            Verdict::SeekTo(offset) => Some(offset),
            _ => None,
        }
    }

    fn rewind(&mut self) -> Verdict {
        if self.fetching_from <= self.low {
            // Nothing earlier exists: the records from the start are simply not there.
            self.settled = true;
            return Verdict::Accept;
        }
        let distance = (self.start - self.fetching_from).max(1) * 2;
        self.fetching_from = (self.start - distance).max(self.low);
        Verdict::SeekTo(self.fetching_from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kafka_like_broker_needs_no_second_fetch() {
        let mut rewind = Rewind::new(25_000, 0);
        assert_eq!(rewind.first_fetch(), 15_000);
        assert_eq!(rewind.check(14_800), Verdict::Skip, "the batch holding 15,000");
        assert!(rewind.is_settled());
        assert_eq!(rewind.check(24_999), Verdict::Skip);
        assert_eq!(rewind.check(25_000), Verdict::Accept);
        assert_eq!(rewind.check(25_001), Verdict::Accept);
        assert_eq!(rewind.check(25_001), Verdict::Skip, "fetched again after a seek");
        assert_eq!(rewind.check(25_003), Verdict::Accept, "offsets may have gaps");
    }

    #[test]
    fn a_broker_that_skips_to_the_next_batch_is_rewound_until_it_cannot_skip() {
        let mut rewind = Rewind::new(25_000, 0);
        // The broker skipped past the resume point twice.
        assert_eq!(rewind.check(25_100), Verdict::SeekTo(5_000));
        assert!(!rewind.is_settled());
        assert_eq!(rewind.at_end(), Some(0), "an end before any record: rewind again");
        assert_eq!(rewind.check(0), Verdict::Skip);
        assert_eq!(rewind.check(25_100), Verdict::Accept);
    }

    #[test]
    fn from_the_low_watermark_there_is_nothing_to_rewind() {
        let mut fresh = Rewind::new(7, 7);
        assert!(fresh.is_settled());
        assert_eq!(fresh.first_fetch(), 7);
        assert_eq!(fresh.check(9), Verdict::Accept, "offsets may have gaps");
        let mut near = Rewind::new(100, 90);
        assert_eq!(near.first_fetch(), 90);
        assert_eq!(
            near.check(120),
            Verdict::Accept,
            "fetched from low: nothing was skipped"
        );
        assert_eq!(Rewind::new(100, 90).at_end(), None);
    }
}
