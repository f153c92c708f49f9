//! Window history from ClickHouse for `POST /api/v1/analytics/query`: the
//! windows a `clickhouse` sink wrote to `window_aggregates`, read back (with
//! `FINAL`, so a replay's duplicates count once) for a range the in-memory
//! retention no longer holds, and merged with the retained windows by
//! [`WindowViews::query_with_history`](pulse_live::WindowViews::query_with_history).
//!
//! Every query is confined to the caller's tenant (`WHERE tenant = ?`) and
//! every value the caller chose (tenant, metric, operator, times) is bound as
//! an escaped literal, never pasted into the SQL: ClickHouse 18.16 has no
//! server-side parameters, and the `clickhouse` crate's binding escapes
//! quotes and backslashes. A range with more windows than [`HistoryConfig::max_rows`]
//! is refused (422) rather than answered in part.

use std::time::Duration;

use pulse_live::{LiveRow, SeriesQuery};
use serde::Deserialize;
use serde_json::{Map, Value};

/// How long one history query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// `[gateway] history = { url, database, user, password, max_rows }`: the
/// ClickHouse the query API reads old windows from. When a pipeline has a
/// `clickhouse` sink writing window rows and no `history`, the engine fills
/// this in from that sink.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryConfig {
    /// The server's HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// The database holding `window_aggregates` (default `pulse`).
    #[serde(default = "default_database")]
    pub database: String,
    /// User, when the server wants one.
    #[serde(default)]
    pub user: Option<String>,
    /// Password of `user`.
    #[serde(default)]
    pub password: Option<String>,
    /// The most windows one query may read from history (default 200000).
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
}

fn default_database() -> String {
    "pulse".to_owned()
}

fn default_max_rows() -> u64 {
    200_000
}

impl HistoryConfig {
    /// History in `database` at `url`, without credentials, with the default row cap.
    pub fn new(url: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            database: database.into(),
            user: None,
            password: None,
            max_rows: default_max_rows(),
        }
    }

    /// Checks what can be checked before connecting.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!("history.url {:?} is not an HTTP URL", self.url));
        }
        let identifier = !self.database.is_empty()
            && !self.database.starts_with(|c: char| c.is_ascii_digit())
            && self.database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !identifier {
            return Err(format!(
                "history.database {:?} is not a database name (letters, digits, `_`)",
                self.database
            ));
        }
        if self.max_rows == 0 {
            return Err("history.max_rows must be at least 1".to_owned());
        }
        Ok(())
    }
}

/// Why history could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The server failed or did not answer in time.
    #[error("window history in ClickHouse cannot be read: {0}")]
    Unavailable(String),
    /// The range holds more windows than one query may read.
    #[error(
        "the range holds more than {0} windows in history; narrow it, or name the operator with the longest windows"
    )]
    TooManyRows(u64),
}

/// A row of `window_aggregates`, the columns a query needs.
#[derive(Debug, clickhouse::Row, Deserialize)]
struct StoredWindow {
    operator: String,
    ts_ms: i64,
    end_ms: i64,
    key_names: Vec<String>,
    key_values: Vec<String>,
    value_names: Vec<String>,
    values: Vec<f64>,
}

impl StoredWindow {
    /// The window as the live side has it: the tenant and the key columns as
    /// key fields (an empty stored key is null, as it was written), the
    /// aggregates as values (`count` as an integer, NaN as null).
    fn into_live(self, tenant: &str) -> (String, LiveRow) {
        let mut key = Map::new();
        key.insert("tenant".to_owned(), Value::from(tenant));
        for (name, value) in self.key_names.into_iter().zip(self.key_values) {
            let value = if value.is_empty() {
                Value::Null
            } else {
                Value::from(value)
            };
            key.insert(name, value);
        }
        let mut values = Map::new();
        for (name, value) in self.value_names.into_iter().zip(self.values) {
            let value = match name.as_str() {
                "count" if value.is_finite() && value >= 0.0 => Value::from(value as u64),
                _ => serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
            };
            values.insert(name, value);
        }
        let row = LiveRow {
            window_start: u64::try_from(self.ts_ms).unwrap_or_default(),
            window_end: u64::try_from(self.end_ms).unwrap_or_default(),
            key,
            values,
        };
        (self.operator, row)
    }
}

