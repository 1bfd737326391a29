"""The packed wire form of a batch (``PackedItems`` in backend.proto).

Every item's bytes sit in one buffer: with ``item_size`` when all items
share one size (item i is ``data[i*size:(i+1)*size]``), else with Arrow-style
``offsets`` (count + 1 entries from 0 to ``len(data)``, never decreasing).
Neither set means every item is empty. Anything else is malformed.
"""

from __future__ import annotations

from itertools import accumulate
from typing import List, Sequence, Tuple

from batchgate.v1 import backend_pb2


class PackedShapeError(ValueError):
    """A packed buffer whose shape is wrong; the message says how."""


def bounds(packed: backend_pb2.PackedItems) -> List[Tuple[int, int]]:
    """Where each item lies in ``packed.data``; raises PackedShapeError."""
    count, size, offsets = packed.count, packed.item_size, packed.offsets
    length = len(packed.data)
    if size and offsets:
        raise PackedShapeError("both item_size and offsets are set")
    if size:
        if count * size != length:
            raise PackedShapeError(
                f"item_size {size} × count {count} is not the {length} bytes of data"
            )
        return [(i * size, (i + 1) * size) for i in range(count)]
    if not offsets:
        if length:
            raise PackedShapeError(
                f"{length} bytes of data but neither item_size nor offsets"
            )
        return [(0, 0)] * count
    if len(offsets) != count + 1:
        raise PackedShapeError(
            f"{len(offsets)} offsets for {count} items (count + 1 expected)"
        )
    if offsets[0] != 0:
        raise PackedShapeError(f"offsets start at {offsets[0]}, not 0")
    if offsets[-1] != length:
        raise PackedShapeError(
            f"offsets end at {offsets[-1]}, but data has {length} bytes"
        )
    pairs = list(zip(offsets[:-1], offsets[1:]))
    for i, (start, end) in enumerate(pairs):
        if end < start:
            raise PackedShapeError(
                f"offsets decrease at item {i} ({start} then {end}): items would overlap"
            )
    return pairs


def unpack(packed: backend_pb2.PackedItems) -> List[bytes]:
    """The items of a packed buffer as bytes (one copy each)."""
    data = packed.data
    return [data[start:end] for start, end in bounds(packed)]


def as_array(packed: backend_pb2.PackedItems):
    """A packed buffer of one item size as a read-only (count, item_size)
    uint8 numpy array over the message's bytes, without a copy."""
    import numpy as np

    bounds(packed)
    if not packed.item_size:
        raise PackedShapeError("an array view needs one item_size")
    return np.frombuffer(packed.data, dtype=np.uint8).reshape(
        packed.count, packed.item_size
    )


def pack(parts: Sequence[bytes]) -> backend_pb2.PackedItems:
    """Packs byte strings (item_size when they share a size, else offsets)."""
    count = len(parts)
    sizes = [len(p) for p in parts]
    data = b"".join(parts)
    if count and sizes[0] and sizes.count(sizes[0]) == count:
        return backend_pb2.PackedItems(count=count, data=data, item_size=sizes[0])
    if not data:
        return backend_pb2.PackedItems(count=count)
    return backend_pb2.PackedItems(
        count=count, data=data, offsets=[0, *accumulate(sizes)]
    )


def pack_array(array) -> backend_pb2.PackedItems:
    """Packs the rows of an array (first axis = items) with one item_size."""
    import numpy as np

    array = np.ascontiguousarray(array)
    count = array.shape[0] if array.ndim else 0
    if count == 0 or array.nbytes == 0:
        return backend_pb2.PackedItems(count=count)
    return backend_pb2.PackedItems(
        count=count, data=array.tobytes(), item_size=array.nbytes // count
    )
