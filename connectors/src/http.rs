//! The `http` source: events that agents `POST /api/v1/events` to the gateway
//! running in the same process, read from the bounded [`IngestQueue`] the
//! endpoint fills.
//!
//! The endpoint has already decoded each event, checked its tenant against
//! the caller's credential and its time against the source's bounds
//! (`min_timestamp`, `max_future`), so that the client hears of every refused
//! event in its answer; refused elements arrive here as dead letters. One
//! worker (worker 0) reads the queue, in the order the endpoint accepted, with
//! one watermark (the newest event time accepted minus the allowed
//! out-of-orderness); the windows downstream spread the work over every
//! worker by key. The other workers' readers finish at once and hold nothing back.
//!
//! Clients may fall silent (or never post at all). As a silent Kafka partition
//! stops holding windows back after `idle_timeout`, a queue that has had no
//! event for `idle_timeout` lets the watermark move on with the wall clock, as
//! if an event stamped `idle_timeout` ago had arrived: the windows over what
//! was posted close, and so does everything downstream that waits on this
//! source. An event posted later behind that watermark is late, like any other.

use std::time::{Duration, Instant};

use pulse_core::EventTime;
use pulse_core::ingest::{IngestItem, IngestQueue};
use timely::scheduling::SyncActivator;

use crate::source::{EventReader, ReadBatch, ReadStatus};

/// The most items one read takes off the queue.
const MAX_BATCH: usize = 8_192;

/// How long an empty queue is left before it is looked at again, in case a
/// wake-up was missed (arrivals wake the source at once).
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Reads one worker's share of an `http` source: the whole queue on worker 0,
/// nothing elsewhere.
pub struct HttpReader {
    queue: Option<IngestQueue>,
    taken: Vec<IngestItem>,
    queued: metrics::Gauge,
    /// How long the queue may stay without events before the watermark moves
    /// on without them (`None`: only events move it).
    idle_timeout: Option<Duration>,
    /// When the last event was taken (or the reader was made).
    last_event: Instant,
}

impl HttpReader {
    /// The reader of worker `worker`: only worker 0 reads `queue`. With an
    /// `idle_timeout`, a queue silent that long lets the watermark follow the
    /// wall clock (see the module header).
    pub fn new(queue: IngestQueue, worker: usize, idle_timeout: Option<Duration>) -> Self {
        let queued = metrics::gauge!("pulse_ingest_queue_items", "component" => queue.component().to_owned());
        Self {
            queue: (worker == 0).then_some(queue),
            taken: Vec::new(),
            queued,
            idle_timeout,
            last_event: Instant::now(),
        }
    }
}

impl EventReader for HttpReader {
    fn wake_with(&mut self, waker: SyncActivator) {
        if let Some(queue) = &self.queue {
            queue.wake_with(move || {
                // Fails only once the dataflow is gone, when nothing is left to wake.
                let _ = waker.activate();
            });
        }
    }

    fn read(&mut self, batch: &mut ReadBatch) -> ReadStatus {
        let Some(queue) = &self.queue else {
            return ReadStatus::Finished;
        };
        let taken = queue.take(MAX_BATCH, &mut self.taken);
        for item in self.taken.drain(..) {
            match item {
                IngestItem::Event(event) => {
                    self.last_event = Instant::now();
                    batch.push(0, event);
                }
                IngestItem::DeadLetter(letter) => batch.dead_letters.push(letter),
            }
        }
        self.queued.set(queue.len() as f64);
        if taken == MAX_BATCH {
            ReadStatus::More
        } else {
            ReadStatus::Idle(IDLE_POLL)
        }
    }

    fn idle_watermark(&self, now: Instant, wall_clock_ms: EventTime) -> Option<EventTime> {
        let idle_timeout = self.idle_timeout?;
        self.queue.as_ref()?;
        (now.saturating_duration_since(self.last_event) >= idle_timeout)
            .then(|| wall_clock_ms.saturating_sub(idle_timeout.as_millis() as EventTime))
    }
}

#[cfg(test)]
mod tests {
    use pulse_core::ingest::Candidate;
    use pulse_core::{Event, Shutdown};

    use super::*;

    #[test]
    fn worker_zero_reads_everything_in_order_and_the_others_finish() {
        let queue = IngestQueue::new("ingest", 100, Shutdown::new(), |_| None);
        let raw =
            |ts: u64| format!(r#"{{"ts":{ts},"tenant":"t","source":"s","kind":"metric","metric":"m","value":1}}"#);
        let texts: Vec<String> = (1..=3).map(raw).collect();
        let mut candidates: Vec<Candidate<'_>> = texts
            .iter()
            .map(|text| Candidate::Decoded {
                event: Event::from_json(text.as_bytes()).unwrap(),
                raw: text,
            })
            .collect();
        candidates.insert(
            1,
            Candidate::Refused {
                reason: "not an event".into(),
                raw: "[]",
            },
        );
        queue.offer("r", candidates.into_iter().enumerate().collect()).unwrap();

        let mut other = HttpReader::new(queue.clone(), 1, None);
        assert_eq!(other.read(&mut ReadBatch::default()), ReadStatus::Finished);
        let mut reader = HttpReader::new(queue.clone(), 0, None);
        let mut batch = ReadBatch::default();
        assert_eq!(reader.read(&mut batch), ReadStatus::Idle(IDLE_POLL));
        assert_eq!(batch.dead_letters.len(), 1);
        let times: Vec<u64> = batch.take_events().iter().map(|event| event.ts).collect();
        assert_eq!(times, [1, 2, 3]);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_silent_queue_lets_the_watermark_follow_the_wall_clock_after_the_idle_timeout() {
        let queue = IngestQueue::new("ingest", 100, Shutdown::new(), |_| None);
        let idle = Duration::from_secs(10);
        let mut reader = HttpReader::new(queue.clone(), 0, Some(idle));
        let made = reader.last_event;
        let wall = 1_700_000_000_000;
        assert_eq!(reader.idle_watermark(made + Duration::from_secs(9), wall), None);
        assert_eq!(
            reader.idle_watermark(made + idle, wall),
            Some(wall - 10_000),
            "nothing posted since the start: it follows the wall clock"
        );

        let text = r#"{"ts":5,"tenant":"t","source":"s","kind":"metric","metric":"m","value":1}"#;
        let event = Candidate::Decoded {
            event: Event::from_json(text.as_bytes()).unwrap(),
            raw: text,
        };
        queue.offer("r", vec![(0, event)]).unwrap();
        reader.read(&mut ReadBatch::default());
        let posted = reader.last_event;
        assert!(posted >= made);
        assert_eq!(
            reader.idle_watermark(posted + Duration::from_secs(1), wall),
            None,
            "an event restarts the clock"
        );
        assert_eq!(reader.idle_watermark(posted + idle, wall), Some(wall - 10_000));

        let other = HttpReader::new(queue, 1, Some(idle));
        assert_eq!(
            other.idle_watermark(made + idle * 2, wall),
            None,
            "a worker that reads nothing finishes instead"
        );
        let never = HttpReader::new(IngestQueue::new("i", 1, Shutdown::new(), |_| None), 0, None);
        assert_eq!(never.idle_watermark(made + idle * 100, wall), None);
    }
}
