//! Sinks of pulse: where results go.
//!
//! Every sink here writes lines of JSON through [`write_lines`], which gathers
//! them on worker 0 and writes each completed timestamp's lines sorted, so the
//! output does not depend on the number of workers.
//!
//! - [`file`]: JSONL files.
//! - [`stdout`]: standard output, as JSON lines or a table.
//! - [`kafka`]: a Kafka topic, one keyed message per record.
//! - [`dead_letter_topic`]: a Kafka source's dead letters, to `{tenant}.dlq` topics.
//! - [`live`]: the `websocket` sink: closed windows to the live hub and the query views
//!   (it publishes directly rather than through [`write_lines`]).

pub mod dead_letter_topic;
pub mod file;
pub mod kafka;
pub mod live;
pub mod stdout;
pub mod writer;

pub use dead_letter_topic::DeadLetterTopics;
pub use file::JsonlFile;
pub use kafka::KafkaSink;
pub use live::{LiveOutputs, publish_live};
pub use stdout::{Stdout, StdoutFormat};
pub use writer::{LineSink, to_json_lines, write_lines};
