"""Slow, idle or cancelling callers cannot take a service down (findings of the security review): open streams
are bounded per service and per caller, idle streams end, health and short reads keep answering while uploads
are stuck, and a stream that does not end normally never commits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.helpers import error_info
from tests.store_service.conftest import start_store  # noqa: F401
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.embed.v1 import embed_service_pb2_grpc as epb_grpc
from vectorlane.store.v1 import store_service_pb2 as pb

TOKENS = ("token-a", "token-b", "token-c")


def rows(start: int, n: int = 20) -> pb.Rows:
    structs = []
    for i in range(start, start + n):
        s = struct_pb2.Struct()
        s.update({"id": i, "v": [1.0, 0.0, 0.5, 0.25]})
        structs.append(s)
    return pb.Rows(json=pb.JsonRows(rows=structs))


def create(stub, metadata=()) -> None:
    stub.CreateTable(pb.CreateTableRequest(name="t", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="v", type=pb.DATA_TYPE_VECTOR, dimensions=4)])),
        metadata=metadata)


class Held:
    """An AddRows stream that sent its first message and then says nothing until released (or cancelled)."""

    def __init__(self, stub, token: str | None, start: int) -> None:
        self.release = threading.Event()
        metadata = (("authorization", f"Bearer {token}"),) if token else ()

        def messages() -> Iterator[pb.AddRowsRequest]:
            yield pb.AddRowsRequest(table="t", rows=rows(start))
            self.release.wait(60)
            yield pb.AddRowsRequest(rows=rows(start + 1000))

        self.future = stub.AddRows.future(messages(), metadata=metadata, timeout=60)

    def outcome(self) -> str:
        try:
            self.future.result(timeout=60)
            return "OK"
        except grpc.FutureCancelledError:
            return "CANCELLED"
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.CANCELLED:
                return "CANCELLED"
            return error_info(exc).reason


def answers_quickly(store, metadata=()) -> None:
    health = health_pb2_grpc.HealthStub(store.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=3).status == health_pb2.HealthCheckResponse.SERVING
    assert store.stub.CountRows(pb.CountRowsRequest(table="t"), metadata=metadata, timeout=3).count >= 0
    store.stub.Search(pb.SearchRequest(table="t", vector=pb.Vector(values=[1, 0, 0, 0])), metadata=metadata,
                      timeout=3)


def test_open_streams_are_bounded_and_reads_and_health_keep_answering(start_store):  # noqa: F811
    """40 held streams made Search, CountRows and Health time out (32 workers)."""
    store = start_store(auth_tokens=TOKENS, max_workers=32, max_streams=16, max_streams_per_client=8)
    auth = {t: (("authorization", f"Bearer {t}"),) for t in TOKENS}
    create(store.stub, auth["token-a"])
    held = [Held(store.stub, TOKENS[i % 3], 100 * i) for i in range(40)]
    time.sleep(1.0)  # every stream has been admitted or refused by now
    answers_quickly(store, auth["token-c"])
    for h in held:
        h.release.set()
    outcomes = [h.outcome() for h in held]
    assert outcomes.count("OK") == 16, outcomes  # the service's bound
    assert set(outcomes) == {"OK", "TOO_MANY_STREAMS"}, outcomes
    for caller in range(3):  # and each caller's
        assert [outcomes[i] for i in range(caller, 40, 3)].count("OK") <= 8
    answers_quickly(store, auth["token-a"])


def test_without_auth_the_per_caller_bound_is_by_address(start_store):  # noqa: F811
    store = start_store(max_streams=16, max_streams_per_client=3)
    create(store.stub)
    held = [Held(store.stub, f"made-up-{i}", 100 * i) for i in range(6)]  # tokens mean nothing without auth
    time.sleep(0.5)
    for h in held:
        h.release.set()
    assert [h.outcome() for h in held].count("OK") == 3


def test_an_idle_stream_is_ended_and_its_slot_freed(start_store):  # noqa: F811
    store = start_store(max_streams=2, stream_idle_timeout_s=1.0)
    create(store.stub)
    idle = [Held(store.stub, None, 100 * i) for i in range(2)]
    started = time.monotonic()
    assert [h.outcome() for h in idle] == ["STREAM_IDLE_TIMEOUT"] * 2  # never released: silent
    assert time.monotonic() - started < 30
    assert store.stub.CountRows(pb.CountRowsRequest(table="t")).count == 0  # nothing of theirs committed
    fresh = Held(store.stub, None, 900)
    fresh.release.set()
    assert fresh.outcome() == "OK"
    assert threading.active_count() < 200  # each stream's reader thread ended with it


def test_data_calls_beyond_the_worker_limit_are_refused_at_once_and_health_still_answers(start_store):  # noqa: F811
    store = start_store(max_workers=4, max_streams=16, max_streams_per_client=16)
    create(store.stub)
    held = [Held(store.stub, None, 100 * i) for i in range(6)]
    time.sleep(0.5)
    health = health_pb2_grpc.HealthStub(store.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=3).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as busy:
        store.stub.CountRows(pb.CountRowsRequest(table="t"), timeout=3)
    assert busy.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and error_info(busy.value).reason == "SERVER_BUSY"
    for h in held:
        h.release.set()
    assert sorted(h.outcome() for h in held) == ["OK"] * 4 + ["SERVER_BUSY"] * 2
    assert store.stub.CountRows(pb.CountRowsRequest(table="t")).count == 4 * 40


def test_a_cancelled_add_is_never_committed(start_store):  # noqa: F811
    """A client cancelling after its first message got those rows saved in 2 of 6 tries."""
    store = start_store()
    create(store.stub)
    for trial in range(60):
        held = Held(store.stub, None, 100 * trial)
        time.sleep(0.005 + (trial % 6) * 0.01)
        held.future.cancel()
        held.release.set()
        assert held.outcome() == "CANCELLED"
    time.sleep(0.3)
    assert store.stub.CountRows(pb.CountRowsRequest(table="t")).count == 0
    assert [v.version for v in store.stub.ListVersions(pb.ListVersionsRequest(table="t")).versions] == [1]
    finished = Held(store.stub, None, 10_000)
    finished.release.set()
    assert finished.outcome() == "OK"  # a stream that ends normally still commits
    assert store.stub.CountRows(pb.CountRowsRequest(table="t")).count == 40


def test_an_add_with_no_rows_is_no_new_version(start_store):  # noqa: F811
    store = start_store()
    create(store.stub)
    reply = store.stub.AddRows(iter([pb.AddRowsRequest(table="t"), pb.AddRowsRequest(rows=pb.Rows())]))
    assert reply.version == 1 and reply.rows_added == 0
    assert len(store.stub.ListVersions(pb.ListVersionsRequest(table="t")).versions) == 1


def test_embed_streams_are_bounded_and_idle_ones_end(start_embed):
    embed = start_embed(max_streams=2, max_streams_per_client=2, stream_idle_timeout_s=1.0)
    stub = epb_grpc.EmbeddingServiceStub(embed.channel)
    release = threading.Event()

    def quiet() -> Iterator[epb.StreamEmbedRequest]:
        release.wait(30)
        yield from ()

    calls = [stub.StreamEmbed(quiet(), timeout=30) for _ in range(3)]
    reasons = []
    for call in calls:
        try:
            list(call)
            reasons.append("OK")
        except grpc.RpcError as exc:
            reasons.append(error_info(exc).reason)
    assert sorted(reasons) == ["STREAM_IDLE_TIMEOUT", "STREAM_IDLE_TIMEOUT", "TOO_MANY_STREAMS"]
    release.set()
    health = health_pb2_grpc.HealthStub(embed.channel)
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=3).status == health_pb2.HealthCheckResponse.SERVING


def test_a_cancelled_merge_is_never_committed(start_store):  # noqa: F811
    store = start_store(max_streams=64, max_streams_per_client=64)  # a cancelled stream's slot frees a bit later
    create(store.stub)
    for trial in range(20):
        release = threading.Event()

        def messages(trial=trial, release=release) -> Iterator[pb.MergeInsertRequest]:
            yield pb.MergeInsertRequest(table="t", on=["id"], when_not_matched_insert_all=True, rows=rows(100 * trial))
            release.wait(30)
            yield pb.MergeInsertRequest(rows=rows(100 * trial + 50))

        future = store.stub.MergeInsert.future(messages(), timeout=30)
        time.sleep(0.005 + (trial % 5) * 0.01)
        future.cancel()
        release.set()
        with pytest.raises(grpc.FutureCancelledError):
            future.result()
    time.sleep(0.3)
    assert store.stub.CountRows(pb.CountRowsRequest(table="t")).count == 0


def test_a_thread_still_reading_a_stream_stops_soon_after_the_call_is_answered():
    """A call answered while another thread of it still waits for the caller's next message (a streamed add
    that failed while its receiving thread ran ahead): that thread is released with CANCELLED, not after the
    idle timeout."""
    from rpc_common.admission import Guarded
    from rpc_common.errors import Cancelled

    never = threading.Event()

    def silent():
        never.wait()
        yield None

    class Context:
        def is_active(self):
            return True

    stream = Guarded(silent(), Context(), idle_timeout=60.0)
    failed = []

    def read():
        try:
            next(stream)
        except Cancelled as exc:
            failed.append(exc.reason)

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.1)
    stream.close()
    reader.join(5)  # far below the idle timeout of 60 s
    never.set()
    assert failed == ["CALLER_GONE"]
