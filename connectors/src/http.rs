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

use std::time::Duration;

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
}

impl HttpReader {
    /// The reader of worker `worker`: only worker 0 reads `queue`.
    pub fn new(queue: IngestQueue, worker: usize) -> Self {
        let queued = metrics::gauge!("pulse_ingest_queue_items", "component" => queue.component().to_owned());
        Self {
            queue: (worker == 0).then_some(queue),
            taken: Vec::new(),
            queued,
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
                IngestItem::Event(event) => batch.push(0, event),
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

        let mut other = HttpReader::new(queue.clone(), 1);
        assert_eq!(other.read(&mut ReadBatch::default()), ReadStatus::Finished);
        let mut reader = HttpReader::new(queue.clone(), 0);
        let mut batch = ReadBatch::default();
        assert_eq!(reader.read(&mut batch), ReadStatus::Idle(IDLE_POLL));
        assert_eq!(batch.dead_letters.len(), 1);
        let times: Vec<u64> = batch.take_events().iter().map(|event| event.ts).collect();
        assert_eq!(times, [1, 2, 3]);
        assert!(queue.is_empty());
    }
}
