"""MLServer (PyPI, a real Open Inference Protocol server, its own batching
off) behind batchgate's kserve kind, called with tritonclient through
batchgate's v2 front door: 2,000 concurrent single-row requests from 64
threads answered exactly (y = 2x) in shared batches; then MLServer is
killed mid-run and every request ends once, with its exact answer or
UNAVAILABLE, and batchgate counts each item once.

    python mlserver_check.py --addr 127.0.0.1:20083 --metrics 127.0.0.1:9483 --mlserver-pid PID
"""

import argparse
import os
import re
import signal
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

parser = argparse.ArgumentParser()
parser.add_argument("--addr", required=True)
parser.add_argument("--metrics", required=True)
parser.add_argument("--mlserver-pid", type=int, required=True)
parser.add_argument("--requests", type=int, default=2000)
parser.add_argument("--threads", type=int, default=64)
args = parser.parse_args()


def metrics():
    return urllib.request.urlopen(f"http://{args.metrics}/metrics").read().decode()


def metric(name):
    m = re.search(rf"^{re.escape(name)} (\S+)$", metrics(), re.M)
    return float(m.group(1)) if m else 0.0


def answered():
    """Items of queue double answered, whatever the outcome."""
    return sum(float(v) for v in re.findall(r'^batchgate_items_total\{queue="double",outcome="[a-z]+"\} (\S+)$', metrics(), re.M))


local = threading.local()
rows = np.random.default_rng(9).standard_normal((args.requests, 4)).astype(np.float32)


def one(i):
    if not hasattr(local, "client"):
        local.client = grpcclient.InferenceServerClient(url=args.addr)
    x = grpcclient.InferInput("x", [1, 4], "FP32")
    x.set_data_from_numpy(rows[i][None])
    try:
        return i, local.client.infer("double", [x], client_timeout=30).as_numpy("y")
    except InferenceServerException as e:
        return i, e


# 1. Every answer exact, rows of different requests batched together.
items0, batches0 = metric('batchgate_batch_size_sum{queue="double"}'), metric('batchgate_batch_size_count{queue="double"}')
with ThreadPoolExecutor(args.threads) as pool:
    results = list(pool.map(one, range(args.requests)))
for i, got in results:
    assert not isinstance(got, Exception), (i, got)
    np.testing.assert_allclose(got[0], rows[i] * 2, rtol=1e-6)
items = metric('batchgate_batch_size_sum{queue="double"}') - items0
batches = metric('batchgate_batch_size_count{queue="double"}') - batches0
print(f"mlserver: {args.requests} single-row requests through batchgate, all exact; {batches:.0f} ModelInfer calls, mean {items / batches:.1f} rows")
assert items == args.requests and items / batches > 1

# 2. MLServer killed after a few hundred answers: each request ends once,
# exact or UNAVAILABLE.
before = answered()
done = []
lock = threading.Lock()


def counted(i):
    r = one(i)
    with lock:
        done.append(r)
        if len(done) == 300:
            os.kill(args.mlserver_pid, signal.SIGKILL)
    return r


with ThreadPoolExecutor(args.threads) as pool:
    results = list(pool.map(counted, range(args.requests)))
ok = failed = 0
for i, got in results:
    if isinstance(got, Exception):
        assert got.status() == "StatusCode.UNAVAILABLE", (i, got.status(), got.message())
        failed += 1
    else:
        np.testing.assert_allclose(got[0], rows[i] * 2, rtol=1e-6)
        ok += 1
assert ok + failed == args.requests
assert failed > 0, "the kill took effect"
assert answered() - before == args.requests, (answered() - before, args.requests)
print(f"mlserver killed mid-run: {ok} exact answers, {failed} UNAVAILABLE, each item answered once")
