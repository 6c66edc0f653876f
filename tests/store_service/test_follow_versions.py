"""A store following versions another process committed to the same Lance dataset: it serves them, reusing
the serving state of every fragment they left unchanged and catching its loaded index up, within its read
consistency interval (LanceDB's `read_consistency_interval`); two processes writing at once lose nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

import grpc

from tests.helpers import error_info
from tests.store_service.conftest import add, arrow_rows, rows_of
from vectorlane.store.v1 import store_service_pb2 as pb

DIMS = 8
CONSISTENCY = "vectorlane-read-consistency"

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    import pyarrow as pa
    from store_service.core import StoreCore
    from store_service.embedder import Embedder
    from store_service.ingest.rows import Batch

    data_dir, start, count, batches, delete = Path(sys.argv[1]), *map(int, sys.argv[2:6])
    core = StoreCore(data_dir, Embedder(""))
    for b in range(batches):
        first = start + b * count
        vectors = np.full((count, 8), float(first), dtype=np.float32) + np.arange(count)[:, None]
        rows = pa.table({"id": np.arange(first, first + count),
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 8)})
        core.add("t", [Batch(rows)])
    if delete >= 0:
        core.delete("t", f"id = {delete}")
    core.close()
""")


def vectors_for(first: int, count: int) -> np.ndarray:
    return np.full((count, DIMS), float(first), dtype=np.float32) + np.arange(count, dtype=np.float32)[:, None]


def table_rows(first: int, count: int) -> pa.Table:
    return pa.table({"id": np.arange(first, first + count),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors_for(first, count).reshape(-1)),
                                                                 DIMS)})


def other_process(data_dir, start: int, count: int, batches: int = 1, delete: int = -1) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(data_dir), str(start), str(count), str(batches),
                             str(delete)], stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-2000:]


def nearest(store, query: np.ndarray, metadata=()) -> int:
    reply = store.stub.Search(pb.SearchRequest(table="t", vector=pb.Vector(values=list(map(float, query))), limit=1,
                                               format=pb.ROW_FORMAT_ARROW), metadata=metadata)
    return rows_of(reply.rows).column("id")[0].as_py()


def count(store, metadata=()) -> int:
    return store.stub.CountRows(pb.CountRowsRequest(table="t"), metadata=metadata).count


@pytest.fixture
def served(start_store):
    store = start_store(None)
    store.stub.CreateTable(pb.CreateTableRequest(name="t", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR, dimensions=DIMS)])))
    add(store.stub, "t", arrow_rows(table_rows(0, 500)))
    add(store.stub, "t", arrow_rows(table_rows(500, 500)))
    store.stub.CreateIndex(pb.CreateIndexRequest(table="t", index_type=pb.INDEX_TYPE_HNSW))
    return store


def test_a_store_serves_what_another_process_committed_reusing_what_it_left_unchanged(served):
    store = served
    owner = store.server.core.owner("t")
    assert nearest(store, vectors_for(700, 1)[0]) == 700
    fragments = {p.ref.data_key: p.fragment for p in owner.view().parts}
    loaded = owner.indexes.loaded_objects()
    finished(other_process(store.data_dir, 10_000, 10, delete=700))
    assert count(store) == 1009
    assert nearest(store, vectors_for(10_005, 1)[0]) == 10_005  # the other process's rows, through the index
    assert nearest(store, vectors_for(700, 1)[0]) != 700  # and its delete
    view = owner.view()
    reused = [p for p in view.parts if fragments.get(p.ref.data_key) is p.fragment]
    assert len(reused) == 2 and len(view.parts) == 3  # only the new fragment was read
    assert owner.indexes.loaded_objects() == loaded  # the loaded index caught up, not reloaded


def test_two_processes_adding_at_once_lose_nothing(served):
    store = served
    writer = other_process(store.data_dir, 20_000, 5, batches=15)
    for b in range(15):
        add(store.stub, "t", arrow_rows(table_rows(30_000 + b * 5, 5)))
    finished(writer)
    assert count(store) == 1000 + 75 + 75
    ids = set(store.server.core.read("t", select=("id",), limit=5000)[0].column("id").to_pylist())
    assert {20_000 + i for i in range(75)} <= ids and {30_000 + i for i in range(75)} <= ids


def test_the_read_consistency_interval_bounds_how_stale_a_read_may_be(start_store):
    store = start_store(None, read_consistency_interval="none")
    store.stub.CreateTable(pb.CreateTableRequest(name="t", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR, dimensions=DIMS)])))
    add(store.stub, "t", arrow_rows(table_rows(0, 10)))
    assert count(store) == 10
    finished(other_process(store.data_dir, 100, 5))
    assert count(store) == 10  # 'none': only the store's own commits are seen
    assert count(store, metadata=((CONSISTENCY, "0"),)) == 15  # a connection asking for strong reads
    add(store.stub, "t", arrow_rows(table_rows(200, 1)))
    assert count(store) == 16  # its own commit is always seen
    with pytest.raises(grpc.RpcError) as refused:
        count(store, metadata=((CONSISTENCY, "-1"),))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused.value).reason == "INVALID_READ_CONSISTENCY"


def test_a_client_connection_carries_its_read_consistency_interval(start_store):
    import datetime

    import vectorlane

    store = start_store(None, read_consistency_interval="none")
    uri = f"grpc://127.0.0.1:{store.server.port}"
    store.stub.CreateTable(pb.CreateTableRequest(name="t", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR, dimensions=DIMS)])))
    add(store.stub, "t", arrow_rows(table_rows(0, 10)))
    default, strong = vectorlane.connect(uri), vectorlane.connect(uri, read_consistency_interval=datetime.timedelta(0))
    assert default.open_table("t").count_rows() == strong.open_table("t").count_rows() == 10
    finished(other_process(store.data_dir, 100, 5))
    assert default.open_table("t").count_rows() == 10  # the store's setting: its own commits only
    assert strong.open_table("t").count_rows() == 15
    with pytest.raises(ValueError):
        vectorlane.connect(uri, read_consistency_interval=-1)
