//! [`GatewayConfig`]: what the gateway listens on, where it stores, and its
//! limits. It deserialises from the `[gateway]` table of a pipeline file (or a
//! file of its own) and rejects unknown keys, so a typo names the key.
//!
//! ```
//! let config: pulse_gateway::GatewayConfig = toml::from_str(r#"
//!     listen = "127.0.0.1:8080"
//!     data_dir = "/var/lib/pulse"
//!     store = { type = "redis", url = "redis://127.0.0.1:6379" }
//!     cors_origins = ["http://localhost:3000"]
//!     [rate_limit]
//!     default_plan = "basic"
//! "#).unwrap();
//! assert!(config.validate().is_ok());
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use pulse_live::{LiveLimits, RetentionConfig};
use serde::{Deserialize, Deserializer};

use crate::error::GatewayError;

/// The whole gateway configuration; every field has a default.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The address `pulse serve` binds (default `127.0.0.1:8080`).
    pub listen: SocketAddr,
    /// Where the embedded store keeps its file (default `data/gateway`).
    pub data_dir: PathBuf,
    /// Which store holds users, API keys, KV entries and the audit log.
    pub store: StoreConfig,
    /// Allow an ephemeral JWT secret when `PULSE_JWT_SECRET` is unset (tokens die with the process).
    pub demo: bool,
    /// Token lifetimes and password hashing cost.
    pub auth: AuthConfig,
    /// Request rate limits per tenant or API key.
    pub rate_limit: RateLimitConfig,
    /// Size limits on bodies, keys, values and batches.
    pub limits: LimitsConfig,
    /// Origins allowed by CORS (`"*"` for any); empty turns CORS off.
    pub cors_origins: Vec<String>,
    /// Seconds between sweeps that reclaim expired keys.
    pub reap_interval_secs: u64,
    /// Seconds a request may take before it is answered with 408.
    pub request_timeout_secs: u64,
    /// Limits of `/ws`: connections, subscriptions, queues, lag, message size, heartbeat.
    pub live: LiveLimits,
    /// How long closed windows stay queryable by `POST /api/v1/analytics/query`.
    pub retention: RetentionConfig,
    /// A login made ready each time the gateway opens, for demos (none by default).
    pub demo_account: Option<DemoAccountConfig>,
    /// The graph `POST /api/v1/query/cypher` reads (none by default).
    pub graph: GraphQueryConfig,
    /// Where `POST /api/v1/analytics/query` reads windows older than the
    /// retention: a ClickHouse database a `clickhouse` sink writes (none by
    /// default; a pipeline with such a sink fills it in).
    pub history: Option<crate::live::history::HistoryConfig>,
}

/// `[gateway.graph]`: the graph server the Cypher endpoint queries, the one
/// the pipeline's `graph` sink writes to (FalkorDB only; see
/// [`crate::graph_query`] for why not Neo4j).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GraphQueryConfig {
    /// `falkordb://host:port` or `redis://host:port` (none: the endpoint is off, 403).
    pub uri: Option<String>,
    /// The prefix of tenant graphs: the graph sink's `graph_prefix` (default `pulse:`).
    pub graph_prefix: String,
    /// How long a query may run on the server, ms (default 5000).
    pub timeout_ms: u64,
    /// Rows returned at most (default 1000).
    pub max_rows: usize,
}

impl Default for GraphQueryConfig {
    fn default() -> Self {
        Self {
            uri: None,
            graph_prefix: "pulse:".into(),
            timeout_ms: 5_000,
            max_rows: 1_000,
        }
    }
}

/// `[gateway.demo_account]`: a user the gateway creates, or whose password it
/// resets, every time it opens, so a demo can be logged into at once. Its
/// tenant is a name events carry (`tenant = "demo"`), not a generated UUID, so
/// it sees those events' windows live.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DemoAccountConfig {
    /// The user name (default `demo`).
    pub username: String,
    /// The tenant the account acts for (default `demo`).
    pub tenant: String,
    /// Its password; empty (the default) generates one, printed at start-up.
    pub password: String,
    /// Its rate-limit plan, one of `rate_limit.plans` (default `pro`, 10,000
    /// requests a minute): the demo's dashboard, in a few tabs, cannot exhaust
    /// it, whatever `rate_limit.default_plan` is.
    pub plan: String,
}

/// The demo account's plan unless it names one.
pub const DEMO_PLAN: &str = "pro";

