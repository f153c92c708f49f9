//! The model registry over HTTP: `GET /api/v1/ml/models`,
//! `GET /api/v1/ml/models/{id}`, `POST /api/v1/ml/models/{id}/activate`
//! (admin) and `POST /api/v1/ml/predict/{model_id}`; `POST /api/v1/ml/train`
//! is [`crate::ml_train`]'s.
//!
//! Models are tenant-scoped: a tenant sees the global models and its own, and
//! another tenant's model is a 404. The gateway knows models only through a
//! [`ModelService`], which the engine implements over its ONNX model registry
//! and attaches with [`Gateway::attach_models`](crate::Gateway::attach_models);
//! until it does, these routes answer 503 `ml_unavailable`. Predictions run
//! on the blocking pool, never on the request threads.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{Principal, Scope};
use crate::error::AppError;
use crate::extract::{JsonBody, PathParams};
use crate::ml_train::{TrainJob, TrainedVersion};
use crate::state::AppState;

/// Most instances (or rows) one predict request may carry.
pub const MAX_INSTANCES: usize = 1024;

/// What the gateway asks of the model registry (the engine implements it).
pub trait ModelService: Send + Sync + 'static {
    /// The models `tenant` may use: global ones and its own, by id.
    fn models(&self, tenant: &str) -> Vec<ModelView>;
    /// One model as `tenant` sees it.
    ///
    /// # Errors
    /// [`MlError::NotFound`] when the tenant has no such model.
    fn model(&self, tenant: &str, id: &str) -> Result<ModelView, MlError>;
    /// Makes `version` the active version of `tenant`'s own model `id`.
    ///
    /// # Errors
    /// [`MlError`] naming what is missing or not allowed.
    fn activate(&self, tenant: &str, id: &str, version: &str) -> Result<ModelView, MlError>;
    /// Scores `instances` (features in the model's order) with the active version.
    ///
    /// # Errors
    /// [`MlError`]: an unknown model, or instances the model cannot take.
    fn predict(&self, tenant: &str, id: &str, instances: Vec<Vec<f32>>) -> Result<PredictResponse, MlError>;
    /// Fits `job` and registers it as a new version of `tenant`'s own model
    /// `job.model_id` (checked to load before it appears).
    ///
    /// # Errors
    /// [`MlError::Invalid`] when the rows cannot train the model (too few,
    /// settings out of range, collinear features); [`MlError::Unavailable`]
    /// without ONNX Runtime or a writable registry.
    fn train(&self, tenant: &str, job: TrainJob) -> Result<TrainedVersion, MlError>;
}

/// Why a model request failed.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// No such model (or version) for this tenant: 404.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done as asked: 422.
    #[error("{0}")]
    Invalid(String),
    /// Allowed to nobody with this credential: 403.
    #[error("{0}")]
    Forbidden(String),
    /// ONNX Runtime is missing or a model does not load: 503.
    #[error("{0}")]
    Unavailable(String),
}

impl From<MlError> for AppError {
    fn from(error: MlError) -> Self {
        match error {
            MlError::NotFound(message) => AppError::not_found(message),
            MlError::Invalid(message) => AppError::invalid(message),
            MlError::Forbidden(message) => AppError::forbidden(message),
            MlError::Unavailable(message) => AppError::new(StatusCode::SERVICE_UNAVAILABLE, "ml_unavailable", message),
        }
    }
}

/// One model: its versions, which is active, its inputs and live statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelView {
    /// The model's id.
    pub id: String,
    /// `global`, or `tenant` for the caller's own model.
    pub scope: String,
    /// Its versions, oldest first.
    pub versions: Vec<VersionView>,
    /// The version scoring now (its `ACTIVE` file, else the newest).
    pub active_version: Option<String>,
    /// The ordered input features of the active version: what each entry of an instance is.
    pub features: Vec<String>,
    /// The outputs of the active version: prediction columns and their meaning.
    pub outputs: Vec<OutputView>,
    /// Predictions made with each version since the process started.
    pub stats: Vec<VersionStats>,
}

/// One version of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionView {
    /// The version's name.
    pub version: String,
    /// When it was made (RFC 3339, as its metadata says).
    pub created_at: String,
    /// What it is.
    pub description: String,
}

