from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueueState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUEUE_STATE_UNSPECIFIED: _ClassVar[QueueState]
    QUEUE_STATE_ACTIVE: _ClassVar[QueueState]
    QUEUE_STATE_PAUSED: _ClassVar[QueueState]
    QUEUE_STATE_DRAINING: _ClassVar[QueueState]
    QUEUE_STATE_DRAINED: _ClassVar[QueueState]
QUEUE_STATE_UNSPECIFIED: QueueState
QUEUE_STATE_ACTIVE: QueueState
QUEUE_STATE_PAUSED: QueueState
QUEUE_STATE_DRAINING: QueueState
QUEUE_STATE_DRAINED: QueueState

class QueueRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListQueuesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListQueuesResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueInfo]
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueInfo, _Mapping]]] = ...) -> None: ...

class QueuePolicy(_message.Message):
    __slots__ = ("max_batch_size", "max_batch_bytes", "max_delay_us", "min_batch_size", "strict", "mode", "max_queue_items", "max_in_flight_batches", "item_timeout_ms", "priority_levels", "target_latency_us", "shed", "allowed_batch_sizes", "shards", "key_attribute", "max_keys", "weights", "cost", "cost_attribute", "max_batch_cost", "cost_model", "oversize", "cost_buckets", "idempotency_window_ms", "idempotency_max_keys", "pace", "top_up")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_DELAY_US_FIELD_NUMBER: _ClassVar[int]
    MIN_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_ITEMS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_BATCHES_FIELD_NUMBER: _ClassVar[int]
    ITEM_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_LEVELS_FIELD_NUMBER: _ClassVar[int]
    TARGET_LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    SHED_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_BATCH_SIZES_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    KEY_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_KEYS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    COST_ATTRIBUTE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_COST_FIELD_NUMBER: _ClassVar[int]
    COST_MODEL_FIELD_NUMBER: _ClassVar[int]
    OVERSIZE_FIELD_NUMBER: _ClassVar[int]
    COST_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_WINDOW_MS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_MAX_KEYS_FIELD_NUMBER: _ClassVar[int]
    PACE_FIELD_NUMBER: _ClassVar[int]
    TOP_UP_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_batch_bytes: int
    max_delay_us: int
    min_batch_size: int
    strict: bool
    mode: str
    max_queue_items: int
    max_in_flight_batches: int
    item_timeout_ms: int
    priority_levels: int
    target_latency_us: int
    shed: bool
    allowed_batch_sizes: BatchSizes
    shards: int
    key_attribute: str
    max_keys: int
    weights: KeyWeights
    cost: str
    cost_attribute: str
    max_batch_cost: int
    cost_model: str
    oversize: str
    cost_buckets: CostBuckets
    idempotency_window_ms: int
    idempotency_max_keys: int
    pace: str
    top_up: bool
    def __init__(self, max_batch_size: _Optional[int] = ..., max_batch_bytes: _Optional[int] = ..., max_delay_us: _Optional[int] = ..., min_batch_size: _Optional[int] = ..., strict: _Optional[bool] = ..., mode: _Optional[str] = ..., max_queue_items: _Optional[int] = ..., max_in_flight_batches: _Optional[int] = ..., item_timeout_ms: _Optional[int] = ..., priority_levels: _Optional[int] = ..., target_latency_us: _Optional[int] = ..., shed: _Optional[bool] = ..., allowed_batch_sizes: _Optional[_Union[BatchSizes, _Mapping]] = ..., shards: _Optional[int] = ..., key_attribute: _Optional[str] = ..., max_keys: _Optional[int] = ..., weights: _Optional[_Union[KeyWeights, _Mapping]] = ..., cost: _Optional[str] = ..., cost_attribute: _Optional[str] = ..., max_batch_cost: _Optional[int] = ..., cost_model: _Optional[str] = ..., oversize: _Optional[str] = ..., cost_buckets: _Optional[_Union[CostBuckets, _Mapping]] = ..., idempotency_window_ms: _Optional[int] = ..., idempotency_max_keys: _Optional[int] = ..., pace: _Optional[str] = ..., top_up: _Optional[bool] = ...) -> None: ...

