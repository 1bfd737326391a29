from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Trigger(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRIGGER_UNSPECIFIED: _ClassVar[Trigger]
    TRIGGER_SIZE: _ClassVar[Trigger]
    TRIGGER_BYTES: _ClassVar[Trigger]
    TRIGGER_DELAY: _ClassVar[Trigger]
    TRIGGER_FLUSH: _ClassVar[Trigger]
    TRIGGER_DRAIN: _ClassVar[Trigger]
    TRIGGER_TARGET: _ClassVar[Trigger]
    TRIGGER_COST: _ClassVar[Trigger]
    TRIGGER_PACE: _ClassVar[Trigger]
TRIGGER_UNSPECIFIED: Trigger
TRIGGER_SIZE: Trigger
TRIGGER_BYTES: Trigger
TRIGGER_DELAY: Trigger
TRIGGER_FLUSH: Trigger
TRIGGER_DRAIN: Trigger
TRIGGER_TARGET: Trigger
TRIGGER_COST: Trigger
TRIGGER_PACE: Trigger

class SubmitRequest(_message.Message):
    __slots__ = ("queue", "payload", "attributes", "priority", "timeout_ms", "batch_key", "cost", "idempotency_key")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_KEY_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    queue: str
    payload: bytes
    attributes: _containers.ScalarMap[str, str]
    priority: int
    timeout_ms: int
    batch_key: str
    cost: int
    idempotency_key: str
    def __init__(self, queue: _Optional[str] = ..., payload: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ..., priority: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., batch_key: _Optional[str] = ..., cost: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("payload", "attributes", "batch")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    attributes: _containers.ScalarMap[str, str]
    batch: BatchInfo
    def __init__(self, payload: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ..., batch: _Optional[_Union[BatchInfo, _Mapping]] = ...) -> None: ...

class BatchInfo(_message.Message):
    __slots__ = ("batch_id", "batch_size", "trigger", "queued_us", "handler_us")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    QUEUED_US_FIELD_NUMBER: _ClassVar[int]
    HANDLER_US_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    batch_size: int
    trigger: Trigger
    queued_us: int
    handler_us: int
    def __init__(self, batch_id: _Optional[int] = ..., batch_size: _Optional[int] = ..., trigger: _Optional[_Union[Trigger, str]] = ..., queued_us: _Optional[int] = ..., handler_us: _Optional[int] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("id", "queue", "payload", "attributes", "priority", "timeout_ms", "batch_key", "cost", "idempotency_key")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_KEY_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    id: str
    queue: str
    payload: bytes
    attributes: _containers.ScalarMap[str, str]
    priority: int
    timeout_ms: int
    batch_key: str
    cost: int
    idempotency_key: str
    def __init__(self, id: _Optional[str] = ..., queue: _Optional[str] = ..., payload: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ..., priority: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., batch_key: _Optional[str] = ..., cost: _Optional[int] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("id", "result", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    result: SubmitResponse
    error: ItemError
    def __init__(self, id: _Optional[str] = ..., result: _Optional[_Union[SubmitResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class ItemError(_message.Message):
    __slots__ = ("code", "message", "batch")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    batch: BatchInfo
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., batch: _Optional[_Union[BatchInfo, _Mapping]] = ...) -> None: ...
