"""The churn-and-memory drill, from a Python grpcio client against a live
batchgate (started by .ci/churn.sh under an address-space cap):

1. memory: the worst requests we can build (ModelInfers of 400,000 one-byte
   rows, many at once; 4 MiB unary payloads into a slow queue; streams of
   1 MiB items) while a good client keeps sending small items and checks
   every answer. The server must stay up, refuse unary calls that pass its
   budget with RESOURCE_EXHAUSTED and hold streams back (every stream item
   answered OK), keep its RSS under the cap and give every byte back.
2. idempotency: a caller whose deadline passes while its keyed item runs
   gets DEADLINE_EXCEEDED; a retry with the same key gets the item's real
   answer, and the item ran once.
3. churn: 10 cycles of registering and deregistering 2,000 endpoints and of
   creating and deleting 500 queues; RSS and /metrics come back near where
   they were, with no series of what is gone.

Prints the figures and exits 1 if any check fails.

    python drill.py --addr 127.0.0.1:20091 --metrics 127.0.0.1:9491 --pid PID --rss-cap-mb 512
"""

import argparse
import concurrent.futures as cf
import sys
import threading
import time
import urllib.request

import grpc

from batchgate.v1 import batchgate_pb2, batchgate_pb2_grpc, control_pb2, control_pb2_grpc
from inference import grpc_predict_v2_pb2 as v2, grpc_predict_v2_pb2_grpc as v2_grpc

MiB = 1024 * 1024
OPTIONS = [("grpc.max_send_message_length", 16 * MiB), ("grpc.max_receive_message_length", 16 * MiB)]
problems = []


def check(ok, what):
    if not ok:
        problems.append(what)
        print(f"FAIL: {what}", flush=True)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metrics(addr):
    with urllib.request.urlopen(f"http://{addr}/metrics", timeout=30) as r:
        return r.read().decode()


def sample(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


class Peak:
    """Samples the server's RSS every 50 ms in the background."""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except OSError:
                return
            time.sleep(0.05)

    def end(self):
        self.stop.set()
        self.thread.join()
        return self.peak


def good_client(channel, stop, outcome):
    """Small exact items while the attacks run: each must come back as sent."""
    stub = batchgate_pb2_grpc.BatcherStub(channel)
    i = 0
    while not stop.is_set():
        body = f"good-{i}".encode()
        try:
            reply = stub.Submit(batchgate_pb2.SubmitRequest(queue="good", payload=body), timeout=10)
            if reply.payload != body:
                outcome["wrong"] += 1
            outcome["ok"] += 1
        except grpc.RpcError as e:
            outcome["failed"].append(f"{e.code()}: {e.details()[:120]}")
        i += 1


def tiny_rows(rows):
    return v2.ModelInferRequest(
        model_name="tiny",
        inputs=[v2.ModelInferRequest.InferInputTensor(name="x", datatype="UINT8", shape=[rows])],
        raw_input_contents=[bytes(i % 256 for i in range(rows))],
    )


def memory_drill(addr, metrics_addr, pid, cap_mb):
    channel = grpc.insecure_channel(addr, options=OPTIONS)
    good_channel = grpc.insecure_channel(addr, options=OPTIONS)
    infer = v2_grpc.GRPCInferenceServiceStub(channel)
    batcher = batchgate_pb2_grpc.BatcherStub(channel)
    before = rss_mb(pid)
    peak = Peak(pid)
    stop = threading.Event()
    good = {"ok": 0, "wrong": 0, "failed": []}
    good_thread = threading.Thread(target=good_client, args=(good_channel, stop, good))
    good_thread.start()
    codes = {}

    def count(kind, code):
        codes.setdefault(kind, {}).setdefault(code.name, 0)
        codes[kind][code.name] += 1

    request = tiny_rows(400_000)

    def one_infer(_):
        try:
            reply = infer.ModelInfer(request, timeout=120)
            count("infer 400k rows", grpc.StatusCode.OK)
            check(reply.raw_output_contents[0] == request.raw_input_contents[0], "rows came back as sent")
        except grpc.RpcError as e:
            count("infer 400k rows", e.code())

    big = b"\x07" * (4 * MiB - 64)

    def one_big(_):
        try:
            batcher.Submit(batchgate_pb2.SubmitRequest(queue="slow", payload=big), timeout=120)
            count("unary 4 MiB", grpc.StatusCode.OK)
        except grpc.RpcError as e:
            count("unary 4 MiB", e.code())

    def one_stream(n):
        items = (
            batchgate_pb2.StreamRequest(id=f"{n}-{i}", queue="slow", payload=b"\x01" * MiB) for i in range(64)
        )
        for answer in batcher.StreamSubmit(items, timeout=120):
            if answer.HasField("error"):
                count("stream 1 MiB items", grpc.StatusCode(
                    next(c for c in grpc.StatusCode if c.value[0] == answer.error.code)))
            else:
                count("stream 1 MiB items", grpc.StatusCode.OK)

    with cf.ThreadPoolExecutor(max_workers=64) as pool:
        jobs = [pool.submit(one_infer, i) for i in range(16)]
        jobs += [pool.submit(one_big, i) for i in range(200)]
        jobs += [pool.submit(one_stream, i) for i in range(8)]
        for j in jobs:
            j.result()
    stop.set()
    good_thread.join()
    top = peak.end()
    deadline = time.time() + 60
    held = None
    while time.time() < deadline:
        held = sample(metrics(metrics_addr), "batchgate_pending_bytes")
        if held == 0:
            break
        time.sleep(0.2)
    after = rss_mb(pid)
    print(f"memory: RSS {before:.0f} MB before, peak {top:.0f} MB, {after:.0f} MB after (cap {cap_mb} MB)")
    for kind, by_code in sorted(codes.items()):
        print(f"memory: {kind}: {by_code}")
    print(f"memory: good client {good['ok']} exact answers, {good['wrong']} wrong, {len(good['failed'])} failed")
    check(top < cap_mb, f"peak RSS {top:.0f} MB under the cap of {cap_mb} MB")
    check(held == 0, f"every byte given back (batchgate_pending_bytes {held})")
    check(good["ok"] > 0 and good["wrong"] == 0 and not good["failed"],
          f"the good client was served exactly: {good['failed'][:3]}")
    total = {}
    for kind, by_code in codes.items():
        check(set(by_code) <= {"OK", "RESOURCE_EXHAUSTED"}, f"{kind}: only OK or RESOURCE_EXHAUSTED: {by_code}")
        for code, n in by_code.items():
            total[code] = total.get(code, 0) + n
    check(total.get("RESOURCE_EXHAUSTED", 0) > 0, "the budget refused some")
    check(codes.get("stream 1 MiB items") == {"OK": 8 * 64}, "every stream item answered OK (held back, not cut)")
    check(total.get("OK", 0) > 0, "the budget served some")


def idempotency_drill(addr, metrics_addr):
    channel = grpc.insecure_channel(addr)
    stub = batchgate_pb2_grpc.BatcherStub(channel)
    request = batchgate_pb2.SubmitRequest(queue="keyed", payload=b"charge 10", idempotency_key="order-17")
    try:
        stub.Submit(request, timeout=0.1)
        check(False, "the first caller's 100 ms deadline passes in a 300 ms batch")
    except grpc.RpcError as e:
        print(f"idempotency: first caller {e.code().name}: {e.details()}")
        check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, "the first caller gets DEADLINE_EXCEEDED")
    time.sleep(0.5)
    reply = stub.Submit(request, timeout=10)
    check(reply.payload == b"charge 10", "the retry gets the item's real answer")
    reused = batchgate_pb2.SubmitRequest(queue="keyed", payload=b"charge 1000", idempotency_key="order-17")
    try:
        stub.Submit(reused, timeout=10)
        check(False, "a key reused with another payload is refused")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "order-17" in e.details(),
              f"a reused key is INVALID_ARGUMENT naming it: {e.code()} {e.details()}")
    ran = sample(metrics(metrics_addr), 'batchgate_items_total{queue="keyed",outcome="ok"}')
    print(f"idempotency: executions {ran:.0f}, retry answer {reply.payload!r}")
    check(ran == 1, f"the keyed item ran once ({ran})")


