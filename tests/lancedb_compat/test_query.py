"""What LanceDB's `test_query.py` promises about queries: vector search with filters, limits, offsets,
distances and metrics, several query vectors at once, row ids, batches, takes, timeouts."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas.testing as tm
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from vectorlane.pydantic import LanceModel, Vector


@pytest.fixture
def table(mem_db):
    return mem_db.create_table("test", pa.table({
        "vector": pa.array([[1, 2], [3, 4]], type=pa.list_(pa.float32(), list_size=2)),
        "id": pa.array([1, 2]), "str_field": pa.array(["a", "b"]), "float_field": pa.array([1.0, 2.0])}))


def test_results_as_models(table):
    class TestModel(LanceModel):
        vector: Vector(2)
        id: int
        str_field: str
        float_field: float

    results = table.search([0, 0], vector_column_name="vector").limit(1).to_pydantic(TestModel)
    assert len(results) == 1 and isinstance(results[0], TestModel)
    assert (results[0].id, results[0].vector, results[0].str_field, results[0].float_field) == (1, [1, 2], "a", 1.0)


def test_offset(table):
    assert len(table.search([0, 0], vector_column_name="vector").to_pandas()) == 2
    assert len(table.search([0, 0], vector_column_name="vector").offset(1).to_pandas()) == 1


def test_select_and_limit(table):
    rows = table.search([0, 0], vector_column_name="vector").limit(1).select(["id", "vector"]).to_list()
    assert rows[0]["id"] == 1 and all(np.array(rows[0]["vector"]) == [1, 2])


def test_several_query_vectors_in_one_search(table):
    results = table.search([np.array([1, 2]), np.array([4, 5])]).limit(1).to_list()
    assert len(results) == 2
    by_query = {r["query_index"]: r for r in results}
    assert by_query[0]["id"] == 1 and by_query[1]["id"] == 2


def test_several_query_vectors_with_a_filter_and_limit(table):
    results = table.search([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]]).where("id = 2").limit(5).to_arrow()
    assert results["query_index"].to_pylist() == [0, 1, 2] and results["id"].to_pylist() == [2, 2, 2]


def test_with_row_id(table):
    rows = table.search().with_row_id(True).to_arrow()
    assert "_rowid" in rows.column_names and rows["_rowid"].to_pylist() == [0, 1]


def test_repeated_where_combines_with_and(table):
    rows = table.search().where("id > 0").where("str_field = 'b'").to_list()
    assert [r["id"] for r in rows] == [2]


def test_distance_range(table):
    q = [0, 0]
    distances = table.search(q).to_arrow()["_distance"].to_pylist()
    low, high = distances[0], distances[-1]
    assert len(table.search(q).distance_range(upper_bound=low).to_arrow()) == 0
    assert table.search(q).distance_range(lower_bound=high).to_arrow()["_distance"].to_pylist() == [high]
    assert table.search(q).distance_range(upper_bound=high).to_arrow()["_distance"].to_pylist() == [low]
    assert table.search(q).distance_range(lower_bound=low).to_arrow()["_distance"].to_pylist() == [low, high]


def test_a_vector_search_needs_a_limit(table):
    for limit in (0, None):
        with pytest.raises(ValueError):
            table.search([0, 0], vector_column_name="vector").limit(limit).select(["id", "vector"]).to_list()


def test_results_in_batches(table):
    batches = list(table.search([0, 0], vector_column_name="vector").limit(2).select(["id", "vector"]).to_batches(1))
    assert len(batches) == 2 and all(isinstance(b, pa.RecordBatch) for b in batches)
    assert batches[0].to_pandas()["id"][0] == 1 and all(batches[1].to_pandas()["vector"][0] == [3.0, 4.0])
    whole = list(table.search([0, 0]).limit(2).select(["id", "vector"]).to_batches(2))
    assert len(whole) == 1 and whole[0].to_pandas()["id"].tolist() == [1, 2]


def test_dynamic_projection(table):
    """LanceDB's select({"id2": "id * 2"}): computed from each result row, in every kind of query."""
    plain = table.search().select({"id2": "id * 2", "id": "id"}).to_arrow()
    assert plain.column_names == ["id2", "id"] and plain["id2"].to_pylist() == [2, 4]
    nearest = table.search([3, 4]).select({"shout": "upper(str_field)"}).limit(1).to_arrow()
    assert nearest.column_names == ["shout", "_distance"] and nearest["shout"].to_pylist() == ["B"]
    with_ids = table.search().where("id = 1").select({"f": "float_field + 0.5"}).with_row_id(True).to_arrow()
    assert with_ids.column_names == ["f", "_rowid"] and with_ids["f"].to_pylist() == [1.5]
    taken = table.take_offsets([1]).select({"both": "concat(str_field, '-', id)"}).to_arrow()
    assert taken["both"].to_pylist() == ["b-2"]
    empty = table.search().where("id > 10").select({"id2": "id * 2"}).to_arrow()
    assert empty.num_rows == 0 and empty.schema.field("id2").type == pa.int64()
    with pytest.raises(ValueError, match="is not one the store lets through"):
        table.search().select({"x": "repeat(str_field, 1000000)"}).to_arrow()


