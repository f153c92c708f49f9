//! Redis sink (`type = "redis"`): the latest row per key, a bounded series
//! per key, and a notification per row, for dashboards and alerting that read
//! Redis rather than the query API.
//!
//! Key layout, for a row of operator `OP` whose key columns (but `tenant`)
//! make the series `S` (`name=value` joined by `,`, e.g. `metric=cpu,labels.region=eu`),
//! under the sink's `key_prefix` `P` (default `pulse:`) and the row's tenant `T`
//! (rows without a `tenant` column: `_`):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `P T:latest:OP:S` | hash | the newest row of the series, one field per column (null columns absent), and `_ts`, its time in epoch ms |
//! | `P T:series:OP:S` | sorted set | the series' rows as JSON, scored by time (epoch ms); only the newest `series_length` kept |
//! | `P T:index:OP` | set | every series `S` of the operator, to find the keys above |
//! | channel `P T:rows` | pub/sub | every row written, as `{"operator":…,"series":…,"row":{…}}` |
//!
//! (without the spaces: `pulse:acme:latest:cpu_10s:metric=cpu`). In `T`, `OP`
//! and `S`, `%` and `:` are written `%25` and `%3A`, so no tenant's keys can
//! run into another's. Every key expires `ttl` after its last write.
//!
//! One script call per row does the hash, the sorted set, the trim, the index,
//! the expiry and the `PUBLISH` atomically (a row not stored is not
//! announced); a batch is one pipeline.
//! Replays are idempotent: the hash only moves forward in time (an older
//! row does not replace a newer one), and a row's JSON is the same member of
//! the sorted set however often it is written. Notifications are at least
//! once: a retried batch publishes again.
//!
//! A row the server refuses for itself (a key of its series already holds
//! another type: `WRONGTYPE`, or another error of its script) becomes a dead
//! letter with Redis's reason, and the rest of the batch is written; errors of
//! the server's state (out of memory, loading, busy, permissions, a lost
//! connection) retry the whole batch.

use std::time::Duration;

use pulse_core::row::Value;
use pulse_core::{ColumnType, Row};
use redis::aio::MultiplexedConnection;
use redis::io::tcp::TcpSettings;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, Script};

use crate::runtime::{BatchWriter, SinkRecord, WriteError, Written};

/// How long Redis may take to connect or to answer a pipeline.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The per-row script: nothing when a key holds another type (the row is
/// refused whole, not half written), else the latest hash (only forward in time), series, trim,
/// index, expiry, and the notification (channel `ARGV[6]`, none when empty)
/// once all of that is written.
const WRITE_ROW: &str = r"
local kinds = {'hash', 'zset', 'set'}
for i = 1, 3 do
  local kind = redis.call('TYPE', KEYS[i]).ok
  if kind ~= 'none' and kind ~= kinds[i] then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. kind .. ', not a ' .. kinds[i])
  end
end
local ts = tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], '_ts') or '-1')
if ts >= current then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], '_ts', ARGV[1], unpack(ARGV, 8))
end
redis.call('ZADD', KEYS[2], ts, ARGV[4])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[3]) + 1))
redis.call('SADD', KEYS[3], ARGV[5])
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
if ARGV[6] ~= '' then
  redis.call('PUBLISH', ARGV[6], ARGV[7])
end
return 0
";

/// Where and how a Redis writer writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://host:port[/db]`.
    pub url: String,
    /// Prefix of every key and channel.
    pub key_prefix: String,
    /// Expiry of every key, renewed on each write (none: keys stay).
    pub ttl: Option<Duration>,
    /// Rows kept per series.
    pub series_length: usize,
    /// Publish each row on its tenant's channel.
    pub publish: bool,
}

/// A client of the server at `url` whose connections send each command at
/// once (`TCP_NODELAY`): with Nagle's algorithm a command of several segments
/// waits for the server's delayed ACK, ~40 ms a statement.
pub(crate) fn client_without_delay(url: &str) -> Result<Client, redis::RedisError> {
    let info = url
        .into_connection_info()?
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    Client::open(info)
}

/// Writes one operator's rows.
pub struct RedisWriter {
    client: Client,
    connection: Option<MultiplexedConnection>,
    settings: RedisSettings,
    operator: String,
    script: Script,
}

impl RedisWriter {
    /// A writer of `operator`'s rows; fails only for a URL Redis cannot use
    /// (connecting is lazy).
    pub fn new(settings: RedisSettings, operator: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: client_without_delay(settings.url.as_str())?,
            connection: None,
            settings,
            operator: operator.to_owned(),
            script: Script::new(WRITE_ROW),
        })
    }

    async fn connection(&mut self) -> Result<MultiplexedConnection, redis::RedisError> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }
}

/// `text` made safe as one part of a `:`-separated key.
pub fn key_part(text: &str) -> String {
    text.replace('%', "%25").replace(':', "%3A")
}

