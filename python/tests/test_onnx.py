"""A real model in CI: an ONNX Runtime MLP behind batchgate through the
SDK backend in packed mode (examples/onnx), every answer checked against
the same model run in-process on the same inputs."""

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import batchgate  # noqa: E402
from batchgate import Client  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "onnx"))
from make_model import build_mlp  # noqa: E402
from serve import onnx_handler  # noqa: E402


def test_an_onnx_model_answers_every_item_as_in_process(start_batchgate, tmp_path):
    path = str(build_mlp(tmp_path / "mlp.onnx", features=64, outputs=16))
    backend = batchgate.serve(onnx_handler(path, threads=1), port=0, block=False)
    server = start_batchgate(
        f"""
[queues.onnx]
max_batch_size = 64
max_delay = "2ms"
allowed_batch_sizes = [1, 8, 32, 64]
handler = {{ kind = "grpc", endpoints = ["http://127.0.0.1:{backend.port}"], encoding = "packed" }}
"""
    )
    inputs = np.random.default_rng(7).standard_normal((3000, 64)).astype(np.float32)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": inputs})[0]
    try:
        with Client(server.addr) as client:
            streamed = list(client.stream("onnx", (row.tobytes() for row in inputs), window=512))
            got = np.stack([np.frombuffer(r.unwrap(), np.float32) for r in streamed])
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
            sizes = {r.batch.batch_size for r in streamed}

            # Unary callers, 32 at a time, into the same queue.
            def one(i):
                return i, client.submit("onnx", inputs[i].tobytes(), timeout=30).payload

            with ThreadPoolExecutor(32) as pool:
                for i, payload in pool.map(one, range(500)):
                    np.testing.assert_allclose(
                        np.frombuffer(payload, np.float32), expected[i], rtol=1e-4, atol=1e-5
                    )
        assert max(sizes) > 1, f"items were batched: {sorted(sizes)}"
    finally:
        backend.stop()
