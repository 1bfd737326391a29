"""Idempotency keys end to end: Python clients whose connection is cut
while their calls are in flight retry with the same key; each gets its
answer once and the backend sees each key once."""

import collections
import socket
import threading
import time

import grpc

import batchgate
from batchgate import BatchgateError, Client


class CuttingProxy:
    """A TCP proxy to ``upstream`` whose ``cut()`` closes every connection
    open through it (as a failing load balancer or network would)."""

    def __init__(self, upstream: str):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.open = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self.lock:
                self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> int:
        with self.lock:
            cut, self.open = self.open, []
        for s in cut:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        return len(cut) // 2

    def close(self):
        self.listener.close()
        self.cut()


def test_retries_after_a_cut_connection_are_answered_once_and_run_once(start_batchgate):
    seen = collections.Counter()
    seen_lock = threading.Lock()

    def slow_upper(items):
        with seen_lock:
            seen.update(items)
        time.sleep(0.3)
        return [i.upper() for i in items]

    backend = batchgate.serve(slow_upper, port=0, block=False)
    server = start_batchgate(
        f"""
[queues.q]
max_batch_size = 8
max_delay = "5ms"
idempotency_window = "60s"
handler = {{ kind = "grpc", endpoints = ["http://127.0.0.1:{backend.port}"] }}
"""
    )
    proxy = CuttingProxy(server.addr)
    keys = 40
    answers = collections.defaultdict(list)
    tries = collections.Counter()
    failures = []

    def call(i: int):
        # A fresh channel per caller, so that each has its own connection
        # through the proxy to lose.
        deadline = time.monotonic() + 30
        with Client(proxy.addr) as client:
            while True:
                tries[i] += 1
                try:
                    r = client.submit(
                        "q", f"item-{i}".encode(), idempotency_key=f"key-{i}", timeout=10
                    )
                    answers[i].append(r.payload)
                    return
                except BatchgateError as e:
                    if e.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                        failures.append((i, e))
                        return
                    time.sleep(0.05)

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(keys)]
        for t in threads:
            t.start()
        # The first batches are in the backend (it takes 0.3 s each): cut
        # every connection, twice.
        time.sleep(0.15)
        cut = proxy.cut()
        time.sleep(0.2)
        cut += proxy.cut()
        for t in threads:
            t.join(60)
        assert not failures, failures
        assert cut > 0
        assert sum(tries.values()) > keys, "some calls were cut and retried"
        for i in range(keys):
            assert answers[i] == [f"ITEM-{i}".encode()], (i, answers[i])
        assert sorted(seen) == sorted(f"item-{i}".encode() for i in range(keys))
        assert set(seen.values()) == {1}, f"a key ran twice: {seen}"
    finally:
        proxy.close()
        backend.stop()
