#!/usr/bin/env python3
"""Sums `pulse eval rca --answers KEY --misses` reports over several seeds.

    python3 benches/rca/summarize.py r1.txt:key1.json r2.txt:key2.json r3.txt:key3.json

Each argument is a report (the stdout of `pulse eval rca ... --misses`) and the
answer key it was scored against. Prints, per fault type and overall,
accuracy@1/3/5 of the causal ranker beside the baseline formula and how many
faults had an incident; then, for the causal ranker, the same accuracy split by
the hard cases the key lists for each fault and by whether the fault overlapped
another one; then why it missed, with what it ranked first instead.

A fault the `--misses` listing leaves out had its root cause ranked first; a listed
one carries its rank (`RANK=Some(k)`), `RANK=None` (not among the ten causes) or
`NO-INCIDENT`. Standard library only.
"""

import collections
import json
import re
import sys

SCORE = re.compile(r"^(\S+)?\s+(causal|baseline)\s+A@1=([\d.]+) A@3=([\d.]+) A@5=([\d.]+) "
                   r"mean_rank=(\S+) detected=(\d+)/(\d+)")
MISS = re.compile(r"^(NO-INCIDENT|RANK=(?:None|Some\((\d+)\))) (\S+) (\S+) (\d+) ")
TOP = re.compile(r"top=\[([^ /]+)/([^/]*)/(\S+) (.*?) (\d\.\d\d) \(")


def accuracy_row(ranks):
    """A@1, A@3, A@5 and detected over a list of ranks (None: no incident, 99: not ranked)."""
    n = max(len(ranks), 1)
    at = [sum(1 for r in ranks if r is not None and r <= k) / n for k in (1, 3, 5)]
    return at, sum(1 for r in ranks if r is not None), len(ranks)


def main(args):
    totals = collections.defaultdict(lambda: {"causal": [0] * 5, "baseline": [0] * 5})
    why = collections.defaultdict(collections.Counter)
    instead = collections.defaultdict(collections.Counter)
    by_case = collections.defaultdict(list)
    for arg in args:
        path, _, key_path = arg.partition(":")
        ranks = {}
        current = None
        for line in open(path):
            m = SCORE.match(line)
            if m:
                if m.group(1):
                    current = m.group(1)
                row = totals[current][m.group(2)]
                faults = int(m.group(8))
                row[0] += faults
                for i, g in enumerate((3, 4, 5)):
                    row[i + 1] += round(float(m.group(g)) * faults)
                row[4] += int(m.group(7))
                continue
            m = MISS.match(line)
            if not m:
                continue
            kind, fault_type = m.group(1), m.group(3)
            fault_id = (m.group(4), int(m.group(5)), fault_type)
            if kind == "NO-INCIDENT":
                why[fault_type]["no incident"] += 1
                ranks[fault_id] = None
            elif kind == "RANK=None":
                why[fault_type]["not in top 10"] += 1
                ranks[fault_id] = 99
            else:
                why[fault_type][f"rank {m.group(2)}"] += 1
                ranks[fault_id] = int(m.group(2))
            top = TOP.search(line)
            if top:
                reason = top.group(4)
                reason = reason if len(reason) < 40 else reason[:37] + "..."
                instead[fault_type][f"{top.group(1)} {reason}"] += 1
        if not key_path:
            continue
        faults = json.load(open(key_path))["faults"]
        for fault in faults:
            fault_id = (fault["tenant"], fault["start"], fault["fault_type"])
            rank = ranks.get(fault_id, 1)
            earlier = [g for g in faults if g["tenant"] == fault["tenant"] and g["start"] < fault["start"]]
            overlaps = any(g["end"] > fault["start"] for g in earlier)
            by_case["overlaps another fault" if overlaps else "alone"].append(rank)
            for case in fault.get("hard_cases", []) or ["(no hard case)"]:
                by_case[case].append(rank)
            by_case["all"].append(rank)

    print(f"{'fault type':<20} {'causal A@1 A@3 A@5':>20} {'baseline A@1 A@3 A@5':>22} {'detected':>9}")
    for fault_type in sorted(totals, key=lambda t: (t == "all", t)):
        c, b = totals[fault_type]["causal"], totals[fault_type]["baseline"]
        n = max(c[0], 1)
        print(f"{fault_type:<20} {c[1] / n:>8.2f} {c[2] / n:.2f} {c[3] / n:.2f} "
              f"{b[1] / n:>10.2f} {b[2] / n:.2f} {b[3] / n:.2f} {c[4]:>5}/{c[0]}")
    if by_case:
        print()
        print(f"{'causal ranker, by case':<28} {'A@1':>5} {'A@3':>5} {'A@5':>5} {'detected':>9}")
        for case in sorted(by_case, key=lambda c: (c == "all", c)):
            at, detected, n = accuracy_row(by_case[case])
            print(f"{case:<28} {at[0]:>5.2f} {at[1]:>5.2f} {at[2]:>5.2f} {detected:>5}/{n}")
    print()
    print("why the causal ranker missed (and what it ranked first instead)")
    for fault_type in sorted(why):
        reasons = ", ".join(f"{k} ×{v}" for k, v in why[fault_type].most_common())
        firsts = "; ".join(f"{k} ×{v}" for k, v in instead[fault_type].most_common(3))
        print(f"  {fault_type:<16} {reasons}")
        if firsts:
            print(f"  {'':<16}   first instead: {firsts}")


if __name__ == "__main__":
    main(sys.argv[1:])
