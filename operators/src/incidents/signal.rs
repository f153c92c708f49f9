//! What the incident operator reads from events: [`Signal`]s about resources.
//!
//! Every `k8s_event` and every `log` line at `warn` or above becomes a signal
//! about its resource; `metric` events become signals only when their series
//! has an *onset* (see [`OnsetDetector`]). Signals at `error` or `critical`
//! from events or logs, and onsets of metrics that measure what requests
//! experience (latency, errors: an SLO-style alert), are the ones that open
//! or join incidents ([`Signal::opens_incidents`]); every signal is a
//! candidate cause.

use std::collections::HashMap;

use pulse_core::{Event, EventBody, EventTime, ResourceRef};
use serde::{Deserialize, Serialize};

/// How serious a signal is, from `severity` (events) or `level` (logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// `debug`, `trace`.
    Debug,
    /// `info`, `notice`, `normal` and anything unknown.
    Info,
    /// `warn`, `warning`.
    Warning,
    /// `error`, `err`.
    Error,
    /// `critical`, `crit`, `fatal`, `alert`, `emerg`.
    Critical,
}

impl Severity {
    /// Reads a severity or level name, case-insensitively; unknown names are `Info`.
    pub fn parse(name: &str) -> Self {
        match name.to_ascii_lowercase().as_str() {
            "debug" | "trace" => Severity::Debug,
            "warn" | "warning" => Severity::Warning,
            "error" | "err" => Severity::Error,
            "critical" | "crit" | "fatal" | "alert" | "emerg" | "emergency" | "panic" => Severity::Critical,
            _ => Severity::Info,
        }
    }

    /// The name in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }
}

/// Which kind of event a signal came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SignalSource {
    /// A Kubernetes event.
    K8sEvent,
    /// A log line.
    Log,
    /// A metric series' onset.
    Metric,
}

/// One thing that happened to a resource, as a candidate cause or a symptom.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Signal {
    /// Event time, epoch ms.
    pub ts: EventTime,
    /// Where it came from.
    pub source: SignalSource,
    /// The event's reason, the log line's first words, or `metric_name` for an onset.
    pub reason: String,
    /// How serious it is.
    pub severity: Severity,
    /// The message (truncated), or the onset's values.
    pub message: String,
}

impl Signal {
    /// Whether it opens or joins an incident: an error or critical k8s event
    /// or log line, or the onset of a metric that [`reports_outcome`] (a
    /// fault that logs no error anywhere still slows or fails requests).
    pub fn opens_incidents(&self) -> bool {
        match self.source {
            SignalSource::Metric => reports_outcome(&self.reason),
            SignalSource::K8sEvent | SignalSource::Log => self.severity >= Severity::Error,
        }
    }
}

/// Whether a metric measures what requests experience (errors, latency:
/// the RED signals, which report a fault) rather than a resource's
/// utilisation or saturation (the USE signals, which can cause one).
pub fn reports_outcome(metric: &str) -> bool {
    let metric = metric.to_ascii_lowercase();
    ["error", "latency", "duration", "5xx", "failure"]
        .iter()
        .any(|word| metric.contains(word))
}

/// The longest message a signal keeps.
const MESSAGE_CHARS: usize = 160;

fn truncated(text: &str) -> String {
    text.chars().take(MESSAGE_CHARS).collect()
}

/// The reason of a log line: its first three words, without digits, so that
/// lines of one kind share a reason.
fn log_reason(message: &str) -> String {
    let words: Vec<String> = message
        .split_whitespace()
        .take(3)
        .map(|word| word.chars().filter(|c| !c.is_ascii_digit()).collect())
        .collect();
    words.join(" ")
}

/// The signal a `k8s_event` or `log` event carries, with its tenant and
/// resource; `None` for other kinds and for logs below `warn`.
pub fn event_signal(event: &Event) -> Option<(ResourceRef, Signal)> {
    match &event.body {
        EventBody::K8sEvent(k8s) => Some((
            k8s.resource.clone(),
            Signal {
                ts: event.ts,
                source: SignalSource::K8sEvent,
                reason: k8s.reason.clone(),
                severity: Severity::parse(&k8s.severity),
                message: truncated(&k8s.message),
            },
        )),
        EventBody::Log(log) => {
            let severity = Severity::parse(&log.level);
            (severity >= Severity::Warning).then(|| {
                (
                    log.resource.clone(),
                    Signal {
                        ts: event.ts,
                        source: SignalSource::Log,
                        reason: log_reason(&log.message),
                        severity,
                        message: truncated(&log.message),
                    },
                )
            })
        }
        EventBody::Metric(_) | EventBody::Topology(_) => None,
    }
}

/// The resource a metric sample is about, from its labels: `kind`+`name`
/// (+`namespace`), or the Prometheus/kube-state-metrics conventions `pod`,
/// `node`, `service`, `deployment`, `persistentvolumeclaim` (+`namespace`).
pub fn metric_resource(labels: &std::collections::BTreeMap<String, String>) -> Option<ResourceRef> {
    let namespace = labels.get("namespace").cloned().unwrap_or_default();
    if let (Some(kind), Some(name)) = (labels.get("kind"), labels.get("name")) {
        let namespace = if kind == "Node" { String::new() } else { namespace };
        return Some(ResourceRef {
            kind: kind.clone(),
            namespace,
            name: name.clone(),
        });
    }
    let by_label = [
        ("pod", "Pod"),
        ("persistentvolumeclaim", "PersistentVolumeClaim"),
        ("deployment", "Deployment"),
        ("service", "Service"),
        ("node", "Node"),
    ];
    by_label.iter().find_map(|(label, kind)| {
        labels.get(*label).map(|name| ResourceRef {
            kind: (*kind).to_owned(),
            namespace: if *kind == "Node" {
                String::new()
            } else {
                namespace.clone()
            },
            name: name.clone(),
        })
    })
}