/// One output of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutputView {
    /// The prediction column it fills.
    pub column: String,
    /// `regression`, `probability`, `score` or `label`.
    pub kind: String,
}

/// Live statistics of one version (pipelines and the predict API together).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VersionStats {
    /// The version.
    pub version: String,
    /// Rows scored.
    pub predictions: u64,
    /// Rows that failed in ONNX Runtime.
    pub errors: u64,
    /// Median time of a batch in ONNX Runtime, µs (of the most recent batches).
    pub p50_us: Option<u64>,
    /// 99th percentile of the same, µs.
    pub p99_us: Option<u64>,
}

/// `GET /api/v1/ml/models`: the models the caller may use.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    /// The models, by id.
    pub models: Vec<ModelView>,
}

/// The `{id}` path parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ModelPath {
    /// The model's id.
    pub id: String,
}

/// The `{model_id}` path parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PredictPath {
    /// The model's id.
    pub model_id: String,
}

/// `POST /api/v1/ml/models/{id}/activate` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    /// The version to make active.
    pub version: String,
}

/// `POST /api/v1/ml/predict/{model_id}` body: `instances` (features in the
/// model's order) or `rows` (features by name), not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// Each instance: one number per feature, in the order `features` of the model lists.
    #[schema(value_type = Option<Vec<Vec<f64>>>)]
    pub instances: Option<Vec<Vec<Value>>>,
    /// Each row: an object with a number for every feature of the model, by name.
    #[schema(value_type = Option<Vec<Object>>)]
    pub rows: Option<Vec<Map<String, Value>>>,
}

/// What a prediction request returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PredictResponse {
    /// The model.
    pub model_id: String,
    /// The version that scored.
    pub version: String,
    /// One object per instance, in order: each output column with its value.
    #[schema(value_type = Vec<Object>)]
    pub predictions: Vec<Map<String, Value>>,
}

/// The attached model service, or 503 when the engine has attached none.
pub(crate) fn service(state: &AppState) -> Result<Arc<dyn ModelService>, AppError> {
    state.models.get().cloned().ok_or_else(|| {
        AppError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ml_unavailable",
            "the model registry is not available: no pipeline with an [ml] table runs in this process",
        )
    })
}

/// Runs `work` on the blocking pool (registry reads, ONNX Runtime).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, AppError> {
    tokio::task::spawn_blocking(work).await.map_err(AppError::internal)
}

/// The models the caller's tenant may use: global ones and its own (read scope).
#[utoipa::path(get, path = "/api/v1/ml/models", tag = "ml",
    security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelList),
              (status = 503, description = "no model registry in this process (`ml_unavailable`)")))]
pub async fn list_models(State(state): State<AppState>, principal: Principal) -> Result<Json<ModelList>, AppError> {
    principal.require(Scope::Read)?;
    let service = service(&state)?;
    let tenant = principal.tenant.to_string();
    let models = blocking(move || service.models(&tenant)).await?;
    Ok(Json(ModelList { models }))
}

/// One model: versions, the active one, its ordered input `features` (what
/// an instance of `predict` holds) and outputs, and live statistics (read scope).
#[utoipa::path(get, path = "/api/v1/ml/models/{id}", tag = "ml",
    params(ModelPath), security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelView),
              (status = 404, description = "no such model for this tenant (`not_found`)"),
              (status = 503, description = "no model registry in this process (`ml_unavailable`)")))]
pub async fn get_model(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<ModelView>, AppError> {
    principal.require(Scope::Read)?;
    let service = service(&state)?;
    let tenant = principal.tenant.to_string();
    Ok(Json(blocking(move || service.model(&tenant, &id)).await??))
}

/// Makes a version of one of the tenant's own models the active one, for the
/// predict API and every running pipeline (admin scope). Global models are
/// activated by whoever runs pulse (their `ACTIVE` file).
#[utoipa::path(post, path = "/api/v1/ml/models/{id}/activate", tag = "ml",
    params(ModelPath), request_body = ActivateRequest, security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = ModelView, description = "the model, with its new active version"),
              (status = 403, description = "a global model, or no admin scope (`forbidden`)"),
              (status = 404, description = "no such model or version for this tenant (`not_found`)"),
              (status = 503, description = "no model registry in this process (`ml_unavailable`)")))]
