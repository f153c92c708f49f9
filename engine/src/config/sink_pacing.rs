//! How a sink paces its attempts while its destination fails: the backoff
//! between retries (`retry = { initial = "100ms", max = "5s" }`) and its
//! circuit breaker (`breaker = { failures = 5, probe_after = "5s" }`), keys of
//! every sink that writes to a server (`clickhouse`, `redis`, `parquet`,
//! `kafka`), with the runtime's defaults, checked before anything runs.

use pulse_core::DurationSpec;
use pulse_sinks::runtime::{BreakerPolicy, RetryPolicy};
use serde::Deserialize;

use super::validate::{Problem, problem};

/// The longest wait that may be configured (between retries, or with the
/// breaker open): longer would look like a hang.
const LONGEST_WAIT: DurationSpec = DurationSpec::from_secs(3_600);

/// The most consecutive failures that may be asked for before the breaker opens.
const MOST_FAILURES: u32 = 1_000;

/// `retry = { initial, max }`: the first wait after a failed write, doubling
/// up to `max`, each wait drawn between half and all of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySettings {
    /// The first wait (default 100ms).
    #[serde(default = "default_initial")]
    pub initial: DurationSpec,
    /// The longest wait (default 5s).
    #[serde(default = "default_max")]
    pub max: DurationSpec,
}

/// `breaker = { failures, probe_after }`: the breaker opens after `failures`
/// consecutive failed writes and lets one write probe after `probe_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive failed writes that open the breaker (default 5).
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// How long it stays open before a probe (default 5s).
    #[serde(default = "default_probe_after")]
    pub probe_after: DurationSpec,
}

fn default_initial() -> DurationSpec {
    DurationSpec::from_millis(RetryPolicy::default().initial.as_millis() as u64)
}

fn default_max() -> DurationSpec {
    DurationSpec::from_millis(RetryPolicy::default().max.as_millis() as u64)
}

fn default_failures() -> u32 {
    BreakerPolicy::default().failures_to_open
}

fn default_probe_after() -> DurationSpec {
    DurationSpec::from_millis(BreakerPolicy::default().open_for.as_millis() as u64)
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            initial: default_initial(),
            max: default_max(),
        }
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: default_failures(),
            probe_after: default_probe_after(),
        }
    }
}

impl RetrySettings {
    /// The runtime's policy.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            initial: self.initial.to_std(),
            max: self.max.to_std(),
        }
    }

    /// Reports settings no sink can use, at their keys under `["sinks", name, "retry"]`.
    pub fn check(&self, name: &str, problems: &mut Vec<Problem>) {
        let at = |key: &'static str| ["sinks", name, "retry", key];
        for (key, wait) in [("initial", self.initial), ("max", self.max)] {
            if wait.as_millis() == 0 {
                problems.push(problem(
                    &at(key),
                    format!("`retry.{key}` is 0: a failing sink would retry in a busy loop"),
                    "give at least 1ms, e.g. initial = \"100ms\"".to_owned(),
                ));
            } else if wait > LONGEST_WAIT {
                problems.push(problem(
                    &at(key),
                    format!("`retry.{key}` is longer than an hour"),
                    "give at most \"1h\"; the breaker stops a sink hammering a server down for long".to_owned(),
                ));
            }
        }
        if self.max < self.initial {
            problems.push(problem(
                &at("max"),
                "`retry.max` is shorter than `retry.initial`".into(),
                "make `max` at least `initial`".to_owned(),
            ));
        }
    }
}

impl BreakerSettings {
    /// The runtime's policy.
    pub fn policy(&self) -> BreakerPolicy {
        BreakerPolicy {
            failures_to_open: self.failures,
            open_for: self.probe_after.to_std(),
        }
    }

    /// Reports settings no sink can use, at their keys under `["sinks", name, "breaker"]`.
    pub fn check(&self, name: &str, problems: &mut Vec<Problem>) {
        let at = |key: &'static str| ["sinks", name, "breaker", key];
        if self.failures == 0 || self.failures > MOST_FAILURES {
            problems.push(problem(
                &at("failures"),
                format!("`breaker.failures = {}` is out of range", self.failures),
                format!("give 1 to {MOST_FAILURES} consecutive failed writes"),
            ));
        }
        if self.probe_after.as_millis() == 0 || self.probe_after > LONGEST_WAIT {
            problems.push(problem(
                &at("probe_after"),
                "`breaker.probe_after` must be between 1ms and 1h".into(),
                "e.g. probe_after = \"5s\"".to_owned(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_runtimes() {
        assert_eq!(RetrySettings::default().policy(), RetryPolicy::default());
        assert_eq!(BreakerSettings::default().policy(), BreakerPolicy::default());
    }

    #[test]
    fn unusable_settings_are_reported_at_their_keys() {
        let mut problems = Vec::new();
        let retry = RetrySettings {
            initial: DurationSpec::from_secs(10),
            max: DurationSpec::from_secs(1),
        };
        retry.check("history", &mut problems);
        BreakerSettings {
            failures: 0,
            probe_after: DurationSpec::from_millis(0),
        }
        .check("history", &mut problems);
        let paths: Vec<String> = problems.iter().map(|p| p.path.join(".")).collect();
        assert_eq!(
            paths,
            [
                "sinks.history.retry.max",
                "sinks.history.breaker.failures",
                "sinks.history.breaker.probe_after"
            ]
        );
    }
}
