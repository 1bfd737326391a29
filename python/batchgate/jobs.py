"""Jobs: durable bulk work through a queue, sync and asyncio.

    from batchgate import Client
    with Client("127.0.0.1:50051") as client:
        job = client.create_job("embed", [("doc-1", b"text"), ("doc-2", b"more")])
        job.wait()                      # follows it to its end
        for r in job.results():         # one per custom_id
            print(r.custom_id, r.payload if r.ok else r.error)

An item is ``(custom_id, payload)``, a dict with ``custom_id``, ``payload``
and optional ``attributes``, ``cost``, ``batch_key``, or a :class:`JobItem`.
Uploads go in chunks; the job exists once every item is stored (a bad item
refuses the whole job, naming it, as a :class:`BatchgateError`).
"""

from __future__ import annotations

import dataclasses
from typing import AsyncIterator, Dict, Iterable, Iterator, Optional, Union

import grpc

from batchgate.errors import BatchgateError, status_code
from batchgate.v1 import jobs_pb2, jobs_pb2_grpc

#: Items in one upload message.
CHUNK = 1000
#: The states a job ends in.
ENDED = ("completed", "failed", "expired", "cancelled")


@dataclasses.dataclass(frozen=True)
class JobItem:
    custom_id: str
    payload: Union[bytes, str] = b""
    attributes: Optional[Dict[str, str]] = None
    cost: Optional[int] = None
    batch_key: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class JobResult:
    """One item's end: its output (``ok``), or ``error``."""

    offset: int
    custom_id: str
    payload: Optional[bytes]
    attributes: Dict[str, str]
    error: Optional[BatchgateError]
    #: The batch it rode in (0: it never ran).
    batch_id: int

    @property
    def ok(self) -> bool:
        return self.error is None


def _state(number: int) -> str:
    return jobs_pb2.JobState.Name(number).removeprefix("JOB_STATE_").lower()


@dataclasses.dataclass(frozen=True)
class JobInfo:
    """A job as the server last said: state, counts, reason."""

    id: str
    queue: str
    state: str
    reason: str
    total: int
    succeeded: int
    failed: int
    cancelled: int
    expired: int

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @classmethod
    def of(cls, job: jobs_pb2.Job) -> "JobInfo":
        c = job.counts
        return cls(job.id, job.queue, _state(job.state), job.reason, c.total, c.succeeded, c.failed, c.cancelled, c.expired)


def _item(item) -> jobs_pb2.JobItem:
    if isinstance(item, tuple):
        item = JobItem(*item)
    elif isinstance(item, dict):
        item = JobItem(**item)
    payload = item.payload.encode() if isinstance(item.payload, str) else bytes(item.payload)
    message = jobs_pb2.JobItem(custom_id=item.custom_id, payload=payload, batch_key=item.batch_key or "")
    if item.attributes:
        message.attributes.update(item.attributes)
    if item.cost is not None:
        message.cost = int(item.cost)
    return message


def _upload(queue, items, completion_window, priority, labels, idempotency_key) -> Iterator[jobs_pb2.CreateJobRequest]:
    header = jobs_pb2.JobHeader(
        queue=queue,
        completion_window_ms=int((completion_window or 0) * 1000),
        priority=priority,
        idempotency_key=idempotency_key or "",
    )
    header.labels.update(labels or {})
    yield jobs_pb2.CreateJobRequest(header=header)
    chunk = []
    for item in items:
        chunk.append(_item(item))
        if len(chunk) >= CHUNK:
            yield jobs_pb2.CreateJobRequest(items=jobs_pb2.JobItems(items=chunk))
            chunk = []
    if chunk:
        yield jobs_pb2.CreateJobRequest(items=jobs_pb2.JobItems(items=chunk))


def _result(r: jobs_pb2.JobResult) -> JobResult:
    if r.code:
        error = BatchgateError(status_code(r.code), r.message)
        return JobResult(r.offset, r.custom_id, None, {}, error, r.batch_id)
    return JobResult(r.offset, r.custom_id, bytes(r.payload), dict(r.attributes), None, r.batch_id)