impl DemoAccountConfig {
    fn validate(&self, rate_limit: &RateLimitConfig) -> Result<(), String> {
        if !rate_limit.plans.contains_key(&self.plan) {
            return Err(format!(
                "demo_account.plan {:?} is not one of the plans ({})",
                self.plan,
                rate_limit.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if !crate::auth::handlers::is_valid_username(&self.username) {
            return Err(format!("demo_account.{}", crate::auth::handlers::USERNAME_RULE));
        }
        if let Err(problem) = self.tenant.parse::<crate::auth::TenantId>() {
            return Err(format!("demo_account.tenant {problem}"));
        }
        if !self.password.is_empty()
            && let Some(problem) = crate::auth::password::policy_violation(&self.password)
        {
            return Err(format!(
                "demo_account.password (PULSE_DEMO_PASSWORD in the demo): {problem}"
            ));
        }
        Ok(())
    }
}

impl Default for DemoAccountConfig {
    fn default() -> Self {
        Self {
            username: "demo".into(),
            tenant: "demo".into(),
            password: String::new(),
            plan: DEMO_PLAN.into(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data/gateway"),
            store: StoreConfig::default(),
            demo: false,
            auth: AuthConfig::default(),
            rate_limit: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            cors_origins: Vec::new(),
            reap_interval_secs: 30,
            request_timeout_secs: 30,
            live: LiveLimits::default(),
            retention: RetentionConfig::default(),
            demo_account: None,
            graph: GraphQueryConfig::default(),
            history: None,
        }
    }
}

impl GatewayConfig {
    /// Checks values that deserialisation cannot: ranges and references.
    pub fn validate(&self) -> Result<(), GatewayError> {
        let fail = |message: String| Err(GatewayError::Config(message));
        if self.graph.timeout_ms == 0 || self.graph.max_rows == 0 {
            return fail("graph.timeout_ms and graph.max_rows must be positive".into());
        }
        let limits = &self.limits;
        if limits.max_key_chars == 0 || limits.max_value_bytes == 0 || limits.max_batch_items == 0 {
            return fail("limits must be positive".into());
        }
        if limits.max_body_bytes < limits.max_value_bytes {
            return fail(format!(
                "limits.max_body_bytes ({}) is below limits.max_value_bytes ({}): such values could never be sent",
                limits.max_body_bytes, limits.max_value_bytes
            ));
        }
        if self.rate_limit.window_secs == 0 {
            return fail("rate_limit.window_secs must be positive".into());
        }
        if !self.rate_limit.plans.contains_key(&self.rate_limit.default_plan) {
            return fail(format!(
                "rate_limit.default_plan {:?} is not one of the plans ({})",
                self.rate_limit.default_plan,
                self.rate_limit.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if self.reap_interval_secs == 0 || self.request_timeout_secs == 0 {
            return fail("reap_interval_secs and request_timeout_secs must be positive".into());
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            return fail("token lifetimes must be positive".into());
        }
        if let Some(account) = &self.demo_account {
            account.validate(&self.rate_limit).map_err(GatewayError::Config)?;
        }
        self.live.validate().map_err(GatewayError::Config)?;
        self.retention.validate().map_err(GatewayError::Config)?;
        if let Some(history) = &self.history {
            history.validate().map_err(GatewayError::Config)?;
        }
        if let StoreConfig::Redis { url, .. } = &self.store
            && !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://"))
        {
            return fail(format!("store.url {url:?} is not a redis:// URL"));
        }
        Ok(())
    }
}

/// The store backend: a closed set, tagged by `type`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// A redb file under `data_dir` (the default).
    #[default]
    Embedded,
    /// A Redis server; several gateways may share it (and its rate-limit state).
    Redis {
        /// `redis://host:port[/db]`.
        url: String,
        /// Prepended to every Redis key, to share one database between deployments (or tests).
        #[serde(default)]
        key_prefix: String,
    },
}

/// Token lifetimes and the argon2 cost.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of access tokens (default 30 minutes).
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens (default 7 days).
    pub refresh_token_ttl_secs: u64,
    /// argon2id memory cost in KiB (default 19456, the OWASP minimum).
    pub argon2_memory_kib: u32,
    /// argon2id iterations (default 2).
    pub argon2_iterations: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 30 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
        }
    }
}

/// Requests allowed per window: a number, or `"unlimited"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanLimit {
    /// At most this many requests per window.
    PerWindow(u64),
    /// No limit.
    Unlimited,
}

impl<'de> Deserialize<'de> for PlanLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(u64),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Count(n) => Ok(Self::PerWindow(n)),
            Raw::Word(word) if word == "unlimited" => Ok(Self::Unlimited),
            Raw::Word(word) => Err(serde::de::Error::custom(format!(
                "expected a request count or \"unlimited\", found {word:?}"
            ))),
        }
    }
}

/// Sliding-window rate limiting by plan.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Turn rate limiting off entirely.
    pub enabled: bool,
    /// The window length in seconds (default 60).
    pub window_secs: u64,
    /// The plan of tenants (and tokens) that name none.
    pub default_plan: String,
    /// Requests per window for each plan; given plans replace the defaults of the same name.
    #[serde(deserialize_with = "plans_over_defaults")]
    pub plans: BTreeMap<String, PlanLimit>,
    /// Requests per window from one client address to the endpoints that take
    /// a password or a refresh token instead of an access token (`auth/register`,
    /// `auth/login`, `auth/refresh`, `auth/token`): they have no tenant to count
    /// against, and each costs a password hash. Default 100; `"unlimited"` turns it off.
    pub sign_in: PlanLimit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            window_secs: 60,
            default_plan: "free".into(),
            plans: default_plans(),
            sign_in: PlanLimit::PerWindow(100),
        }
    }
}

