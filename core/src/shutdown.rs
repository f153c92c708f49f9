//! A shared flag that tells sources to stop and operators why their input ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once when the process is asked to stop (SIGINT/SIGTERM).
///
/// Sources stop reading when it is set. Window operators read it when their input
/// frontier becomes empty: after an end of input every open window is complete
/// and is emitted, after an interrupt the open windows are incomplete and are
/// discarded (and counted) instead of being reported as if they were whole.
#[derive(Clone, Debug, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// A signal that has not fired.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal.
    pub fn trigger(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether the signal has fired.
    pub fn is_triggered(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// The flag itself, for signal handlers that set it directly.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}
