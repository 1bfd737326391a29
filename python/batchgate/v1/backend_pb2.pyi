from batchgate.v1 import batchgate_pb2 as _batchgate_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchRequest(_message.Message):
    __slots__ = ("batch_id", "queue", "timeout_ms", "items", "trigger", "packed", "pad_to", "batch_key")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    PAD_TO_FIELD_NUMBER: _ClassVar[int]
    BATCH_KEY_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    queue: str
    timeout_ms: int
    items: _containers.RepeatedCompositeFieldContainer[BackendItem]
    trigger: _batchgate_pb2.Trigger
    packed: PackedItems
    pad_to: int
    batch_key: str
    def __init__(self, batch_id: _Optional[int] = ..., queue: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., items: _Optional[_Iterable[_Union[BackendItem, _Mapping]]] = ..., trigger: _Optional[_Union[_batchgate_pb2.Trigger, str]] = ..., packed: _Optional[_Union[PackedItems, _Mapping]] = ..., pad_to: _Optional[int] = ..., batch_key: _Optional[str] = ...) -> None: ...

class PackedItems(_message.Message):
    __slots__ = ("count", "data", "item_size", "offsets", "meta")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ITEM_SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    META_FIELD_NUMBER: _ClassVar[int]
    count: int
    data: bytes
    item_size: int
    offsets: _containers.RepeatedScalarFieldContainer[int]
    meta: _containers.RepeatedCompositeFieldContainer[ItemMeta]
    def __init__(self, count: _Optional[int] = ..., data: _Optional[bytes] = ..., item_size: _Optional[int] = ..., offsets: _Optional[_Iterable[int]] = ..., meta: _Optional[_Iterable[_Union[ItemMeta, _Mapping]]] = ...) -> None: ...

class ItemMeta(_message.Message):
    __slots__ = ("position", "attributes", "trace_id")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    position: int
    attributes: _containers.ScalarMap[str, str]
    trace_id: str
    def __init__(self, position: _Optional[int] = ..., attributes: _Optional[_Mapping[str, str]] = ..., trace_id: _Optional[str] = ...) -> None: ...

class PackedError(_message.Message):
    __slots__ = ("position", "error")
    POSITION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    position: int
    error: _batchgate_pb2.ItemError
    def __init__(self, position: _Optional[int] = ..., error: _Optional[_Union[_batchgate_pb2.ItemError, _Mapping]] = ...) -> None: ...

class BackendItem(_message.Message):
    __slots__ = ("index", "payload", "attributes", "trace_id")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    index: int
    payload: bytes
    attributes: _containers.ScalarMap[str, str]
    trace_id: str
    def __init__(self, index: _Optional[int] = ..., payload: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ..., trace_id: _Optional[str] = ...) -> None: ...

class BatchResponse(_message.Message):
    __slots__ = ("results", "packed", "errors")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    packed: PackedItems
    errors: _containers.RepeatedCompositeFieldContainer[PackedError]
    def __init__(self, results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ..., packed: _Optional[_Union[PackedItems, _Mapping]] = ..., errors: _Optional[_Iterable[_Union[PackedError, _Mapping]]] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ("index", "ok", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    ok: ItemOutput
    error: _batchgate_pb2.ItemError
    def __init__(self, index: _Optional[int] = ..., ok: _Optional[_Union[ItemOutput, _Mapping]] = ..., error: _Optional[_Union[_batchgate_pb2.ItemError, _Mapping]] = ...) -> None: ...

class ItemOutput(_message.Message):
    __slots__ = ("payload", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, payload: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...
