//! Small models trained in Rust on rows already in memory, written as ONNX
//! ([`super::export`]) with their `model.toml`: [`train`].
//!
//! - Linear regression: least squares with an intercept, optionally ridge
//!   (`‖y − Xw − b‖² + λ‖w‖²`), solved in closed form (Cholesky of the
//!   centred normal equations, in `f64`).
//! - Isolation Forest: the anomaly operator's native forest
//!   ([`IsolationForest`]), scored as its anomaly score.

use crate::anomaly::IsolationForest;

use super::export;
use super::registry::{ModelMetadata, OutputKind, OutputSpec};

/// The input tensor's name in trained models.
pub const INPUT: &str = "X";

/// What to train.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelKind {
    /// Least squares on a target column.
    LinearRegression {
        /// The column predicted.
        target: String,
        /// The ridge penalty λ ≥ 0 (0: ordinary least squares).
        ridge: f64,
    },
    /// An Isolation Forest over the features.
    IsolationForest {
        /// Trees grown.
        trees: usize,
        /// Points per tree (ψ).
        sample_size: usize,
        /// The seed (the same rows and seed train the same forest).
        seed: u64,
    },
}

/// Why a model cannot be trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// Fewer rows than the model needs.
    #[error("{got} usable rows; this model needs at least {needed}")]
    TooFewRows {
        /// The least it needs.
        needed: usize,
        /// What it got.
        got: usize,
    },
    /// The settings are out of range.
    #[error("{0}")]
    Settings(String),
    /// The least-squares system has no unique solution.
    #[error("{0}")]
    Singular(String),
}

/// A model trained natively: the Rust model, its ONNX bytes and metadata.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    /// The Rust model (scores the same as the ONNX file).
    pub native: NativeModel,
    /// `model.onnx`.
    pub onnx: Vec<u8>,
    /// `model.toml`.
    pub metadata: ModelMetadata,
    /// How it fits its training rows: `intercept`, `coefficients`, `rmse`,
    /// `r2` (linear regression); `trees`, `sample_size`, `score_p50`,
    /// `score_p99`, `score_max` (isolation forest).
    pub fit: serde_json::Map<String, serde_json::Value>,
}

/// A trained model in Rust.
#[derive(Clone, Debug, PartialEq)]
pub enum NativeModel {
    /// Linear regression.
    Linear(LinearRegression),
    /// Isolation Forest (its anomaly score).
    Forest(IsolationForest),
}

impl NativeModel {
    /// The model's output for one row of features.
    pub fn predict(&self, features: &[f64]) -> f64 {
        match self {
            Self::Linear(linear) => linear.predict(features),
            Self::Forest(forest) => forest.score(features),
        }
    }
}

/// A fitted linear regression.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearRegression {
    /// One weight per feature.
    pub weights: Vec<f64>,
    /// The intercept.
    pub intercept: f64,
}

impl LinearRegression {
    /// Fits `y ≈ x · w + b` with ridge penalty `ridge` on `w`.
    ///
    /// # Errors
    /// [`TrainError::TooFewRows`] with fewer than features + 2 rows,
    /// [`TrainError::Singular`] when the features are constant or collinear
    /// (and `ridge` is 0), naming the constant ones.
    ///
    /// # Examples
    /// ```
    /// use pulse_operators::onnx::train::LinearRegression;
    ///
    /// let x: Vec<Vec<f64>> = (0..20).map(|i| vec![f64::from(i), f64::from(i * i % 7)]).collect();
    /// let y: Vec<f64> = x.iter().map(|r| 3.0 * r[0] - 2.0 * r[1] + 1.0).collect();
    /// let fit = LinearRegression::fit(&x, &y, 0.0, &["a".into(), "b".into()]).unwrap();
    /// assert!((fit.weights[0] - 3.0).abs() < 1e-9 && (fit.intercept - 1.0).abs() < 1e-9);
    /// ```
    pub fn fit(x: &[Vec<f64>], y: &[f64], ridge: f64, names: &[String]) -> Result<Self, TrainError> {
        let k = names.len();
        let n = x.len().min(y.len());
        if n < k + 2 {
            return Err(TrainError::TooFewRows { needed: k + 2, got: n });
        }
        if !(ridge.is_finite() && ridge >= 0.0) {
            return Err(TrainError::Settings(format!(
                "ridge is {ridge}; it must be a number ≥ 0"
            )));
        }
        let mean = |column: &dyn Fn(usize) -> f64| (0..n).map(column).sum::<f64>() / n as f64;
        let x_mean: Vec<f64> = (0..k).map(|j| mean(&|i| x[i][j])).collect();
        let y_mean = mean(&|i| y[i]);
        // Normal equations of the centred data: (XcᵀXc + λI) w = Xcᵀyc.
        let mut a = vec![vec![0.0; k]; k];
        let mut b = vec![0.0; k];
        for i in 0..n {
            let centred: Vec<f64> = (0..k).map(|j| x[i][j] - x_mean[j]).collect();
            let yc = y[i] - y_mean;
            for j in 0..k {
                b[j] += centred[j] * yc;
                for l in 0..=j {
                    a[j][l] += centred[j] * centred[l];
                }
            }
        }
        let constant: Vec<&str> = (0..k).filter(|&j| a[j][j] == 0.0).map(|j| names[j].as_str()).collect();
        if !constant.is_empty() && ridge == 0.0 {
            return Err(TrainError::Singular(format!(
                "feature(s) {} are constant over the rows: drop them or set ridge > 0",
                constant.join(", ")
            )));
        }
        for (j, row) in a.iter_mut().enumerate() {
            row[j] += ridge;
        }
        let weights = cholesky_solve(a, b).ok_or_else(|| {
            TrainError::Singular(format!(
                "features {} are collinear over the rows: drop one or set ridge > 0",
                names.join(", ")
            ))
        })?;
        let intercept = y_mean - weights.iter().zip(&x_mean).map(|(w, m)| w * m).sum::<f64>();
        Ok(Self { weights, intercept })
    }

