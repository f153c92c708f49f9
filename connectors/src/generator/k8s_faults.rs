//! Faults the `k8s` profile injects, their symptoms, and routine changes.
//!
//! A fault has a root cause (a pod, a node, a Deployment or a ConfigMap)
//! and shows up the way it does in a real cluster: metric evidence first
//! (memory climbing to its limit, CPU saturated, latency up), then the
//! cause event (often only a warning, stamped by the kubelet's skewed
//! clock), then error logs on the callers of the failing service and on
//! their callers, seconds apart. In the hard setting each fault may get a
//! decoy (a cause-like event nearby that is not the cause) and a concurrent
//! unrelated fault.

use pulse_core::{EventTime, ResourceRef};

use super::k8s::{Cluster, FaultAnswer, K8sConfig, Overrides, Rng};

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// A container killed at its memory limit.
    OomKill,
    /// A container throttled at its CPU limit.
    CpuThrottling,
    /// A node short of disk evicting pods.
    DiskPressure,
    /// Slow network to one pod.
    NetworkDelay,
    /// Packet loss on one node.
    PacketLoss,
    /// A rollout of a broken version.
    BadRollout,
    /// A broken configuration change.
    BadConfigMap,
    /// A rollout whose image cannot be pulled.
    ImagePull,
    /// A volume that cannot be mounted.
    VolumeMount,
}

impl FaultKind {
    /// Every kind.
    pub const ALL: [FaultKind; 9] = [
        FaultKind::OomKill,
        FaultKind::CpuThrottling,
        FaultKind::DiskPressure,
        FaultKind::NetworkDelay,
        FaultKind::PacketLoss,
        FaultKind::BadRollout,
        FaultKind::BadConfigMap,
        FaultKind::ImagePull,
        FaultKind::VolumeMount,
    ];

    /// The name in the answer key.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::OomKill => "oom_kill",
            FaultKind::CpuThrottling => "cpu_throttling",
            FaultKind::DiskPressure => "disk_pressure",
            FaultKind::NetworkDelay => "network_delay",
            FaultKind::PacketLoss => "packet_loss",
            FaultKind::BadRollout => "bad_rollout",
            FaultKind::BadConfigMap => "bad_configmap",
            FaultKind::ImagePull => "image_pull",
            FaultKind::VolumeMount => "volume_mount",
        }
    }
}

/// Sets a metric's value over `[from, to)`, ramping linearly from `low` to `high`.
fn ramp(
    overrides: &mut Overrides,
    interval_ms: u64,
    about: &ResourceRef,
    metric: &'static str,
    (from, to): (EventTime, EventTime),
    (low, high): (f64, f64),
) {
    let (first, last) = (from / interval_ms, to / interval_ms);
    for bucket in first..=last {
        let progress = if last == first {
            1.0
        } else {
            (bucket - first) as f64 / (last - first) as f64
        };
        overrides.insert((about.clone(), metric, bucket), low + (high - low) * progress);
    }
}

/// Error logs up the call graph from workload `origin`: its callers after a
/// few seconds, theirs a little later. Returns the resources that logged.
fn propagate(
    cluster: &mut Cluster,
    rng: &mut Rng,
    origin: usize,
    t0: EventTime,
    hard: bool,
) -> Vec<(ResourceRef, EventTime)> {
    let mut logged = Vec::new();
    let mut level = vec![origin];
    for depth in 1..=2u64 {
        let mut next = Vec::new();
        for &callee in &level {
            for caller in cluster.callers(callee) {
                if next.contains(&caller) {
                    continue;
                }
                next.push(caller);
                let callee_name = cluster.workloads[callee].service.name.clone();
                let pods: Vec<ResourceRef> = cluster.workloads[caller].pods.iter().map(|(p, _)| p.clone()).collect();
                for pod in pods.iter().take(rng.below(1, 3) as usize) {
                    let level_name = if hard && depth == 2 && rng.chance(0.3) {
                        "warn"
                    } else {
                        "error"
                    };
                    for _ in 0..rng.below(1, 4) {
                        let at = t0 + depth * 4_000 + rng.below(0, 12_000 * depth);
                        let message = format!(
                            "{} {}",
                            rng.pick(&["upstream request to", "timeout calling", "503 from"]),
                            callee_name
                        );
                        cluster.log(at, pod, level_name, &message);
                        logged.push((pod.clone(), at));
                    }
                }
            }
        }
        level = next;
    }
    logged
}

