"""Clients for batchgate's ``Batcher`` service, sync and asyncio.

``submit`` sends one item and returns its :class:`Result` (or raises
:class:`BatchgateError`). ``stream`` sends many items over one StreamSubmit
stream, at most ``window`` unanswered at a time, numbering them for you, and
yields one :class:`StreamResult` per item (in input order unless
``ordered=False``); an item that failed carries its error instead of
raising, so one bad item never ends the stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import (
    AsyncIterable,
    AsyncIterator,
    Dict,
    Iterable,
    Iterator,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import grpc

from batchgate import jobs
from batchgate.errors import BatchgateError, status_code
from batchgate.v1 import batchgate_pb2, batchgate_pb2_grpc, jobs_pb2, jobs_pb2_grpc

Payload = Union[bytes, str]


@dataclasses.dataclass(frozen=True)
class BatchInfo:
    """The batch an item was answered in."""

    batch_id: int
    batch_size: int
    #: "size", "bytes", "delay", "flush", "drain", "target" or "cost".
    trigger: str
    queued_us: int
    handler_us: int


@dataclasses.dataclass(frozen=True)
class Result:
    """One item's answer."""

    payload: bytes
    attributes: Dict[str, str]
    batch: Optional[BatchInfo]


@dataclasses.dataclass(frozen=True)
class StreamResult:
    """One streamed item's answer: its position in the input, and its
    result or error."""

    index: int
    payload: bytes = b""
    attributes: Dict[str, str] = dataclasses.field(default_factory=dict)
    batch: Optional[BatchInfo] = None
    error: Optional[BatchgateError] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def unwrap(self) -> bytes:
        """The payload, or raises the item's error."""
        if self.error is not None:
            raise self.error
        return self.payload


_TRIGGERS = {
    v: k.removeprefix("TRIGGER_").lower() for k, v in batchgate_pb2.Trigger.items()
}


def _batch(info) -> Optional[BatchInfo]:
    if info is None or not info.batch_size:
        return None
    return BatchInfo(
        batch_id=info.batch_id,
        batch_size=info.batch_size,
        trigger=_TRIGGERS.get(info.trigger, "unspecified"),
        queued_us=info.queued_us,
        handler_us=info.handler_us,
    )


def _bytes(payload: Payload) -> bytes:
    return payload.encode() if isinstance(payload, str) else bytes(payload)


def _split_target(target: str) -> Tuple[str, bool]:
    """host:port and whether TLS is implied (an https:// URL)."""
    if target.startswith("https://"):
        return target[len("https://") :].rstrip("/"), True
    if target.startswith("http://"):
        return target[len("http://") :].rstrip("/"), False
    return target, False


def _read(path_or_bytes: Union[None, str, bytes]) -> Optional[bytes]:
    if path_or_bytes is None or isinstance(path_or_bytes, bytes):
        return path_or_bytes
    with open(path_or_bytes, "rb") as f:
        return f.read()


def _options(max_message_bytes: int) -> Sequence[Tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


def _credentials(tls, ca, cert, key) -> Optional[grpc.ChannelCredentials]:
    if not tls and ca is None and cert is None:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca), private_key=_read(key), certificate_chain=_read(cert)
    )


def _channel(target: str, *, tls=False, ca=None, cert=None, key=None, max_message_bytes=64 << 20):
    address, implied = _split_target(target)
    creds = _credentials(tls or implied, ca, cert, key)
    options = _options(max_message_bytes)
    if creds is None:
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, creds, options=options)


def _cost(cost) -> Optional[int]:
    """An item's cost as the proto carries it (a whole number ≥ 0), or None."""
    if cost is None:
        return None
    if isinstance(cost, bool) or not isinstance(cost, int) or cost < 0:
        raise ValueError(f"cost must be a whole number ≥ 0, got {cost!r}")
    return cost


def _submit_request(
    queue, payload, attributes, priority, timeout, batch_key, cost=None, idempotency_key=None
) -> batchgate_pb2.SubmitRequest:
    return batchgate_pb2.SubmitRequest(
        idempotency_key=idempotency_key or "",
        queue=queue,
        payload=_bytes(payload),
        attributes=attributes or {},
        priority=priority,
        timeout_ms=int(timeout * 1000) if timeout else 0,
        batch_key=batch_key or "",
        cost=_cost(cost),
    )


def _result(r: batchgate_pb2.SubmitResponse) -> Result:
    return Result(payload=r.payload, attributes=dict(r.attributes), batch=_batch(r.batch))


def _request(queue, index, payload, attributes, priority, timeout_ms, batch_key, cost=None) -> batchgate_pb2.StreamRequest:
    return batchgate_pb2.StreamRequest(
        id=str(index),
        queue=queue,
        payload=_bytes(payload),
        attributes=attributes or {},
        priority=priority,
        timeout_ms=timeout_ms,
        batch_key=batch_key or "",
        cost=_cost(cost),
    )


