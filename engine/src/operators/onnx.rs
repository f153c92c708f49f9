//! `type = "onnx"`: rows of another operator (e.g. a window's) scored by an
//! ONNX model of the model registry.
//!
//! Its rows are the input row's columns, then the model's output columns (as
//! its `model.toml` names them; an ensemble has one, `prediction`), then
//! `model`, `version` (which made the prediction: with A/B variants, the
//! row's variant) and `latency_us` (the batch's time in ONNX Runtime). Rows
//! missing a feature go to `NAME.dead_letter` with the feature's name, or
//! take declared defaults (`missing = "impute"`). A row whose `tenant` has its
//! own model of the operator's id (`tenants/<tenant>/<id>/` in the registry,
//! e.g. trained with `POST /api/v1/ml/train`) is scored by that model's
//! active version — followed as it changes — when it takes the same features
//! and gives outputs of the same kinds; other rows by the global model
//! (which must exist: it sets the output columns). Only a single model
//! without `variants` does this; A/B variants and ensembles use global models. Validation loads every model
//! it names, so a missing ONNX Runtime (`ORT_DYLIB_PATH`), model, version or
//! feature is reported before anything runs. The operator is
//! `pulse_operators::onnx`'s [`OnnxExt`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use pulse_core::dead_letter::Position;
use pulse_core::row::{Column, ColumnType, Row, RowSchema, Value};
use pulse_core::{DeadLetter, DurationSpec, Projection};
use pulse_operators::onnx::{
    Combine, EnsembleMember, FeatureReader, MissingPolicy, ModelPlan, ModelRegistry, ModelSession, OnnxExt,
    OnnxStreamConfig, OutputKind, Variant, runtime,
};
use serde::Deserialize;
use timely::dataflow::operators::vec::Map;

use super::{BuildContext, InputShape, Operator, OperatorStreams};
use crate::config::EngineConfig;
use crate::config::validate::{Problem, StreamType, problem};

/// The settings of an onnx operator, as written in a pipeline file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnnxOperator {
    /// Operators whose rows are scored (all with the same columns).
    pub inputs: Vec<String>,
    /// The model's id (or `ensemble`).
    #[serde(default)]
    pub model: Option<String>,
    /// The model registry (default: `[ml] models_dir`, which defaults to
    /// `models` under the gateway's `data_dir`).
    #[serde(default)]
    pub models_dir: Option<PathBuf>,
    /// Row columns fed to the model, in its input order (default: the
    /// features its `model.toml` lists).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Rows missing a feature: `dead_letter` (default) or `impute`.
    #[serde(default)]
    pub missing: MissingSetting,
    /// With `missing = "impute"`: the value of each feature when missing.
    #[serde(default)]
    pub defaults: BTreeMap<String, f64>,
    /// Rows per ONNX Runtime call at most (default 256).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// How long rows may wait for more to fill a batch (default 0s: score
    /// what arrives together).
    #[serde(default)]
    pub max_delay: DurationSpec,
    /// How often the registry is checked for a new active version (default 1s; "0s": never).
    #[serde(default = "default_reload_interval")]
    pub reload_interval: DurationSpec,
    /// Columns whose values choose a row's A/B variant (default: the input's key columns).
    #[serde(default)]
    pub key: Option<Vec<String>>,
    /// A/B variants of `model`: `[{version = "3", weight = 0.9}, …]`.
    #[serde(default)]
    pub variants: Vec<VariantSetting>,
    /// Several models on the same rows, combined (instead of `model`).
    #[serde(default)]
    pub ensemble: Option<EnsembleSetting>,
}

/// `missing`: what becomes of a row missing a feature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingSetting {
    /// To `NAME.dead_letter`, with the feature's name.
    #[default]
    DeadLetter,
    /// Scored with the feature's value from `defaults`.
    Impute,
}

/// One A/B variant.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariantSetting {
    /// The model version.
    pub version: String,
    /// Its share of keys (weight / total).
    pub weight: f64,
}

/// An ensemble: members and how they combine.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleSetting {
    /// `mean`, `weighted_mean` or `majority_vote`.
    pub combine: CombineSetting,
    /// The models (or versions) combined.
    pub members: Vec<MemberSetting>,
}

/// How an ensemble combines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CombineSetting {
    /// The mean of the members' first outputs.
    Mean,
    /// Their mean weighted by `weight`.
    WeightedMean,
    /// The label with the most weighted votes (members with a label output).
    MajorityVote,
}

/// One ensemble member.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSetting {
    /// The model's id.
    pub model: String,
    /// A version (default: the active one, followed as it changes).
    #[serde(default)]
    pub version: Option<String>,
    /// Its weight (default 1).
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_max_batch() -> usize {
    256
}
fn default_reload_interval() -> DurationSpec {
    DurationSpec::from_secs(1)
}
fn default_weight() -> f64 {
    1.0
}

