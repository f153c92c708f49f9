//! The model registry behind the gateway's `/api/v1/ml/*` routes:
//! [`RegistryModels`], the engine's [`ModelService`] over the ONNX model
//! registry of `[ml] models_dir`.
//!
//! It reads the registry on every request (models and versions appear and
//! change while pulse runs) and keeps one ONNX Runtime session per version it
//! has scored with. Calls arrive on the gateway's blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pulse_gateway::ml::{ModelView, OutputView, PredictResponse, VersionStats, VersionView};
use pulse_gateway::{MlError, ModelService, TrainJob, TrainKind, TrainedVersion};
use pulse_operators::onnx::train::{self, ModelKind, TrainError};
use pulse_operators::onnx::{ModelRegistry, ModelSession, OnnxError, OutputKind, OutputValues, stats};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The `[ml]` table of a pipeline: where the model API finds models.
///
/// ```toml
/// [ml]
/// models_dir = "/var/lib/pulse/models"   # default: <[gateway] data_dir>/models
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlConfig {
    /// The model registry's directory (default `models` under the gateway's
    /// `data_dir`, where the gateway keeps its other state: `data/gateway/models`
    /// with the default `data_dir`). An `onnx` operator without a
    /// `models_dir` of its own reads this one.
    #[serde(default)]
    pub models_dir: Option<PathBuf>,
}

/// The registry directory when a pipeline names none: `models` under the
/// gateway's data directory (its default's without a `[gateway]` table).
pub fn default_models_dir(gateway: Option<&pulse_gateway::GatewayConfig>) -> PathBuf {
    gateway
        .map_or_else(
            || pulse_gateway::GatewayConfig::default().data_dir,
            |g| g.data_dir.clone(),
        )
        .join("models")
}

impl MlConfig {
    /// The registry directory (see [`MlConfig::models_dir`]).
    pub fn registry_dir(&self) -> PathBuf {
        self.models_dir.clone().unwrap_or_else(|| default_models_dir(None))
    }
}

/// Fills in the registry directories a pipeline leaves out: `[ml] models_dir`
/// from the gateway's `data_dir`, and each `onnx` operator's from `[ml]`'s.
pub fn resolve_models_dirs(config: &mut crate::config::PipelineConfig) {
    let ml_dir = config
        .ml
        .as_ref()
        .and_then(|ml| ml.models_dir.clone())
        .unwrap_or_else(|| default_models_dir(config.gateway.as_ref()));
    if let Some(ml) = &mut config.ml {
        ml.models_dir.get_or_insert_with(|| ml_dir.clone());
    }
    for operator in config.operators.values_mut() {
        if let crate::config::OperatorConfig::Onnx(onnx) = operator {
            onnx.models_dir.get_or_insert_with(|| ml_dir.clone());
        }
    }
}

/// Whether a registry directory can be one: absent (it is made when a
/// model is trained) or a directory.
pub fn check_models_dir(dir: &Path) -> Result<(), String> {
    if dir.exists() && !dir.is_dir() {
        return Err(format!("models_dir `{}` is not a directory", dir.display()));
    }
    Ok(())
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
            registry: ModelRegistry::new(config.registry_dir()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OperatorConfig, Pipeline, PipelineConfig};

    fn resolved(text: &str) -> PipelineConfig {
        let mut config: PipelineConfig = toml::from_str(text).unwrap();
        resolve_models_dirs(&mut config);
        config
    }

    fn onnx_dir(config: &PipelineConfig) -> Option<PathBuf> {
        match &config.operators["scored"] {
            OperatorConfig::Onnx(onnx) => onnx.models_dir.clone(),
            _ => None,
        }
    }

    const ONNX: &str = "[operators.scored]\ntype = \"onnx\"\ninputs = [\"w\"]\nmodel = \"m\"\n";

    #[test]
    fn models_live_under_the_gateway_data_dir_unless_ml_or_the_operator_says_otherwise() {
        let config = resolved(&format!("{ONNX}[gateway]\ndata_dir = \"/srv/pulse\"\n[ml]\n"));
        assert_eq!(config.ml.unwrap().registry_dir(), Path::new("/srv/pulse/models"));
        assert_eq!(onnx_dir(&resolved(ONNX)), Some(PathBuf::from("data/gateway/models")));
        let config = resolved(&format!("{ONNX}[ml]\nmodels_dir = \"/models\"\n"));
        assert_eq!(
            onnx_dir(&config),
            Some(PathBuf::from("/models")),
            "the operator reads [ml]"
        );
        let own = ONNX.replace("model = \"m\"", "model = \"m\"\nmodels_dir = \"/own\"");
        let config = resolved(&format!("{own}[ml]\nmodels_dir = \"/models\"\n"));
        assert_eq!(onnx_dir(&config), Some(PathBuf::from("/own")), "its own wins");
    }

    #[test]
    fn a_models_dir_that_is_a_file_is_refused_by_name() {
        let file = std::env::temp_dir().join(format!("pulse-ml-models-file-{}", std::process::id()));
        std::fs::write(&file, "not a directory").unwrap();
        let text = format!(
            "[sources.s]\ntype = \"generator\"\n[operators.w]\ntype = \"window\"\ninputs = [\"s\"]\n\
             window = {{ tumbling = \"1s\" }}\nkey = [\"tenant\"]\naggregates = [\"count\"]\n\
             [sinks.out]\ntype = \"stdout\"\ninputs = [\"w\"]\n[ml]\nmodels_dir = \"{}\"\n",
            file.display()
        );
        let error = Pipeline::parse(Path::new("p.toml"), &text, &|_| None)
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&file).unwrap();
        assert!(
            error.contains("is not a directory") && error.contains("models_dir"),
            "{error}"
        );
    }
}
