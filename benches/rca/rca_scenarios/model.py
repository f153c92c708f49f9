"""The simulated objects: workloads, pods, faults, and time units."""

from __future__ import annotations

from dataclasses import dataclass, field


SEC = 1000


MIN = 60 * SEC


# Kubernetes' rand.SafeEncodeString alphabet: what ReplicaSet hashes and pod
# suffixes are drawn from (no vowels, no 0/1/3).
K8S_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


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
