"""Search through a real store: filters before and after, select/limit/offset/distance_range, metrics,
every index type against exact search, deletes and updates seen by every index, several vector columns,
text and image queries embedded by the embed service."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pyarrow as pa
import pytest
import grpc

from tests.helpers import error_info, png
from tests.store_service.conftest import add, arrow_rows, function, json_rows, rows_of
from vectorlane.store.v1 import store_service_pb2 as pb

DIMS = 32
INDEX_TYPES = [pb.INDEX_TYPE_FLAT, pb.INDEX_TYPE_IVF_FLAT, pb.INDEX_TYPE_IVF_PQ, pb.INDEX_TYPE_HNSW]


def clustered(n: int = 4000, clusters: int = 40, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, DIMS)).astype(np.float32) * 4
    labels = rng.integers(0, clusters, n)
    return (centers[labels] + rng.standard_normal((n, DIMS)).astype(np.float32)), centers


def vector_table(store, name="vecs", n=4000) -> tuple[np.ndarray, np.ndarray]:
    vectors, centers = clustered(n)
    store.stub.CreateTable(pb.CreateTableRequest(name=name, schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="bucket", type=pb.DATA_TYPE_INT64),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR, dimensions=DIMS)])))
    batch = pa.table({"id": pa.array(np.arange(n)), "bucket": pa.array(np.arange(n) % 10),
                      "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMS)})
    add(store.stub, name, arrow_rows(batch.slice(0, n // 2)), arrow_rows(batch.slice(n // 2)))
    return vectors, centers


def search(store, query, table="vecs", **kw) -> pa.Table:
    reply = store.stub.Search(pb.SearchRequest(table=table, vector=pb.Vector(values=list(map(float, query))),
                                               format=pb.ROW_FORMAT_ARROW, **kw))
    return rows_of(reply.rows)


def exact_ids(vectors, query, k, allowed=None) -> list[int]:
    d = ((vectors - query) ** 2).sum(1)
    if allowed is not None:
        d = np.where(allowed, d, np.inf)
    return list(np.argsort(d, kind="stable")[:k])


@pytest.fixture
def vec_store(start_store):
    store = start_store(None)
    vectors, centers = vector_table(store)
    return store, vectors, centers


def test_exact_search_matches_brute_force(vec_store):
    store, vectors, centers = vec_store
    query = centers[3] + 0.1
    found = search(store, query, limit=10)
    assert found.column("id").to_pylist() == exact_ids(vectors, query, 10)
    distances = found.column("_distance").to_numpy()
    np.testing.assert_allclose(distances, ((vectors[exact_ids(vectors, query, 10)] - query) ** 2).sum(1), rtol=1e-4)
    assert list(distances) == sorted(distances)


def test_prefilter_and_postfilter(vec_store):
    store, vectors, centers = vec_store
    query = centers[5]
    pre = search(store, query, limit=10, where="bucket = 3")
    assert pre.num_rows == 10 and set(pre.column("bucket").to_pylist()) == {3}
    assert pre.column("id").to_pylist() == exact_ids(vectors, query, 10, np.arange(len(vectors)) % 10 == 3)
    post = search(store, query, limit=10, where="bucket = 3", postfilter=True)
    top10 = exact_ids(vectors, query, 10)
    assert post.column("id").to_pylist() == [i for i in top10 if i % 10 == 3]  # LanceDB: filtered after top-k


def test_select_offset_and_distance_range(vec_store):
    store, vectors, centers = vec_store
    query = centers[1]
    ranked = exact_ids(vectors, query, 30)
    page = search(store, query, limit=5, offset=5, select=["id"])
    assert page.column_names == ["id", "_distance"] and page.column("id").to_pylist() == ranked[5:10]
    distances = ((vectors[ranked] - query) ** 2).sum(1)
    lower, upper = float(distances[9:11].mean()), float(distances[19:21].mean())  # clear of rounding
    bounded = search(store, query, limit=100, distance_range=pb.DistanceRange(lower=lower, upper=upper))
    assert bounded.column("id").to_pylist() == ranked[10:20]


@pytest.mark.parametrize("metric", [pb.METRIC_COSINE, pb.METRIC_DOT])
def test_other_metrics(vec_store, metric):
    store, vectors, centers = vec_store
    query = centers[2]
    found = search(store, query, limit=5, metric=metric).column("id").to_pylist()
    if metric == pb.METRIC_DOT:
        expected = list(np.argsort(-(vectors @ query), kind="stable")[:5])
    else:
        normed = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        expected = list(np.argsort(-(normed @ (query / np.linalg.norm(query))), kind="stable")[:5])
    assert found == expected


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_every_index_agrees_with_exact_search(vec_store, index_type):
    store, vectors, centers = vec_store
    created = store.stub.CreateIndex(pb.CreateIndexRequest(table="vecs", index_type=index_type, num_partitions=40))
    assert created.index.name == "vector_idx" and created.index.index_type == index_type
    listed = store.stub.ListIndexes(pb.ListIndexesRequest(table="vecs")).indexes
    assert [i.name for i in listed] == ["vector_idx"]
    # 32-d vectors in 4 PQ sub-vectors are coarse codes: 250 candidates re-ranked find the exact top 10
    opts = dict(nprobes=10, ef=128, refine_factor=25 if index_type == pb.INDEX_TYPE_IVF_PQ else 0)
    rng = np.random.default_rng(3)
    recalls = []
    for c in range(20):
        query = centers[c] + rng.standard_normal(DIMS).astype(np.float32) * 0.5
        truth = exact_ids(vectors, query, 10)
        found = search(store, query, limit=10, **opts).column("id").to_pylist()
        assert found[0] == truth[0]
        recalls.append(len(set(found) & set(truth)) / 10)
    assert np.mean(recalls) >= (1.0 if index_type == pb.INDEX_TYPE_FLAT else 0.9)

    # Deleted and updated rows: gone from the index's answers; their replacements found; new rows found.
    top = exact_ids(vectors, centers[0], 3)
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="vecs", where=f"id = {top[0]}"))
    moved = centers[1] + 0.01
    store.stub.UpdateRows(pb.UpdateRowsRequest(table="vecs", where=f"id = {top[1]}",
                                               values=json_rows([{"vector": list(map(float, moved))}]).json.rows[0]))
    after = search(store, centers[0], limit=10, **opts).column("id").to_pylist()
    assert top[0] not in after and top[1] not in after and after[0] == top[2]
    assert search(store, moved, limit=1, **opts).column("id").to_pylist() == [top[1]]
    fresh = centers[9] + 0.001
    add(store.stub, "vecs", json_rows([{"id": 99999, "bucket": 0, "vector": list(map(float, fresh))}]))
    assert search(store, fresh, limit=1, **opts).column("id").to_pylist() == [99999]
    filtered = search(store, centers[0], limit=5, where="bucket = 7", **opts)
    assert set(filtered.column("bucket").to_pylist()) == {7}
    # Deleting every row of the second add drops its fragment; the index still holds those rows and never
    # answers with them, and the rows that remain are found as before.
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="vecs", where="id >= 2000 AND id < 4000"))
    remaining = np.ones(len(vectors), dtype=bool)
    remaining[2000:] = False
    remaining[[top[0], top[1]]] = False
    for c in (0, 5, 9):
        found = search(store, centers[c], limit=10, **opts).column("id").to_pylist()
        assert all(i < 2000 or i == 99999 for i in found)
        truth = exact_ids(vectors, centers[c], 10, allowed=remaining)
        assert found[0] in (truth[0], 99999, top[1]) and len(set(found) & set(truth)) >= 8
    # Reopened by a new server, the index file is loaded and caught up, with the same answers.
    store.server.stop(0.2)


def test_index_survives_a_restart_and_drop_index(start_store):
    store = start_store(None)
    vectors, centers = vector_table(store)
    store.stub.CreateIndex(pb.CreateIndexRequest(table="vecs", index_type=pb.INDEX_TYPE_HNSW))
    add(store.stub, "vecs", json_rows([{"id": 5000, "bucket": 1, "vector": list(map(float, centers[4] + 1e-3))}]))
    store.server.stop(0.2)
    again = start_store(None, data_dir=store.data_dir)
    assert search(again, centers[4] + 1e-3, limit=1).column("id").to_pylist() == [5000]
    dropped = again.stub.DropIndex(pb.DropIndexRequest(table="vecs", name="vector_idx"))
    assert not again.stub.ListIndexes(pb.ListIndexesRequest(table="vecs")).indexes and dropped.version > 0
    with pytest.raises(grpc.RpcError) as caught:
        again.stub.DropIndex(pb.DropIndexRequest(table="vecs", name="vector_idx"))
    assert error_info(caught.value).reason == "INDEX_NOT_FOUND"


def test_a_replaced_or_dropped_index_and_a_dropped_table_let_go_of_their_memory(start_store):
    """A store that creates and drops tables (per-session tables, tests) must not keep their views and loaded
    FAISS indexes until it restarts: the table's owner lets go of what each change replaced."""
    store = start_store(None)
    core = store.server.core
    _, centers = vector_table(store, n=1000)
    owner = core.owner("vecs")
    for kind in (pb.INDEX_TYPE_IVF_FLAT, pb.INDEX_TYPE_HNSW):
        store.stub.CreateIndex(pb.CreateIndexRequest(table="vecs", index_type=kind, num_partitions=8, replace=True))
        add(store.stub, "vecs", json_rows([{"id": 5000 + kind, "bucket": 1, "vector": list(map(float, centers[2]))}]))
        assert search(store, centers[2], limit=1).num_rows == 1
        assert owner.held().indexes == 1  # the replaced index was unloaded
    store.stub.DropIndex(pb.DropIndexRequest(table="vecs", name="vector_idx"))
    assert owner.held().indexes == 0
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="vecs", where="id = 1"))
    store.stub.CreateIndex(pb.CreateIndexRequest(table="vecs", index_type=pb.INDEX_TYPE_FLAT))
    assert search(store, centers[2], limit=1).num_rows == 1 and owner.held().indexes == 1
    assert owner.held().fragments >= 2
    store.stub.CreateTable(pb.CreateTableRequest(name="vecs", mode=pb.CREATE_MODE_OVERWRITE, schema=pb.Schema(
        fields=[pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR, dimensions=DIMS)])))
    held = owner.held()  # an overwritten table starts bare: only its new (empty) version's view, prepared
    assert held.indexes == 0 and held.fragments == 0 and held.views == 1
    handle = weakref.ref(owner)
    del owner
    store.stub.DropTable(pb.DropTableRequest(name="vecs"))
    gc.collect()
    assert handle() is None, "the dropped table's owner (and the views holding its rows) is still referenced"
    assert core.tables.open_owners() == []


