"""Write a batchgate backend as one Python function.

    import batchgate, numpy as np

    @batchgate.handler(dtype=np.float32, item_shape=(64,))
    def predict(x):                 # x: (n, 64) float32, a view of the request
        return model(x)             # (n, ...) array, or a list of bytes

    batchgate.serve(predict, port=50071, register=batchgate.Register("model"))

The function gets the batch's inputs and returns one output per item:
  * inputs: a list of ``bytes``; or, when batchgate sends the batch packed
    (handler ``encoding = "packed"``) with one item size and numpy is
    installed, a read-only 2-D ``uint8`` array over the request's buffer (no
    copy), viewed as ``dtype`` with shape ``(n, *item_shape)`` when given.
  * outputs: a numpy array whose first axis is the items, or a list whose
    elements are ``bytes`` (or ``str``, a numpy array, an :class:`Output`
    with attributes) or an exception: that item alone fails, with the
    exception's code if it is a :class:`BatchgateError` (UNKNOWN otherwise).
  * padding: when batchgate asks (the queue's ``allowed_batch_sizes``), the
    inputs are padded to that size first (arrays with zero rows, lists by
    repeating the last item) and the extra outputs are dropped.
  * raising fails the whole call: INTERNAL with the exception's text (or the
    code of a BatchgateError), so batchgate can bisect a poison item out.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent import futures
from typing import Any, Callable, Dict, List, Optional, Sequence

import grpc

from batchgate import packing
from batchgate.errors import BatchgateError
from batchgate.v1 import backend_pb2, backend_pb2_grpc, batchgate_pb2
from batchgate.v1 import control_pb2, control_pb2_grpc

log = logging.getLogger("batchgate.backend")


@dataclasses.dataclass
class Output:
    """An item's output with attributes for its caller."""

    payload: bytes
    attributes: Dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class BatchContext:
    """What a handler with ``context=True`` gets besides the inputs."""

    batch_id: int
    queue: str
    #: Attributes of each item (empty dicts for items without any).
    attributes: List[Dict[str, str]]
    #: Each item's trace id ("" where the client sent none, packed).
    trace_ids: List[str]
    #: The size batchgate asked to pad to (0: none).
    pad_to: int


