"""A whole scenario: tenants set up, faults planned one after another (some
overlapping) with decoys, files written; the command line."""

from __future__ import annotations

import argparse
import json
import random
import sys

from .cluster import TENANT_NAMES, Tenant
from .faults_app import fault_bad_rollout, fault_config, fault_cpu_throttle, fault_oom, fault_quota, fault_secret_rotation
from .faults_infra import fault_cert_expiry, fault_db_slow, fault_disk_pressure, fault_dns, fault_kafka_broker, fault_node_down, fault_noisy_neighbour, fault_pvc_full
from .logs import chronic_error, start_pod_logs
from .metrics import ksm_scrape, relist, scrape
from .model import Fault, MIN, SEC
from .noise import cron_tick, noise_drain, noise_hpa, noise_probe_flap, noise_rollout
from .pods import create_pod, rollout
from .sim import Sim


FAULTS = {
    "oom_leak": fault_oom,
    "cpu_throttle": fault_cpu_throttle,
    "db_slow": fault_db_slow,
    "cert_expiry": fault_cert_expiry,
    "dns_overload": fault_dns,
    "quota_exhausted": fault_quota,
    "noisy_neighbour": fault_noisy_neighbour,
    "node_hang": fault_node_down,
    "bad_release": fault_bad_rollout,
    "config_edit": fault_config,
    "volume_full": fault_pvc_full,
    "secret_rotation": fault_secret_rotation,
    "broker_disk": fault_kafka_broker,
    "disk_pressure": fault_disk_pressure,
}


def decoys(sim, T, f, t):
    """Cause-like events elsewhere around the fault's start: a rollout, a config edit in
    staging under the same name, an OOM kill of a batch pod, a node cordon."""
    rng = sim.rng
    for _ in range(rng.randint(1, 2)):
        when = t + rng.randint(-6 * MIN, 2 * MIN)
        kind = rng.choice(["rollout", "staging-config", "batch-oom", "warning-elsewhere"])
        if kind == "rollout":
            cands = [w for w in T.workloads.values() if w.kind == "Deployment" and w.role in ("http", "worker")
                     and not T.reserved(w.key, when) and w.key not in f.reserved]
            if cands:
                w = rng.choice(cands)
                sim.at(max(when, sim.now), lambda now, w=w: None if T.reserved(w.key, now) else rollout(sim, T, w, now))
        elif kind == "staging-config":
            name = f.root[2] if f.root and f.root[0] == "ConfigMap" else rng.choice(
                [w.configmap for w in T.workloads.values() if w.ns == "staging" and w.configmap] or ["app-config"])
            sim.at(max(when, sim.now), lambda now, name=name: sim.watcher_event(
                T, now, ("ConfigMap", "staging", name), "Updated", "info",
                f"configmap staging/{name} updated (resourceVersion {rng.randint(10**6, 10**7)}): data keys changed: [LOG_LEVEL]"))
        elif kind == "batch-oom":
            def boom(now):
                pods = [p for w in T.cron_wl.values() for p in w.pods if p.alive]
                if pods:
                    p = rng.choice(pods)
                    sim.watcher_event(T, now, p.ref, "OOMKilled", "warning",
                                      f"container app terminated: OOMKilled (exit code 137), restart count 1")
            sim.at(max(when, sim.now), boom)
        else:
            def warn(now):
                pods = [p for w in T.workloads.values() if w.role == "http" and w.key not in f.reserved
                        and not T.reserved(w.key, now) for p in w.pods if p.alive]
                if pods:
                    p = rng.choice(pods)
                    sim.kevent(T, now, p.ref, "BackOff", "Warning",
                               f"Back-off restarting failed container {p.container} in pod {p.name}_{p.ns}", node=p.node)
            sim.at(max(when, sim.now), warn)
    f.hard.append("decoys")


def fault_trigger(ts, sim, T, order, left):
    """Plans the next fault (6 min before its start, on resources untouched for 10 min)."""
    rng = sim.rng
    start = ts + 6 * MIN
    T.left = left
    # this round's remaining types first; any type when none of those fits this cluster now
    # then the types this tenant has had least so far, so the mix stays balanced
    placed_so_far = {name: 0 for name in FAULTS}
    for done in T.faults:
        placed_so_far[done.fault_type] += 1
    others = [name for name in FAULTS if name not in order]
    others = sorted(rng.sample(others, len(others)), key=lambda name: placed_so_far[name])
    types = list(order) + others
    placed = None
    for name in types:
        f = Fault(tenant=T.name, fault_type=name)
        T.active = [a for a in T.active if a.until >= ts]
        T.active.append(f)
        f.until = start + 30 * MIN
        if FAULTS[name](sim, T, f, start):
            placed = f
            break
        T.active.remove(f)
    if placed is not None:
        T.faults.append(placed)
        if placed.fault_type in order:
            order.remove(placed.fault_type)
        if not order:
            order.extend(rng.sample(list(FAULTS), len(FAULTS)))
        if sim.hard and rng.random() < 0.5:
            decoys(sim, T, placed, start)
        left -= 1
        T.last_until = max(T.last_until, placed.until)
        # most faults come one after the other, after a quiet spell; some overlap an unrelated one
        if sim.hard and rng.random() < 0.2:
            nxt = ts + int(rng.uniform(0.5, 3) * MIN)
        else:
            nxt = placed.until - 7 * MIN + int(rng.uniform(0, 2) * MIN)
    else:
        nxt = ts + 2 * MIN
    if left <= 0:
        T.finished = T.last_until
        return
    sim.at(max(nxt, ts + 30 * SEC), fault_trigger, sim, T, order, left)