class CostBuckets(_message.Message):
    __slots__ = ("bounds",)
    BOUNDS_FIELD_NUMBER: _ClassVar[int]
    bounds: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, bounds: _Optional[_Iterable[int]] = ...) -> None: ...

class KeyWeights(_message.Message):
    __slots__ = ("weights",)
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    weights: _containers.ScalarMap[str, int]
    def __init__(self, weights: _Optional[_Mapping[str, int]] = ...) -> None: ...

class BatchSizes(_message.Message):
    __slots__ = ("sizes",)
    SIZES_FIELD_NUMBER: _ClassVar[int]
    sizes: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, sizes: _Optional[_Iterable[int]] = ...) -> None: ...

class HandlerSpec(_message.Message):
    __slots__ = ("kind", "sim_base_us", "sim_per_item_us", "endpoints", "max_in_flight", "timeout_ms", "retries", "bisect", "streaming", "json_payloads", "encoding", "sim_per_cost_ns", "sim_padded", "url", "method", "headers", "rate", "burst", "keep_headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    SIM_BASE_US_FIELD_NUMBER: _ClassVar[int]
    SIM_PER_ITEM_US_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    BISECT_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    JSON_PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    SIM_PER_COST_NS_FIELD_NUMBER: _ClassVar[int]
    SIM_PADDED_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    KEEP_HEADERS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    sim_base_us: int
    sim_per_item_us: int
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    max_in_flight: int
    timeout_ms: int
    retries: int
    bisect: bool
    streaming: bool
    json_payloads: bool
    encoding: str
    sim_per_cost_ns: int
    sim_padded: bool
    url: str
    method: str
    headers: _containers.ScalarMap[str, str]
    rate: str
    burst: int
    keep_headers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kind: _Optional[str] = ..., sim_base_us: _Optional[int] = ..., sim_per_item_us: _Optional[int] = ..., endpoints: _Optional[_Iterable[str]] = ..., max_in_flight: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., retries: _Optional[int] = ..., bisect: _Optional[bool] = ..., streaming: _Optional[bool] = ..., json_payloads: _Optional[bool] = ..., encoding: _Optional[str] = ..., sim_per_cost_ns: _Optional[int] = ..., sim_padded: _Optional[bool] = ..., url: _Optional[str] = ..., method: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., rate: _Optional[str] = ..., burst: _Optional[int] = ..., keep_headers: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateQueueRequest(_message.Message):
    __slots__ = ("name", "policy", "handler")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    name: str
    policy: QueuePolicy
    handler: HandlerSpec
    def __init__(self, name: _Optional[str] = ..., policy: _Optional[_Union[QueuePolicy, _Mapping]] = ..., handler: _Optional[_Union[HandlerSpec, _Mapping]] = ...) -> None: ...

class UpdateQueueRequest(_message.Message):
    __slots__ = ("name", "policy", "handler")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    name: str
    policy: QueuePolicy
    handler: HandlerSpec
    def __init__(self, name: _Optional[str] = ..., policy: _Optional[_Union[QueuePolicy, _Mapping]] = ..., handler: _Optional[_Union[HandlerSpec, _Mapping]] = ...) -> None: ...

class DeleteQueueRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class DeleteQueueResponse(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: int
    def __init__(self, dropped: _Optional[int] = ...) -> None: ...

class FlushQueueResponse(_message.Message):
    __slots__ = ("flushed",)
    FLUSHED_FIELD_NUMBER: _ClassVar[int]
    flushed: int
    def __init__(self, flushed: _Optional[int] = ...) -> None: ...

class QueueInfo(_message.Message):
    __slots__ = ("name", "state", "policy", "handler", "endpoints", "stats")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    HANDLER_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: QueueState
    policy: QueuePolicy
    handler: HandlerSpec
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointInfo]
    stats: QueueStats
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[QueueState, str]] = ..., policy: _Optional[_Union[QueuePolicy, _Mapping]] = ..., handler: _Optional[_Union[HandlerSpec, _Mapping]] = ..., endpoints: _Optional[_Iterable[_Union[EndpointInfo, _Mapping]]] = ..., stats: _Optional[_Union[QueueStats, _Mapping]] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("depth", "in_flight_batches", "items_ok", "items_error", "items_rejected", "items_timeout", "items_cancelled", "batches", "batch_size", "handler_ms", "item_ms", "items_shed", "learned", "batches_by_trigger", "wait_ms", "batch_cost", "padding_ratio", "batch_size_histogram", "key_shares")
    class BatchesByTriggerEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_BATCHES_FIELD_NUMBER: _ClassVar[int]
    ITEMS_OK_FIELD_NUMBER: _ClassVar[int]
    ITEMS_ERROR_FIELD_NUMBER: _ClassVar[int]
    ITEMS_REJECTED_FIELD_NUMBER: _ClassVar[int]
    ITEMS_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    ITEMS_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    HANDLER_MS_FIELD_NUMBER: _ClassVar[int]
    ITEM_MS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_SHED_FIELD_NUMBER: _ClassVar[int]
    LEARNED_FIELD_NUMBER: _ClassVar[int]
    BATCHES_BY_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    BATCH_COST_FIELD_NUMBER: _ClassVar[int]
    PADDING_RATIO_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    KEY_SHARES_FIELD_NUMBER: _ClassVar[int]
    depth: int
    in_flight_batches: int
    items_ok: int
    items_error: int
    items_rejected: int
    items_timeout: int
    items_cancelled: int
    batches: int
    batch_size: Percentiles
    handler_ms: Percentiles
    item_ms: Percentiles
    items_shed: int
    learned: Learned
    batches_by_trigger: _containers.ScalarMap[str, int]
    wait_ms: Percentiles
    batch_cost: Percentiles
    padding_ratio: Percentiles
    batch_size_histogram: _containers.RepeatedCompositeFieldContainer[SizeBucket]
    key_shares: _containers.RepeatedCompositeFieldContainer[KeyShare]
    def __init__(self, depth: _Optional[int] = ..., in_flight_batches: _Optional[int] = ..., items_ok: _Optional[int] = ..., items_error: _Optional[int] = ..., items_rejected: _Optional[int] = ..., items_timeout: _Optional[int] = ..., items_cancelled: _Optional[int] = ..., batches: _Optional[int] = ..., batch_size: _Optional[_Union[Percentiles, _Mapping]] = ..., handler_ms: _Optional[_Union[Percentiles, _Mapping]] = ..., item_ms: _Optional[_Union[Percentiles, _Mapping]] = ..., items_shed: _Optional[int] = ..., learned: _Optional[_Union[Learned, _Mapping]] = ..., batches_by_trigger: _Optional[_Mapping[str, int]] = ..., wait_ms: _Optional[_Union[Percentiles, _Mapping]] = ..., batch_cost: _Optional[_Union[Percentiles, _Mapping]] = ..., padding_ratio: _Optional[_Union[Percentiles, _Mapping]] = ..., batch_size_histogram: _Optional[_Iterable[_Union[SizeBucket, _Mapping]]] = ..., key_shares: _Optional[_Iterable[_Union[KeyShare, _Mapping]]] = ...) -> None: ...