/// The columns an onnx operator adds after its input's.
const ADDED: [&str; 3] = ["model", "version", "latency_us"];

impl OnnxOperator {
    /// The registry it reads (set from `[ml]` when the pipeline is read).
    fn registry_dir(&self) -> PathBuf {
        self.models_dir
            .clone()
            .unwrap_or_else(|| crate::ml_service::default_models_dir(None))
    }

    /// What the operator runs, as the dataflow operator takes it.
    fn plan(&self) -> ModelPlan {
        match &self.ensemble {
            Some(ensemble) => ModelPlan::Ensemble {
                members: ensemble
                    .members
                    .iter()
                    .map(|m| EnsembleMember {
                        model: m.model.clone(),
                        version: m.version.clone(),
                        weight: m.weight,
                    })
                    .collect(),
                combine: match ensemble.combine {
                    CombineSetting::Mean => Combine::Mean,
                    CombineSetting::WeightedMean => Combine::WeightedMean,
                    CombineSetting::MajorityVote => Combine::MajorityVote,
                },
            },
            None => ModelPlan::Single {
                model: self.model.clone().unwrap_or_default(),
                variants: self
                    .variants
                    .iter()
                    .map(|v| Variant {
                        version: v.version.clone(),
                        weight: v.weight,
                    })
                    .collect(),
            },
        }
    }

    /// The (model, version) pairs the operator starts with.
    fn versions(&self, registry: &ModelRegistry) -> Vec<(String, Result<String, String>)> {
        let active = |model: &str| registry.active_version(None, model).map_err(|e| e.to_string());
        match self.plan() {
            ModelPlan::Single { model, variants } if variants.is_empty() => vec![(model.clone(), active(&model))],
            ModelPlan::Single { model, variants } => {
                variants.into_iter().map(|v| (model.clone(), Ok(v.version))).collect()
            }
            ModelPlan::Ensemble { members, .. } => members
                .into_iter()
                .map(|m| {
                    let version = m.version.map_or_else(|| active(&m.model), Ok);
                    (m.model, version)
                })
                .collect(),
        }
    }

    fn check_settings(&self, name: &str, problems: &mut Vec<Problem>) {
        match (&self.model, &self.ensemble) {
            (None, None) => problems.push(problem(
                &["operators", name],
                format!("`{name}` names no model"),
                "add model = \"<id>\" (a directory of the model registry), or an `ensemble`".to_owned(),
            )),
            (Some(_), Some(_)) => problems.push(problem(
                &["operators", name, "ensemble"],
                "`model` and `ensemble` are both given".into(),
                "keep one: `model` for one model (with optional `variants`), `ensemble` for several".to_owned(),
            )),
            _ => {}
        }
        if self.ensemble.is_some() && !self.variants.is_empty() {
            problems.push(problem(
                &["operators", name, "variants"],
                "`variants` split one model; an ensemble runs every member on every row".into(),
                "remove `variants`, or use `model` instead of `ensemble`".to_owned(),
            ));
        }
        if let Some(ensemble) = &self.ensemble
            && ensemble.members.is_empty()
        {
            problems.push(problem(
                &["operators", name, "ensemble", "members"],
                "an ensemble needs members".into(),
                "list them, e.g. members = [{ model = \"linear\" }, { model = \"mlp\" }]".to_owned(),
            ));
        }
        let weights = self.variants.iter().map(|v| ("variants", v.weight)).chain(
            self.ensemble
                .iter()
                .flat_map(|e| e.members.iter().map(|m| ("ensemble", m.weight))),
        );
        for (i, (table, weight)) in weights.enumerate() {
            if !(weight.is_finite() && weight > 0.0) {
                problems.push(problem(
                    &["operators", name, table],
                    format!("weight {weight} (entry {i}) is not a positive number"),
                    "give every weight a positive value".to_owned(),
                ));
            }
        }
        if self.max_batch == 0 || self.max_batch > 1 << 20 {
            problems.push(problem(
                &["operators", name, "max_batch"],
                format!("max_batch = {} is outside 1..=1048576", self.max_batch),
                "use e.g. 256".to_owned(),
            ));
        }
    }

    /// The input rows' schema, when every input is rows of one schema.
    fn input_schema<'a>(
        &self,
        name: &str,
        inputs: &'a [InputShape<'_>],
        problems: &mut Vec<Problem>,
    ) -> Option<&'a Arc<RowSchema>> {
        let mut schema: Option<&Arc<RowSchema>> = None;
        let mut known = true;
        for input in inputs {
            let path = ["operators", name, "inputs", &input.position.to_string()];
            match input.stream {
                StreamType::Rows(rows) => match schema {
                    Some(first) if first != rows => problems.push(problem(
                        &path,
                        format!("`{}` has other columns than the first input", input.name),
                        "read operators whose rows have the same columns".to_owned(),
                    )),
                    _ => schema = schema.or(Some(rows)),
                },
                StreamType::Unknown => known = false,
                other => problems.push(problem(
                    &path,
                    format!(
                        "`{}` produces {}, but an onnx operator scores rows",
                        input.name,
                        other.describe()
                    ),
                    "read an operator, e.g. a window with the aggregates the model takes".to_owned(),
                )),
            }
        }
        schema.filter(|_| known)
    }
}

