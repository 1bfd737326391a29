"""tritonclient (the Triton/KServe v2 gRPC client from PyPI), unchanged,
against batchgate's v2 front door: health and metadata answered, 2,000
concurrent single-row requests from 64 threads each answered with its own
row and batched along dim 0 (from /metrics), several inputs of different
types, and every malformed request refused with its status while the
others go on.

    python tritonclient_check.py --addr 127.0.0.1:20083 --metrics 127.0.0.1:9483
"""

import argparse
import re
import sys
import threading
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

parser = argparse.ArgumentParser()
parser.add_argument("--addr", required=True)
parser.add_argument("--metrics", required=True)
parser.add_argument("--http", help="the REST side's address, to check tritonclient.http too")
parser.add_argument("--requests", type=int, default=2000)
parser.add_argument("--threads", type=int, default=64)
args = parser.parse_args()


def metric(name):
    text = urllib.request.urlopen(f"http://{args.metrics}/metrics").read().decode()
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def row_input(row):
    x = grpcclient.InferInput("INPUT0", [1, 4], "FP32")
    x.set_data_from_numpy(row[None])
    return x


client = grpcclient.InferenceServerClient(url=args.addr)
assert client.is_server_live(), "server live"
assert client.is_server_ready(), "server ready"
assert client.is_model_ready("echo"), "model ready"
assert not client.is_model_ready("nope"), "an unknown model is not ready"
meta = client.get_model_metadata("echo", as_json=True)
assert meta["inputs"] == [{"name": "INPUT0", "datatype": "FP32", "shape": ["-1", "4"]}], meta
assert meta["outputs"][0]["name"] == "OUTPUT0", meta
assert client.get_server_metadata(as_json=True)["name"] == "batchgate"

# 2,000 single-row requests from 64 threads, one client each.
rng = np.random.default_rng(5)
rows = rng.standard_normal((args.requests, 4)).astype(np.float32)
local = threading.local()


def one(i):
    if not hasattr(local, "client"):
        local.client = grpcclient.InferenceServerClient(url=args.addr)
    r = local.client.infer("echo", [row_input(rows[i])], outputs=[grpcclient.InferRequestedOutput("OUTPUT0")])
    return i, r.as_numpy("OUTPUT0")


items0, batches0 = metric('batchgate_batch_size_sum{queue="echo"}'), metric('batchgate_batch_size_count{queue="echo"}')
with ThreadPoolExecutor(args.threads) as pool:
    answers = list(pool.map(one, range(args.requests)))
for i, got in answers:
    assert got.shape == (1, 4) and got.dtype == np.float32, (got.shape, got.dtype)
    np.testing.assert_array_equal(got[0], rows[i])
items = metric('batchgate_batch_size_sum{queue="echo"}') - items0
batches = metric('batchgate_batch_size_count{queue="echo"}') - batches0
assert items == args.requests, f"{items} items for {args.requests} rows"
print(f"tritonclient: {args.requests} single-row requests from {args.threads} threads, all exact; "
      f"{batches:.0f} batches, mean {items / batches:.1f} rows")
assert items / batches > 1, "rows of different requests shared batches"

# A request of several rows and two inputs of different types.
ids = np.arange(10, dtype=np.int64).reshape(5, 2)
mask = (ids % 3 == 0)
a = grpcclient.InferInput("ids", [5, 2], "INT64")
a.set_data_from_numpy(ids)
b = grpcclient.InferInput("mask", [5, 2], "BOOL")
b.set_data_from_numpy(mask)
r = client.infer("pair", [b, a])
np.testing.assert_array_equal(r.as_numpy("ids_out"), ids)
np.testing.assert_array_equal(r.as_numpy("mask_out"), mask)


def refused(model, inputs, code, wanted, outputs=None):
    try:
        client.infer(model, inputs, outputs=outputs)
    except InferenceServerException as e:
        assert e.status() == f"StatusCode.{code}", (model, e.status(), e.message())
        assert wanted in e.message(), (wanted, e.message())
        return
    raise AssertionError(f"{model}: {wanted!r} was not refused")


def tensor(name, shape, datatype, values):
    t = grpcclient.InferInput(name, shape, datatype)
    t.set_data_from_numpy(values)
    return t


f32 = np.zeros((1, 4), np.float32)
refused("nope", [tensor("INPUT0", [1, 4], "FP32", f32)], "NOT_FOUND", 'no model named "nope"')
refused("echo", [tensor("INPUT0", [1, 4], "FP64", f32.astype(np.float64))], "INVALID_ARGUMENT",
        'input "INPUT0" is "FP64"; model "echo" takes FP32')
refused("echo", [tensor("INPUT0", [1, 3], "FP32", np.zeros((1, 3), np.float32))], "INVALID_ARGUMENT",
        'input "INPUT0" has shape [1, 3]; model "echo" takes [N, 4]')
refused("echo", [tensor("WRONG", [1, 4], "FP32", f32)], "INVALID_ARGUMENT", 'model "echo" has no input "WRONG"')
refused("pair", [a], "INVALID_ARGUMENT", 'input "mask" is missing')
refused("echo", [tensor("INPUT0", [1, 4], "FP32", f32)], "INVALID_ARGUMENT", 'has no output "NOPE"',
        outputs=[grpcclient.InferRequestedOutput("NOPE")])
# The rest is served as before.
r = client.infer("echo", [row_input(rows[0])])
np.testing.assert_array_equal(r.as_numpy("OUTPUT0")[0], rows[0])
# Triton's schedule parameters as tritonclient sends them: priority 1 (the
# highest of the queue's 4 levels) and a server-side timeout in us.
r = client.infer("echo", [row_input(rows[1])], priority=1, timeout=5_000_000)
np.testing.assert_array_equal(r.as_numpy("OUTPUT0")[0], rows[1])
try:
    client.infer("echo", [row_input(rows[1])], priority=9)
    raise AssertionError("priority 9 of 4 levels was not refused")
