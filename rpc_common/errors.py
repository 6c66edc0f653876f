"""The base of every domain error a vectorlane service reports, and the status categories.

Services raise these (no grpc imports); `rpc_common.error_mapping` turns them into a gRPC status with a
google.rpc.ErrorInfo. Each class fixes its status category and a default reason; a service's own
subclasses refine the reason (UNKNOWN_FUNCTION, TABLE_NOT_FOUND, ...), and `metadata` carries specifics.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of every error a service reports to its callers. Unknown subclasses map to INTERNAL."""

    category = "INTERNAL"
    reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, **metadata: Any) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = {k: str(v) for k, v in metadata.items() if v is not None}


class InvalidArgument(ServiceError):
    category = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"


class NotFound(ServiceError):
    category = "NOT_FOUND"
    reason = "NOT_FOUND"


class AlreadyExists(ServiceError):
    category = "ALREADY_EXISTS"
    reason = "ALREADY_EXISTS"


class FailedPrecondition(ServiceError):
    category = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class PermissionDenied(ServiceError):
    category = "PERMISSION_DENIED"
    reason = "PERMISSION_DENIED"


class ResourceExhausted(ServiceError):
    category = "RESOURCE_EXHAUSTED"
    reason = "RESOURCE_EXHAUSTED"


class Aborted(ServiceError):
    category = "ABORTED"
    reason = "ABORTED"


class Unavailable(ServiceError):
    category = "UNAVAILABLE"
    reason = "UNAVAILABLE"


class DataLoss(ServiceError):
    category = "DATA_LOSS"
    reason = "DATA_LOSS"


class Cancelled(ServiceError):
    category = "CANCELLED"
    reason = "CANCELLED"


class DeadlineExceeded(ServiceError):
    category = "DEADLINE_EXCEEDED"
    reason = "DEADLINE_EXCEEDED"


class Unauthenticated(ServiceError):
    category = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"
