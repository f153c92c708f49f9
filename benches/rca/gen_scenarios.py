#!/usr/bin/env python3
"""Independent labelled root-cause scenarios for `pulse eval rca`.

A held-out measuring stick for the incident operator: it simulates Kubernetes
clusters the way their exporters, kubelets, controllers and applications report
them (kube Events as Normal/Warning, container logs in each runtime's own style,
cAdvisor / kube-state-metrics / node-exporter / recording-rule metrics with their
real names and labels, a state watcher for topology), injects faults with a known
root cause, and writes

* an events file (JSONL, the pulse event envelope, mixed tenants, in *arrival*
  order: a few seconds out of event-time order), and
* an answer key (JSON, the `AnswerKey` shape `pulse eval rca --answers` reads).

It was written without reading pulse's own `k8s` generator or its incident
operator, so that scoring on it says whether a ranker generalises. Standard
library only; the same `--seed` always writes the same files.

    python3 benches/rca/gen_scenarios.py --seed 1 --out ev.jsonl --answers key.json
"""


import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from rca_scenarios.scenario import main  # noqa: E402  (after the path is set)

if __name__ == "__main__":
    main()
