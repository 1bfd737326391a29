"""Puts an .onnx model behind batchgate: every batch is one
InferenceSession.run over a float32 array that is a view of batchgate's
packed request (no per-item objects, no copy).

    python serve.py mlp.onnx --port 50071
    batchgate serve --config batchgate.toml

Your model needs one float32 input of shape [batch, features] and answers
with its first output; each item's payload is `features` float32 values.
"""

import argparse

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--port", type=int, default=50071)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: all cores)")
    parser.add_argument("--register", metavar="QUEUE", help="register with batchgate's control plane")
    parser.add_argument("--control", default="127.0.0.1:50051")
    args = parser.parse_args()
    register = batchgate.Register(args.register, control=args.control) if args.register else None
    batchgate.serve(onnx_handler(args.model, args.threads), port=args.port, register=register)
