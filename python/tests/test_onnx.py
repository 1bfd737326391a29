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


def test_a_variable_length_encoder_under_a_cost_budget_answers_as_in_process(start_batchgate, tmp_path):
    """Count-only batching and a padded cost budget with length buckets in
    front of the same encoder: every answer equals the model run on that
    item alone (padding never leaks into an answer); the figures printed
    are for information (bench/cost_onnx.py measures them)."""
    import time

    from make_model import build_encoder
    from serve import encoder_handler

    dim = 16
    path = str(build_encoder(tmp_path / "encoder.onnx", dim=dim))
    backend = batchgate.serve(encoder_handler(path, dim, threads=1), port=0, block=False)
    endpoint = f'handler = {{ kind = "grpc", endpoints = ["http://127.0.0.1:{backend.port}"] }}'
    server = start_batchgate(
        f"""
[queues.count]
max_batch_size = 64
max_delay = "2ms"
{endpoint}

[queues.budget]
max_batch_size = 64
max_batch_cost = 2048
cost_model = "padded"
cost_buckets = [16, 32, 64, 128]
max_delay = "2ms"
{endpoint}
"""
    )
    rng = np.random.default_rng(11)
    # Token counts with a long tail: median 20, p99 about 200.
    lengths = np.clip(rng.lognormal(np.log(20), 0.99, 400).astype(int), 1, 256)
    seqs = [rng.standard_normal((n, dim)).astype(np.float32) for n in lengths]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    expected = [
        session.run(None, {"x": s[None], "mask": np.ones((1, len(s)), np.float32)})[0][0] for s in seqs
    ]
    try:
        with Client(server.addr) as client:
            for queue in ("count", "budget"):
                latencies = [0.0] * len(seqs)

                def one(i, queue=queue, latencies=latencies):
                    start = time.perf_counter()
                    r = client.submit(queue, seqs[i].tobytes(), cost=int(lengths[i]), timeout=60)
                    latencies[i] = time.perf_counter() - start
                    return i, r

                start = time.perf_counter()
                with ThreadPoolExecutor(32) as pool:
                    answers = list(pool.map(one, range(len(seqs))))
                elapsed = time.perf_counter() - start
                sizes = []
                for i, r in answers:
                    got = np.frombuffer(r.payload, np.float32)
                    np.testing.assert_allclose(got, expected[i], rtol=1e-4, atol=1e-5)
                    sizes.append(r.batch.batch_size)
                    if queue == "budget" and r.batch.batch_size > 1:
                        assert r.batch.batch_size * lengths[i] <= 2048
                assert max(sizes) > 1, f"{queue}: items were batched"
                print(
                    f"{queue}: {len(seqs) / elapsed:.0f} items/s, "
                    f"p99 {np.percentile(latencies, 99) * 1000:.1f} ms, mean batch {np.mean(sizes):.1f}"
                )
            # A payload that is not whole tokens fails alone.
            with pytest.raises(batchgate.BatchgateError) as e:
                client.submit("budget", b"abc", cost=1, timeout=30)
            assert e.value.code.name == "INVALID_ARGUMENT"
    finally:
        backend.stop()