/// Settings of the metric onset detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnsetSettings {
    /// Weight of a new sample in the running mean and variance.
    pub alpha: f64,
    /// Samples a series needs before it can have an onset.
    pub warm_up: u32,
    /// Standard deviations above the mean that make an onset.
    pub threshold: f64,
}

impl Default for OnsetSettings {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            warm_up: 8,
            threshold: 4.0,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct SeriesState {
    mean: f64,
    variance: f64,
    samples: u32,
    in_onset: bool,
}

/// Finds onsets in metric series: the first sample of a run far above the
/// series' running mean (an exponentially weighted mean and variance that
/// stop learning while the run lasts), or of a run of a ratio metric
/// (values in [0, 1]) at 0.9 or more. An onset is a `warning` signal named
/// after the metric; the run ends when the value is back within 1.5
/// standard deviations (or under 0.8 for saturation).
#[derive(Debug, Default)]
pub struct OnsetDetector {
    settings: OnsetSettings,
    series: HashMap<(ResourceRef, String), SeriesState>,
}

impl OnsetDetector {
    /// A detector with `settings`.
    pub fn new(settings: OnsetSettings) -> Self {
        Self {
            settings,
            series: HashMap::new(),
        }
    }

    /// Takes one sample; the onset signal if it starts one.
    pub fn observe(&mut self, resource: &ResourceRef, metric: &str, ts: EventTime, value: f64) -> Option<Signal> {
        if !value.is_finite() {
            return None;
        }
        let settings = self.settings;
        let state = self.series.entry((resource.clone(), metric.to_owned())).or_default();
        let spread = state.variance.sqrt().max(0.05 * state.mean.abs()).max(1e-3);
        let z = (value - state.mean) / spread;
        let ratio = (0.0..=1.0).contains(&state.mean) && (0.0..=1.0).contains(&value);
        let saturated = ratio && value >= 0.9 && state.mean < 0.85;
        let warm = state.samples >= settings.warm_up;
        if state.in_onset {
            let over = z > 1.5 || (ratio && value >= 0.8 && state.mean < 0.75);
            state.in_onset = over;
            if over {
                return None;
            }
        } else if warm && (z > settings.threshold || saturated) {
            state.in_onset = true;
            return Some(Signal {
                ts,
                source: SignalSource::Metric,
                reason: metric.to_owned(),
                severity: Severity::Warning,
                message: format!("{metric} rose to {value:.3} (usual {:.3} ± {spread:.3})", state.mean),
            });
        }
        if state.samples == 0 {
            state.mean = value;
        } else {
            let delta = value - state.mean;
            state.mean += settings.alpha * delta;
            state.variance = (1.0 - settings.alpha) * (state.variance + settings.alpha * delta * delta);
        }
        state.samples = state.samples.saturating_add(1);
        None
    }

    /// Whether a series is in a run that started with an onset (its last
    /// sample was still far above its usual level).
    pub fn elevated(&self, resource: &ResourceRef, metric: &str) -> bool {
        self.series
            .get(&(resource.clone(), metric.to_owned()))
            .is_some_and(|state| state.in_onset)
    }

    /// Series tracked.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> ResourceRef {
        ResourceRef {
            kind: "Pod".into(),
            namespace: "prod".into(),
            name: name.into(),
        }
    }

    #[test]
    fn severities_read_levels_and_severities() {
        assert_eq!(Severity::parse("WARN"), Severity::Warning);
        assert_eq!(Severity::parse("fatal"), Severity::Critical);
        assert_eq!(Severity::parse("Normal"), Severity::Info);
        assert!(Severity::Error > Severity::Warning);
    }

    #[test]
    fn a_memory_climb_is_one_onset() {
        let mut detector = OnsetDetector::default();
        let mut onsets = Vec::new();
        for i in 0..40u64 {
            let value = if i < 30 { 0.5 + 0.01 * (i % 3) as f64 } else { 0.97 };
            onsets.extend(detector.observe(&pod("a"), "memory_usage_ratio", i * 15_000, value));
        }
        assert_eq!(onsets.len(), 1, "{onsets:?}");
        assert_eq!(onsets[0].ts, 30 * 15_000);
        assert!(onsets[0].message.contains("0.970"), "{}", onsets[0].message);
    }

    #[test]
    fn noise_and_bad_values_make_no_onset() {
        let mut detector = OnsetDetector::default();
        let onsets: Vec<Signal> = (0..200u64)
            .filter_map(|i| {
                let value = if i == 50 {
                    f64::NAN
                } else {
                    100.0 + ((i * 7919) % 13) as f64
                };
                detector.observe(&pod("b"), "latency_ms", i * 1000, value)
            })
            .collect();
        assert!(onsets.is_empty(), "{onsets:?}");
    }

    #[test]
    fn metric_labels_name_their_resource() {
        let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        assert_eq!(
            metric_resource(&labels(&[("pod", "a"), ("namespace", "prod")])),
            Some(pod("a"))
        );
        let node = metric_resource(&labels(&[("node", "n1"), ("namespace", "x")])).unwrap();
        assert_eq!((node.kind.as_str(), node.namespace.as_str()), ("Node", ""));
        assert_eq!(metric_resource(&labels(&[("region", "eu")])), None);
    }
}
