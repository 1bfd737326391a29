"""A one-at-a-time model behind the Python SDK (bench/pace.sh): a batch of
n items takes 5 ms + 20 us x n (time.sleep), one batch at a time
(concurrency=1), packed batches in and out.

    python bench/pace_backend.py --port 7310
"""

import argparse
import time

import numpy as np

import batchgate


@batchgate.handler(dtype=np.uint8, concurrency=1)
def model(x):
    time.sleep(0.005 + 0.00002 * len(x))
    return x


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    batchgate.serve(model, port=args.port, host="127.0.0.1")


if __name__ == "__main__":
    main()