impl RateLimitConfig {
    /// The limit of `plan`, falling back to the default plan for unknown names.
    pub fn limit_of(&self, plan: Option<&str>) -> PlanLimit {
        plan.and_then(|name| self.plans.get(name))
            .or_else(|| self.plans.get(&self.default_plan))
            .copied()
            .unwrap_or(PlanLimit::Unlimited)
    }
}

fn default_plans() -> BTreeMap<String, PlanLimit> {
    BTreeMap::from([
        ("free".to_owned(), PlanLimit::PerWindow(100)),
        ("basic".to_owned(), PlanLimit::PerWindow(1_000)),
        ("pro".to_owned(), PlanLimit::PerWindow(10_000)),
        ("enterprise".to_owned(), PlanLimit::Unlimited),
    ])
}

fn plans_over_defaults<'de, D: Deserializer<'de>>(deserializer: D) -> Result<BTreeMap<String, PlanLimit>, D::Error> {
    let mut plans = default_plans();
    plans.extend(BTreeMap::<String, PlanLimit>::deserialize(deserializer)?);
    Ok(plans)
}

/// Size limits; keys and values beyond them are refused with 413.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body (default 4 MiB).
    pub max_body_bytes: usize,
    /// Longest key in characters (default 256). Counted in characters, as
    /// the OpenAPI schema's `maxLength` counts; `max_key_bytes` is its old name.
    #[serde(alias = "max_key_bytes")]
    pub max_key_chars: usize,
    /// Largest value, as JSON text (default 2 MiB).
    pub max_value_bytes: usize,
    /// Most operations in one batch (default 1000).
    pub max_batch_items: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 4 << 20,
            max_key_chars: 256,
            max_value_bytes: 2 << 20,
            max_batch_items: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_issue() {
        let config = GatewayConfig::default();
        config.validate().unwrap();
        assert_eq!(config.rate_limit.limit_of(None), PlanLimit::PerWindow(100));
        assert_eq!(config.rate_limit.limit_of(Some("pro")), PlanLimit::PerWindow(10_000));
        assert_eq!(config.rate_limit.limit_of(Some("enterprise")), PlanLimit::Unlimited);
        assert_eq!(config.limits.max_value_bytes, 2 * 1024 * 1024);
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = toml::from_str::<GatewayConfig>("listne = \"127.0.0.1:1\"").unwrap_err();
        assert!(error.to_string().contains("listne"), "{error}");
        let error = toml::from_str::<GatewayConfig>("store = { type = \"redis\", ur = \"x\" }").unwrap_err();
        assert!(error.to_string().contains("ur"), "{error}");
    }

    #[test]
    fn live_limits_and_retention_read_from_the_table() {
        let config: GatewayConfig =
            toml::from_str("live = { queue_len = 16, max_lag_secs = 3 }\nretention = { max_age = \"10m\" }").unwrap();
        config.validate().unwrap();
        assert_eq!(config.live.queue_len, 16);
        assert_eq!(config.live.max_connections, 10_000);
        assert_eq!(config.retention.max_age.as_millis(), 600_000);
        let error = toml::from_str::<GatewayConfig>("live = { max_conections = 1 }").unwrap_err();
        assert!(error.to_string().contains("max_conections"), "{error}");
        let config: GatewayConfig = toml::from_str("live = { queue_len = 0 }").unwrap();
        assert!(config.validate().unwrap_err().to_string().contains("live.queue_len"));
    }

    #[test]
    fn plans_override_and_extend_the_defaults() {
        let config: GatewayConfig =
            toml::from_str("[rate_limit]\ndefault_plan = \"tiny\"\nplans = { tiny = 3, free = \"unlimited\" }")
                .unwrap();
        config.validate().unwrap();
        assert_eq!(config.rate_limit.limit_of(None), PlanLimit::PerWindow(3));
        assert_eq!(config.rate_limit.limit_of(Some("free")), PlanLimit::Unlimited);
        assert_eq!(config.rate_limit.limit_of(Some("basic")), PlanLimit::PerWindow(1000));
        assert!(toml::from_str::<GatewayConfig>("[rate_limit]\nplans = { x = \"lots\" }").is_err());
    }

    #[test]
    fn validation_names_the_problem() {
        let mut config = GatewayConfig::default();
        config.rate_limit.default_plan = "gold".into();
        assert!(config.validate().unwrap_err().to_string().contains("gold"));
        let mut config = GatewayConfig::default();
        config.limits.max_body_bytes = 10;
        assert!(config.validate().unwrap_err().to_string().contains("max_body_bytes"));
        let config = GatewayConfig {
            store: StoreConfig::Redis {
                url: "localhost:6379".into(),
                key_prefix: String::new(),
            },
            ..GatewayConfig::default()
        };
        assert!(config.validate().unwrap_err().to_string().contains("redis://"));
    }
}