def test_several_vector_columns_need_a_name(store):
    store.stub.CreateTable(pb.CreateTableRequest(
        name="two", schema=pb.Schema(fields=[
            pb.Field(name="title", type=pb.DATA_TYPE_STRING), pb.Field(name="body", type=pb.DATA_TYPE_STRING),
            pb.Field(name="title_vec", type=pb.DATA_TYPE_VECTOR, nullable=True),
            pb.Field(name="body_vec", type=pb.DATA_TYPE_VECTOR, nullable=True)]),
        embedding_functions=[function("word-hash", "title", "title_vec", dims=16),
                             function("word-hash", "body", "body_vec", dims=24)]))
    add(store.stub, "two", json_rows([{"title": "apples", "body": "a text about trains"},
                                      {"title": "trains", "body": "a text about apples"}]))
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.Search(pb.SearchRequest(table="two", text="apples"))
    assert error_info(caught.value).reason == "VECTOR_COLUMN_REQUIRED"
    by_title = store.stub.Search(pb.SearchRequest(table="two", text="apples", vector_column="title_vec", limit=1))
    by_body = store.stub.Search(pb.SearchRequest(table="two", text="apples", vector_column="body_vec", limit=1))
    assert by_title.rows.json.rows[0]["title"] == "apples"
    assert by_body.rows.json.rows[0]["title"] == "trains"


