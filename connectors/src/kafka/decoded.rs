//! A fetched batch decoded into events, on the consumer thread.
//!
//! Decoding is most of a Kafka source's work per message. Doing it where the
//! messages are fetched, rather than on the timely worker, lets the two
//! overlap: the worker folds one batch into its windows while the consumer
//! thread decodes the next. It also releases librdkafka's fetch buffers as
//! soon as a batch is decoded.

use pulse_core::{Event, Projection};

use super::fetch::FetchedBatch;

/// One fetched message, decoded.
pub(crate) struct DecodedMessage {
    /// The index of its partition among the worker's partitions.
    pub partition: usize,
    pub offset: i64,
    /// The event, or why the message is not one.
    pub event: Result<Event, Undecodable>,
}

/// A message that did not decode, kept whole for its dead letter.
pub(crate) struct Undecodable {
    pub reason: String,
    /// The payload, lossily as text.
    pub raw: String,
}

/// Decodes every message of `fetched`, in the order they were fetched,
/// keeping the parts `projection` asks for.
pub(crate) fn decode(fetched: &FetchedBatch, projection: Projection) -> Vec<DecodedMessage> {
    fetched
        .iter()
        .map(|message| DecodedMessage {
            partition: message.partition,
            offset: message.offset,
            event: match message.payload {
                Some(payload) => Event::from_json_projected(payload, projection).map_err(|error| Undecodable {
                    reason: error.to_string(),
                    raw: String::from_utf8_lossy(payload).into_owned(),
                }),
                None => Err(Undecodable {
                    reason: "empty message (no payload)".to_owned(),
                    raw: String::new(),
                }),
            },
        })
        .collect()
}
