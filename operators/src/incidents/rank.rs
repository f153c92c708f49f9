//! `POTENTIAL_CAUSE`: ranking an incident's candidate causes.
//!
//! A [`Candidate`] is a signal on a resource near one of the incident's
//! members, with how it was reached: the fewest topology steps, and the most
//! `CALLS` steps taken towards dependencies (minus those taken towards
//! callers) on any walk of at most three steps. Two rankers order them:
//!
//! - [`Ranker::Baseline`], the users' starting formula
//!   `0.4·temporal + 0.3·distance + 0.3·domain` (temporal = 1 − Δt/900 s,
//!   distance = 1/(hops+1), domain = relatedness of the two resource kinds);
//! - [`Ranker::Causal`] (the default), which multiplies how cause-like the
//!   signal is (a configuration or placement change, a resource limit hit,
//!   a metric onset, versus a crash loop, a failed probe or an error line
//!   that only report a fault), where it sits in the call graph (symptoms
//!   travel from a callee to its callers, so the cause is downstream of the
//!   errors), and when it happened (before the first error, allowing for
//!   clock skew), and how much of the incident it could explain (how many
//!   erroring members depend on it, and whether the first one does), and
//!   adds corroboration by metric onsets on the same resource.
//!
//! Both keep the best signal per resource, best first, at most ten.

use std::collections::BTreeMap;

use pulse_core::{EventTime, ResourceRef};
use serde::{Deserialize, Serialize};

use super::signal::{Severity, Signal, SignalSource, reports_outcome};

/// Which formula orders the causes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ranker {
    /// Cause-likeness × call-graph position × timing, with metric corroboration.
    #[default]
    Causal,
    /// `0.4·temporal + 0.3·distance + 0.3·domain`.
    Baseline,
}

/// A signal near an incident, and how it was reached.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Candidate {
    /// The resource the signal is about.
    pub resource: ResourceRef,
    /// The signal.
    pub signal: Signal,
    /// Fewest topology steps from a member of the incident (0: a member itself).
    pub hops: u8,
    /// Most `CALLS` steps towards dependencies minus steps towards callers on a walk from a member.
    pub depth: i8,
    /// The least such balance on any walk from a member: below zero, the
    /// resource is a caller of (upstream of) some erroring member.
    pub shallowest: i8,
    /// How many members reach it at or above it (never as its caller), by
    /// their fewest steps to it: 0 (itself), 1, 2, 3.
    pub members_at: [u8; 4],
    /// Whether the member whose error opened the incident reaches it, at or above it.
    pub from_opener: bool,
}

/// One ranked cause, as the output shows it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RankedCause {
    /// The resource.
    pub resource: ResourceRef,
    /// Event time of its signal.
    pub event_ts: EventTime,
    /// The signal's reason.
    pub reason: String,
    /// Confidence in thousandths, 0..=1000.
    pub confidence_milli: u16,
    /// Why it ranks where it does.
    pub explanation: String,
}

impl RankedCause {
    /// The confidence in [0, 1].
    pub fn confidence(&self) -> f64 {
        f64::from(self.confidence_milli) / 1000.0
    }
}

/// What the rankers know of the incident.
#[derive(Clone, Copy, Debug)]
pub struct IncidentContext<'a> {
    /// Event time of the opening error.
    pub opened_at: EventTime,
    /// The resource of the opening error.
    pub symptom: &'a ResourceRef,
    /// The look-back, ms.
    pub lookback_ms: u64,
    /// Clock skew allowed between sources, ms.
    pub skew_ms: u64,
}

/// The most causes an incident lists.
pub const TOP_CAUSES: usize = 10;

