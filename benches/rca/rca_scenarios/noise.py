"""Routine cluster life that is never a fault: rollouts, HPA scaling, probe flaps,
node drains, CronJob runs."""

from __future__ import annotations


from .logs import start_pod_logs
from .model import MIN, Workload
from .pods import create_pod, pod_edges, remove_pod, rollout
from .sim import add_effect


def noise_rollout(ts, sim, T):
    """A healthy rolling update of a random Deployment."""
    rng = sim.rng
    cands = [wl for wl in T.workloads.values() if wl.kind == "Deployment" and wl.role in ("http", "worker")
             and not T.reserved(wl.key, ts)]
    if cands:
        rollout(sim, T, rng.choice(cands), ts)
    sim.at(ts + int(rng.uniform(12, 35) * MIN), noise_rollout, sim, T)


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