    /// `x · w + b`.
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.intercept + self.weights.iter().zip(x).map(|(w, v)| w * v).sum::<f64>()
    }
}

/// Solves `a x = b` for a symmetric positive-definite `a` (its lower
/// triangle is read); `None` when `a` is not (numerically) positive definite.
#[allow(
    clippy::needless_range_loop,
    reason = "indices read as the textbook factorisation does"
)]
fn cholesky_solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let k = b.len();
    let scale = (0..k).map(|j| a[j][j]).fold(0.0f64, f64::max).max(f64::MIN_POSITIVE);
    for j in 0..k {
        let mut d = a[j][j];
        for l in 0..j {
            d -= a[j][l] * a[j][l];
        }
        if d.is_nan() || d <= scale * 1e-12 {
            return None;
        }
        let d = d.sqrt();
        a[j][j] = d;
        for i in j + 1..k {
            let mut s = a[i][j];
            for l in 0..j {
                s -= a[i][l] * a[j][l];
            }
            a[i][j] = s / d;
        }
    }
    // L z = b, then Lᵀ x = z.
    for i in 0..k {
        for l in 0..i {
            b[i] -= a[i][l] * b[l];
        }
        b[i] /= a[i][i];
    }
    for i in (0..k).rev() {
        for l in i + 1..k {
            b[i] -= a[l][i] * b[l];
        }
        b[i] /= a[i][i];
    }
    b.iter().all(|x| x.is_finite()).then_some(b)
}

/// The most trees an Isolation Forest may have.
pub const MAX_TREES: usize = 500;
/// The most points per tree (ψ) an Isolation Forest may take.
pub const MAX_SAMPLE_SIZE: usize = 2048;

/// The fewest rows an Isolation Forest is trained on.
pub const MIN_FOREST_ROWS: usize = 16;

/// Trains `kind` on `rows` (one value per feature of `features`, in order;
/// for a linear regression `targets` holds the target of each row) and
/// writes it as ONNX with its metadata (`created_at` RFC 3339).
///
/// # Errors
/// [`TrainError`]: too few rows, settings out of range, no unique fit.
pub fn train(
    kind: &ModelKind,
    features: &[String],
    rows: &[Vec<f64>],
    targets: &[f64],
    description: &str,
    created_at: &str,
) -> Result<TrainedModel, TrainError> {
    let (native, onnx, output) = match kind {
        ModelKind::LinearRegression { target, ridge } => {
            let fit = LinearRegression::fit(rows, targets, *ridge, features)?;
            let doc = format!("linear regression of `{target}` on {}", features.join(", "));
            let onnx = export::linear_regression(INPUT, "prediction", &fit.weights, fit.intercept, &doc);
            let output = OutputSpec {
                name: "prediction".into(),
                column: format!("predicted_{target}"),
                kind: OutputKind::Regression,
                index: None,
            };
            (NativeModel::Linear(fit), onnx, output)
        }
        ModelKind::IsolationForest {
            trees,
            sample_size,
            seed,
        } => {
            // A tree has at most 2ψ nodes: these bound the ONNX file to a few
            // million nodes, however large a request asks for.
            if !(1..=MAX_TREES).contains(trees) || !(2..=MAX_SAMPLE_SIZE).contains(sample_size) {
                return Err(TrainError::Settings(format!(
                    "trees {trees} and sample_size {sample_size}: trees must be 1 to {MAX_TREES}, \
                     sample_size 2 to {MAX_SAMPLE_SIZE}"
                )));
            }
            if rows.len() < MIN_FOREST_ROWS {
                return Err(TrainError::TooFewRows {
                    needed: MIN_FOREST_ROWS,
                    got: rows.len(),
                });
            }
            let forest = IsolationForest::train(rows, *trees, *sample_size, *seed);
            let doc = format!("isolation forest over {}", features.join(", "));
            let onnx = export::isolation_forest(INPUT, "score", &forest, &doc);
            let output = OutputSpec {
                name: "score".into(),
                column: "anomaly_score".into(),
                kind: OutputKind::Score,
                index: None,
            };
            (NativeModel::Forest(forest), onnx, output)
        }
    };
    let fit = fit_summary(&native, features, rows, targets);
    Ok(TrainedModel {
        fit,
        native,
        onnx,
        metadata: ModelMetadata {
            description: description.to_owned(),
            created_at: created_at.to_owned(),
            input: INPUT.into(),
            features: features.to_vec(),
            outputs: vec![output],
        },
    })
}

