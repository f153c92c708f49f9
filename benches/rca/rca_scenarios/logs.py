"""Each pod's own background log stream, and the chronic error every cluster has."""

from __future__ import annotations

import json

from .messages import ERROR_NOISE, WARN_NOISE, access_line
from .model import MIN


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
