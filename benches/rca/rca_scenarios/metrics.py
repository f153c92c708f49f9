"""Scrapes (cAdvisor, recording rules, node-exporter, kube-state-metrics, exporters)
and the watcher's periodic re-list of the topology."""

from __future__ import annotations

import math

from .model import MIN
from .pods import pod_edges
from .sim import effect_value


def scrape(ts, sim, T, interval):
    """Every pod, service and node sample at its own offset in the interval."""
    rng = sim.rng
    for wl in list(T.workloads.values()) + list(T.cron_wl.values()):
        for pod in list(wl.pods):
            if not pod.alive or pod.node in T.down:
                continue
            t = ts + pod.phase
            key = ("pod", pod.ns, pod.name)
            labels = {"namespace": pod.ns, "pod": pod.name, "container": pod.container, "node": pod.node}
            pod.mem = max(pod.mem * 0.98 + 0.02 * wl.mem_limit * wl.mem_frac + rng.gauss(0, wl.mem_limit * 0.004), 1 << 20)
            mem = effect_value(T, key, "mem", t, pod.mem)
            mem = min(mem, wl.mem_limit * 0.995)
            sim.metric(T, t, "container_memory_working_set_bytes", mem, labels)
            if wl.kind == "DaemonSet":
                continue
            cpu = effect_value(T, key, "cpu", t, wl.cpu_base * rng.uniform(0.7, 1.3) * diurnal(ts, T))
            cpu = effect_value(T, ("wl",) + wl.key, "cpu", t, cpu)
            if wl.cpu_limit:
                cpu = min(cpu, wl.cpu_limit)
            pod.cpu_usage = cpu
            sim.metric(T, t, "node_namespace_pod_container:container_cpu_usage_seconds_total:sum_irate", cpu, labels)
            if wl.cpu_limit:
                periods = int(interval / 100)
                ratio = min(1.0, max(0.0, (cpu / wl.cpu_limit - 0.6) * 0.4 + rng.uniform(0, 0.02)))
                ratio = effect_value(T, key, "throttle", t, ratio)
                ratio = effect_value(T, ("wl",) + wl.key, "throttle", t, ratio)
                pod.periods += periods
                pod.throttled += int(periods * ratio)
                small = {"namespace": pod.ns, "pod": pod.name, "container": pod.container}
                sim.metric(T, t, "container_cpu_cfs_periods_total", pod.periods, small)
                sim.metric(T, t, "container_cpu_cfs_throttled_periods_total", pod.throttled, small)
            if wl.lang == "postgres":
                tx = effect_value(T, key, "pg_tx", t, rng.uniform(0.05, 0.9))
                sim.metric(T, t, "pg_stat_activity_max_tx_duration", tx,
                           {"namespace": pod.ns, "pod": pod.name, "datname": wl.name.split("-")[0], "state": "active"})
                active = effect_value(T, key, "pg_active", t, rng.randint(2, 12))
                sim.metric(T, t, "pg_stat_activity_count", active,
                           {"namespace": pod.ns, "pod": pod.name, "datname": wl.name.split("-")[0], "state": "active"})
            if wl.lang == "kafka":
                urp = effect_value(T, ("kafka-urp",), "urp", t, 0)
                sim.metric(T, t, "kafka_server_replicamanager_underreplicatedpartitions", urp,
                           {"namespace": pod.ns, "pod": pod.name})
            if wl.lang == "coredns":
                p99 = effect_value(T, key, "dns_p99", t, rng.uniform(0.001, 0.004))
                sim.metric(T, t, "namespace_pod:coredns_dns_request_duration_seconds:p99", p99,
                           {"namespace": pod.ns, "pod": pod.name, "server": "dns://:53"})
    # recording rules: per service request rate, p99 latency, error ratio
    for wl in T.workloads.values():
        if wl.role not in ("http", "ingress") or not wl.pods:
            continue
        t = ts + 12_000
        labels = {"namespace": wl.ns, "service": wl.name}
        svc = ("svc", wl.ns, wl.name)
        rps = effect_value(T, svc, "rps", t, wl.base_rps * diurnal(ts, T) * rng.uniform(0.9, 1.1))
        lat = effect_value(T, svc, "lat", t, wl.base_lat * rng.lognormvariate(0, 0.12))
        err = effect_value(T, svc, "err", t, wl.base_err * rng.lognormvariate(0, 0.5))
        if rng.random() < 0.01:  # a GC pause or a slow client: a one-sample spike that means nothing
            lat *= rng.uniform(3, 8)
        sim.metric(T, t, "namespace_service:http_requests:rate1m", rps, labels)
        sim.metric(T, t, "namespace_service:http_request_duration_seconds:p99", lat, labels)
        sim.metric(T, t, "namespace_service:http_request_errors:ratio_rate1m", min(err, 1.0), labels)
    for node in T.nodes:
        if node in T.down:
            continue
        t = ts + T.node_phase[node]
        key = ("node", node)
        labels = {"node": node, "instance": f"{node}:9100", "job": "node-exporter"}
        used = sum(p.cpu_usage for wl in list(T.workloads.values()) + list(T.cron_wl.values()) for p in wl.pods
                   if p.node == node and p.alive)
        util = effect_value(T, key, "cpu", t, min(0.98, 0.08 + used / 8 + rng.uniform(-0.02, 0.02)))
        sim.metric(T, t, "instance:node_cpu_utilisation:rate5m", min(util, 1.0), labels)
        avail = effect_value(T, key, "mem", t, T.node_mem[node] * rng.uniform(0.97, 1.03))
        sim.metric(T, t, "node_memory_MemAvailable_bytes", max(avail, 20 << 20), labels)
        fs = effect_value(T, key, "fs", t, T.node_fs[node])
        sim.metric(T, t, "node_filesystem_avail_bytes", fs,
                   dict(labels, mountpoint="/", device="/dev/nvme0n1p1", fstype="xfs"))
    sim.at(ts + interval, scrape, sim, T, interval)


