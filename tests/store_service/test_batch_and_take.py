"""Several query vectors in one Search, rows taken by offset or row id: the answers equal the one-by-one ones,
and what a caller may ask for is bounded (queries, rows, bytes, the call's deadline)."""

from __future__ import annotations

import grpc
import numpy as np
import pyarrow as pa
import pytest

from rpc_common.errors import DeadlineExceeded
from store_service.search.vector_search import VectorSearch, search_many
from tests.helpers import error_info
from tests.store_service.conftest import arrow_rows
from vectorlane.store.v1 import store_service_pb2 as pb

DIMS = 16


def vectors_table(store, rows: int = 400) -> np.ndarray:  # noqa: ANN001
    data = np.random.default_rng(7).standard_normal((rows, DIMS)).astype(np.float32)
    table = pa.table({"id": np.arange(rows), "vector": pa.FixedSizeListArray.from_arrays(pa.array(data.reshape(-1)),
                                                                                          DIMS)})
    store.stub.CreateTable(pb.CreateTableRequest(name="v", rows=arrow_rows(table)))
    return data


def ids(reply: pb.SearchResponse) -> list[int]:
    return [int(r.fields["id"].number_value) for r in reply.rows.json.rows]


def test_a_batch_answers_what_each_query_answers_alone(store):
    data = vectors_table(store)
    queries = [pb.Vector(values=data[i].tolist()) for i in (3, 50, 399)]
    batch = store.stub.Search(pb.SearchRequest(table="v", vectors=pb.Vectors(vectors=queries), limit=5,
                                               where="id > 1"))
    rows = batch.rows.json.rows
    assert [int(r.fields["query_index"].number_value) for r in rows] == [0] * 5 + [1] * 5 + [2] * 5
    for number, query in enumerate(queries):
        alone = store.stub.Search(pb.SearchRequest(table="v", vector=query, limit=5, where="id > 1"))
        assert ids(batch)[5 * number:5 * number + 5] == ids(alone)
    assert ids(batch)[::5] == [3, 50, 399]


def test_rows_are_taken_in_the_order_asked(store):
    vectors_table(store, 50)
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="v", where="id < 10"))
    by_offset = store.stub.ReadRows(pb.ReadRowsRequest(table="v", offsets=[5, 0, 39], select=["id"]))
    assert [int(r.fields["id"].number_value) for r in by_offset.rows.json.rows] == [15, 10, 49]
    by_id = store.stub.ReadRows(pb.ReadRowsRequest(table="v", row_ids=[30, 3, 12, 999], select=["id"]))
    assert [int(r.fields["id"].number_value) for r in by_id.rows.json.rows] == [30, 12]  # deleted, absent: left out


def test_answers_larger_than_a_response_are_refused(start_store, embed):
    store = start_store(embed, max_message_bytes=256 << 10)  # responses of at most 128 KiB
    data = vectors_table(store, 2000)
    queries = [pb.Vector(values=v.tolist()) for v in data[:100]]
    reply = None
    with pytest.raises(grpc.RpcError) as refused:
        reply = store.stub.Search(pb.SearchRequest(table="v", vectors=pb.Vectors(vectors=queries), limit=100,
                                                   format=pb.ROW_FORMAT_ARROW))
    assert reply is None
    assert error_info(refused.value).reason == "RESPONSE_TOO_LARGE"
    with pytest.raises(grpc.RpcError) as refused:
        store.stub.ReadRows(pb.ReadRowsRequest(table="v", offsets=list(range(2000)), format=pb.ROW_FORMAT_ARROW))
    assert error_info(refused.value).reason == "RESPONSE_TOO_LARGE"
    assert store.stub.CountRows(pb.CountRowsRequest(table="v")).count == 2000  # still serving


def test_a_batch_stops_at_the_callers_deadline():
    asked = []

    def in_time() -> None:
        asked.append(1)
        raise DeadlineExceeded("the call's deadline passed", reason="DEADLINE_EXCEEDED")

    class View:  # never searched: the deadline is asked before each query
        pass

    with pytest.raises(DeadlineExceeded):
        search_many(View(), np.zeros((5, DIMS), dtype=np.float32), VectorSearch(),  # type: ignore[arg-type]
                    still_in_time=in_time)
    assert len(asked) == 1


@pytest.mark.parametrize("kind", ["FLAT", "IVF_FLAT", "HNSW"])
def test_a_batch_through_an_index_is_one_faiss_call_and_answers_as_each_query_alone(tmp_path, kind, monkeypatch):
    """Through an index the queries go to FAISS as one batch; every option (prefilter, postfilter, offset, a
    distance range), deleted rows, rows caught up since the build and an older version answer exactly as
    each query alone does."""
    from store_service.core import StoreCore
    from store_service.embedder import Embedder
    from store_service.indexes.vector_index import IndexParams, VectorIndex
    from store_service.ingest.rows import Batch

    core = StoreCore(tmp_path / "data", Embedder(""))
    data = np.random.default_rng(11).standard_normal((600, DIMS)).astype(np.float32)

    def rows(low: int, high: int) -> pa.Table:
        return pa.table({"id": np.arange(low, high), "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(data[low:high].reshape(-1)), DIMS)})

    core.create_table("v", None, [], rows(0, 400))
    core.create_index("v", IndexParams(kind=kind, num_partitions=4 if kind == "IVF_FLAT" else 0))
    older = core.add("v", [Batch(rows(400, 500))]).version
    core.delete("v", "id % 7 = 0")
    core.add("v", [Batch(rows(500, 600))])
    calls = []
    real = VectorIndex.search_many
    monkeypatch.setattr(VectorIndex, "search_many", lambda self, q, *a, **k: (calls.append(len(q)),
                                                                              real(self, q, *a, **k))[1])
    queries = data[[3, 7, 450, 599, 123]] + 0.01
    requests = [VectorSearch(limit=6), VectorSearch(limit=4, offset=3, where="id > 100"),
                VectorSearch(limit=5, where="id < 300", postfilter=True),
                VectorSearch(limit=8, distance_upper=30.0)]
    for request in requests:
        for version in (0, older):
            calls.clear()
            batch, _ = core.search("v", queries, request, version=version)
            assert calls and all(n == len(queries) for n in calls)  # one FAISS call for the batch
            alone = [core.search("v", q, request, version=version)[0] for q in queries]
            expected = [(number, row_id) for number, found in enumerate(alone) for row_id in found["id"].to_pylist()]
            assert list(zip(batch["query_index"].to_pylist(), batch["id"].to_pylist())) == expected
            np.testing.assert_allclose(batch["_distance"].to_numpy(),
                                       np.concatenate([f["_distance"].to_numpy() for f in alone]), rtol=1e-5)
    core.close()


def test_a_postfiltered_batch_on_an_indexed_table_with_no_rows_answers_nothing(tmp_path):
    from store_service.core import StoreCore
    from store_service.embedder import Embedder
    from store_service.indexes.vector_index import IndexParams

    core = StoreCore(tmp_path / "data", Embedder(""))
    data = np.random.default_rng(3).standard_normal((50, DIMS)).astype(np.float32)
    core.create_table("v", None, [], pa.table({"id": np.arange(50), "vector": pa.FixedSizeListArray.from_arrays(
        pa.array(data.reshape(-1)), DIMS)}))
    core.create_index("v", IndexParams(kind="FLAT"))
    core.delete("v", "true")
    found, _ = core.search("v", data[:3], VectorSearch(limit=5, where="id > 1", postfilter=True))
    assert found.num_rows == 0
    core.close()
