//! A consumer that belongs to a consumer group, closed without a wait.

use std::ops::Deref;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaResult;

use super::REQUEST_TIMEOUT;

/// A [`BaseConsumer`] with a `group.id`, which leaves its group promptly when
/// dropped.
///
/// rdkafka closes such a consumer on drop by polling it in 100 ms slices
/// until librdkafka reports it closed, and nothing arrives to end a slice
/// early: every group consumer took at least 100 ms to drop, on the path of a
/// run's start (the resume log's reader), its end (the final commit's
/// client) and its workers (the last fetched batch). This one closes it
/// first, polling in 1 ms slices, so rdkafka's drop finds it closed.
pub(crate) struct GroupConsumer(BaseConsumer);

impl GroupConsumer {
    /// Creates the consumer `config` describes (it must set `group.id`).
    pub(crate) fn create(config: &ClientConfig) -> KafkaResult<Self> {
        Ok(Self(config.create()?))
    }
}

impl Deref for GroupConsumer {
    type Target = BaseConsumer;

    fn deref(&self) -> &BaseConsumer {
        &self.0
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        if self.0.closed() || self.0.close_queue().is_err() {
            return;
        }
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        while !self.0.closed() && Instant::now() < deadline {
            // Serves the close; anything else that arrives now is dropped.
            let _ = self.0.poll(Duration::from_millis(1));
        }
    }
}