def setup_tenant(sim, T, args):
    rng = sim.rng
    T.pod_index = {}
    T.last_until = 0
    T.finished = None
    if args.easy:
        T.skew = {n: 0 for n in T.nodes}
    T.cron_wl = {}
    T.cert_expiry = {key: sim.t0 + rng.randint(20, 80) * 86_400_000 for key in T.certs}
    T.pvc_free = {}
    T.agent_suffix = {n: T.suffix(5) for n in T.nodes}
    T.node_phase = {n: rng.randint(0, 29_000) for n in T.nodes}
    T.node_mem = {n: rng.choice([16, 32, 64]) * (1 << 30) * rng.uniform(0.3, 0.6) for n in T.nodes}
    T.node_fs = {n: rng.uniform(30, 70) * (1 << 30) for n in T.nodes}
    T.log_gap = {"http": 9000, "ingress": 4000, "worker": 15000, "db": 40000, "cache": 90000, "search": 60000,
                 "queue": 45000, "dns": 20000, "agent": 10**9}
    t = sim.t0 - 5 * MIN
    for wl in list(T.workloads.values()):
        if wl.kind == "DaemonSet":
            for node in T.nodes:
                create_pod(sim, T, wl, t, node=node, announce=False)
            continue
        for i in range(wl.replicas):
            pod = create_pod(sim, T, wl, t, index=i, announce=False)
            start_pod_logs(sim, T, pod, sim.t0)
    relist(t, sim, T)
    sim.at(sim.t0, scrape, sim, T, args.scrape * SEC)
    sim.at(sim.t0 + 5000, ksm_scrape, sim, T, 60 * SEC)
    sim.at(sim.t0 + int(rng.uniform(5, 20) * MIN), noise_rollout, sim, T)
    sim.at(sim.t0 + int(rng.uniform(5, 25) * MIN), noise_hpa, sim, T)
    sim.at(sim.t0 + int(rng.uniform(1, 4) * MIN), noise_probe_flap, sim, T)
    sim.at(sim.t0 + int(rng.uniform(20, 70) * MIN), noise_drain, sim, T)
    for spec in T.cronjobs:
        every = spec[2]
        first = sim.t0 + (every - (sim.t0 // MIN) % every) * MIN
        sim.at(first, cron_tick, sim, T, spec)
    chronic = [w for w in T.workloads.values() if w.role == "http" and w.ns != "staging"]
    T.chronic = rng.choice(chronic).key
    sim.at(sim.t0 + rng.randint(0, 5 * MIN), chronic_error, sim, T)
    order = rng.sample(list(FAULTS), len(FAULTS))
    sim.at(sim.t0 + int(rng.uniform(8, 12) * MIN), fault_trigger, sim, T, order, args.faults)


def main(argv=None):
    p = argparse.ArgumentParser(description="Writes a labelled RCA scenario (events JSONL and answer key) for pulse eval rca.")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tenants", type=int, default=3)
    p.add_argument("--faults", type=int, default=30, help="faults per tenant (~12 min of event time each)")
    p.add_argument("--out", required=True, help="events JSONL")
    p.add_argument("--answers", required=True, help="answer key JSON")
    p.add_argument("--start", type=int, default=1_767_261_600_000, help="event time of the start, epoch ms")
    p.add_argument("--scrape", type=int, default=30, help="Prometheus scrape interval, s")
    p.add_argument("--easy", action="store_true", help="no drops, duplicates, decoys, overlaps or downgraded causes")
    args = p.parse_args(argv)
    sim = Sim(args)
    sim.now = sim.t0
    names = sim.rng.sample(TENANT_NAMES, args.tenants) if args.tenants <= len(TENANT_NAMES) else \
        [f"tenant-{i}" for i in range(args.tenants)]
    tenants = []
    for name in names:
        T = Tenant(name, random.Random(sim.rng.getrandbits(64)), size=1)
        T.rng = sim.rng
        setup_tenant(sim, T, args)
        tenants.append(T)
    with open(args.out, "w", buffering=1 << 20) as out:
        sim.run(tenants, out)
    until = sim.now
    faults = []
    for T in tenants:
        for f in T.faults:
            if f.end is None or f.root is None:
                print(f"warning: {T.name} {f.fault_type} at {f.start} showed no symptom; left out of the key",
                      file=sys.stderr)
                continue
            if f.end > until:
                continue
            faults.append(f.answer(T))
    faults.sort(key=lambda a: (a["start"], a["tenant"]))
    with open(args.answers, "w") as out:
        json.dump({"faults": faults}, out, indent=1)
    by_type = {}
    for a in faults:
        by_type[a["fault_type"]] = by_type.get(a["fault_type"], 0) + 1
    print(f"{sim.counts['lines']} events ({sim.counts['dropped']} dropped, {sim.counts['duplicated']} duplicated), "
          f"{len(faults)} faults over {(until - sim.t0) / 3_600_000:.1f} h: "
          + ", ".join(f"{k}={v}" for k, v in sorted(by_type.items())))
