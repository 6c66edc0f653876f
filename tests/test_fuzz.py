"""Property-based fuzzing (hypothesis) of every RPC of both services and of the filter parser: whatever the
request, the answer is OK or a documented status with an ErrorInfo, never INTERNAL or UNKNOWN, never a hang,
and both services keep serving. `VECTORLANE_FUZZ_EXAMPLES` sets the examples per RPC (`make stress`: more,
and random instead of derandomized)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pytest
from google.protobuf import message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store_service.errors import InvalidArgument
from store_service.expressions.grammar import compile_filter
from tests.bad_inputs import Targets, serving
from tests.fuzzing import EXAMPLES, filters, messages
from tests.helpers import error_info
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.store.v1 import store_service_pb2 as pb

SERVICES = {"store": pb.DESCRIPTOR.services_by_name["StorageService"],
            "embed": epb.DESCRIPTOR.services_by_name["EmbeddingService"]}
METHODS = [(name, method) for name, service in SERVICES.items() for method in service.methods]
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}
CALL_TIMEOUT = 60.0  # a call still running after this is a hang
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize=os.environ.get("VECTORLANE_FUZZ_RANDOM") != "1",
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def targets(tmp_path_factory, tiny_clip) -> Iterator[Targets]:
    with serving(tmp_path_factory.mktemp("fuzz"), tiny_clip) as found:
        yield found


def call(targets: Targets, service: str, method, requests: list[bytes]) -> None:
    """Sends `requests` (serialized) to `method`; raises AssertionError on a status fuzzing must never see."""
    channel = targets.store_channel if service == "store" else targets.embed_channel
    token = "catalogue-store-token" if service == "store" else "catalogue-embed-token"
    path = f"/{SERVICES[service].full_name}/{method.name}"
    metadata = (("authorization", f"Bearer {token}"),)
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path)(iter(requests), metadata=metadata, timeout=CALL_TIMEOUT))
        elif method.client_streaming:
            channel.stream_unary(path)(iter(requests), metadata=metadata, timeout=CALL_TIMEOUT)
        else:
            channel.unary_unary(path)(requests[0], metadata=metadata, timeout=CALL_TIMEOUT)
    except grpc.RpcError as exc:
        assert exc.code() not in NEVER, f"{method.name}: {exc.code().name}: {exc.details()}"
        if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or "message" not in exc.details():
            reason = error_info(exc).reason  # every status the service chose carries its reason
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                assert reason in ("UPSTREAM_UNAVAILABLE", "EMBED_SERVICE_UNAVAILABLE"), exc.details()


def still_serving(targets: Targets) -> None:
    assert targets.store.ListTables(pb.ListTablesRequest()).names is not None
    reply = targets.embed.Embed(epb.EmbedRequest(function=targets.clip, inputs=[epb.EmbedInput(text="still")]))
    assert len(reply.embeddings) == 1


@pytest.mark.parametrize("service,method", METHODS, ids=[f"{s}.{m.name}" for s, m in METHODS])
def test_fuzzed_requests_never_get_internal_or_hang(targets, service, method):
    one = messages(method.input_type)
    stream = st.lists(one, min_size=1, max_size=3) if method.client_streaming else one.map(lambda m: [m])

    @FUZZ
    @given(stream)
    def property_(requests):
        call(targets, service, method, [m.SerializeToString() for m in requests])

    property_()
    still_serving(targets)


@pytest.mark.parametrize("service,method", METHODS, ids=[f"{s}.{m.name}" for s, m in METHODS])
def test_arbitrary_bytes_never_get_internal_or_hang(targets, service, method):
    @FUZZ
    @given(st.lists(st.binary(max_size=80), min_size=1, max_size=2))
    def property_(payloads):
        call(targets, service, method, payloads)

    property_()
    still_serving(targets)


def test_fuzzed_requests_round_trip_through_the_generated_classes():
    """The strategies build valid messages of every request type (else the RPC fuzzing tests nothing)."""
    def round_trips(cls: type) -> Callable[[Any], None]:
        def check(message: Any) -> None:
            assert cls.FromString(message.SerializeToString()) == message
        return check

    for _, method in METHODS:
        check = round_trips(message_factory.GetMessageClass(method.input_type))
        settings(max_examples=10, deadline=None, database=None, derandomize=True)(
            given(messages(method.input_type))(check))()


TABLE = pa.table({
    "id": pa.array(np.arange(20), pa.int64()),
    "text": pa.array([f"row {i}" if i % 5 else None for i in range(20)]),
    "category": pa.array(["a", "b", "c", "it's"] * 5),
    "weird name": pa.array(np.linspace(-1, 1, 20)),
    "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(80, dtype=np.float32)), 4),
})


@settings(max_examples=max(200, EXAMPLES * 10), deadline=None, database=None,
          derandomize=os.environ.get("VECTORLANE_FUZZ_RANDOM") != "1")
@given(filters())
def test_the_filter_parser_accepts_or_says_invalid_filter_and_nothing_else(where):
    try:
        selected = TABLE.filter(compile_filter(where, TABLE.schema))
    except InvalidArgument as exc:
        assert exc.reason in ("INVALID_FILTER", "UNKNOWN_COLUMN"), (where, exc.reason, exc.message)
    else:
        assert selected.num_rows <= TABLE.num_rows
