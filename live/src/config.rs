//! Limits of the live hub and retention of the window views; both deserialise
//! from the `[gateway]` table (`live = {..}`, `retention = {..}`) with defaults
//! for every field and unknown keys refused.

use pulse_core::DurationSpec;
use serde::Deserialize;

/// Limits of the WebSocket fan-out.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LiveLimits {
    /// Most open connections in all (default 10,000); beyond it `/ws` answers 503.
    pub max_connections: usize,
    /// Most open connections of one tenant (default 1,000); beyond it `/ws` answers 429.
    pub per_tenant_connections: usize,
    /// Most subscriptions one connection may hold (default 32).
    pub max_subscriptions_per_client: usize,
    /// Messages a client's queue holds before the oldest are dropped (default 1,024).
    pub queue_len: usize,
    /// Seconds a client may keep losing messages before it is disconnected (default 10).
    pub max_lag_secs: u64,
    /// Largest message a client may send, in bytes (default 64 KiB).
    pub max_message_bytes: usize,
    /// Seconds between server pings; a connection silent for three of them is closed (default 15).
    pub heartbeat_secs: u64,
}

impl Default for LiveLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            per_tenant_connections: 1_000,
            max_subscriptions_per_client: 32,
            queue_len: 1_024,
            max_lag_secs: 10,
            max_message_bytes: 64 * 1024,
            heartbeat_secs: 15,
        }
    }
}

impl LiveLimits {
    /// Names the first limit that is zero, which would make the hub useless.
    pub fn validate(&self) -> Result<(), String> {
        let fields = [
            ("max_connections", self.max_connections as u64),
            ("per_tenant_connections", self.per_tenant_connections as u64),
            ("max_subscriptions_per_client", self.max_subscriptions_per_client as u64),
            ("queue_len", self.queue_len as u64),
            ("max_lag_secs", self.max_lag_secs),
            ("max_message_bytes", self.max_message_bytes as u64),
            ("heartbeat_secs", self.heartbeat_secs),
        ];
        match fields.iter().find(|(_, value)| *value == 0) {
            Some((name, _)) => Err(format!("live.{name} must be positive")),
            None => Ok(()),
        }
    }
}

/// How long window rows stay queryable in memory.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Rows kept per operator; the oldest go first (default 100,000).
    pub max_rows_per_operator: usize,
    /// Rows older than this since they were recorded are dropped (default 1 hour).
    pub max_age: DurationSpec,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            max_rows_per_operator: 100_000,
            max_age: DurationSpec::from_secs(3600),
        }
    }
}

impl RetentionConfig {
    /// Fails when rows could never be retained.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_rows_per_operator == 0 || self.max_age.as_millis() == 0 {
            return Err("retention.max_rows_per_operator and retention.max_age must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_partial_tables_and_names_unknown_keys() {
        let limits: LiveLimits = toml::from_str("queue_len = 8\nmax_lag_secs = 2").unwrap();
        assert_eq!(limits.queue_len, 8);
        assert_eq!(limits.max_connections, 10_000);
        limits.validate().unwrap();
        let error = toml::from_str::<LiveLimits>("queue_lenght = 8").unwrap_err();
        assert!(error.to_string().contains("queue_lenght"), "{error}");
        let retention: RetentionConfig = toml::from_str("max_age = \"5m\"").unwrap();
        assert_eq!(retention.max_age.as_millis(), 300_000);
        assert!(toml::from_str::<RetentionConfig>("max_age = \"5 minutes\"").is_err());
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let limits = LiveLimits {
            queue_len: 0,
            ..LiveLimits::default()
        };
        assert!(limits.validate().unwrap_err().contains("queue_len"));
        let retention = RetentionConfig {
            max_rows_per_operator: 0,
            ..RetentionConfig::default()
        };
        assert!(retention.validate().is_err());
    }
}
