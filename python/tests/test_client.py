"""The SDK against a real batchgate: the sync and asyncio clients, and the
backend helper serving a packed queue it registered itself with."""

import asyncio
import time

import grpc
import numpy as np
import pytest

import batchgate
from batchgate import AsyncClient, BatchgateError, Client

ECHO = """
[queues.echo]
max_batch_size = 32
max_delay = "1ms"
max_batch_bytes = 1024
"""


def test_submit_returns_the_result_and_its_batch(start_batchgate):
    server = start_batchgate(ECHO)
    with Client(server.addr) as client:
        r = client.submit("echo", b"hello", attributes={"k": "v"})
        assert r.payload == b"hello" and r.attributes["k"] == "v"
        assert r.batch.batch_size >= 1 and r.batch.trigger in ("delay", "size")
        with pytest.raises(BatchgateError) as e:
            client.submit("nope", b"x")
        assert e.value.code == grpc.StatusCode.NOT_FOUND
        assert "nope" in e.value.message


def test_stream_keeps_order_and_window_and_fails_items_alone(start_batchgate):
    server = start_batchgate(ECHO)
    payloads = [f"item-{i}".encode() for i in range(3000)]
    payloads[7] = b"x" * 2000  # over max_batch_bytes: this item alone fails
    with Client(server.addr) as client:
        results = list(client.stream("echo", payloads, window=64))
        assert [r.index for r in results] == list(range(3000))
        assert not results[7].ok
        assert results[7].error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert all(r.payload == p for r, p in zip(results, payloads) if r.index != 7)
        unordered = list(client.stream("echo", payloads[:500], window=8, ordered=False))
        assert sorted(r.index for r in unordered) == list(range(500))


def test_batch_keys_keep_items_of_different_keys_apart(start_batchgate):
    server = start_batchgate(ECHO)
    with Client(server.addr) as client:
        a = list(client.stream("echo", [b"a"] * 200, batch_key="tenant-a", window=200))
        b = client.submit("echo", b"b", batch_key="tenant-b")
        batches_a = {r.batch.batch_id for r in a}
        assert b.batch.batch_id not in batches_a
        with pytest.raises(BatchgateError) as e:
            client.submit("echo", b"x", batch_key="k" * 300)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_the_asyncio_client(start_batchgate):
    server = start_batchgate(ECHO)

    async def run():
        async with AsyncClient(f"http://{server.addr}") as client:
            r = await client.submit("echo", "text")
            assert r.payload == b"text"

            async def payloads():
                for i in range(1000):
                    yield str(i)

            got = [r.payload async for r in client.stream("echo", payloads(), window=32)]
            assert got == [str(i).encode() for i in range(1000)]
            with pytest.raises(BatchgateError) as e:
                await client.submit("nope", b"x")
            assert e.value.code == grpc.StatusCode.NOT_FOUND

    asyncio.run(run())


def test_a_tls_client_against_a_plaintext_server_fails_clearly(start_batchgate):
    server = start_batchgate(ECHO)
    with Client(f"https://{server.addr}") as client:
        with pytest.raises(BatchgateError) as e:
            client.submit("echo", b"x", timeout=5)
        assert e.value.code == grpc.StatusCode.UNAVAILABLE


def test_a_registered_sdk_backend_serves_a_packed_queue(start_batchgate):
    server = start_batchgate(
        """
[queues.model]
max_batch_size = 64
max_delay = "2ms"
allowed_batch_sizes = [8, 16, 32, 64]
handler = { kind = "grpc", encoding = "packed", retry_backoff = "50ms" }
"""
    )
    sizes = []

    @batchgate.handler(dtype=np.float32, item_shape=(4,))
    def negate(x):
        sizes.append(len(x))
        return -x

    backend = batchgate.serve(
        negate, port=0, block=False, register=batchgate.Register("model", control=server.addr)
    )
    try:
        with Client(server.addr) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    client.submit("model", np.zeros(4, np.float32).tobytes(), timeout=5)
                    break
                except BatchgateError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            inputs = np.random.default_rng(1).normal(size=(1000, 4)).astype(np.float32)
            results = list(client.stream("model", (row.tobytes() for row in inputs), window=256))
            outputs = np.stack([np.frombuffer(r.unwrap(), np.float32) for r in results])
            assert np.array_equal(outputs, -inputs)
        assert set(sizes) <= {8, 16, 32, 64}, f"the function saw only allowed sizes: {set(sizes)}"
    finally:
        backend.stop()


