//! Sliding-window rate limiting per tenant or API key, by plan.
//!
//! Each subject may make `limit` requests in any window of `window` length. The
//! in-process limiter serves one gateway; with Redis configured the windows live
//! in Redis sorted sets, shared by every gateway using that Redis.

mod memory;
mod redis;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::{HeaderMap, HeaderValue};

pub use memory::InMemoryRateLimiter;
pub use redis::RedisRateLimiter;

use crate::config::{PlanLimit, RateLimitConfig};
use crate::store::StoreError;

/// The verdict on one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Requests allowed per window.
    pub limit: u64,
    /// Requests left in the current window after this one.
    pub remaining: u64,
    /// When refused: seconds until a slot frees up.
    pub retry_after_secs: u64,
}

/// Counts requests per subject in a sliding window.
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Records a request by `subject` if fewer than `limit` were made in the last `window`.
    async fn acquire(&self, subject: &str, limit: u64, window: Duration) -> Result<Decision, StoreError>;
}

/// The configured plans with the limiter that enforces them.
pub struct RateLimits {
    config: RateLimitConfig,
    limiter: Arc<dyn RateLimiter>,
}

impl RateLimits {
    /// Plans from `config`, counted by `limiter`.
    pub fn new(config: RateLimitConfig, limiter: Arc<dyn RateLimiter>) -> Self {
        Self { config, limiter }
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        Duration::from_secs(self.config.window_secs)
    }

    /// The decision for a request by `subject` on `plan`; `None` when it is not
    /// limited (limiting off, an unlimited plan, or the limiter failing: then the
    /// request goes through and the failure is logged).
    pub async fn check(&self, subject: &str, plan: Option<&str>) -> Option<Decision> {
        self.acquire(subject, self.config.limit_of(plan)).await
    }

    /// The decision for a sign-in request (see [`RateLimitConfig::sign_in`])
    /// from `client`, the peer's IP address when known.
    pub async fn check_sign_in(&self, client: Option<IpAddr>) -> Option<Decision> {
        let subject = client.map_or_else(|| "sign_in:unknown".to_owned(), |ip| format!("sign_in:{ip}"));
        self.acquire(&subject, self.config.sign_in).await
    }

    async fn acquire(&self, subject: &str, limit: PlanLimit) -> Option<Decision> {
        if !self.config.enabled {
            return None;
        }
        let PlanLimit::PerWindow(limit) = limit else {
            return None;
        };
        match self.limiter.acquire(subject, limit, self.window()).await {
            Ok(decision) => {
                if !decision.allowed {
                    metrics::counter!("pulse_rate_limit_rejections_total").increment(1);
                }
                Some(decision)
            }
            Err(error) => {
                tracing::warn!(%error, "rate limiter unavailable; letting the request through");
                metrics::counter!("pulse_rate_limit_errors_total").increment(1);
                None
            }
        }
    }

    /// Adds `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Window` to `headers`.
    pub fn add_headers(&self, decision: &Decision, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(decision.remaining));
        headers.insert("x-ratelimit-window", HeaderValue::from(self.config.window_secs));
    }
}

/// Whole seconds until `millis` have passed, at least 1.
fn retry_secs(millis: u64) -> u64 {
    millis.div_ceil(1000).max(1)
}
