//! [`InMemoryRateLimiter`]: a log of request times per subject, in this process.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Decision, RateLimiter, retry_secs};
use crate::store::StoreError;

/// Subjects kept before idle ones are dropped.
const PRUNE_AT: usize = 10_000;

/// Sliding windows held in memory (one gateway process).
#[derive(Default)]
pub struct InMemoryRateLimiter {
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl InMemoryRateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RateLimiter for InMemoryRateLimiter {
    async fn acquire(&self, subject: &str, limit: u64, window: Duration) -> Result<Decision, StoreError> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() >= PRUNE_AT && !windows.contains_key(subject) {
            windows.retain(|_, times| times.back().is_some_and(|&last| now.duration_since(last) < window));
        }
        let times = windows.entry(subject.to_owned()).or_default();
        while times.front().is_some_and(|&first| now.duration_since(first) >= window) {
            times.pop_front();
        }
        let count = times.len() as u64;
        if count < limit {
            times.push_back(now);
            return Ok(Decision {
                allowed: true,
                limit,
                remaining: limit - count - 1,
                retry_after_secs: 0,
            });
        }
        let oldest = times.front().copied().unwrap_or(now);
        let wait = window.saturating_sub(now.duration_since(oldest));
        Ok(Decision {
            allowed: false,
            limit,
            remaining: 0,
            retry_after_secs: retry_secs(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn allows_limit_requests_per_window_and_then_refuses() {
        let limiter = InMemoryRateLimiter::new();
        let window = Duration::from_millis(300);
        for expected_remaining in (0..3).rev() {
            let decision = limiter.acquire("a", 3, window).await.unwrap();
            assert!(decision.allowed);
            assert_eq!(decision.remaining, expected_remaining);
        }
        let refused = limiter.acquire("a", 3, window).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 1);
        assert!(
            limiter.acquire("b", 3, window).await.unwrap().allowed,
            "subjects are independent"
        );
        tokio::time::sleep(window).await;
        assert!(
            limiter.acquire("a", 3, window).await.unwrap().allowed,
            "the window slides"
        );
    }
}
