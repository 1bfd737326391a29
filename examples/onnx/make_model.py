"""Builds small models as ONNX files with the onnx helper API, standing in
for your own in the examples and in CI:

- an MLP: float32 inputs of `features`, one hidden ReLU layer, float32
  outputs (`python make_model.py mlp.onnx`);
- a transformer-like encoder over a variable sequence length: inputs
  `x` [batch, seq, dim] and `mask` [batch, seq] (1 for a token, 0 for
  padding), one self-attention layer and a ReLU feed-forward with a
  residual, mean-pooled over the real tokens to `y` [batch, dim]
  (`python make_model.py encoder.onnx --encoder`). Its cost grows with the
  padded shape (batch x longest sequence), as real encoders do.
"""

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build_mlp(path, features=64, hidden=256, outputs=16, seed=0):
    rng = np.random.default_rng(seed)

    def weight(name, *shape):
        values = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
        return numpy_helper.from_array(values, name)

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["h"]),
            helper.make_node("MatMul", ["h", "w2"], ["y0"]),
            helper.make_node("Add", ["y0", "b2"], ["y"]),
        ],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", outputs])],
        initializer=[
            weight("w1", features, hidden),
            weight("b1", hidden),
            weight("w2", hidden, outputs),
            weight("b2", outputs),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def build_encoder(path, dim=32, hidden=128, seed=0):
    rng = np.random.default_rng(seed)

    def weight(name, *shape):
        values = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
        return numpy_helper.from_array(values, name)

    def const(name, values, dtype=np.float32):
        return numpy_helper.from_array(np.array(values, dtype=dtype), name)

    node = helper.make_node
    graph = helper.make_graph(
        [
            node("MatMul", ["x", "wq"], ["q"]),
            node("MatMul", ["x", "wk"], ["k"]),
            node("MatMul", ["x", "wv"], ["v"]),
            node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
            node("MatMul", ["q", "kt"], ["scores"]),
            node("Mul", ["scores", "scale"], ["scaled"]),
            # Padding keys get -1e9, so a token attends to real tokens only.
            node("Sub", ["mask", "one"], ["off"]),
            node("Mul", ["off", "big"], ["bias2"]),
            node("Unsqueeze", ["bias2", "axis1"], ["bias"]),
            node("Add", ["scaled", "bias"], ["logits"]),
            node("Softmax", ["logits"], ["probs"], axis=-1),
            node("MatMul", ["probs", "v"], ["att"]),
            node("MatMul", ["att", "w1"], ["f0"]),
            node("Add", ["f0", "b1"], ["f1"]),
            node("Relu", ["f1"], ["f"]),
            node("MatMul", ["f", "w2"], ["g"]),
            node("Add", ["g", "att"], ["h"]),
            # Mean over the real tokens only.
            node("Unsqueeze", ["mask", "axis2"], ["mask3"]),
            node("Mul", ["h", "mask3"], ["hm"]),
            node("ReduceSum", ["hm", "axis1"], ["total"], keepdims=0),
            node("ReduceSum", ["mask", "axis1"], ["count"], keepdims=1),
            node("Div", ["total", "count"], ["y"]),
        ],
        "encoder",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", dim]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", dim])],
        initializer=[
            weight("wq", dim, dim),
            weight("wk", dim, dim),
            weight("wv", dim, dim),
            weight("w1", dim, hidden),
            weight("b1", hidden),
            weight("w2", hidden, dim),
            const("scale", 1 / np.sqrt(dim)),
            const("one", 1.0),
            const("big", 1e9),
            const("axis1", [1], np.int64),
            const("axis2", [2], np.int64),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="mlp.onnx")
    parser.add_argument("--encoder", action="store_true", help="the variable-length encoder")
    args = parser.parse_args()
    (build_encoder if args.encoder else build_mlp)(args.path)
