"""WrappingInterceptor: a method's handler is wrapped once, not on every call, and wrapped again when the
handler it wraps changes (an inner interceptor that answers one call differently, such as a refusal)."""

from __future__ import annotations

from concurrent import futures

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rpc_common.handler_wrapping import WrappingInterceptor, rewrap


class Counting(WrappingInterceptor):
    def __init__(self) -> None:
        super().__init__()
        self.wrapped: list[str] = []
        self.calls = 0

    def wrap(self, method, handler):
        self.wrapped.append(method)

        def around(inner):
            def call(request, context):
                self.calls += 1
                return inner(request, context)
            return call

        return rewrap(handler, around, around)


class Servicer(health_pb2_grpc.HealthServicer):
    def Check(self, request, context):  # noqa: N802 - gRPC method name
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


def test_a_method_is_wrapped_once_and_every_call_goes_through_the_wrapping():
    counting = Counting()
    server = grpc.server(futures.ThreadPoolExecutor(2), interceptors=[counting])
    health_pb2_grpc.add_HealthServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        for _ in range(5):
            assert stub.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        assert counting.wrapped == ["/grpc.health.v1.Health/Check"]
        assert counting.calls == 5
    finally:
        server.stop(None)


def test_another_handler_for_the_same_method_is_wrapped_anew():
    counting = Counting()
    first = grpc.unary_unary_rpc_method_handler(lambda request, context: "first")
    second = grpc.unary_unary_rpc_method_handler(lambda request, context: "second")
    handlers = iter([first, first, second, first])
    details = type("Details", (), {"method": "/s/M", "invocation_metadata": ()})()
    answers = [counting.intercept_service(lambda _: next(handlers), details).unary_unary(None, None)
               for _ in range(4)]
    assert answers == ["first", "first", "second", "first"]
    assert counting.wrapped == ["/s/M", "/s/M", "/s/M"]
    assert counting.intercept_service(lambda _: None, details) is None
