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
