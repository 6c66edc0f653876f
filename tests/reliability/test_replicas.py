"""Store replicas on one bucket, as processes (`python -m store_service`) on real object stores on loopback
(moto for S3, Azurite for Azure Blob Storage):
a replica keeps answering while another is killed with SIGKILL and restarted, and a re-embedding operation
whose replica dies is taken over by another through its lease and finished once."""

from __future__ import annotations

import threading
import time
import uuid

import grpc
import numpy as np
import pyarrow as pa
import pytest

from embed_service.functions import get_registry
from tests.reliability.crash_trials import ServiceProcess
from tests.store_service.conftest import WordHash, add, arrow_rows, create_docs, function, json_rows, rows_of
from vectorlane.store.v1 import store_service_pb2 as pb
from vectorlane.store.v1 import store_service_pb2_grpc as pb_grpc

LEASE_S = 2.0


class SlowHash(WordHash):
    """word-hash at about 1.5 ms a text: a re-embedding of a few thousand rows takes seconds."""

    def embed_texts(self, texts, purpose):  # noqa: ANN001, ANN201 - the registry's interface
        time.sleep(0.0015 * len(texts))
        return super().embed_texts(texts, purpose)


@pytest.fixture
def functions():
    registry = get_registry()
    registry.register("word-hash")(WordHash)
    registry.register("slow-hash")(SlowHash)
    yield
    registry.unregister("word-hash")
    registry.unregister("slow-hash")


@pytest.fixture(params=["s3", "az"])
def cloud(request):
    return request.getfixturevalue("local_s3" if request.param == "s3" else "local_azure")


@pytest.fixture
def replica(cloud, functions, embed):
    uri = cloud.uri(cloud.bucket("replicas"), uuid.uuid4().hex[:10])

    def start() -> tuple[ServiceProcess, pb_grpc.StorageServiceStub]:
        process = ServiceProcess("store_service", VECTORLANE_DATA_DIR=uri, VECTORLANE_EMBED_ADDRESS=embed.target,
                                 VECTORLANE_READ_CONSISTENCY_INTERVAL="0.2", VECTORLANE_LEASE_SECONDS=str(LEASE_S),
                                 **cloud.environment())
        return process, pb_grpc.StorageServiceStub(process.channel)

    start.uri = uri  # type: ignore[attr-defined]
    return start


def ids(stub, **request) -> list[int]:
    reply = stub.ReadRows(pb.ReadRowsRequest(table="docs", format=pb.ROW_FORMAT_ARROW, **request))
    return sorted(rows_of(reply.rows).column("id").to_pylist())


def test_a_replica_keeps_answering_while_another_is_killed_and_restarted(replica):
    a, a_stub = replica()
    b, b_stub = replica()
    create_docs(a_stub, rows=[{"id": i, "text": f"row {i} words", "category": "c"} for i in range(50)])
    answered, failed = [0], []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                reply = b_stub.Search(pb.SearchRequest(table="docs", text="row 7 words", limit=3), timeout=10)
                assert len(reply.rows.json.rows) == 3
                answered[0] += 1
            except grpc.RpcError as exc:
                failed.append(exc.code())

    searcher = threading.Thread(target=search)
    searcher.start()
    try:
        time.sleep(0.5)
        a.stop()  # SIGKILL, mid-traffic
        time.sleep(0.5)
        a, a_stub = replica()  # and back
        add(a_stub, "docs", json_rows([{"id": 100, "text": "a late row", "category": "late"}]))
        deadline = time.monotonic() + 10
        while 100 not in ids(b_stub):
            assert time.monotonic() < deadline, "B never saw the restarted A's add"
            time.sleep(0.05)
    finally:
        stop.set()
        searcher.join()
    assert not failed and answered[0] > 10


