//! [`Readiness`]: what `/health/ready` reports besides the store, flipped by the
//! engine as the pipeline's sources and sinks come up and as it shuts down.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Default)]
struct Flags {
    pipeline_ready: AtomicBool,
    shutting_down: AtomicBool,
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

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::Acquire)
    }
}
