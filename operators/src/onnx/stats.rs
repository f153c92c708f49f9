//! Live statistics per model version, for the model API: rows scored, rows
//! failed and recent batch latencies, shared by every operator and the
//! predict API of the process ([`record_batch`], [`version_stats`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};

/// Batch latencies kept per version for the percentiles.
const RECENT_BATCHES: usize = 1024;

/// What has been recorded of one model version.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionStats {
    /// Rows scored.
    pub predictions: u64,
    /// Rows that failed in ONNX Runtime.
    pub errors: u64,
    /// Median batch latency of the recent batches, µs.
    pub p50_us: Option<u64>,
    /// 99th percentile of the same, µs.
    pub p99_us: Option<u64>,
}

#[derive(Default)]
struct Recorded {
    predictions: u64,
    errors: u64,
    recent_us: VecDeque<u64>,
}

fn registry() -> &'static Mutex<HashMap<(String, String), Recorded>> {
    static STATS: OnceLock<Mutex<HashMap<(String, String), Recorded>>> = OnceLock::new();
    STATS.get_or_init(Mutex::default)
}

/// Records one batch of `rows` scored (or failed) by `model` `version` in `latency_us`.
pub fn record_batch(model: &str, version: &str, rows: usize, failed: bool, latency_us: u64) {
    let mut stats = registry().lock().unwrap_or_else(PoisonError::into_inner);
    let entry = stats.entry((model.to_owned(), version.to_owned())).or_default();
    if failed {
        entry.errors += rows as u64;
        return;
    }
    entry.predictions += rows as u64;
    if entry.recent_us.len() == RECENT_BATCHES {
        entry.recent_us.pop_front();
    }
    entry.recent_us.push_back(latency_us);
}

/// The statistics of every version of `model` recorded so far, by version.
pub fn version_stats(model: &str) -> Vec<(String, VersionStats)> {
    let stats = registry().lock().unwrap_or_else(PoisonError::into_inner);
    let mut found: Vec<(String, VersionStats)> = stats
        .iter()
        .filter(|((m, _), _)| m == model)
        .map(|((_, version), recorded)| {
            let mut sorted: Vec<u64> = recorded.recent_us.iter().copied().collect();
            sorted.sort_unstable();
            let quantile =
                |q: f64| (!sorted.is_empty()).then(|| sorted[((sorted.len() - 1) as f64 * q).round() as usize]);
            let view = VersionStats {
                predictions: recorded.predictions,
                errors: recorded.errors,
                p50_us: quantile(0.5),
                p99_us: quantile(0.99),
            };
            (version.clone(), view)
        })
        .collect();
    found.sort_by(|a, b| super::registry::compare_versions(&a.0, &b.0));
    found
}