def test_filter(table):
    rows = table.search([0, 0], vector_column_name="vector").where("id = 2").to_list()
    assert rows[0]["id"] == 2 and all(np.array(rows[0]["vector"]) == [3, 4])


def test_nprobes_bounds_are_checked(table):
    query = table.search([0, 0], vector_column_name="vector")
    with pytest.raises(ValueError, match="minimum_nprobes must be greater than 0"):
        query.minimum_nprobes(0).to_list()
    with pytest.raises(ValueError, match="maximum_nprobes must be greater than or equal to minimum_nprobes"):
        table.search([0, 0], vector_column_name="vector").maximum_nprobes(5).to_list()
    with pytest.raises(ValueError, match="minimum_nprobes must be less than or equal to maximum_nprobes"):
        table.search([0, 0], vector_column_name="vector").minimum_nprobes(100).to_list()
    table.search([0, 0]).nprobes(30).to_list()
    table.search([0, 0]).minimum_nprobes(2).maximum_nprobes(4).to_list()
    table.search([0, 0]).nprobes(30).maximum_nprobes(20).minimum_nprobes(20).to_list()


def test_prefilter_and_postfilter(table):
    df = table.search([0, 0]).where("id = 2", prefilter=True).limit(1).to_pandas()
    assert df["id"].values[0] == 2 and all(df["vector"].values[0] == [3, 4])
    assert len(table.search([0, 0]).where("id = 2", prefilter=False).limit(1).to_pandas()) == 0
    assert table.search([0, 0]).where("id = 2").limit(1).to_pandas()["id"].values[0] == 2


def test_metric(table):
    query = [4, 8]
    tm.assert_frame_equal(table.search(query).to_pandas(), table.search(query).distance_type("l2").to_pandas())
    cosine = table.search(query).distance_type("cosine").limit(1).to_pandas()
    expected = 1 - np.dot(query, cosine.vector[0]) / (np.linalg.norm(query) * np.linalg.norm(cosine.vector[0]))
    assert cosine._distance[0] == pytest.approx(expected, abs=1e-6) and 0 <= cosine._distance[0] <= 1


def test_query_and_vector_search_builders(table):
    assert table.query().where("id = 1").to_list()[0]["str_field"] == "a"
    assert table.vector_search([3, 4]).limit(1).to_list()[0]["id"] == 2


def test_a_timeout_of_zero_times_out_in_lancedbs_words(mem_db):
    vectors = pa.FixedSizeListArray.from_arrays(pa.array([0.1, 0.2, 0.3, 0.4], pa.float32()), 2)
    table = mem_db.create_table("timed", pa.table({"text": ["alpha", "beta"], "vector": vectors}))
    table.create_fts_index("text")
    for query in (table.search().where("text = 'alpha'"), table.search([0.0, 0.0]),
                  table.search("alpha", query_type="fts"), table.search(query_type="hybrid").vector([0.0, 0.0])
                  .text("alpha")):
        with pytest.raises(TimeoutError, match="Query timeout"):
            query.to_arrow(timeout=timedelta(0))
    assert table.search("alpha", query_type="fts").to_arrow(timeout=timedelta(seconds=30)).num_rows == 1


def test_take_by_offset_and_by_row_id(mem_db):
    table = mem_db.create_table("test", pa.table({"idx": range(100), "label": [str(i) for i in range(100)]}))
    assert sorted(table.take_offsets([5, 2, 17]).to_pandas()["idx"].to_list()) == [2, 5, 17]
    assert sorted(table.take_row_ids([5, 2, 17]).to_pandas()["idx"].to_list()) == [2, 5, 17]
    batches = list(table.take_row_ids([5, 2, 17]).select(["label"]).to_batches())
    assert all(b.schema.names == ["label"] for b in batches)
    assert sorted(v for b in batches for v in b.column("label").to_pylist()) == ["17", "2", "5"]


def test_take_offsets_count_past_deleted_rows(mem_db):
    table = mem_db.create_table("test", pa.table({"idx": range(10)}))
    table.delete("idx < 5")
    assert table.take_offsets([0, 4]).to_arrow()["idx"].to_pylist() == [5, 9]
    with pytest.raises(ValueError):
        table.take_offsets([5]).to_arrow()


def test_searching_an_empty_table_finds_nothing(mem_db):
    schema = pa.schema([pa.field("vector", pa.list_(pa.float32(), 2)), pa.field("id", pa.int64())])
    assert mem_db.create_table("test_empty_search", schema=schema).search([1.0, 2.0]).limit(5).to_list() == []


def test_an_empty_query_vector_is_refused(table):
    for empty in ([], [[]]):
        with pytest.raises(ValueError, match="non-empty"):
            table.search(empty)


