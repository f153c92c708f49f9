"""Faults whose root cause is infrastructure: databases, certificates, DNS, nodes,
volumes, brokers, neighbours."""

from __future__ import annotations

import json

from .fault_kit import FaultKit, callers_of, pick_free
from .logs import start_pod_logs
from .messages import failure_message, host, iso
from .model import MIN
from .noise import cron_run
from .pods import create_pod, place, remove_pod
from .sim import add_effect


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
