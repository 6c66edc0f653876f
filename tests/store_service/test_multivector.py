"""Multivector columns through a real store: MaxSim distances against a brute-force reference, rows without
vectors, filters, an index over every row's vectors (nominating rows, ranked exactly) caught up after adds
and deletes."""

from __future__ import annotations

import grpc
import numpy as np
import pyarrow as pa
import pytest

from tests.helpers import error_info
from tests.store_service.conftest import add, arrow_rows, rows_of
from vectorlane.store.v1 import store_service_pb2 as pb

DIMS = 8
MULTI = pa.list_(pa.list_(pa.float32(), DIMS))


def rows(rng: np.random.Generator, start: int, n: int) -> tuple[pa.Table, list]:
    lists = []
    for i in range(n):
        count = int(rng.integers(0, 5))  # empty lists too
        lists.append(None if i % 17 == 3 else rng.standard_normal((count, DIMS)).astype(np.float32).tolist())
    table = pa.table({"id": pa.array(np.arange(start, start + n)), "tokens": pa.array(lists, type=MULTI)})
    return table, lists


def reference(lists: list, queries: np.ndarray) -> dict[int, float]:
    """MaxSim distance, Σ_i (1 - max_j cos(q_i, d_j)), of every row with vectors, by id."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = {}
    for row_id, vectors in enumerate(lists):
        if vectors:
            d = np.asarray(vectors, dtype=np.float64)
            d = d / np.linalg.norm(d, axis=1, keepdims=True)
            out[row_id] = float(sum(1.0 - (d @ qi).max() for qi in q))
    return out


def search(store, queries: np.ndarray, **kw) -> pa.Table:
    request = pb.SearchRequest(table="multi", format=pb.ROW_FORMAT_ARROW, select=["id"], **kw)
    for q in queries:
        request.vectors.vectors.add().values.extend(q.tolist())
    return rows_of(store.stub.Search(request).rows)


@pytest.fixture
def multi_table(store):
    rng = np.random.default_rng(3)
    store.stub.CreateTable(pb.CreateTableRequest(name="multi", schema=pb.Schema(
        arrow_schema=pa.schema([("id", pa.int64()), ("tokens", MULTI)]).serialize().to_pybytes())))
    first, lists = rows(rng, 0, 300)
    add(store.stub, "multi", arrow_rows(first))
    return rng, lists


def test_distances_match_a_brute_force_maxsim(store, multi_table):
    rng, lists = multi_table
    queries = rng.standard_normal((3, DIMS)).astype(np.float32)
    expected = reference(lists, queries)
    found = search(store, queries, limit=20)
    best = sorted(expected.items(), key=lambda item: item[1])[:20]
    assert found["id"].to_pylist() == [row_id for row_id, _ in best]
    np.testing.assert_allclose(found["_distance"].to_numpy(), [d for _, d in best], atol=1e-5)
    filtered = search(store, queries, limit=5, where="id >= 150")
    assert all(i >= 150 for i in filtered["id"].to_pylist()) and filtered.num_rows == 5


def test_an_index_nominates_rows_that_are_ranked_exactly_and_catches_up(store, multi_table):
    rng, lists = multi_table
    store.stub.CreateIndex(pb.CreateIndexRequest(table="multi", vector_column="tokens", metric=pb.METRIC_COSINE,
                                                 index_type=pb.INDEX_TYPE_IVF_FLAT, num_partitions=4))
    more, more_lists = rows(rng, 300, 50)
    add(store.stub, "multi", arrow_rows(more))
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="multi", where="id < 10"))
    queries = np.asarray([more_lists[5][0]] if more_lists[5] else [more_lists[6][0]], dtype=np.float32)
    found = search(store, queries, limit=10, nprobes=4)
    expected = {k: v for k, v in reference(lists + more_lists, queries).items() if k >= 10}
    best = sorted(expected.items(), key=lambda item: item[1])[:10]
    assert found["id"].to_pylist()[0] == best[0][0]  # a row added after the index is found through it
    assert set(found["id"].to_pylist()) == {row_id for row_id, _ in best}  # every list probed: exact
    assert all(i >= 10 for i in found["id"].to_pylist())


@pytest.mark.parametrize(("metric", "reason"), [(pb.METRIC_L2, "INVALID_METRIC"), (pb.METRIC_DOT, "INVALID_METRIC")])
def test_only_cosine_compares_lists_of_vectors(store, multi_table, metric, reason):
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.CreateIndex(pb.CreateIndexRequest(table="multi", vector_column="tokens", metric=metric,
                                                     index_type=pb.INDEX_TYPE_FLAT))
    assert error_info(caught.value).reason == reason
    with pytest.raises(grpc.RpcError) as caught:
        search(store, np.ones((1, DIMS), dtype=np.float32), metric=metric)
    assert error_info(caught.value).reason == reason