def test_random_vectors_search_their_own_row_first(mem_db):
    data = pa.table({"text": ["a", "b"], "vector": pa.FixedSizeListArray.from_arrays(
        pc.random(4).cast(pa.float32()), 2)})
    table = mem_db.create_table("test", data)
    first = data["vector"][1].as_py()
    assert table.search(first).limit(1).to_list()[0]["text"] == "b"


def test_full_text_and_hybrid_queries(mem_db):
    """LanceDB's FTS and hybrid queries: BM25 `_score`s, query objects, a hybrid search fused by RRF."""
    from vectorlane.query import MatchQuery

    table = mem_db.create_table("docs", pa.table({
        "id": pa.array([1, 2, 3]), "text": pa.array(["puppy runs fast", "a cat sleeps", "puppy and cat play"]),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array([1.0, 0.0, 0.0, 1.0, 0.7, 0.7], pa.float32()), 2)}))
    table.create_fts_index("text")
    found = table.search("puppy", query_type="fts").select(["id"]).to_list()
    assert sorted(r["id"] for r in found) == [1, 3] and all(r["_score"] > 0 for r in found)
    assert [r["id"] for r in table.search(MatchQuery("cat", "text")).select(["id"]).limit(1).to_list()] in ([2], [3])
    hybrid = table.search(query_type="hybrid").vector([0.0, 1.0]).text("cat").select(["id"]).to_list()
    assert hybrid[0]["id"] in (2, 3) and "_relevance_score" in hybrid[0]
    assert [t.text for t in table.tokenize("Puppies running", column="text")] == ["puppi", "run"]


def test_explain_plan(mem_db):
    """LanceDB's explain_plan / analyze_plan: the store's own steps for the vector half (FAISS or an exact
    scan), Lance's plan for a full-text search."""
    table = mem_db.create_table("docs", pa.table({"id": pa.array([1, 2]), "text": pa.array(["puppy", "cat"]),
                                                  "vector": pa.FixedSizeListArray.from_arrays(
                                                      pa.array([1.0, 0.0, 0.0, 1.0], pa.float32()), 2)}))
    table.create_fts_index("text")
    assert "ExactScan" in table.search([1.0, 0.0]).explain_plan()
    assert "MatchQuery" in table.search("puppy", query_type="fts").explain_plan(verbose=True)
    assert "AnalyzeExec" in table.search("puppy", query_type="fts").analyze_plan()


def test_output_schema(table):
    """LanceDB's query.output_schema(): the results' schema, without their rows."""
    assert table.search(None).output_schema() == table.schema
    assert table.search(None).select({"bl": "id * 2"}).output_schema() == pa.schema({"bl": pa.int64()})
    assert table.search([1, 2]).select(["id"]).output_schema() == pa.schema({"id": pa.int64(),
                                                                             "_distance": pa.float32()})
    assert table.take_offsets([0]).select(["str_field"]).output_schema() == pa.schema({"str_field": pa.string()})
    assert table.take_offsets([0]).select({"s": "upper(str_field)"}).output_schema().names == ["s"]


@pytest.mark.parametrize("value_type", [pa.float16(), pa.float32(), pa.float64()])
def test_multivector_search(mem_db, value_type):
    """LanceDB's MultiVector columns: a query of several vectors ranks rows by MaxSim, exactly or through an
    index of every row's vectors; a query of one vector `m` times is `m` times as far."""
    data = pa.table({"vector": pa.array([[[i, i + 1], [i + 2, i + 3]] for i in range(256)],
                                        type=pa.list_(pa.list_(value_type, 2))),
                     "id": pa.array(range(1, 257))})
    table = mem_db.create_table("multi", data)
    exact = table.search([1, 2]).to_arrow()
    twice = table.search([[1, 2], [1, 2]]).to_arrow()
    assert exact["id"].to_pylist() == twice["id"].to_pylist()
    assert twice["_distance"].to_pylist() == [2 * d for d in exact["_distance"].to_pylist()]
    assert exact["_distance"].to_pylist() == sorted(exact["_distance"].to_pylist())
    table.create_index(metric="cosine", vector_column_name="vector", index_type="IVF_PQ", num_partitions=1,
                       num_sub_vectors=2)
    indexed = table.search([1, 2]).to_arrow()
    assert indexed["id"].to_pylist()[:3] == exact["id"].to_pylist()[:3]
    assert table.search([[1, 2], [1, 2]]).to_arrow()["_distance"][0].as_py() == 2 * indexed["_distance"][0].as_py()
    assert table.search([[1, 2], [3, 4]]).where("id > 100").limit(3).to_arrow()["id"].to_pylist()[0] > 100
    with pytest.raises(ValueError, match="dimensions"):
        table.search([1, 2, 3]).to_arrow()
    with pytest.raises(ValueError, match="different lengths"):
        table.search([[1, 2], [1, 2, 3]]).to_arrow()
    with pytest.raises(ValueError, match="cosine"):
        table.search([1, 2]).distance_type("l2").to_arrow()
