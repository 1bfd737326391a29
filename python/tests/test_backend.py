"""The backend helper without batchgate: how a batch function sees a
request and how its outputs are encoded, plus bad requests and bad outputs
through a real grpc server."""

import grpc
import numpy as np
import pytest

import batchgate
from batchgate import packing
from batchgate.backend import BackendService
from batchgate.v1 import backend_pb2, backend_pb2_grpc


def packed_request(parts, pad_to=0, meta=()):
    p = packing.pack(parts)
    p.meta.extend(meta)
    return backend_pb2.BatchRequest(batch_id=1, queue="q", packed=p, pad_to=pad_to)


def items_request(parts):
    return backend_pb2.BatchRequest(
        batch_id=1,
        queue="q",
        items=[backend_pb2.BackendItem(index=i * 2, payload=p) for i, p in enumerate(parts)],
    )


def test_a_packed_batch_of_one_size_is_a_typed_array_view():
    seen = {}

    @batchgate.handler(dtype=np.float32, item_shape=(2,))
    def double(x):
        seen["x"] = x
        return x * 2

    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    response = BackendService(double).process(packed_request([r.tobytes() for r in x]))
    assert seen["x"].shape == (3, 2) and seen["x"].dtype == np.float32
    assert not seen["x"].flags.owndata, "a view of the request, not a copy"
    assert (response.packed.count, response.packed.item_size) == (3, 8)
    out = np.frombuffer(response.packed.data, np.float32).reshape(3, 2)
    assert out.tolist() == (x * 2).tolist()


def test_lists_with_per_item_errors_and_attributes():
    def fn(items):
        out = []
        for item in items:
            if item == b"bad":
                out.append(batchgate.BatchgateError(grpc.StatusCode.INVALID_ARGUMENT, "no"))
            elif item == b"boom":
                out.append(RuntimeError("exploded"))
            else:
                out.append(batchgate.Output(item.upper(), {"len": str(len(item))}))
        return out

    service = BackendService(fn)
    r = service.process(packed_request([b"a", b"bad", b"boom", b"cc"]))
    assert packing.unpack(r.packed) == [b"A", b"", b"", b"CC"]
    errors = {e.position: (e.error.code, e.error.message) for e in r.errors}
    assert errors == {
        1: (grpc.StatusCode.INVALID_ARGUMENT.value[0], "no"),
        2: (grpc.StatusCode.UNKNOWN.value[0], "RuntimeError: exploded"),
    }
    assert {m.position: dict(m.attributes) for m in r.packed.meta} == {
        0: {"len": "1"},
        3: {"len": "2"},
    }
    # The same function answers a per-item request item by item.
    r = service.process(items_request([b"a", b"bad"]))
    assert [x.index for x in r.results] == [0, 2]
    assert r.results[0].ok.payload == b"A" and r.results[1].error.message == "no"


def test_padding_to_the_size_batchgate_asks_for():
    sizes = []

    @batchgate.handler
    def fn(x):
        sizes.append(len(x))
        return x

    parts = [bytes([i] * 4) for i in range(3)]
    r = BackendService(fn).process(packed_request(parts, pad_to=8))
    assert sizes == [8], "the function sees the padded batch"
    assert r.packed.count == 3, "only the real items are answered"
    assert packing.unpack(r.packed) == parts

    @batchgate.handler(arrays=False)
    def as_list(items):
        sizes.append(list(items))
        return items

    BackendService(as_list).process(packed_request([b"a", b"bc"], pad_to=4))
    assert sizes[-1] == [b"a", b"bc", b"bc", b"bc"], "lists repeat the last item"


def test_context_carries_attributes_and_trace_ids():
    got = {}

    @batchgate.handler(context=True)
    def fn(items, ctx):
        got["ctx"] = ctx
        return items

    meta = [backend_pb2.ItemMeta(position=1, attributes={"k": "v"}, trace_id="t-1")]
    BackendService(fn).process(packed_request([b"a", b"b"], meta=meta))
    ctx = got["ctx"]
    assert ctx.attributes == [{}, {"k": "v"}] and ctx.trace_ids == ["", "t-1"]


@pytest.fixture
def backend_stub():
    servers = []

    def start(fn):
        server = batchgate.serve(fn, port=0, block=False)
        servers.append(server)
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        return backend_pb2_grpc.BackendStub(channel)

    yield start
    for s in servers:
        s.stop()


def test_a_malformed_packed_request_is_invalid_argument(backend_stub):
    stub = backend_stub(lambda items: items)
    bad = backend_pb2.BatchRequest(
        packed=backend_pb2.PackedItems(count=2, data=b"abc", offsets=[0, 2, 9])
    )
    with pytest.raises(grpc.RpcError) as e:
        stub.ProcessBatch(bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "offsets end at 9" in e.value.details()


def test_too_few_outputs_or_a_raising_function_fail_the_call(backend_stub):
    stub = backend_stub(lambda items: items[:-1])
    with pytest.raises(grpc.RpcError) as e:
        stub.ProcessBatch(packed_request([b"a", b"b"]))
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert "1 outputs for 2 items" in e.value.details()

    def broken(items):
        raise ValueError("model not loaded")

    stub = backend_stub(broken)
    with pytest.raises(grpc.RpcError) as e:
        stub.ProcessBatch(packed_request([b"a"]))
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert e.value.details() == "ValueError: model not loaded"


def test_the_streaming_variant_answers_each_position(backend_stub):
    upper = batchgate.handler(
        lambda items: [i.upper() if i != b"x" else KeyError("x") for i in items], arrays=False
    )
    stub = backend_stub(upper)
    results = list(stub.ProcessBatchStream(packed_request([b"a", b"x", b"c"])))
    by_position = {r.index: r for r in results}
    assert by_position[0].ok.payload == b"A" and by_position[2].ok.payload == b"C"
    assert by_position[1].WhichOneof("outcome") == "error"
