//! The Isolation Forest detector of one series: feature vectors of recent
//! values, a training schedule by event time, and the model in use.
//!
//! Training is split from scoring so that the operator can move it off the
//! hot path: [`ForestDetector::training_due`] hands out a [`TrainingJob`]
//! (a snapshot of the values, plain data, `Send`), [`TrainingJob::train`]
//! builds a [`ModelVersion`] anywhere, and [`ForestDetector::install`] swaps
//! the `Arc` in one assignment. Scoring reads whichever complete model is
//! installed; it never sees a half-built one. In-line mode (the default, and
//! what makes replays deterministic) trains inside `update` when due.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::config::IsolationForestConfig;
use super::isolation_forest::IsolationForest;

/// A trained model with its metadata, as persisted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// 1 for the key's first model, then +1 per training.
    pub version: u64,
    /// The series (key) it was trained for.
    pub key: String,
    /// Event time of the training, epoch ms.
    pub trained_at: i64,
    /// Points it was trained on.
    pub points: usize,
    /// The parameters it was trained with.
    pub parameters: IsolationForestConfig,
    /// The forest.
    pub forest: IsolationForest,
    /// Median forest score of the newest training points: the model's "normal".
    pub baseline: f64,
    /// 99th percentile minus the median of those scores: the model's scale.
    pub spread: f64,
}

impl ModelVersion {
    /// The forest score of a feature vector relative to the model's own training
    /// scores, so that versions are comparable: 0 at the median, 1 at the 99th
    /// percentile. For reports; the detector scores with the plain forest score and
    /// calibrates it per key, which measured better on NAB.
    pub fn relative_score(&self, features: &[f64]) -> f64 {
        (self.forest.score(features) - self.baseline) / self.spread
    }
}

/// A snapshot of a series, ready to be trained on any thread.
#[derive(Clone, Debug)]
pub struct TrainingJob {
    /// The version the model will get.
    pub version: u64,
    /// The series.
    pub key: String,
    /// Event time of the training, epoch ms.
    pub trained_at: i64,
    /// Values, oldest first.
    pub values: Vec<f64>,
    /// Parameters.
    pub parameters: IsolationForestConfig,
}

impl TrainingJob {
    /// Builds the model; deterministic in the job's contents.
    pub fn train(self) -> ModelVersion {
        let features: Vec<Vec<f64>> = (self.parameters.lags..self.values.len())
            .map(|end| features(&self.values[end - self.parameters.lags..=end]))
            .collect();
        let seed = self.parameters.seed ^ (self.trained_at as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ fnv(&self.key);
        let forest = IsolationForest::train(&features, self.parameters.trees, self.parameters.sample_size, seed);
        let mut scores: Vec<f64> = features[features.len().saturating_sub(CALIBRATION_POINTS)..]
            .iter()
            .map(|point| forest.score(point))
            .collect();
        scores.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            scores
                .get(((scores.len().max(1) - 1) as f64 * q) as usize)
                .copied()
                .unwrap_or(0.5)
        };
        let baseline = quantile(0.5);
        let spread = (quantile(0.99) - baseline).max(MIN_SPREAD);
        ModelVersion {
            version: self.version,
            key: self.key,
            trained_at: self.trained_at,
            points: features.len(),
            parameters: self.parameters,
            forest,
            baseline,
            spread,
        }
    }
}

/// Training points a new model scores to learn its own baseline and spread.
const CALIBRATION_POINTS: usize = 500;

