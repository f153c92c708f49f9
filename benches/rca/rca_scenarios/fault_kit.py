"""What the fault scenarios share: error streams, propagation up the call graph,
reservations that keep concurrent faults apart."""

from __future__ import annotations


from .messages import failure_message
from .sim import add_effect


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
