//! Sinks of pulse: where results go.
//!
//! Every sink runs on the [`runtime`]: the dataflow hands typed records
//! ([`SinkRecord`]) through a bounded channel to the sink's own tokio task,
//! which batches, writes, retries and acknowledges; nothing blocks a timely
//! worker.
//!
//! - [`file`]: JSONL files, and [`stdout`]: JSON lines or a table — one
//!   ordered writer each ([`LineWriter`]), output independent of the number of workers.
//! - [`clickhouse`]: history in ClickHouse tables, idempotent on replay.
//! - [`graph`]: resources, topology, k8s events, logs and incidents as a
//!   per-tenant graph in Neo4j (Bolt) or FalkorDB (RESP).
//! - [`incident_row`]: the incidents operator's rows as the sinks read them.
//! - [`kafka`]: a Kafka topic, one keyed message per record.
//! - [`redis`]: the latest row and a bounded series per key, and notifications, in Redis.
//! - [`dead_letter_topic`]: a Kafka source's dead letters, to `{tenant}.dlq` topics.
//! - [`live`]: the `websocket` sink: closed windows to the live hub and the
//!   query views (in-memory publishing on the worker, no I/O).
//! - [`parquet`]: typed rows as hour-partitioned Parquet files, a synchronous
//!   writer for the sink runtime to drive (not wired into pipelines yet).

pub mod clickhouse;
pub mod dead_letter_topic;
pub mod file;
pub mod graph;
pub mod incident_row;
pub mod kafka;
pub mod live;
pub mod parquet;
pub mod redis;
pub mod runtime;
pub mod stdout;
pub mod writer;

pub use dead_letter_topic::DeadLetterTopics;
pub use file::JsonlFile;
pub use kafka::KafkaSink;
pub use live::{LiveOutputs, publish_live};
pub use runtime::{
    BatchWriter, DeliverExt, Delivery, SinkContext, SinkHandle, SinkOptions, SinkRecord, WriteError, Written,
    start_sink,
};
pub use stdout::{Stdout, StdoutFormat};
pub use writer::{LineSink, LineWriter};
