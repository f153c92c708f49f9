//! The pulse engine: pipeline files, the planner that turns them into a timely
//! dataflow, and running it.
//!
//! The `pulse` binary is a thin shell over [`cli::main`]; everything else is a
//! library so that tests drive it directly.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod eval;
pub mod live_analytics;
pub mod live_incidents;
pub mod ml_service;
pub mod operators;
pub mod plan;
pub mod projection;
pub mod run;
pub mod serve;
mod sink_plan;
pub mod telemetry;

pub use config::{ConfigError, Pipeline, PipelineConfig};
pub use run::{RunOptions, RunReport, run, run_in_cluster};
pub use sink_plan::SinkPlacement;
