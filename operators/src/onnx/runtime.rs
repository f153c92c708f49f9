//! ONNX Runtime, loaded once per process from `ORT_DYLIB_PATH`, and
//! [`ModelSession`]: one loaded model version that scores batches of feature
//! rows.
//!
//! The `ort` crate is built with `load-dynamic`: nothing is linked or
//! downloaded at build time, so a pulse without ONNX Runtime installed runs
//! every pipeline that has no `onnx` operator. The library is looked up only
//! when a model is first needed, and a missing or too old one is a
//! [`OnnxError::Runtime`] naming `ORT_DYLIB_PATH` and how to install it, never
//! a panic.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::value::{Tensor, ValueType};

use super::OnnxError;
use super::registry::{ModelMetadata, OutputKind};

/// The ONNX Runtime release pulse is built against (`ort`'s `api-31`): older
/// libraries are refused.
pub const REQUIRED_VERSION: &str = "1.31";

/// How to install ONNX Runtime, for error messages.
pub const INSTALL_HINT: &str = "install it with `pip install onnxruntime==1.31.1` (or run scripts/test.sh, which does) \
     and set ORT_DYLIB_PATH to the wheel's onnxruntime/capi/libonnxruntime.so.1.31.1";

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The process's ONNX Runtime environment, loaded on first use from the file
/// `ORT_DYLIB_PATH` names.
///
/// # Errors
/// [`OnnxError::Runtime`] when the variable is unset, the file does not load,
/// or the library is older than [`REQUIRED_VERSION`]; the same error on every
/// later call.
pub fn environment() -> Result<&'static Environment, OnnxError> {
    ENVIRONMENT
        .get_or_init(load_environment)
        .as_ref()
        .map_err(|message| OnnxError::Runtime(message.clone()))
}

fn load_environment() -> Result<Environment, String> {
    let path = match std::env::var_os("ORT_DYLIB_PATH") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            return Err(format!(
                "ONNX Runtime is not installed: ORT_DYLIB_PATH is not set; {INSTALL_HINT}"
            ));
        }
    };
    if !path.is_file() {
        return Err(format!(
            "ONNX Runtime is not at ORT_DYLIB_PATH={}: no such file; {INSTALL_HINT}",
            path.display()
        ));
    }
    let builder = ort::init_from(&path).map_err(|error| {
        format!(
            "ONNX Runtime at ORT_DYLIB_PATH={} cannot be used ({error}); pulse needs {REQUIRED_VERSION} or newer: {INSTALL_HINT}",
            path.display()
        )
    })?;
    builder.with_name("pulse").build().map_err(|error| {
        format!(
            "ONNX Runtime at ORT_DYLIB_PATH={} did not start: {error}",
            path.display()
        )
    })
}

/// The outputs of one batch: per declared output of the model, one value per
/// row (labels as integers, everything else as floats).
#[derive(Clone, Debug, PartialEq)]
pub enum OutputValues {
    /// A float output (regression, probability, score).
    Float(Vec<f64>),
    /// An integer output (a class label).
    Int(Vec<i64>),
}

impl OutputValues {
    /// The value of row `i` as a float.
    pub fn as_f64(&self, i: usize) -> f64 {
        match self {
            OutputValues::Float(values) => values[i],
            OutputValues::Int(values) => values[i] as f64,
        }
    }
}

/// One model version loaded into an ONNX Runtime session.
///
/// `Session::run` takes `&mut self`: a session is owned by one worker.
pub struct ModelSession {
    /// The model's id.
    pub model: String,
    /// The version loaded.
    pub version: String,
    /// What the version's `model.toml` says.
    pub metadata: ModelMetadata,
    session: Session,
}

