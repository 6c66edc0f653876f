"""Domain exceptions of the embed service.

Nothing here imports grpc: the core raises these, and `rpc_common.error_mapping` is the one place that
turns them into gRPC status codes with a google.rpc.ErrorInfo. Each class fixes its status category and
its ErrorInfo reason; `metadata` carries the specifics (the function, the setting, the input index).

    EmbedError
     ├── InvalidArgument            INVALID_ARGUMENT
     │    ├── UnknownFunction       UNKNOWN_FUNCTION
     │    ├── InvalidSettings       UNKNOWN_SETTING / INVALID_SETTING / LITERAL_SECRET
     │    ├── InvalidInput          MISSING_INPUT / UNSUPPORTED_MODALITY / INVALID_IMAGE / TEXT_TOO_LONG /
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
     │                              host the operator did not allow) / ENDPOINT_NOT_ALLOWED (an
     │                              endpoint outside --endpoint-allowed-hosts) / MODEL_DOWNLOAD_NOT_ALLOWED /
     │                              REMOTE_CODE_NOT_ALLOWED (what the operator did not turn on)
     ├── QueueFull                  RESOURCE_EXHAUSTED / QUEUE_FULL
     ├── ModelCacheFull             RESOURCE_EXHAUSTED / MODEL_CACHE_FULL (every loaded model is busy)
     └── Cancelled                  CANCELLED / CALLER_GONE
"""

from __future__ import annotations

from rpc_common.errors import (Cancelled as _Cancelled, FailedPrecondition, InvalidArgument, PermissionDenied,
                               ResourceExhausted, ServiceError, Unavailable)

EmbedError = ServiceError

__all__ = [
    "Cancelled", "EmbedError", "FailedPrecondition", "InvalidArgument", "InvalidInput", "InvalidSettings",
    "ModelCacheFull", "ModelLoadFailed", "PermissionDenied", "QueueFull", "SecretNotFound", "ShuttingDown",
    "Unavailable", "UnknownFunction", "UpstreamAuthFailed", "UpstreamRejected", "UpstreamUnavailable",
]


class UnknownFunction(InvalidArgument):
    reason = "UNKNOWN_FUNCTION"


class InvalidSettings(InvalidArgument):
    reason = "INVALID_SETTING"


class InvalidInput(InvalidArgument):
    reason = "INVALID_INPUT"


class UpstreamRejected(InvalidArgument):
    reason = "UPSTREAM_BAD_REQUEST"


class ModelLoadFailed(FailedPrecondition):
    reason = "MODEL_LOAD_FAILED"


class SecretNotFound(FailedPrecondition):
    reason = "SECRET_NOT_FOUND"


class UpstreamAuthFailed(FailedPrecondition):
    reason = "UPSTREAM_AUTH_FAILED"


class UpstreamUnavailable(Unavailable):
    reason = "UPSTREAM_UNAVAILABLE"


class ShuttingDown(Unavailable):
    reason = "SHUTTING_DOWN"


class QueueFull(ResourceExhausted):
    reason = "QUEUE_FULL"


class ModelCacheFull(ResourceExhausted):
    reason = "MODEL_CACHE_FULL"


class Cancelled(_Cancelled):
    reason = "CALLER_GONE"
