"""Pods coming and going: creation with its kubelet events, topology edges, removal,
rolling updates."""

from __future__ import annotations


from .logs import start_pod_logs
from .model import Pod


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