/// The resources that name a root cause: it and, for a pod, its ReplicaSet and Deployment.
fn accepted(cluster: &Cluster, cause: &ResourceRef) -> Vec<ResourceRef> {
    let mut names = vec![cause.clone()];
    for w in &cluster.workloads {
        if w.pods.iter().any(|(p, _)| p == cause) || cause.name.starts_with(&format!("{}-", w.replica_set.name)) {
            names.push(w.replica_set.clone());
            names.push(w.deployment.clone());
        }
        if cause.kind == "Pod"
            && cause.namespace == w.service.namespace
            && cause.name.starts_with(&format!("{}-", w.service.name))
            && !names.contains(&w.deployment)
        {
            names.push(w.deployment.clone());
        }
    }
    names
}

/// Injects `config.faults_per_tenant` faults into `cluster`; their answers.
pub fn inject(
    cluster: &mut Cluster,
    rng: &mut Rng,
    config: &K8sConfig,
    overrides: &mut Overrides,
    end: EventTime,
) -> Vec<FaultAnswer> {
    let interval = config.metric_interval_s.max(1) * 1_000;
    let mut answers = Vec::new();
    let mut t = config.start + 8 * 60_000;
    let offset = rng.below(0, 9) as usize;
    let mut routine_at = config.start + rng.below(5 * 60_000, 20 * 60_000);
    for i in 0..config.faults_per_tenant as usize {
        let kind = FaultKind::ALL[(i + offset) % FaultKind::ALL.len()];
        let concurrent = config.hard && i > 0 && rng.chance(0.2);
        t = if concurrent {
            t + rng.below(5_000, 40_000)
        } else {
            t + 9 * 60_000 + rng.below(0, 120_000) - 60_000
        };
        if t + 5 * 60_000 >= end {
            break;
        }
        // The cluster changes in time order: routine changes before this fault first.
        while routine_at + 6 * 60_000 < t {
            routine_change(cluster, rng, routine_at);
            routine_at += rng.below(10 * 60_000, 25 * 60_000);
        }
        let answer = inject_one(cluster, rng, config, overrides, interval, kind, t);
        answers.push(answer);
    }
    while routine_at < end {
        routine_change(cluster, rng, routine_at);
        routine_at += rng.below(10 * 60_000, 25 * 60_000);
    }
    answers
}

