//! Parquet files: typed rows as columnar history without a server.
//!
//! A [`ParquetWriter`] takes the rows of one operator output (any
//! [`RowSchema`]), turns them into Arrow record batches ([`batch`]: times as
//! `timestamp[ms, tz=UTC]`, keys as dictionaries, integers, floats, text and
//! bools, nullable as declared) and writes them as Parquet files partitioned
//! by the UTC hour of a time column (the first one by default, `window_start`
//! for windows):
//!
//! ```text
//! <dir>/<operator>/dt=2024-11-23/hour=06/part-<first>-<last>-<seq>.parquet
//! ```
//!
//! `first` and `last` are the smallest and largest partition times in the
//! file (epoch ms) and `seq` its number among the files of its hour written
//! by this writer, so the same rows written again (a replay after a crash)
//! produce the same name and replace the file rather than add a duplicate.
//! Each file is written under a hidden temporary name (`.part-….tmp`, which
//! readers of the directory skip), synced, then renamed: a reader sees whole
//! files or none. A crash leaves at most a temporary file, replaced by the
//! replay.
//!
//! The writer is a plain synchronous API for the sink runtime to drive from
//! its own task: [`ParquetWriter::open`], [`ParquetWriter::append`] rows,
//! [`ParquetWriter::write_full`] to write hours that hold `max_rows_per_file`
//! rows already, [`ParquetWriter::finish_through`] the hours no more rows can
//! come for (or [`ParquetWriter::finish_hour`] one), and
//! [`ParquetWriter::close`], which writes what is left. Rows wait in memory
//! until then. An hour's rows are written sorted (by partition time, then by
//! their values), cut into files of `max_rows_per_file`, so the same rows
//! make the same files whatever order they arrived in. A row that does not fit the
//! schema is handed back with the reason (for the dead letters); it never
//! blocks the others. A failed write keeps its rows, to be retried.
//!
//! ```
//! use std::sync::Arc;
//! use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
//! use pulse_sinks::parquet::{ParquetOptions, ParquetWriter};
//!
//! let schema = Arc::new(RowSchema::new(vec![
//!     Column::new("window_start", ColumnType::Time),
//!     Column::new("tenant", ColumnType::Key),
//!     Column::new("count", ColumnType::Int),
//! ]).unwrap());
//! let dir = std::env::temp_dir().join(format!("pulse-parquet-doc-{}", std::process::id()));
//! let mut writer = ParquetWriter::open(&dir, "by_tenant", Arc::clone(&schema), ParquetOptions::default()).unwrap();
//! // 2024-11-23T06:00:00Z and 06:00:10Z.
//! let rows = [1_732_341_600_000, 1_732_341_610_000]
//!     .map(|start| Row::new(Arc::clone(&schema), vec![Value::Time(start), Value::from("acme"), Value::Int(3)]));
//! assert!(writer.append(rows).is_empty(), "every row fits");
//! let written = writer.finish_through(1_732_345_200_000).unwrap(); // 07:00: hour 06 is complete
//! assert_eq!(written[0].rows, 2);
//! assert!(written[0].path.ends_with("by_tenant/dt=2024-11-23/hour=06/part-1732341600000-1732341610000-0000.parquet"));
//! assert!(writer.close().unwrap().is_empty(), "nothing was left");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

pub mod batch;
pub mod partition;
mod sink;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::{ArrowError, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use pulse_core::EventTime;
use pulse_core::row::{ColumnType, Row, RowSchema};

pub use partition::HourPartition;
pub use sink::ParquetSink;

/// Why the Parquet writer failed.
#[derive(Debug, thiserror::Error)]
pub enum ParquetSinkError {
    /// The schema cannot be partitioned, or the operator name cannot be a directory.
    #[error("parquet sink: {0}")]
    Config(String),
    /// A file or directory could not be written.
    #[error("parquet sink: {path}: {source}")]
    Io {
        /// What was being written.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The Parquet encoder failed.
    #[error("parquet sink: writing {path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// Why.
        source: parquet::errors::ParquetError,
    },
    /// Rows could not become a record batch.
    #[error("parquet sink: {0}")]
    Arrow(#[from] ArrowError),
}

/// How files are cut and encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParquetOptions {
    /// The time column rows are partitioned by (default: the schema's first time column).
    pub partition_column: Option<String>,
    /// Rows per file at most: an hour with more is cut into several files,
    /// and [`ParquetWriter::write_full`] writes the full ones before the hour
    /// ends (default 1,000,000).
    pub max_rows_per_file: usize,
    /// Rows per row group inside a file (default 65,536).
    pub row_group_rows: usize,
}

impl Default for ParquetOptions {
    fn default() -> Self {
        Self {
            partition_column: None,
            max_rows_per_file: 1_000_000,
            row_group_rows: 65_536,
        }
    }
}

/// A file the writer completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenFile {
    /// Where it is.
    pub path: PathBuf,
    /// The hour it belongs to.
    pub partition: HourPartition,
    /// Rows in it.
    pub rows: usize,
    /// The smallest partition time in it (epoch ms).
    pub first: EventTime,
    /// The largest partition time in it (epoch ms).
    pub last: EventTime,
}