/// Reads window history from one ClickHouse database.
#[derive(Clone)]
pub struct HistoryReader {
    client: clickhouse::Client,
    max_rows: u64,
}

impl HistoryReader {
    /// A reader of `config`'s database; connecting is lazy.
    pub fn new(config: &HistoryConfig) -> Self {
        let mut client = clickhouse::Client::default()
            .with_url(&config.url)
            .with_database(&config.database)
            .with_validation(false);
        if let Some(user) = &config.user {
            client = client.with_user(user);
        }
        if let Some(password) = &config.password {
            client = client.with_password(password);
        }
        Self {
            client,
            max_rows: config.max_rows,
        }
    }

    /// The windows of `tenant` that `query` may read (its metric, range and
    /// operator), with the operator that made each.
    pub async fn windows(&self, tenant: &str, query: &SeriesQuery) -> Result<Vec<(String, LiveRow)>, HistoryError> {
        let to_i64 = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX);
        let mut sql = String::from(
            "SELECT operator, ts_ms, end_ms, key_names, key_values, value_names, values \
             FROM window_aggregates FINAL \
             WHERE tenant = ? AND ts_ms >= ? AND ts_ms < ? \
             AND has(key_names, 'metric') AND key_values[indexOf(key_names, 'metric')] = ?",
        );
        if query.operator.is_some() {
            sql.push_str(" AND operator = ?");
        }
        sql.push_str(" LIMIT ?");
        let mut statement = self
            .client
            .query(&sql)
            .bind(tenant)
            .bind(to_i64(query.start_ms))
            .bind(to_i64(query.end_ms))
            .bind(query.metric_name.as_str());
        if let Some(operator) = &query.operator {
            statement = statement.bind(operator.as_str());
        }
        let statement = statement.bind(self.max_rows + 1);
        let rows = tokio::time::timeout(QUERY_TIMEOUT, statement.fetch_all::<StoredWindow>())
            .await
            .map_err(|_| HistoryError::Unavailable(format!("no answer within {QUERY_TIMEOUT:?}")))?
            .map_err(|error| HistoryError::Unavailable(error.to_string()))?;
        if rows.len() as u64 > self.max_rows {
            return Err(HistoryError::TooManyRows(self.max_rows));
        }
        Ok(rows.into_iter().map(|row| row.into_live(tenant)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_window_becomes_the_live_row_it_was_written_from() {
        let stored = StoredWindow {
            operator: "cpu_10s".into(),
            ts_ms: 1_700_000_000_000,
            end_ms: 1_700_000_010_000,
            key_names: vec!["metric".into(), "labels.region".into()],
            key_values: vec!["cpu".into(), String::new()],
            value_names: vec!["count".into(), "avg".into(), "p95".into()],
            values: vec![3.0, 0.5, f64::NAN],
        };
        let (operator, row) = stored.into_live("acme");
        assert_eq!(operator, "cpu_10s");
        assert_eq!(
            (row.window_start, row.window_end),
            (1_700_000_000_000, 1_700_000_010_000)
        );
        assert_eq!(
            Value::Object(row.key),
            serde_json::json!({"tenant": "acme", "metric": "cpu", "labels.region": null})
        );
        assert_eq!(
            Value::Object(row.values),
            serde_json::json!({"count": 3, "avg": 0.5, "p95": null})
        );
    }

    #[test]
    fn settings_are_checked_before_connecting() {
        let config = |url: &str, database: &str| HistoryConfig {
            url: url.into(),
            database: database.into(),
            user: None,
            password: None,
            max_rows: 10,
        };
        assert!(config("http://127.0.0.1:8123", "pulse").validate().is_ok());
        assert!(config("127.0.0.1:8123", "pulse").validate().is_err());
        assert!(config("http://127.0.0.1:8123", "p`; DROP").validate().is_err());
    }
}