class Job:
    """A job on the server (blocking calls)."""

    def __init__(self, stub: jobs_pb2_grpc.JobsStub, info: JobInfo, metadata):
        self._stub, self.info, self._metadata = stub, info, metadata

    @property
    def id(self) -> str:
        return self.info.id

    def _call(self, method, request):
        try:
            return method(request, metadata=self._metadata)
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None

    def refresh(self) -> JobInfo:
        self.info = JobInfo.of(self._call(self._stub.GetJob, jobs_pb2.JobRef(id=self.id)))
        return self.info

    def wait(self, timeout: Optional[float] = None) -> JobInfo:
        """Follows the job to its end (``timeout`` seconds at most)."""
        try:
            for update in self._stub.WatchJob(jobs_pb2.JobRef(id=self.id), metadata=self._metadata, timeout=timeout):
                self.info = JobInfo.of(update)
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None
        return self.info

    def results(self, *, errors_only: bool = False, offset: int = 0, follow: bool = False) -> Iterator[JobResult]:
        """Its results in the order they were stored (``follow``: wait for
        more until the job ends)."""
        request = jobs_pb2.ReadResultsRequest(id=self.id, offset=offset, errors_only=errors_only, follow=follow)
        try:
            for r in self._stub.ReadResults(request, metadata=self._metadata):
                yield _result(r)
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None

    def cancel(self) -> JobInfo:
        self.info = JobInfo.of(self._call(self._stub.CancelJob, jobs_pb2.JobRef(id=self.id)))
        return self.info

    def delete(self) -> None:
        self._call(self._stub.DeleteJob, jobs_pb2.JobRef(id=self.id))


class AsyncJob:
    """A job on the server (asyncio)."""

    def __init__(self, stub: jobs_pb2_grpc.JobsStub, info: JobInfo, metadata):
        self._stub, self.info, self._metadata = stub, info, metadata

    @property
    def id(self) -> str:
        return self.info.id

    async def _call(self, method, request):
        try:
            return await method(request, metadata=self._metadata)
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None

    async def refresh(self) -> JobInfo:
        self.info = JobInfo.of(await self._call(self._stub.GetJob, jobs_pb2.JobRef(id=self.id)))
        return self.info

    async def wait(self, timeout: Optional[float] = None) -> JobInfo:
        try:
            async for update in self._stub.WatchJob(jobs_pb2.JobRef(id=self.id), metadata=self._metadata, timeout=timeout):
                self.info = JobInfo.of(update)
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None
        return self.info

    async def results(self, *, errors_only: bool = False, offset: int = 0, follow: bool = False) -> AsyncIterator[JobResult]:
        request = jobs_pb2.ReadResultsRequest(id=self.id, offset=offset, errors_only=errors_only, follow=follow)
        try:
            async for r in self._stub.ReadResults(request, metadata=self._metadata):
                yield _result(r)
        except grpc.RpcError as e:
            raise BatchgateError.from_rpc(e) from None

    async def cancel(self) -> JobInfo:
        self.info = JobInfo.of(await self._call(self._stub.CancelJob, jobs_pb2.JobRef(id=self.id)))
        return self.info

    async def delete(self) -> None:
        await self._call(self._stub.DeleteJob, jobs_pb2.JobRef(id=self.id))


def create(stub, metadata, queue: str, items: Iterable, **header) -> Job:
    try:
        job = stub.CreateJob(_upload(queue, items, **header), metadata=metadata)
    except grpc.RpcError as e:
        raise BatchgateError.from_rpc(e) from None
    return Job(stub, JobInfo.of(job), metadata)


async def create_async(stub, metadata, queue: str, items: Iterable, **header) -> AsyncJob:
    try:
        job = await stub.CreateJob(_upload(queue, items, **header), metadata=metadata)
    except grpc.RpcError as e:
        raise BatchgateError.from_rpc(e) from None
    return AsyncJob(stub, JobInfo.of(job), metadata)
