//! The model registry behind the gateway's `/api/v1/ml/*` routes:
//! [`RegistryModels`], the engine's [`ModelService`] over the ONNX model
//! registry of `[ml] models_dir`.
//!
//! It reads the registry on every request (models and versions appear and
//! change while pulse runs) and keeps one ONNX Runtime session per version it
//! has scored with. Calls arrive on the gateway's blocking pool.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pulse_gateway::ml::{ModelView, OutputView, PredictResponse, VersionStats, VersionView};
use pulse_gateway::{MlError, ModelService, TrainJob, TrainKind, TrainedVersion};
use pulse_operators::onnx::train::{self, ModelKind, TrainError};
use pulse_operators::onnx::{ModelRegistry, ModelSession, OnnxError, OutputKind, OutputValues, stats};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The `[ml]` table of a pipeline: where the model API finds models.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlConfig {
    /// The model registry's directory (default `models`).
    #[serde(default = "default_models_dir")]
    pub models_dir: PathBuf,
}

fn default_models_dir() -> PathBuf {
    PathBuf::from("models")
}

impl Default for MlConfig {
    fn default() -> Self {
        Self {
            models_dir: default_models_dir(),
        }
    }
}

/// The engine's model service over a registry directory.
pub struct RegistryModels {
    registry: ModelRegistry,
    /// One session per version directory scored with.
    sessions: Mutex<HashMap<PathBuf, Arc<Mutex<ModelSession>>>>,
}

impl RegistryModels {
    /// The service over the registry at `config.models_dir`.
    pub fn new(config: &MlConfig) -> Self {
        Self {
            registry: ModelRegistry::new(&config.models_dir),
            sessions: Mutex::default(),
        }
    }