fn inject_one(
    cluster: &mut Cluster,
    rng: &mut Rng,
    config: &K8sConfig,
    overrides: &mut Overrides,
    interval: u64,
    kind: FaultKind,
    t: EventTime,
) -> FaultAnswer {
    let hard = config.hard;
    let prod: Vec<usize> = (0..cluster.workloads.len())
        .filter(|&i| cluster.workloads[i].service.namespace == "prod" || rng.chance(0.1))
        .collect();
    let mut origin = *rng.pick(&prod);
    if kind == FaultKind::VolumeMount || kind == FaultKind::NetworkDelay {
        let stateful: Vec<usize> = prod
            .iter()
            .copied()
            .filter(|&i| cluster.workloads[i].volume.is_some())
            .collect();
        if !stateful.is_empty() {
            origin = *rng.pick(&stateful);
        }
    }
    if hard && rng.chance(0.6) {
        decoy(cluster, rng, origin, t);
    }
    let warn_or = |rng: &mut Rng, severity: &'static str| if hard && rng.chance(0.5) { "warning" } else { severity };
    let pod = cluster.workloads[origin].pods[0].0.clone();
    let mut symptoms: Vec<(ResourceRef, EventTime)> = Vec::new();
    let (cause, cause_ts) = match kind {
        FaultKind::OomKill => {
            ramp(
                overrides,
                interval,
                &pod,
                "memory_usage_ratio",
                (t - 5 * 60_000, t),
                (0.62, 0.985),
            );
            let severity = warn_or(rng, "error");
            cluster.k8s(
                t,
                &pod,
                "OOMKilled",
                severity,
                "Container app was OOMKilled (exit code 137)",
            );
            cluster.k8s(
                t + 9_000,
                &pod,
                "BackOff",
                "warning",
                "Back-off restarting failed container app",
            );
            cluster.log(
                t + 2_000,
                &pod,
                "error",
                "worker process exited unexpectedly, restarting",
            );
            symptoms.push((pod.clone(), t + 2_000));
            (pod, t)
        }
        FaultKind::CpuThrottling => {
            ramp(
                overrides,
                interval,
                &pod,
                "cpu_usage_ratio",
                (t - 4 * 60_000, t + 60_000),
                (0.97, 0.99),
            );
            ramp(
                overrides,
                interval,
                &pod,
                "latency_p99_ms",
                (t - 3 * 60_000, t + 60_000),
                (600.0, 900.0),
            );
            cluster.k8s(
                t - 2 * 60_000,
                &pod,
                "CPUThrottlingHigh",
                "warning",
                "94% throttling of CPU in container app",
            );
            // The throttling starts with the CPU saturation, two minutes
            // before the alert event: that is when the fault started.
            (pod, t - 4 * 60_000)
        }
        FaultKind::DiskPressure => {
            let node = cluster.workloads[origin].pods[0].1.clone();
            ramp(
                overrides,
                interval,
                &node,
                "disk_usage_ratio",
                (t - 6 * 60_000, t + 60_000),
                (0.91, 0.99),
            );
            cluster.k8s(
                t - 40_000,
                &node,
                "NodeHasDiskPressure",
                "warning",
                "Node status is now: NodeHasDiskPressure",
            );
            let on_node: Vec<(usize, ResourceRef)> = (0..cluster.workloads.len())
                .flat_map(|w| {
                    let pods: Vec<(usize, ResourceRef)> = cluster.workloads[w]
                        .pods
                        .iter()
                        .filter(|(_, n)| *n == node)
                        .map(|(p, _)| (w, p.clone()))
                        .collect();
                    pods
                })
                .take(3)
                .collect();
            for (k, (w, evicted)) in on_node.iter().enumerate() {
                let at = t + 6_000 * k as u64;
                cluster.k8s(
                    at,
                    evicted,
                    "Evicted",
                    "error",
                    "The node was low on resource: ephemeral-storage.",
                );
                symptoms.push((evicted.clone(), at));
                if *w != origin {
                    symptoms.extend(propagate(cluster, rng, *w, at, hard));
                }
            }
            (node, t - 40_000)
        }
        FaultKind::NetworkDelay => {
            ramp(
                overrides,
                interval,
                &pod,
                "latency_p99_ms",
                (t - 3 * 60_000, t + 2 * 60_000),
                (1_400.0, 2_200.0),
            );
            cluster.log(t - 30_000, &pod, "warn", "replication lag increasing");
            (pod, t - 3 * 60_000)
        }
        FaultKind::PacketLoss => {
            let node = cluster.workloads[origin].pods[0].1.clone();
            ramp(
                overrides,
                interval,
                &node,
                "packet_loss_ratio",
                (t - 3 * 60_000, t + 60_000),
                (0.06, 0.09),
            );
            let on_node: Vec<ResourceRef> = cluster
                .workloads
                .iter()
                .flat_map(|w| w.pods.iter().filter(|(_, n)| *n == node).map(|(p, _)| p.clone()))
                .take(3)
                .collect();
            for (k, victim) in on_node.iter().enumerate() {
                ramp(
                    overrides,
                    interval,
                    victim,
                    "error_rate",
                    (t - 60_000, t + 60_000),
                    (0.08, 0.12),
                );
                let at = t + 3_000 * k as u64;
                cluster.log(at, victim, "error", "connection reset by peer");
                symptoms.push((victim.clone(), at));
            }
            (node, t - 3 * 60_000)
        }
        FaultKind::BadRollout => {
            let deployment = cluster.workloads[origin].deployment.clone();
            let new_pods = cluster.rollout(rng, origin, t - 90_000);
            for (k, new_pod) in new_pods.iter().enumerate() {
                let at = t + 8_000 * k as u64;
                cluster.log(
                    at,
                    new_pod,
                    "error",
                    "panic: runtime error: invalid memory address or nil pointer dereference",
                );
                cluster.k8s(
                    at + 5_000,
                    new_pod,
                    "BackOff",
                    "warning",
                    "Back-off restarting failed container app",
                );
                symptoms.push((new_pod.clone(), at));
            }
            (deployment, t - 90_000)
        }
        FaultKind::BadConfigMap => {
            let config_map = cluster.workloads[origin].config_map.clone();
            cluster.k8s(
                t - 60_000,
                &config_map,
                "Updated",
                "info",
                "ConfigMap updated by deploy-bot",
            );
            let pods: Vec<ResourceRef> = cluster.workloads[origin].pods.iter().map(|(p, _)| p.clone()).collect();
            for (k, victim) in pods.iter().enumerate() {
                let at = t + 4_000 * k as u64;
                cluster.log(
                    at,
                    victim,
                    "error",
                    "invalid configuration: key 'pool.size' must be a number",
                );
                symptoms.push((victim.clone(), at));
            }
            (config_map, t - 60_000)
        }
        FaultKind::ImagePull => {
            let new_pods = cluster.rollout(rng, origin, t - 60_000);
            let victim = new_pods.first().cloned().unwrap_or(pod);
            let image = format!(
                "registry.local/{}:v{}",
                cluster.workloads[origin].service.name, cluster.workloads[origin].revision
            );
            cluster.k8s(
                t - 40_000,
                &victim,
                "Failed",
                "warning",
                &format!("Failed to pull image \"{image}\": not found"),
            );
            cluster.k8s(
                t - 35_000,
                &victim,
                "ErrImagePull",
                warn_or(rng, "error"),
                "Error: ErrImagePull",
            );
            cluster.k8s(
                t,
                &victim,
                "ImagePullBackOff",
                "error",
                &format!("Back-off pulling image \"{image}\""),
            );
            symptoms.push((victim.clone(), t));
            (victim, t - 40_000)
        }
        FaultKind::VolumeMount => {
            let volume = cluster.workloads[origin].volume.clone();
            let name = volume.map_or_else(|| "data".to_owned(), |v| v.name);
            cluster.k8s(
                t - 30_000,
                &pod,
                "FailedMount",
                "warning",
                &format!("MountVolume.SetUp failed for volume \"{name}\": timed out"),
            );
            cluster.log(t, &pod, "error", "cannot open data directory: input/output error");
            symptoms.push((pod.clone(), t));
            (pod, t - 30_000)
        }
    };
    let propagated_from = t + 1_000;
    symptoms.extend(propagate(cluster, rng, origin, propagated_from, hard));
    let end = symptoms.iter().map(|(_, at)| *at).max().unwrap_or(t);
    let mut symptom_resources: Vec<ResourceRef> = symptoms.into_iter().map(|(r, _)| r).collect();
    symptom_resources.sort();
    symptom_resources.dedup();
    FaultAnswer {
        tenant: cluster.tenant.clone(),
        fault_type: kind.name().to_owned(),
        accepted: accepted(cluster, &cause),
        root_cause: cause,
        start: cause_ts,
        end,
        symptoms: symptom_resources,
    }
}

