"""Puts an .onnx model behind batchgate: every batch is one
InferenceSession.run over a float32 array that is a view of batchgate's
packed request (no per-item objects, no copy).

    python serve.py mlp.onnx --port 50071
    batchgate serve --config batchgate.toml

Your model needs one float32 input of shape [batch, features] and answers
with its first output; each item's payload is `features` float32 values.

With --encoder DIM the model is a variable-length encoder (inputs `x`
[batch, seq, DIM] and `mask` [batch, seq], see make_model.py): each item's
payload is its tokens' DIM float32 values each, and every batch is padded
to its longest item, which is what a cost budget (`max_batch_cost`,
`cost_model = "padded"`) keeps in check.
"""

import argparse

import grpc
import numpy as np
import onnxruntime as ort

import batchgate


def onnx_handler(path, threads=0):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    x = session.get_inputs()[0]

    # One run at a time: ONNX Runtime spreads each run over `threads` cores;
    # meanwhile the next batch is decoded and the last one answered.
    @batchgate.handler(dtype=np.float32, item_shape=(x.shape[1],), concurrency=1)
    def predict(batch):
        return session.run(None, {x.name: batch})[0]

    return predict


def encoder_handler(path, dim, threads=0):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    @batchgate.handler(arrays=False, concurrency=1)
    def encode(payloads):
        bad = [len(p) == 0 or len(p) % (4 * dim) != 0 for p in payloads]
        seqs = [np.frombuffer(p, np.float32).reshape(-1, dim) for p, b in zip(payloads, bad) if not b]
        longest = max((len(s) for s in seqs), default=0)
        x = np.zeros((len(seqs), longest, dim), np.float32)
        mask = np.zeros((len(seqs), longest), np.float32)
        for i, s in enumerate(seqs):
            x[i, : len(s)] = s
            mask[i, : len(s)] = 1
        y = iter(session.run(None, {"x": x, "mask": mask})[0] if seqs else [])
        return [
            batchgate.BatchgateError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a payload must be a whole number (>= 1) of tokens of {dim} float32",
            )
            if b
            else next(y)
            for b in bad
        ]

    return encode


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--port", type=int, default=50071)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    parser.add_argument("--encoder", type=int, metavar="DIM", help="the model is a variable-length encoder of DIM")
    parser.add_argument("--register", metavar="QUEUE", help="register with batchgate's control plane")
    parser.add_argument("--control", default="127.0.0.1:50051")
    args = parser.parse_args()
    register = batchgate.Register(args.register, control=args.control) if args.register else None
    if args.encoder:
        handler = encoder_handler(args.model, args.encoder, args.threads)
    else:
        handler = onnx_handler(args.model, args.threads)
    batchgate.serve(handler, port=args.port, register=register)