def test_image_table_searched_by_text_and_image(start_store, start_embed, tiny_clip, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    colours = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}
    for name, colour in colours.items():
        (images / f"{name}.png").write_bytes(png(colour, pattern=name == "green"))
    embed = start_embed(image_roots=(images,))
    store = start_store(embed)
    clip = function("open-clip", "image_uri", "vector", **tiny_clip.settings())
    store.stub.CreateTable(pb.CreateTableRequest(name="pets", schema=pb.Schema(fields=[
        pb.Field(name="image_uri", type=pb.DATA_TYPE_STRING), pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR,
                                                                       nullable=True)]),
        embedding_functions=[clip]))
    add(store.stub, "pets", json_rows([{"image_uri": str(images / f"{n}.png")} for n in colours]))
    by_image = store.stub.Search(pb.SearchRequest(table="pets", image_bytes=png(colours["blue"]), limit=1))
    assert by_image.rows.json.rows[0]["image_uri"].endswith("blue.png")
    assert by_image.rows.json.rows[0]["_distance"] < 1e-3  # the same picture
    by_text = store.stub.Search(pb.SearchRequest(table="pets", text="a photo of a dog", limit=3))
    assert len(by_text.rows.json.rows) == 3  # random weights: only that it embeds text as a query
    with pytest.raises(grpc.RpcError) as caught:
        add(store.stub, "pets", json_rows([{"image_uri": "/etc/passwd"}]))
    assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.PERMISSION_DENIED)
    assert store.stub.CountRows(pb.CountRowsRequest(table="pets")).count == 3
