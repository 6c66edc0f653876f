"""Hybrid search (vector + full-text, fused in the store) and rerankers, through the Python client: the same
rows, order and `_relevance_score` as LanceDB embedded on the same data for each of its model-free rerankers and
both normalizations; a reranker of the user's own runs in the client; the text half embedded by the column's
function; bad fusion settings refused precisely."""

from __future__ import annotations

import asyncio

import grpc
import lancedb
import lancedb.rerankers as theirs
import numpy as np
import pyarrow as pa
import pytest

import vectorlane
from tests.helpers import error_info
from tests.store_service.test_full_text import docs
from vectorlane.embeddings import get_registry
from vectorlane.pydantic import LanceModel, Vector
from vectorlane.rerankers import LinearCombinationReranker, MRRReranker, Reranker, RRFReranker
from vectorlane.store.v1 import store_service_pb2 as pb

RERANKERS = {
    "default": (None, None),
    "rrf": (lambda: RRFReranker(), lambda: theirs.RRFReranker()),
    "rrf k=5, all scores": (lambda: RRFReranker(K=5, return_score="all"),
                            lambda: theirs.RRFReranker(K=5, return_score="all")),
    "linear": (lambda: LinearCombinationReranker(), lambda: theirs.LinearCombinationReranker()),
    "linear 0.3": (lambda: LinearCombinationReranker(weight=0.3, fill=0.5),
                   lambda: theirs.LinearCombinationReranker(weight=0.3, fill=0.5)),
    "mrr": (lambda: MRRReranker(), lambda: theirs.MRRReranker()),
    "mrr 0.8": (lambda: MRRReranker(weight_vector=0.8, weight_fts=0.2),
                lambda: theirs.MRRReranker(weight_vector=0.8, weight_fts=0.2)),
}


