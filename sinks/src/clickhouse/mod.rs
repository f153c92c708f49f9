//! ClickHouse sink (`type = "clickhouse"`): history in the tables of
//! [`tables`], over HTTP with the `clickhouse` crate.
//!
//! One writer per input: its records go to one table (events to
//! `time_series_events`, window rows to `window_aggregates`, incidents to
//! `incidents`, …). On start it
//! creates the database and its table if missing (`create_tables`), retrying
//! while the server is down. Each batch of the runtime (bounded by size and
//! time) is one `INSERT … FORMAT RowBinary`; a failed insert is retried whole,
//! which the `ReplacingMergeTree` tables make idempotent. A record whose
//! values do not fit (a time outside `DateTime`, a string over
//! `max_string_bytes`) is refused with the reason and becomes a dead letter;
//! the rest of its batch is written.
//!
//! Row-binary inserts without schema validation: the server's
//! `RowBinaryWithNamesAndTypes` (the crate's validating format) is newer than
//! ClickHouse 18.16, and the rows are fixed structs matching the DDL of
//! [`tables`] anyway.

pub mod incidents;
pub mod tables;

use std::time::Duration;

use clickhouse::Client;
use clickhouse::insert::Insert;

use crate::runtime::{BatchWriter, SinkRecord, WriteError, Written};
use incidents::IncidentRow;
pub use tables::Table;
use tables::{EventRow, OperatorRow, RowError};

/// How long one insert may take (sending, then the server's answer).
const INSERT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and how a ClickHouse writer writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClickHouseSettings {
    /// `http://host:8123`.
    pub url: String,
    /// The database of the tables (an identifier: letters, digits, `_`).
    pub database: String,
    /// User and password, when the server wants them.
    pub user: Option<String>,
    /// The user's password.
    pub password: Option<String>,
    /// Create the database and table when missing.
    pub create_tables: bool,
    /// Longer strings are refused (dead letters).
    pub max_string_bytes: usize,
}

/// Writes one input's records to one table.
pub struct ClickHouseWriter {
    client: Client,
    settings: ClickHouseSettings,
    table: Table,
    /// The input's name: the `operator` column of operator tables.
    input: String,
}

impl ClickHouseWriter {
    /// A writer of `input`'s records into `table`. Connecting is lazy: the
    /// first request goes out when the sink opens.
    pub fn new(settings: ClickHouseSettings, table: Table, input: &str) -> Self {
        let mut client = Client::default()
            .with_url(&settings.url)
            .with_database(&settings.database)
            .with_validation(false);
        if let Some(user) = &settings.user {
            client = client.with_user(user);
        }
        if let Some(password) = &settings.password {
            client = client.with_password(password);
        }
        Self {
            client,
            settings,
            table,
            input: input.to_owned(),
        }
    }

    async fn insert<R>(&self, rows: &[R]) -> Result<(), clickhouse::error::Error>
    where
        R: clickhouse::RowOwned + clickhouse::RowWrite,
    {
        let mut insert: Insert<R> = self
            .client
            .insert::<R>(self.table.name())
            .await?
            .with_timeouts(Some(INSERT_TIMEOUT), Some(INSERT_TIMEOUT));
        for row in rows {
            insert.write(row).await?;
        }
        insert.end().await
    }

    /// The rows of `batch` that fit, and the refused ones by index.
    fn rows<R>(
        &self,
        batch: &[SinkRecord],
        convert: impl Fn(&SinkRecord) -> Option<Result<R, RowError>>,
    ) -> (Vec<R>, Written) {
        let mut rows = Vec::with_capacity(batch.len());
        let mut written = Written::default();
        for (index, record) in batch.iter().enumerate() {
            match convert(record) {
                Some(Ok(row)) => rows.push(row),
                Some(Err(error)) => written.rejected.push((index, error.to_string())),
                None => written.rejected.push((
                    index,
                    format!("table {} does not take this kind of record", self.table.name()),
                )),
            }
        }
        (rows, written)
    }
}

/// A client error as the runtime sees it: every failure is worth a retry
/// (the server down or overloaded, a table being created); the breaker
/// paces them and the sink reports itself unhealthy meanwhile.
fn retry(error: clickhouse::error::Error) -> WriteError {
    WriteError::retry(format!("clickhouse: {error}"))
}

impl BatchWriter for ClickHouseWriter {
    async fn open(&mut self) -> Result<(), WriteError> {
        if !self.settings.create_tables {
            return Ok(());
        }
        // The database may not exist yet: create it from the server's default one.
        let admin = self.client.clone().with_database("default");
        admin
            .query(&format!("CREATE DATABASE IF NOT EXISTS `{}`", self.settings.database))
            .execute()
            .await
            .map_err(retry)?;
        admin
            .query(&self.table.ddl(&self.settings.database))
            .execute()
            .await
            .map_err(retry)
    }

    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Written, WriteError> {
        let limit = self.settings.max_string_bytes;
        let written = match self.table {
            Table::TimeSeriesEvents => {
                let (rows, written) = self.rows(batch, |record| match record {
                    SinkRecord::Event(event) => Some(EventRow::from_event(event, limit)),
                    _ => None,
                });
                if !rows.is_empty() {
                    self.insert(&rows).await.map_err(retry)?;
                }
                written
            }
            Table::Incidents => {
                let (rows, written) = self.rows(batch, |record| match record {
                    SinkRecord::Row(row) => Some(IncidentRow::from_row(&self.input, row, limit)),
                    _ => None,
                });
                if !rows.is_empty() {
                    self.insert(&rows).await.map_err(retry)?;
                }
                written
            }
            _ => {
                let (rows, written) = self.rows(batch, |record| match record {
                    SinkRecord::Row(row) => Some(OperatorRow::from_row(&self.input, row, limit)),
                    _ => None,
                });
                if !rows.is_empty() {
                    self.insert(&rows).await.map_err(retry)?;
                }
                written
            }
        };
        Ok(written)
    }
}
