"""Builds a small MLP as an ONNX file with the onnx helper API: float32
inputs of `features`, one hidden ReLU layer, float32 outputs. Stands in for
your own model in the example and in CI.

    python make_model.py mlp.onnx
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="mlp.onnx")
    build_mlp(parser.parse_args().path)
