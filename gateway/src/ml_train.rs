//! `POST /api/v1/ml/train` (admin): a small model trained on the caller's
//! tenant's retained windows and registered as a new version of one of the
//! tenant's own models.
//!
//! The gateway picks the training rows (the windows the query API answers
//! from: one window operator's rows, optionally filtered by key fields and
//! by window range) and reads the named columns; the engine's
//! [`ModelService::train`] fits the model in Rust (linear regression, or the
//! anomaly operator's Isolation Forest), writes it as ONNX, checks that it
//! loads in ONNX Runtime and publishes it atomically, so the predict API and
//! running `onnx` operators (hot reload) pick it up.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use pulse_live::{LiveRow, LiveSource};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::extract::JsonBody;
use crate::ml::{MlError, ModelService, ModelView};
use crate::state::AppState;

/// Most feature columns a trained model may take.
pub const MAX_FEATURES: usize = 64;

/// What kind of model `POST /api/v1/ml/train` fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrainKind {
    /// Least squares (optionally ridge) of `target` on `features`; output `predicted_<target>`.
    LinearRegression,
    /// The anomaly operator's Isolation Forest over `features`; output `anomaly_score` in (0, 1].
    IsolationForest,
}

/// `POST /api/v1/ml/train` body. The training rows are the selected windows
/// ordered by window start, end and key fields (`name=value`, sorted).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// The tenant's model that gets the new version (created if new; it
    /// hides a global model of the same id for this tenant).
    pub model_id: String,
    /// `linear_regression` or `isolation_forest`.
    pub kind: TrainKind,
    /// Window columns fed to the model, in input order: aggregates (`avg`,
    /// `p95`, `count`) or one-hot key tests (`labels.region=eu`).
    pub features: Vec<String>,
    /// The aggregate predicted (`linear_regression` only).
    pub target: Option<String>,
    /// The window operator whose rows train (needed when several have rows).
    pub operator: Option<String>,
    /// Only windows whose key fields equal these (`{"metric": "cpu"}`).
    #[serde(default)]
    pub filter: BTreeMap<String, String>,
    /// Only windows starting at or after this (epoch ms).
    pub start_ms: Option<u64>,
    /// Only windows ending at or before this (epoch ms).
    pub end_ms: Option<u64>,
    /// Ridge penalty λ ≥ 0 (`linear_regression`; default 0).
    pub ridge: Option<f64>,
    /// Trees (`isolation_forest`; default 100, at most 500).
    pub trees: Option<usize>,
    /// Rows per tree (`isolation_forest`; default 256, at most 2048).
    pub sample_size: Option<usize>,
    /// Random seed (`isolation_forest`; default 0): the same rows and seed train the same forest.
    pub seed: Option<u64>,
    /// The version's description (default: what was trained on).
    pub description: Option<String>,
}

/// The rows a model is trained on, as the engine receives them.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainJob {
    /// The tenant's model that gets the new version.
    pub model_id: String,
    /// What to fit.
    pub kind: TrainKind,
    /// The feature names, in input order.
    pub features: Vec<String>,
    /// The target (linear regression).
    pub target: Option<String>,
    /// One row of feature values per training window.
    pub rows: Vec<Vec<f64>>,
    /// The target of each row (linear regression; else empty).
    pub targets: Vec<f64>,
    /// Ridge penalty.
    pub ridge: f64,
    /// Trees.
    pub trees: usize,
    /// Rows per tree.
    pub sample_size: usize,
    /// Seed.
    pub seed: u64,
    /// The version's description.
    pub description: String,
}

/// What the engine made of a [`TrainJob`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainedVersion {
    /// The version written.
    pub version: String,
    /// The fit (see [`TrainResponse::fit`]).
    pub fit: Map<String, Value>,
    /// The model as it is now.
    pub model: ModelView,
}

