"""Counting and timing every RPC of a server, by method and final status code."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import prometheus_client as prom

from rpc_common.handler_wrapping import Behaviour, WrappingInterceptor, rewrap


class MetricsInterceptor(WrappingInterceptor):
    """Counts every RPC by method and final status code, and times it (streams: start to end)."""

    def __init__(self, requests: prom.Counter, latency: prom.Histogram) -> None:
        super().__init__()
        self._requests = requests  # labels: method, code
        self._latency = latency  # labels: method

    def wrap(self, full_method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        method = full_method.rsplit("/", 1)[-1]
        requests = self._requests
        latency = self._latency.labels(method)  # the method's series, looked up once
        counted: dict[grpc.StatusCode, Any] = {}

        def record(context: grpc.ServicerContext, started: float, failed: bool) -> None:
            code = context.code() or (grpc.StatusCode.UNKNOWN if failed else grpc.StatusCode.OK)
            counter = counted.get(code)
            if counter is None:
                counter = counted.setdefault(code, requests.labels(method, code.name))
            counter.inc()
            latency.observe(time.perf_counter() - started)

        def unary(inner: Behaviour) -> Behaviour:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                started, failed = time.perf_counter(), True
                try:
                    response = inner(request, context)
                    failed = False
                    return response
                finally:
                    record(context, started, failed)

            return call

        def streaming(inner: Behaviour) -> Behaviour:
            def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                started, failed = time.perf_counter(), True
                try:
                    yield from inner(request, context)
                    failed = False
                finally:
                    record(context, started, failed)

            return call

        return rewrap(handler, unary, streaming)