pub async fn activate(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    JsonBody(request): JsonBody<ActivateRequest>,
) -> Result<Json<ModelView>, AppError> {
    principal.require(Scope::Admin)?;
    let service = service(&state)?;
    let tenant = principal.tenant.to_string();
    Ok(Json(
        blocking(move || service.activate(&tenant, &id, &request.version)).await??,
    ))
}

/// Scores instances with the model's active version (read scope). At most
/// 1024 instances; each needs one finite number per feature of the model.
#[utoipa::path(post, path = "/api/v1/ml/predict/{model_id}", tag = "ml",
    params(PredictPath), request_body = PredictRequest, security(("bearer" = []), ("api_key" = [])),
    responses((status = 200, body = PredictResponse),
              (status = 404, description = "no such model for this tenant (`not_found`)"),
              (status = 413, description = "more than 1024 instances (`payload_too_large`)"),
              (status = 422, description = "no instances, both `instances` and `rows`, or an instance \
                with the wrong number of features or a value that is not a finite number, named (`validation_failed`)"),
              (status = 503, description = "no model registry, or ONNX Runtime missing (`ml_unavailable`)")))]
pub async fn predict(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(model_id): PathParams<String>,
    JsonBody(request): JsonBody<PredictRequest>,
) -> Result<Json<PredictResponse>, AppError> {
    principal.require(Scope::Read)?;
    let service = service(&state)?;
    let count = request.instances.as_ref().map_or(0, Vec::len) + request.rows.as_ref().map_or(0, Vec::len);
    if count > MAX_INSTANCES {
        return Err(AppError::too_large(format!(
            "{count} instances; at most {MAX_INSTANCES} per request"
        )));
    }
    let tenant = principal.tenant.to_string();
    let response = blocking(move || {
        let features = service.model(&tenant, &model_id)?.features;
        let instances = instances_of(request, &features)?;
        service.predict(&tenant, &model_id, instances)
    })
    .await??;
    Ok(Json(response))
}

/// The request's instances as features in the model's order, or why not.
fn instances_of(request: PredictRequest, features: &[String]) -> Result<Vec<Vec<f32>>, MlError> {
    let number = |value: &Value, what: &dyn Fn() -> String| -> Result<f32, MlError> {
        let x = value.as_f64().map(|x| x as f32);
        match x {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(MlError::Invalid(format!("{} is {value}, not a finite number", what()))),
        }
    };
    match (request.instances, request.rows) {
        (Some(_), Some(_)) => Err(MlError::Invalid("give `instances` or `rows`, not both".into())),
        (None, None) => Err(MlError::Invalid(
            "give `instances` (arrays of features) or `rows` (objects)".into(),
        )),
        (Some(instances), None) if instances.is_empty() => Err(MlError::Invalid("`instances` is empty".into())),
        (None, Some(rows)) if rows.is_empty() => Err(MlError::Invalid("`rows` is empty".into())),
        (Some(instances), None) => instances
            .iter()
            .enumerate()
            .map(|(i, instance)| {
                if instance.len() != features.len() {
                    return Err(MlError::Invalid(format!(
                        "instance {i} has {} values; the model takes {} features: {}",
                        instance.len(),
                        features.len(),
                        features.join(", ")
                    )));
                }
                instance
                    .iter()
                    .zip(features)
                    .map(|(value, name)| number(value, &|| format!("feature `{name}` of instance {i}")))
                    .collect()
            })
            .collect(),
        (None, Some(rows)) => rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                if let Some(extra) = row.keys().find(|k| !features.contains(k)) {
                    return Err(MlError::Invalid(format!(
                        "row {i} has `{extra}`, which is no feature of the model ({})",
                        features.join(", ")
                    )));
                }
                features
                    .iter()
                    .map(|name| match row.get(name) {
                        Some(value) => number(value, &|| format!("feature `{name}` of row {i}")),
                        None => Err(MlError::Invalid(format!("row {i} lacks feature `{name}`"))),
                    })
                    .collect()
            })
            .collect(),
    }
}
