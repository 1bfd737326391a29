"""The Python side of a batch: what a backend process spends per batch
besides the model, for three ways of writing it, with a no-op model.

  raw-items   the per-item pattern of examples/python/backend.py: one
              ItemResult message built per item (no-op: payload returned)
  sdk-items   the SDK's backend helper, batchgate's default encoding
  sdk-packed  the SDK's backend helper, `encoding = "packed"`: the batch is
              one numpy view, the answer one buffer

Two figures each, same run:
  cpu    parse the request bytes, run the handler, serialize the answer, in
         one process (what the backend's CPU pays per batch)
  call   a whole ProcessBatch round trip to a backend in another process
         over loopback gRPC, one call at a time (adds grpcio's own cost
         on both ends)

    python bench/python_backend.py [--items 256] [--size 256] [--seconds 3]
Prints a table and, with --json, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import grpc
import numpy as np

import batchgate
from batchgate import packing
from batchgate.backend import BackendService
from batchgate.v1 import backend_pb2, backend_pb2_grpc


class RawItems(backend_pb2_grpc.BackendServicer):
    """examples/python/backend.py's shape, with a no-op model."""

    def ProcessBatch(self, request, context):
        return backend_pb2.BatchResponse(
            results=[
                backend_pb2.ItemResult(
                    index=item.index, ok=backend_pb2.ItemOutput(payload=item.payload)
                )
                for item in request.items
            ]
        )


@batchgate.handler
def noop(batch):
    return batch


KINDS = {
    "raw-items": lambda: RawItems(),
    "sdk-items": lambda: BackendService(noop),
    "sdk-packed": lambda: BackendService(noop),
}


def request(kind: str, items: int, size: int) -> bytes:
    payloads = [os.urandom(size) for _ in range(items)]
    if kind == "sdk-packed":
        r = backend_pb2.BatchRequest(batch_id=1, queue="q", packed=packing.pack(payloads))
    else:
        r = backend_pb2.BatchRequest(
            batch_id=1,
            queue="q",
            items=[
                backend_pb2.BackendItem(index=i, payload=p, trace_id=f"1.{i}")
                for i, p in enumerate(payloads)
            ],
        )
    return r.SerializeToString()


def timed(fn, seconds: float) -> float:
    """Mean seconds per call of fn over about `seconds`."""
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / n


def cpu(kind: str, wire: bytes, seconds: float) -> float:
    service = KINDS[kind]()

    def one():
        req = backend_pb2.BatchRequest.FromString(wire)
        resp = service.ProcessBatch(req, None)
        return resp.SerializeToString()

    return timed(one, seconds)


def serve(kind: str, port_file: str) -> None:
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    backend_pb2_grpc.add_BackendServicer_to_server(KINDS[kind](), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(port_file, "w") as f:
        f.write(str(port))
    server.wait_for_termination()


def call(kind: str, wire: bytes, seconds: float) -> float:
    port_file = f"/tmp/bg-bench-port-{os.getpid()}-{kind}"
    proc = subprocess.Popen([sys.executable, __file__, "--serve", kind, port_file])
    try:
        for _ in range(200):
            if os.path.exists(port_file) and open(port_file).read():
                break
            time.sleep(0.05)
        port = int(open(port_file).read())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        # Bytes in, bytes out: the client side does no protobuf work.
        method = channel.unary_unary(
            "/batchgate.v1.Backend/ProcessBatch",
            request_serializer=None,
            response_deserializer=None,
        )
        return timed(lambda: method(wire), seconds)
    finally:
        proc.kill()
        proc.wait()
        if os.path.exists(port_file):
            os.remove(port_file)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", nargs=2, metavar=("KIND", "PORT_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    rows = {}
    for kind in KINDS:
        wire = request(kind, args.items, args.size)
        rows[kind] = {
            "cpu_ms": cpu(kind, wire, args.seconds) * 1e3,
            "call_ms": call(kind, wire, args.seconds) * 1e3,
        }
    base = rows["raw-items"]
    for row in rows.values():
        row["cpu_vs_raw"] = row["cpu_ms"] / base["cpu_ms"]
        row["call_vs_raw"] = row["call_ms"] / base["call_ms"]
    if args.json:
        print(json.dumps({"items": args.items, "size": args.size, "rows": rows}))
        return
    print(f"batch of {args.items} x {args.size}-byte items, no-op model, ms per batch")
    print(f"{'backend':<12} {'cpu ms':>8} {'vs raw':>7} {'call ms':>8} {'vs raw':>7}")
    for kind, r in rows.items():
        print(
            f"{kind:<12} {r['cpu_ms']:8.3f} {r['cpu_vs_raw']:7.3f} "
            f"{r['call_ms']:8.3f} {r['call_vs_raw']:7.3f}"
        )


if __name__ == "__main__":
    main()
