//! Line-oriented sinks (files, stdout) on the sink runtime.
//!
//! A [`LineSink`] writes whole batches of JSON lines to something local. The
//! runtime runs it as an [ordered](crate::runtime::Delivery::Ordered) sink:
//! [`LineWriter`] gets each completed timestamp's records of every worker in
//! one batch, writes them as lines sorted, in one write, then flushes. So the
//! output is byte-identical for any number of workers, and a reader never
//! sees a half-written batch of lines.

use std::io;

use crate::runtime::{BatchWriter, SinkRecord, WriteError, Written};

/// Where a sink's lines end up.
pub trait LineSink: 'static {
    /// Writes one complete batch of lines (each without its newline), sorted.
    fn write_batch(&mut self, lines: &[String]) -> io::Result<()>;
    /// Flushes everything written so far to the destination.
    fn flush(&mut self) -> io::Result<()>;
}

impl LineSink for Box<dyn LineSink + Send> {
    fn write_batch(&mut self, lines: &[String]) -> io::Result<()> {
        (**self).write_batch(lines)
    }

    fn flush(&mut self) -> io::Result<()> {
        (**self).flush()
    }
}

/// Runs a [`LineSink`] as the sink runtime's writer: each batch becomes JSON
/// lines, sorted, written and flushed. A write error is not retried (a full
/// disk does not empty itself): the batch is lost, counted, and the run fails.
pub struct LineWriter<S> {
    sink: S,
}

impl<S: LineSink + Send> LineWriter<S> {
    /// Writes through `sink`.
    pub fn new(sink: S) -> Self {
        Self { sink }
    }
}

impl<S: LineSink + Send> BatchWriter for LineWriter<S> {
    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Written, WriteError> {
        let mut lines: Vec<String> = batch.iter().map(SinkRecord::to_json_line).collect();
        lines.sort_unstable();
        // Local and short: a file append or a terminal write, on the sink's
        // own task, never on a timely worker.
        self.sink
            .write_batch(&lines)
            .and_then(|()| self.sink.flush())
            .map_err(|error| WriteError::Fatal(error.to_string()))?;
        Ok(Written::default())
    }
}
