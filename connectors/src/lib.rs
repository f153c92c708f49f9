//! Sources of pulse: where events come from.
//!
//! Every source is an [`EventReader`] run by the shared [`event_source`]
//! operator, which turns event times into progress (the watermark), splits off
//! late events and dead letters, and never stops on bad input.
//!
//! - [`generator`]: synthetic sensors, paced to a rate or as fast as possible.
//! - [`file`]: JSONL file replay, split across workers by byte range.
//! - [`kafka`]: Kafka partitions, dealt to workers, a watermark each.
//! - [`http`]: events posted to the gateway's `POST /api/v1/events`.

pub mod file;
pub mod generator;
pub mod http;
pub mod kafka;
pub mod lead;
pub mod source;
pub mod time_bounds;
pub mod watermark;

pub use lead::LeadLimit;
pub use source::{EventReader, ReadBatch, ReadStatus, SourceFailures, SourceSettings, SourceStreams, event_source};
pub use time_bounds::TimestampBounds;
pub use watermark::{Split, SplitWatermarks, Watermark, WorkerWatermarks};
