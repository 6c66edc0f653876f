"""Domain exceptions of the embed service.

Nothing here imports grpc: the core raises these, and `embed_service.error_mapping` is the one place that
turns them into gRPC status codes with a google.rpc.ErrorInfo. Each class fixes its status category and
its ErrorInfo reason; `metadata` carries the specifics (the function, the setting, the input index).

    EmbedError
     ├── InvalidArgument            INVALID_ARGUMENT
     │    ├── UnknownFunction       UNKNOWN_FUNCTION
     │    ├── InvalidSettings       UNKNOWN_SETTING / INVALID_SETTING / LITERAL_SECRET
     │    ├── InvalidInput          MISSING_INPUT / UNSUPPORTED_MODALITY / INVALID_IMAGE /
     │    │                         INVALID_IMAGE_URI / IMAGE_URI_NOT_ALLOWED / TOO_MANY_INPUTS
     │    └── UpstreamRejected      UPSTREAM_BAD_REQUEST (the upstream API refused the request: 400)
     ├── FailedPrecondition         FAILED_PRECONDITION
     │    ├── ModelLoadFailed       MODEL_LOAD_FAILED
     │    ├── SecretNotFound        SECRET_NOT_FOUND
     │    └── UpstreamAuthFailed    UPSTREAM_AUTH_FAILED (401/403 from the upstream API: not retried)
     ├── Unavailable                UNAVAILABLE
     │    ├── UpstreamUnavailable   UPSTREAM_UNAVAILABLE (transient failures outlasted max_retries)
     │    └── ShuttingDown          SHUTTING_DOWN
     ├── PermissionDenied           PERMISSION_DENIED / SECRET_HOST_NOT_ALLOWED (a secret would go to a
     │                              host the operator did not allow)
     ├── QueueFull                  RESOURCE_EXHAUSTED / QUEUE_FULL
     └── Cancelled                  CANCELLED / CALLER_GONE
"""

from __future__ import annotations

from typing import Any


class EmbedError(Exception):
    """Base of every error the embed service reports to its callers."""

    category = "INTERNAL"
    reason = "INTERNAL"

    def __init__(self, message: str, *, reason: str | None = None, **metadata: Any) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = {k: str(v) for k, v in metadata.items() if v is not None}


class InvalidArgument(EmbedError):
    category = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"


class UnknownFunction(InvalidArgument):
    reason = "UNKNOWN_FUNCTION"


class InvalidSettings(InvalidArgument):
    reason = "INVALID_SETTING"


class InvalidInput(InvalidArgument):
    reason = "INVALID_INPUT"


class UpstreamRejected(InvalidArgument):
    reason = "UPSTREAM_BAD_REQUEST"


class FailedPrecondition(EmbedError):
    category = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class ModelLoadFailed(FailedPrecondition):
    reason = "MODEL_LOAD_FAILED"


class SecretNotFound(FailedPrecondition):
    reason = "SECRET_NOT_FOUND"


class UpstreamAuthFailed(FailedPrecondition):
    reason = "UPSTREAM_AUTH_FAILED"


class Unavailable(EmbedError):
    category = "UNAVAILABLE"
    reason = "UNAVAILABLE"


class UpstreamUnavailable(Unavailable):
    reason = "UPSTREAM_UNAVAILABLE"


class ShuttingDown(Unavailable):
    reason = "SHUTTING_DOWN"


class PermissionDenied(EmbedError):
    category = "PERMISSION_DENIED"
    reason = "PERMISSION_DENIED"


class QueueFull(EmbedError):
    category = "RESOURCE_EXHAUSTED"
    reason = "QUEUE_FULL"


class Cancelled(EmbedError):
    category = "CANCELLED"
    reason = "CALLER_GONE"
