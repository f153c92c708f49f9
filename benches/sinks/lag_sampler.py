#!/usr/bin/env python3
"""Samples the lag of a running `pulse run benches/sinks/lag.toml` (see
benches/run-bench-sink-lag.sh) and prints one JSON report.

Every INTERVAL seconds for DURATION seconds (after WARMUP):
- the servers themselves: the newest window end in ClickHouse `window_aggregates`
  and in the Redis hashes of a few series, and the newest event time in
  `time_series_events`. A window's lag is (wall time it was first seen in the
  server - its end); the raw events' lag is (now - newest event time stored).
- pulse's /metrics: now - pulse_source_watermark_ms (the source's watermark) and
  now - pulse_sink_acknowledged_ms per sink (what each sink has durably written),
  and the source's event rate.

Event time is the wall clock here (live generator), so these are end-to-end
figures: from the event's creation to the row readable in the server.

Usage: lag_sampler.py METRICS_URL CLICKHOUSE_URL DATABASE REDIS_HOST:PORT REDIS_PREFIX WARMUP DURATION INTERVAL
"""

import json
import re
import socket
import sys
import time
import urllib.parse
import urllib.request


def now_ms():
    return time.time() * 1000.0


def http_get(url):
    with urllib.request.urlopen(url, timeout=5) as answer:
        return answer.read().decode()


def clickhouse(url, sql):
    return http_get(url + "/?query=" + urllib.parse.quote(sql)).strip()


class Redis:
    """A minimal RESP client (commands and bulk/array/integer replies)."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.file = self.sock.makefile("rb")

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for arg in args:
            arg = arg.encode() if isinstance(arg, str) else arg
            out += b"$%d\r\n%s\r\n" % (len(arg), arg)
        self.sock.sendall(out)
        return self._read()

    def _read(self):
        line = self.file.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.file.read(n + 2)[:-2]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return [self._read() for _ in range(max(n, 0))]
        if kind == b":":
            return int(rest)
        if kind == b"-":
            raise RuntimeError(rest.decode())
        return rest.decode()


METRIC = re.compile(r'^(pulse_[a-z_]+)\{([^}]*)\} ([-0-9.e+]+)$')


def metrics(url):
    found = {}
    for line in http_get(url).splitlines():
        match = METRIC.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        component = re.search(r'component="([^"]*)"', labels)
        key = (name, component.group(1) if component else "")
        found[key] = found.get(key, 0.0) + float(value) if name.endswith("_total") else float(value)
    return found


def percentiles(values):
    if not values:
        return None
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return {
        "n": len(values),
        "p50": round(pick(0.50)),
        "p95": round(pick(0.95)),
        "p99": round(pick(0.99)),
        "max": round(values[-1]),
    }


def main():
    metrics_url, ch_url, database, redis_address, prefix, warmup, duration, interval = sys.argv[1:9]
    warmup, duration, interval = float(warmup), float(duration), float(interval)
    time.sleep(warmup)
    redis = Redis(redis_address)
    # A few series of one tenant: their latest hashes show when each window lands.
    tenants = sorted({key.split(":")[len(prefix.split(":")) - 1] for key in redis.call("KEYS", prefix + "*:index:per_host_1s")})
    if not tenants:
        sys.exit("no Redis index keys under " + prefix + ": is the pipeline writing?")
    series = sorted(redis.call("SMEMBERS", f"{prefix}{tenants[0]}:index:per_host_1s"))[:5]
    hashes = [f"{prefix}{tenants[0]}:latest:per_host_1s:{s}" for s in series]

    seen = {"clickhouse": {}, "redis": {}}
    raw_lag, source_lag, sink_lag = [], [], {}
    first = metrics(metrics_url)
    started = time.time()
    while time.time() - started < duration:
        tick = time.time()
        newest = clickhouse(ch_url, f"SELECT max(end_ms) FROM `{database}`.window_aggregates")
        t = now_ms()
        end = int(newest or 0)
        seen["clickhouse"].setdefault(end, t - end)
        ends = [redis.call("HGET", key, "window_end") for key in hashes]
        t = now_ms()
        for end in ends:
            if end is not None:
                seen["redis"].setdefault(int(float(end)), t - int(float(end)))
        newest_event = clickhouse(ch_url, f"SELECT max(ts_ms) FROM `{database}`.time_series_events")
        raw_lag.append(now_ms() - int(newest_event or 0))
        m = metrics(metrics_url)
        t = now_ms()
        for (name, component), value in m.items():
            if name == "pulse_source_watermark_ms" and value > 0:
                source_lag.append(t - value)
            elif name == "pulse_sink_acknowledged_ms" and value > 0:
                sink_lag.setdefault(component, []).append(t - value)
        time.sleep(max(0.0, interval - (time.time() - tick)))
    last = metrics(metrics_url)
    elapsed = time.time() - started
    sent = lambda m: sum(v for (n, _), v in m.items() if n == "pulse_component_sent_events_total")
    # The first window seen was probably there before sampling began: leave it out.
    window_lag = {
        server: percentiles([lag for _, lag in sorted(lags.items())[1:]])
        for server, lags in seen.items()
    }
    print(json.dumps({
        "events_per_second": round((sent(last) - sent(first)) / elapsed),
        "sampled_s": round(elapsed, 1),
        "interval_ms": round(interval * 1000),
        "window_first_seen_minus_window_end_ms": window_lag,
        "raw_events_now_minus_newest_stored_ms": percentiles(raw_lag),
        "source_now_minus_watermark_ms": percentiles(source_lag),
        "sink_now_minus_acknowledged_ms": {k: percentiles(v) for k, v in sorted(sink_lag.items())},
    }, indent=1))


if __name__ == "__main__":
    main()
