#!/usr/bin/env python3
"""Independent labelled root-cause scenarios for `pulse eval rca`.

A held-out measuring stick for the incident operator: it simulates Kubernetes
clusters the way their exporters, kubelets, controllers and applications report
them (kube Events as Normal/Warning, container logs in each runtime's own style,
cAdvisor / kube-state-metrics / node-exporter / recording-rule metrics with their
real names and labels, a state watcher for topology), injects faults with a known
root cause, and writes

* an events file (JSONL, the pulse event envelope, mixed tenants, in *arrival*
  order: a few seconds out of event-time order), and
* an answer key (JSON, the `AnswerKey` shape `pulse eval rca --answers` reads).

It was written without reading pulse's own `k8s` generator or its incident
operator, so that scoring on it says whether a ranker generalises. Standard
library only; the same `--seed` always writes the same files.

    python3 benches/rca/gen_scenarios.py --seed 1 --out ev.jsonl --answers key.json
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import random
import sys
from dataclasses import dataclass, field

SEC = 1000
MIN = 60 * SEC

# Kubernetes' rand.SafeEncodeString alphabet: what ReplicaSet hashes and pod
# suffixes are drawn from (no vowels, no 0/1/3).
K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# --------------------------------------------------------------------------- model


@dataclass(eq=False)
class Workload:
    """A Deployment, StatefulSet or DaemonSet, and the Service in front of it."""

    kind: str
    ns: str
    name: str
    role: str  # http | db | cache | queue | search | dns | worker | ingress | agent
    lang: str  # go | java | python | node | nginx | postgres | redis | kafka | es | coredns
    replicas: int
    calls: list = field(default_factory=list)  # workload keys this one calls
    has_service: bool = True
    hpa: bool = False
    mem_limit: int = 512 << 20
    cpu_limit: float | None = 1.0
    mem_frac: float = 0.45
    cpu_base: float = 0.15
    base_lat: float = 0.08
    base_err: float = 0.001
    base_rps: float = 40.0
    configmap: str | None = None
    secrets: list = field(default_factory=list)
    pvc: str | None = None  # StatefulSet volumeClaimTemplate name
    rs_hash: str = ""
    pods: list = field(default_factory=list)
    port: int = 8080

    @property
    def key(self):
        return (self.kind, self.ns, self.name)

    @property
    def svc_ref(self):
        return ("Service", self.ns, self.name)


@dataclass(eq=False)
class Pod:
    """A running pod and the counters its exporters report."""

    name: str
    ns: str
    wl: Workload
    owner: tuple  # (kind, ns, name) of the ReplicaSet / StatefulSet / DaemonSet / Job
    node: str
    ip: str
    container: str
    alive: bool = True
    mem: float = 0.0
    periods: int = 0
    throttled: int = 0
    restarts: int = 0
    cpu_usage: float = 0.0
    phase: int = 0  # scrape offset within the interval, ms
    job: tuple | None = None  # (CronJob, Job) refs for batch pods

    @property
    def ref(self):
        return ("Pod", self.ns, self.name)


@dataclass
class Fault:
    """One injected fault and what the answer key says about it."""

    tenant: str
    fault_type: str
    root: tuple | None = None
    accepted: list = field(default_factory=list)
    start: int | None = None
    end: int | None = None
    symptoms: dict = field(default_factory=dict)  # ref -> first ts
    hard: list = field(default_factory=list)
    detail: str = ""
    reserved: set = field(default_factory=set)
    until: int = 0

    def cause_at(self, ts):
        if self.start is None or ts < self.start:
            self.start = ts

    def answer(self, tenant):
        symptoms = set()
        for ref in self.symptoms:
            symptoms.add(ref)
            if ref[0] == "Pod":
                symptoms.update(tenant.owner_chain_of(ref))
        hard = list(self.hard)
        node = None
        if self.root[0] == "Node":
            node = self.root[2]
        elif self.root in tenant.pod_index:
            node = tenant.pod_index[self.root].node
        skew = tenant.skew.get(node, 0)
        if abs(skew) > 500:
            hard.append("cause-clock-ahead" if skew > 0 else "cause-clock-behind")
        return {
            "tenant": self.tenant,
            "fault_type": self.fault_type,
            "root_cause": ref_json(self.root),
            "accepted": [ref_json(r) for r in self.accepted],
            "start": self.start,
            "end": self.end,
            "symptoms": [ref_json(r) for r in sorted(symptoms)],
            "hard_cases": hard,
            "detail": self.detail,
        }


def ref_json(ref):
    return {"kind": ref[0], "namespace": ref[1], "name": ref[2]}


# ------------------------------------------------------------------------ catalogue

# name, ns, kind, role, lang, replicas, calls, extra
CATALOGUE = [
    ("ingress-nginx-controller", "ingress-nginx", "Deployment", "ingress", "nginx", 2, ["storefront", "api-gateway"], {}),
    ("storefront", "web", "Deployment", "http", "node", 3, ["api-gateway"], {"hpa": True}),
    ("api-gateway", "shop", "Deployment", "http", "go", 3,
     ["catalog", "cart", "checkout", "accounts", "search-api", "recommendations"], {"hpa": True}),
    ("catalog", "shop", "Deployment", "http", "java", 2, ["pg-main", "memcached"], {"hpa": True}),
    ("cart", "shop", "Deployment", "http", "go", 2, ["redis-cart"], {}),
    ("checkout", "shop", "Deployment", "http", "java", 2, ["payments", "orders", "inventory"], {"hpa": True}),
    ("orders", "shop", "Deployment", "http", "go", 2, ["orders-db", "kafka"], {}),
    ("inventory", "shop", "Deployment", "http", "python", 2, ["pg-main"], {}),
    ("recommendations", "shop", "Deployment", "http", "python", 2, ["catalog", "redis-shared"], {}),
    ("order-worker", "shop", "Deployment", "worker", "go", 2, ["orders-db", "kafka", "notifications"], {"has_service": False}),
    ("payments", "payments", "Deployment", "http", "java", 2, ["payments-db", "fraud-check"], {"tls": True}),
    ("fraud-check", "payments", "Deployment", "http", "python", 2, ["redis-shared"], {}),
    ("accounts", "identity", "Deployment", "http", "go", 2, ["pg-main", "redis-sessions"], {"tls": True}),
    ("search-api", "search", "Deployment", "http", "java", 2, ["elasticsearch"], {}),
    ("notifications", "messaging", "Deployment", "http", "node", 1, [], {}),
    ("pg-main", "data", "StatefulSet", "db", "postgres", 2, [], {"pvc": "pgdata"}),
    ("orders-db", "data", "StatefulSet", "db", "postgres", 1, [], {"pvc": "pgdata"}),
    ("payments-db", "payments", "StatefulSet", "db", "postgres", 1, [], {"pvc": "pgdata"}),
    ("redis-cart", "data", "StatefulSet", "cache", "redis", 1, [], {}),
    ("redis-shared", "data", "StatefulSet", "cache", "redis", 3, [], {}),
    ("redis-sessions", "identity", "StatefulSet", "cache", "redis", 1, [], {}),
    ("memcached", "data", "Deployment", "cache", "memcached", 2, [], {}),
    ("elasticsearch", "search", "StatefulSet", "search", "es", 3, [], {"pvc": "data"}),
    ("kafka", "messaging", "StatefulSet", "queue", "kafka", 3, [], {"pvc": "data"}),
    ("coredns", "kube-system", "Deployment", "dns", "coredns", 2, [], {}),
]
# Services that may be left out of a tenant's cluster (the others are its spine).
OPTIONAL = {"recommendations", "fraud-check", "notifications", "memcached", "redis-sessions", "search-api",
            "elasticsearch", "inventory"}
STAGING = ["storefront", "api-gateway", "catalog", "checkout", "pg-main"]
DAEMONSETS = [("fluent-bit", "logging"), ("node-exporter", "monitoring"), ("kube-proxy", "kube-system")]
CRONJOBS = [  # name, ns, every (min), run (min), lang
    ("cache-warmer", "batch", 10, (1, 2), "python"),
    ("report-generator", "batch", 30, (3, 7), "java"),
    ("db-backup", "data", 60, (4, 9), "postgres"),
    ("invoice-exporter", "batch", 45, (2, 4), "go"),
]
TENANT_NAMES = ["northwind", "globex", "initech", "umbrella", "hooli", "vandelay", "soylent", "tyrell", "wonka"]
REGIONS = ["eu-west-1", "us-east-2", "ap-southeast-1"]

ROLE_PROFILE = {  # role -> (mem_limit MiB, cpu_limit, lat s, rps)
    "http": (768, 1.0, 0.09, 60.0),
    "ingress": (512, 2.0, 0.12, 300.0),
    "worker": (512, 0.5, 0.0, 0.0),
    "db": (4096, 2.0, 0.004, 0.0),
    "cache": (2048, 1.0, 0.001, 0.0),
    "search": (8192, 2.0, 0.02, 0.0),
    "queue": (6144, 2.0, 0.005, 0.0),
    "dns": (170, 0.2, 0.002, 0.0),
}


# ------------------------------------------------------------------------ tenants


class Tenant:
    """One cluster: nodes, workloads, their pods, and the faults running in it."""

    def __init__(self, name, rng, size):
        self.name = name
        self.rng = rng
        self.node_style = rng.choice(["eks", "gke", "aks"])
        self.region = rng.choice(REGIONS)
        self.cluster = rng.choice(["prod", "prd-main", "production", "live"]) + "-" + str(rng.randint(1, 4))
        n_nodes = rng.randint(6, 10) if size >= 1 else 4
        self.nodes = [self.node_name(i) for i in range(n_nodes)]
        self.cordoned = set()
        self.down = set()
        # Kubelet/container-runtime clocks: most nodes are in sync (chrony), one or
        # two drift by a second or two; their events and logs carry that skew.
        self.skew = {n: rng.randint(-150, 150) for n in self.nodes}
        for n in rng.sample(self.nodes, 2):
            self.skew[n] = rng.choice([-1, 1]) * rng.randint(900, 2400)
        self.workloads = {}
        self.by_name = {}
        self.callers = {}
        self.effects = {}
        self.faults = []
        self.active = []
        self.last_touched = {}
        self.last_noise_error = {}
        self.cronjobs = []
        self.quota = {}
        self.hpas = {}
        self.certs = {}
        self.pvcs = {}
        self.ips = set()
        self.build(size)

    # names ------------------------------------------------------------------
    def node_name(self, i):
        r = self.rng
        if self.node_style == "eks":
            return f"ip-10-{r.randint(0, 3)}-{r.randint(1, 254)}-{r.randint(1, 254)}.{self.region}.compute.internal"
        if self.node_style == "gke":
            pool = "default-pool" if i < 5 else "highmem-pool"
            return f"gke-{self.cluster}-{pool}-{r.randbytes(4).hex()}-{''.join(r.choices('abcdefghijklmnopqrstuvwxyz0123456789', k=4))}"
        return f"aks-nodepool{1 if i < 5 else 2}-{r.randint(10000000, 99999999)}-vmss{i:06x}"

    def suffix(self, n):
        return "".join(self.rng.choices(K8S_ALPHABET, k=n))

    def new_ip(self):
        while True:
            ip = f"10.{self.rng.choice([2, 3, 4])}.{self.rng.randint(0, 255)}.{self.rng.randint(2, 254)}"
            if ip not in self.ips:
                self.ips.add(ip)
                return ip

    # build ------------------------------------------------------------------
    def build(self, size):
        r = self.rng
        present = set()
        for name, ns, kind, role, lang, replicas, calls, extra in CATALOGUE:
            if name in OPTIONAL and r.random() < 0.25:
                continue
            present.add(name)
        for name, ns, kind, role, lang, replicas, calls, extra in CATALOGUE:
            if name not in present:
                continue
            mem, cpu, lat, rps = ROLE_PROFILE[role]
            wl = Workload(kind=kind, ns=ns, name=name, role=role, lang=lang,
                          replicas=max(1, replicas + (r.choice([0, 0, 1]) if role == "http" else 0)),
                          has_service=extra.get("has_service", True), hpa=extra.get("hpa", False),
                          mem_limit=int(mem * r.uniform(0.8, 1.3)) << 20, cpu_limit=cpu,
                          mem_frac=r.uniform(0.3, 0.6), cpu_base=cpu * r.uniform(0.08, 0.3),
                          base_lat=lat * r.uniform(0.6, 1.6), base_err=r.uniform(0.0002, 0.003),
                          base_rps=rps * r.uniform(0.5, 2.0), pvc=extra.get("pvc"))
            wl.calls = [("?", c) for c in calls if c in present]
            if role in ("http", "worker", "ingress"):
                wl.configmap = f"{name}-config"
            if role == "db":
                wl.secrets.append(f"{name}-credentials")
            if extra.get("tls"):
                wl.secrets.append(f"{name}-tls")
                self.certs[(ns, f"{name}-tls")] = wl
            self.add_workload(wl)
        # resolve callee names to keys; clients of a database hold its credentials
        for wl in list(self.workloads.values()):
            wl.calls = [self.by_name[c].key for _, c in wl.calls if c in self.by_name]
            for callee in wl.calls:
                target = self.workloads[callee]
                if target.role == "db":
                    wl.secrets.append(f"{target.name}-credentials@{target.ns}")
        # a staging namespace with services of the same names, one replica each
        for name in STAGING:
            if name not in self.by_name:
                continue
            prod = self.by_name[name]
            wl = Workload(kind=prod.kind, ns="staging", name=name, role=prod.role, lang=prod.lang, replicas=1,
                          mem_limit=prod.mem_limit // 2, cpu_limit=prod.cpu_limit, mem_frac=prod.mem_frac,
                          cpu_base=prod.cpu_base / 4, base_lat=prod.base_lat, base_err=prod.base_err * 3,
                          base_rps=prod.base_rps / 30, pvc=prod.pvc)
            wl.configmap = prod.configmap
            self.add_workload(wl, staging=True)
        for wl in self.workloads.values():
            if wl.ns == "staging":
                wl.calls = [("Deployment" if STAGING_KIND(n) == "Deployment" else "StatefulSet", "staging", n)
                            for n in STAGING_CALLS.get(wl.name, [])]
        for wl in self.workloads.values():
            for callee in wl.calls:
                self.callers.setdefault(callee, []).append(wl)
        for name, ns in DAEMONSETS:
            wl = Workload(kind="DaemonSet", ns=ns, name=name, role="agent", lang="agent", replicas=len(self.nodes),
                          has_service=False, mem_limit=200 << 20, cpu_limit=None, mem_frac=0.3, cpu_base=0.03)
            self.workloads[wl.key] = wl
        for name, ns, every, run, lang in CRONJOBS:
            if r.random() < 0.85:
                self.cronjobs.append((name, ns, every, run, lang))
        for ns in ("shop", "payments", "identity", "search", "web"):
            hard = sum((w.cpu_limit or 0) * (w.replicas + (3 if w.hpa else 0)) for w in self.workloads.values()
                       if w.ns == ns and w.kind != "DaemonSet")
            self.quota[ns] = {"name": r.choice(["compute-resources", "team-quota", f"{ns}-quota"]),
                              "hard": math.ceil(hard * 1.05 + 0.5)}
        for wl in self.workloads.values():
            if wl.hpa and wl.ns != "staging":
                self.hpas[wl.key] = wl.replicas

    def add_workload(self, wl, staging=False):
        self.workloads[wl.key] = wl
        if not staging:
            self.by_name[wl.name] = wl
        if wl.kind == "Deployment":
            wl.rs_hash = self.suffix(self.rng.choice([9, 10]))

    def owner_chain_of(self, pod_ref):
        pod = self.pod_index.get(pod_ref)
        if pod is None:
            return []
        chain = [pod.owner]
        if pod.owner[0] == "ReplicaSet":
            chain.append(pod.wl.key)
        if pod.job:
            chain.append(pod.job[0])
        if pod.wl.has_service and pod.wl.kind != "DaemonSet" and pod.job is None:
            chain.append(pod.wl.svc_ref)
        return chain

    def reserved(self, key, now):
        for fault in self.active:
            if fault.until >= now and key in fault.reserved:
                return True
        return False

    def clean(self, keys, now, quiet=16 * MIN):
        """Whether nothing routine touched these keys lately and no fault holds them."""
        for key in keys:
            if self.reserved(key, now):
                return False
            if self.last_touched.get(key, -10**15) > now - quiet:
                return False
            if self.last_noise_error.get(key, -10**15) > now - 3 * MIN:
                return False
        return True


def STAGING_KIND(name):
    return "StatefulSet" if name == "pg-main" else "Deployment"


STAGING_CALLS = {"storefront": ["api-gateway"], "api-gateway": ["catalog", "checkout"], "catalog": ["pg-main"],
                 "checkout": ["pg-main"]}


# --------------------------------------------------------------------- simulation


class Sim:
    """The event-time simulation of every tenant, and the ordered output."""

    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed * 7919 + 17)
        self.t0 = args.start
        self.actions = []
        self.seq = 0
        self.out = []
        self.out_seq = 0
        self.writer = None
        self.counts = {"lines": 0, "dropped": 0, "duplicated": 0}
        self.hard = not args.easy
        self.deadline = args.start + args.faults * 25 * MIN + 60 * MIN
        self.drop_p = 0.003 if self.hard else 0.0
        self.dup_p = 0.004 if self.hard else 0.0

    # scheduling --------------------------------------------------------------
    def at(self, ts, fn, *a):
        self.seq += 1
        heapq.heappush(self.actions, (int(ts), self.seq, fn, a))

    def run(self, tenants, writer):
        """Runs until every tenant has placed its faults and the last one has ended."""
        self.writer = writer
        stop = None
        while self.actions:
            ts, _, fn, a = heapq.heappop(self.actions)
            if stop is None and all(T.finished is not None for T in tenants):
                stop = max(T.finished for T in tenants) + 2 * MIN
            if stop is not None and ts > stop:
                break
            if ts > self.deadline:
                print(f"warning: stopped at the deadline with faults unplaced: "
                      + ", ".join(f"{T.name}={T.left}" for T in tenants if T.finished is None), file=sys.stderr)
                break
            self.now = ts
            fn(ts, *a)
            self.flush(ts - 8 * SEC)
        self.flush(None)

    def flush(self, before):
        out = self.out
        while out and (before is None or out[0][0] < before):
            _, _, line = heapq.heappop(out)
            self.writer.write(line)
            self.writer.write("\n")
            self.counts["lines"] += 1

    # emission ----------------------------------------------------------------
    def emit(self, T, ts, source, body, *, node=None, delay=(200, 2500), fault=None, symptom=None,
             protect=False, cause=False):
        """Writes one event: `ts` is true time; the node's clock skew is applied."""
        rng = self.rng
        if node is not None:
            ts += T.skew.get(node, 0)
        ts = max(int(ts), 0)
        if not protect and rng.random() < self.drop_p:
            self.counts["dropped"] += 1
            return False
        event = {"ts": ts, "tenant": T.name, "source": source}
        event.update(body)
        line = json.dumps(event, separators=(",", ":"))
        arrival = ts + rng.randint(*delay)
        self.out_seq += 1
        heapq.heappush(self.out, (arrival, self.out_seq, line))
        if rng.random() < self.dup_p:
            self.out_seq += 1
            self.counts["duplicated"] += 1
            heapq.heappush(self.out, (arrival + rng.randint(50, 3000), self.out_seq, line))
        if fault is not None:
            if cause:
                fault.cause_at(ts)
            if symptom is not None:
                fault.symptoms.setdefault(symptom, ts)
                fault.end = ts if fault.end is None else max(fault.end, ts)
        return True

    def kevent(self, T, ts, ref, reason, etype, message, *, node=None, fault=None, cause=False, protect=False,
               severity=None):
        """A Kubernetes Event as kube-event-exporter forwards it: Normal→info, Warning→warning."""
        sev = severity or ("warning" if etype == "Warning" else "info")
        symptom = ref if fault is not None and sev in ("error", "critical") else None
        return self.emit(T, ts, "kube-event-exporter",
                         {"kind": "k8s_event", "resource": ref_json(ref), "reason": reason, "severity": sev,
                          "message": message}, node=node, delay=(300, 3500), fault=fault, symptom=symptom,
                         cause=cause, protect=protect)

    def watcher_event(self, T, ts, ref, reason, severity, message, *, fault=None, cause=False, protect=False):
        """A state change reported by the resource watcher (pod status, object updates)."""
        symptom = ref if fault is not None and severity in ("error", "critical") else None
        return self.emit(T, ts, "kube-state-watcher",
                         {"kind": "k8s_event", "resource": ref_json(ref), "reason": reason, "severity": severity,
                          "message": message}, delay=(100, 1500), fault=fault, symptom=symptom, cause=cause,
                         protect=protect)

    def log(self, T, ts, pod, level, message, *, fault=None, cause=False, protect=False):
        symptom = pod.ref if fault is not None and level in ("error", "critical") else None
        if fault is None and level in ("error", "critical"):
            T.last_noise_error[pod.wl.key] = ts
        return self.emit(T, ts, f"fluent-bit-{T.agent_suffix[pod.node]}",
                         {"kind": "log", "resource": ref_json(pod.ref), "level": level, "message": message},
                         node=pod.node, delay=(500, 3000), fault=fault, symptom=symptom, cause=cause,
                         protect=protect)

    def metric(self, T, ts, name, value, labels, *, fault=None, cause=False):
        body = {"kind": "metric", "metric": name, "value": round(value, 6), "labels": labels}
        return self.emit(T, ts, "prometheus-k8s-0", body, delay=(1000, 4000), fault=fault, cause=cause)

    def topo(self, T, ts, frm, rel, to, op="upsert"):
        return self.emit(T, ts, "kube-state-watcher",
                         {"kind": "topology", "from": ref_json(frm), "to": ref_json(to), "relation": rel, "op": op},
                         delay=(100, 1200), protect=True)


