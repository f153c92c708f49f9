//! [`RedisRateLimiter`]: the request log of each subject is a Redis sorted set
//! (`ratelimit:{subject}`, scored by time), trimmed and checked by one Lua script
//! using the Redis clock, so gateways with different clocks agree.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::MultiplexedConnection;

use super::{Decision, RateLimiter, retry_secs};
use crate::store::StoreError;

/// Trims the window, then admits and records the request if under the limit.
/// Returns {allowed, count, retry_after_ms}.
const ACQUIRE_SCRIPT: &str = r#"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, now .. '-' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, count + 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, count, tonumber(oldest[2]) + window - now}
"#;

/// Sliding windows shared through Redis.
pub struct RedisRateLimiter {
    conn: MultiplexedConnection,
    prefix: String,
    script: Script,
    /// Makes members unique when two requests share a millisecond.
    sequence: AtomicU64,
    /// Tells this process's members from other gateways'.
    process: String,
}

impl RedisRateLimiter {
    /// A limiter on `conn`, its keys behind `key_prefix`.
    pub fn new(conn: MultiplexedConnection, key_prefix: &str) -> Self {
        Self {
            conn,
            prefix: key_prefix.to_owned(),
            script: Script::new(ACQUIRE_SCRIPT),
            sequence: AtomicU64::new(0),
            process: uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn acquire(&self, subject: &str, limit: u64, window: Duration) -> Result<Decision, StoreError> {
        let member = format!("{}-{}", self.process, self.sequence.fetch_add(1, Ordering::Relaxed));
        let (allowed, count, retry_ms): (i64, u64, i64) = self
            .script
            .key(format!("{}ratelimit:{subject}", self.prefix))
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
            .arg(limit)
            .arg(member)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        Ok(Decision {
            allowed: allowed == 1,
            limit,
            remaining: limit.saturating_sub(count),
            retry_after_secs: if allowed == 1 {
                0
            } else {
                retry_secs(retry_ms.max(0).unsigned_abs())
            },
        })
    }
}
