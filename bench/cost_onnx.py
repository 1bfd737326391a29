"""Cost-aware batching in front of a real model: the variable-length ONNX
encoder of examples/onnx (attention, so a padded batch costs items x the
longest squared) behind batchgate, fed by the Python SDK with token counts
drawn from a long tail. Count-only batching (64 items) against a padded
cost budget with length buckets, same model, same items, one run: items/s,
p50/p99 and mean batch, every answer checked against the model run on that
item alone.

    python bench/cost_onnx.py --bin target/release/batchgate
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "onnx"))
from make_model import build_encoder  # noqa: E402

from batchgate import AsyncClient  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--bin", default=str(ROOT / "target" / "release" / "batchgate"))
parser.add_argument("--items", type=int, default=2000)
parser.add_argument("--dim", type=int, default=32)
parser.add_argument("--hidden", type=int, default=128)
parser.add_argument("--median", type=float, default=40, help="token count median")
parser.add_argument("--p99", type=float, default=400, help="token count p99")
parser.add_argument("--in-flight", type=int, default=64, help="calls in flight (closed loop)")
parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
parser.add_argument("--budget", type=int, default=8192, help="max_batch_cost (padded tokens)")
args = parser.parse_args()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, proc):
    for _ in range(400):
        if proc.poll() is not None:
            sys.exit(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


async def run(addr, queue, seqs, lengths):
    latencies = [0.0] * len(seqs)
    answers = [None] * len(seqs)
    sizes = [0] * len(seqs)
    next_item = iter(range(len(seqs)))
    async with AsyncClient(addr) as client:

        async def worker():
            for i in next_item:
                start = time.perf_counter()
                r = await client.submit(queue, seqs[i].tobytes(), cost=int(lengths[i]), timeout=120)
                latencies[i] = time.perf_counter() - start
                answers[i], sizes[i] = r.payload, r.batch.batch_size

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.in_flight)))
        elapsed = time.perf_counter() - start
    return elapsed, latencies, answers, sizes


def main():
    rng = np.random.default_rng(7)
    sigma = np.log(args.p99 / args.median) / 2.326
    lengths = np.clip(rng.lognormal(np.log(args.median), sigma, args.items).astype(int), 1, 1024)
    seqs = [rng.standard_normal((n, args.dim)).astype(np.float32) for n in lengths]
    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_encoder(Path(tmp) / "encoder.onnx", dim=args.dim, hidden=args.hidden))
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        check = rng.choice(args.items, size=min(200, args.items), replace=False)
        expected = {
            int(i): session.run(None, {"x": seqs[i][None], "mask": np.ones((1, len(seqs[i])), np.float32)})[0][0]
            for i in check
        }
        backend_port, port = free_port(), free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
        backend = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "onnx" / "serve.py"), model, "--port", str(backend_port),
             "--encoder", str(args.dim), "--threads", str(args.threads)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        handler = f'handler = {{ kind = "grpc", endpoints = ["http://127.0.0.1:{backend_port}"], max_in_flight = 1 }}'
        config = Path(tmp) / "batchgate.toml"
        config.write_text(f"""[server]
grpc_addr = "127.0.0.1:{port}"
metrics_addr = "127.0.0.1:0"

[queues.count]
max_batch_size = 64
max_delay = "2ms"
max_in_flight_batches = 1
{handler}

[queues.budget]
max_batch_size = 1024
max_batch_cost = {args.budget}
cost_model = "padded"
oversize = "alone"
cost_buckets = [16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768]
max_delay = "2ms"
max_in_flight_batches = 1
{handler}
""")
        server = subprocess.Popen([args.bin, "serve", "--config", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(backend_port, backend)
            wait_for(port, server)
            addr = f"127.0.0.1:{port}"
            # Warm up both queues (ONNX Runtime plans each new shape once).
            asyncio.run(run(addr, "count", seqs[:200], lengths[:200]))
            asyncio.run(run(addr, "budget", seqs[:200], lengths[:200]))
            rows = {}
            for queue in ("count", "budget"):
                elapsed, latencies, answers, sizes = asyncio.run(run(addr, queue, seqs, lengths))
                for i, want in expected.items():
                    np.testing.assert_allclose(np.frombuffer(answers[i], np.float32), want, rtol=1e-4, atol=1e-5)
                rows[queue] = (args.items / elapsed, np.percentile(latencies, 50) * 1e3,
                               np.percentile(latencies, 99) * 1e3, float(np.mean(sizes)))
        finally:
            server.terminate()
            backend.terminate()
            server.wait(10)
            backend.wait(10)
    print(f"{args.items} items, tokens lognormal median {args.median:g} p99 {args.p99:g} (max {lengths.max()}), "
          f"dim {args.dim}, hidden {args.hidden}, {args.in_flight} in flight, ORT threads {args.threads}; "
          f"{len(expected)} answers checked against the model alone")
    print()
    print("| queue | items/s | vs count | p50 / p99 | mean batch (per item) |")
    print("|---|---|---|---|---|")
    for queue, (ips, p50, p99, batch) in rows.items():
        print(f"| {queue} | {ips:,.0f} | {ips / rows['count'][0]:.2f}x | {p50:.1f} / {p99:.1f} ms | {batch:.1f} |")


main()