TOKENS = """
[queues.tok]
max_batch_size = 64
max_batch_cost = 256
cost_model = "padded"
cost_buckets = [16, 64]
cost_attribute = "tokens"
max_delay = "2ms"
"""


def test_token_counts_batch_under_a_padded_budget_in_buckets(start_batchgate):
    server = start_batchgate(TOKENS)
    rng = np.random.default_rng(3)
    tokens = np.clip(rng.lognormal(np.log(12), 1.0, 2000).astype(int), 1, 256).tolist()
    bucket = lambda t: sum(t > b for b in (16, 64))  # noqa: E731
    with Client(server.addr) as client:
        results = list(client.stream("tok", [str(t) for t in tokens], costs=tokens, window=256))
        assert [r.unwrap().decode() for r in results] == [str(t) for t in tokens]
        batches = {}
        for r in results:
            batches.setdefault(r.batch.batch_id, []).append(int(r.payload))
        for costs in batches.values():
            if len(costs) > 1:  # a batch of one may be oversize
                assert max(costs) * len(costs) <= 256, costs
            assert len({bucket(c) for c in costs}) == 1, f"buckets mixed: {costs}"
        assert max(len(c) for c in batches.values()) > 1
        assert "cost" in {r.batch.trigger for r in results}

        # The cost may come from the queue's cost_attribute instead.
        r = client.submit("tok", b"x", attributes={"tokens": "40"})
        assert r.payload == b"x"
        for bad, why in [("-1", "negative"), ("nan", "NaN"), ("ten", "not a number"), ("1e300", "over 2^53")]:
            with pytest.raises(BatchgateError) as e:
                client.submit("tok", b"x", attributes={"tokens": bad})
            assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert 'attribute "tokens"' in e.value.message and why in e.value.message
        with pytest.raises(BatchgateError) as e:
            client.submit("tok", b"x", cost=300)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "max_batch_cost 256" in e.value.message
        with pytest.raises(ValueError):
            client.submit("tok", b"x", cost=-1)


SLOW = """
[queues.slow]
max_batch_size = 8
max_delay = "1ms"
handler = { kind = "sim", base = "20ms", per_item = "0s" }
"""


def test_both_clients_see_unavailable_when_the_server_shuts_down_mid_stream(start_batchgate):
    """A stream cut by SIGTERM ends UNAVAILABLE in the sync and the asyncio
    client alike (code that retries on UNAVAILABLE must see it)."""

    def endless():
        i = 0
        while True:
            yield str(i)
            i += 1

    server = start_batchgate(SLOW)
    with Client(server.addr) as client:
        results = client.stream("slow", endless(), window=64)
        next(results)
        server.proc.terminate()
        with pytest.raises(BatchgateError) as e:
            for _ in results:
                pass
        assert e.value.code == grpc.StatusCode.UNAVAILABLE, e.value

    async def run(server):
        async with AsyncClient(server.addr) as client:
            results = client.stream("slow", endless(), window=64)
            await results.__anext__()
            server.proc.terminate()
            with pytest.raises(BatchgateError) as e:
                async for _ in results:
                    pass
            assert e.value.code == grpc.StatusCode.UNAVAILABLE, e.value

    for _ in range(3):
        asyncio.run(run(start_batchgate(SLOW)))


def test_a_backend_declares_its_concurrency_and_a_paced_queue_follows_it(start_batchgate):
    from batchgate.v1 import control_pb2, control_pb2_grpc

    server = start_batchgate(
        """
[queues.model]
max_batch_size = 16
max_delay = "1ms"
max_in_flight_batches = 4
pace = "backend"
handler = { kind = "grpc", retry_backoff = "50ms" }
"""
    )

    @batchgate.handler(concurrency=1)
    def echo(items):
        time.sleep(0.002)
        return items

    backend = batchgate.serve(
        echo, port=0, block=False, register=batchgate.Register("model", control=server.addr)
    )
    try:
        channel = grpc.insecure_channel(server.addr)
        control = control_pb2_grpc.BatchControlStub(channel)
        ref = control_pb2.QueueRef(name="model")
        deadline = time.monotonic() + 20
        while not control.ListEndpoints(ref).endpoints:
            assert time.monotonic() < deadline, "the backend registered"
            time.sleep(0.05)
        assert control.ListEndpoints(ref).endpoints[0].parallelism == 1
        with Client(server.addr) as client:
            results = list(client.stream("model", (str(i) for i in range(200)), window=64))
            assert all(r.ok for r in results)
        learned = control.GetQueue(ref).stats.learned
        assert learned.parallelism == 1, learned
        channel.close()
    finally:
        backend.stop()