/// Floor of a model's spread: on a perfectly regular series every training
/// score is the same, and the tiniest difference must not look like a surprise.
const MIN_SPREAD: f64 = 0.05;

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The feature vector of the last value of `window` (`lags + 1` values, oldest
/// first): the value and the means of the spans before it, each span twice as
/// long as the one after it (1–3, 4–11, 12–27, ... values back). A spike, a
/// level shift or a change of shape moves the point to where no past point was.
pub fn features(window: &[f64]) -> Vec<f64> {
    let (&value, before) = window.split_last().expect("a window of at least one value");
    let mut features = vec![value];
    let (mut end, mut span) = (before.len(), 3usize);
    while end > 0 {
        let start = end.saturating_sub(span);
        let part = &before[start..end];
        features.push(part.iter().sum::<f64>() / part.len() as f64);
        end = start;
        span *= 2;
    }
    features
}

/// The forest detector of one series.
#[derive(Clone, Debug)]
pub struct ForestDetector {
    key: String,
    config: IsolationForestConfig,
    values: VecDeque<f64>,
    model: Option<Arc<ModelVersion>>,
    next_training_at: Option<i64>,
    next_version: u64,
}

impl ForestDetector {
    /// A detector for the series `key`.
    pub fn new(key: impl Into<String>, config: IsolationForestConfig) -> Self {
        Self {
            key: key.into(),
            values: VecDeque::with_capacity(config.training_points.min(1 << 16)),
            config,
            model: None,
            next_training_at: None,
            next_version: 1,
        }
    }

    /// The model in use, if any.
    pub fn model(&self) -> Option<&Arc<ModelVersion>> {
        self.model.as_ref()
    }

    /// Installs a model (atomic: one `Arc` assignment); the schedule continues from its training time.
    pub fn install(&mut self, model: Arc<ModelVersion>) {
        self.next_version = self.next_version.max(model.version + 1);
        self.next_training_at = Some(model.trained_at.saturating_add(self.config.retrain_every_ms));
        self.model = Some(model);
    }

    /// The model's relative score of a value given the values before it, `None` without a model.
    pub fn score(&self, value: f64) -> Option<f64> {
        let model = self.model.as_ref()?;
        let lags = self.config.lags;
        if self.values.len() < lags {
            return None;
        }
        let mut window: Vec<f64> = self.values.iter().skip(self.values.len() - lags).copied().collect();
        window.push(value);
        Some(model.forest.score(&features(&window)))
    }

    /// Adds a value (after it was scored).
    pub fn push(&mut self, value: f64) {
        if self.values.len() == self.config.training_points {
            self.values.pop_front();
        }
        self.values.push_back(value);
    }

    /// A training job if one is due at event time `ts_ms`: the first once enough
    /// points are in, then every `retrain_every_ms` of event time.
    pub fn training_due(&mut self, ts_ms: i64) -> Option<TrainingJob> {
        if self.values.len() < self.config.min_training_points.max(self.config.lags + 2) {
            return None;
        }
        if self.next_training_at.is_some_and(|at| ts_ms < at) {
            return None;
        }
        self.next_training_at = Some(ts_ms.saturating_add(self.config.retrain_every_ms));
        let version = self.next_version;
        self.next_version += 1;
        Some(TrainingJob {
            version,
            key: self.key.clone(),
            trained_at: ts_ms,
            values: self.values.iter().copied().collect(),
            parameters: self.config.clone(),
        })
    }

    /// Bytes of state at a full training buffer, model included.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.config.training_points * std::mem::size_of::<f64>()
            + self.model.as_ref().map_or(0, |m| m.forest.state_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> IsolationForestConfig {
        IsolationForestConfig {
            training_points: 300,
            min_training_points: 100,
            retrain_every_ms: 1000,
            trees: 10,
            sample_size: 32,
            ..IsolationForestConfig::default()
        }
    }

    #[test]
    fn training_follows_event_time() {
        let mut detector = ForestDetector::new("k", config());
        let mut trained_at = Vec::new();
        for i in 0..400i64 {
            let ts = i * 50;
            if let Some(job) = detector.training_due(ts) {
                trained_at.push(job.trained_at);
                detector.install(Arc::new(job.train()));
            }
            detector.push((i % 10) as f64);
        }
        assert_eq!(
            trained_at,
            vec![
                5000, 6000, 7000, 8000, 9000, 10000, 11000, 12000, 13000, 14000, 15000, 16000, 17000, 18000, 19000
            ]
        );
        assert_eq!(detector.model().unwrap().version, 15);
    }

    #[test]
    fn a_job_trains_the_same_model_twice() {
        let mut detector = ForestDetector::new("k", config());
        for i in 0..200 {
            detector.push(f64::from(i % 7));
        }
        let job = detector.training_due(0).unwrap();
        assert_eq!(job.clone().train(), job.train());
    }
}