/// A row, ready for the script: its keys' parts and its arguments.
struct RowWrite {
    tenant: String,
    series: String,
    ts: u64,
    fields: Vec<(String, String)>,
    json: String,
}

impl RowWrite {
    fn of(row: &Row) -> Result<Self, String> {
        let mut tenant = None;
        let mut series = Vec::new();
        let mut ts = None;
        let mut fields = Vec::new();
        for (column, value) in row.fields() {
            if column.ty == ColumnType::Time && ts.is_none() {
                ts = value.as_time();
            }
            if column.ty == ColumnType::Key {
                match (column.name.as_str(), value.as_str()) {
                    ("tenant", tenant_name) => tenant = tenant_name.map(str::to_owned),
                    (name, key) => series.push(format!("{name}={}", key.unwrap_or(""))),
                }
            }
            let text = match value {
                Value::Null => continue,
                Value::Float(x) if !x.is_finite() => continue,
                Value::Str(s) => s.to_string(),
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            fields.push((column.name.clone(), text));
        }
        Ok(Self {
            tenant: tenant.unwrap_or_else(|| "_".to_owned()),
            series: series.join(","),
            ts: ts.ok_or("the row has no time column")?,
            fields,
            json: serde_json::to_string(row).map_err(|e| e.to_string())?,
        })
    }
}

impl BatchWriter for RedisWriter {
    async fn write(&mut self, batch: &[SinkRecord]) -> Result<Written, WriteError> {
        let prefix = &self.settings.key_prefix;
        let operator = key_part(&self.operator);
        let ttl_ms = self.settings.ttl.map_or(0, |ttl| ttl.as_millis() as u64);
        let mut pipe = redis::pipe();
        // Each row's script answers for itself: one row the server refuses
        // (its key holds another type) must not hold the batch up.
        pipe.ignore_errors();
        pipe.load_script(&self.script).ignore();
        let mut written = Written::default();
        // The batch index of each script call, in pipeline order.
        let mut invoked = Vec::with_capacity(batch.len());
        for (index, record) in batch.iter().enumerate() {
            let SinkRecord::Row(row) = record else {
                written
                    .rejected
                    .push((index, "a redis sink writes operator rows only".to_owned()));
                continue;
            };
            let row = match RowWrite::of(row) {
                Ok(row) => row,
                Err(reason) => {
                    written.rejected.push((index, reason));
                    continue;
                }
            };
            let (tenant, series) = (key_part(&row.tenant), key_part(&row.series));
            let mut invocation = self.script.key(format!("{prefix}{tenant}:latest:{operator}:{series}"));
            invocation
                .key(format!("{prefix}{tenant}:series:{operator}:{series}"))
                .key(format!("{prefix}{tenant}:index:{operator}"))
                .arg(row.ts)
                .arg(ttl_ms)
                .arg(self.settings.series_length)
                .arg(&row.json)
                .arg(&row.series);
            if self.settings.publish {
                let message = serde_json::json!({
                    "operator": self.operator,
                    "series": row.series,
                    "row": serde_json::from_str::<serde_json::Value>(&row.json).unwrap_or_default(),
                });
                invocation
                    .arg(format!("{prefix}{tenant}:rows"))
                    .arg(message.to_string());
            } else {
                invocation.arg("").arg("");
            }
            for (name, value) in &row.fields {
                invocation.arg(name).arg(value);
            }
            pipe.invoke_script(&invocation);
            invoked.push(index);
        }
        let mut connection = self
            .connection()
            .await
            .map_err(|error| WriteError::retry(format!("redis: {error}")))?;
        let answers: Vec<redis::RedisResult<redis::Value>> = match pipe.query_async(&mut connection).await {
            Ok(answers) => answers,
            Err(error) => {
                // The next attempt connects anew.
                self.connection = None;
                return Err(WriteError::retry(format!("redis: {error}")));
            }
        };
        for (index, answer) in invoked.into_iter().zip(answers) {
            let Err(error) = answer else { continue };
            if !refuses_the_row(&error) {
                // The server cannot write now (out of memory, loading, busy):
                // the whole batch again later; the rows written are written
                // the same again.
                return Err(WriteError::retry(format!("redis: {error}")));
            }
            written
                .rejected
                .push((index, format!("redis refused the row: {error}")));
        }
        Ok(written)
    }
}

/// Whether a script call's error is about the row itself (a key of its
/// series holds another type, a value Redis will not take), so that writing
/// it again cannot succeed: it becomes a dead letter. Anything else (out of
/// memory, loading, busy, no permission, a lost connection) is the server's
/// state, and the batch is retried.
fn refuses_the_row(error: &redis::RedisError) -> bool {
    matches!(error.code(), Some("WRONGTYPE" | "ERR"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_cannot_contain_the_separator() {
        assert_eq!(key_part("acme"), "acme");
        assert_eq!(key_part("a:b%c"), "a%3Ab%25c");
        assert_ne!(key_part("a:latest"), key_part("a%3Alatest"), "escapes are escaped too");
    }
}