    fn view(&self, tenant: &str, id: &str) -> Result<ModelView, MlError> {
        let versions = self.registry.versions(Some(tenant), id).map_err(not_found)?;
        let active = self.registry.active_version(Some(tenant), id).ok();
        let metadata = |version: &str| self.registry.version(Some(tenant), id, version).ok();
        let active_metadata = active.as_deref().and_then(metadata).map(|found| found.metadata);
        let stats = stats::version_stats(id)
            .into_iter()
            .map(|(version, s)| VersionStats {
                version,
                predictions: s.predictions,
                errors: s.errors,
                p50_us: s.p50_us,
                p99_us: s.p99_us,
            })
            .collect();
        Ok(ModelView {
            id: id.to_owned(),
            scope: if self.registry.is_tenant_model(tenant, id) {
                "tenant"
            } else {
                "global"
            }
            .to_owned(),
            versions: versions
                .iter()
                .map(|version| {
                    let found = metadata(version);
                    VersionView {
                        version: version.clone(),
                        created_at: found
                            .as_ref()
                            .map(|f| f.metadata.created_at.clone())
                            .unwrap_or_default(),
                        description: found.map(|f| f.metadata.description).unwrap_or_default(),
                    }
                })
                .collect(),
            active_version: active,
            features: active_metadata.as_ref().map(|m| m.features.clone()).unwrap_or_default(),
            outputs: active_metadata
                .map(|m| {
                    m.outputs
                        .into_iter()
                        .map(|o| OutputView {
                            column: o.column,
                            kind: kind_name(o.kind).to_owned(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            stats,
        })
    }

    fn session(&self, tenant: &str, id: &str, version: &str) -> Result<Arc<Mutex<ModelSession>>, MlError> {
        let found = self.registry.version(Some(tenant), id, version).map_err(not_found)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(session) = sessions.get(&found.dir) {
            return Ok(Arc::clone(session));
        }
        let session = ModelSession::load(id, version, &found.dir, found.metadata).map_err(unavailable)?;
        let session = Arc::new(Mutex::new(session));
        sessions.insert(found.dir, Arc::clone(&session));
        Ok(session)
    }
}

impl ModelService for RegistryModels {
    fn models(&self, tenant: &str) -> Vec<ModelView> {
        let ids = self.registry.models(Some(tenant));
        ids.iter().filter_map(|id| self.view(tenant, id).ok()).collect()
    }

    fn model(&self, tenant: &str, id: &str) -> Result<ModelView, MlError> {
        self.view(tenant, id)
    }

    fn activate(&self, tenant: &str, id: &str, version: &str) -> Result<ModelView, MlError> {
        self.registry.versions(Some(tenant), id).map_err(not_found)?;
        if !self.registry.is_tenant_model(tenant, id) {
            return Err(MlError::Forbidden(format!(
                "`{id}` is a global model: its active version is set by whoever runs pulse (its ACTIVE file)"
            )));
        }
        self.registry.activate(Some(tenant), id, version).map_err(not_found)?;
        self.view(tenant, id)
    }

    fn predict(&self, tenant: &str, id: &str, instances: Vec<Vec<f32>>) -> Result<PredictResponse, MlError> {
        let version = self.registry.active_version(Some(tenant), id).map_err(not_found)?;
        let session = self.session(tenant, id, &version)?;
        let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
        let rows = instances.len();
        let width = session.metadata.features.len();
        if let Some((i, instance)) = instances.iter().enumerate().find(|(_, x)| x.len() != width) {
            return Err(MlError::Invalid(format!(
                "instance {i} has {} values; version {version} takes {width}",
                instance.len()
            )));
        }
        let started = Instant::now();
        let result = session.predict(instances.into_iter().flatten().collect(), rows);
        let latency_us = started.elapsed().as_micros() as u64;
        stats::record_batch(id, &version, rows, result.is_err(), latency_us);
        let outputs = result.map_err(unavailable)?;
        let predictions = (0..rows)
            .map(|i| {
                let mut prediction = Map::new();
                for (spec, values) in session.metadata.outputs.iter().zip(&outputs) {
                    let value = match values {
                        OutputValues::Int(labels) => Value::from(labels[i]),
                        OutputValues::Float(_) => Value::from(values.as_f64(i)),
                    };
                    prediction.insert(spec.column.clone(), value);
                }
                prediction
            })
            .collect();
        Ok(PredictResponse {
            model_id: id.to_owned(),
            version,
            predictions,
        })
    }

    fn train(&self, tenant: &str, job: TrainJob) -> Result<TrainedVersion, MlError> {
        self.train_version(tenant, job)
    }
}

impl RegistryModels {
    /// Fits a train job and publishes it as the tenant's model (see [`ModelService::train`]).
    fn train_version(&self, tenant: &str, job: TrainJob) -> Result<TrainedVersion, MlError> {
        let kind = match job.kind {
            TrainKind::LinearRegression => ModelKind::LinearRegression {
                target: job.target.clone().unwrap_or_default(),
                ridge: job.ridge,
            },
            TrainKind::IsolationForest => ModelKind::IsolationForest {
                trees: job.trees,
                sample_size: job.sample_size,
                seed: job.seed,
            },
        };
        let created_at = pulse_gateway::timestamp::rfc3339(pulse_gateway::store::now_millis());
        let trained = train::train(
            &kind,
            &job.features,
            &job.rows,
            &job.targets,
            &job.description,
            &created_at,
        )
        .map_err(|error| match error {
            TrainError::TooFewRows { .. } | TrainError::Settings(_) | TrainError::Singular(_) => {
                MlError::Invalid(error.to_string())
            }
        })?;
        let id = job.model_id.as_str();
        // Loaded once before it appears: a version the runtime refuses is never published.
        let check = |dir: &std::path::Path, version: &str| {
            ModelSession::load(id, version, dir, trained.metadata.clone()).map(drop)
        };
        let version = self
            .registry
            .publish(Some(tenant), id, &trained.onnx, &trained.metadata, check)
            .map_err(|error| match error {
                OnnxError::Registry(message) if message.contains("is not a name") => MlError::Invalid(message),
                other => unavailable(other),
            })?;
        tracing::info!(tenant, model = id, %version, rows = job.rows.len(), "trained and registered a model version");
        Ok(TrainedVersion {
            version,
            fit: trained.fit,
            model: self.view(tenant, id)?,
        })
    }
}

fn kind_name(kind: OutputKind) -> &'static str {
    match kind {
        OutputKind::Regression => "regression",
        OutputKind::Probability => "probability",
        OutputKind::Score => "score",
        OutputKind::Label => "label",
    }
}

/// Registry errors as the API answers them: what is missing is a 404.
fn not_found(error: OnnxError) -> MlError {
    match error {
        OnnxError::UnknownModel { model, .. } => MlError::NotFound(format!("no model `{model}`")),
        OnnxError::Registry(message) => MlError::NotFound(message),
        other => unavailable(other),
    }
}

fn unavailable(error: OnnxError) -> MlError {
    MlError::Unavailable(error.to_string())
}
