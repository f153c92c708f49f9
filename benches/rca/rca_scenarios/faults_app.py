"""Faults whose root cause is an application workload or its configuration."""

from __future__ import annotations

import json

from .fault_kit import FaultKit, callers_of, pick_free
from .messages import failure_message
from .model import MIN
from .pods import create_pod, image_of, pod_edges, rollout
from .sim import add_effect


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