/// Orders `candidates` (best first, one per resource, at most [`TOP_CAUSES`]).
pub fn rank(ranker: Ranker, context: &IncidentContext<'_>, candidates: &[&Candidate]) -> Vec<RankedCause> {
    let mut best: BTreeMap<&ResourceRef, (f64, RankedCause)> = BTreeMap::new();
    let widest = candidates.iter().map(|c| support(c)).fold(0.0, f64::max);
    for candidate in candidates {
        let (score, explanation) = match ranker {
            Ranker::Baseline => baseline(context, candidate),
            Ranker::Causal => causal(context, candidate, candidates, widest),
        };
        let score = score.clamp(0.0, 1.0);
        let cause = RankedCause {
            resource: candidate.resource.clone(),
            event_ts: candidate.signal.ts,
            reason: candidate.signal.reason.clone(),
            confidence_milli: (score * 1000.0).round() as u16,
            explanation,
        };
        let slot = best.entry(&candidate.resource).or_insert((f64::MIN, cause.clone()));
        // Ties go to the earlier signal, then to the order of the data.
        if score > slot.0 || (score == slot.0 && cause.event_ts < slot.1.event_ts) {
            *slot = (score, cause);
        }
    }
    let mut ranked: Vec<(f64, RankedCause)> = best.into_values().collect();
    ranked.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.event_ts.cmp(&b.1.event_ts))
            .then(a.1.resource.cmp(&b.1.resource))
    });
    ranked.truncate(TOP_CAUSES);
    ranked.into_iter().map(|(_, cause)| cause).collect()
}

/// How related two resource kinds are, in [0, 1] (the baseline's domain term).
pub fn domain_relatedness(a: &str, b: &str) -> f64 {
    if a == b {
        return 1.0;
    }
    let pair = if a <= b { (a, b) } else { (b, a) };
    match pair {
        ("Node", "Pod") | ("Pod", "ReplicaSet") | ("Deployment", "Pod") => 0.8,
        ("Pod", "Service") | ("PersistentVolumeClaim", "Pod") | ("Deployment", "ReplicaSet") => 0.7,
        ("ConfigMap", "Pod") | ("Pod", "Secret") | ("Deployment", "Service") => 0.6,
        _ => 0.3,
    }
}

fn baseline(context: &IncidentContext<'_>, candidate: &Candidate) -> (f64, String) {
    let dt = context.opened_at.abs_diff(candidate.signal.ts) as f64 / 1000.0;
    let temporal = (1.0 - dt / 900.0).max(0.0);
    let distance = 1.0 / (f64::from(candidate.hops) + 1.0);
    let domain = domain_relatedness(&context.symptom.kind, &candidate.resource.kind);
    let score = 0.4 * temporal + 0.3 * distance + 0.3 * domain;
    let explanation = format!(
        "baseline: temporal {temporal:.2} (Δt {dt:.0}s), distance {distance:.2} ({} hops), domain {domain:.2}",
        candidate.hops
    );
    (score, explanation)
}

/// What a signal says about being a cause, with the words of the explanation.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    /// A resource limit or a failed dependency of the pod itself (memory, volume, image, CPU).
    ResourceFault,
    /// A change to infrastructure or configuration (a node's condition, a rollout, a config).
    Change,
    /// A metric series' onset.
    MetricOnset,
    /// A report of a fault elsewhere: a crash loop, a failed probe, an error line.
    Symptom,
    /// Nothing known either way.
    Unknown,
}

/// Well-known Kubernetes event reasons (kubelet, controllers, Prometheus
/// alerts), lower-cased, and the role they play.
const KNOWN_REASONS: [(&str, Role); 27] = [
    ("oomkilled", Role::ResourceFault),
    ("oomkilling", Role::ResourceFault),
    ("failedmount", Role::ResourceFault),
    ("failedattachvolume", Role::ResourceFault),
    ("errimagepull", Role::ResourceFault),
    ("imagepullbackoff", Role::ResourceFault),
    ("failedscheduling", Role::ResourceFault),
    ("cputhrottlinghigh", Role::ResourceFault),
    ("kubecputhrottling", Role::ResourceFault),
    ("evictionthresholdmet", Role::Change),
    ("nodehasdiskpressure", Role::Change),
    ("nodehasmemorypressure", Role::Change),
    ("nodehaspidpressure", Role::Change),
    ("nodenotready", Role::Change),
    ("networkunavailable", Role::Change),
    ("scalingreplicaset", Role::Change),
    ("rollingupdate", Role::Change),
    ("deploymentrollout", Role::Change),
    ("updated", Role::Change),
    ("configchanged", Role::Change),
    ("backoff", Role::Symptom),
    ("crashloopbackoff", Role::Symptom),
    ("unhealthy", Role::Symptom),
    ("probefailed", Role::Symptom),
    ("evicted", Role::Symptom),
    ("killing", Role::Symptom),
    ("failed", Role::Symptom),
];