/// What `POST /api/v1/ml/train` returns (201).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrainResponse {
    /// The model.
    pub model_id: String,
    /// The version written.
    pub version: String,
    /// What was fitted.
    pub kind: TrainKind,
    /// Its input features, in order.
    pub features: Vec<String>,
    /// The window operator whose rows trained it.
    pub operator: String,
    /// Windows trained on.
    pub rows: usize,
    /// Windows left out because a feature or the target was null or not a number.
    pub skipped_rows: usize,
    /// The fit: `intercept`, `coefficients`, `rmse`, `r2` (linear regression);
    /// `trees`, `sample_size`, training-score quantiles (isolation forest).
    #[schema(value_type = Object)]
    pub fit: Map<String, Value>,
    /// The model as `GET /api/v1/ml/models/{id}` shows it now.
    pub model: ModelView,
}

/// Trains a linear regression or an Isolation Forest on the caller's
/// tenant's retained windows and registers it as a new version of the
/// tenant's model `model_id` (admin scope). The version is checked to load
/// in ONNX Runtime before it appears; it becomes active unless the model's
/// `ACTIVE` pointer pins another.
#[utoipa::path(post, path = "/api/v1/ml/train", tag = "ml",
    request_body = TrainRequest, security(("bearer" = []), ("api_key" = [])),
    responses((status = 201, body = TrainResponse, description = "the new version"),
              (status = 403, description = "no admin scope (`forbidden`)"),
              (status = 422, description = "an unknown column, too few usable rows, rows of several operators \
                without `operator`, settings out of range, or features that are constant or collinear (`validation_failed`)"),
              (status = 503, description = "no model registry or no retained windows in this process, or ONNX Runtime \
                missing (`ml_unavailable`, `live_unavailable`)")))]
pub async fn train(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(request): JsonBody<TrainRequest>,
) -> Result<(StatusCode, Json<TrainResponse>), AppError> {
    principal.require(Scope::Admin)?;
    let service: Arc<dyn ModelService> = crate::ml::service(&state)?;
    let views = crate::live::services(&state)?.views.clone();
    let tenant = principal.tenant.to_string();
    let response = tokio::task::spawn_blocking(move || {
        check_request(&request)?;
        let selected = select_rows(views.tenant_rows(&tenant), &request)?;
        let (operator, job) = job_of(request, &selected)?;
        let (model_id, kind, features) = (job.model_id.clone(), job.kind, job.features.clone());
        let (rows, skipped_rows) = (job.rows.len(), selected.len() - job.rows.len());
        let trained = service.train(&tenant, job)?;
        Ok::<_, MlError>(TrainResponse {
            model_id,
            version: trained.version,
            kind,
            features,
            operator,
            rows,
            skipped_rows,
            fit: trained.fit,
            model: trained.model,
        })
    })
    .await
    .map_err(AppError::internal)??;
    Ok((StatusCode::CREATED, Json(response)))
}