def ksm_scrape(ts, sim, T, interval):
    """kube-state-metrics and kubelet volume stats, on a slower interval."""
    rng = sim.rng
    t = ts + 7_000
    for wl in T.workloads.values():
        for pod in wl.pods:
            if not pod.alive or wl.kind == "DaemonSet":
                continue
            labels = {"namespace": pod.ns, "pod": pod.name, "container": pod.container}
            sim.metric(T, t, "kube_pod_container_resource_limits", wl.mem_limit,
                       dict(labels, resource="memory", unit="byte", node=pod.node))
            sim.metric(T, t, "kube_pod_container_status_restarts_total", pod.restarts, labels)
            if wl.pvc and wl.kind == "StatefulSet":
                pvc = f"{wl.pvc}-{pod.name}"
                cap = T.pvcs.setdefault((wl.ns, pvc), rng.choice([20, 50, 100, 200]) * (1 << 30))
                avail = effect_value(T, ("pvc", wl.ns, pvc), "avail", t, cap * T.pvc_free.setdefault((wl.ns, pvc), rng.uniform(0.35, 0.8)))
                sim.metric(T, t, "kubelet_volume_stats_available_bytes", avail,
                           {"namespace": wl.ns, "persistentvolumeclaim": pvc, "node": pod.node})
                sim.metric(T, t, "kubelet_volume_stats_capacity_bytes", cap,
                           {"namespace": wl.ns, "persistentvolumeclaim": pvc, "node": pod.node})
    for node in T.nodes:
        ready = 0 if node in T.down else 1
        sim.metric(T, t, "kube_node_status_condition", ready, {"node": node, "condition": "Ready", "status": "true"})
    for ns, q in T.quota.items():
        used = effect_value(T, ("quota", ns), "used", t, quota_used(T, ns))
        base = {"namespace": ns, "resourcequota": q["name"], "resource": "limits.cpu"}
        sim.metric(T, t, "kube_resourcequota", q["hard"], dict(base, type="hard"))
        sim.metric(T, t, "kube_resourcequota", min(used, q["hard"]), dict(base, type="used"))
    for key, current in T.hpas.items():
        wl = T.workloads[key]
        labels = {"namespace": wl.ns, "horizontalpodautoscaler": wl.name}
        desired = effect_value(T, ("hpa",) + key, "desired", t, len(wl.pods))
        sim.metric(T, t, "kube_horizontalpodautoscaler_status_desired_replicas", desired, labels)
        sim.metric(T, t, "kube_horizontalpodautoscaler_status_current_replicas", len(wl.pods), labels)
    for (ns, name), wl in T.certs.items():
        labels = {"namespace": ns, "name": name, "issuer_name": "internal-ca"}
        expiry = T.cert_expiry[(ns, name)]
        sim.metric(T, t, "certmanager_certificate_expiration_timestamp_seconds", expiry / 1000, labels)
        ready = 0 if expiry <= t else 1
        sim.metric(T, t, "certmanager_certificate_ready_status", ready, dict(labels, condition="True"))
    lag = effect_value(T, ("kafka-lag",), "lag", t, rng.randint(0, 300))
    sim.metric(T, t, "kafka_consumergroup_lag_sum", lag, {"namespace": "messaging", "consumergroup": "order-worker", "topic": "orders"})
    sim.at(ts + interval, ksm_scrape, sim, T, interval)


def quota_used(T, ns):
    return sum((wl.cpu_limit or 0) * len(wl.pods) for wl in T.workloads.values() if wl.ns == ns and wl.kind != "DaemonSet")


def diurnal(ts, T):
    hour = (ts / 3_600_000) % 24
    return 0.75 + 0.35 * math.sin((hour - 9) / 24 * 2 * math.pi)


def relist(ts, sim, T):
    """The watcher's periodic resync: every edge again (repeated upserts)."""
    for wl in T.workloads.values():
        if wl.kind == "Deployment":
            sim.topo(T, ts, wl.key, "OWNS", ("ReplicaSet", wl.ns, f"{wl.name}-{wl.rs_hash}"))
        for pod in wl.pods:
            if pod.alive:
                pod_edges(sim, T, pod, ts + sim.rng.randint(0, 20_000))
    for wl in T.workloads.values():
        for callee in wl.calls:
            if wl.has_service:
                sim.topo(T, ts, wl.svc_ref, "CALLS", T.workloads[callee].svc_ref)
            else:
                # a worker without a Service: its pods are the callers
                for pod in wl.pods:
                    sim.topo(T, ts, pod.ref, "CALLS", T.workloads[callee].svc_ref)
    for (ns, name) in T.certs:
        sim.topo(T, ts, ("Certificate", ns, name), "OWNS", ("Secret", ns, name))
    sim.at(ts + 30 * MIN, relist, sim, T)
