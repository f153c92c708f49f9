//! The Parquet writer as a pipeline sink on the sink runtime
//! (`type = "parquet"`).
//!
//! [`ParquetSink`] is the [`BatchWriter`] of one operator output: `write`
//! only adds rows to the hours they belong to (memory, no I/O); `advance`,
//! told that every record before a frontier has arrived, writes the hours
//! that end before it (and files of hours that already hold
//! `max_rows_per_file` rows) and answers the frontier before which every
//! row is in a renamed file. That is what the runtime acknowledges, so a
//! Kafka source upstream commits only past rows on disk. The file writes are
//! synchronous, so they run on tokio's blocking pool, never on the sink's
//! async task nor on a timely worker.
//!
//! The writer opens on the first row, with that row's schema. A row of
//! another schema, or a record that is not a row, is refused as a dead
//! letter. A row that arrives for an hour already written (a window that
//! ends well after its start's hour) goes to a further file of that hour.

use std::path::PathBuf;

use pulse_core::EventTime;

use super::{ParquetOptions, ParquetSinkError, ParquetWriter};
use crate::runtime::{BatchWriter, SinkRecord, WriteError, Written};

/// The sink writing one operator's rows as hour-partitioned Parquet files
/// under `<dir>/<operator>`.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
/// use pulse_sinks::parquet::{ParquetOptions, ParquetSink};
/// use pulse_sinks::{BatchWriter, SinkRecord};
///
/// let schema = Arc::new(RowSchema::new(vec![
///     Column::new("window_start", ColumnType::Time),
///     Column::new("count", ColumnType::Int),
/// ]).unwrap());
/// // 2024-11-23T06:00:10Z.
/// let row = Row::new(schema, vec![Value::Time(1_732_341_610_000), Value::Int(3)]);
/// let dir = std::env::temp_dir().join(format!("pulse-parquet-sink-doc-{}", std::process::id()));
/// let mut sink = ParquetSink::new(&dir, "by_tenant", ParquetOptions::default());
/// let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// runtime.block_on(async {
///     assert!(sink.write(&[SinkRecord::Row(row)]).await.unwrap().rejected.is_empty());
///     // 06:30: hour 06 may still get rows, so it is not on disk and not acknowledged.
///     assert_eq!(sink.advance(1_732_343_400_000).await.unwrap(), 1_732_341_600_000);
///     // 07:00 and after: hour 06 is written, and everything before 07:00 is acknowledged.
///     assert_eq!(sink.advance(1_732_345_200_001).await.unwrap(), 1_732_345_200_001);
/// });
/// assert!(dir.join("by_tenant/dt=2024-11-23/hour=06").read_dir().unwrap().next().is_some());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct ParquetSink {
    dir: PathBuf,
    operator: String,
    options: ParquetOptions,
    /// Opened at the first row; `None` while it runs on the blocking pool.
    writer: Option<ParquetWriter>,
}

impl ParquetSink {
    /// A sink of `operator`'s rows under `dir/operator`; nothing is created
    /// before the first row.
    pub fn new(dir: impl Into<PathBuf>, operator: &str, options: ParquetOptions) -> Self {
        Self {
            dir: dir.into(),
            operator: operator.to_owned(),
            options,
            writer: None,
        }
    }

    /// Runs `work` on the writer on tokio's blocking pool.
    async fn on_writer<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut ParquetWriter) -> T + Send + 'static,
    ) -> Result<Option<T>, WriteError> {
        let Some(mut writer) = self.writer.take() else {
            return Ok(None);
        };
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut writer);
            (writer, result)
        })
        .await
        .map_err(|error| WriteError::Fatal(format!("parquet writer failed: {error}")))?;
        self.writer = Some(writer);
        Ok(Some(result))
    }
}

/// Disk errors may pass (space freed, a mount back); the rest will not.
fn write_error(error: ParquetSinkError) -> WriteError {
    match error {
        ParquetSinkError::Io { .. } | ParquetSinkError::Parquet { .. } => WriteError::retry(error),
        ParquetSinkError::Config(_) | ParquetSinkError::Arrow(_) => WriteError::Fatal(error.to_string()),
    }
}

