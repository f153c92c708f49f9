//! The `k8s` profile: labelled Kubernetes incident scenarios.
//!
//! Each tenant has a cluster: nodes; a `prod` and a `staging` namespace with
//! the same services (a layered call graph), each with a Deployment, a
//! ReplicaSet, pods, a ConfigMap and, for stateful tiers, a volume claim.
//! Over the scenario's span it emits the topology, metrics of every pod and
//! node, background noise (info and warning logs, probe flaps, routine
//! rollouts, scale-ups, isolated errors, decoy cause-like events) and
//! injected faults (see [`super::k8s_faults`]), with the hard cases: causes
//! emitted as warnings, clock skew between sources, concurrent unrelated
//! faults, dropped, duplicated and reordered events. [`generate`] returns the
//! events in delivery order and the answer key.

use std::collections::BTreeMap;

use pulse_core::{Event, EventBody, EventTime, K8sEvent, LogRecord, Metric, ResourceRef, TopologyChange, TopologyOp};
use serde::{Deserialize, Serialize};

use super::k8s_faults::{self, FaultKind};

/// Settings of the `k8s` profile.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct K8sConfig {
    /// Number of tenants.
    pub tenants: u32,
    /// Faults injected per tenant.
    pub faults_per_tenant: u32,
    /// Seed of everything random.
    pub seed: u64,
    /// Event time of the start, epoch ms.
    pub start: EventTime,
    /// Seconds between metric samples of one series.
    pub metric_interval_s: u64,
    /// Whether to add the hard cases (warnings as causes, skew, decoys, concurrency, loss).
    pub hard: bool,
}

impl Default for K8sConfig {
    fn default() -> Self {
        Self {
            tenants: 3,
            faults_per_tenant: 30,
            seed: 7,
            start: 1_700_000_000_000,
            metric_interval_s: 15,
            hard: true,
        }
    }
}

/// The labelled root cause of one injected fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultAnswer {
    /// The tenant.
    pub tenant: String,
    /// Which kind of fault.
    pub fault_type: String,
    /// The root-cause resource.
    pub root_cause: ResourceRef,
    /// Resources that count as naming the root cause (it and its owners).
    pub accepted: Vec<ResourceRef>,
    /// When the fault started (its first cause signal), epoch ms.
    pub start: EventTime,
    /// When its last symptom was emitted, epoch ms.
    pub end: EventTime,
    /// Resources that showed symptoms.
    pub symptoms: Vec<ResourceRef>,
}

/// The answer key of a scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerKey {
    /// Every injected fault.
    pub faults: Vec<FaultAnswer>,
}

/// SplitMix64: one stream for the whole scenario.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `lo..hi` (`lo` when empty).
    pub fn below(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo { lo } else { lo + self.next_u64() % (hi - lo) }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(0, items.len() as u64) as usize]
    }
}

/// Service names by tier; each tier calls the next.
const TIERS: [&[&str]; 4] = [
    &["frontend", "mobile-bff"],
    &["api-gateway", "auth"],
    &["orders", "users", "search", "cart"],
    &["payments-db", "inventory-db", "catalog-cache"],
];

/// One service of one namespace and what it is made of.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The Service.
    pub service: ResourceRef,
    /// The Deployment.
    pub deployment: ResourceRef,
    /// The current ReplicaSet.
    pub replica_set: ResourceRef,
    /// Its pods and the node each runs on.
    pub pods: Vec<(ResourceRef, ResourceRef)>,
    /// Its ConfigMap.
    pub config_map: ResourceRef,
    /// Its volume claim, for stateful tiers.
    pub volume: Option<ResourceRef>,
    /// Indexes (into the cluster's workloads) of the services it calls.
    pub calls: Vec<usize>,
    /// Rollouts so far, for new ReplicaSet names.
    pub revision: u32,
}

/// One tenant's cluster and the events written so far.
pub struct Cluster {
    /// The tenant.
    pub tenant: String,
    /// Its nodes.
    pub nodes: Vec<ResourceRef>,
    /// Its workloads, `prod` first, then `staging`.
    pub workloads: Vec<Workload>,
    /// Events written, in event time of their source.
    pub events: Vec<Event>,
    /// Clock offset of the kubelet's event source (ms, may be negative).
    pub kubelet_skew_ms: i64,
    /// Every pod that ever ran: when it started and, if it did, when it went away.
    pub pod_lives: Vec<(ResourceRef, EventTime, Option<EventTime>)>,
}