# ----------------------------------------------------------------------- effects


def add_effect(T, target, metric, t1, t2, op, value, t_full=None):
    T.effects.setdefault((target, metric), []).append((t1, t2, op, value, t_full))


def effect_value(T, target, metric, t, base):
    fx = T.effects.get((target, metric))
    if not fx:
        return base
    value = base
    for t1, t2, op, v, t_full in fx:
        if t < t1 or t > t2:
            continue
        frac = 1.0
        if t_full is not None and t_full > t1:
            frac = min(1.0, (t - t1) / (t_full - t1))
        if op == "add":
            value += v * frac
        elif op == "mul":
            value *= 1 + (v - 1) * frac
        elif op == "to":
            value = value + (v - value) * frac
    return value


# --------------------------------------------------------------- pods and topology


def place(T, rng, avoid=()):
    nodes = [n for n in T.nodes if n not in T.cordoned and n not in T.down and n not in avoid]
    return rng.choice(nodes or T.nodes)


def create_pod(sim, T, wl, ts, *, index=None, node=None, announce=True, job=None, name=None):
    rng = sim.rng
    if name is None:
        if wl.kind == "StatefulSet":
            name = f"{wl.name}-{index}"
        elif wl.kind == "Deployment":
            name = f"{wl.name}-{wl.rs_hash}-{T.suffix(5)}"
        else:
            name = f"{wl.name}-{T.suffix(5)}"
    if wl.kind == "Deployment":
        owner = ("ReplicaSet", wl.ns, f"{wl.name}-{wl.rs_hash}")
    elif job is not None:
        owner = job[1]
    else:
        owner = wl.key
    node = node or place(T, rng)
    container = {"nginx": "controller", "postgres": "postgres", "redis": "redis", "kafka": "kafka",
                 "es": "elasticsearch", "coredns": "coredns", "memcached": "memcached"}.get(wl.lang, "app")
    if wl.kind == "DaemonSet":
        container = wl.name
    pod = Pod(name=name, ns=wl.ns, wl=wl, owner=owner, node=node, ip=T.new_ip(), container=container,
              mem=wl.mem_limit * wl.mem_frac * rng.uniform(0.85, 1.1), phase=rng.randint(0, 29_000), job=job)
    wl.pods.append(pod)
    T.pod_index[pod.ref] = pod
    if announce:
        announce_pod(sim, T, pod, ts)
    else:
        pod_edges(sim, T, pod, ts)
    return pod


def pod_edges(sim, T, pod, ts, op="upsert"):
    wl = pod.wl
    sim.topo(T, ts, pod.ref, "RUNS_ON", ("Node", "", pod.node), op)
    sim.topo(T, ts, pod.owner, "OWNS", pod.ref, op)
    if wl.has_service and wl.kind != "DaemonSet" and pod.job is None:
        sim.topo(T, ts, wl.svc_ref, "SELECTS", pod.ref, op)
    if wl.configmap:
        sim.topo(T, ts, pod.ref, "USES", ("ConfigMap", wl.ns, wl.configmap), op)
    for secret in wl.secrets:
        name, _, ns = secret.partition("@")
        # a client's copy of a database credential lives in its own namespace
        sim.topo(T, ts, pod.ref, "USES", ("Secret", wl.ns, name), op)
    if wl.kind == "StatefulSet" and wl.pvc:
        sim.topo(T, ts, pod.ref, "MOUNTS", ("PersistentVolumeClaim", wl.ns, f"{wl.pvc}-{pod.name}"), op)


def announce_pod(sim, T, pod, ts):
    """The events a pod's creation really produces, then its edges."""
    rng = sim.rng
    wl = pod.wl
    if pod.owner[0] == "ReplicaSet":
        sim.kevent(T, ts, pod.owner, "SuccessfulCreate", "Normal", f"Created pod: {pod.name}")
    elif pod.owner[0] == "StatefulSet":
        sim.kevent(T, ts, pod.owner, "SuccessfulCreate", "Normal",
                   f"create Pod {pod.name} in StatefulSet {wl.name} successful")
    elif pod.owner[0] == "Job":
        sim.kevent(T, ts, pod.owner, "SuccessfulCreate", "Normal", f"Created pod: {pod.name}")
    t = ts + rng.randint(20, 400)
    sim.kevent(T, t, pod.ref, "Scheduled", "Normal", f"Successfully assigned {pod.ns}/{pod.name} to {pod.node}")
    pod_edges(sim, T, pod, t)
    t += rng.randint(400, 2500)
    image = image_of(wl)
    if rng.random() < 0.7:
        sim.kevent(T, t, pod.ref, "Pulled", "Normal",
                   f'Container image "{image}" already present on machine', node=pod.node)
    else:
        sim.kevent(T, t, pod.ref, "Pulling", "Normal", f'Pulling image "{image}"', node=pod.node)
        t += rng.randint(1500, 9000)
        sim.kevent(T, t, pod.ref, "Pulled", "Normal",
                   f'Successfully pulled image "{image}" in {rng.uniform(1.2, 8.8):.3f}s '
                   f'({rng.uniform(1.2, 8.8):.3f}s including waiting). Image size: {rng.randint(30, 700) * 1048576} bytes.',
                   node=pod.node)
    t += rng.randint(100, 600)
    sim.kevent(T, t, pod.ref, "Created", "Normal", f"Created container {pod.container}", node=pod.node)
    sim.kevent(T, t + rng.randint(50, 400), pod.ref, "Started", "Normal", f"Started container {pod.container}",
               node=pod.node)
    return t