fn check_request(request: &TrainRequest) -> Result<(), MlError> {
    if request.features.is_empty() || request.features.len() > MAX_FEATURES {
        return Err(MlError::Invalid(format!(
            "{} features; give 1 to {MAX_FEATURES}",
            request.features.len()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(twice) = request.features.iter().find(|f| !seen.insert(f.as_str())) {
        return Err(MlError::Invalid(format!("feature `{twice}` is named twice")));
    }
    match (request.kind, &request.target) {
        (TrainKind::LinearRegression, None) => Err(MlError::Invalid(
            "a linear regression needs `target`: the aggregate it predicts".into(),
        )),
        (TrainKind::LinearRegression, Some(target)) if request.features.contains(target) => {
            Err(MlError::Invalid(format!("the target `{target}` is also a feature")))
        }
        (TrainKind::IsolationForest, Some(_)) => Err(MlError::Invalid("an isolation forest has no `target`".into())),
        _ => Ok(()),
    }
}

/// The tenant's windows the request selects, all of one operator.
fn select_rows(
    rows: Vec<(LiveSource, Arc<LiveRow>)>,
    request: &TrainRequest,
) -> Result<Vec<(LiveSource, Arc<LiveRow>)>, MlError> {
    let selected: Vec<_> = rows
        .into_iter()
        .filter(|(source, row)| {
            request.operator.as_ref().is_none_or(|o| *o == source.operator)
                && request.start_ms.is_none_or(|start| row.window_start >= start)
                && request.end_ms.is_none_or(|end| row.window_end <= end)
                && request.filter.iter().all(|(k, v)| row.key_str(k) == Some(v.as_str()))
        })
        .collect();
    let mut selected = selected;
    // Rows arrive in whatever order the workers recorded them: train in a
    // fixed one, so the same windows and seed train the same model.
    selected.sort_by_cached_key(|(_, row)| (row.window_start, row.window_end, key_text(row)));
    let mut operators: Vec<&str> = selected.iter().map(|(s, _)| s.operator.as_str()).collect();
    operators.sort_unstable();
    operators.dedup();
    if operators.len() > 1 {
        return Err(MlError::Invalid(format!(
            "the selected windows come from several operators ({}): name one in `operator`",
            operators.join(", ")
        )));
    }
    Ok(selected)
}

/// A row's key fields sorted by name, as `name=value` text (null: empty).
fn key_text(row: &LiveRow) -> Vec<String> {
    let mut key: Vec<String> = row
        .key
        .iter()
        .map(|(name, value)| format!("{name}={}", value.as_str().unwrap_or_default()))
        .collect();
    key.sort();
    key
}

/// The value of column `name` of a row: an aggregate, or a one-hot key test
/// (`key=value`). `None` when the row does not have it; `Some(None)` when
/// it is null or not a finite number.
fn column(row: &LiveRow, name: &str) -> Option<Option<f64>> {
    if let Some((key, value)) = name.split_once('=') {
        return row
            .key
            .get(key)
            .map(|found| Some(if found.as_str() == Some(value) { 1.0 } else { 0.0 }));
    }
    row.values
        .get(name)
        .map(|value| value.as_f64().filter(|x| x.is_finite()))
}

/// The training job of the selected rows, and their operator.
fn job_of(request: TrainRequest, selected: &[(LiveSource, Arc<LiveRow>)]) -> Result<(String, TrainJob), MlError> {
    let Some((source, _)) = selected.first() else {
        return Err(MlError::Invalid(
            "no retained window of this tenant matches `operator`, `filter`, `start_ms` and `end_ms`".into(),
        ));
    };
    let mut wanted: Vec<&String> = request.features.iter().collect();
    wanted.extend(&request.target);
    for name in wanted {
        if !selected.iter().any(|(_, row)| column(row, name).is_some()) {
            let row = &selected[0].1;
            let mut known: Vec<&str> = row.values.keys().map(String::as_str).collect();
            known.extend(row.key.keys().map(|k| k.as_str()));
            return Err(MlError::Invalid(format!(
                "no window of operator `{}` has a column `{name}` (its columns: {}; a key test is `key=value`)",
                source.operator,
                known.join(", ")
            )));
        }
    }
    let mut rows = Vec::with_capacity(selected.len());
    let mut targets = Vec::new();
    for (_, row) in selected {
        let features: Option<Vec<f64>> = request.features.iter().map(|f| column(row, f).flatten()).collect();
        let target = request.target.as_ref().map(|t| column(row, t).flatten());
        match (features, target) {
            (Some(features), None) => rows.push(features),
            (Some(features), Some(Some(target))) => {
                rows.push(features);
                targets.push(target);
            }
            _ => {}
        }
    }
    let description = request.description.unwrap_or_else(|| {
        format!(
            "{} trained on {} windows of `{}`",
            match request.kind {
                TrainKind::LinearRegression => "linear regression",
                TrainKind::IsolationForest => "isolation forest",
            },
            rows.len(),
            source.operator
        )
    });
    let job = TrainJob {
        model_id: request.model_id,
        kind: request.kind,
        features: request.features,
        target: request.target,
        rows,
        targets,
        ridge: request.ridge.unwrap_or(0.0),
        trees: request.trees.unwrap_or(100),
        sample_size: request.sample_size.unwrap_or(256),
        seed: request.seed.unwrap_or(0),
        description,
    };
    Ok((source.operator.clone(), job))
}
