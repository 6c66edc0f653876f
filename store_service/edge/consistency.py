"""The `vectorlane-read-consistency` metadata of a call (a connection's `read_consistency_interval`), in force
for the call's reads (`store_service.tables.consistency`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from rpc_common.handler_wrapping import Behaviour, WrappingInterceptor, rewrap
from store_service.tables import consistency


def _asked(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == consistency.METADATA_KEY:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


class ReadConsistencyInterceptor(WrappingInterceptor):
    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return rewrap(handler, _unary, _streaming)


def _unary(behaviour: Behaviour) -> Behaviour:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        with consistency.for_call(_asked(context)):
            return behaviour(request, context)
    return wrapped


def _streaming(behaviour: Behaviour) -> Behaviour:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        with consistency.for_call(_asked(context)):
            yield from behaviour(request, context)
    return wrapped