def image_of(wl):
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com" if wl.role in ("http", "worker") else "docker.io"
    tags = {"postgres": "postgres:15.6", "redis": "redis:7.2.4", "kafka": "bitnami/kafka:3.6.1",
            "es": "elasticsearch:8.12.2", "coredns": "registry.k8s.io/coredns/coredns:v1.11.1",
            "nginx": "registry.k8s.io/ingress-nginx/controller:v1.10.0", "memcached": "memcached:1.6.23"}
    if wl.lang in tags:
        return tags[wl.lang]
    return f"{registry}/{wl.name}:{wl.rs_hash[:7] or 'v1'}"


def remove_pod(sim, T, pod, ts, *, reason_event=True, grace=30):
    """A pod goes away. A StatefulSet pod comes back under the same name, so only its
    placement edge is deleted (the watcher sees the same object move)."""
    rng = sim.rng
    if not pod.alive:
        return
    pod.alive = False
    if pod in pod.wl.pods:
        pod.wl.pods.remove(pod)
    if reason_event:
        sim.kevent(T, ts, pod.ref, "Killing", "Normal", f"Stopping container {pod.container}", node=pod.node)
    if pod.wl.kind == "StatefulSet":
        sim.topo(T, ts + rng.randint(100, 400), pod.ref, "RUNS_ON", ("Node", "", pod.node), "delete")
    else:
        pod_edges(sim, T, pod, ts + rng.randint(grace * 200, grace * 1000), op="delete")


# ------------------------------------------------------------------ log messages


def access_line(rng, pod, ts):
    wl = pod.wl
    path = rng.choice(["/api/v1/products", "/api/v1/cart", "/healthz", "/api/v1/orders", "/api/v1/users/me",
                       "/api/v1/search", "/metrics", "/api/v1/checkout"])
    ms = max(1, int(rng.lognormvariate(math.log(max(wl.base_lat, 0.005) * 600), 0.5)))
    code = 200 if rng.random() > 0.02 else rng.choice([201, 204, 301, 400, 404])
    ip = f"10.{rng.randint(2, 4)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"
    if wl.lang == "go":
        return f'level=info ts={iso(ts)} caller=http.go:{rng.randint(80, 140)} msg="request completed" method=GET path={path} status={code} duration={ms}ms'
    if wl.lang == "java":
        return f"INFO [http-nio-8080-exec-{rng.randint(1, 40)}] o.s.web.servlet.DispatcherServlet : Completed {code} OK for GET \"{path}\" in {ms} ms"
    if wl.lang == "python":
        return f'{ip} - - "GET {path} HTTP/1.1" {code} {rng.randint(80, 9000)} "-" "python-requests/2.31.0" {ms / 1000:.3f}'
    if wl.lang == "node":
        return json.dumps({"level": 30, "time": ts, "pid": 1, "hostname": pod.name, "req": {"method": "GET", "url": path},
                           "res": {"statusCode": code}, "responseTime": ms, "msg": "request completed"})
    if wl.lang == "nginx":
        return f'{ip} - - [{clf(ts)}] "GET {path} HTTP/1.1" {code} {rng.randint(200, 20000)} "-" "Mozilla/5.0" {rng.randint(300, 900)} {ms / 1000:.3f} [shop-api-gateway-8080] [] 10.{rng.randint(2, 4)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}:8080 {rng.randint(200, 20000)} {ms / 1000:.3f} {code} {rng.randbytes(16).hex()}'
    if wl.lang == "postgres":
        return rng.choice([
            f"LOG:  checkpoint starting: time",
            f"LOG:  checkpoint complete: wrote {rng.randint(50, 3000)} buffers ({rng.uniform(0.1, 9):.1f}%); 0 WAL file(s) added, 0 removed, {rng.randint(0, 3)} recycled; write={rng.uniform(1, 30):.3f} s, sync=0.{rng.randint(1, 99):03d} s, total={rng.uniform(1, 30):.3f} s",
            f"LOG:  automatic analyze of table \"app.public.{rng.choice(['orders', 'items', 'users', 'sessions'])}\" system usage: CPU: user: 0.{rng.randint(1, 9)}0 s, system: 0.00 s, elapsed: 0.{rng.randint(1, 99):02d} s",
            "LOG:  connection received: host=10.3.12.7 port=51822",
        ])
    if wl.lang == "redis":
        return rng.choice([
            f"1:M {redis_ts(ts)} * {rng.randint(100, 10000)} changes in 300 seconds. Saving...",
            f"1:M {redis_ts(ts)} * Background saving started by pid {rng.randint(100, 9999)}",
            f"{rng.randint(100, 9999)}:C {redis_ts(ts)} * DB saved on disk",
            f"1:M {redis_ts(ts)} * Background saving terminated with success",
        ])
    if wl.lang == "kafka":
        return rng.choice([
            f"[{iso(ts)}] INFO [LocalLog partition=orders-{rng.randint(0, 11)}, dir=/bitnami/kafka/data] Rolled new log segment at offset {rng.randint(10**6, 10**8)} in 3 ms. (kafka.log.LocalLog)",
            f"[{iso(ts)}] INFO [GroupCoordinator {rng.randint(0, 2)}]: Member consumer-order-worker-1-{rng.randbytes(4).hex()} in group order-worker has left, removing it from the group (kafka.coordinator.group.GroupCoordinator)",
            f"[{iso(ts)}] INFO [ProducerStateManager partition=orders-{rng.randint(0, 11)}] Wrote producer snapshot at offset {rng.randint(10**6, 10**8)} with 4 producer ids in 1 ms. (kafka.log.ProducerStateManager)",
        ])
    if wl.lang == "es":
        return rng.choice([
            f'{{"@timestamp":"{iso(ts)}", "log.level": "INFO", "message":"[gc][{rng.randint(1000, 99999)}] overhead, spent [{rng.randint(100, 400)}ms] collecting in the last [1s]", "component":"o.e.m.j.JvmGcMonitorService"}}',
            f'{{"@timestamp":"{iso(ts)}", "log.level": "INFO", "message":"[products-v{rng.randint(3, 9)}] update_mapping [_doc]", "component":"o.e.c.m.MetadataMappingService"}}',
        ])
    if wl.lang == "coredns":
        return f"[INFO] 10.{rng.randint(2, 4)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}:{rng.randint(30000, 60000)} - {rng.randint(1, 65535)} \"A IN {rng.choice(['kafka', 'pg-main', 'redis-shared', 'api-gateway'])}.svc.cluster.local. udp 60 false 512\" NOERROR qr,aa,rd 106 0.000{rng.randint(100, 999)}s"
    if wl.lang == "memcached":
        return f"<{rng.randint(20, 90)} new auto-negotiating client connection"
    return f"{rng.choice(['flushed chunks', 'scrape ok', 'synced rules'])} in {rng.randint(1, 90)}ms"


def iso(ts):
    import datetime
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts % 1000:03d}Z"


def clf(ts):
    import datetime
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")


def redis_ts(ts):
    import datetime
    return datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%d %b %Y %H:%M:%S.") + f"{ts % 1000:03d}"


WARN_NOISE = {
    "go": ['level=warn msg="retrying request" attempt=2 err="EOF"', 'level=warn msg="slow handler" path=/api/v1/cart duration=1.2s'],
    "java": ["WARN [HikariPool-1 housekeeper] com.zaxxer.hikari.pool.HikariPool : HikariPool-1 - Thread starvation or clock leap detected (housekeeper delta=1m2s).",
             "WARN [main] o.h.e.j.e.i.JdbcEnvironmentInitiator : HHH000342: Could not obtain connection to query metadata"],
    "python": ["WARNING:urllib3.connectionpool:Retrying (Retry(total=2, connect=None, read=None, redirect=None, status=None)) after connection broken by 'RemoteDisconnected('Remote end closed connection without response')': /v1/items",
               "WARNING:root:cache miss ratio above 0.4"],
    "node": ['{"level":40,"msg":"deprecated API used: req.param()"}', '{"level":40,"msg":"event loop lag 212ms"}'],
    "nginx": ['[warn] 29#29: *88123 an upstream response is buffered to a temporary file /tmp/proxy_temp/1/00/0000000001 while reading upstream'],
}

# Error lines real services print all day that are not incidents.
ERROR_NOISE = {
    "go": ['level=error msg="failed to flush metrics" err="write udp 10.3.4.5:41822->10.96.12.4:8125: write: connection refused"',
           'level=error msg="invalid request body" err="json: cannot unmarshal string into Go struct field CartItem.quantity of type int" client=10.2.9.14',
           'level=error msg="client closed request" path=/api/v1/products status=499'],
    "java": ["ERROR [http-nio-8080-exec-12] o.a.c.c.C.[.[.[/].[dispatcherServlet] : Servlet.service() for servlet [dispatcherServlet] threw exception: org.springframework.web.HttpMediaTypeNotSupportedException: Content type 'text/plain;charset=UTF-8' not supported",
             "ERROR [scheduling-1] c.s.jobs.CacheRefresher : Cache refresh skipped: lock held by another instance"],
    "python": ["ERROR:app.handlers:Invalid coupon code 'SUMMER-23' for user 88123",
               "ERROR:sentry_sdk.errors:Internal error in sentry_sdk"],
    "node": ['{"level":50,"msg":"Unhandled promise rejection: AbortError: The user aborted a request."}'],
    "nginx": ['[error] 31#31: *991021 open() "/usr/share/nginx/html/favicon.ico" failed (2: No such file or directory), client: 10.4.1.9, server: _, request: "GET /favicon.ico HTTP/1.1"'],
}


def host(wl):
    return f"{wl.name}.{wl.ns}.svc.cluster.local"


