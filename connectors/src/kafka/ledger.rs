//! Offset/frontier bookkeeping: which offset of a partition may be committed,
//! given how far the sinks have delivered.
//!
//! Every message read is recorded with the delivered frontier it *needs*: the
//! frontier at which everything derived from it (its windows, or the message
//! itself for a sink that reads the source directly, or its late/dead-letter
//! record) has been written and flushed by every sink. The committable offset
//! of a partition is the first offset whose message is not yet delivered;
//! everything before it may be skipped by a restart.
//!
//! Only a staircase is kept: a message that needs no more than an earlier one
//! still waiting cannot become the commit point before that one is delivered,
//! so it adds nothing. With needs rounded to the time granule the ledger holds
//! a few entries per partition (window length over granule), not one per message.
//!
//! A commit point carries where the partition's watermark stood (the newest
//! event time before the committed offset) and the delivered frontier, so a
//! restart replays the partition with the same lateness decisions and skips
//! the windows that were delivered already ([`ResumePoint`], kept in the
//! [resume log](super::resume)).

use std::collections::VecDeque;

use pulse_core::EventTime;

/// Where a partition resumes, as committed: the offset, with the state a
/// replay from there needs, stored in the commit's metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResumePoint {
    /// The next offset to read.
    pub offset: i64,
    /// The newest event time of the partition before `offset`, if any: the
    /// watermark resumes from it.
    pub max_event_time: Option<EventTime>,
    /// The delivered frontier the commit was made at: every window whose
    /// output time is before it was delivered.
    pub delivered: Option<EventTime>,
}

const FORMAT_VERSION: &str = "pulse1";

impl ResumePoint {
    /// The point as text: `pulse1;offset=…;max_ts=…;delivered=…`, the value
    /// of a resume-log record and the metadata of an offset commit.
    pub fn encode(&self) -> String {
        let mut text = format!("{FORMAT_VERSION};offset={}", self.offset);
        if let Some(ts) = self.max_event_time {
            text.push_str(&format!(";max_ts={ts}"));
        }
        if let Some(delivered) = self.delivered {
            text.push_str(&format!(";delivered={delivered}"));
        }
        text
    }

    /// Reads [`encode`](Self::encode)'s text; `None` for text pulse did not write.
    pub fn decode(text: &str) -> Option<Self> {
        let mut fields = text.split(';');
        if fields.next() != Some(FORMAT_VERSION) {
            return None;
        }
        let (mut offset, mut point) = (None, Self::default());
        for field in fields {
            match field.split_once('=') {
                Some(("offset", value)) => offset = value.parse().ok(),
                Some(("max_ts", value)) => point.max_event_time = value.parse().ok(),
                Some(("delivered", value)) => point.delivered = value.parse().ok(),
                _ => {}
            }
        }
        Some(Self {
            offset: offset?,
            ..point
        })
    }

    /// A bare offset, without the state of the run that committed it.
    pub fn at(offset: i64) -> Self {
        Self {
            offset,
            ..Self::default()
        }
    }
}

/// A run of messages from `offset` on whose latest need is `needs`.
#[derive(Clone, Copy, Debug)]
struct Step {
    offset: i64,
    needs: EventTime,
    /// The newest event time of the run's messages (for session windows: the
    /// run is delivered once every session before it is).
    max_event_time: Option<EventTime>,
    /// The newest event time before `offset`.
    max_event_time_before: Option<EventTime>,
}

/// The undelivered messages of one partition, as a staircase of needs.
#[derive(Clone, Debug, Default)]
pub struct PartitionLedger {
    steps: VecDeque<Step>,
    /// The offset after the last message recorded.
    next_offset: i64,
    max_event_time: Option<EventTime>,
}

impl PartitionLedger {
    /// A ledger for a partition read from `start`.
    pub fn new(start: &ResumePoint) -> Self {
        Self {
            steps: VecDeque::new(),
            next_offset: start.offset,
            max_event_time: start.max_event_time,
        }
    }

    /// Records the message at `offset` (event time `ts`, `None` if it did not
    /// decode), which is delivered once the delivered frontier reaches `needs`.
    #[inline]
    pub fn record(&mut self, offset: i64, ts: Option<EventTime>, needs: EventTime) {
        match self.steps.back_mut() {
            Some(last) if needs <= last.needs => last.max_event_time = last.max_event_time.max(ts),
            _ => self.steps.push_back(Step {
                offset,
                needs,
                max_event_time: ts,
                max_event_time_before: self.max_event_time,
            }),
        }
        if let Some(ts) = ts {
            self.max_event_time = self.max_event_time.max(Some(ts));
        }
        self.next_offset = offset + 1;
    }