impl std::fmt::Debug for ModelSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSession")
            .field("model", &self.model)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl ModelSession {
    /// Loads `model.onnx` of `dir` with its metadata, and checks that the
    /// model has the input and outputs the metadata names.
    ///
    /// # Errors
    /// [`OnnxError::Runtime`] without ONNX Runtime; [`OnnxError::Model`] when
    /// the file does not load or does not match its metadata.
    pub fn load(model: &str, version: &str, dir: &Path, metadata: ModelMetadata) -> Result<Self, OnnxError> {
        let environment = environment()?;
        let file = dir.join("model.onnx");
        let bad = |message: String| OnnxError::Model {
            model: model.to_owned(),
            version: version.to_owned(),
            message,
        };
        // One thread per session: sessions run on timely workers, one per core.
        let load_error = |error: &dyn std::fmt::Display| bad(format!("{} does not load: {error}", file.display()));
        let builder = Session::builder(environment).map_err(|e| load_error(&e))?;
        let mut builder = builder.with_intra_threads(1).map_err(|e| load_error(&e))?;
        let session = builder.commit_from_file(&file).map_err(|e| load_error(&e))?;
        let inputs: Vec<&str> = session.inputs().iter().map(|input| input.name()).collect();
        if !inputs.contains(&metadata.input.as_str()) {
            return Err(bad(format!(
                "model.toml names input `{}`, the model has {}",
                metadata.input,
                inputs.join(", ")
            )));
        }
        for output in &metadata.outputs {
            let Some(outlet) = session.outputs().iter().find(|o| o.name() == output.name) else {
                let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
                return Err(bad(format!(
                    "model.toml names output `{}`, the model has {}",
                    output.name,
                    names.join(", ")
                )));
            };
            if !matches!(outlet.dtype(), ValueType::Tensor { .. }) {
                return Err(bad(format!(
                    "output `{}` is not a tensor (a classifier converted with zipmap?); convert with zipmap=False",
                    output.name
                )));
            }
        }
        Ok(Self {
            model: model.to_owned(),
            version: version.to_owned(),
            metadata,
            session,
        })
    }

    /// Scores `rows` rows of features, laid out row after row in `features`;
    /// returns one [`OutputValues`] per declared output, in their order.
    ///
    /// # Errors
    /// [`OnnxError::Inference`] when ONNX Runtime refuses the batch or an
    /// output has an unexpected type or shape.
    pub fn predict(&mut self, features: Vec<f32>, rows: usize) -> Result<Vec<OutputValues>, OnnxError> {
        let width = self.metadata.features.len();
        debug_assert_eq!(features.len(), rows * width);
        let fail = |message: String| OnnxError::Inference {
            model: self.model.clone(),
            version: self.version.clone(),
            message,
        };
        let tensor = Tensor::from_array(([rows, width], features)).map_err(|e| fail(e.to_string()))?;
        let input = self.metadata.input.as_str();
        let outputs = self
            .session
            .run(ort::inputs![input => tensor])
            .map_err(|e| fail(e.to_string()))?;
        let mut values = Vec::with_capacity(self.metadata.outputs.len());
        for declared in &self.metadata.outputs {
            let value = &outputs[declared.name.as_str()];
            let picked = if declared.kind == OutputKind::Label {
                let (shape, data) = value
                    .try_extract_tensor::<i64>()
                    .map_err(|e| fail(format!("output `{}`: {e}", declared.name)))?;
                OutputValues::Int(
                    column(shape, data, rows, declared.index)
                        .map_err(|m| fail(format!("output `{}`: {m}", declared.name)))?,
                )
            } else {
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| fail(format!("output `{}`: {e}", declared.name)))?;
                let picked = column(shape, data, rows, declared.index)
                    .map_err(|m| fail(format!("output `{}`: {m}", declared.name)))?;
                OutputValues::Float(picked.into_iter().map(f64::from).collect())
            };
            values.push(picked);
        }
        Ok(values)
    }
}

/// Column `index` (default: the last) of a `[rows]` or `[rows, k]` tensor.
fn column<T: Copy>(shape: &[i64], data: &[T], rows: usize, index: Option<usize>) -> Result<Vec<T>, String> {
    let width = match shape {
        [n] if *n as usize == rows => 1,
        [n, k] if *n as usize == rows && *k > 0 => *k as usize,
        _ => return Err(format!("shape {shape:?} is not [{rows}] or [{rows}, k]")),
    };
    let index = index.unwrap_or(width - 1);
    if index >= width {
        return Err(format!("index {index} is outside its {width} columns"));
    }
    Ok(data.iter().skip(index).step_by(width).copied().take(rows).collect())
}
