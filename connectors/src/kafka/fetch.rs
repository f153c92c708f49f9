//! Taking fetched messages from librdkafka a batch at a time, and reading
//! them where librdkafka holds them.
//!
//! `BaseConsumer::poll` hands out one message per call, and each call pays
//! for a clock read, an event and an allocation; the payload must then be
//! copied out before the next call. Here a worker's partitions are forwarded
//! to a queue of its own ([`FetchQueue`]), which gives up to a batch of
//! messages in one call (`rd_kafka_consume_batch_queue`, the call behind
//! confluent-kafka-python's `consume(num_messages)`). A [`FetchedBatch`] holds
//! them as they are: each payload is decoded in librdkafka's fetch buffer
//! ([`decoded`](super::decoded)), and the messages are released when the
//! batch is dropped.
//!
//! Everything else the consumer does (assignment, seeks, watermarks, errors
//! and logs on its own queue) still goes through `rdkafka`'s safe API.
//!
//! This is the one module of the crate with `unsafe` code: FFI calls into
//! librdkafka, each with the reason it is sound.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::group::GroupConsumer;

/// A queue of the consumer's that the fetched messages of the partitions
/// [routed](FetchQueue::route) to it arrive on, instead of the consumer's
/// own queue.
pub(crate) struct FetchQueue {
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// Kept alive as long as the queue, and so as long as any batch taken from it.
    consumer: GroupConsumer,
}

// SAFETY: a librdkafka queue handle may be used from any thread: every
// operation on it takes the queue's lock. The handle is only destroyed in
// `drop`, when no other reference is left.
unsafe impl Send for FetchQueue {}
// SAFETY: as above; `&FetchQueue` only reaches thread-safe librdkafka calls.
unsafe impl Sync for FetchQueue {}

impl FetchQueue {
    /// A new, empty queue of `consumer`'s.
    pub(crate) fn new(consumer: GroupConsumer) -> Arc<Self> {
        // SAFETY: the client pointer is valid while `consumer` lives, and the
        // queue it returns holds its own reference to the client.
        let queue = unsafe { rd::rd_kafka_queue_new(consumer.client().native_ptr()) };
        let queue = NonNull::new(queue).expect("librdkafka allocates queues infallibly");
        Arc::new(Self { queue, consumer })
    }

    /// The consumer the queue belongs to.
    pub(crate) fn consumer(&self) -> &BaseConsumer {
        &self.consumer
    }

    /// Sends the messages fetched for `partition` of `topic` to this queue
    /// from now on. Call it before the partition is assigned: assignment
    /// keeps a forward the application set, and nothing fetched earlier can
    /// be on the consumer's queue then.
    pub(crate) fn route(&self, topic: &str, partition: i32) -> Result<(), String> {
        let name = CString::new(topic).map_err(|_| format!("topic name {topic:?} contains a NUL byte"))?;
        // SAFETY: the client is alive (held by `self.consumer`) and `name` is a
        // NUL-terminated string that outlives the call. The partition queue
        // handle returned is ours to destroy, which only drops our reference:
        // the forward stays on the partition's fetch queue.
        unsafe {
            let partition_queue =
                rd::rd_kafka_queue_get_partition(self.consumer.client().native_ptr(), name.as_ptr(), partition);
            let Some(partition_queue) = NonNull::new(partition_queue) else {
                return Err(format!("librdkafka has no queue for {topic}/{partition}"));
            };
            rd::rd_kafka_queue_forward(partition_queue.as_ptr(), self.queue.as_ptr());
            rd::rd_kafka_queue_destroy(partition_queue.as_ptr());
        }
        Ok(())
    }
}

impl Drop for FetchQueue {
    fn drop(&mut self) {
        // SAFETY: the last reference; no batch holds a message of it any more
        // (each batch holds an `Arc` of the queue), and the client is still
        // alive: `self.consumer` is dropped after this.
        unsafe { rd::rd_kafka_queue_destroy(self.queue.as_ptr()) };
    }
}

/// What [`FetchedBatch::take`] found on the queue, for the caller to sort.
pub(crate) enum Polled<'a> {
    /// A message of `partition` of a topic.
    Message(MessageView<'a>),
    /// The consumer has reached the end of what the broker holds of a partition.
    EndOfPartition(MessageView<'a>),
    /// The fetch of a partition failed; the client retries on its own.
    Error(String),
}

/// A message (or an end of partition) as librdkafka holds it.
pub(crate) struct MessageView<'a> {
    message: &'a rd::rd_kafka_message_t,
}

impl<'a> MessageView<'a> {
    /// The topic's name.
    pub(crate) fn topic(&self) -> &'a str {
        // SAFETY: a fetched message always carries its topic, which lives at
        // least as long as the message; its name is NUL-terminated.
        let name = unsafe { CStr::from_ptr(rd::rd_kafka_topic_name(self.message.rkt)) };
        name.to_str().unwrap_or_default()
    }

    /// Identifies the topic as long as the consumer is assigned to it (the
    /// address of librdkafka's topic object): cheaper to compare than its name.
    pub(crate) fn topic_id(&self) -> usize {
        self.message.rkt as usize
    }

    /// The partition's number.
    pub(crate) fn partition(&self) -> i32 {
        self.message.partition
    }

    /// The message's offset (for an end of partition: the offset it ends at).
    pub(crate) fn offset(&self) -> i64 {
        self.message.offset
    }
}

