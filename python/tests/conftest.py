"""Fixtures: a batchgate server (the binary from BATCHGATE_BIN, else the
repository's debug build) on free loopback ports, with a config written
per test."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc=None, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"batchgate exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


class Batchgate:
    """A running batchgate; ``addr`` is its gRPC host:port."""

    def __init__(self, binary: str, tmp: Path, queues: str):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        config = tmp / "batchgate.toml"
        config.write_text(
            f'[server]\ngrpc_addr = "{self.addr}"\nmetrics_addr = "127.0.0.1:0"\n\n{queues}'
        )
        self.log = tmp / "batchgate.log"
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", str(config)],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def batchgate_bin() -> str:
    binary = os.environ.get("BATCHGATE_BIN", str(ROOT / "target" / "debug" / "batchgate"))
    if not Path(binary).exists():
        pytest.skip(f"no batchgate binary at {binary} (cargo build, or set BATCHGATE_BIN)")
    return binary


@pytest.fixture
def start_batchgate(batchgate_bin, tmp_path):
    started = []

    def start(queues: str) -> Batchgate:
        server = Batchgate(batchgate_bin, tmp_path, queues)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