    /// The point to commit once the sinks have delivered everything before
    /// `delivered`, and every session window of events before `settled` (see
    /// `pulse_core::SessionProgress`; [`EventTime::MAX`] without session
    /// windows): the first message still waiting, or the end of what was read.
    pub fn committable(&mut self, delivered: EventTime, settled: EventTime) -> ResumePoint {
        while self
            .steps
            .front()
            .is_some_and(|step| step.needs <= delivered && step.max_event_time.is_none_or(|ts| ts < settled))
        {
            self.steps.pop_front();
        }
        let (offset, max_event_time) = match self.steps.front() {
            Some(step) => (step.offset, step.max_event_time_before),
            None => (self.next_offset, self.max_event_time),
        };
        ResumePoint {
            offset,
            max_event_time,
            delivered: Some(delivered),
        }
    }

    /// Where a run that ends with everything delivered resumes: after the last
    /// message read.
    pub fn end(&self) -> ResumePoint {
        ResumePoint {
            offset: self.next_offset,
            max_event_time: self.max_event_time,
            delivered: None,
        }
    }

    /// How many steps are held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether nothing is waiting for delivery.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(offset: i64) -> ResumePoint {
        ResumePoint::at(offset)
    }

    #[test]
    fn commits_up_to_the_first_undelivered_message() {
        let mut ledger = PartitionLedger::new(&start(100));
        assert_eq!(ledger.committable(0, EventTime::MAX).offset, 100, "nothing read yet");
        // Offsets 100..=103 with needs 2s, 2s, 4s, 3s (an out-of-order event).
        for (offset, ts, needs) in [
            (100, 1_500, 2_000),
            (101, 1_900, 2_000),
            (102, 3_500, 4_000),
            (103, 2_500, 3_000),
        ] {
            ledger.record(offset, Some(ts), needs);
        }
        assert_eq!(ledger.len(), 2, "103 needs less than 102 and waits behind it");
        let at = |ledger: &mut PartitionLedger, delivered| ledger.committable(delivered, EventTime::MAX);
        assert_eq!(at(&mut ledger, 1_000).offset, 100);
        let point = at(&mut ledger, 2_000);
        assert_eq!((point.offset, point.max_event_time), (102, Some(1_900)));
        assert_eq!(point.delivered, Some(2_000));
        assert_eq!(at(&mut ledger, 3_000).offset, 102, "103 is delivered, 102 is not");
        let point = at(&mut ledger, 4_000);
        assert_eq!((point.offset, point.max_event_time), (104, Some(3_500)));
        assert!(ledger.is_empty());
    }

    #[test]
    fn a_message_that_never_completes_holds_the_commit_point() {
        let mut ledger = PartitionLedger::new(&start(0));
        ledger.record(0, Some(10), 1_000);
        ledger.record(1, Some(20), EventTime::MAX);
        ledger.record(2, Some(30), 1_000);
        assert_eq!(ledger.committable(1_000_000, EventTime::MAX).offset, 1);
        assert_eq!(
            ledger.committable(EventTime::MAX, EventTime::MAX).offset,
            3,
            "the end of input"
        );
    }

    #[test]
    fn messages_in_unsettled_sessions_hold_the_commit_point() {
        let mut ledger = PartitionLedger::new(&start(0));
        // Session windows only: each message needs its own time delivered, and its sessions settled.
        for (offset, ts) in [(0, 1_000), (1, 1_050), (2, 2_000), (3, 1_900), (4, 3_000)] {
            ledger.record(offset, Some(ts), ts - ts % 100 + 100);
        }
        assert_eq!(ledger.committable(10_000, 0).offset, 0, "nothing settled");
        assert_eq!(ledger.committable(10_000, 1_051).offset, 2);
        assert_eq!(
            ledger.committable(10_000, 2_000).offset,
            2,
            "2,000 is not before 2,000; 1,900 waits with it"
        );
        assert_eq!(ledger.committable(1_500, 5_000).offset, 2, "delivered bounds it too");
        assert_eq!(ledger.committable(10_000, 2_001).offset, 4);
        assert_eq!(ledger.committable(10_000, EventTime::MAX).offset, 5);
    }

    #[test]
    fn undecodable_messages_count_without_moving_the_watermark() {
        let mut ledger = PartitionLedger::new(&ResumePoint {
            offset: 7,
            max_event_time: Some(5_000),
            delivered: None,
        });
        ledger.record(7, None, 6_000);
        ledger.record(8, Some(4_000), 6_000);
        let end = ledger.end();
        assert_eq!((end.offset, end.max_event_time), (9, Some(5_000)));
    }

    #[test]
    fn points_round_trip_as_text_and_foreign_text_is_refused() {
        let point = ResumePoint {
            offset: 42,
            max_event_time: Some(1_700_000_000_123),
            delivered: Some(1_700_000_000_000),
        };
        assert_eq!(ResumePoint::decode(&point.encode()), Some(point));
        assert_eq!(
            ResumePoint::decode(&ResumePoint::at(3).encode()),
            Some(ResumePoint::at(3))
        );
        assert_eq!(ResumePoint::decode("someone else's"), None);
        assert_eq!(ResumePoint::decode("pulse1;max_ts=5"), None, "no offset");
        assert_eq!(
            ResumePoint::decode("pulse1;offset=9;max_ts=x;delivered=5"),
            Some(ResumePoint {
                delivered: Some(5),
                ..ResumePoint::at(9)
            })
        );
    }
}
