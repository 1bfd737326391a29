"""A batchgate Backend written in Python with grpcio.

It upper-cases every payload, tags each result with the attribute
lang=python, and fails only the items whose payload is "fail" (a per-item
error: their neighbours still succeed).

With --register it also registers itself with batchgate's control plane
(RegisterEndpoint with a lease) and renews the lease until it exits, so
batchgate stops sending it batches soon after it dies.

Generate the stubs first (see README.md in this folder), then:
    python backend.py --port 50071 [--register QUEUE --control http://127.0.0.1:50051]
"""

import argparse
import logging
import threading
from concurrent import futures

import grpc

from batchgate.v1 import backend_pb2, backend_pb2_grpc, batchgate_pb2
from batchgate.v1 import control_pb2, control_pb2_grpc


class UpperBackend(backend_pb2_grpc.BackendServicer):
    def _result(self, item):
        if item.payload == b"fail":
            return backend_pb2.ItemResult(
                index=item.index,
                error=batchgate_pb2.ItemError(
                    code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                    message="this item asked to fail",
                ),
            )
        return backend_pb2.ItemResult(
            index=item.index,
            ok=backend_pb2.ItemOutput(
                payload=item.payload.upper(),
                attributes={"lang": "python", "trace_id": item.trace_id},
            ),
        )

    def ProcessBatch(self, request, context):
        logging.debug("batch %d: %d items", request.batch_id, len(request.items))
        return backend_pb2.BatchResponse(
            results=[self._result(item) for item in request.items]
        )

    def ProcessBatchStream(self, request, context):
        for item in request.items:
            yield self._result(item)


def keep_registered(control, queue, address, token, stop):
    channel = grpc.insecure_channel(control.removeprefix("http://"))
    stub = control_pb2_grpc.BatchControlStub(channel)
    metadata = [("authorization", f"Bearer {token}")] if token else []
    request = control_pb2.RegisterEndpointRequest(
        queue=queue, address=address, kind="grpc", lease_ttl_ms=10_000
    )
    while not stop.is_set():
        try:
            stub.RegisterEndpoint(request, metadata=metadata, timeout=5)
        except grpc.RpcError as e:
            logging.warning("registration failed: %s", e.details())
        stop.wait(3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=50071)
    parser.add_argument("--register", metavar="QUEUE")
    parser.add_argument("--control", default="http://127.0.0.1:50051")
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    backend_pb2_grpc.add_BackendServicer_to_server(UpperBackend(), server)
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    logging.info("backend listening on 127.0.0.1:%d", args.port)

    stop = threading.Event()
    if args.register:
        address = f"http://127.0.0.1:{args.port}"
        threading.Thread(
            target=keep_registered,
            args=(args.control, args.register, address, args.token, stop),
            daemon=True,
        ).start()
    try:
        server.wait_for_termination()
    finally:
        stop.set()


if __name__ == "__main__":
    main()
