//! The ClickHouse tables pulse writes, and how records become their rows.
//!
//! The DDL keeps to what ClickHouse 18.16 has (no `DateTime64`, `Map`,
//! `LowCardinality` or `TTL`), so the same statements run there and on a
//! current server: times as `DateTime` (seconds, for partitioning) beside an
//! `Int64` of epoch milliseconds, keys and values as parallel arrays.
//!
//! Every table is a `ReplacingMergeTree` ordered by `tenant` first; its
//! `row_id` is a deterministic hash of what identifies the row (for an
//! operator row: the operator, its key values and its times; for an event:
//! the event itself; for an incident: the operator and incident id, which
//! with the tenant is the `incidents` table's whole ordering key, see
//! [`super::incidents`]). A replay writes rows with the same ordering key, which
//! merges (and `SELECT … FINAL`) collapse: the final contents are those of
//! one run.

use clickhouse::Row as ClickHouseRow;
use pulse_core::row::Value;
use pulse_core::{ColumnType, Event, EventBody, Row};
use serde::Serialize;

/// A table the sink writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// Events as read by a source.
    TimeSeriesEvents,
    /// Rows of window operators.
    WindowAggregates,
    /// Rows of anomaly detectors.
    Anomalies,
    /// Rows of forecasting operators.
    Predictions,
    /// Rows of incident correlation.
    Incidents,
}

impl Table {
    /// Every table, in the order they are created.
    pub const ALL: [Table; 5] = [
        Table::TimeSeriesEvents,
        Table::WindowAggregates,
        Table::Anomalies,
        Table::Predictions,
        Table::Incidents,
    ];

