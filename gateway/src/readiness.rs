//! [`Readiness`]: what `/health/ready` reports besides the store, flipped by the
//! engine as the pipeline's sources and sinks come up and as it shuts down,
//! and the health board of the pipeline's components (each source's and
//! sink's problem, each sink's circuit breaker), shown as it is at each request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use pulse_core::{ComponentHealth, HealthBoard};

#[derive(Default)]
struct Flags {
    pipeline_ready: AtomicBool,
    shutting_down: AtomicBool,
    components: OnceLock<HealthBoard>,
}

/// A cheap, cloneable handle on the readiness flags.
#[derive(Clone, Default)]
pub struct Readiness(Arc<Flags>);

impl Readiness {
    /// Not ready until [`Readiness::set_pipeline_ready`] says so.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the pipeline's sources and sinks as up (or down again).
    /// A gateway serving without a pipeline (`pulse serve`) sets this once at start.
    pub fn set_pipeline_ready(&self, ready: bool) {
        self.0.pipeline_ready.store(ready, Ordering::Release);
    }

    /// From now on `/health/ready` answers 503, so load balancers drain this process.
    pub fn set_shutting_down(&self) {
        self.0.shutting_down.store(true, Ordering::Release);
    }

    /// Whether the pipeline reported ready.
    pub fn is_pipeline_ready(&self) -> bool {
        self.0.pipeline_ready.load(Ordering::Acquire)
    }

    /// Shows the health of the pipeline's components (set once, by the
    /// engine, when the pipeline starts).
    pub fn show_components(&self, board: HealthBoard) {
        // A second board would be a second pipeline in one gateway, which the engine never starts.
        let _ = self.0.components.set(board);
    }

    /// Every component of the pipeline with its health, in name order (empty
    /// without a pipeline).
    pub fn components(&self) -> Vec<(String, ComponentHealth)> {
        self.0.components.get().map(HealthBoard::components).unwrap_or_default()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::Acquire)
    }
}