impl Operator for OnnxOperator {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn check(
        &self,
        name: &str,
        _engine: &EngineConfig,
        inputs: &[InputShape<'_>],
        problems: &mut Vec<Problem>,
    ) -> Option<RowSchema> {
        let before = problems.len();
        self.check_settings(name, problems);
        let schema = self.input_schema(name, inputs, problems);
        if problems.len() > before {
            return None;
        }
        if let Err(error) = runtime::environment() {
            problems.push(problem(
                &["operators", name, "type"],
                error.to_string(),
                "or remove the onnx operator (nothing else needs ONNX Runtime)".to_owned(),
            ));
            return None;
        }
        let registry = ModelRegistry::new(self.registry_dir());
        let mut sessions: Vec<ModelSession> = Vec::new();
        for (model, version) in self.versions(&registry) {
            let loaded = version.and_then(|version| {
                let found = registry.version(None, &model, &version).map_err(|e| e.to_string())?;
                ModelSession::load(&model, &version, &found.dir, found.metadata).map_err(|e| e.to_string())
            });
            match loaded {
                Ok(session) => sessions.push(session),
                Err(message) => problems.push(problem(
                    &[
                        "operators",
                        name,
                        if self.ensemble.is_some() { "ensemble" } else { "model" },
                    ],
                    message,
                    format!(
                        "models are read from `{}` (set `models_dir`): <id>/<version>/model.onnx and model.toml",
                        self.registry_dir().display()
                    ),
                )),
            }
        }
        let first = sessions.first()?;
        let features = self.features.clone().unwrap_or_else(|| first.metadata.features.clone());
        if let Some(key) = &self.key
            && let Some(schema) = schema
        {
            for (i, column) in key.iter().enumerate() {
                if schema.column(column).is_none() {
                    problems.push(problem(
                        &["operators", name, "key", &i.to_string()],
                        format!("the input rows have no column `{column}`"),
                        "name columns of the input rows (they choose a row's A/B variant)".to_owned(),
                    ));
                }
            }
        }
        for session in &sessions {
            if session.metadata.features.len() != features.len() {
                problems.push(problem(
                    &["operators", name, "features"],
                    format!(
                        "model `{}` version `{}` takes {} features ({}), the operator gives {} ({})",
                        session.model,
                        session.version,
                        session.metadata.features.len(),
                        session.metadata.features.join(", "),
                        features.len(),
                        features.join(", ")
                    ),
                    "list as many `features` as the model takes, in its order".to_owned(),
                ));
            }
        }
        if self
            .ensemble
            .as_ref()
            .is_some_and(|e| e.combine == CombineSetting::MajorityVote)
            && let Some(session) = sessions
                .iter()
                .find(|s| s.metadata.outputs[0].kind != OutputKind::Label)
        {
            problems.push(problem(
                &["operators", name, "ensemble", "combine"],
                format!(
                    "model `{}`'s first output is not a label; a majority vote counts labels",
                    session.model
                ),
                "use `mean` or `weighted_mean`, or members whose first output is a label".to_owned(),
            ));
        }
        let missing = self.missing_policy(name, &features, problems);
        let schema = schema?;
        if let Some(Err(error)) = missing.map(|missing| FeatureReader::new(schema, &features, missing)) {
            problems.push(problem(
                &["operators", name, "features"],
                error.to_string(),
                "name numeric columns of the input rows (or `column=value` for a one-hot key)".to_owned(),
            ));
        }
        let output = self.output_schema(schema, first);
        if let Err(error) = &output {
            problems.push(problem(
                &["operators", name, "inputs"],
                format!("{error}: an input column has the name of a prediction column"),
                format!(
                    "the onnx operator adds {} and {}",
                    self.added_columns(first)
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    ADDED.join(", ")
                ),
            ));
        }
        (problems.len() == before).then_some(output.ok()?)
    }

    fn projection(&self) -> Projection {
        Projection::default()
    }

    fn refuses_input(&self) -> bool {
        true
    }

    fn build<'scope>(&self, mut context: BuildContext<'_, 'scope>) -> OperatorStreams<'scope> {
        let rows = context.take_rows("onnx operators");
        let schema: Arc<RowSchema> = context.output;
        let registry = ModelRegistry::new(self.registry_dir());
        let features = self.resolve_features(&registry).unwrap_or_default();
        // Checked by validation; were the registry changed since, every row is refused with why.
        let mut ignored = Vec::new();
        let config = OnnxStreamConfig {
            registry,
            plan: self.plan(),
            missing: self
                .missing_policy(context.name, &features, &mut ignored)
                .unwrap_or(MissingPolicy::DeadLetter),
            features,
            // The added columns are no keys: the output's keys are the input's.
            key: self
                .key
                .clone()
                .unwrap_or_else(|| schema.keys().map(|c| c.name.clone()).collect()),
            max_batch: self.max_batch,
            max_delay_ms: self.max_delay.as_millis(),
            reload_interval_ms: self.reload_interval.as_millis(),
        };
        let (scored, refused) = rows.score_onnx(context.name, &config);
        let rows = scored.map(move |prediction| {
            let mut values: Vec<Value> = prediction.row.values().to_vec();
            values.extend(prediction.outputs);
            values.push(Value::from(&*prediction.model));
            values.push(Value::from(&*prediction.version));
            values.push(Value::Int(i64::try_from(prediction.latency_us).unwrap_or(i64::MAX)));
            Row::new(Arc::clone(&schema), values)
        });
        let component = context.name.to_owned();
        let dead_letters = refused.map(move |refused| DeadLetter {
            component: component.clone(),
            position: Position::Point {
                ts: row_time(&refused.row),
            },
            raw: serde_json::to_string(&refused.row).unwrap_or_default(),
            reason: refused.reason,
        });
        OperatorStreams {
            rows,
            dead_letters: Some(dead_letters),
        }
    }
}

impl OnnxOperator {
    /// The prediction columns of `first` (the model, or an ensemble's first member).
    fn added_columns(&self, first: &ModelSession) -> Vec<Column> {
        match &self.ensemble {
            Some(ensemble) if ensemble.combine == CombineSetting::MajorityVote => {
                vec![Column::new("prediction", ColumnType::Int)]
            }
            Some(_) => vec![Column::new("prediction", ColumnType::Float)],
            None => first
                .metadata
                .outputs
                .iter()
                .map(|output| {
                    let ty = if output.kind == OutputKind::Label {
                        ColumnType::Int
                    } else {
                        ColumnType::Float
                    };
                    Column::new(&output.column, ty)
                })
                .collect(),
        }
    }