/// A cause-like event near a fault that is not its cause.
fn decoy(cluster: &mut Cluster, rng: &mut Rng, origin: usize, t: EventTime) {
    let callers = cluster.callers(origin);
    match rng.below(0, 4) {
        0 => {
            let name = cluster.workloads[origin].service.name.clone();
            if let Some(twin) = cluster.workload_named("staging", &name).filter(|&w| w != origin) {
                let pod = cluster.workloads[twin].pods[0].0.clone();
                cluster.k8s(
                    t - rng.below(30_000, 240_000),
                    &pod,
                    "OOMKilled",
                    "warning",
                    "Container app was OOMKilled (exit code 137)",
                );
            }
        }
        1 if !callers.is_empty() => {
            let caller = *rng.pick(&callers);
            let at = t - rng.below(120_000, 300_000);
            cluster.rollout(rng, caller, at);
        }
        2 => {
            let node = rng.pick(&cluster.nodes).clone();
            cluster.k8s(
                t - rng.below(30_000, 300_000),
                &node,
                "NodeHasDiskPressure",
                "warning",
                "Node status is now: NodeHasDiskPressure",
            );
        }
        _ => {
            let workload = callers.first().copied().unwrap_or(origin);
            let pod = cluster.workloads[workload].pods[0].0.clone();
            cluster.k8s(
                t - rng.below(60_000, 400_000),
                &pod,
                "CPUThrottlingHigh",
                "warning",
                "31% throttling of CPU in container app",
            );
        }
    }
}

/// One routine rollout, scale-up or harmless config change.
fn routine_change(cluster: &mut Cluster, rng: &mut Rng, t: EventTime) {
    let workload = rng.below(0, cluster.workloads.len() as u64) as usize;
    match rng.below(0, 3) {
        0 => {
            cluster.rollout(rng, workload, t);
        }
        1 => {
            let pod = cluster.add_pod(rng, workload, t);
            let deployment = cluster.workloads[workload].deployment.clone();
            cluster.k8s(
                t,
                &deployment,
                "ScalingReplicaSet",
                "info",
                &format!("Scaled up to add {}", pod.name),
            );
        }
        _ => {
            let config_map = cluster.workloads[workload].config_map.clone();
            cluster.k8s(t, &config_map, "Updated", "info", "ConfigMap updated by deploy-bot");
        }
    }
}
