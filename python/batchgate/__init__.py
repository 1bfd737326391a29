"""batchgate's Python SDK: a client for Submit and StreamSubmit, and a
helper that turns one batch function into a batchgate Backend.

    from batchgate import Client
    with Client("127.0.0.1:50051") as client:
        print(client.submit("echo", b"hello").payload)
        for result in client.stream("echo", [b"a", b"b", b"c"]):
            print(result.index, result.payload)

See backend.py for the backend side (``handler``, ``serve``).
"""

from batchgate.backend import BackendService, BatchContext, Output, Register, Server, handler, serve
from batchgate.client import AsyncClient, BatchInfo, Client, Result, StreamResult
from batchgate.errors import BatchgateError
from batchgate.jobs import AsyncJob, Job, JobInfo, JobItem, JobResult

__all__ = [
    "AsyncClient",
    "AsyncJob",
    "BackendService",
    "BatchContext",
    "BatchInfo",
    "BatchgateError",
    "Client",
    "Job",
    "JobInfo",
    "JobItem",
    "JobResult",
    "Output",
    "Register",
    "Result",
    "Server",
    "StreamResult",
    "handler",
    "serve",
]
__version__ = "0.1.0"