/// Messages taken from a [`FetchQueue`], each with the index of its
/// partition, held in librdkafka's fetch buffers until the batch is dropped.
pub(crate) struct FetchedBatch {
    /// Declared first, so dropped before `queue`: every message is released
    /// while its client is alive.
    held: Vec<Held>,
    /// The total size of the kept messages' payloads.
    payload_bytes: usize,
    queue: Arc<FetchQueue>,
    /// The pointers the last take returned, before sorting (kept for its allocation).
    scratch: Vec<*mut rd::rd_kafka_message_t>,
}

/// One message kept in a batch: owned, destroyed on drop.
struct Held {
    message: NonNull<rd::rd_kafka_message_t>,
    partition: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        // SAFETY: the message was returned by `rd_kafka_consume_batch_queue`,
        // is owned by this `Held` alone, and its client is alive (see `FetchedBatch`).
        unsafe { rd::rd_kafka_message_destroy(self.message.as_ptr()) };
    }
}

/// A message of a batch, for decoding.
pub(crate) struct Fetched<'a> {
    /// The index the consumer gave its partition.
    pub partition: usize,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its value; `None` for a message without one.
    pub payload: Option<&'a [u8]>,
}

impl FetchedBatch {
    /// An empty batch of messages from `queue`.
    pub(crate) fn new(queue: &Arc<FetchQueue>) -> Self {
        Self {
            held: Vec::new(),
            payload_bytes: 0,
            queue: Arc::clone(queue),
            scratch: Vec::new(),
        }
    }

    /// How many messages the batch holds.
    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether the batch holds no message.
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Takes up to `max` messages from the queue, waiting up to `timeout`
    /// until `max` are there, and keeps each message that `sort` gives a
    /// partition index; the rest (ends of partitions, errors, messages to
    /// skip) are released at once. Returns how many were taken in all, kept
    /// or not: 0 when the queue stayed empty.
    pub(crate) fn take(
        &mut self,
        max: usize,
        timeout: Duration,
        mut sort: impl FnMut(Polled<'_>) -> Option<usize>,
    ) -> usize {
        self.scratch.clear();
        self.scratch.reserve(max);
        let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the queue is alive (held by `self.queue`), and `scratch` has
        // room for `max` pointers, which librdkafka fills from the start.
        let taken = unsafe {
            rd::rd_kafka_consume_batch_queue(self.queue.queue.as_ptr(), timeout_ms, self.scratch.as_mut_ptr(), max)
        };
        let taken = usize::try_from(taken).unwrap_or(0).min(max);
        // SAFETY: librdkafka wrote `taken` valid message pointers.
        unsafe { self.scratch.set_len(taken) };
        self.held.reserve(taken);
        for &pointer in &self.scratch {
            let message = NonNull::new(pointer).expect("librdkafka returns no null message");
            // Owned from here on: destroyed when `held` drops it, kept or not.
            let mut held = Held { message, partition: 0 };
            // SAFETY: valid until destroyed, which happens after this borrow ends.
            let view = MessageView {
                message: unsafe { message.as_ref() },
            };
            let length = view.message.len;
            let polled = match view.message.err {
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => Polled::Message(view),
                rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR__PARTITION_EOF => Polled::EndOfPartition(view),
                error => Polled::Error(describe(view.message, error)),
            };
            if let Some(partition) = sort(polled) {
                held.partition = partition;
                self.held.push(held);
                self.payload_bytes += length;
            }
        }
        self.scratch.clear();
        taken
    }

    /// The messages kept, in the order they were taken.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Fetched<'_>> {
        self.held.iter().map(|held| {
            // SAFETY: the message is alive while the batch holds it, and
            // librdkafka never changes a message it has handed out.
            let message = unsafe { held.message.as_ref() };
            let payload = (!message.payload.is_null()).then(|| {
                // SAFETY: `payload` points to `len` bytes in the message's
                // fetch buffer, alive while the message is.
                unsafe { std::slice::from_raw_parts(message.payload.cast::<u8>().cast_const(), message.len) }
            });
            Fetched {
                partition: held.partition,
                offset: message.offset,
                payload,
            }
        })
    }

    /// The total size of the kept messages' payloads, in bytes.
    pub(crate) fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }
}

/// librdkafka's description of a failed fetch.
fn describe(message: &rd::rd_kafka_message_t, error: rd::rd_kafka_resp_err_t) -> String {
    // SAFETY: both return static or message-owned NUL-terminated strings (or
    // null for none), read before the message is released.
    let (text, reason) = unsafe {
        let text = rd::rd_kafka_message_errstr(message);
        let reason = rd::rd_kafka_err2str(error);
        (
            (!text.is_null()).then(|| CStr::from_ptr(text).to_string_lossy().into_owned()),
            CStr::from_ptr(reason).to_string_lossy().into_owned(),
        )
    };
    match text {
        Some(text) if !text.is_empty() && text != reason => format!("{reason}: {text}"),
        _ => reason,
    }
}