impl BatchWriter for ParquetSink {
    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Written, WriteError> {
        let mut rejected = Vec::new();
        let mut rows = Vec::with_capacity(batch.len());
        for (index, record) in batch.iter().enumerate() {
            match record {
                SinkRecord::Row(row) => rows.push((index, row.clone())),
                _ => rejected.push((index, "a parquet sink writes operator rows only".to_owned())),
            }
        }
        if self.writer.is_none()
            && let Some((_, first)) = rows.first()
        {
            let (dir, operator, options) = (self.dir.clone(), self.operator.clone(), self.options.clone());
            let schema = std::sync::Arc::clone(first.schema());
            let opened = tokio::task::spawn_blocking(move || ParquetWriter::open(&dir, &operator, schema, options))
                .await
                .map_err(|error| WriteError::Fatal(format!("parquet writer failed: {error}")))?;
            match opened {
                Ok(writer) => self.writer = Some(writer),
                Err(error @ ParquetSinkError::Config(_)) => {
                    // These rows can never be written here: dead letters, not a stuck sink.
                    rejected.extend(rows.into_iter().map(|(index, _)| (index, error.to_string())));
                    rejected.sort_unstable_by_key(|(index, _)| *index);
                    return Ok(Written { rejected });
                }
                Err(error) => return Err(write_error(error)),
            }
        }
        // Appending touches memory only: a write that returns has added every row exactly once.
        if let Some(writer) = self.writer.as_mut() {
            for (index, row) in rows {
                rejected.extend(
                    writer
                        .append(std::iter::once(row))
                        .into_iter()
                        .map(|refused| (index, refused.reason)),
                );
            }
        }
        rejected.sort_unstable_by_key(|(index, _)| *index);
        Ok(Written { rejected })
    }

    async fn advance(&mut self, frontier: EventTime) -> Result<EventTime, WriteError> {
        // Rows at `frontier - 1` have arrived; those at `frontier` may still come.
        let through = match frontier {
            EventTime::MAX => EventTime::MAX,
            _ => frontier.saturating_sub(1),
        };
        let outcome = self
            .on_writer(move |writer| {
                writer.write_full()?;
                writer.finish_through(through)?;
                // A waiting row's time is at least its hour's start: everything
                // before the earliest waiting hour is on disk.
                Ok::<_, ParquetSinkError>(writer.waiting_hours().next().map(|hour| hour.start()))
            })
            .await?;
        match outcome {
            None | Some(Ok(None)) => Ok(frontier),
            Some(Ok(Some(waiting))) => Ok(frontier.min(waiting)),
            Some(Err(error)) => Err(write_error(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pulse_core::dead_letter::{DeadLetter, Position};
    use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};

    use super::*;

    /// A directory removed at the end of the test.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("pulse-parquet-sink-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            Self(dir)
        }

        fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const HOUR: EventTime = 3_600_000;
    /// 2024-11-23T06:00:00Z.
    const SIX: EventTime = 1_732_341_600_000;

    fn rows(starts: &[EventTime]) -> Vec<SinkRecord> {
        let schema = Arc::new(
            RowSchema::new(vec![
                Column::new("window_start", ColumnType::Time),
                Column::new("count", ColumnType::Int),
            ])
            .unwrap(),
        );
        starts
            .iter()
            .map(|&start| SinkRecord::Row(Row::new(Arc::clone(&schema), vec![Value::Time(start), Value::Int(1)])))
            .collect()
    }

    fn files(dir: &std::path::Path) -> Vec<String> {
        let mut found = Vec::new();
        if !dir.exists() {
            return found;
        }
        let mut pending = vec![dir.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    found.push(path.file_name().unwrap().to_string_lossy().into_owned());
                }
            }
        }
        found.sort();
        found
    }

    #[tokio::test]
    async fn acknowledges_only_hours_on_disk() {
        let dir = TempDir::new("acknowledges");
        let mut sink = ParquetSink::new(dir.path(), "windows", ParquetOptions::default());
        let written = sink.write(&rows(&[SIX, SIX + 10_000, SIX + HOUR])).await.unwrap();
        assert!(written.rejected.is_empty());
        // Hour 06 is not over: nothing on disk, nothing acknowledged past its start.
        assert_eq!(sink.advance(SIX + HOUR - 1).await.unwrap(), SIX);
        assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
        // Past 07:00: hour 06 is written, hour 07 still waits.
        assert_eq!(sink.advance(SIX + HOUR + 1).await.unwrap(), SIX + HOUR);
        assert_eq!(files(dir.path()), ["part-1732341600000-1732341610000-0000.parquet"]);
        // Everything: hour 07 too.
        assert_eq!(sink.advance(EventTime::MAX).await.unwrap(), EventTime::MAX);
        assert_eq!(files(dir.path()).len(), 2);
    }

    #[tokio::test]
    async fn refuses_what_is_not_a_row_and_keeps_the_rest() {
        let dir = TempDir::new("refuses");
        let mut sink = ParquetSink::new(dir.path(), "windows", ParquetOptions::default());
        let mut batch = rows(&[SIX]);
        let letter = DeadLetter {
            component: "src".into(),
            reason: "undecodable".into(),
            position: Position::Sink { sink: "s".into() },
            raw: "{".into(),
        };
        batch.insert(0, SinkRecord::DeadLetter(letter));
        let written = sink.write(&batch).await.unwrap();
        assert_eq!(written.rejected.len(), 1);
        assert_eq!(written.rejected[0].0, 0);
        assert_eq!(sink.advance(EventTime::MAX).await.unwrap(), EventTime::MAX);
        assert_eq!(files(dir.path()).len(), 1);
    }
}
