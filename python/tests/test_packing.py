"""The packed wire form on the Python side: round trips, zero-copy views
and every malformed shape refused with its reason."""

import numpy as np
import pytest

from batchgate import packing
from batchgate.v1 import backend_pb2


def packed(count, data, item_size=0, offsets=()):
    return backend_pb2.PackedItems(count=count, data=data, item_size=item_size, offsets=offsets)


def test_items_of_one_size_pack_with_item_size():
    p = packing.pack([b"ab", b"cd", b"ef"])
    assert (p.count, p.item_size, list(p.offsets)) == (3, 2, [])
    assert packing.unpack(p) == [b"ab", b"cd", b"ef"]


def test_mixed_sizes_pack_with_offsets_and_empty_items_with_nothing():
    p = packing.pack([b"a", b"", b"bcd"])
    assert (p.item_size, list(p.offsets), p.data) == (0, [0, 1, 1, 4], b"abcd")
    assert packing.unpack(p) == [b"a", b"", b"bcd"]
    empty = packing.pack([b"", b""])
    assert (empty.count, empty.data, list(empty.offsets)) == (2, b"", [])
    assert packing.unpack(empty) == [b"", b""]


def test_an_array_view_shares_the_buffer():
    p = packed(2, bytes(range(8)), item_size=4)
    a = packing.as_array(p)
    assert a.shape == (2, 4) and a.dtype == np.uint8
    assert not a.flags.owndata and not a.flags.writeable
    assert a[1].tolist() == [4, 5, 6, 7]


def test_arrays_pack_by_rows():
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    p = packing.pack_array(a)
    assert (p.count, p.item_size) == (3, 8)
    assert np.frombuffer(p.data, np.float32).reshape(3, 2).tolist() == a.tolist()


@pytest.mark.parametrize(
    "p, reason",
    [
        (packed(3, b"abcd", item_size=2), "item_size 2 × count 3"),
        (packed(2, b"abc", item_size=2), "is not the 3 bytes"),
        (packed(2, b"abcd", offsets=[0, 2]), "2 offsets for 2 items"),
        (packed(2, b"abcd", offsets=[1, 2, 4]), "start at 1"),
        (packed(2, b"abcd", offsets=[0, 2, 3]), "end at 3"),
        (packed(2, b"abcd", offsets=[0, 2, 9]), "end at 9"),
        (packed(3, b"abcd", offsets=[0, 3, 1, 4]), "overlap"),
        (packed(2, b"abcd", item_size=2, offsets=[0, 2, 4]), "both"),
        (packed(2, b"abcd"), "neither"),
    ],
)
def test_malformed_shapes_are_refused_with_the_reason(p, reason):
    with pytest.raises(packing.PackedShapeError, match=reason):
        packing.unpack(p)
