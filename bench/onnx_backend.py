"""examples/onnx/serve.py's backend with a meter: every second it writes
(to the file given) how many batches the model ran and the seconds spent
in InferenceSession.run, so bench/model.sh can tell how busy batchgate kept
the model and how fast the model ran under the load.

    python bench/onnx_backend.py MODEL.onnx PORT STATS.json
"""

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples" / "onnx"))
import batchgate  # noqa: E402
from serve import onnx_handler  # noqa: E402

model, port, stats_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
predict = onnx_handler(model, threads=1)
inner = predict.fn
meter = {"batches": 0, "items": 0, "run_s": 0.0}


def metered(batch):
    start = time.perf_counter()
    out = inner(batch)
    meter["run_s"] += time.perf_counter() - start
    meter["batches"] += 1
    meter["items"] += len(batch)
    return out


predict.fn = metered


def write():
    while True:
        time.sleep(1)
        Path(stats_path).write_text(json.dumps({**meter, "at": time.monotonic()}))


threading.Thread(target=write, daemon=True).start()
batchgate.serve(predict, port=port)