fn resource(kind: &str, namespace: &str, name: &str) -> ResourceRef {
    ResourceRef {
        kind: kind.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

fn suffix(rng: &mut Rng, length: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..length).map(|_| *rng.pick(ALPHABET) as char).collect()
}

impl Cluster {
    /// A cluster for `tenant`, its initial topology written at `start`.
    pub fn new(tenant: &str, rng: &mut Rng, start: EventTime, hard: bool) -> Self {
        let nodes: Vec<ResourceRef> = (1..=8).map(|i| resource("Node", "", &format!("node-{i}"))).collect();
        let mut cluster = Self {
            tenant: tenant.to_owned(),
            nodes,
            workloads: Vec::new(),
            events: Vec::new(),
            kubelet_skew_ms: if hard { rng.below(0, 6_000) as i64 - 2_000 } else { 0 },
            pod_lives: Vec::new(),
        };
        for namespace in ["prod", "staging"] {
            let first = cluster.workloads.len();
            let mut tier_of = Vec::new();
            for (tier, names) in TIERS.iter().enumerate() {
                for name in names.iter() {
                    tier_of.push((tier, cluster.workloads.len()));
                    let stateful = tier == TIERS.len() - 1;
                    let deployment = resource("Deployment", namespace, name);
                    let hash = suffix(rng, 9);
                    let workload = Workload {
                        service: resource("Service", namespace, name),
                        replica_set: resource("ReplicaSet", namespace, &format!("{name}-{hash}")),
                        deployment,
                        pods: Vec::new(),
                        config_map: resource("ConfigMap", namespace, &format!("{name}-config")),
                        volume: stateful
                            .then(|| resource("PersistentVolumeClaim", namespace, &format!("data-{name}-0"))),
                        calls: Vec::new(),
                        revision: 1,
                    };
                    cluster.workloads.push(workload);
                }
            }
            // Each service calls one or two services of the next tier.
            for &(tier, index) in &tier_of {
                let next: Vec<usize> = tier_of
                    .iter()
                    .filter(|(t, _)| *t == tier + 1)
                    .map(|(_, i)| *i)
                    .collect();
                if next.is_empty() {
                    continue;
                }
                let mut calls = vec![*rng.pick(&next)];
                let other = *rng.pick(&next);
                if !calls.contains(&other) && rng.chance(0.6) {
                    calls.push(other);
                }
                cluster.workloads[index].calls = calls;
            }
            for index in first..cluster.workloads.len() {
                cluster.write_workload(rng, index, start, namespace == "prod");
            }
        }
        cluster
    }

    fn write_workload(&mut self, rng: &mut Rng, index: usize, ts: EventTime, prod: bool) {
        let w = self.workloads[index].clone();
        self.edge(ts, &w.deployment, "OWNS", &w.replica_set, TopologyOp::Upsert);
        for &callee in &w.calls {
            let callee = self.workloads[callee].service.clone();
            self.edge(ts, &w.service, "CALLS", &callee, TopologyOp::Upsert);
        }
        let replicas = if prod { rng.below(2, 4) } else { 1 };
        for _ in 0..replicas {
            self.add_pod(rng, index, ts);
        }
    }

    /// Adds a pod to a workload's current ReplicaSet.
    pub fn add_pod(&mut self, rng: &mut Rng, index: usize, ts: EventTime) -> ResourceRef {
        let w = self.workloads[index].clone();
        let pod = resource(
            "Pod",
            &w.service.namespace,
            &format!("{}-{}", w.replica_set.name, suffix(rng, 5)),
        );
        let node = rng.pick(&self.nodes).clone();
        self.edge(ts, &w.replica_set, "OWNS", &pod, TopologyOp::Upsert);
        self.edge(ts, &w.service, "SELECTS", &pod, TopologyOp::Upsert);
        self.edge(ts, &pod, "RUNS_ON", &node, TopologyOp::Upsert);
        self.edge(ts, &pod, "USES", &w.config_map, TopologyOp::Upsert);
        if let Some(volume) = &w.volume {
            self.edge(ts, &pod, "MOUNTS", volume, TopologyOp::Upsert);
        }
        self.workloads[index].pods.push((pod.clone(), node));
        self.pod_lives.push((pod.clone(), ts, None));
        pod
    }

    /// Removes a pod's edges.
    pub fn remove_pod(&mut self, index: usize, pod: &ResourceRef, ts: EventTime) {
        let w = self.workloads[index].clone();
        let Some(position) = w.pods.iter().position(|(p, _)| p == pod) else {
            return;
        };
        let (_, node) = self.workloads[index].pods.remove(position);
        if let Some(life) = self.pod_lives.iter_mut().find(|(p, _, end)| p == pod && end.is_none()) {
            life.2 = Some(ts);
        }
        self.edge(ts, &w.replica_set, "OWNS", pod, TopologyOp::Delete);
        self.edge(ts, &w.service, "SELECTS", pod, TopologyOp::Delete);
        self.edge(ts, pod, "RUNS_ON", &node, TopologyOp::Delete);
        self.edge(ts, pod, "USES", &w.config_map, TopologyOp::Delete);
        if let Some(volume) = &w.volume {
            self.edge(ts, pod, "MOUNTS", volume, TopologyOp::Delete);
        }
    }

    /// A rolling update: a new ReplicaSet whose pods replace the old ones; the new pods.
    pub fn rollout(&mut self, rng: &mut Rng, index: usize, ts: EventTime) -> Vec<ResourceRef> {
        let w = self.workloads[index].clone();
        let revision = w.revision + 1;
        let new_set = resource(
            "ReplicaSet",
            &w.service.namespace,
            &format!("{}-{}", w.service.name, suffix(rng, 9)),
        );
        self.k8s(
            ts,
            &w.deployment,
            "ScalingReplicaSet",
            "info",
            &format!("Scaled up replica set {} to {}", new_set.name, w.pods.len()),
        );
        self.workloads[index].replica_set = new_set.clone();
        self.workloads[index].revision = revision;
        self.edge(ts, &w.deployment, "OWNS", &new_set, TopologyOp::Upsert);
        let mut new_pods = Vec::new();
        for (k, (old, _)) in w.pods.iter().enumerate() {
            let at = ts + 2_000 + 8_000 * k as u64;
            new_pods.push(self.add_pod(rng, index, at));
            self.remove_pod(index, old, at + 3_000);
        }
        self.edge(ts + 60_000, &w.deployment, "OWNS", &w.replica_set, TopologyOp::Delete);
        new_pods
    }

    /// Writes a topology change.
    pub fn edge(&mut self, ts: EventTime, from: &ResourceRef, relation: &str, to: &ResourceRef, op: TopologyOp) {
        self.push(
            ts,
            "state-watcher",
            EventBody::Topology(Box::new(TopologyChange {
                from: from.clone(),
                to: to.clone(),
                relation: relation.to_owned(),
                op,
            })),
        );
    }

    /// Writes a Kubernetes event, stamped by the kubelet's (possibly skewed) clock.
    pub fn k8s(&mut self, ts: EventTime, resource: &ResourceRef, reason: &str, severity: &str, message: &str) {
        let ts = ts.saturating_add_signed(self.kubelet_skew_ms);
        self.push(
            ts,
            "kubelet",
            EventBody::K8sEvent(Box::new(K8sEvent {
                resource: resource.clone(),
                reason: reason.to_owned(),
                severity: severity.to_owned(),
                message: message.to_owned(),
            })),
        );
    }

    /// Writes a log line.
    pub fn log(&mut self, ts: EventTime, resource: &ResourceRef, level: &str, message: &str) {
        self.push(
            ts,
            "vector",
            EventBody::Log(Box::new(LogRecord {
                resource: resource.clone(),
                level: level.to_owned(),
                message: message.to_owned(),
            })),
        );
    }

    /// Writes a metric sample about a pod or a node.
    pub fn metric(&mut self, ts: EventTime, about: &ResourceRef, metric: &str, value: f64) {
        let mut labels = BTreeMap::new();
        if about.kind == "Node" {
            labels.insert("node".to_owned(), about.name.clone());
        } else {
            labels.insert("pod".to_owned(), about.name.clone());
            labels.insert("namespace".to_owned(), about.namespace.clone());
        }
        self.push(
            ts,
            "prometheus",
            EventBody::Metric(Metric {
                metric: metric.into(),
                value: (value * 1e4).round() / 1e4,
                labels,
            }),
        );
    }

    fn push(&mut self, ts: EventTime, source: &str, body: EventBody) {
        self.events.push(Event {
            ts,
            tenant: self.tenant.as_str().into(),
            source: source.into(),
            body,
        });
    }

    /// Index of the workload a service (by name and namespace) belongs to.
    pub fn workload_named(&self, namespace: &str, name: &str) -> Option<usize> {
        self.workloads
            .iter()
            .position(|w| w.service.namespace == namespace && w.service.name == name)
    }

    /// Indexes of the workloads that call workload `index`.
    pub fn callers(&self, index: usize) -> Vec<usize> {
        (0..self.workloads.len())
            .filter(|&i| self.workloads[i].calls.contains(&index))
            .collect()
    }
}

/// Baseline levels of pod metrics, and how much they wander.
const POD_METRICS: [(&str, f64, f64); 4] = [
    ("cpu_usage_ratio", 0.35, 0.06),
    ("memory_usage_ratio", 0.55, 0.03),
    ("latency_p99_ms", 120.0, 12.0),
    ("error_rate", 0.002, 0.001),
];

/// Background noise and metrics of one cluster over `[start, end)`;
/// `overrides` holds the metric values faults impose, by (resource, metric, ts bucket).
fn background(cluster: &mut Cluster, rng: &mut Rng, config: &K8sConfig, end: EventTime, overrides: &Overrides) {
    let interval = config.metric_interval_s.max(1) * 1_000;
    let mut ts = config.start + rng.below(0, interval);
    while ts < end {
        let bucket = ts / interval;
        let pods: Vec<ResourceRef> = cluster
            .pod_lives
            .iter()
            .filter(|(_, from, to)| *from <= ts && to.is_none_or(|to| ts < to))
            .map(|(p, _, _)| p.clone())
            .collect();
        for pod in &pods {
            for (metric, level, spread) in POD_METRICS {
                let noise = (rng.uniform() - 0.5) * 2.0 * spread;
                let value = overrides
                    .get(&(pod.clone(), metric, bucket))
                    .copied()
                    .unwrap_or((level + noise).max(0.0));
                cluster.metric(ts + rng.below(0, 2_000), pod, metric, value);
            }
        }
        for node in cluster.nodes.clone() {
            for (metric, level, spread) in [("disk_usage_ratio", 0.5, 0.01), ("packet_loss_ratio", 0.001, 0.0005)] {
                let noise = (rng.uniform() - 0.5) * 2.0 * spread;
                let value = overrides
                    .get(&(node.clone(), metric, bucket))
                    .copied()
                    .unwrap_or((level + noise).max(0.0));
                cluster.metric(ts + rng.below(0, 2_000), &node, metric, value);
            }
        }
        // Logs and noise, per interval.
        for pod in &pods {
            if rng.chance(0.5) {
                let line = *rng.pick(&[
                    "handled request",
                    "cache refreshed",
                    "health check ok",
                    "connection pool resized",
                ]);
                cluster.log(ts + rng.below(0, interval), pod, "info", line);
            }
            if rng.chance(0.01) {
                let line = *rng.pick(&[
                    "slow query took 812ms",
                    "retrying request (attempt 2)",
                    "deprecated API used",
                ]);
                cluster.log(ts + rng.below(0, interval), pod, "warn", line);
            }
            if rng.chance(0.0015) {
                cluster.k8s(
                    ts + rng.below(0, interval),
                    pod,
                    "Unhealthy",
                    "warning",
                    "Readiness probe failed: HTTP probe failed with statuscode: 503",
                );
            }
            if rng.chance(0.0004) {
                cluster.log(
                    ts + rng.below(0, interval),
                    pod,
                    "error",
                    "unexpected EOF while reading request body",
                );
            }
        }
        ts += interval;
    }
}

/// Metric values faults impose: (resource, metric, sample bucket) → value.
pub type Overrides = BTreeMap<(ResourceRef, &'static str, u64), f64>;

/// Generates the scenario: events in delivery order, and the answer key.
pub fn generate(config: &K8sConfig) -> (Vec<Event>, AnswerKey) {
    let mut rng = Rng::new(config.seed);
    let mut events = Vec::new();
    let mut key = AnswerKey::default();
    // ~9 minutes between faults: 30 faults span about 4.5 hours.
    let span = u64::from(config.faults_per_tenant.max(1)) * 9 * 60_000 + 10 * 60_000;
    let end = config.start + span;
    for tenant in 0..config.tenants {
        let name = ["acme", "globex", "initech", "umbrella", "hooli"]
            .get(tenant as usize)
            .map_or_else(|| format!("tenant-{tenant:02}"), |n| (*n).to_owned());
        let mut cluster = Cluster::new(&name, &mut rng, config.start, config.hard);
        let mut overrides = Overrides::new();
        let faults = k8s_faults::inject(&mut cluster, &mut rng, config, &mut overrides, end);
        background(&mut cluster, &mut rng, config, end, &overrides);
        key.faults.extend(faults);
        events.append(&mut cluster.events);
    }
    deliver(&mut events, &mut rng, config.hard);
    key.faults
        .sort_by(|a, b| (&a.tenant, a.start).cmp(&(&b.tenant, b.start)));
    (events, key)
}

/// Orders events as a collector would deliver them: by time, with up to two
/// seconds of disorder, and (hard) some dropped and some duplicated.
fn deliver(events: &mut Vec<Event>, rng: &mut Rng, hard: bool) {
    let mut keyed: Vec<(EventTime, Event)> = Vec::with_capacity(events.len());
    for event in events.drain(..) {
        let protected = matches!(event.body, EventBody::Topology(_));
        if hard && !protected && rng.chance(0.01) {
            continue;
        }
        let jitter = if hard { rng.below(0, 2_000) } else { 0 };
        if hard && rng.chance(0.005) {
            keyed.push((event.ts + jitter + rng.below(0, 1_000), event.clone()));
        }
        keyed.push((event.ts + jitter, event));
    }
    keyed.sort_by_key(|(arrival, _)| *arrival);
    events.extend(keyed.into_iter().map(|(_, event)| event));
}

/// The fault kinds by name, for reports.
pub fn fault_names() -> Vec<&'static str> {
    FaultKind::ALL.iter().map(|kind| kind.name()).collect()
}
