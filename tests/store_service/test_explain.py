"""`explain_plan` / `analyze_plan`: a vector search's steps as the store takes them (an exact scan, or FAISS
once the column has an index; filters before or after), a full-text search's Lance plan (a prefilter pushed
into the scan), a hybrid search's both with the fusion; analyzing runs the search and says what it measured;
no plan names where the store keeps its data; bad searches are refused as Search refuses them."""

from __future__ import annotations

import random

import grpc
import pytest

import vectorlane
from tests.helpers import error_info
from vectorlane.index import HnswFlat
from vectorlane.store.v1 import store_service_pb2 as pb


@pytest.fixture
def table(start_store, tmp_path):
    store = start_store(data_dir=tmp_path / "vector lane, data")  # a space and a comma: the plan hides it too
    db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    rng = random.Random(0)
    made = db.create_table("t", data=[{"id": i, "text": rng.choice(["dog cat", "puppy dog", "bird"]),
                                       "vector": [rng.random(), rng.random()]} for i in range(200)])
    made.create_fts_index("text")
    made.store = store
    yield made
    db.close()


def test_a_vector_search_plan_is_the_store_s_own_steps(table):
    exact = table.search([0.1, 0.2]).where("id > 3").limit(5).explain_plan(verbose=True)
    lines = exact.splitlines()
    assert lines[0].startswith("VectorSearch: table=t, version=") and "metric=l2, k=5" in lines[0]
    assert lines[1].startswith("  ExactScan: rows=200") and "no index on the column" in lines[1]
    assert "  Prefilter: id > 3" in lines[2]

    table.create_index("vector", config=HnswFlat(m=16))
    after = table.search([0.1, 0.2]).where("id > 3", prefilter=False).limit(5).offset(2).explain_plan()
    assert "FaissSearch: index=vector_idx, type=HNSW, m=16" in after and "k=7" in after
    assert "Postfilter: id > 3" in after and "Prefilter" not in after
    exact_anyway = table.search([0.1, 0.2]).bypass_vector_index().explain_plan()
    assert "ExactScan" in exact_anyway and "bypass_vector_index" in exact_anyway

    analyzed = table.search([0.1, 0.2]).limit(4).analyze_plan()
    assert "metrics=[output_rows=4, elapsed=" in analyzed.splitlines()[0]


def test_a_full_text_plan_is_lance_s_with_a_prefilter_pushed_into_the_scan(table):
    before = table.search("dog", query_type="fts").where("id = 1", prefilter=True).limit(2).explain_plan(True)
    after = table.search("dog", query_type="fts").where("id = 1", prefilter=False).limit(2).explain_plan(True)
    assert "MatchQuery: column=text, query=[dog]" in before
    assert "full_filter=id = Int64(1)" in before and "full_filter=id = Int64(1)" not in after
    assert "FilterExec" in after
    analyzed = table.search("dog", query_type="fts").limit(3).analyze_plan()
    assert "AnalyzeExec" in analyzed and "metrics=[output_rows=3" in analyzed
    store_dir = str(table.store.data_dir)
    for plan in (before, after, analyzed):
        assert "vector lane" not in plan and store_dir.lstrip("/") not in plan and "uri=<table t>" in plan


def test_a_hybrid_plan_shows_both_halves_and_the_fusion(table):
    plan = table.search(query_type="hybrid").vector([0.0, 0.0]).text("dog").limit(3).offset(1).explain_plan()
    vector, text = plan.split("FTS Search Plan:\n")
    assert vector.startswith("Vector Search Plan:\nVectorSearch:") and "k=4 (limit 4 + offset 0)" in vector
    assert "MatchQuery" in text and "fetch=4" in text and text.rstrip().endswith("Fusion: rrf, normalize=score")
    analyzed = table.search(query_type="hybrid").vector([0.0, 0.0]).text("dog").limit(2).analyze_plan()
    assert "AnalyzeExec" in analyzed and "metrics=[output_rows=2" in analyzed


def test_explaining_a_bad_search_is_refused_as_searching_it_is(table):
    with pytest.raises(ValueError) as plain:
        table.search().where("id > 1").explain_plan()
    assert "explains a search" in str(plain.value)
    stub = table.store.stub
    for search, reason in [
        (pb.SearchRequest(table="t"), "UNSUPPORTED_SEARCH"),
        (pb.SearchRequest(table="t", vector=pb.Vector(values=[0.1, 0.2]), where="id >"), "INVALID_FILTER"),
        (pb.SearchRequest(table="t", vector=pb.Vector(values=[0.1, 0.2]), limit=10 ** 6), "LIMIT_TOO_LARGE"),
        (pb.SearchRequest(table="t", full_text=pb.FullTextQuery(text="dog"), where="nope = 1"), "INVALID_FILTER"),
        (pb.SearchRequest(table="t", vector=pb.Vector(values=[0.1, 0.2]), select=["nope"]), "UNKNOWN_COLUMN"),
        (pb.SearchRequest(table="t", vectors=pb.Vectors(vectors=[pb.Vector(values=[0.1, 0.2])]),
                          full_text=pb.FullTextQuery(text="dog")), "UNSUPPORTED_SEARCH"),
        (pb.SearchRequest(table="t", vector=pb.Vector(values=[0.1, 0.2]), fast_search=True), "UNSUPPORTED_SEARCH"),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            stub.ExplainSearch(pb.ExplainSearchRequest(search=search), timeout=30)
        assert (refused.value.code(), error_info(refused.value).reason) == \
            (grpc.StatusCode.INVALID_ARGUMENT, reason), search
    assert table.search([0.1, 0.2]).limit(2).to_arrow().num_rows == 2