    /// The input's columns, the prediction columns, then `model`, `version`, `latency_us`.
    fn output_schema(
        &self,
        input: &RowSchema,
        first: &ModelSession,
    ) -> Result<RowSchema, pulse_core::row::SchemaError> {
        let mut columns = input.columns().to_vec();
        columns.extend(self.added_columns(first));
        columns.extend([
            Column::new("model", ColumnType::Text),
            Column::new("version", ColumnType::Text),
            Column::new("latency_us", ColumnType::Int),
        ]);
        RowSchema::new(columns)
    }

    /// The features rows give: `features`, else those of the first model's
    /// `model.toml` (its active or pinned version).
    fn resolve_features(&self, registry: &ModelRegistry) -> Option<Vec<String>> {
        if let Some(features) = &self.features {
            return Some(features.clone());
        }
        let (model, version) = self.versions(registry).into_iter().next()?;
        Some(registry.version(None, &model, &version.ok()?).ok()?.metadata.features)
    }

    /// The missing-feature policy, with a problem for each feature `impute` lacks a default for.
    fn missing_policy(&self, name: &str, features: &[String], problems: &mut Vec<Problem>) -> Option<MissingPolicy> {
        match self.missing {
            MissingSetting::DeadLetter => {
                if !self.defaults.is_empty() {
                    problems.push(problem(
                        &["operators", name, "defaults"],
                        "`defaults` are used only with missing = \"impute\"".into(),
                        "add missing = \"impute\", or remove `defaults`".to_owned(),
                    ));
                }
                Some(MissingPolicy::DeadLetter)
            }
            MissingSetting::Impute => {
                let mut values = Vec::with_capacity(features.len());
                for feature in features {
                    match self.defaults.get(feature) {
                        Some(value) if value.is_finite() => values.push(*value as f32),
                        _ => problems.push(problem(
                            &["operators", name, "defaults"],
                            format!("feature `{feature}` has no finite default to impute"),
                            format!("add it, e.g. defaults = {{ {feature} = 0.0 }}"),
                        )),
                    }
                }
                (values.len() == features.len()).then_some(MissingPolicy::Impute(values))
            }
        }
    }
}

/// The row's event time for its dead letter: `window_end`, `ts`, else its first time column.
fn row_time(row: &Row) -> u64 {
    ["window_end", "ts"]
        .iter()
        .find_map(|name| row.get(name).and_then(Value::as_time))
        .or_else(|| row.values().iter().find_map(Value::as_time))
        .unwrap_or(0)
}
