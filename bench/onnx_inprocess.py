"""The baseline for bench/model.sh: the same ONNX model called in-process
with batches of exactly N rows, items/s over a few seconds.

    python bench/onnx_inprocess.py MODEL.onnx --batch 64 --threads 1
"""

import argparse
import json
import time

import numpy as np
import onnxruntime as ort

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model")
parser.add_argument("--batch", type=int, default=64)
parser.add_argument("--threads", type=int, default=1)
parser.add_argument("--seconds", type=float, default=5.0)
args = parser.parse_args()

options = ort.SessionOptions()
options.intra_op_num_threads = args.threads
session = ort.InferenceSession(args.model, options, providers=["CPUExecutionProvider"])
x = session.get_inputs()[0]
batch = np.zeros((args.batch, x.shape[1]), dtype=np.float32)
for _ in range(20):
    session.run(None, {x.name: batch})
n, start = 0, time.perf_counter()
while time.perf_counter() - start < args.seconds:
    session.run(None, {x.name: batch})
    n += 1
elapsed = time.perf_counter() - start
print(json.dumps({"batch": args.batch, "items_per_sec": n * args.batch / elapsed,
                  "ms_per_batch": elapsed / n * 1e3}))
