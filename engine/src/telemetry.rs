//! Logs (`tracing`) and metrics (`metrics`) for the process.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

static SNAPSHOTTER: OnceLock<Option<Snapshotter>> = OnceLock::new();

/// Installs the in-process metrics recorder, once per process. Returns false
/// when another recorder was installed first (its values are then not readable here).
pub fn install_recorder() -> bool {
    SNAPSHOTTER
        .get_or_init(|| {
            let recorder = DebuggingRecorder::new();
            let snapshotter = recorder.snapshotter();
            recorder.install().ok().map(|()| snapshotter)
        })
        .is_some()
}

/// Current totals of every `pulse_*` counter, summed over their labels, and
/// per component (`name{component}`).
pub fn counter_totals() -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    let Some(Some(snapshotter)) = SNAPSHOTTER.get() else {
        return totals;
    };
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        if let DebugValue::Counter(n) = value {
            let name = key.key().name().to_owned();
            *totals.entry(name.clone()).or_default() += n;
            for label in key.key().labels().filter(|l| l.key() == "component") {
                *totals.entry(format!("{name}{{{}}}", label.value())).or_default() += n;
            }
        }
    }
    totals
}
