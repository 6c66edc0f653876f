"""Wrapping a gRPC method handler's behaviour, for server interceptors that act around every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

Behaviour = Callable[[Any, grpc.ServicerContext], Any]


def rewrap(handler: grpc.RpcMethodHandler, unary: Callable[[Behaviour], Behaviour],
           streaming: Callable[[Behaviour], Behaviour]) -> grpc.RpcMethodHandler:
    """A handler like `handler` whose behaviour is wrapped by `unary` (single response) or `streaming`
    (a generator of responses), keeping its (de)serializers."""
    kinds = (
        (handler.unary_unary, grpc.unary_unary_rpc_method_handler, unary),
        (handler.stream_unary, grpc.stream_unary_rpc_method_handler, unary),
        (handler.unary_stream, grpc.unary_stream_rpc_method_handler, streaming),
        (handler.stream_stream, grpc.stream_stream_rpc_method_handler, streaming),
    )
    for behaviour, factory, wrap in kinds:
        if behaviour is not None:
            return factory(wrap(behaviour), request_deserializer=handler.request_deserializer,
                           response_serializer=handler.response_serializer)
    raise ValueError("this is a bug: a method handler with no behaviour")


class WrappingInterceptor(grpc.ServerInterceptor):
    """A server interceptor whose wrapping of a method's handler depends on the method and the handler alone:
    made once per method, not on every call (gRPC asks its interceptors for each call's handler)."""

    MAX_METHODS = 1024  # a server has a fixed set of methods; unknown ones have no handler and are not kept

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler | None]] = {}

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
                          details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method
        found = self._wrapped.get(method)
        if found is not None and found[0] is handler:
            return found[1]
        wrapped = self.wrap(method, handler)
        if len(self._wrapped) < self.MAX_METHODS:
            self._wrapped[method] = (handler, wrapped)
        return wrapped

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler | None:
        raise NotImplementedError