class SizeBucket(_message.Message):
    __slots__ = ("le", "batches")
    LE_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    le: int
    batches: int
    def __init__(self, le: _Optional[int] = ..., batches: _Optional[int] = ...) -> None: ...

class KeyShare(_message.Message):
    __slots__ = ("key", "items")
    KEY_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    key: str
    items: int
    def __init__(self, key: _Optional[str] = ..., items: _Optional[int] = ...) -> None: ...

class Learned(_message.Message):
    __slots__ = ("base_us", "per_item_ns", "samples", "arrivals_per_sec", "batch_cap", "parallelism", "parallelism_learned", "backend_idle", "backend_wait_us")
    BASE_US_FIELD_NUMBER: _ClassVar[int]
    PER_ITEM_NS_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    ARRIVALS_PER_SEC_FIELD_NUMBER: _ClassVar[int]
    BATCH_CAP_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_LEARNED_FIELD_NUMBER: _ClassVar[int]
    BACKEND_IDLE_FIELD_NUMBER: _ClassVar[int]
    BACKEND_WAIT_US_FIELD_NUMBER: _ClassVar[int]
    base_us: int
    per_item_ns: int
    samples: int
    arrivals_per_sec: int
    batch_cap: int
    parallelism: int
    parallelism_learned: bool
    backend_idle: float
    backend_wait_us: int
    def __init__(self, base_us: _Optional[int] = ..., per_item_ns: _Optional[int] = ..., samples: _Optional[int] = ..., arrivals_per_sec: _Optional[int] = ..., batch_cap: _Optional[int] = ..., parallelism: _Optional[int] = ..., parallelism_learned: _Optional[bool] = ..., backend_idle: _Optional[float] = ..., backend_wait_us: _Optional[int] = ...) -> None: ...