class Handler:
    """A batch function with how it wants its inputs."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        dtype: Any = None,
        item_shape: Optional[Sequence[int]] = None,
        arrays: bool = True,
        pad: bool = True,
        context: bool = False,
        concurrency: Optional[int] = None,
    ):
        self.fn = fn
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency else None
        self.dtype = dtype
        self.item_shape = tuple(item_shape) if item_shape is not None else None
        self.arrays = arrays
        self.pad = pad
        self.context = context

    def __call__(self, *args: Any) -> Any:
        if self._slots is None:
            return self.fn(*args)
        with self._slots:
            return self.fn(*args)


def handler(
    fn: Optional[Callable[..., Any]] = None,
    *,
    dtype: Any = None,
    item_shape: Optional[Sequence[int]] = None,
    arrays: bool = True,
    pad: bool = True,
    context: bool = False,
    concurrency: Optional[int] = None,
):
    """Marks a batch function (usable bare, ``@handler``, or with options).

    dtype, item_shape: view a packed array's rows as this type and shape.
    arrays: give packed batches of one item size as numpy arrays (False:
        always a list of bytes).
    pad: pad to the size batchgate asks for.
    context: call ``fn(inputs, BatchContext)``.
    concurrency: at most this many calls of ``fn`` at once (e.g. 1 for a
        model that owns a device or is not thread-safe); decoding and
        encoding of other batches go on meanwhile. None: no limit.
    """

    def wrap(f: Callable[..., Any]) -> Handler:
        return Handler(
            f,
            dtype=dtype,
            item_shape=item_shape,
            arrays=arrays,
            pad=pad,
            context=context,
            concurrency=concurrency,
        )

    return wrap(fn) if fn is not None else wrap


class BadRequest(ValueError):
    """A request batchgate would never send (a malformed packed buffer)."""


def _np():
    try:
        import numpy

        return numpy
    except ImportError:  # pragma: no cover - numpy is optional
        return None


def _payload(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    tobytes = getattr(value, "tobytes", None)
    if tobytes is not None:
        return tobytes()
    raise TypeError(f"an output must be bytes, str, an array or Output, not {type(value).__name__}")


def _item_error(error: BaseException) -> batchgate_pb2.ItemError:
    if isinstance(error, BatchgateError):
        return batchgate_pb2.ItemError(code=error.code.value[0], message=error.message)
    return batchgate_pb2.ItemError(
        code=grpc.StatusCode.UNKNOWN.value[0], message=f"{type(error).__name__}: {error}"
    )


class BackendService(backend_pb2_grpc.BackendServicer):
    """The ``batchgate.v1.Backend`` service around a batch function."""

    def __init__(self, fn: Callable[..., Any]):
        self.handler = fn if isinstance(fn, Handler) else Handler(fn)

    # -- decoding -------------------------------------------------------
    def _inputs(self, request: backend_pb2.BatchRequest):
        h = self.handler
        if not request.HasField("packed"):
            return [item.payload for item in request.items]
        packed = request.packed
        np = _np()
        try:
            if h.arrays and np is not None and packed.item_size:
                array = packing.as_array(packed)
                if h.dtype is not None or h.item_shape is not None:
                    array = array.view(h.dtype or np.uint8)
                    array = array.reshape(packed.count, *(h.item_shape or (-1,)))
                return array
            return packing.unpack(packed)
        except ValueError as e:
            raise BadRequest(f"packed request: {e}") from e

    def _context(self, request: backend_pb2.BatchRequest, count: int) -> BatchContext:
        attributes: List[Dict[str, str]] = [{} for _ in range(count)]
        trace_ids = [""] * count
        if request.HasField("packed"):
            for meta in request.packed.meta:
                if meta.position < count:
                    attributes[meta.position] = dict(meta.attributes)
                    trace_ids[meta.position] = meta.trace_id
        else:
            for i, item in enumerate(request.items):
                attributes[i] = dict(item.attributes)
                trace_ids[i] = item.trace_id
        return BatchContext(
            batch_id=request.batch_id,
            queue=request.queue,
            attributes=attributes,
            trace_ids=trace_ids,
            pad_to=request.pad_to,
        )

    @staticmethod
    def _padded(inputs: Any, count: int, pad_to: int) -> Any:
        if pad_to <= count or count == 0:
            return inputs
        if isinstance(inputs, list):
            return inputs + [inputs[-1]] * (pad_to - count)
        np = _np()
        zeros = np.zeros((pad_to - count, *inputs.shape[1:]), dtype=inputs.dtype)
        return np.concatenate([inputs, zeros])

    # -- the call -------------------------------------------------------
    def process(self, request: backend_pb2.BatchRequest) -> backend_pb2.BatchResponse:
        """Runs one batch: decode, call the function, encode the answer."""
        inputs = self._inputs(request)
        count = len(inputs)
        h = self.handler
        args = [self._padded(inputs, count, request.pad_to) if h.pad else inputs]
        if h.context:
            args.append(self._context(request, count))
        outputs = h(*args)
        if len(outputs) < count:
            raise BatchgateError(
                grpc.StatusCode.INTERNAL,
                f"the handler returned {len(outputs)} outputs for {count} items",
            )
        if request.HasField("packed"):
            return self._packed_answer(outputs, count)
        return self._item_answer(outputs, request.items)

    def _packed_answer(self, outputs: Any, count: int) -> backend_pb2.BatchResponse:
        if not isinstance(outputs, (list, tuple)):
            return backend_pb2.BatchResponse(packed=packing.pack_array(outputs[:count]))
        parts: List[bytes] = []
        errors = []
        meta = []
        for position in range(count):
            value = outputs[position]
            if isinstance(value, BaseException):
                errors.append(
                    backend_pb2.PackedError(position=position, error=_item_error(value))
                )
                parts.append(b"")
                continue
            if isinstance(value, Output):
                if value.attributes:
                    meta.append(
                        backend_pb2.ItemMeta(position=position, attributes=value.attributes)
                    )
                value = value.payload
            parts.append(_payload(value))
        packed = packing.pack(parts)
        packed.meta.extend(meta)
        return backend_pb2.BatchResponse(packed=packed, errors=errors)

    def _item_answer(self, outputs: Any, items: Sequence[Any]) -> backend_pb2.BatchResponse:
        results = []
        for item, value in zip(items, outputs):
            if isinstance(value, BaseException):
                results.append(
                    backend_pb2.ItemResult(index=item.index, error=_item_error(value))
                )
                continue
            attributes: Dict[str, str] = {}
            if isinstance(value, Output):
                attributes, value = value.attributes, value.payload
            results.append(
                backend_pb2.ItemResult(
                    index=item.index,
                    ok=backend_pb2.ItemOutput(payload=_payload(value), attributes=attributes),
                )
            )
        return backend_pb2.BatchResponse(results=results)

    def _run(self, request, context) -> Optional[backend_pb2.BatchResponse]:
        try:
            return self.process(request)
        except BadRequest as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except BatchgateError as e:
            context.abort(e.code, e.message)
        except Exception as e:  # the function failed: fail the call
            log.exception("batch %d failed", request.batch_id)
            context.abort(grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
        return None

    def ProcessBatch(self, request, context):
        return self._run(request, context)

    def ProcessBatchStream(self, request, context):
        response = self._run(request, context)
        if response is None:
            return
        yield from response.results
        # A packed answer streams as one ItemResult per position.
        errors = {e.position: e.error for e in response.errors}
        if response.HasField("packed"):
            attributes = {m.position: m.attributes for m in response.packed.meta}
            for position, payload in enumerate(packing.unpack(response.packed)):
                if position in errors:
                    yield backend_pb2.ItemResult(index=position, error=errors[position])
                else:
                    yield backend_pb2.ItemResult(
                        index=position,
                        ok=backend_pb2.ItemOutput(
                            payload=payload, attributes=attributes.get(position, {})
                        ),
                    )


@dataclasses.dataclass
class Register:
    """Keep this backend registered with a queue (RegisterEndpoint with a
    lease, renewed every ttl/3 until the server stops)."""

    queue: str
    #: batchgate's control address, host:port.
    control: str = "127.0.0.1:50051"
    #: The URL batchgate calls this backend at (default: http://host:port).
    address: Optional[str] = None
    #: The control plane's bearer token, if it has one.
    token: Optional[str] = None
    #: Lease length in seconds.
    ttl: float = 10.0
    #: Batches the backend really works on at once, declared to batchgate
    #: (a queue with pace = "backend" paces by it). None: the handler's
    #: ``concurrency``, if it has one.
    parallelism: Optional[int] = None


class Server:
    """A running backend: its port, and stop()."""

    def __init__(self, server: grpc.Server, port: int, stop_renewing: threading.Event):
        self._server = server
        self.port = port
        self._stop_renewing = stop_renewing

    def stop(self, grace: Optional[float] = None) -> None:
        self._stop_renewing.set()
        self._server.stop(grace).wait()

    def wait(self) -> None:
        self._server.wait_for_termination()


def _keep_registered(
    register: Register, address: str, parallelism: int, stop: threading.Event
) -> None:
    from batchgate.client import _channel

    channel = _channel(register.control)
    stub = control_pb2_grpc.BatchControlStub(channel)
    metadata = [("authorization", f"Bearer {register.token}")] if register.token else []
    request = control_pb2.RegisterEndpointRequest(
        queue=register.queue,
        address=address,
        kind="grpc",
        lease_ttl_ms=int(register.ttl * 1000),
        parallelism=parallelism,
    )
    while not stop.is_set():
        try:
            stub.RegisterEndpoint(request, metadata=metadata, timeout=5)
        except grpc.RpcError as e:
            log.warning("registration with %s failed: %s", register.control, e.details())
        stop.wait(register.ttl / 3)
    channel.close()


def serve(
    fn: Callable[..., Any],
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    register: Optional[Register] = None,
    max_workers: int = 4,
    max_message_bytes: int = 64 * 1024 * 1024,
    block: bool = True,
) -> Server:
    """Serves ``fn`` as a batchgate Backend on host:port (port 0: any free
    one). With ``block=False`` returns the running :class:`Server`."""
    options = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
    backend_pb2_grpc.add_BackendServicer_to_server(BackendService(fn), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    log.info("batchgate backend listening on %s:%d", host, bound)
    stop = threading.Event()
    if register is not None:
        address = register.address or f"http://{host}:{bound}"
        parallelism = register.parallelism
        if parallelism is None:
            parallelism = getattr(fn, "concurrency", None) or 0
        threading.Thread(
            target=_keep_registered, args=(register, address, parallelism, stop), daemon=True
        ).start()
    running = Server(server, bound, stop)
    if block:
        try:
            running.wait()
        finally:
            stop.set()
    return running