/// A row the writer refused, and why: for the dead letters.
#[derive(Clone, Debug, PartialEq)]
pub struct RejectedRow {
    /// The row.
    pub row: Row,
    /// Why it cannot be written.
    pub reason: String,
}

/// A total order of rows by their values, column by column (floats by
/// `total_cmp`, so NaN has a place too).
fn compare_rows(a: &Row, b: &Row) -> std::cmp::Ordering {
    use pulse_core::row::Value;
    fn rank(value: &Value) -> u8 {
        match value {
            Value::Null => 0,
            Value::Time(_) => 1,
            Value::Str(_) => 2,
            Value::Int(_) => 3,
            Value::Float(_) => 4,
            Value::Bool(_) => 5,
        }
    }
    a.values()
        .iter()
        .zip(b.values())
        .map(|(a, b)| match (a, b) {
            (Value::Time(x), Value::Time(y)) => x.cmp(y),
            (Value::Str(x), Value::Str(y)) => x.cmp(y),
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            (Value::Float(x), Value::Float(y)) => x.total_cmp(y),
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            _ => rank(a).cmp(&rank(b)),
        })
        .find(|order| order.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// Writes the rows of one operator output as hour-partitioned Parquet files.
pub struct ParquetWriter {
    /// `<dir>/<operator>`.
    root: PathBuf,
    schema: Arc<RowSchema>,
    arrow_schema: Arc<Schema>,
    properties: WriterProperties,
    partition_column: usize,
    options: ParquetOptions,
    /// Rows waiting for their hour to finish, with their partition time.
    waiting: BTreeMap<HourPartition, Vec<(EventTime, Row)>>,
    /// Files written so far per hour: the next file's sequence number.
    sequences: BTreeMap<HourPartition, u32>,
}

impl ParquetWriter {
    /// A writer of rows of `schema` for `operator`, under `dir/operator`.
    pub fn open(
        dir: &Path,
        operator: &str,
        schema: Arc<RowSchema>,
        options: ParquetOptions,
    ) -> Result<Self, ParquetSinkError> {
        let plain =
            !operator.is_empty() && operator != "." && operator != ".." && !operator.contains(['/', '\\', '\0']);
        if !plain {
            return Err(ParquetSinkError::Config(format!(
                "operator name {operator:?} cannot name a directory"
            )));
        }
        let partition_column = match &options.partition_column {
            Some(name) => match schema.column(name) {
                Some((index, column)) if column.ty == ColumnType::Time && !column.nullable => index,
                Some(_) => {
                    return Err(ParquetSinkError::Config(format!(
                        "partition column `{name}` is not a non-nullable event time"
                    )));
                }
                None => return Err(ParquetSinkError::Config(format!("no column `{name}` to partition by"))),
            },
            None => schema
                .columns()
                .iter()
                .position(|column| column.ty == ColumnType::Time && !column.nullable)
                .ok_or_else(|| {
                    ParquetSinkError::Config(format!(
                        "the rows of `{operator}` have no non-nullable event time to partition by"
                    ))
                })?,
        };
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(options.row_group_rows.max(1)))
            .set_created_by(format!("pulse {}", env!("CARGO_PKG_VERSION")))
            .build();
        let root = dir.join(operator);
        std::fs::create_dir_all(&root).map_err(|source| ParquetSinkError::Io {
            path: root.clone(),
            source,
        })?;
        Ok(Self {
            root,
            arrow_schema: Arc::new(batch::arrow_schema(&schema)),
            schema,
            properties,
            partition_column,
            options,
            waiting: BTreeMap::new(),
            sequences: BTreeMap::new(),
        })
    }

    /// The directory files go under (`<dir>/<operator>`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Rows waiting for their hour to be finished.
    pub fn waiting_rows(&self) -> usize {
        self.waiting.values().map(Vec::len).sum()
    }

    /// The hours that have rows waiting, oldest first.
    pub fn waiting_hours(&self) -> impl Iterator<Item = HourPartition> + '_ {
        self.waiting.keys().copied()
    }

    /// Adds `rows` to the hours they belong to; returns the rows that do not
    /// fit the schema, with why (nothing is written here).
    pub fn append(&mut self, rows: impl IntoIterator<Item = Row>) -> Vec<RejectedRow> {
        let mut rejected = Vec::new();
        for row in rows {
            if let Some(reason) = batch::misfit(&self.schema, &row) {
                rejected.push(RejectedRow { row, reason });
                continue;
            }
            let Some(time) = row.values()[self.partition_column].as_time() else {
                unreachable!("a fitting row has a time in its non-nullable time column")
            };
            self.waiting
                .entry(HourPartition::of(time))
                .or_default()
                .push((time, row));
        }
        rejected
    }

    /// Writes a file of `max_rows_per_file` rows for every hour that has that
    /// many waiting (the earliest of them), so memory stays bounded within a
    /// long hour. Returns the files written.
    pub fn write_full(&mut self) -> Result<Vec<WrittenFile>, ParquetSinkError> {
        let full: Vec<HourPartition> = self
            .waiting
            .iter()
            .filter(|(_, rows)| rows.len() >= self.max_rows())
            .map(|(hour, _)| *hour)
            .collect();
        let mut written = Vec::new();
        for partition in full {
            written.extend(self.write_hour(partition, true)?);
        }
        Ok(written)
    }

    /// Writes every row waiting for `partition` (in files of at most
    /// `max_rows_per_file`). On an error the unwritten rows stay, to be
    /// written by a later call.
    pub fn finish_hour(&mut self, partition: HourPartition) -> Result<Vec<WrittenFile>, ParquetSinkError> {
        self.write_hour(partition, false)
    }

    /// Writes every hour that ends at or before `time` (epoch ms): the caller
    /// knows no more rows can come for those hours (its input's frontier has
    /// passed them). Returns the files written, oldest hour first.
    pub fn finish_through(&mut self, time: EventTime) -> Result<Vec<WrittenFile>, ParquetSinkError> {
        let complete: Vec<HourPartition> = self.waiting_hours().take_while(|hour| hour.end() <= time).collect();
        let mut written = Vec::new();
        for partition in complete {
            written.extend(self.finish_hour(partition)?);
        }
        Ok(written)
    }

    fn max_rows(&self) -> usize {
        self.options.max_rows_per_file.max(1)
    }

    /// Writes `partition`'s waiting rows, earliest first, in files of
    /// `max_rows_per_file`; with `only_full`, leaves a last file short of that.
    fn write_hour(&mut self, partition: HourPartition, only_full: bool) -> Result<Vec<WrittenFile>, ParquetSinkError> {
        let Some(mut rows) = self.waiting.remove(&partition) else {
            return Ok(Vec::new());
        };
        // By time, then by value: the same rows make the same files in whatever order they came.
        rows.sort_by(|(a_time, a), (b_time, b)| a_time.cmp(b_time).then_with(|| compare_rows(a, b)));
        let mut written = Vec::new();
        let mut done = 0;
        while done < rows.len() && (!only_full || rows.len() - done >= self.max_rows()) {
            let chunk = &rows[done..(done + self.max_rows()).min(rows.len())];
            match self.write_chunk(partition, chunk) {
                Ok(file) => {
                    done += file.rows;
                    written.push(file);
                }
                Err(error) => {
                    self.waiting.insert(partition, rows.split_off(done));
                    return Err(error);
                }
            }
        }
        if done < rows.len() {
            self.waiting.insert(partition, rows.split_off(done));
        }
        Ok(written)
    }

    /// Writes `rows` (of `partition`, in time order) as its next file.
    fn write_chunk(
        &mut self,
        partition: HourPartition,
        rows: &[(EventTime, Row)],
    ) -> Result<WrittenFile, ParquetSinkError> {
        let (first, last) = (rows[0].0, rows[rows.len() - 1].0);
        let sequence = self.sequences.get(&partition).copied().unwrap_or(0);
        let directory = partition.directory(&self.root);
        let path = directory.join(partition::file_name(first, last, sequence));
        self.write_file(&directory, &path, rows)?;
        self.sequences.insert(partition, sequence + 1);
        tracing::debug!(path = %path.display(), rows = rows.len(), "parquet file written");
        Ok(WrittenFile {
            path,
            partition,
            rows: rows.len(),
            first,
            last,
        })
    }

    /// Writes every hour that has rows waiting, and ends the writer.
    pub fn close(mut self) -> Result<Vec<WrittenFile>, ParquetSinkError> {
        self.finish_through(EventTime::MAX)
    }

    /// Writes `rows` to `path` through a temporary file in `directory`.
    fn write_file(&self, directory: &Path, path: &Path, rows: &[(EventTime, Row)]) -> Result<(), ParquetSinkError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| ParquetSinkError::Io { path, source }
        };
        std::fs::create_dir_all(directory).map_err(io(directory))?;
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let temporary = directory.join(format!(".{name}.tmp"));
        let encoding = |source| ParquetSinkError::Parquet {
            path: path.to_owned(),
            source,
        };
        let file = File::create(&temporary).map_err(io(&temporary))?;
        let mut writer = ArrowWriter::try_new(file, Arc::clone(&self.arrow_schema), Some(self.properties.clone()))
            .map_err(encoding)?;
        let chunk = self.options.row_group_rows.max(1);
        let mut batch_rows = Vec::with_capacity(chunk.min(rows.len()));
        for rows in rows.chunks(chunk) {
            batch_rows.clear();
            batch_rows.extend(rows.iter().map(|(_, row)| row.clone()));
            let batch = batch::record_batch(&self.arrow_schema, &self.schema, &batch_rows)?;
            writer.write(&batch).map_err(encoding)?;
        }
        let file = writer.into_inner().map_err(encoding)?;
        file.sync_all().map_err(io(&temporary))?;
        std::fs::rename(&temporary, path).map_err(io(path))?;
        // The rename is durable once the directory is.
        File::open(directory)
            .and_then(|dir| dir.sync_all())
            .map_err(io(directory))?;
        Ok(())
    }
}
