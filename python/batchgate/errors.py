"""The error batchgate answers with."""

from __future__ import annotations

from typing import Optional

import grpc


class BatchgateError(Exception):
    """A gRPC status from batchgate (or, raised in a backend function, the
    status to answer with): ``code`` is a ``grpc.StatusCode``."""

    def __init__(self, code: grpc.StatusCode, message: str, batch: Optional[object] = None):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        #: The batch the item was in, when it got that far.
        self.batch = batch

    @classmethod
    def from_rpc(cls, error: grpc.RpcError) -> "BatchgateError":
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code, details or "")


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def status_code(number: int) -> grpc.StatusCode:
    """The StatusCode of a numeric gRPC code."""
    return _CODES.get(number, grpc.StatusCode.UNKNOWN)