def _stream_result(response: batchgate_pb2.StreamResponse) -> StreamResult:
    index = int(response.id)
    if response.HasField("error"):
        e = response.error
        error = BatchgateError(status_code(e.code), e.message, _batch(e.batch))
        return StreamResult(index=index, error=error, batch=_batch(e.batch))
    r = response.result
    return StreamResult(
        index=index, payload=r.payload, attributes=dict(r.attributes), batch=_batch(r.batch)
    )


class _Order:
    """Puts results back in input order (or not), releasing a window slot
    for each result handed out."""

    def __init__(self, ordered: bool):
        self.ordered = ordered
        self.held: Dict[int, StreamResult] = {}
        self.next = 0

    def take(self, result: StreamResult) -> Iterator[StreamResult]:
        if not self.ordered:
            yield result
            return
        self.held[result.index] = result
        while self.next in self.held:
            yield self.held.pop(self.next)
            self.next += 1


class Client:
    """A blocking client.

    target: "host:port", "http://host:port" or "https://host:port" (TLS).
    tls / ca / cert / key: TLS, a CA bundle to verify the server (path or
        PEM bytes; default: the system roots), and a client certificate and
        key for mutual TLS.
    metadata: sent with every call (e.g. [("x-request-id", "…")]).
    """

    def __init__(
        self,
        target: str,
        *,
        tls: bool = False,
        ca: Union[None, str, bytes] = None,
        cert: Union[None, str, bytes] = None,
        key: Union[None, str, bytes] = None,
        metadata: Optional[Sequence[Tuple[str, str]]] = None,
        max_message_bytes: int = 64 << 20,
    ):
        self._channel = _channel(
            target, tls=tls, ca=ca, cert=cert, key=key, max_message_bytes=max_message_bytes
        )
        self._stub = batchgate_pb2_grpc.BatcherStub(self._channel)
        self._jobs = jobs_pb2_grpc.JobsStub(self._channel)
        self._metadata = list(metadata or [])

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def create_job(
        self,
        queue: str,
        items: Iterable,
        *,
        completion_window: Optional[float] = None,
        priority: int = 0,
        labels: Optional[Dict[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> "jobs.Job":
        """Uploads ``items`` as a job of ``queue`` (see batchgate.jobs);
        ``completion_window`` in seconds (default: the server's, 24 h)."""
        return jobs.create(
            self._jobs,
            self._metadata,
            queue,
            items,
            completion_window=completion_window,
            priority=priority,
            labels=labels,
            idempotency_key=idempotency_key,
        )

    def job(self, job_id: str) -> "jobs.Job":
        """The job with ``job_id``, as the server has it now."""
        try:
            info = self._jobs.GetJob(jobs_pb2.JobRef(id=job_id), metadata=self._metadata)
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None
        return jobs.Job(self._jobs, jobs.JobInfo.of(info), self._metadata)

    def submit(
        self,
        queue: str,
        payload: Payload,
        *,
        attributes: Optional[Dict[str, str]] = None,
        priority: int = 0,
        timeout: Optional[float] = None,
        batch_key: Optional[str] = None,
        cost: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Result:
        """Sends one item and waits for its answer; raises BatchgateError.
        Items with different ``batch_key`` never share a batch; ``cost`` (a
        token count, say) counts against the queue's ``max_batch_cost``.
        A retry with the same ``idempotency_key`` (within the queue's
        ``idempotency_window``) gets the first call's answer instead of a
        second execution: safe to retry after a cut connection."""
        request = _submit_request(
            queue, payload, attributes, priority, timeout, batch_key, cost, idempotency_key
        )
        try:
            r = self._stub.Submit(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None
        return _result(r)

    def stream(
        self,
        queue: str,
        payloads: Iterable[Payload],
        *,
        window: int = 1024,
        ordered: bool = True,
        attributes: Optional[Dict[str, str]] = None,
        priority: int = 0,
        timeout: Optional[float] = None,
        batch_key: Optional[str] = None,
        costs: Optional[Iterable[int]] = None,
    ) -> Iterator[StreamResult]:
        """Streams every payload (at most ``window`` unanswered) and yields
        each item's StreamResult. ``timeout`` is each item's own timeout;
        ``costs``, if given, one cost per payload, in order.
        Raises BatchgateError only if the stream itself fails."""
        if window < 1:
            raise ValueError("window must be ≥ 1")
        room = threading.Semaphore(window)
        stop = threading.Event()
        timeout_ms = int(timeout * 1000) if timeout else 0

        def requests():
            each_cost = iter(costs) if costs is not None else None
            for index, payload in enumerate(payloads):
                while not room.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                cost = next(each_cost) if each_cost is not None else None
                yield _request(queue, index, payload, attributes, priority, timeout_ms, batch_key, cost)

        call = self._stub.StreamSubmit(requests(), metadata=self._metadata)
        order = _Order(ordered)
        try:
            for response in call:
                for result in order.take(_stream_result(response)):
                    room.release()
                    yield result
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None
        finally:
            stop.set()
            call.cancel()


class AsyncClient:
    """The asyncio client (grpc.aio); the same arguments as :class:`Client`."""

    def __init__(
        self,
        target: str,
        *,
        tls: bool = False,
        ca: Union[None, str, bytes] = None,
        cert: Union[None, str, bytes] = None,
        key: Union[None, str, bytes] = None,
        metadata: Optional[Sequence[Tuple[str, str]]] = None,
        max_message_bytes: int = 64 << 20,
    ):
        address, implied = _split_target(target)
        creds = _credentials(tls or implied, ca, cert, key)
        options = _options(max_message_bytes)
        if creds is None:
            self._channel = grpc.aio.insecure_channel(address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(address, creds, options=options)
        self._stub = batchgate_pb2_grpc.BatcherStub(self._channel)
        self._jobs = jobs_pb2_grpc.JobsStub(self._channel)
        self._metadata = list(metadata or [])

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def create_job(
        self,
        queue: str,
        items: Iterable,
        *,
        completion_window: Optional[float] = None,
        priority: int = 0,
        labels: Optional[Dict[str, str]] = None,
        idempotency_key: Optional[str] = None,
    ) -> "jobs.AsyncJob":
        """Uploads ``items`` as a job of ``queue`` (see :meth:`Client.create_job`)."""
        return await jobs.create_async(
            self._jobs,
            self._metadata,
            queue,
            items,
            completion_window=completion_window,
            priority=priority,
            labels=labels,
            idempotency_key=idempotency_key,
        )

    async def submit(
        self,
        queue: str,
        payload: Payload,
        *,
        attributes: Optional[Dict[str, str]] = None,
        priority: int = 0,
        timeout: Optional[float] = None,
        batch_key: Optional[str] = None,
        cost: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Result:
        """Sends one item and waits for its answer; raises BatchgateError.
        Items with different ``batch_key`` never share a batch; ``cost`` (a
        token count, say) counts against the queue's ``max_batch_cost``.
        A retry with the same ``idempotency_key`` (within the queue's
        ``idempotency_window``) gets the first call's answer instead of a
        second execution: safe to retry after a cut connection."""
        request = _submit_request(
            queue, payload, attributes, priority, timeout, batch_key, cost, idempotency_key
        )
        try:
            r = await self._stub.Submit(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None
        return _result(r)

    async def stream(
        self,
        queue: str,
        payloads: Union[Iterable[Payload], AsyncIterable[Payload]],
        *,
        window: int = 1024,
        ordered: bool = True,
        attributes: Optional[Dict[str, str]] = None,
        priority: int = 0,
        timeout: Optional[float] = None,
        batch_key: Optional[str] = None,
        costs: Optional[Iterable[int]] = None,
    ) -> AsyncIterator[StreamResult]:
        """As :meth:`Client.stream`; ``payloads`` may be an async iterable."""
        if window < 1:
            raise ValueError("window must be ≥ 1")
        room = asyncio.Semaphore(window)
        timeout_ms = int(timeout * 1000) if timeout else 0
        call = self._stub.StreamSubmit(metadata=self._metadata)

        async def items():
            if hasattr(payloads, "__aiter__"):
                async for p in payloads:
                    yield p
            else:
                for p in payloads:
                    yield p

        async def write():
            index = 0
            each_cost = iter(costs) if costs is not None else None
            async for payload in items():
                await room.acquire()
                cost = next(each_cost) if each_cost is not None else None
                try:
                    await call.write(_request(queue, index, payload, attributes, priority, timeout_ms, batch_key, cost))
                except (grpc.RpcError, asyncio.InvalidStateError):
                    return  # the call ended: its status is the reader's to report
                index += 1
            await call.done_writing()

        writer = asyncio.ensure_future(write())
        order = _Order(ordered)
        try:
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    break
                for result in order.take(_stream_result(response)):
                    room.release()
                    yield result
            await writer
        except grpc.RpcError as e:
            raise await _final_error(call, e) from None
        finally:
            writer.cancel()
            call.cancel()


async def _final_error(call, error: grpc.RpcError) -> BatchgateError:
    """The error a stream ended with. When the server ends a stream while a
    write is in flight (at shutdown it answers what it accepted, then ends
    every stream ``UNAVAILABLE``), grpc.aio replaces the server's status
    with ``INTERNAL: Internal error from Core`` and never reports the real
    one (the sync client does). Every item the server accepted was answered
    before that, so the stream ended for want of a server, not for bad
    input: ``UNAVAILABLE``, which a caller may retry, as the sync client
    sees it."""
    details = error.details() if hasattr(error, "details") else ""
    debug = error.debug_error_string() if hasattr(error, "debug_error_string") else ""
    if (
        error.code() == grpc.StatusCode.INTERNAL
        and details == "Internal error from Core"
        and "SendMessageOperation" in (debug or "")
    ):
        return BatchgateError(
            grpc.StatusCode.UNAVAILABLE,
            "the server ended the stream while items were being sent "
            "(grpc.aio does not report its status; every item it accepted was answered)",
        )
    return BatchgateError.from_rpc(error)
