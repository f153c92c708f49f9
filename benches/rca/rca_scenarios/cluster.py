"""The shape of a tenant's cluster: the workload catalogue, nodes, staging, quotas."""

from __future__ import annotations

import math

from .model import K8S_ALPHABET, MIN, Workload


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
