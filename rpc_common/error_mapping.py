"""The one place where domain exceptions become gRPC statuses (AIP-193).

Every status carries a google.rpc.ErrorInfo with the exception's UPPER_SNAKE_CASE reason, the service's
domain, and its metadata (function, setting, input index). An exception that is not a domain error is a
bug: it becomes INTERNAL with a request id, and the traceback is logged under that id.

What an error echoes of a request is cut short here, for every error: the message at MAX_MESSAGE characters,
each metadata value at MAX_METADATA_VALUE. Statuses travel in HTTP/2 trailers, which gRPC caps (8 KiB by
default): a 1 MB bad filter echoed whole turned the answer into RESOURCE_EXHAUSTED from the transport.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from rpc_common.errors import InvalidArgument, ServiceError
from rpc_common.handler_wrapping import Behaviour, WrappingInterceptor, rewrap
from rpc_common.handlers import Undecodable

log = logging.getLogger(__name__)

MAX_MESSAGE = 1000
MAX_METADATA_VALUE = 200
MAX_METADATA_ENTRIES = 16


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _unchanged(text: str) -> str:
    return text


def to_status(exc: ServiceError, domain: str, redact: Callable[[str], str] = _unchanged) -> grpc.Status:
    """`exc` as a status; `redact` is applied to its message and metadata values (the embed service's
    secrets never leave it)."""
    metadata = {_cut(k, 64): _cut(redact(v), MAX_METADATA_VALUE)
                for k, v in list(exc.metadata.items())[:MAX_METADATA_ENTRIES]}
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=domain, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    code = getattr(code_pb2, exc.category)
    return rpc_status.to_status(status_pb2.Status(code=code, message=_cut(redact(exc.message), MAX_MESSAGE),
                                                  details=[detail]))


def _decoded(message: Any) -> Any:
    if isinstance(message, Undecodable):
        raise InvalidArgument(f"the request is not a valid {message.message_type} message: {message.error}",
                              reason="MALFORMED_REQUEST", message_type=message.message_type)
    return message


def _checked(request: Any, streaming: bool) -> Any:
    """The request, or for a request stream its messages, each refused if its bytes did not decode."""
    return (_decoded(message) for message in request) if streaming else _decoded(request)


def _internal(method: str, exc: BaseException, domain: str) -> grpc.Status:
    request_id = uuid.uuid4().hex[:16]
    log.error("%s failed with an unexpected error (request id %s)", method, request_id, exc_info=exc)
    error = ServiceError(f"internal error; the service logged it with request id {request_id}",
                       request_id=request_id)
    return to_status(error, domain)


class ErrorMappingInterceptor(WrappingInterceptor):
    def __init__(self, domain: str, redact: Callable[[str], str] = _unchanged) -> None:
        super().__init__()
        self._domain = domain
        self._redact = redact

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        domain, request_stream, redact = self._domain, handler.request_streaming, self._redact

        def status_of(exc: Exception) -> grpc.Status:
            return to_status(exc, domain, redact) if isinstance(exc, ServiceError) else _internal(method, exc, domain)

        def unary(inner: Behaviour) -> Behaviour:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                try:
                    return inner(_checked(request, request_stream), context)
                except Exception as exc:
                    context.abort_with_status(status_of(exc))

            return call

        def streaming(inner: Behaviour) -> Behaviour:
            def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                try:
                    yield from inner(_checked(request, request_stream), context)
                except Exception as exc:
                    context.abort_with_status(status_of(exc))

            return call

        return rewrap(handler, unary, streaming)
