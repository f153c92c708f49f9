//! Dataflow operators of pulse, each an extension trait on a timely `Stream`.
//!
//! - [`window`]: event-time tumbling, hopping and session windows ([`WindowExt`]).
//! - [`anomaly`]: streaming anomaly detection per series ([`anomaly::AnomalyExt`]).
//! - [`aggregate`]: the aggregate functions windows compute, and their state.
//! - [`forecast`]: online per-key forecasting with prediction intervals ([`forecast::ForecastExt`]).
//! - [`onnx`]: ONNX model inference on rows, with a model registry ([`onnx::OnnxExt`]).
//! - [`incidents`]: incident correlation and root-cause analysis in differential dataflow ([`incidents::IncidentsExt`]).
//! - [`series`]: the points per key the analytics operators take, held until event time is complete.
//! - [`sketch`]: the mergeable quantile sketch behind `p50`/`p95`/`p99`.

pub mod aggregate;
pub mod anomaly;
pub mod forecast;
pub mod incidents;
pub mod onnx;
pub mod series;
pub mod sketch;
pub mod window;

pub use aggregate::{Accumulator, Aggregate, AggregateValue};
pub use window::{WindowConfig, WindowExt, WindowRow, WindowSpec};
