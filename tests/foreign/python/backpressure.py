"""Backpressure from a Python grpcio client: streams many tiny items into a
queue slower than the client, and into a paused queue that is resumed after
2 s, while an unrelated unary call loops on the same channel.

Checks that every id is answered exactly once with its own payload, that the
stream ends OK and that every unrelated call succeeded. Exits 1 otherwise.

    python backpressure.py --addr 127.0.0.1:20081 --items 20000
"""

import argparse
import sys
import threading
import time

import grpc

from batchgate.v1 import batchgate_pb2, batchgate_pb2_grpc, control_pb2, control_pb2_grpc


def payload(i):
    """0 to 8 bytes, so every frame on the wire is tiny."""
    return bytes([i % 251]) * (i % 9)


def side_calls(stub, stop, outcome):
    """Loops a unary Submit on the shared channel until `stop` is set."""
    while not stop.is_set():
        try:
            reply = stub.Submit(batchgate_pb2.SubmitRequest(queue="side", payload=b"side"), timeout=30)
            if reply.payload != b"side":
                outcome["bad"].append(f"unexpected payload {reply.payload!r}")
            outcome["ok"] += 1
        except grpc.RpcError as e:
            outcome["bad"].append(f"{e.code()}: {e.details()}")
            time.sleep(0.05)


def stream_case(channel, queue, items, pause):
    stub = batchgate_pb2_grpc.BatcherStub(channel)
    control = control_pb2_grpc.BatchControlStub(channel)
    problems = []
    sent = [0]
    sent_while_paused = []
    resume = None
    if pause:
        control.PauseQueue(control_pb2.QueueRef(name=queue), timeout=10)

        def resume_queue():
            sent_while_paused.append(sent[0])
            control.ResumeQueue(control_pb2.QueueRef(name=queue), timeout=10)

        resume = threading.Timer(2.0, resume_queue)
        resume.start()

    stop = threading.Event()
    side = {"ok": 0, "bad": []}
    side_thread = threading.Thread(target=side_calls, args=(stub, stop, side))
    side_thread.start()

    def requests():
        for i in range(items):
            sent[0] += 1
            yield batchgate_pb2.StreamRequest(id=str(i), queue=queue, payload=payload(i))

    seen = {}
    started = time.monotonic()
    try:
        for answer in stub.StreamSubmit(requests(), timeout=300):
            i = int(answer.id)
            seen[i] = seen.get(i, 0) + 1
            if answer.HasField("error"):
                problems.append(f"id {i}: error {answer.error.code} {answer.error.message}")
            elif answer.result.payload != payload(i):
                problems.append(f"id {i}: payload {answer.result.payload!r}")
    except grpc.RpcError as e:
        problems.append(f"stream ended {e.code()}: {e.details()} after {len(seen)} answers")
    elapsed = time.monotonic() - started
    stop.set()
    side_thread.join()
    if resume is not None:
        resume.join()

    missing = [i for i in range(items) if i not in seen]
    twice = [i for i, n in seen.items() if n > 1]
    if missing:
        problems.append(f"{len(missing)} ids unanswered (first {missing[:5]})")
    if twice:
        problems.append(f"{len(twice)} ids answered more than once (first {twice[:5]})")
    if side["bad"]:
        problems.append(f"{len(side['bad'])} unrelated calls failed (first: {side['bad'][0]})")
    if side["ok"] == 0:
        problems.append("no unrelated call completed")
    label = f"{queue}{' (paused 2 s)' if pause else ''}"
    if sent_while_paused:
        label += f", {sent_while_paused[0]} items sent before flow control held the client"
    print(
        f"python {label}: {len(seen)}/{items} ids answered in {elapsed:.1f} s, "
        f"{side['ok']} unrelated calls OK, {len(problems)} problems"
    )
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="127.0.0.1:20081")
    parser.add_argument("--items", type=int, default=20000)
    args = parser.parse_args()

    problems = []
    with grpc.insecure_channel(args.addr) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        problems += stream_case(channel, "slow", args.items, pause=False)
        problems += stream_case(channel, "held", args.items, pause=True)
    for p in problems[:20]:
        print(f"  problem: {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