/// Kinds whose events are changes to what workloads depend on.
const INFRASTRUCTURE_KINDS: [&str; 8] = [
    "Node",
    "PersistentVolumeClaim",
    "PersistentVolume",
    "ConfigMap",
    "Secret",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
];

fn role(candidate: &Candidate) -> Role {
    let signal = &candidate.signal;
    if signal.source == SignalSource::Metric {
        return Role::MetricOnset;
    }
    let reason: String = signal
        .reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    // The kernel's OOM killer is reported on the Node (node-problem-detector's
    // `OOMKilling`), but what it killed is a container: the node reports a
    // pod's memory fault, it is not the fault. A node running out of memory
    // as a whole says so otherwise (`SystemOOM`, memory pressure).
    if signal.source == SignalSource::K8sEvent && reason == "oomkilling" && candidate.resource.kind == "Node" {
        return Role::Symptom;
    }
    if signal.source == SignalSource::K8sEvent
        && let Some((_, role)) = KNOWN_REASONS.iter().find(|(known, _)| *known == reason)
    {
        return *role;
    }
    if signal.source == SignalSource::K8sEvent && INFRASTRUCTURE_KINDS.contains(&candidate.resource.kind.as_str()) {
        return Role::Change;
    }
    if signal.source == SignalSource::Log || signal.severity >= Severity::Error {
        return Role::Symptom;
    }
    Role::Unknown
}

/// How much of the incident a candidate could explain: the members at or
/// above it, the nearer the more (a member itself or its direct dependency
/// counts fully, two steps away half, three a quarter).
fn support(candidate: &Candidate) -> f64 {
    const WEIGHTS: [f64; 4] = [1.0, 1.0, 0.5, 0.25];
    candidate
        .members_at
        .iter()
        .zip(WEIGHTS)
        .map(|(count, weight)| f64::from(*count) * weight)
        .sum()
}

fn causal(context: &IncidentContext<'_>, candidate: &Candidate, all: &[&Candidate], widest: f64) -> (f64, String) {
    let role = role(candidate);
    // Symptoms travel from a callee up to its callers, so an erroring member
    // is never upstream of the cause: what calls some member is unlikely to
    // be it, and what members depend on (a member itself, when its own
    // latency or error-rate onset opened or joined the incident) is likely.
    let below_errors = candidate.depth > 0 && candidate.shallowest >= 0;
    let prior = match role {
        Role::ResourceFault => 1.0,
        Role::Change => 0.85,
        // Requests slowing or failing at the deepest affected dependency,
        // before its callers' errors: where the degradation started.
        Role::MetricOnset if reports_outcome(&candidate.signal.reason) && below_errors => 0.8,
        Role::MetricOnset if reports_outcome(&candidate.signal.reason) => 0.4,
        Role::MetricOnset if INFRASTRUCTURE_KINDS.contains(&candidate.resource.kind.as_str()) => 0.8,
        Role::MetricOnset => 0.7,
        Role::Unknown => 0.45,
        Role::Symptom => 0.3,
    };
    let (position, where_) = match (candidate.depth, candidate.shallowest) {
        (_, s) if s < 0 => (0.35, "upstream of some errors (a caller)"),
        (d, _) if d > 0 => (1.0, "downstream of the errors"),
        _ => (0.75, "among the errors"),
    };
    let ts = candidate.signal.ts;
    let opened = context.opened_at;
    let (timing, when) = if ts <= opened + context.skew_ms {
        let before = opened.saturating_sub(ts) as f64;
        let window = context.lookback_ms.max(1) as f64;
        (1.0 - 0.4 * (before / window).min(1.0), "before the first error")
    } else {
        let after = (ts - opened - context.skew_ms) as f64;
        ((1.0 - after / 120_000.0).max(0.15), "after the first error")
    };
    let proximity = 1.0 / (f64::from(candidate.hops) + 1.0);
    let corroborated = role != Role::MetricOnset
        && all.iter().any(|other| {
            other.resource == candidate.resource
                && other.signal.source == SignalSource::Metric
                && other.signal.ts + 10 * 60_000 >= ts
                && other.signal.ts <= ts + 120_000
        });
    let evidence = if corroborated { 0.12 } else { 0.0 };
    // A common dependency of many erroring members explains more of the
    // incident than one that only some member far away depends on; and the
    // first error is usually the nearest to the cause.
    let breadth = 0.6 + 0.4 * support(candidate) / widest.max(f64::MIN_POSITIVE);
    let origin = if candidate.from_opener { 1.0 } else { 0.8 };
    let reloaded = role == Role::Change && follows_configuration_change(candidate, all);
    let consequence = if reloaded { 0.75 } else { 1.0 };
    let score = prior * position * timing * (0.8 + 0.2 * proximity) * breadth * origin * consequence + evidence;
    let explanation = format!(
        "{} {} {}, {} ({} hops){}",
        match role {
            Role::ResourceFault => "a resource fault",
            Role::Change => "an infrastructure or configuration change",
            Role::MetricOnset => "a metric onset",
            Role::Symptom => "a symptom-like signal",
            Role::Unknown => "a signal",
        },
        candidate.signal.severity.as_str(),
        when,
        where_,
        candidate.hops,
        if corroborated {
            ", corroborated by a metric onset on the same resource"
        } else {
            ""
        }
    ) + if reloaded {
        ", a rollout that follows a configuration change in its namespace"
    } else {
        ""
    };
    (score, explanation)
}