def test_a_re_embedding_whose_replica_dies_is_taken_over_and_switched_once(replica):
    a, a_stub = replica()
    b, b_stub = replica()
    a_stub.CreateTable(pb.CreateTableRequest(name="docs", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="text", type=pb.DATA_TYPE_STRING, nullable=True),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR)]),
        embedding_functions=[function("word-hash", "text", "vector", dims=32)]))
    texts = [f"word{i % 97} word{i % 13} n{i}" for i in range(6000)]
    add(a_stub, "docs", arrow_rows(pa.table({"id": np.arange(6000), "text": texts})))
    started = a_stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
        table="docs", function=function("slow-hash", "text", "vector", dims=16)))
    deadline = time.monotonic() + 60
    while a_stub.GetOperation(pb.GetOperationRequest(name=started.name)).rows_done < 2048:
        assert time.monotonic() < deadline, "the operation made no progress on A"
        time.sleep(0.05)
    a.stop()  # SIGKILL: its lease lapses, and B takes the operation over from the chunks A recorded
    done = b_stub.GetOperation(pb.GetOperationRequest(name=started.name))
    deadline = time.monotonic() + 120
    while not done.done:
        assert time.monotonic() < deadline, f"B did not finish it: {pb.OperationState.Name(done.state)}"
        time.sleep(0.1)
        done = b_stub.GetOperation(pb.GetOperationRequest(name=started.name))
    assert done.state == pb.OPERATION_STATE_SUCCEEDED, done.error
    versions = b_stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions
    assert [v.operation for v in versions].count("change_function:vector") == 1  # switched once
    assert done.result_version == versions[-1].version
    rows = rows_of(b_stub.ReadRows(pb.ReadRowsRequest(table="docs", format=pb.ROW_FORMAT_ARROW)).rows).sort_by("id")
    vectors = np.asarray(rows.column("vector").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, WordHash(dims=16).embed_texts(rows.column("text").to_pylist(), None),
                               atol=1e-5)


def test_an_index_build_whose_replica_dies_is_finished_by_another_once(replica, cloud):
    a, a_stub = replica()
    b, b_stub = replica()
    a_stub.CreateTable(pb.CreateTableRequest(name="docs", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR,
                                                               dimensions=64)])))
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((40_000, 64), dtype=np.float32)
    for start in range(0, len(vectors), 10_000):
        chunk = vectors[start:start + 10_000]
        add(a_stub, "docs", arrow_rows(pa.table({"id": np.arange(start, start + len(chunk)),
                                                 "vector": pa.FixedSizeListArray.from_arrays(pa.array(chunk.ravel()),
                                                                                             64)})))
    failed: list[grpc.StatusCode] = []
    building = threading.Thread(target=lambda: _failure(lambda: a_stub.CreateIndex(pb.CreateIndexRequest(
        table="docs", index_type=pb.INDEX_TYPE_HNSW, m=32, ef_construction=200), timeout=120), failed))
    building.start()
    bucket, prefix = replica.uri.split("://", 1)[1].split("/", 1)
    deadline = time.monotonic() + 60
    while not [k for k in cloud.keys(bucket, f"{prefix}/docs.lance/_vectorlane/jobs/") if not k.endswith("/")]:
        assert time.monotonic() < deadline, "the build was never recorded"
        time.sleep(0.02)
    a.stop()  # SIGKILL mid-build
    building.join()
    assert failed == [grpc.StatusCode.UNAVAILABLE]  # A never answered: B finishes (or settles) its job
    deadline = time.monotonic() + 120
    while not b_stub.GetTable(pb.GetTableRequest(name="docs")).table.indexes:
        assert time.monotonic() < deadline, "B did not finish the build"
        time.sleep(0.1)
    versions = b_stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions
    assert [v.operation for v in versions].count("create_index") == 1
    found = b_stub.Search(pb.SearchRequest(table="docs", vector=pb.Vector(values=vectors[123].tolist()), limit=1,
                                           select=["id"], format=pb.ROW_FORMAT_ARROW))
    assert rows_of(found.rows).column("id").to_pylist() == [123]


def _failure(call, failed: list) -> None:  # noqa: ANN001
    try:
        call()
    except grpc.RpcError as exc:  # the replica was killed under the call
        failed.append(exc.code())
