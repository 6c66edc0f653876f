"""What a failed call raises: one exception class per gRPC status, each also the built-in exception a Python
user would catch (a bad argument is a ValueError, a missing table a LookupError, an unreachable service a
ConnectionError, a deadline a TimeoutError), carrying the service's ErrorInfo reason and metadata."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class VectorlaneError(Exception):
    """A call the service refused or could not answer. `code`: the gRPC status; `reason`: the ErrorInfo
    reason (for example TABLE_NOT_FOUND, INVALID_FILTER); `metadata`: its details (column, table, ...)."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, reason: str = "", metadata: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})

    def __str__(self) -> str:
        return f"{self.message} [{self.reason}]" if self.reason else self.message


class InvalidArgumentError(VectorlaneError, ValueError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class BadVectorError(InvalidArgumentError, RuntimeError):
    """A vector of the wrong length, holding NaN, or missing (reason BAD_VECTOR). LanceDB raises ValueError
    for the bad vectors it finds in Python and RuntimeError for those its core finds: either catches this."""


class SchemaMismatchError(InvalidArgumentError, RuntimeError):
    """Rows the table's schema cannot take: a fixed-size list of another length in a column that is not a
    vector column (SCHEMA_MISMATCH), a required column missing (MISSING_COLUMN) or holding nulls
    (NULL_IN_REQUIRED_COLUMN). LanceDB's core raises RuntimeError for these."""


class NotFoundError(VectorlaneError, LookupError):
    code = grpc.StatusCode.NOT_FOUND


class VersionNotFoundError(NotFoundError, ValueError):
    """A version or tag the table does not have (VERSION_NOT_FOUND): LanceDB raises ValueError for it."""


class AlreadyExistsError(VectorlaneError, ValueError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(VectorlaneError, RuntimeError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class NoFullTextIndexError(FailedPreconditionError, ValueError):
    """A full-text search or tokenize on a column without an FTS index (NO_FTS_INDEX): LanceDB raises
    ValueError for it."""


class AbortedError(VectorlaneError, RuntimeError):
    """A write conflicted with another one (WRITE_CONFLICT): read again and retry."""

    code = grpc.StatusCode.ABORTED


class PermissionDeniedError(VectorlaneError, PermissionError):
    code = grpc.StatusCode.PERMISSION_DENIED


class UnauthenticatedError(VectorlaneError, PermissionError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhaustedError(VectorlaneError, RuntimeError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(VectorlaneError, ConnectionError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(VectorlaneError, TimeoutError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class DataLossError(VectorlaneError, OSError):
    code = grpc.StatusCode.DATA_LOSS


class CancelledError(VectorlaneError):
    code = grpc.StatusCode.CANCELLED


_BY_CODE = {cls.code: cls for cls in (
    InvalidArgumentError, NotFoundError, AlreadyExistsError, FailedPreconditionError, AbortedError,
    PermissionDeniedError, UnauthenticatedError, ResourceExhaustedError, UnavailableError, DeadlineExceededError,
    DataLossError, CancelledError)}
_BY_REASON: dict[tuple[grpc.StatusCode, str], type[VectorlaneError]] = {
    (grpc.StatusCode.INVALID_ARGUMENT, "BAD_VECTOR"): BadVectorError,
    (grpc.StatusCode.INVALID_ARGUMENT, "SCHEMA_MISMATCH"): SchemaMismatchError,
    (grpc.StatusCode.INVALID_ARGUMENT, "MISSING_COLUMN"): SchemaMismatchError,
    (grpc.StatusCode.INVALID_ARGUMENT, "NULL_IN_REQUIRED_COLUMN"): SchemaMismatchError,
    (grpc.StatusCode.NOT_FOUND, "VERSION_NOT_FOUND"): VersionNotFoundError,
    (grpc.StatusCode.NOT_FOUND, "TAG_NOT_FOUND"): VersionNotFoundError,
    (grpc.StatusCode.FAILED_PRECONDITION, "NO_FTS_INDEX"): NoFullTextIndexError}


def from_rpc_error(error: grpc.RpcError) -> VectorlaneError:
    """The exception for a failed call (sync or grpc.aio), with the ErrorInfo the service attached."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    message = (error.details() if callable(getattr(error, "details", None)) else "") or str(code)
    reason, metadata = "", {}
    try:
        status = rpc_status.from_call(error) if hasattr(error, "trailing_metadata") else None
    except ValueError:
        status = None
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
            break
    cls = _BY_REASON.get((code, reason)) or _BY_CODE.get(code) or VectorlaneError
    return cls(message, reason=reason, metadata=metadata)


__all__ = ["AbortedError", "AlreadyExistsError", "BadVectorError", "CancelledError", "DataLossError",
           "DeadlineExceededError", "FailedPreconditionError", "InvalidArgumentError", "NoFullTextIndexError",
           "NotFoundError", "PermissionDeniedError", "ResourceExhaustedError", "SchemaMismatchError",
           "UnauthenticatedError", "UnavailableError", "VectorlaneError", "VersionNotFoundError", "from_rpc_error"]
