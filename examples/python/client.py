"""A batchgate client written in Python with grpcio: one Submit, then a
StreamSubmit of many items, checking every answer. Exits 1 on any wrong or
missing answer.

    python client.py --addr 127.0.0.1:50051 --queue py --items 200
"""

import argparse
import sys

import grpc

from batchgate.v1 import batchgate_pb2, batchgate_pb2_grpc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:50051")
    parser.add_argument("--queue", default="py")
    parser.add_argument("--items", type=int, default=200)
    args = parser.parse_args()

    channel = grpc.insecure_channel(args.addr)
    stub = batchgate_pb2_grpc.BatcherStub(channel)
    problems = []

    # Unary: one item, one result, with the batch it rode in.
    reply = stub.Submit(
        batchgate_pb2.SubmitRequest(queue=args.queue, payload=b"hello from python"),
        timeout=10,
    )
    if reply.payload != b"HELLO FROM PYTHON" or reply.attributes.get("lang") != "python":
        problems.append(f"unary: unexpected {reply!r}")
    print(f"submit: {reply.payload.decode()} (batch {reply.batch.batch_id}, size {reply.batch.batch_size})")

    # A failing item gets its own status.
    try:
        stub.Submit(batchgate_pb2.SubmitRequest(queue=args.queue, payload=b"fail"), timeout=10)
        problems.append("unary: the failing item succeeded")
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.INVALID_ARGUMENT:
            problems.append(f"unary: failing item got {e.code()}")

    # Bidi stream: many items in flight, answers in completion order.
    def items():
        for i in range(args.items):
            yield batchgate_pb2.StreamRequest(
                id=str(i), queue=args.queue, payload=f"item {i}".encode()
            )

    answers = {}
    largest = 0
    for answer in stub.StreamSubmit(items(), timeout=60):
        if answer.id in answers:
            problems.append(f"stream: {answer.id} answered twice")
        if answer.WhichOneof("outcome") != "result":
            problems.append(f"stream: {answer.id} failed: {answer.error.message}")
            continue
        answers[answer.id] = answer.result.payload
        largest = max(largest, answer.result.batch.batch_size)
    for i in range(args.items):
        if answers.get(str(i)) != f"ITEM {i}".encode():
            problems.append(f"stream: item {i} got {answers.get(str(i))!r}")
    print(f"stream: {len(answers)} answers, largest batch {largest}")

    if problems:
        print("\n".join(problems[:20]), file=sys.stderr)
        sys.exit(1)
    print("python client: all answers correct")


if __name__ == "__main__":
    main()
