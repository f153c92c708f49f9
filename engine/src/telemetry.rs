//! Logs (`tracing`) and metrics (`metrics`) for the process.
//!
//! The process-wide metrics recorder keeps every counter, gauge and histogram
//! in a `metrics_util` registry of atomics, so the engine can read totals at
//! any time (the run summary, tests), and fans them out to the Prometheus
//! recorder behind the gateway's `/metrics`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_util::layers::FanoutBuilder;
use metrics_util::registry::{AtomicStorage, Registry};

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), coloured only on a terminal.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colours)
        .try_init();
}

/// A recorder whose values can be read back without resetting them.
#[derive(Clone)]
struct TotalsRecorder(Arc<Registry<Key, AtomicStorage>>);

impl Recorder for TotalsRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.0.get_or_create_counter(key, |c| Counter::from_arc(Arc::clone(c)))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.0.get_or_create_gauge(key, |g| Gauge::from_arc(Arc::clone(g)))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.0
            .get_or_create_histogram(key, |h| Histogram::from_arc(Arc::clone(h)))
    }
}

static RECORDER: OnceLock<Option<TotalsRecorder>> = OnceLock::new();

/// Where the process's metrics can be read from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposition {
    /// Only in the process (the run summary): nothing serves `/metrics`.
    InProcess,
    /// Also rendered by the gateway's `/metrics`.
    Prometheus,
}

/// Installs the process metrics recorder, once: the totals read here, fanned
/// out (with [`Exposition::Prometheus`]) to the Prometheus recorder the
/// gateway's `/metrics` renders. Returns false when another recorder was
/// installed first (its values are then not readable here).
///
/// A process without a gateway should not ask for Prometheus: making its
/// recorder calibrates `quanta`'s TSC clock, which spins a core for up to
/// 200 ms (about 130 ms on the 2-core CI machine) before anything else starts.
pub fn install_recorder(exposition: Exposition) -> bool {
    RECORDER
        .get_or_init(|| {
            let totals = TotalsRecorder(Arc::new(Registry::atomic()));
            let mut fanout = FanoutBuilder::default().add_recorder(totals.clone());
            if exposition == Exposition::Prometheus
                && let Some(prometheus) = pulse_gateway::ops::prometheus_recorder()
            {
                fanout = fanout.add_recorder(prometheus);
            }
            metrics::set_global_recorder(fanout.build()).ok().map(|()| totals)
        })
        .is_some()
}

/// Totals of every counter, summed over their labels (`name`), and per
/// component (`name{component}`). Empty when the recorder is not installed.
pub fn counter_totals() -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    let Some(Some(recorder)) = RECORDER.get() else {
        return totals;
    };
    recorder.0.visit_counters(|key, counter| {
        let value = counter.load(Ordering::Relaxed);
        let name = key.name().to_owned();
        *totals.entry(name.clone()).or_default() += value;
        for label in key.labels().filter(|l| l.key() == "component") {
            *totals.entry(format!("{name}{{{}}}", label.value())).or_default() += value;
        }
    });
    totals
}

/// The value of every gauge per component (`name{component}`). Empty when
/// the recorder is not installed.
pub fn gauge_values() -> BTreeMap<String, f64> {
    let mut values = BTreeMap::new();
    let Some(Some(recorder)) = RECORDER.get() else {
        return values;
    };
    recorder.0.visit_gauges(|key, gauge| {
        let value = f64::from_bits(gauge.load(Ordering::Relaxed));
        for label in key.labels().filter(|l| l.key() == "component") {
            values.insert(format!("{}{{{}}}", key.name(), label.value()), value);
        }
    });
    values
}

/// Count, median and 99th percentile of every sample a histogram has recorded,
/// over all its labels; `None` when it has none (or no recorder is installed).
pub fn histogram_summary(name: &str) -> Option<(usize, f64, f64)> {
    let Some(Some(recorder)) = RECORDER.get() else {
        return None;
    };
    let mut samples = Vec::new();
    recorder.0.visit_histograms(|key, histogram| {
        if key.name() == name {
            samples.extend(histogram.data());
        }
    });
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Some((samples.len(), at(0.5), at(0.99)))
}