def failure_message(rng, caller, callee, mode, pod=None):
    """What `caller` logs when a call to `callee` fails in `mode`, in its runtime's style."""
    h = host(callee)
    port = callee.port if callee.role in ("http", "ingress") else {"db": 5432, "cache": 6379, "queue": 9092,
                                                                    "search": 9200, "dns": 53}.get(callee.role, 8080)
    ip = f"{pod.ip if pod else '10.3.7.21'}:{port}"
    lang = caller.lang
    if mode == "timeout":
        if callee.role == "db":
            return {"go": f'level=error msg="query failed" db={callee.name} err="pq: canceling statement due to statement timeout"',
                    "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] o.h.engine.jdbc.spi.SqlExceptionHelper : HikariPool-1 - Connection is not available, request timed out after 30000ms.",
                    "python": f"ERROR:sqlalchemy.pool.impl.QueuePool:QueuePool limit of size 10 overflow 5 reached, connection timed out, timeout 30.00 (host={h})",
                    }.get(lang, f"error: query to {h} timed out")
        if callee.role == "cache":
            return {"go": f'level=error msg="cache get failed" err="redis: i/o timeout" addr={h}:6379',
                    "java": f"ERROR [lettuce-nioEventLoop-4-2] c.s.cache.RedisCache : Command timed out after 2 second(s) ({h})",
                    "python": f"ERROR:app.cache:redis.exceptions.TimeoutError: Timeout reading from {h}:6379"}.get(lang, f"error: cache {h} timed out")
        return {"go": f'level=error msg="upstream call failed" upstream={callee.name} err="Get \\"http://{h}:{port}/v1\\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error on GET request for \"http://{h}:{port}/v1\": Read timed out; nested exception is java.net.SocketTimeoutException: Read timed out",
                "python": f"ERROR:app.clients:requests.exceptions.ReadTimeout: HTTPConnectionPool(host='{h}', port={port}): Read timed out. (read timeout=5)",
                "node": json.dumps({"level": 50, "msg": f"request to http://{h}:{port}/v1 failed, reason: socket hang up", "code": "ECONNRESET"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} upstream timed out (110: Operation timed out) while reading response header from upstream, client: 10.4.1.9, server: shop.example.com, request: "GET /api/v1/{callee.name} HTTP/1.1", upstream: "http://{ip}/api/v1/{callee.name}", host: "shop.example.com"',
                }.get(lang, f"timeout calling {h}")
    if mode == "refused":
        return {"go": f'level=error msg="upstream call failed" upstream={callee.name} err="dial tcp {ip}: connect: connection refused"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error on POST request for \"http://{h}:{port}/v1\": Connection refused; nested exception is java.net.ConnectException: Connection refused",
                "python": f"ERROR:app.clients:requests.exceptions.ConnectionError: HTTPConnectionPool(host='{h}', port={port}): Max retries exceeded with url: /v1 (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f2c1c2b4d30>: Failed to establish a new connection: [Errno 111] Connection refused'))",
                "node": json.dumps({"level": 50, "msg": f"connect ECONNREFUSED {ip}", "code": "ECONNREFUSED"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} connect() failed (111: Connection refused) while connecting to upstream, client: 10.4.1.9, server: shop.example.com, request: "GET /api/v1/{callee.name} HTTP/1.1", upstream: "http://{ip}/api/v1/{callee.name}"',
                }.get(lang, f"connection refused by {h}")
    if mode == "reset":
        return {"go": f'level=error msg="upstream call failed" upstream={callee.name} err="read tcp 10.3.1.4:48212->{ip}: read: connection reset by peer"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error on GET request for \"http://{h}:{port}/v1\": Unexpected end of file from server",
                "python": f"ERROR:app.clients:requests.exceptions.ConnectionError: ('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))",
                "node": json.dumps({"level": 50, "msg": f"request to http://{h}:{port}/v1 failed, reason: socket hang up", "code": "ECONNRESET"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} upstream prematurely closed connection while reading response header from upstream, client: 10.4.1.9, server: shop.example.com, upstream: "http://{ip}/"',
                }.get(lang, f"connection reset by {h}")
    if mode == "5xx":
        code = rng.choice([500, 502, 503, 503])
        return {"go": f'level=error msg="upstream returned error" upstream={callee.name} status={code}',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : {code} {'Internal Server Error' if code == 500 else 'Service Unavailable'} from GET http://{h}:{port}/v1",
                "python": f"ERROR:app.clients:HTTPError: {code} Server Error for url: http://{h}:{port}/v1",
                "node": json.dumps({"level": 50, "msg": f"upstream {callee.name} responded {code}"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} upstream prematurely closed connection while reading response header from upstream, client: 10.4.1.9, server: shop.example.com, request: "GET /api/v1/{callee.name} HTTP/1.1", upstream: "http://{ip}/api/v1/{callee.name}"' if code != 503 else f'[error] 31#31: *{rng.randint(10**5, 10**7)} no live upstreams while connecting to upstream, client: 10.4.1.9, server: shop.example.com, request: "GET /api/v1/{callee.name} HTTP/1.1", upstream: "http://{callee.ns}-{callee.name}-{port}/api/v1/{callee.name}"',
                }.get(lang, f"{callee.name} returned {code}")
    if mode == "dns":
        resolver = "10.96.0.10:53" if rng.random() < 0.8 else "172.20.0.10:53"
        return {"go": f'level=error msg="upstream call failed" err="dial tcp: lookup {h} on {resolver}: read udp 10.3.{rng.randint(0, 255)}.{rng.randint(2, 254)}:{rng.randint(30000, 60000)}->{resolver}: i/o timeout"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error: {h}: Temporary failure in name resolution; nested exception is java.net.UnknownHostException: {h}",
                "python": f"ERROR:app.clients:socket.gaierror: [Errno -3] Temporary failure in name resolution ({h})",
                "node": json.dumps({"level": 50, "msg": f"getaddrinfo EAI_AGAIN {h}", "code": "EAI_AGAIN"}),
                "nginx": f'[error] 31#31: {h} could not be resolved (110: Operation timed out)',
                }.get(lang, f"lookup {h} failed")
    if mode == "tls":
        return {"go": f'level=error msg="upstream call failed" upstream={callee.name} err="Post \\"https://{h}:8443/v1/charge\\": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current time 2026-01-01T11:02:13Z is after 2026-01-01T11:00:00Z"',
                "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] c.s.client.{camel(callee.name)}Client : I/O error on POST request for \"https://{h}:8443/v1\": PKIX path validation failed: java.security.cert.CertPathValidatorException: validity check failed; nested exception is javax.net.ssl.SSLHandshakeException",
                "python": f"ERROR:app.clients:requests.exceptions.SSLError: HTTPSConnectionPool(host='{h}', port=8443): Max retries exceeded (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired (_ssl.c:1006)')))",
                "node": json.dumps({"level": 50, "msg": f"request to https://{h}:8443/v1 failed, reason: certificate has expired", "code": "CERT_HAS_EXPIRED"}),
                "nginx": f'[error] 31#31: *{rng.randint(10**5, 10**7)} upstream SSL certificate verify error: (10:certificate has expired) while SSL handshaking to upstream, upstream: "https://{ip}/"',
                }.get(lang, f"certificate of {h} expired")
    if mode == "auth":
        user = callee.name.split("-")[0]
        return {"go": f'level=error msg="db ping failed" err="pq: password authentication failed for user \\"{user}\\""',
                "java": f"ERROR [HikariPool-1 connection adder] com.zaxxer.hikari.pool.HikariPool : HikariPool-1 - Exception during pool initialization. org.postgresql.util.PSQLException: FATAL: password authentication failed for user \"{user}\"",
                "python": f"ERROR:sqlalchemy.pool.impl.QueuePool:Exception during reset or similar: psycopg2.OperationalError: connection to server at \"{h}\" (10.3.4.2), port 5432 failed: FATAL:  password authentication failed for user \"{user}\"",
                }.get(lang, f"auth failed for {user}")
    if mode == "kafka":
        return {"go": f'level=error msg="failed to produce" topic=orders err="kafka server: Request exceeded the user-specified time limit in the request (Timeout)" broker={h}:9092',
                "java": f"ERROR [kafka-producer-network-thread | producer-1] o.a.k.c.p.internals.Sender : [Producer clientId=producer-1] Expiring 14 record(s) for orders-{rng.randint(0, 11)}:120003 ms has passed since batch creation",
                "python": "ERROR:kafka.producer.kafka:KafkaTimeoutError: Batch for TopicPartition(topic='orders', partition=4) containing 9 record(s) expired: 30 seconds have passed since batch creation"}.get(lang, "produce to kafka failed")
    if mode == "es":
        return {"java": f"ERROR [indexer-3] c.s.search.ProductIndexer : Bulk indexing failed: ElasticsearchStatusException[Elasticsearch exception [type=cluster_block_exception, reason=index [products-v{rng.randint(3, 9)}] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];]]",
                "python": "ERROR:indexer:elasticsearch.exceptions.AuthorizationException: AuthorizationException(403, 'cluster_block_exception', 'index [products] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block];')",
                "go": 'level=error msg="bulk request failed" err="elastic: Error 429 (Too Many Requests): index [products] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage watermark, index has read-only-allow-delete block]; [type=cluster_block_exception]"'}.get(lang, "indexing blocked")
    raise ValueError(mode)


def camel(name):
    return "".join(part.capitalize() for part in name.split("-"))


# ------------------------------------------------------------- recurring actions


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


def pod_logs(ts, sim, T, pod):
    """A pod's own background log lines: access logs, some warnings, rare noise errors."""
    if not pod.alive:
        return
    rng = sim.rng
    wl = pod.wl
    if pod.node not in T.down:
        roll = rng.random()
        if roll < 0.9:
            sim.log(T, ts, pod, "info", access_line(rng, pod, ts))
        elif roll < 0.999 or wl.lang not in ERROR_NOISE:
            lines = WARN_NOISE.get(wl.lang)
            if lines:
                sim.log(T, ts, pod, rng.choice(["warn", "warning"]) if wl.lang != "java" else "warn", rng.choice(lines))
            else:
                sim.log(T, ts, pod, "debug", access_line(rng, pod, ts))
        elif not T.reserved(wl.key, ts) and not T.reserved(pod.node, ts):
            sim.log(T, ts, pod, "error", rng.choice(ERROR_NOISE[wl.lang]))
    gap = T.log_gap.get(wl.role, 12_000)
    sim.at(ts + int(rng.expovariate(1 / gap)) + 1, pod_logs, sim, T, pod)


def chronic_error(ts, sim, T):
    """One deployment that logs the same harmless error every few minutes, all day."""
    rng = sim.rng
    wl = T.workloads.get(T.chronic)
    if wl and wl.pods and not T.reserved(wl.key, ts):
        pod = rng.choice(wl.pods)
        sim.log(T, ts, pod, "error", {"go": 'level=error msg="failed to flush metrics" err="write udp 10.3.4.5:41822->10.96.12.4:8125: write: connection refused"',
                                      "java": "ERROR [metrics-statsd-1] c.t.s.NonBlockingStatsDClient : Failed to send metrics: java.net.PortUnreachableException: ICMP Port Unreachable",
                                      "python": "ERROR:statsd:Error sending metric: [Errno 111] Connection refused",
                                      "node": json.dumps({"level": 50, "msg": "hot-shots UDP error: send ECONNREFUSED 10.96.12.4:8125"})}.get(wl.lang, "statsd: connection refused"))
    sim.at(ts + int(rng.uniform(3, 9) * MIN), chronic_error, sim, T)


def start_pod_logs(sim, T, pod, ts):
    sim.at(ts + sim.rng.randint(500, 15_000), pod_logs, sim, T, pod)


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


# ------------------------------------------------------------------ routine noise


def noise_rollout(ts, sim, T):
    """A healthy rolling update of a random Deployment."""
    rng = sim.rng
    cands = [wl for wl in T.workloads.values() if wl.kind == "Deployment" and wl.role in ("http", "worker")
             and not T.reserved(wl.key, ts)]
    if cands:
        rollout(sim, T, rng.choice(cands), ts)
    sim.at(ts + int(rng.uniform(12, 35) * MIN), noise_rollout, sim, T)


def rollout(sim, T, wl, ts, *, on_new_pod=None, fault=None):
    """Deployment rolling update (maxSurge 1, maxUnavailable 0) starting at `ts`, which may be
    in the future: planned now, each step changes the cluster when it happens. Returns the
    new ReplicaSet and when the last old pod goes."""
    rng = sim.rng
    T.last_touched[wl.key] = max(T.last_touched.get(wl.key, ts), ts)
    new_hash = T.suffix(rng.choice([9, 10]))
    new_rs = ("ReplicaSet", wl.ns, f"{wl.name}-{new_hash}")
    n = max(1, len(wl.pods))
    steps = []
    t = ts
    for i in range(n):
        up = t
        t += rng.randint(15_000, 40_000)
        steps.append((up, t))
    state = {}

    def begin(now):
        state["old_rs"] = ("ReplicaSet", wl.ns, f"{wl.name}-{wl.rs_hash}")
        state["old_pods"] = list(wl.pods)
        wl.rs_hash = new_hash
        sim.topo(T, now, wl.key, "OWNS", new_rs)

    def scale_up(now, i):
        sim.kevent(T, now, wl.key, "ScalingReplicaSet", "Normal", f"Scaled up replica set {new_rs[2]} to {i + 1}",
                   fault=fault if i == 0 else None, cause=i == 0)
        wl.rs_hash = new_hash
        pod = create_pod(sim, T, wl, now + rng.randint(50, 300))
        start_pod_logs(sim, T, pod, now + 5000)
        if on_new_pod:
            on_new_pod(pod, now + rng.randint(4000, 9000))

    def scale_down(now, i):
        old = state["old_pods"]
        if i < len(old):
            sim.kevent(T, now, wl.key, "ScalingReplicaSet", "Normal",
                       f"Scaled down replica set {state['old_rs'][2]} to {len(old) - i - 1}")
            remove_pod(sim, T, old[i], now + rng.randint(50, 500))

    def finish(now):
        if rng.random() < 0.5:
            sim.topo(T, now, wl.key, "OWNS", state["old_rs"], "delete")

    sim.at(ts, begin)
    for i, (up, down) in enumerate(steps):
        sim.at(up, scale_up, i)
        sim.at(down, scale_down, i)
    sim.at(t + 60_000, finish)
    return new_rs, t


def noise_hpa(ts, sim, T):
    """HPA scale-up on load and scale-down later."""
    rng = sim.rng
    cands = [T.workloads[k] for k in T.hpas if not T.reserved(k, ts)]
    if cands:
        wl = rng.choice(cands)
        T.last_touched[wl.key] = ts
        hpa = ("HorizontalPodAutoscaler", wl.ns, wl.name)
        n = len(wl.pods)
        new = n + rng.randint(1, 2)
        sim.kevent(T, ts, hpa, "SuccessfulRescale", "Normal",
                   f"New size: {new}; reason: cpu resource utilization (percentage of request) above target")
        sim.kevent(T, ts + 200, wl.key, "ScalingReplicaSet", "Normal",
                   f"Scaled up replica set {wl.name}-{wl.rs_hash} to {new}")
        added = []
        for _ in range(new - n):
            pod = create_pod(sim, T, wl, ts + rng.randint(300, 900))
            start_pod_logs(sim, T, pod, ts + 8000)
            added.append(pod)
        add_effect(T, ("svc", wl.ns, wl.name), "rps", ts - 3 * MIN, ts + 15 * MIN, "mul", 1.6, ts)

        def down(now):
            if T.reserved(wl.key, now):
                return
            T.last_touched[wl.key] = now
            sim.kevent(T, now, hpa, "SuccessfulRescale", "Normal", f"New size: {n}; reason: All metrics below target")
            sim.kevent(T, now + 150, wl.key, "ScalingReplicaSet", "Normal",
                       f"Scaled down replica set {wl.name}-{wl.rs_hash} to {n}")
            for pod in added:
                remove_pod(sim, T, pod, now + rng.randint(200, 800))
        sim.at(ts + int(rng.uniform(8, 20) * MIN), down)
    sim.at(ts + int(rng.uniform(15, 40) * MIN), noise_hpa, sim, T)


def noise_probe_flap(ts, sim, T):
    """One failed readiness probe on a random pod: a Warning that means nothing."""
    rng = sim.rng
    pods = [p for wl in T.workloads.values() if wl.role in ("http", "ingress", "cache") for p in wl.pods
            if p.alive and not T.reserved(wl.key, ts)]
    if pods:
        pod = rng.choice(pods)
        kind = rng.choice(["Readiness", "Readiness", "Liveness"])
        msg = rng.choice([f'{kind} probe failed: Get "http://{pod.ip}:8080/healthz": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
                          f"{kind} probe failed: HTTP probe failed with statuscode: 503"])
        sim.kevent(T, ts, pod.ref, "Unhealthy", "Warning", msg, node=pod.node)
    sim.at(ts + int(rng.expovariate(1 / (4 * MIN))), noise_probe_flap, sim, T)


def noise_drain(ts, sim, T):
    """Node maintenance: cordon, evict (PDB-respecting, one at a time), uncordon later."""
    rng = sim.rng
    nodes = [n for n in T.nodes if n not in T.cordoned and n not in T.down and not T.reserved(n, ts)]
    pods_on = lambda n: [p for wl in T.workloads.values() for p in wl.pods if p.alive and p.node == n]
    nodes = [n for n in nodes if not any(T.reserved(p.wl.key, ts) for p in pods_on(n))]
    if nodes:
        node = rng.choice(nodes)
        T.cordoned.add(node)
        T.last_touched[node] = ts
        sim.kevent(T, ts, ("Node", "", node), "NodeNotSchedulable", "Normal", f"Node {node} status is now: NodeNotSchedulable")
        t = ts + 2000
        for pod in pods_on(node):
            if pod.wl.kind == "DaemonSet" or pod.job is not None:
                continue
            T.last_touched[pod.wl.key] = t
            sim.kevent(T, t, pod.ref, "Evicted", "Normal", "Evicted pod") if rng.random() < 0.3 else None
            remove_pod(sim, T, pod, t)
            idx = pod.name.rsplit("-", 1)[1] if pod.wl.kind == "StatefulSet" else None
            new = create_pod(sim, T, pod.wl, t + rng.randint(500, 3000), index=idx)
            start_pod_logs(sim, T, new, t + 8000)
            t += rng.randint(5000, 25_000)

        def uncordon(now):
            T.cordoned.discard(node)
            sim.kevent(T, now, ("Node", "", node), "NodeSchedulable", "Normal", f"Node {node} status is now: NodeSchedulable")
        sim.at(t + int(rng.uniform(10, 25) * MIN), uncordon)
    sim.at(ts + int(rng.uniform(60, 120) * MIN), noise_drain, sim, T)


def cron_run(ts, sim, T, spec, *, node=None, fault=None, cpu=None, fail=None):
    """One CronJob run: Job, pod, its logs, completion (or a failure)."""
    rng = sim.rng
    name, ns, every, run, lang = spec
    cron = ("CronJob", ns, name)
    job_name = f"{name}-{ts // MIN}"
    job = ("Job", ns, job_name)
    wl = T.cron_wl.setdefault(name, Workload(kind="CronJob", ns=ns, name=name, role="batch", lang=lang, replicas=1,
                                             has_service=False, mem_limit=1 << 30, cpu_limit=None, cpu_base=0.3))
    sim.kevent(T, ts, cron, "SuccessfulCreate", "Normal", f"Created job {job_name}")
    sim.topo(T, ts, cron, "OWNS", job)
    pod = create_pod(sim, T, wl, ts + rng.randint(100, 600), node=node, job=(cron, job),
                     name=f"{job_name}-{T.suffix(5)}")
    if fault is not None:
        fault.root = pod.ref
        fault.accepted = [pod.ref, job, cron]
    dur = int(rng.uniform(*run) * MIN) if cpu is None else cpu[1]
    if cpu is not None:
        add_effect(T, ("pod", ns, pod.name), "cpu", ts, ts + dur, "add", cpu[0], ts + 20_000)
    t = ts + 5000
    while t < ts + dur:
        msg = {"python": f"INFO:warmer:warmed {rng.randint(100, 5000)} keys", "java": f"INFO [main] c.s.reports.ReportJob : processed {rng.randint(1000, 90000)} rows",
               "go": f'level=info msg="exported invoices" batch={rng.randint(1, 400)}', "postgres": f"pg_dump: dumping contents of table \"public.{rng.choice(['orders', 'items', 'users'])}\""}[lang]
        sim.log(T, t, pod, "info", msg)
        t += rng.randint(10_000, 40_000)
    end = ts + dur
    if fail and fault is None:
        sim.log(T, end - 500, pod, "error", fail)
        sim.kevent(T, end, job, "BackoffLimitExceeded", "Warning", "Job has reached the specified backoff limit")
    else:
        sim.kevent(T, end, job, "Completed", "Normal", "Job completed")
        sim.kevent(T, end + 800, cron, "SawCompletedJob", "Normal", f"Saw completed job: {job_name}, status: Complete")

    def finish(now):
        pod.alive = False
        if pod in wl.pods:
            wl.pods.remove(pod)
        pod_edges(sim, T, pod, now + rng.randint(60_000, 120_000), op="delete")
    sim.at(end, finish)
    return pod


def cron_tick(ts, sim, T, spec):
    name, ns, every, run, lang = spec
    fail = None
    if sim.rng.random() < 0.08:
        fail = {"python": "ERROR:warmer:Traceback (most recent call last): ... redis.exceptions.ResponseError: OOM command not allowed when used memory > 'maxmemory'",
                "java": "ERROR [main] c.s.reports.ReportJob : Report generation failed: java.lang.IllegalStateException: no data for period 2025-12",
                "go": 'level=error msg="export failed" err="s3: AccessDenied: Access Denied status code: 403"',
                "postgres": "pg_dump: error: query failed: ERROR:  canceling statement due to conflict with recovery"}[lang]
    # a job's pod runs where the scheduler puts it; cron_run is synchronous, so schedule the run
    cron_run(ts, sim, T, spec, fail=fail)
    sim.at(ts + every * MIN, cron_tick, sim, T, spec)


# ------------------------------------------------------------------------ faults


class FaultKit:
    """Helpers the fault scenarios share: error streams, propagation, reservations."""

    def __init__(self, sim, T, fault):
        self.sim, self.T, self.f, self.rng = sim, T, fault, sim.rng

    def stream(self, wl, t1, t2, gap, message, level="error", pods=None, fault=True):
        sim, T, rng = self.sim, self.T, self.rng

        def step(now):
            if now > t2:
                return
            alive = [p for p in (pods if pods is not None else wl.pods) if p.alive and p.node not in T.down]
            if alive:
                p = rng.choice(alive)
                sim.log(T, now, p, level, message(p), fault=self.f if fault else None)
            sim.at(now + max(200, int(rng.expovariate(1 / gap))), step)
        sim.at(t1, step)

    def upstream(self, wl, t1, t2, mode, *, depth=2, gap=6000, err=0.3, lat=2.0, first=None, seen=None):
        """Callers of `wl` fail in `mode` from t1 to t2; theirs see 5xx, fainter."""
        seen = seen if seen is not None else set()
        for caller in self.T.callers.get(wl.key, []):
            if caller.key in seen or not caller.pods or self.held_by_other(caller.key, t1):
                continue
            seen.add(caller.key)
            self.f.reserved.add(caller.key)
            d = self.rng.randint(300, 4000) if first is None else first
            callee_pod = self.rng.choice(wl.pods) if wl.pods else None
            self.stream(caller, t1 + d, t2, gap * self.rng.uniform(0.8, 1.5),
                        lambda p, c=caller, m=mode, cp=callee_pod: failure_message(self.rng, c, wl, m, cp))
            if caller.role in ("http", "ingress"):
                svc = ("svc", caller.ns, caller.name)
                add_effect(self.T, svc, "err", t1 + d, t2, "add", err, t1 + d + 30_000)
                add_effect(self.T, svc, "lat", t1 + d, t2, "add", lat, t1 + d + 30_000)
            if depth > 1:
                self.upstream(caller, t1 + d + self.rng.randint(2000, 15_000), t2, "5xx" if mode != "timeout" else "timeout",
                              depth=depth - 1, gap=gap * 2.5, err=err * 0.5, lat=lat * 0.8, seen=seen)

    def reserve(self, *keys):
        self.f.reserved.update(keys)

    def held_by_other(self, key, now):
        """Whether a fault placed before this one still holds `key` (later faults checked,
        when placed, that this one would be over by their start)."""
        for a in self.T.active:
            if a is self.f:
                return False
            if a.until >= now and key in a.reserved:
                return True
        return False


def pick_free(T, rng, cands, now):
    """A candidate with pods that neither it nor its direct callers are busy or recently touched."""
    cands = [c for c in cands if c.pods and T.clean([c.key, *[w.key for w in callers_of(T, c)]], now)]
    return rng.choice(cands) if cands else None


def callers_of(T, wl):
    return T.callers.get(wl.key, [])


def fault_oom(sim, T, f, t):
    """A memory leak in one pod of a Deployment: working set climbs to the limit, the kernel
    OOM-kills it, callers see resets and refusals while it restarts; it may repeat."""
    rng = sim.rng
    cands = [w for w in T.workloads.values() if w.kind == "Deployment" and w.role == "http" and w.ns != "staging"
             and callers_of(T, w)]
    wl = pick_free(T, rng, cands, t)
    if wl is None:
        return False
    k = FaultKit(sim, T, f)
    k.reserve(wl.key)
    pod = rng.choice(wl.pods)
    f.root = pod.ref
    f.accepted = [pod.ref, pod.owner, wl.key]
    ramp = int(rng.uniform(3, 6) * MIN)
    kill = t + ramp
    key = ("pod", pod.ns, pod.name)
    add_effect(T, key, "mem", t, kill, "to", wl.mem_limit * 0.985, kill - 20_000)
    f.start = t
    f.detail = f"{pod.name} leaks to its {wl.mem_limit >> 20}Mi limit and is OOM-killed"
    kills = rng.choice([1, 1, 2, 3])
    warning = sim.hard and rng.random() < 0.4
    drop = sim.hard and rng.random() < 0.15
    if warning:
        f.hard.append("cause-as-warning")
    if drop:
        f.hard.append("cause-event-dropped")
    end = kill
    for i in range(kills):
        tk = kill + i * int(rng.uniform(2, 4) * MIN)
        if i > 0:
            add_effect(T, key, "mem", tk - 100_000, tk, "to", wl.mem_limit * 0.985, tk - 10_000)
        sim.at(tk, lambda now, p=pod: setattr(p, "restarts", p.restarts + 1))
        if not drop:
            sim.watcher_event(T, tk + rng.randint(300, 1500), pod.ref, "OOMKilled", "warning" if warning else "error",
                              f"container {pod.container} terminated: OOMKilled (exit code 137), restart count {pod.restarts}",
                              fault=f, cause=True)
        sim.kevent(T, tk + rng.randint(0, 400), ("Node", "", pod.node), "OOMKilling", "Warning",
                   f"Memory cgroup out of memory: Killed process {rng.randint(2000, 60000)} ({'java' if wl.lang == 'java' else wl.name}) total-vm:{rng.randint(2, 9)}000000kB, anon-rss:{wl.mem_limit >> 10}kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:{rng.randint(2000, 9000)}kB oom_score_adj:{rng.choice([-997, 999, 969])}",
                   node=pod.node, fault=f, cause=True)
        if i > 0:
            sim.kevent(T, tk + rng.randint(10_000, 20_000), pod.ref, "BackOff", "Warning",
                       f"Back-off restarting failed container {pod.container} in pod {pod.name}_{pod.ns}({rng.randbytes(16).hex()[:8]}-{rng.randbytes(2).hex()}-...)",
                       node=pod.node, fault=f)
        sim.kevent(T, tk + rng.randint(12_000, 30_000), pod.ref, "Pulled", "Normal",
                   f'Container image "{image_of(wl)}" already present on machine', node=pod.node)
        sim.kevent(T, tk + rng.randint(31_000, 34_000), pod.ref, "Started", "Normal", f"Started container {pod.container}", node=pod.node)
        k.upstream(wl, tk + rng.randint(50, 900), tk + rng.randint(20_000, 60_000), rng.choice(["reset", "refused", "5xx"]),
                   depth=2, gap=3000, err=0.15, lat=0.3)
        end = tk + 60_000
    f.until = end + 3 * MIN
    return True


def fault_cpu_throttle(sim, T, f, t):
    """Traffic grows past a too-low CPU limit: CFS throttling, latency, probe timeouts,
    liveness restarts, callers time out. No single event names the cause."""
    rng = sim.rng
    cands = [w for w in T.workloads.values() if w.kind == "Deployment" and w.role == "http" and w.ns != "staging"
             and callers_of(T, w) and w.cpu_limit]
    wl = pick_free(T, rng, cands, t)
    if wl is None:
        return False
    k = FaultKit(sim, T, f)
    k.reserve(wl.key)
    f.root = wl.key
    f.accepted = [wl.key, ("ReplicaSet", wl.ns, f"{wl.name}-{wl.rs_hash}"), wl.svc_ref] + [p.ref for p in wl.pods]
    dur = int(rng.uniform(5, 10) * MIN)
    onset = t + int(rng.uniform(1, 3) * MIN)
    svc = ("svc", wl.ns, wl.name)
    add_effect(T, svc, "rps", t, onset + dur, "mul", rng.uniform(1.8, 3.0), onset)
    add_effect(T, ("wl",) + wl.key, "cpu", t, onset + dur, "add", wl.cpu_limit, onset)
    add_effect(T, ("wl",) + wl.key, "throttle", onset, onset + dur, "to", rng.uniform(0.45, 0.85), onset + 60_000)
    add_effect(T, svc, "lat", onset, onset + dur, "add", rng.uniform(1.0, 4.0), onset + 90_000)
    add_effect(T, svc, "err", onset + 60_000, onset + dur, "add", 0.05, onset + 120_000)
    f.start = onset
    f.detail = f"{wl.name} CPU-throttled at its {wl.cpu_limit} core limit under {wl.ns} traffic"
    f.hard.append("metric-only-cause")
    for _ in range(rng.randint(2, 5)):
        pod = rng.choice(wl.pods)
        tp = onset + rng.randint(40_000, dur - 10_000)
        sim.kevent(T, tp, pod.ref, "Unhealthy", "Warning",
                   f'Readiness probe failed: Get "http://{pod.ip}:8080/ready": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
                   node=pod.node, fault=f)
        if rng.random() < 0.4:
            sim.kevent(T, tp + 31_000, pod.ref, "Killing", "Normal",
                       f"Container {pod.container} failed liveness probe, will be restarted", node=pod.node, fault=f)
            sim.at(tp + 31_000, lambda now, p=pod: setattr(p, "restarts", p.restarts + 1))
    k.stream(wl, onset + 30_000, onset + dur, 20_000,
             lambda p: {"go": f'level=warn msg="slow request" path=/api/v1/{wl.name} duration={rng.uniform(1.5, 6):.1f}s',
                        "java": f"WARN [http-nio-8080-exec-{rng.randint(1, 200)}] o.a.tomcat.util.threads.ThreadPoolExecutor : Thread pool exhausted, queue size {rng.randint(50, 400)}",
                        "python": f"WARNING:gunicorn.error:Worker (pid:{rng.randint(10, 99)}) was sent SIGKILL! Perhaps out of memory?"
                        if rng.random() < 0.2 else "WARNING:app:request took 4.1s"}.get(wl.lang, "slow request"),
             level="warn")
    k.upstream(wl, onset + rng.randint(40_000, 90_000), onset + dur, "timeout", depth=2, gap=5000)
    f.until = onset + dur + 3 * MIN
    return True


def fault_db_slow(sim, T, f, t):
    """A database slows down (lock contention behind a long migration / vacuum); it logs only
    at LOG level and raises no event: its clients time out. Seen via latency and pg metrics."""
    rng = sim.rng
    cands = [w for w in T.workloads.values() if w.role == "db" and w.ns != "staging" and callers_of(T, w)]
    wl = pick_free(T, rng, cands, t)
    if wl is None:
        return False
    k = FaultKit(sim, T, f)
    k.reserve(wl.key)
    primary = next((p for p in wl.pods if p.name.endswith("-0")), wl.pods[0])
    f.root = primary.ref
    f.accepted = [primary.ref, wl.key, wl.svc_ref]
    dur = int(rng.uniform(5, 11) * MIN)
    key = ("pod", primary.ns, primary.name)
    add_effect(T, key, "pg_tx", t, t + dur, "to", rng.uniform(25, 240), t + 60_000)
    add_effect(T, key, "pg_active", t, t + dur, "to", rng.randint(60, 200), t + 45_000)
    add_effect(T, key, "cpu", t, t + dur, "add", 1.2, t + 30_000)
    f.start = t
    f.hard.append("no-event-on-cause")
    f.detail = f"{wl.name} slow: long transaction holding locks"
    if rng.random() < 0.6:
        sim.log(T, t - rng.randint(5_000, 40_000), primary, "info",
                rng.choice(["LOG:  statement: ALTER TABLE public.orders ADD COLUMN fulfilment_id bigint",
                            "LOG:  automatic vacuum of table \"app.public.order_items\": index scans: 1",
                            "LOG:  checkpoints are occurring too frequently (9 seconds apart)"]), fault=f, cause=True)
    for i in range(rng.randint(3, 8)):
        sim.log(T, t + rng.randint(30_000, dur), primary, "info",
                f"LOG:  duration: {rng.uniform(5000, 60000):.3f} ms  statement: SELECT o.id, o.status FROM orders o WHERE o.customer_id = $1 FOR UPDATE",
                fault=f, cause=True)
    k.upstream(wl, t + rng.randint(45_000, 120_000), t + dur, "timeout", depth=3, gap=5000)
    f.until = t + dur + 3 * MIN
    return True


def fault_cert_expiry(sim, T, f, t):
    """cert-manager could not renew a serving certificate; at expiry every TLS client of
    the service fails the handshake. Earlier Warnings sit on the Certificate."""
    rng = sim.rng
    cands = [T.by_name[n] for n in ("payments", "accounts") if n in T.by_name]
    cands = [w for w in cands if callers_of(T, w)]
    wl = pick_free(T, rng, cands, t)
    if wl is None:
        return False
    k = FaultKit(sim, T, f)
    k.reserve(wl.key)
    secret = ("Secret", wl.ns, f"{wl.name}-tls")
    cert = ("Certificate", wl.ns, f"{wl.name}-tls")
    f.root = secret
    f.accepted = [secret, cert]
    expiry = t + int(rng.uniform(2, 5) * MIN)
    T.cert_expiry[(wl.ns, f"{wl.name}-tls")] = expiry
    f.detail = f"{secret[2]} expired at {expiry}"
    for i, dt in enumerate(sorted(rng.sample(range(30_000, expiry - t - 60_000), rng.randint(1, 3)))):
        sim.kevent(T, t + dt, cert, "Failed", "Warning",
                   f'The certificate request has failed to complete and will be retried: Failed to wait for order resource "{secret[2]}-{T.suffix(5)}-{rng.randint(10**8, 10**9)}" to become ready: order is in "errored" state: Failed to create Order: 429 urn:ietf:params:acme:error:rateLimited: too many certificates already issued',
                   fault=f, cause=True)
    if rng.random() < 0.5:
        sim.kevent(T, expiry - rng.randint(2000, 60_000), cert, "Issuing", "Normal",
                   "Renewing certificate as renewal was scheduled at 2025-12-02 09:00:00 +0000 UTC", fault=f, cause=True)
    f.start = min(f.start or expiry, expiry)
    dur = int(rng.uniform(4, 8) * MIN)
    k.stream(wl, expiry + 500, expiry + dur, 8000,
             lambda p: f"http: TLS handshake error from 10.3.{rng.randint(0, 255)}.{rng.randint(2, 254)}:{rng.randint(30000, 60000)}: remote error: tls: bad certificate",
             level="info", fault=False)
    k.upstream(wl, expiry + 200, expiry + dur, "tls", depth=2, gap=3000, err=0.6, lat=0.01, first=rng.randint(100, 2000))
    f.until = expiry + dur + 3 * MIN

    def renewed(now):
        T.cert_expiry[(wl.ns, secret[2])] = now + 90 * 86_400_000
        sim.kevent(T, now, cert, "Issuing", "Normal", "The certificate has been successfully issued")
    sim.at(expiry + dur, renewed)
    return True


def fault_dns(sim, T, f, t):
    """CoreDNS overloaded (throttled at its CPU limit, queries dropped): lookups time out in
    many unrelated services at once; nothing in the call graph points at kube-dns."""
    rng = sim.rng
    dns = T.workloads.get(("Deployment", "kube-system", "coredns"))
    victims = [w for w in T.workloads.values() if w.role in ("http", "worker", "ingress") and w.ns != "staging"
               and w.calls and w.pods]
    if dns is None or not T.clean([dns.key], t):
        return False
    rng.shuffle(victims)
    victims = [v for v in victims if T.clean([v.key], t)][: rng.randint(3, 6)]
    if len(victims) < 2:
        return False
    k = FaultKit(sim, T, f)
    k.reserve(dns.key, *[v.key for v in victims])
    f.root = dns.key
    f.accepted = [dns.key, ("ReplicaSet", dns.ns, f"coredns-{dns.rs_hash}"), ("Service", "kube-system", "kube-dns")] + \
        [p.ref for p in dns.pods]
    dur = int(rng.uniform(4, 9) * MIN)
    onset = t + int(rng.uniform(0.5, 2) * MIN)
    for pod in dns.pods:
        key = ("pod", pod.ns, pod.name)
        add_effect(T, key, "cpu", t, onset + dur, "add", 0.5, onset)
        add_effect(T, key, "throttle", t, onset + dur, "to", 0.9, onset)
        add_effect(T, key, "dns_p99", onset, onset + dur, "to", rng.uniform(1.5, 5), onset + 30_000)
    f.start = onset
    f.hard.append("cause-outside-call-graph")
    f.detail = "coredns throttled; lookups time out cluster-wide"
    if rng.random() < 0.5:
        for _ in range(rng.randint(1, 4)):
            pod = rng.choice(dns.pods)
            sim.log(T, onset + rng.randint(5_000, dur), pod, "error",
                    f"[ERROR] plugin/errors: 2 api.{rng.choice(['stripe.com', 'sendgrid.net', 'segment.io'])}. A: read udp {pod.ip}:{rng.randint(30000, 60000)}->169.254.169.253:53: i/o timeout",
                    fault=f, cause=True)
    for v in victims:
        d = rng.randint(1000, 60_000)
        callee = T.workloads[rng.choice(v.calls)]
        k.stream(v, onset + d, onset + dur, rng.uniform(4000, 12000),
                 lambda p, v=v, c=callee: failure_message(rng, v, c, "dns"))
        if v.role in ("http", "ingress"):
            add_effect(T, ("svc", v.ns, v.name), "err", onset + d, onset + dur, "add", 0.08, onset + d + 20_000)
            add_effect(T, ("svc", v.ns, v.name), "lat", onset + d, onset + dur, "add", 2.5, onset + d + 20_000)
    f.until = onset + dur + 3 * MIN
    return True


def fault_quota(sim, T, f, t):
    """A traffic surge makes the HPA scale up; the namespace ResourceQuota is used up, so the
    ReplicaSet cannot create pods (FailedCreate, a Warning); the service sheds load."""
    rng = sim.rng
    cands = [T.workloads[k] for k in T.hpas if T.workloads[k].ns in T.quota and callers_of(T, T.workloads[k])]
    wl = pick_free(T, rng, cands, t)
    if wl is None:
        return False
    k = FaultKit(sim, T, f)
    k.reserve(wl.key)
    q = T.quota[wl.ns]
    rs = ("ReplicaSet", wl.ns, f"{wl.name}-{wl.rs_hash}")
    f.root = rs
    f.accepted = [rs, wl.key, ("ResourceQuota", wl.ns, q["name"]), ("HorizontalPodAutoscaler", wl.ns, wl.name)]
    surge = t + int(rng.uniform(1, 3) * MIN)
    dur = int(rng.uniform(5, 10) * MIN)
    svc = ("svc", wl.ns, wl.name)
    add_effect(T, svc, "rps", t, surge + dur, "mul", rng.uniform(2.5, 4), surge)
    add_effect(T, ("wl",) + wl.key, "cpu", t, surge + dur, "add", wl.cpu_limit, surge)
    add_effect(T, ("quota", wl.ns), "used", surge, surge + dur, "to", q["hard"], surge + 5000)
    n = len(wl.pods)
    want = n + rng.randint(2, 4)
    add_effect(T, ("hpa",) + wl.key, "desired", surge, surge + dur, "to", want, surge)
    hpa = ("HorizontalPodAutoscaler", wl.ns, wl.name)
    sim.kevent(T, surge, hpa, "SuccessfulRescale", "Normal",
               f"New size: {want}; reason: cpu resource utilization (percentage of request) above target", fault=f, cause=True)
    sim.kevent(T, surge + 300, wl.key, "ScalingReplicaSet", "Normal", f"Scaled up replica set {rs[2]} to {want}", fault=f, cause=True)
    tf, backoff = surge + rng.randint(400, 1500), 1000
    while tf < surge + dur:
        sim.kevent(T, tf, rs, "FailedCreate", "Warning",
                   f'Error creating: pods "{rs[2]}-{T.suffix(5)}" is forbidden: exceeded quota: {q["name"]}, requested: limits.cpu={int(wl.cpu_limit * 1000)}m, used: limits.cpu={q["hard"] * 1000}m, limited: limits.cpu={q["hard"]}',
                   fault=f, cause=True)
        tf += backoff
        backoff = min(backoff * 2, 180_000)
    f.start = surge
    f.hard.append("cause-as-warning")
    f.detail = f"{wl.name} cannot scale past quota {q['name']}"
    add_effect(T, svc, "lat", surge + 30_000, surge + dur, "add", rng.uniform(0.8, 3), surge + 90_000)
    add_effect(T, svc, "err", surge + 30_000, surge + dur, "add", 0.1, surge + 90_000)
    k.stream(wl, surge + 40_000, surge + dur, 15_000,
             lambda p: {"go": 'level=warn msg="load shedding" inflight=512 limit=512',
                        "java": "WARN [http-nio-8080-exec-1] o.a.tomcat.util.net.NioEndpoint : maxConnections reached, connection queued"}.get(wl.lang, "WARNING: overloaded"),
             level="warn")
    k.upstream(wl, surge + rng.randint(45_000, 100_000), surge + dur, rng.choice(["5xx", "timeout"]), depth=2, gap=5000)
    f.until = surge + dur + 3 * MIN
    return True


def fault_noisy_neighbour(sim, T, f, t):
    """A batch Job without CPU limits lands on a node with latency-sensitive pods and starves
    them; only Normal events and metrics on the job; the victims' callers time out."""
    rng = sim.rng
    by_node = {}
    for wl in T.workloads.values():
        if wl.role == "http" and wl.ns != "staging" and callers_of(T, wl):
            for p in wl.pods:
                by_node.setdefault(p.node, set()).add(wl)
    nodes = [n for n, ws in by_node.items() if n not in T.down and n not in T.cordoned and
             T.clean([n, *[w.key for w in ws], *[c.key for w in ws for c in callers_of(T, w)]], t)]
    if not nodes or not T.cronjobs:
        return False
    node = rng.choice(nodes)
    victims = sorted(by_node[node], key=lambda w: w.name)
    k = FaultKit(sim, T, f)
    k.reserve(node, *[w.key for w in victims])
    spec = rng.choice(T.cronjobs)
    name, ns, every, run, lang = spec
    dur = int(rng.uniform(5, 9) * MIN)
    cpu = rng.uniform(6, 14)
    sim.at(t, lambda now: cron_run(now, sim, T, (name, ns, every, run, lang), node=node, fault=f, cpu=(cpu, dur)))
    T.last_touched[("CronJob", ns, name)] = t
    f.start = t
    f.hard.append("cause-only-normal-events")
    f.detail = f"a {name} job pod saturates {node}"
    add_effect(T, ("node", node), "cpu", t + 10_000, t + dur, "to", 0.99, t + 40_000)
    onset = t + 40_000
    for w in victims:
        svc = ("svc", w.ns, w.name)
        add_effect(T, svc, "lat", onset, t + dur, "add", rng.uniform(0.5, 2.0), onset + 40_000)
        on_node = [p for p in w.pods if p.node == node]
        k.stream(w, onset + 20_000, t + dur, 25_000,
                 lambda p: {"go": f'level=warn msg="slow handler" duration={rng.uniform(1, 4):.1f}s',
                            "java": "WARN [http-nio-8080-exec-3] c.s.web.TimingFilter : request took 3812 ms"}.get(w.lang, "WARNING: slow request"),
                 level="warn", pods=on_node)
        k.upstream(w, onset + rng.randint(20_000, 80_000), t + dur, "timeout", depth=1, gap=7000)
    f.until = t + dur + 3 * MIN
    return True


def fault_node_down(sim, T, f, t):
    """A node locks up (memory exhausted, kubelet stops heart-beating). node-controller marks
    it NotReady ~40 s later — after the first client errors — and evicts its pods at 5 min."""
    rng = sim.rng
    nodes = [n for n in T.nodes if n not in T.down and n not in T.cordoned]
    rng.shuffle(nodes)
    for node in nodes:
        pods = [p for w in T.workloads.values() for p in w.pods if p.node == node and p.alive]
        served = sorted({p.wl for p in pods if p.wl.kind != "DaemonSet" and p.job is None}, key=lambda w: w.key)
        if not any(callers_of(T, w) for w in served):
            continue
        if T.clean([node, *[w.key for w in served]], t):
            break
    else:
        return False
    k = FaultKit(sim, T, f)
    k.reserve(node, *[w.key for w in served])
    f.root = ("Node", "", node)
    f.accepted = [f.root]
    add_effect(T, ("node", node), "mem", t, t + 3 * MIN, "to", 60 << 20, t + 100_000)
    add_effect(T, ("node", node), "cpu", t, t + 3 * MIN, "to", 1.0, t + 60_000)
    hang = t + int(rng.uniform(2, 3) * MIN)
    f.start = t
    f.hard.append("cause-event-after-symptoms")
    f.detail = f"{node} hung; NotReady reported 40 s after clients fail"
    sim.kevent(T, hang - rng.randint(20_000, 60_000), ("Node", "", node), "SystemOOM", "Warning",
               f"System OOM encountered, victim process: {rng.choice(['java', 'node', 'python3'])}, pid: {rng.randint(1000, 90000)}",
               node=node, fault=f, cause=True) if rng.random() < 0.5 else None
    sim.at(hang, lambda now: T.down.add(node))
    notready = hang + 40_000 + rng.randint(0, 5000)
    sim.kevent(T, notready, ("Node", "", node), "NodeNotReady", "Normal", f"Node {node} status is now: NodeNotReady",
               fault=f, cause=True)
    for p in pods:
        if p.wl.kind != "DaemonSet":
            sim.kevent(T, notready + rng.randint(100, 900), p.ref, "NodeNotReady", "Warning", "Node is not ready", fault=f)
    recover = hang + int(rng.uniform(6, 12) * MIN)
    for w in served:
        if not callers_of(T, w):
            continue
        k.upstream(w, hang + rng.randint(500, 3000), notready + rng.randint(5000, 30_000) if w.kind == "Deployment" and len(w.pods) > 1
                   else recover, "timeout", depth=2, gap=4000)

    def evict(now):
        for p in pods:
            if p.wl.kind in ("DaemonSet",) or p.job is not None or not p.alive:
                continue
            sim.kevent(T, now, p.ref, "TaintManagerEviction", "Normal", f"Marking for deletion Pod {p.ns}/{p.name}")
            remove_pod(sim, T, p, now + 500, reason_event=False)
            if p.wl.kind == "StatefulSet":
                continue  # a StatefulSet pod waits for the node: no replacement while it is unknown
            new = create_pod(sim, T, p.wl, now + rng.randint(1000, 4000))
            start_pod_logs(sim, T, new, now + 10_000)
    sim.at(hang + 5 * MIN + rng.randint(0, 20_000), evict)

    def back(now):
        T.down.discard(node)
        sim.kevent(T, now, ("Node", "", node), "Starting", "Normal", "Starting kubelet.", node=node)
        sim.kevent(T, now + 2000, ("Node", "", node), "NodeReady", "Normal", f"Node {node} status is now: NodeReady")
        for p in pods:
            if p.wl.kind == "StatefulSet" and not p.alive:
                idx = p.name.rsplit("-", 1)[1]
                new = create_pod(sim, T, p.wl, now + 5000, index=idx, node=node)
                start_pod_logs(sim, T, new, now + 15_000)
    sim.at(recover, back)
    f.until = recover + 3 * MIN
    return True


def fault_bad_rollout(sim, T, f, t):
    """A new version: either its pods crash-loop (the rollout stalls) or they pass their probes
    and fail a share of requests. The cause is a Normal ScalingReplicaSet event."""
    rng = sim.rng
    cands = [w for w in T.workloads.values() if w.kind == "Deployment" and w.role == "http"]
    cands = [w for w in cands if w.ns != "staging" or rng.random() < 0.3]
    wl = pick_free(T, rng, cands, t)
    if wl is None:
        return False
    k = FaultKit(sim, T, f)
    k.reserve(wl.key)
    crash = rng.random() < 0.4
    f.start = t
    f.detail = ("crash-looping" if crash else "failing requests") + f" release of {wl.name}"
    if wl.ns == "staging":
        f.hard.append("staging-namespace")
    if crash:
        T.last_touched[wl.key] = t
        new_hash = T.suffix(rng.choice([9, 10]))
        rs = ("ReplicaSet", wl.ns, f"{wl.name}-{new_hash}")
        f.root = rs
        f.accepted = [rs, wl.key]
        f.until = t + 20 * MIN
        sim.at(t, crash_loop, sim, T, f, wl, new_hash)
        return True
    release_bad(sim, T, f, k, wl, t)
    return True


def crash_loop(t, sim, T, f, wl, new_hash):
    """The crash-looping release of `fault_bad_rollout`, when it happens."""
    rng = sim.rng
    rs = ("ReplicaSet", wl.ns, f"{wl.name}-{new_hash}")
    old_hash = wl.rs_hash
    sim.topo(T, t, wl.key, "OWNS", rs)
    sim.kevent(T, t, wl.key, "ScalingReplicaSet", "Normal", f"Scaled up replica set {rs[2]} to 1", fault=f, cause=True)
    wl.rs_hash = new_hash
    pod = create_pod(sim, T, wl, t + 200)
    wl.pods.remove(pod)  # not serving: never Ready
    wl.rs_hash = old_hash
    msg = {"go": "panic: runtime error: invalid memory address or nil pointer dereference\n[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x8a4f2c]",
           "java": f"ERROR [main] o.s.boot.SpringApplication : Application run failed\norg.springframework.beans.factory.BeanCreationException: Error creating bean with name '{wl.name.replace('-', '')}Service': Injection of autowired dependencies failed",
           "python": "CRITICAL:gunicorn.error:Worker failed to boot. ModuleNotFoundError: No module named 'pydantic_settings'",
           "node": json.dumps({"level": 60, "msg": "TypeError: Cannot read properties of undefined (reading 'split')\n    at loadRoutes (/app/dist/server.js:112:31)"})}[wl.lang]
    level = "critical" if wl.lang in ("python", "node") and rng.random() < 0.5 else "error"
    tt = t + rng.randint(6000, 15_000)
    for i in range(rng.randint(4, 7)):
        sim.log(T, tt, pod, level, msg, fault=f)
        sim.kevent(T, tt + rng.randint(500, 2000), pod.ref, "BackOff", "Warning",
                   f"Back-off restarting failed container {pod.container} in pod {pod.name}_{pod.ns}", node=pod.node, fault=f)
        tt += min(10_000 * 2 ** i, 300_000) + rng.randint(1000, 5000)
    f.until = tt + 3 * MIN

    def rollback(now):
        sim.kevent(T, now, wl.key, "ScalingReplicaSet", "Normal", f"Scaled down replica set {rs[2]} to 0")
        pod.alive = False
        pod_edges(sim, T, pod, now + 2000, op="delete")
    sim.at(tt + 20_000, rollback)


def release_bad(sim, T, f, k, wl, t):
    """The release of `fault_bad_rollout` that serves a share of errors."""
    rng = sim.rng
    new_pods = []
    new_rs, done = rollout(sim, T, wl, t, on_new_pod=lambda p, ts: new_pods.append(p), fault=f)
    f.root = new_rs
    f.accepted = [new_rs, wl.key]
    dur = max(done - t, 0) + int(rng.uniform(3, 8) * MIN)
    rate = rng.uniform(0.05, 0.3)
    add_effect(T, ("svc", wl.ns, wl.name), "err", t + 10_000, t + dur, "add", rate, done)
    exc = {"go": 'level=error msg="handler panic recovered" err="runtime error: index out of range [3] with length 3" path=/api/v1/checkout/quote',
           "java": f"ERROR [http-nio-8080-exec-{rng.randint(1, 40)}] o.a.c.c.C.[.[.[/].[dispatcherServlet] : Servlet.service() threw exception java.lang.NullPointerException: Cannot invoke \"java.math.BigDecimal.multiply(java.math.BigDecimal)\" because \"discount\" is null\n\tat com.shop.{wl.name.replace('-', '')}.PricingService.apply(PricingService.java:142)",
           "python": 'ERROR:app:Exception on /api/v1/items [GET]\nTraceback (most recent call last):\n  File "/app/handlers.py", line 88, in get_items\nKeyError: \'currency\'',
           "node": json.dumps({"level": 50, "msg": "TypeError: Cannot read properties of null (reading 'price')", "stack": "at formatCart (/app/dist/cart.js:41:22)"})}[wl.lang]
    k.stream(wl, t + 8000, t + dur, 6000, lambda p: exc, pods=new_pods)
    k.upstream(wl, t + rng.randint(10_000, 30_000), t + dur, "5xx", depth=2, gap=6000, err=rate, lat=0.05)
    f.until = t + dur + 3 * MIN


def fault_config(sim, T, f, t):
    """A ConfigMap edit (the watcher reports an info-level update), Reloader rolls the
    Deployment, the new pods read a wrong value and fail; the rollout is a symptom."""
    rng = sim.rng
    cands = [w for w in T.workloads.values() if w.kind == "Deployment" and w.configmap and w.role == "http"
             and (w.ns != "staging" or rng.random() < 0.3)]
    wl = pick_free(T, rng, cands, t)
    if wl is None:
        return False
    k = FaultKit(sim, T, f)
    k.reserve(wl.key)
    cm = ("ConfigMap", wl.ns, wl.configmap)
    f.root = cm
    f.accepted = [cm]
    key_name = rng.choice(["DB_HOST", "UPSTREAM_TIMEOUT_MS", "FEATURE_FLAGS", "CACHE_ADDR", "LOG_FORMAT"])
    sim.watcher_event(T, t, cm, "Updated", "info",
                      f"configmap {wl.ns}/{wl.configmap} updated (resourceVersion {rng.randint(10**6, 10**7)}): data keys changed: [{key_name}]",
                      fault=f, cause=True, protect=True)
    f.start = t
    f.hard.append("cause-as-info")
    f.detail = f"{wl.configmap}: bad {key_name}"
    if wl.ns == "staging":
        f.hard.append("staging-namespace")
    delay = rng.randint(3000, 30_000)
    new_pods = []
    new_rs, done = rollout(sim, T, wl, t + delay, on_new_pod=lambda p, ts: new_pods.append(p))
    dur = max(done - t, 0) + int(rng.uniform(3, 7) * MIN)
    callee = T.workloads[wl.calls[0]] if wl.calls else None
    msg = {"DB_HOST": lambda p: failure_message(rng, wl, callee or wl, "dns" if rng.random() < 0.5 else "refused"),
           "UPSTREAM_TIMEOUT_MS": lambda p: failure_message(rng, wl, callee or wl, "timeout"),
           "CACHE_ADDR": lambda p: failure_message(rng, wl, callee or wl, "refused")}.get(key_name)
    if msg is None or callee is None:
        msg = lambda p: {"go": 'level=error msg="invalid configuration" err="yaml: unmarshal errors:\\n  line 14: cannot unmarshal !!str `true,` into bool"',
                         "java": "ERROR [main] o.s.b.d.LoggingFailureAnalysisReporter : APPLICATION FAILED TO START: Failed to bind properties under 'app.features' to java.util.Map<java.lang.String, java.lang.Boolean>",
                         "python": "ERROR:app.config:invalid FEATURE_FLAGS: Expecting ',' delimiter: line 1 column 37 (char 36)",
                         "node": json.dumps({"level": 50, "msg": "SyntaxError: Unexpected token } in JSON at position 211 (FEATURE_FLAGS)"})}.get(wl.lang, "invalid config")
    k.stream(wl, t + delay + 6000, t + dur, 5000, msg, pods=new_pods)
    k.upstream(wl, t + delay + rng.randint(10_000, 40_000), t + dur, "5xx", depth=2, gap=7000, err=0.2, lat=0.1)
    f.until = t + dur + 3 * MIN
    return True


def fault_pvc_full(sim, T, f, t):
    """An Elasticsearch data volume fills up; ES logs a WARN about the flood-stage watermark
    and blocks writes; indexers fail. The volume's metric is the earliest evidence."""
    rng = sim.rng
    es = T.by_name.get("elasticsearch")
    users = [w for w in callers_of(T, es)] if es else []
    if es is None or not users or not T.clean([es.key, *[u.key for u in users]], t):
        return False
    k = FaultKit(sim, T, f)
    k.reserve(es.key, *[u.key for u in users])
    pod = rng.choice(es.pods)
    pvc = ("PersistentVolumeClaim", es.ns, f"{es.pvc}-{pod.name}")
    f.root = pvc
    f.accepted = [pvc, pod.ref, es.key]
    cap = T.pvcs.setdefault((es.ns, pvc[2]), 100 << 30)
    flood = t + int(rng.uniform(3, 6) * MIN)
    add_effect(T, ("pvc", es.ns, pvc[2]), "avail", t, flood + 10 * MIN, "to", cap * 0.04, flood)
    f.start = t
    f.hard.append("cause-as-warn-log")
    f.detail = f"{pvc[2]} full; indices read-only"
    for i in range(2):
        sim.log(T, flood - (60_000 if i == 0 else -30_000), pod, "warn",
                f'{{"@timestamp":"{iso(flood)}", "log.level": "WARN", "message":"{"high" if i == 0 else "flood stage"} disk watermark [{90 if i == 0 else 95}%] exceeded on [{pod.name}][/usr/share/elasticsearch/data] free: {cap * 0.04 / 2**30:.1f}gb[4%], {"shards will be relocated away from this node" if i == 0 else "all indices on this node will be marked read-only"}", "component":"o.e.c.r.a.DiskThresholdMonitor"}}',
                fault=f, cause=True)
    dur = int(rng.uniform(4, 8) * MIN)
    for u in users:
        k.stream(u, flood + rng.randint(20_000, 50_000), flood + dur, 9000,
                 lambda p, u=u: failure_message(rng, u, es, "es"))
    f.until = flood + dur + 3 * MIN
    return True


def fault_secret_rotation(sim, T, f, t):
    """A database password is rotated (ExternalSecret refresh, Secret updated) but the client
    pods keep the old one: as pooled connections recycle, logins fail — also in the DB's log."""
    rng = sim.rng
    dbs = [w for w in T.workloads.values() if w.role == "db" and w.ns != "staging" and callers_of(T, w)]
    db = pick_free(T, rng, dbs, t)
    if db is None:
        return False
    clients = [c for c in callers_of(T, db) if c.pods]
    if not T.clean([c.key for c in clients], t):
        return False
    k = FaultKit(sim, T, f)
    k.reserve(db.key, *[c.key for c in clients])
    client = rng.choice(clients)
    secret = ("Secret", client.ns, f"{db.name}-credentials")
    f.root = secret
    f.accepted = [secret, ("ExternalSecret", client.ns, f"{db.name}-credentials")]
    sim.kevent(T, t, ("ExternalSecret", client.ns, secret[2]), "Updated", "Normal", "Updated Secret", fault=f, cause=True)
    sim.watcher_event(T, t + rng.randint(100, 900), secret, "Updated", "info",
                      f"secret {client.ns}/{secret[2]} updated: data keys changed: [password]", fault=f, cause=True)
    f.start = t
    f.hard.append("cause-as-info")
    f.detail = f"{db.name} password rotated; {client.name} keeps the old one"
    dur = int(rng.uniform(4, 9) * MIN)
    onset = t + int(rng.uniform(0.5, 3) * MIN)
    k.stream(client, onset, t + dur, 4000, lambda p: failure_message(rng, client, db, "auth"))
    user = db.name.split("-")[0]
    primary = db.pods[0]
    k.stream(db, onset + 200, t + dur, 6000,
             lambda p: f'FATAL:  password authentication failed for user "{user}"\nDETAIL:  Connection matched pg_hba.conf line 99: "host all all all scram-sha-256"',
             level="error", pods=[primary])
    k.upstream(client, onset + rng.randint(5000, 40_000), t + dur, "5xx", depth=1, gap=7000)
    f.until = t + dur + 3 * MIN
    return True


def fault_kafka_broker(sim, T, f, t):
    """A Kafka broker's log directory fails (disk I/O errors): it shuts down with a FATAL;
    under-replicated partitions rise on the others; producers time out."""
    rng = sim.rng
    kafka = T.by_name.get("kafka")
    if kafka is None or not kafka.pods or not T.clean([kafka.key], t):
        return False
    clients = [c for c in callers_of(T, kafka) if c.pods]
    if not clients or not T.clean([c.key for c in clients], t):
        return False
    k = FaultKit(sim, T, f)
    k.reserve(kafka.key, *[c.key for c in clients])
    pod = rng.choice(kafka.pods)
    f.root = pod.ref
    f.accepted = [pod.ref, kafka.key, ("PersistentVolumeClaim", kafka.ns, f"{kafka.pvc}-{pod.name}")]
    f.start = t
    f.detail = f"{pod.name} log dir failed"
    warn = sim.hard and rng.random() < 0.3
    sim.log(T, t, pod, "error",
            f"[{iso(t)}] ERROR Error while writing to checkpoint file /bitnami/kafka/data/orders-{rng.randint(0, 11)}/leader-epoch-checkpoint (kafka.server.LogDirFailureChannel)\njava.io.IOException: Input/output error",
            fault=f, cause=True) if not warn else sim.log(T, t, pod, "warn",
            f"[{iso(t)}] WARN [ReplicaManager broker={pod.name[-1]}] Stopping serving replicas in dir /bitnami/kafka/data (kafka.server.ReplicaManager)", fault=f, cause=True)
    if warn:
        f.hard.append("cause-as-warning")
    down = t + rng.randint(2000, 8000)
    sim.log(T, down, pod, "critical" if not warn else "warn",
            f"[{iso(down)}] FATAL Shutdown broker because all log dirs in /bitnami/kafka/data have failed (kafka.log.LogManager)",
            fault=f, cause=True)
    dur = int(rng.uniform(4, 8) * MIN)
    add_effect(T, ("kafka-urp",), "urp", down, down + dur, "to", rng.randint(8, 40), down + 30_000)
    add_effect(T, ("kafka-lag",), "lag", down, down + dur, "to", rng.randint(20_000, 200_000), down + dur)
    for c in clients:
        k.stream(c, down + rng.randint(10_000, 60_000), down + dur, 6000, lambda p, c=c: failure_message(rng, c, kafka, "kafka"))
    sim.kevent(T, down + rng.randint(20_000, 40_000), pod.ref, "Unhealthy", "Warning",
               f"Liveness probe failed: dial tcp {pod.ip}:9092: connect: connection refused", node=pod.node, fault=f)
    sim.kevent(T, down + 60_000, pod.ref, "BackOff", "Warning",
               f"Back-off restarting failed container kafka in pod {pod.name}_{pod.ns}", node=pod.node, fault=f)
    f.until = down + dur + 3 * MIN
    return True


def fault_disk_pressure(sim, T, f, t):
    """A pod's log level is left at debug: its container logs fill the node's root
    filesystem; kubelet reports DiskPressure (Normal), EvictionThresholdMet (Warning) and
    evicts the biggest consumers (Warning Evicted) — the culprit and some neighbours."""
    rng = sim.rng
    by_node = {}
    for wl in T.workloads.values():
        if wl.kind == "Deployment" and wl.role == "http" and wl.ns != "staging":
            for p in wl.pods:
                by_node.setdefault(p.node, []).append(p)
    cands = []
    for node, pods in by_node.items():
        served = sorted({p.wl for p in pods}, key=lambda w: w.key)
        if node in T.down or node in T.cordoned or not any(callers_of(T, w) for w in served):
            continue
        if T.clean([node, *[w.key for w in served], *[c.key for w in served for c in callers_of(T, w)]], t):
            cands.append(node)
    if not cands:
        return False
    node = rng.choice(cands)
    pods = by_node[node]
    culprit = rng.choice(pods)
    k = FaultKit(sim, T, f)
    k.reserve(node, *[p.wl.key for p in pods])
    f.root = culprit.ref
    f.accepted = [culprit.ref, culprit.owner, culprit.wl.key, ("Node", "", node)]
    f.start = t
    f.hard.append("cause-is-log-volume")
    f.detail = f"{culprit.name} logs at debug and fills {node}'s root filesystem"
    fill = int(rng.uniform(3, 6) * MIN)
    add_effect(T, ("node", node), "fs", t, t + fill + 4 * MIN, "to", 1.2 * (1 << 30), t + fill)

    def spam(now):
        if now > t + fill or not culprit.alive:
            return
        sim.log(T, now, culprit, "debug", {"go": f'level=debug msg="cache lookup" key=sku:{rng.randint(10**5, 10**6)} hit={rng.choice(["true", "false"])}',
                                           "java": f"DEBUG [http-nio-8080-exec-{rng.randint(1, 40)}] o.h.SQL : select p1_0.id,p1_0.sku,p1_0.price from product p1_0 where p1_0.id=?",
                                           "python": f"DEBUG:urllib3.connectionpool:http://{host(culprit.wl)}:8080 \"GET /v1/items/{rng.randint(1, 99999)} HTTP/1.1\" 200 {rng.randint(100, 900)}",
                                           "node": json.dumps({"level": 20, "msg": "cache lookup", "key": f"sku:{rng.randint(10**5, 10**6)}"})}.get(culprit.wl.lang, "debug"),
                fault=f, cause=True)
        sim.at(now + rng.randint(150, 600), spam)
    sim.at(t, spam)
    pressure = t + fill
    sim.kevent(T, pressure, ("Node", "", node), "EvictionThresholdMet", "Warning", "Attempting to reclaim ephemeral-storage",
               node=node, fault=f, cause=True)
    sim.kevent(T, pressure + rng.randint(200, 2000), ("Node", "", node), "NodeHasDiskPressure", "Normal",
               f"Node {node} status is now: NodeHasDiskPressure", node=node, fault=f, cause=True)
    victims = [culprit] + rng.sample([p for p in pods if p is not culprit], min(len(pods) - 1, rng.randint(0, 2)))
    k.reserve(*[c.key for p in victims for c in callers_of(T, p.wl)])

    def evict(now, p, used):
        if not p.alive:
            return
        sim.kevent(T, now, p.ref, "Evicted", "Warning",
                   f"The node was low on resource: ephemeral-storage. Threshold quantity: 2147483648, available: 1245184Ki. Container {p.container} was using {used}Gi, request is 0, has larger consumption of ephemeral-storage.",
                   node=node, fault=f)
        remove_pod(sim, T, p, now + rng.randint(100, 800))
        new = create_pod(sim, T, p.wl, now + rng.randint(1000, 3000), node=place(T, rng, avoid=(node,)))
        start_pod_logs(sim, T, new, now + 12_000)
        if callers_of(T, p.wl):
            k.upstream(p.wl, now + rng.randint(100, 1500), now + rng.randint(20_000, 60_000),
                       rng.choice(["refused", "reset", "5xx"]), depth=2, gap=3000, err=0.1, lat=0.2)
    te = pressure + rng.randint(3000, 10_000)
    for p in victims:
        sim.at(te, evict, p, rng.randint(9, 30) if p is culprit else rng.randint(1, 3))
        te += rng.randint(5000, 20_000)
    sim.kevent(T, pressure + 4 * MIN, ("Node", "", node), "NodeHasNoDiskPressure", "Normal",
               f"Node {node} status is now: NodeHasNoDiskPressure", node=node)
    f.until = te + 60_000 + 3 * MIN
    return True


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


# --------------------------------------------------------------------------- main


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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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


if __name__ == "__main__":
    main()
