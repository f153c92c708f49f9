"""The event-time simulation: scheduled actions, emission with clock skew, drops and
duplicates, arrival-ordered output; and metric effects faults put on targets."""

from __future__ import annotations

import heapq
import json
import random
import sys

from .model import MIN, SEC, ref_json


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