def vector_docs(count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = docs(count)
    for row in rows:
        row["vector"] = rng.standard_normal(8).astype("float32").tolist()
    return rows


@pytest.fixture
def tables(start_store, tmp_path):
    store = start_store()
    db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    rows = vector_docs(300)
    ours = db.create_table("t", data=rows)
    ours.create_fts_index("text")
    embedded = lancedb.connect(str(tmp_path / "embedded")).create_table("t", data=rows)
    embedded.create_fts_index("text")
    yield store, ours, embedded
    db.close()


def same(ours: pa.Table, expected: pa.Table, normalize: str) -> None:
    assert ours.column("id").to_pylist() == expected.column("id").to_pylist()
    assert np.allclose(ours.column("_relevance_score").to_numpy(), expected.column("_relevance_score").to_numpy())
    for name in ("_distance", "_score"):
        assert (name in ours.column_names) == (name in expected.column_names)
        if name in ours.column_names and normalize == "score":  # (LanceDB returns the ranks for "rank")
            assert np.allclose(ours.column(name).to_numpy(zero_copy_only=False).astype(float),
                               expected.column(name).to_numpy(zero_copy_only=False).astype(float), equal_nan=True)


@pytest.mark.parametrize("normalize", ["score", "rank"])
@pytest.mark.parametrize("name", sorted(RERANKERS))
def test_hybrid_equals_lancedb_embedded_for_each_fusion_reranker(tables, name, normalize):
    _, ours, embedded = tables
    query = np.random.default_rng(1).standard_normal(8).astype("float32").tolist()
    mine, their = RERANKERS[name]
    for where, offset in (("", 0), ("`group` != 2", 3)):
        a = ours.search(query_type="hybrid").vector(query).text("puppy tiger").limit(9).offset(offset)
        b = embedded.search(query_type="hybrid").vector(query).text("puppy tiger").limit(9).offset(offset)
        if where:
            a, b = a.where(where), b.where(where)
        if mine is not None:
            a, b = a.rerank(mine(), normalize=normalize), b.rerank(their(), normalize=normalize)
        found, expected = a.to_arrow(), b.to_arrow()
        assert found.num_rows == 9
        same(found, expected, normalize)
        relevance = found.column("_relevance_score").to_numpy()
        assert np.all(np.diff(relevance) <= 0)


def test_all_scores_are_the_halves_originals_and_an_empty_half_still_fuses(tables):
    _, ours, _ = tables
    query = np.random.default_rng(2).standard_normal(8).astype("float32").tolist()
    fused = ours.search(query_type="hybrid").vector(query).text("puppy").with_row_id(True) \
        .rerank(RRFReranker(return_score="all")).limit(20).to_list()
    vector = {r["_rowid"]: r["_distance"] for r in ours.search(query).with_row_id(True).limit(20).to_list()}
    text = {r["_rowid"]: r["_score"] for r in ours.search("puppy", query_type="fts").with_row_id(True)
            .limit(20).to_list()}
    assert any(r["_rowid"] in vector and r["_rowid"] in text for r in fused)
    for row in fused:
        assert row["_distance"] == vector.get(row["_rowid"])
        assert row["_score"] == text.get(row["_rowid"])
    nothing = ours.search(query_type="hybrid").vector(query).text("abcxyz" * 100).limit(5).to_arrow()
    assert nothing.num_rows == 5 and "_relevance_score" in nothing.column_names


class ById(Reranker):
    """A reranker of the user's own: highest id first."""

    def rerank_hybrid(self, query, vector_results, fts_results):
        merged = self.merge_results(vector_results, fts_results)
        merged = merged.append_column("_relevance_score", pa.array(merged.column("id").to_numpy() / 1000.0,
                                                                     type=pa.float32()))
        return self._keep_relevance_score(merged.sort_by([("_relevance_score", "descending")]))

    def rerank_fts(self, query, fts_results):
        scored = fts_results.append_column("_relevance_score", pa.array(fts_results.column("id").to_numpy() / 1000.0,
                                                                         type=pa.float32()))
        return scored.sort_by([("_relevance_score", "descending")])


class TheirById(theirs.Reranker):
    rerank_hybrid = ById.rerank_hybrid
    rerank_fts = ById.rerank_fts


def test_a_reranker_of_ones_own_runs_in_the_client_as_in_lancedb(tables):
    _, ours, embedded = tables
    query = np.random.default_rng(3).standard_normal(8).astype("float32").tolist()
    found = ours.search(query_type="hybrid").vector(query).text("puppy").rerank(ById()).limit(6).to_arrow()
    expected = embedded.search(query_type="hybrid").vector(query).text("puppy").rerank(TheirById()).limit(6) \
        .to_arrow()
    assert found.column("id").to_pylist() == expected.column("id").to_pylist()
    assert found.column("id").to_pylist() == sorted(found.column("id").to_pylist(), reverse=True)
    text = ours.search("puppy", query_type="fts").rerank(ById()).limit(50).to_arrow()
    assert text.column("id").to_pylist() == sorted(text.column("id").to_pylist(), reverse=True)
    with pytest.raises(ValueError):  # a vector query reranks only with the query's text
        ours.search(query).rerank(ById())


def test_the_vector_half_of_a_text_query_is_embedded_by_the_columns_function(store):
    db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    func = get_registry().get("word-hash").create(dims=16)

    class Doc(LanceModel):
        id: int
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    table.add([{"id": i, "text": t} for i, t in enumerate(["red apple pie", "blue whale song", "fast red car",
                                                            "green apple tart", "quiet blue lake"])])
    table.create_fts_index("text")
    fused = table.search("red apple", query_type="hybrid").limit(5).to_arrow()
    by_vector = table.search("red apple").limit(5).to_arrow().column("id").to_pylist()  # embedded by word-hash
    by_text = table.search("red apple", query_type="fts").limit(5).to_arrow().column("id").to_pylist()
    rrf = {i: sum(1 / (60 + ids.index(i) + 1) for ids in (by_vector, by_text) if i in ids) for i in range(5)}
    assert np.allclose(fused.column("_relevance_score").to_numpy(), [rrf[i] for i in fused.column("id").to_pylist()])
    assert sorted(rrf.values(), reverse=True) == pytest.approx(fused.column("_relevance_score").to_pylist())
    models = table.search("blue", query_type="hybrid").limit(2).to_pydantic(Doc)
    assert all(isinstance(m, Doc) for m in models) and len(models) == 2
    with pytest.raises(ValueError):
        table.search("red", query_type="hybrid").vector([0.0] * 16).to_arrow()
    with pytest.raises(ValueError):
        table.search(query_type="hybrid").vector([0.0] * 16).to_arrow()


BAD = {
    "k zero": (pb.Fusion(k=0.0), "INVALID_FUSION"),
    "k huge": (pb.Fusion(k=1e9), "INVALID_FUSION"),
    "weight above one": (pb.Fusion(method=pb.FUSION_METHOD_LINEAR, weight=2.0), "INVALID_FUSION"),
    "NaN fill": (pb.Fusion(method=pb.FUSION_METHOD_LINEAR, fill=float("nan")), "INVALID_FUSION"),
    "weights not summing to one": (pb.Fusion(method=pb.FUSION_METHOD_MRR, weight_vector=0.9, weight_fts=0.9),
                                   "INVALID_FUSION"),
    "unknown method": (pb.Fusion(method=99), "INVALID_ENUM"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_fusion_settings_are_refused(tables, name):
    store, ours, _ = tables
    fusion, reason = BAD[name]
    with pytest.raises(grpc.RpcError) as excinfo:
        store.stub.Search(pb.SearchRequest(table="t", vector=pb.Vector(values=[0.0] * 8),
                                           full_text=pb.FullTextQuery(text="puppy"), fusion=fusion))
    assert error_info(excinfo.value).reason == reason
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_fusion_without_a_hybrid_search_and_hybrid_with_several_vectors_are_refused(tables):
    store, _, _ = tables
    for request in (pb.SearchRequest(table="t", full_text=pb.FullTextQuery(text="puppy"), fusion=pb.Fusion()),
                    pb.SearchRequest(table="t", vector=pb.Vector(values=[0.0] * 8), fusion=pb.Fusion()),
                    pb.SearchRequest(table="t", vector=pb.Vector(values=[0.0] * 8), fast_search=True),
                    pb.SearchRequest(table="t", full_text=pb.FullTextQuery(text="puppy"),
                                     vectors=pb.Vectors(vectors=[pb.Vector(values=[0.0] * 8)] * 2))):
        with pytest.raises(grpc.RpcError) as excinfo:
            store.stub.Search(request)
        assert error_info(excinfo.value).reason == "UNSUPPORTED_SEARCH"


def test_async_nearest_to_then_nearest_to_text_is_a_hybrid_search(tables):
    store, ours, _ = tables
    query = np.random.default_rng(4).standard_normal(8).astype("float32").tolist()

    async def scenario() -> tuple[pa.Table, pa.Table]:
        db = await vectorlane.connect_async(f"grpc://{store.target}")
        table = await db.open_table("t")
        fused = await table.query().nearest_to(query).nearest_to_text("puppy").limit(4).to_arrow()
        reverse = await table.query().nearest_to_text("puppy").nearest_to(query).limit(4).to_arrow()
        return fused, reverse

    fused, reverse = asyncio.run(scenario())
    same_sync = ours.search(query_type="hybrid").vector(query).text("puppy").limit(4).to_arrow()
    assert fused.column("id").to_pylist() == same_sync.column("id").to_pylist()
    assert reverse.column("id").to_pylist() == same_sync.column("id").to_pylist()
    assert "_rowid" not in fused.column_names


def test_lancedbs_static_helpers_normalize_and_combine():
    from vectorlane.query import LanceHybridQueryBuilder

    normalized = LanceHybridQueryBuilder._normalize_scores(pa.array([2.0, 10.0, 20.0]))
    assert normalized.to_pylist() == pytest.approx([0.0, 8 / 18, 1.0])
    assert LanceHybridQueryBuilder._normalize_scores(pa.array([0.0, 0.0]), True).to_pylist() == [1.0, 1.0]
    empty = pa.table({"text": pa.array([], pa.string()), "_rowid": pa.array([], pa.uint64()),
                      "_distance": pa.array([], pa.float32())})
    empty_fts = empty.rename_columns(["text", "_rowid", "_score"])
    combined = LanceHybridQueryBuilder._combine_hybrid_results(
        fts_results=empty_fts, vector_results=empty, norm="score", fts_query="x", reranker=RRFReranker(), limit=10,
        with_row_ids=False)
    assert combined.num_rows == 0 and "_relevance_score" in combined.column_names
    assert "_rowid" not in combined.column_names