class Percentiles(_message.Message):
    __slots__ = ("p50", "p90", "p99", "max")
    P50_FIELD_NUMBER: _ClassVar[int]
    P90_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    p50: float
    p90: float
    p99: float
    max: float
    def __init__(self, p50: _Optional[float] = ..., p90: _Optional[float] = ..., p99: _Optional[float] = ..., max: _Optional[float] = ...) -> None: ...

class RegisterEndpointRequest(_message.Message):
    __slots__ = ("queue", "address", "kind", "max_in_flight", "lease_ttl_ms", "parallelism")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    queue: str
    address: str
    kind: str
    max_in_flight: int
    lease_ttl_ms: int
    parallelism: int
    def __init__(self, queue: _Optional[str] = ..., address: _Optional[str] = ..., kind: _Optional[str] = ..., max_in_flight: _Optional[int] = ..., lease_ttl_ms: _Optional[int] = ..., parallelism: _Optional[int] = ...) -> None: ...

class EndpointRef(_message.Message):
    __slots__ = ("queue", "address")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    queue: str
    address: str
    def __init__(self, queue: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class DeregisterEndpointResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndpointInfo(_message.Message):
    __slots__ = ("address", "max_in_flight", "in_flight", "lease_remaining_ms", "ejected_for_ms", "batches_ok", "batches_failed", "configured", "parallelism", "ejections", "rtt_ms")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAX_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    LEASE_REMAINING_MS_FIELD_NUMBER: _ClassVar[int]
    EJECTED_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    BATCHES_OK_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FAILED_FIELD_NUMBER: _ClassVar[int]
    CONFIGURED_FIELD_NUMBER: _ClassVar[int]
    PARALLELISM_FIELD_NUMBER: _ClassVar[int]
    EJECTIONS_FIELD_NUMBER: _ClassVar[int]
    RTT_MS_FIELD_NUMBER: _ClassVar[int]
    address: str
    max_in_flight: int
    in_flight: int
    lease_remaining_ms: int
    ejected_for_ms: int
    batches_ok: int
    batches_failed: int
    configured: bool
    parallelism: int
    ejections: int
    rtt_ms: float
    def __init__(self, address: _Optional[str] = ..., max_in_flight: _Optional[int] = ..., in_flight: _Optional[int] = ..., lease_remaining_ms: _Optional[int] = ..., ejected_for_ms: _Optional[int] = ..., batches_ok: _Optional[int] = ..., batches_failed: _Optional[int] = ..., configured: _Optional[bool] = ..., parallelism: _Optional[int] = ..., ejections: _Optional[int] = ..., rtt_ms: _Optional[float] = ...) -> None: ...

class ListEndpointsResponse(_message.Message):
    __slots__ = ("endpoints",)
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointInfo]
    def __init__(self, endpoints: _Optional[_Iterable[_Union[EndpointInfo, _Mapping]]] = ...) -> None: ...

class WatchStatsRequest(_message.Message):
    __slots__ = ("queue", "interval_ms")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    queue: str
    interval_ms: int
    def __init__(self, queue: _Optional[str] = ..., interval_ms: _Optional[int] = ...) -> None: ...

class StatsSnapshot(_message.Message):
    __slots__ = ("unix_ms", "queues")
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    unix_ms: int
    queues: _containers.RepeatedCompositeFieldContainer[QueueInfo]
    def __init__(self, unix_ms: _Optional[int] = ..., queues: _Optional[_Iterable[_Union[QueueInfo, _Mapping]]] = ...) -> None: ...
