"""The ONNX benchmark's reference: onnxruntime-Python scoring one model
version in batches, the same loop and inputs as pulse's `onnx-bench`
(benches/src/bin/onnx-bench.rs); one thread per session, as pulse's.

    python onnxruntime_python.py MODEL_VERSION_DIR BATCH ROWS
"""

import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

directory, batch, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(os.path.join(directory, "model.onnx"), options, providers=["CPUExecutionProvider"])
width = session.get_inputs()[0].shape[1]
name = session.get_inputs()[0].name
i, j = np.meshgrid(np.arange(batch), np.arange(width), indexing="ij")
features = (10 + (i * 7 + j * 13) % 80).astype(np.float32)
batches = rows // batch
latencies = []
started = time.perf_counter()
for _ in range(batches):
    before = time.perf_counter()
    session.run(None, {name: features})
    latencies.append((time.perf_counter() - before) * 1e6)
elapsed = time.perf_counter() - started
latencies.sort()
quantile = lambda q: latencies[round((len(latencies) - 1) * q)]
print(json.dumps({"runtime": "onnxruntime-python", "batch": batch, "rows": batches * batch,
                  "rows_per_s": round(batches * batch / elapsed), "p50_us": round(quantile(0.5), 1),
                  "p99_us": round(quantile(0.99), 1)}))