/// Kinds that roll their pods out when their template changes.
const WORKLOAD_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// Kinds whose change reaches running pods only through a rollout or a reload.
const CONFIGURATION_KINDS: [&str; 2] = ["ConfigMap", "Secret"];

/// How long after a configuration change a rollout counts as its consequence, ms.
const RELOAD_WINDOW_MS: u64 = 10 * 60_000;

/// Whether `candidate` is a workload's rollout that follows a change to a
/// ConfigMap or Secret in the same namespace that an erroring member uses
/// directly (one step away): a config
/// reloader or a deploy that ships both rolls the workload because the
/// configuration changed, so the configuration change is the earlier link
/// of the chain and the rollout its consequence.
fn follows_configuration_change(candidate: &Candidate, all: &[&Candidate]) -> bool {
    if !WORKLOAD_KINDS.contains(&candidate.resource.kind.as_str()) {
        return false;
    }
    let ts = candidate.signal.ts;
    all.iter().any(|other| {
        other.signal.source == SignalSource::K8sEvent
            && CONFIGURATION_KINDS.contains(&other.resource.kind.as_str())
            && other.resource.namespace == candidate.resource.namespace
            && other.hops <= 1
            && role(other) == Role::Change
            && other.signal.ts <= ts
            && other.signal.ts + RELOAD_WINDOW_MS >= ts
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: &str, name: &str) -> ResourceRef {
        ResourceRef {
            kind: kind.into(),
            namespace: "prod".into(),
            name: name.into(),
        }
    }

    fn candidate(
        resource: ResourceRef,
        ts: EventTime,
        source: SignalSource,
        reason: &str,
        severity: Severity,
        hops: u8,
        depth: i8,
    ) -> Candidate {
        Candidate {
            resource,
            signal: Signal {
                ts,
                source,
                reason: reason.into(),
                severity,
                message: String::new(),
            },
            hops,
            depth,
            shallowest: depth.min(0),
            members_at: {
                let mut at = [0; 4];
                at[usize::from(hops.min(3))] = 1;
                at
            },
            from_opener: hops == 0,
        }
    }

    #[test]
    fn the_oom_kill_downstream_beats_the_callers_errors() {
        let symptom = r("Pod", "web-1");
        let context = IncidentContext {
            opened_at: 100_000,
            symptom: &symptom,
            lookback_ms: 900_000,
            skew_ms: 5_000,
        };
        let web = candidate(
            symptom.clone(),
            100_000,
            SignalSource::Log,
            "upstream timeout",
            Severity::Error,
            0,
            0,
        );
        let oom = candidate(
            r("Pod", "db-1"),
            101_500,
            SignalSource::K8sEvent,
            "OOMKilled",
            Severity::Warning,
            3,
            1,
        );
        let memory = candidate(
            r("Pod", "db-1"),
            60_000,
            SignalSource::Metric,
            "memory_usage_ratio",
            Severity::Warning,
            3,
            1,
        );
        let candidates = [&web, &oom, &memory];
        let causal = rank(Ranker::Causal, &context, &candidates);
        assert_eq!(causal[0].resource, r("Pod", "db-1"));
        assert_eq!(causal[0].reason, "OOMKilled");
        assert!(
            causal[0].explanation.contains("corroborated"),
            "{}",
            causal[0].explanation
        );
        assert_eq!(causal.len(), 2, "one cause per resource");
        let baseline = rank(Ranker::Baseline, &context, &candidates);
        assert_eq!(baseline[0].resource, symptom, "the baseline prefers the symptom itself");
        assert!(baseline.iter().all(|c| c.confidence() <= 1.0));
    }
    #[test]
    fn the_pod_beats_the_node_reporting_its_oom_kill() {
        let symptom = r("Pod", "web-1");
        let context = IncidentContext {
            opened_at: 100_000,
            symptom: &symptom,
            lookback_ms: 900_000,
            skew_ms: 5_000,
        };
        let node = Candidate {
            resource: ResourceRef {
                kind: "Node".into(),
                namespace: String::new(),
                name: "node-1".into(),
            },
            ..candidate(
                r("Node", "node-1"),
                95_000,
                SignalSource::K8sEvent,
                "OOMKilling",
                Severity::Warning,
                1,
                1,
            )
        };
        let memory = candidate(
            r("Pod", "db-1"),
            60_000,
            SignalSource::Metric,
            "container_memory_working_set_bytes",
            Severity::Warning,
            1,
            1,
        );
        let ranked = rank(Ranker::Causal, &context, &[&node, &memory]);
        assert_eq!(ranked[0].resource, r("Pod", "db-1"), "{ranked:#?}");
        assert!(ranked[1].explanation.contains("symptom"), "{ranked:#?}");
    }

    #[test]
    fn the_config_change_beats_the_rollout_it_set_off() {
        let symptom = r("Pod", "web-1");
        let context = IncidentContext {
            opened_at: 200_000,
            symptom: &symptom,
            lookback_ms: 900_000,
            skew_ms: 5_000,
        };
        let rollout = candidate(
            r("Deployment", "web"),
            150_000,
            SignalSource::K8sEvent,
            "ScalingReplicaSet",
            Severity::Info,
            0,
            0,
        );
        let config = candidate(
            r("ConfigMap", "web-config"),
            140_000,
            SignalSource::K8sEvent,
            "Updated",
            Severity::Info,
            1,
            1,
        );
        let ranked = rank(Ranker::Causal, &context, &[&rollout, &config]);
        assert_eq!(ranked[0].resource, r("ConfigMap", "web-config"), "{ranked:#?}");
        assert!(
            ranked[1].explanation.contains("follows a configuration change"),
            "{ranked:#?}"
        );

        // A ConfigMap of another namespace (staging's of the same name) does not count.
        let mut elsewhere = config.clone();
        elsewhere.resource.namespace = "staging".into();
        let ranked = rank(Ranker::Causal, &context, &[&rollout, &elsewhere]);
        assert_eq!(ranked[0].resource, r("Deployment", "web"), "{ranked:#?}");
    }
}

#[cfg(test)]
mod breadth_tests {
    use super::*;

    fn node(name: &str, members_at: [u8; 4], from_opener: bool) -> Candidate {
        Candidate {
            resource: ResourceRef {
                kind: "Node".into(),
                namespace: String::new(),
                name: name.into(),
            },
            signal: Signal {
                ts: 90_000,
                source: SignalSource::K8sEvent,
                reason: "NodeHasDiskPressure".into(),
                severity: Severity::Warning,
                message: String::new(),
            },
            hops: 1,
            depth: 1,
            shallowest: 1,
            members_at,
            from_opener,
        }
    }

    #[test]
    fn the_node_under_the_first_and_most_errors_beats_a_decoy_under_one() {
        let symptom = ResourceRef {
            kind: "Pod".into(),
            namespace: "prod".into(),
            name: "web-1".into(),
        };
        let context = IncidentContext {
            opened_at: 100_000,
            symptom: &symptom,
            lookback_ms: 900_000,
            skew_ms: 5_000,
        };
        // The same event on two nodes: one runs three erroring pods, the opener
        // among them; the other one pod that errored later.
        let common = node("node-1", [0, 3, 0, 0], true);
        let decoy = node("node-2", [0, 1, 0, 0], false);
        let ranked = rank(Ranker::Causal, &context, &[&decoy, &common]);
        assert_eq!(ranked[0].resource.name, "node-1");
        assert!(ranked[0].confidence() > ranked[1].confidence() + 0.1, "{ranked:#?}");
    }
}
