"""add_servicer serves every method of a service from its descriptor, with per-method request decoders."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rpc_common.handlers import add_servicer

SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"]


class Servicer:
    def Check(self, request, context):  # noqa: N802 - gRPC method name
        return health_pb2.HealthCheckResponse(status=len(request.service))

    def Watch(self, request, context):  # noqa: N802
        for status in (1, 2):
            yield health_pb2.HealthCheckResponse(status=status)

    def List(self, request, context):  # noqa: N802 - present in newer health protos
        return health_pb2.HealthListResponse()


@pytest.fixture
def serve():
    servers = []

    def start(decoders=None):
        server = grpc.server(futures.ThreadPoolExecutor(2))
        add_servicer(server, SERVICE, Servicer(), decoders)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{port}"))

    yield start
    for server in servers:
        server.stop(None)


def test_every_method_kind_is_served(serve):
    stub = serve()
    assert stub.Check(health_pb2.HealthCheckRequest(service="abc")).status == 3
    assert [r.status for r in stub.Watch(health_pb2.HealthCheckRequest())] == [1, 2]


def test_a_decoder_replaces_the_request_deserializer(serve):
    seen = []

    def decode(data: bytes) -> health_pb2.HealthCheckRequest:
        seen.append(data)
        original = health_pb2.HealthCheckRequest.FromString(data)
        return health_pb2.HealthCheckRequest(service="decoded:" + original.service)

    stub = serve({"Check": decode})
    assert stub.Check(health_pb2.HealthCheckRequest(service="x")).status == len("decoded:x")
    assert seen == [health_pb2.HealthCheckRequest(service="x").SerializeToString()]


def test_a_decoder_for_a_method_the_service_lacks_is_refused():
    with pytest.raises(ValueError, match="NoSuchMethod"):
        add_servicer(grpc.server(futures.ThreadPoolExecutor(1)), SERVICE, Servicer(), {"NoSuchMethod": bytes})