def churn_drill(addr, metrics_addr, pid):
    channel = grpc.insecure_channel(addr)
    control = control_pb2_grpc.BatchControlStub(channel)
    text = metrics(metrics_addr)
    before = (rss_mb(pid), len(text), len([l for l in text.splitlines() if l and not l.startswith("#")]))

    def endpoints(cycle, register):
        def one(port):
            address = f"http://churn-{cycle}.invalid:{port}"
            if register:
                control.RegisterEndpoint(control_pb2.RegisterEndpointRequest(
                    queue="remote", address=address, kind="grpc", max_in_flight=1), timeout=30)
            else:
                control.DeregisterEndpoint(control_pb2.EndpointRef(queue="remote", address=address), timeout=30)
        with cf.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, range(1000, 3000)))

    def queues(cycle):
        def one(i):
            name = f"churn-{cycle}-{i}"
            control.CreateQueue(control_pb2.CreateQueueRequest(
                name=name, handler=control_pb2.HandlerSpec(kind="echo")), timeout=30)
            control.DeleteQueue(control_pb2.DeleteQueueRequest(name=name, force=True), timeout=30)
        with cf.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(one, range(500)))

    peak = Peak(pid)
    for cycle in range(10):
        endpoints(cycle, True)
        if cycle == 0:
            during = metrics(metrics_addr)
            print(f"churn: /metrics with 2,000 endpoints: {len(during)} bytes")
        endpoints(cycle, False)
        queues(cycle)
    top = peak.end()
    time.sleep(1)
    text = metrics(metrics_addr)
    after = (rss_mb(pid), len(text), len([l for l in text.splitlines() if l and not l.startswith("#")]))
    left = [l for l in text.splitlines() if "churn" in l]
    print(f"churn: RSS {before[0]:.0f} MB before, peak {top:.0f} MB, {after[0]:.0f} MB after")
    print(f"churn: /metrics {before[1]} bytes / {before[2]} series before, {after[1]} bytes / {after[2]} series after")
    check(not left, f"no series of churned endpoints or queues: {left[:3]}")
    check(after[2] <= before[2], f"series after churn ({after[2]}) at most before ({before[2]})")
    check(after[0] <= before[0] + 64, f"RSS after churn ({after[0]:.0f} MB) within 64 MB of before ({before[0]:.0f} MB)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--addr", required=True)
    parser.add_argument("--metrics", required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--rss-cap-mb", type=int, required=True)
    args = parser.parse_args()
    memory_drill(args.addr, args.metrics, args.pid, args.rss_cap_mb)
    idempotency_drill(args.addr, args.metrics)
    churn_drill(args.addr, args.metrics, args.pid)
    if problems:
        print(f"{len(problems)} checks failed")
        sys.exit(1)
    print("drill: all checks passed")


if __name__ == "__main__":
    main()