fn fit_summary(
    native: &NativeModel,
    features: &[String],
    rows: &[Vec<f64>],
    targets: &[f64],
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::json;
    let predictions: Vec<f64> = rows.iter().map(|row| native.predict(row)).collect();
    let mut fit = serde_json::Map::new();
    match native {
        NativeModel::Linear(linear) => {
            let n = targets.len().max(1) as f64;
            let mean = targets.iter().sum::<f64>() / n;
            let residual: f64 = predictions.iter().zip(targets).map(|(p, y)| (y - p).powi(2)).sum();
            let total: f64 = targets.iter().map(|y| (y - mean).powi(2)).sum();
            let coefficients: serde_json::Map<_, _> = features
                .iter()
                .zip(&linear.weights)
                .map(|(name, w)| (name.clone(), json!(w)))
                .collect();
            fit.insert("intercept".into(), json!(linear.intercept));
            fit.insert("coefficients".into(), coefficients.into());
            fit.insert("rmse".into(), json!((residual / n).sqrt()));
            // R² of a constant target is undefined: null.
            let r2 = (total > 0.0).then(|| 1.0 - residual / total);
            fit.insert("r2".into(), json!(r2));
        }
        NativeModel::Forest(forest) => {
            let mut scores = predictions;
            scores.sort_by(f64::total_cmp);
            let at = |q: f64| scores[((scores.len() - 1) as f64 * q).round() as usize];
            fit.insert("trees".into(), json!(forest.tree_count()));
            fit.insert("sample_size".into(), json!(forest.sample_size()));
            fit.insert("score_p50".into(), json!(at(0.5)));
            fit.insert("score_p99".into(), json!(at(0.99)));
            fit.insert("score_max".into(), json!(at(1.0)));
        }
    }
    fit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(k: usize) -> Vec<String> {
        (0..k).map(|j| format!("f{j}")).collect()
    }

    #[test]
    fn ridge_shrinks_and_least_squares_recovers_the_plane() {
        let x: Vec<Vec<f64>> = (0..50)
            .map(|i| vec![f64::from(i), f64::from((i * 7) % 11), f64::from(i % 3)])
            .collect();
        let y: Vec<f64> = x.iter().map(|r| 0.5 * r[0] - 2.0 * r[1] + 4.0 * r[2] - 3.0).collect();
        let exact = LinearRegression::fit(&x, &y, 0.0, &names(3)).unwrap();
        for (got, want) in exact.weights.iter().zip([0.5, -2.0, 4.0]) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        assert!((exact.intercept + 3.0).abs() < 1e-9);
        let ridge = LinearRegression::fit(&x, &y, 100.0, &names(3)).unwrap();
        let norm = |w: &[f64]| w.iter().map(|v| v * v).sum::<f64>();
        assert!(norm(&ridge.weights) < norm(&exact.weights));
    }

    #[test]
    fn constant_and_collinear_features_are_named_not_fitted() {
        let x: Vec<Vec<f64>> = (0..10).map(|i| vec![f64::from(i), 1.0]).collect();
        let y: Vec<f64> = (0..10).map(f64::from).collect();
        let error = LinearRegression::fit(&x, &y, 0.0, &names(2)).unwrap_err();
        assert!(error.to_string().contains("f1"), "{error}");
        let x: Vec<Vec<f64>> = (0..10).map(|i| vec![f64::from(i), 2.0 * f64::from(i)]).collect();
        assert!(matches!(
            LinearRegression::fit(&x, &y, 0.0, &names(2)),
            Err(TrainError::Singular(_))
        ));
        assert!(LinearRegression::fit(&x, &y, 1.0, &names(2)).is_ok());
        assert_eq!(
            LinearRegression::fit(&x[..3], &y[..3], 0.0, &names(2)).unwrap_err(),
            TrainError::TooFewRows { needed: 4, got: 3 }
        );
    }
}
