//! Records that could not be decoded, kept with the reason and where they came from.

use serde::{Deserialize, Serialize};

/// An input record that did not decode into an [`Event`](crate::Event).
///
/// It is never dropped silently: sources emit it on their `dead_letter` output,
/// which a sink consumes (by default a JSONL file), and count it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The pipeline component that read the record.
    pub component: String,
    /// Why it was rejected, e.g. `missing field "ts" at line 1 column 40`.
    pub reason: String,
    /// Where it was read: a file and line, a topic/partition/offset.
    pub position: Position,
    /// The raw text (lossily decoded when it was not UTF-8).
    pub raw: String,
}

/// Where a record was read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Position {
    /// A line of a file: 1-based line number and the byte offset of its start.
    File {
        /// The file's path as configured.
        path: String,
        /// 1-based line number.
        line: u64,
        /// Byte offset of the line's first byte.
        offset: u64,
    },
    /// A Kafka message.
    Kafka {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset of the message.
        offset: i64,
    },
    /// An event that arrived behind the watermark, written as a dead letter
    /// because nothing reads its source's `late` output; where it was read is
    /// not kept.
    Late {
        /// The watermark it was behind (epoch ms).
        watermark: u64,
    },
    /// An element of a request to the HTTP ingest endpoint (`POST /api/v1/events`).
    Http {
        /// The request's correlation id (`X-Correlation-ID`).
        request: String,
        /// 0-based position of the element in the request (for NDJSON, its line).
        index: u64,
    },
    /// A record a sink refused for good (a value its destination cannot
    /// hold); `raw` is the record as JSON.
    Sink {
        /// The sink.
        sink: String,
    },
    /// A generated record (the generator never produces bad records, but tests may).
    Generated {
        /// Sequence number of the record.
        sequence: u64,
    },
    /// A point an operator refused (a value that is not a finite number, a
    /// time before its series' previous point): its event time.
    Point {
        /// Event time of the point (epoch ms).
        ts: u64,
    },
}