    /// The table's name.
    pub fn name(self) -> &'static str {
        match self {
            Table::TimeSeriesEvents => "time_series_events",
            Table::WindowAggregates => "window_aggregates",
            Table::Anomalies => "anomalies",
            Table::Predictions => "predictions",
            Table::Incidents => "incidents",
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` for this table in `database` (an identifier
    /// checked by the config).
    pub fn ddl(self, database: &str) -> String {
        let name = self.name();
        match self {
            Table::TimeSeriesEvents => format!(
                "CREATE TABLE IF NOT EXISTS `{database}`.`{name}` (\
                 tenant String, ts DateTime, ts_ms Int64, source String, kind String, \
                 metric String, value Float64, label_names Array(String), label_values Array(String), \
                 body String, row_id UInt64) \
                 ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(ts) \
                 ORDER BY (tenant, kind, source, ts_ms, row_id)"
            ),
            Table::Incidents => super::incidents::ddl(database),
            _ => format!(
                "CREATE TABLE IF NOT EXISTS `{database}`.`{name}` (\
                 tenant String, operator String, ts DateTime, ts_ms Int64, end_ms Int64, series String, \
                 key_names Array(String), key_values Array(String), \
                 value_names Array(String), values Array(Float64), \
                 text_names Array(String), text_values Array(String), row_id UInt64) \
                 ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(ts) \
                 ORDER BY (tenant, operator, series, ts_ms, row_id)"
            ),
        }
    }
}

/// A row of `time_series_events`.
#[derive(Debug, Clone, PartialEq, ClickHouseRow, Serialize)]
pub struct EventRow {
    /// The event's tenant.
    pub tenant: String,
    /// Event time, seconds.
    pub ts: u32,
    /// Event time, epoch ms.
    pub ts_ms: i64,
    /// Who sent it.
    pub source: String,
    /// `metric`, `k8s_event`, `log` or `topology`.
    pub kind: String,
    /// For metrics: the metric's name (else empty).
    pub metric: String,
    /// For metrics: the sample (else NaN).
    pub value: f64,
    /// For metrics: label names …
    pub label_names: Vec<String>,
    /// … and their values, in the same order.
    pub label_values: Vec<String>,
    /// For other kinds: the whole event as JSON (else empty).
    pub body: String,
    /// Deterministic identity (a hash of the event's JSON).
    pub row_id: u64,
}

/// A row of the operator tables (`window_aggregates`, `anomalies`, …).
#[derive(Debug, Clone, PartialEq, ClickHouseRow, Serialize)]
pub struct OperatorRow {
    /// The `tenant` column of the row (empty without one).
    pub tenant: String,
    /// The operator that made it.
    pub operator: String,
    /// Its first time column (a window's start), seconds.
    pub ts: u32,
    /// The same, epoch ms.
    pub ts_ms: i64,
    /// Its second time column (a window's end), epoch ms; `ts_ms` without one.
    pub end_ms: i64,
    /// The key values, `name=value` joined by `,`: what identifies the series.
    pub series: String,
    /// Key column names (but `tenant`) …
    pub key_names: Vec<String>,
    /// … and values.
    pub key_values: Vec<String>,
    /// Numeric and boolean column names …
    pub value_names: Vec<String>,
    /// … and values (null as NaN, booleans as 0/1, further times as ms).
    pub values: Vec<f64>,
    /// Text column names …
    pub text_names: Vec<String>,
    /// … and values.
    pub text_values: Vec<String>,
    /// Deterministic identity: a hash of operator, series and times.
    pub row_id: u64,
}

/// Why a record cannot become a row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// A time outside what `DateTime` holds (1970 to 2106).
    #[error("time {0} ms is outside ClickHouse's DateTime range (1970-01-01 to 2106-02-07)")]
    TimeOutOfRange(u64),
    /// A string longer than the sink accepts.
    #[error("column `{column}` holds {bytes} bytes, more than max_string_bytes = {limit}")]
    StringTooLong {
        /// The column.
        column: String,
        /// Its length.
        bytes: usize,
        /// The sink's limit.
        limit: usize,
    },
    /// The row has no time column.
    #[error("the row has no time column")]
    NoTime,
    /// A row the `incidents` table cannot hold (not an incident, bad causes).
    #[error("{0}")]
    Incident(String),
}

/// Epoch ms as `DateTime` seconds, if it holds them.
pub(super) fn seconds(ms: u64) -> Result<u32, RowError> {
    u32::try_from(ms / 1000).map_err(|_| RowError::TimeOutOfRange(ms))
}

/// `text`, unless it is longer than `limit`.
pub(super) fn checked(column: &str, text: &str, limit: usize) -> Result<String, RowError> {
    if text.len() > limit {
        return Err(RowError::StringTooLong {
            column: column.to_owned(),
            bytes: text.len(),
            limit,
        });
    }
    Ok(text.to_owned())
}

/// 64-bit FNV-1a: stable across runs, machines and versions (unlike std's hasher).
pub fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.iter().chain(&[0xff]) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

impl EventRow {
    /// The row of `event`; strings longer than `max_string_bytes` are refused.
    pub fn from_event(event: &Event, max_string_bytes: usize) -> Result<Self, RowError> {
        let json = event.to_json();
        let mut row = EventRow {
            tenant: checked("tenant", &event.tenant, max_string_bytes)?,
            ts: seconds(event.ts)?,
            ts_ms: event.ts as i64,
            source: checked("source", &event.source, max_string_bytes)?,
            kind: String::new(),
            metric: String::new(),
            value: f64::NAN,
            label_names: Vec::new(),
            label_values: Vec::new(),
            body: String::new(),
            row_id: fnv1a(&[json.as_bytes()]),
        };
        match &event.body {
            EventBody::Metric(metric) => {
                row.kind = "metric".to_owned();
                row.metric = checked("metric", &metric.metric, max_string_bytes)?;
                row.value = metric.value;
                for (name, value) in &metric.labels {
                    row.label_names.push(checked("label_names", name, max_string_bytes)?);
                    row.label_values.push(checked("label_values", value, max_string_bytes)?);
                }
            }
            _ => {
                row.kind = serde_json::to_value(event)
                    .ok()
                    .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                row.body = checked("body", &json, max_string_bytes)?;
            }
        }
        Ok(row)
    }
}

impl OperatorRow {
    /// The row of `row`, written by `operator`; see [`OperatorRow`]'s fields
    /// for where each column goes.
    pub fn from_row(operator: &str, row: &Row, max_string_bytes: usize) -> Result<Self, RowError> {
        let mut times = Vec::new();
        let mut out = OperatorRow {
            tenant: String::new(),
            operator: operator.to_owned(),
            ts: 0,
            ts_ms: 0,
            end_ms: 0,
            series: String::new(),
            key_names: Vec::new(),
            key_values: Vec::new(),
            value_names: Vec::new(),
            values: Vec::new(),
            text_names: Vec::new(),
            text_values: Vec::new(),
            row_id: 0,
        };
        for (column, value) in row.fields() {
            let name = column.name.as_str();
            match (column.ty, value) {
                (ColumnType::Time, Value::Time(t)) if times.len() < 2 => times.push(*t),
                (ColumnType::Key, _) if name == "tenant" => {
                    out.tenant = checked(name, value.as_str().unwrap_or(""), max_string_bytes)?;
                }
                (ColumnType::Key, _) => {
                    out.key_names.push(name.to_owned());
                    out.key_values
                        .push(checked(name, value.as_str().unwrap_or(""), max_string_bytes)?);
                }
                (ColumnType::Text, _) => {
                    out.text_names.push(name.to_owned());
                    out.text_values
                        .push(checked(name, value.as_str().unwrap_or(""), max_string_bytes)?);
                }
                (_, Value::Bool(b)) => {
                    out.value_names.push(name.to_owned());
                    out.values.push(if *b { 1.0 } else { 0.0 });
                }
                (_, Value::Time(t)) => {
                    out.value_names.push(name.to_owned());
                    out.values.push(*t as f64);
                }
                (_, value) => {
                    out.value_names.push(name.to_owned());
                    out.values.push(value.as_f64().unwrap_or(f64::NAN));
                }
            }
        }
        let start = *times.first().ok_or(RowError::NoTime)?;
        let end = times.get(1).copied().unwrap_or(start);
        out.ts = seconds(start)?;
        seconds(end)?;
        (out.ts_ms, out.end_ms) = (start as i64, end as i64);
        out.series = out
            .key_names
            .iter()
            .zip(&out.key_values)
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join(",");
        out.row_id = fnv1a(&[
            out.tenant.as_bytes(),
            operator.as_bytes(),
            out.series.as_bytes(),
            &start.to_le_bytes(),
            &end.to_le_bytes(),
        ]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use pulse_core::{Column, RowSchema};

    use super::*;

    fn window_row(start: u64, region: &str, tenant_len: usize) -> Row {
        let schema = Arc::new(
            RowSchema::new(vec![
                Column::new("window_start", ColumnType::Time),
                Column::new("window_end", ColumnType::Time),
                Column::new("tenant", ColumnType::Key),
                Column::new("metric", ColumnType::Key),
                Column::new("labels.region", ColumnType::Key).nullable(),
                Column::new("count", ColumnType::Int),
                Column::new("avg", ColumnType::Float).nullable(),
            ])
            .unwrap(),
        );
        Row::new(
            schema,
            vec![
                Value::Time(start),
                Value::Time(start + 10_000),
                Value::from("a".repeat(tenant_len).as_str()),
                Value::from("cpu"),
                Value::from(region),
                Value::Int(3),
                Value::Null,
            ],
        )
    }

    #[test]
    fn window_rows_map_to_columns_with_a_stable_identity() {
        let row = OperatorRow::from_row("cpu_10s", &window_row(1_700_000_000_000, "eu", 4), 64).unwrap();
        assert_eq!(row.tenant, "aaaa");
        assert_eq!(
            (row.ts, row.ts_ms, row.end_ms),
            (1_700_000_000, 1_700_000_000_000, 1_700_000_010_000)
        );
        assert_eq!(row.series, "metric=cpu,labels.region=eu");
        assert_eq!(row.value_names, ["count", "avg"]);
        assert_eq!(row.values[0], 3.0);
        assert!(row.values[1].is_nan(), "null as NaN");
        let again = OperatorRow::from_row("cpu_10s", &window_row(1_700_000_000_000, "eu", 4), 64).unwrap();
        assert_eq!(row.row_id, again.row_id, "the same row, the same id");
        let other = OperatorRow::from_row("cpu_10s", &window_row(1_700_000_000_000, "us", 4), 64).unwrap();
        assert_ne!(row.row_id, other.row_id);
        // Pinned: the id must not change between versions, or replays would double rows.
        assert_eq!(fnv1a(&[b"a", b"bc"]), fnv1a(&[b"a", b"bc"]));
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]), "parts are delimited");
    }

    #[test]
    fn values_that_do_not_fit_are_refused_with_the_reason() {
        let too_long = OperatorRow::from_row("w", &window_row(0, "eu", 100), 64).unwrap_err();
        assert_eq!(
            too_long.to_string(),
            "column `tenant` holds 100 bytes, more than max_string_bytes = 64"
        );
        let far_future = OperatorRow::from_row("w", &window_row(5_000_000_000_000, "eu", 4), 64).unwrap_err();
        assert!(matches!(far_future, RowError::TimeOutOfRange(_)), "{far_future}");
    }

    #[test]
    fn the_same_ddl_orders_every_table_by_tenant_first() {
        for table in Table::ALL {
            let ddl = table.ddl("pulse");
            assert!(ddl.contains("ORDER BY (tenant,"), "{ddl}");
            assert!(ddl.contains("row_id UInt64"), "{ddl}");
            assert!(ddl.contains("ReplacingMergeTree()"), "{ddl}");
            assert!(!ddl.contains("DateTime64") && !ddl.contains("LowCardinality"), "{ddl}");
        }
    }
}
