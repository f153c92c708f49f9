//! ONNX inference on rows: a model registry on disk, one ONNX Runtime session
//! per model version per worker, rows scored in batches ([`OnnxExt`]).
//!
//! - [`registry`]: `models/<id>/<version>/{model.onnx, model.toml}`, the
//!   active version (an `ACTIVE` file or the newest), tenant-scoped models.
//! - [`runtime`]: ONNX Runtime loaded from `ORT_DYLIB_PATH` at run time, and
//!   [`ModelSession`], one loaded version.
//! - [`features`]: a row's features as the model's input.
//! - [`scorer`]: batches, A/B variants by key hash, ensembles, hot reload;
//!   a row of a tenant with its own model of the operator's id is scored by
//!   that model (`tenant_models`).
//! - [`stream`]: the dataflow operator.
//! - [`stats`]: live statistics per model version, for the model API.
//! - [`train`]: linear regression and Isolation Forest trained in Rust, and
//!   [`export`]: them written as ONNX, so the registry needs no Python.

pub mod export;
pub mod features;
pub mod registry;
pub mod runtime;
pub mod scorer;
pub mod stats;
pub mod stream;
mod tenant_models;
pub mod train;

use std::path::PathBuf;

pub use features::{FeatureReader, MissingPolicy};
pub use registry::{ModelMetadata, ModelRegistry, ModelVersion, OutputKind, OutputSpec};
pub use runtime::{ModelSession, OutputValues};
pub use scorer::{BatchScorer, Outcome, Prediction, RefusedRow};
pub use stream::OnnxExt;

/// What can go wrong with models and their runtime.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// ONNX Runtime is missing, too old or did not start (the message says
    /// how to install it).
    #[error("{0}")]
    Runtime(String),
    /// No model of that id.
    #[error("no model `{model}` in the registry {root}")]
    UnknownModel {
        /// The id asked for.
        model: String,
        /// The registry's root directory.
        root: PathBuf,
    },
    /// The registry's files are not as they should be.
    #[error("model registry: {0}")]
    Registry(String),
    /// A model version does not load or does not match its metadata.
    #[error("model `{model}` version `{version}`: {message}")]
    Model {
        /// The model.
        model: String,
        /// The version.
        version: String,
        /// What is wrong.
        message: String,
    },
    /// Features that rows cannot give.
    #[error("{0}")]
    Feature(String),
    /// ONNX Runtime refused a batch.
    #[error("inference with model `{model}` version `{version}` failed: {message}")]
    Inference {
        /// The model.
        model: String,
        /// The version.
        version: String,
        /// ONNX Runtime's error.
        message: String,
    },
}

/// Which model(s) an operator runs.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelPlan {
    /// One model: its active version (followed as it changes), or A/B
    /// `variants` pinned to versions, chosen per row by key hash.
    Single {
        /// The model's id.
        model: String,
        /// The variants (none: the active version only).
        variants: Vec<Variant>,
    },
    /// Several models or versions on the same rows, their first outputs combined.
    Ensemble {
        /// The members.
        members: Vec<EnsembleMember>,
        /// How their predictions combine.
        combine: Combine,
    },
}

/// One A/B variant: a version and its share of keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// The version.
    pub version: String,
    /// Its weight (shares are weight / total).
    pub weight: f64,
}

/// One member of an ensemble.
#[derive(Clone, Debug, PartialEq)]
pub struct EnsembleMember {
    /// The model's id.
    pub model: String,
    /// A pinned version (none: the active one, followed as it changes).
    pub version: Option<String>,
    /// Its weight in `weighted_mean` and `majority_vote`.
    pub weight: f64,
}

/// How an ensemble combines its members' predictions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Combine {
    /// The mean.
    Mean,
    /// The mean weighted by member weight.
    WeightedMean,
    /// The label with the most (weighted) votes; ties go to the smallest.
    MajorityVote,
}

/// What an `onnx` operator runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct OnnxStreamConfig {
    /// Where models are.
    pub registry: ModelRegistry,
    /// Which model(s).
    pub plan: ModelPlan,
    /// The row features, in the models' input order.
    pub features: Vec<String>,
    /// What to do with rows missing a feature.
    pub missing: MissingPolicy,
    /// Columns whose values choose a row's A/B variant.
    pub key: Vec<String>,
    /// Rows per ONNX Runtime call at most.
    pub max_batch: usize,
    /// How long (wall clock, ms) rows may wait for more to fill a batch;
    /// 0 scores what one activation brought.
    pub max_delay_ms: u64,
    /// How often the registry is polled for new active versions (ms; 0: never).
    pub reload_interval_ms: u64,
}