except InferenceServerException as e:
    assert "parameter priority 9 is past the model's levels" in e.message(), e.message()
print("tritonclient: metadata, readiness, several inputs, priorities and 6 malformed requests as expected")

# Triton's extensions: the model config shows the queue's batching, the
# statistics count what ran, the index lists the models, and streaming
# inference answers every request with its own row and id.
# BYTES: rows of two strings (one empty, one not UTF-8), from many threads.
texts = [np.array([[f"row {i} é".encode(), b"" if i % 2 else b"\xff\xfe"]], dtype=np.object_) for i in range(200)]


def text_one(i):
    if not hasattr(local, "client"):
        local.client = grpcclient.InferenceServerClient(url=args.addr)
    t = grpcclient.InferInput("TEXT", [1, 2], "BYTES")
    t.set_data_from_numpy(texts[i])
    return local.client.infer("text", [t]).as_numpy("TEXT_OUT")


with ThreadPoolExecutor(16) as pool:
    for i, out in enumerate(pool.map(text_one, range(len(texts)))):
        assert out.tolist() == texts[i].tolist(), (i, out, texts[i])
print(f"tritonclient: {len(texts)} BYTES requests (strings, empty, not UTF-8) each answered with its row")

cfg = client.get_model_config("echo", as_json=True)["config"]
assert cfg["max_batch_size"] == 64, cfg
assert cfg["input"][0]["name"] == "INPUT0" and cfg["input"][0]["data_type"] == "TYPE_FP32", cfg
assert cfg["input"][0]["dims"] == ["4"], cfg
assert cfg["dynamic_batching"]["max_queue_delay_microseconds"] == "5000", cfg
index = client.get_model_repository_index(as_json=True)["models"]
assert {m["name"] for m in index} >= {"echo", "pair", "double"}, index
before = client.get_inference_statistics("echo", as_json=True)["model_stats"][0]
answers = {}
done = threading.Event()


def on_answer(result, error):
    if error is not None:
        answers.setdefault("errors", []).append(str(error))
    else:
        answers[result.get_response().id] = result.as_numpy("OUTPUT0")
    if len(answers) == args.requests:
        done.set()


client.start_stream(callback=on_answer)
for i in range(args.requests):
    client.async_stream_infer("echo", [row_input(rows[i])], request_id=f"s{i}")
assert done.wait(60), f"{len(answers)} of {args.requests} streamed answers"
client.stop_stream()
assert "errors" not in answers, answers.get("errors")
for i in range(args.requests):
    np.testing.assert_array_equal(answers[f"s{i}"][0], rows[i])
after = client.get_inference_statistics("echo", as_json=True)["model_stats"][0]
ran = int(after["inference_count"]) - int(before.get("inference_count", 0))
executions = int(after["execution_count"]) - int(before.get("execution_count", 0))
assert ran == args.requests, (ran, after)
assert executions < args.requests / 2, f"{executions} executions for {ran} streamed rows: not batched"
stats = after["inference_stats"]
assert int(stats["queue"]["ns"]) > 0 and int(stats["compute_infer"]["ns"]) > 0, stats
print(f"tritonclient: model config, repository index, {ran} streamed requests in {executions} batches, statistics as expected")

if args.http:
    # The REST side: tritonclient.http, binary tensors both ways (its
    # default) and JSON, 2,000 requests 16 at a time, each answered with
    # its own row; its errors as the gRPC side's.
    import tritonclient.http as httpclient

    rest = httpclient.InferenceServerClient(url=args.http, concurrency=16)
    assert rest.is_server_ready() and rest.is_model_ready("echo")
    assert rest.get_model_config("echo")["max_batch_size"] == 64
    assert rest.get_model_metadata("echo")["inputs"][0]["shape"] == [-1, 4]

    def rest_input(row, binary):
        x = httpclient.InferInput("INPUT0", [1, 4], "FP32")
        x.set_data_from_numpy(row[None], binary_data=binary)
        return x

    pending = [
        rest.async_infer("echo", [rest_input(rows[i], i % 2 == 0)], request_id=f"h{i}",
                         outputs=[httpclient.InferRequestedOutput("OUTPUT0", binary_data=i % 3 != 0)])
        for i in range(args.requests)
    ]
    for i, p in enumerate(pending):
        r = p.get_result()
        assert r.get_response()["id"] == f"h{i}"
        np.testing.assert_allclose(r.as_numpy("OUTPUT0")[0], rows[i], rtol=1e-6)
    for binary in (True, False):
        t = httpclient.InferInput("TEXT", [1, 2], "BYTES")
        t.set_data_from_numpy(np.array([[b"rest", "json é".encode()]], dtype=np.object_), binary_data=binary)
        out = rest.infer("text", [t], outputs=[httpclient.InferRequestedOutput("TEXT_OUT", binary_data=binary)])
        got = [x if isinstance(x, bytes) else str(x).encode() for x in out.as_numpy("TEXT_OUT").ravel()]
        assert got == [b"rest", "json é".encode()], (binary, got)
    try:
        rest.infer("echo", [httpclient.InferInput("INPUT0", [1, 3], "FP32").set_data_from_numpy(np.zeros((1, 3), np.float32))])
        raise AssertionError("a wrong shape was not refused")
    except InferenceServerException as e:
        assert "shape [1, 3]" in e.message(), e.message()
    print(f"tritonclient.http: {args.requests} requests (binary and JSON tensors) each answered with its row; a wrong shape refused")
sys.exit(0)
