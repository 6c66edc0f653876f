"""Full-text search (BM25) on Lance's inverted index, LanceDB's API through the Python client: the index is
built, listed, replaced, caught up, dropped and kept across restarts and compaction; every query object,
filters before and after, select/offset/row ids; scores equal LanceDB embedded's on the same data; LanceDB
searches vectorlane's index and the reverse; a corrupt index file is DATA_LOSS; bad input is refused
precisely with the table intact."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import grpc
import lancedb
import pyarrow as pa
import pytest

import vectorlane
from store_service.server import StoreServer
from tests.helpers import error_info
from tests.store_service.conftest import BASE
from vectorlane.errors import FailedPreconditionError, InvalidArgumentError
from vectorlane.query import BooleanQuery, BoostQuery, MatchQuery, MultiMatchQuery, Occur, PhraseQuery
from vectorlane.store.v1 import store_service_pb2 as pb

WORDS = ("apple banana cherry dog elephant fox grape horse iguana jaguar kiwi lemon mango night ocean puppy "
         "quick river sun tiger umbrella violet whale yellow zebra").split()


def docs(count: int, seed: int = 0, start: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": start + i, "text": " ".join(rng.choices(WORDS, k=rng.randint(3, 12))),
             "title": " ".join(rng.choices(WORDS, k=2)), "group": i % 3, "vector": [float(i), 1.0]}
            for i in range(count)]


def reason_of(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.reason


def ranked(table: pa.Table) -> list[tuple[int, float]]:
    return [(i, round(s, 5)) for i, s in zip(table.column("id").to_pylist(), table.column("_score").to_pylist())]


def test_fts_scores_equal_lancedb_embedded_on_the_same_data_and_each_searches_the_others_index(db, tmp_path):
    rows = docs(300)
    table = db.create_table("t", data=rows)
    made = table.create_fts_index("text", with_position=True)
    assert (made.name, made.index_type, made.columns) == ("text_idx", "FTS", ["text"])
    assert made.parameters["with_position"] is True

    embedded = lancedb.connect(str(tmp_path / "embedded")).create_table("t", data=rows)
    embedded.create_fts_index("text", with_position=True)
    for query in ("puppy", "quick fox river", '"tiger umbrella"'):
        ours = table.search(query, query_type="fts").limit(20).to_arrow()
        theirs = embedded.search(query, query_type="fts").limit(20).to_arrow()
        assert ours.num_rows > 0
        assert ranked(ours) == ranked(theirs)  # the same Lance index underneath: the same BM25 scores, order
        assert ours.column_names == ["id", "text", "title", "group", "vector", "_score"]

    # LanceDB opens vectorlane's table and searches its index ...
    theirs = lancedb.connect(str(db.store.data_dir)).open_table("t")
    assert [i.index_type for i in theirs.list_indices()] == ["FTS"]
    assert ranked(theirs.search("puppy", query_type="fts").limit(10).to_arrow()) == \
        ranked(table.search("puppy", query_type="fts").limit(10).to_arrow())
    # ... and vectorlane serves a table LanceDB indexed
    other = lancedb.connect(str(db.store.data_dir)).create_table("lancedb_made", data=rows)
    other.create_fts_index("title")
    served = db.open_table("lancedb_made")
    assert [(i.name, i.index_type) for i in served.list_indices()] == [("title_idx", "FTS")]
    assert ranked(served.search("dog", query_type="fts").limit(10).to_arrow()) == \
        ranked(other.search("dog", query_type="fts").limit(10).to_arrow())


def test_query_objects_filters_select_offset_and_row_ids(db):
    table = db.create_table("t", data=docs(200))
    table.create_fts_index("text", with_position=True)
    table.create_index("title", config=vectorlane.index.FTS())
    everything = table.search("puppy", query_type="fts", fts_columns="text").limit(200).to_arrow()
    scores = everything.column("_score").to_pylist()
    assert scores == sorted(scores, reverse=True) and len(scores) > 5
    assert all("puppy" in t for t in everything.column("text").to_pylist())

    # offset and limit page through the same ranking
    page = table.search("puppy", query_type="fts", fts_columns="text").offset(2).limit(3).to_arrow()
    assert [s for _, s in ranked(page)] == [s for _, s in ranked(everything)][2:5]  # (ties in any order)
    # prefilter: only group 1 rows, still the best of them; postfilter: the top rows, then filtered
    pre = table.search("puppy", query_type="fts", fts_columns="text").where("`group` = 1").limit(5).to_arrow()
    best_of_group = [r for r in ranked(everything) if everything.column("group")[[x[0] for x in
                     ranked(everything)].index(r[0])].as_py() == 1][:5]
    assert [s for _, s in ranked(pre)] == [s for _, s in best_of_group]
    post = table.search("puppy", query_type="fts", fts_columns="text").where("`group` = 1", prefilter=False) \
        .limit(5).to_arrow()
    assert {i for i, _ in ranked(post)} <= {i for i, _ in ranked(everything)[:5]}
    picked = table.search("puppy", query_type="fts", fts_columns="text").select(["id"]).with_row_id(True) \
        .limit(3).to_arrow()
    assert picked.column_names == ["id", "_rowid", "_score"]

    fuzzy = table.search(MatchQuery("pupp", "text", fuzziness=1)).limit(200).to_arrow()
    assert set(fuzzy.column("id").to_pylist()) == set(everything.column("id").to_pylist())
    both = table.search(MatchQuery("puppy tiger", "text", operator="AND")).limit(200).to_arrow()
    assert all("puppy" in t and "tiger" in t for t in both.column("text").to_pylist())
    phrase = table.search(PhraseQuery("puppy tiger", "text")).limit(200).to_arrow()
    assert all("puppy tiger" in t for t in phrase.column("text").to_pylist())
    quoted = table.search("puppy tiger", query_type="fts", fts_columns="text").phrase_query().limit(200)
    assert quoted.to_arrow().column("id").to_pylist() == phrase.column("id").to_pylist()
    without = table.search(BooleanQuery([(Occur.MUST, MatchQuery("puppy", "text")),
                                         (Occur.MUST_NOT, MatchQuery("tiger", "text"))])).limit(200).to_arrow()
    assert without.num_rows > 0 and all("tiger" not in t for t in without.column("text").to_pylist())
    anded = table.search(MatchQuery("puppy", "text") & MatchQuery("tiger", "text")).limit(200).to_arrow()
    assert set(anded.column("id").to_pylist()) == set(both.column("id").to_pylist())
    boosted = table.search(BoostQuery(MatchQuery("puppy", "text"), MatchQuery("tiger", "text"),
                                      negative_boost=0.1)).limit(200).to_arrow()
    assert set(boosted.column("id").to_pylist()) == set(everything.column("id").to_pylist())
    multi = table.search(MultiMatchQuery("zebra", ["text", "title"])).limit(300).to_arrow()
    titles = table.search("zebra", query_type="fts", fts_columns="title").limit(300).to_arrow()
    assert set(titles.column("id").to_pylist()) <= set(multi.column("id").to_pylist())
    unnamed = table.search("zebra", query_type="fts").limit(300).to_arrow()  # as LanceDB: every indexed column
    assert set(unnamed.column("id").to_pylist()) == set(multi.column("id").to_pylist())


def test_rows_added_later_deleted_rows_optimize_compaction_and_restart(start_store):
    store = start_store()
    db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    table = db.create_table("t", data=docs(50))
    table.create_fts_index("text")
    table.add([{"id": 1000, "text": "xylophone puppy", "title": "new", "group": 0, "vector": [0.0, 0.0]}])
    table.delete("id = 3")
    found = table.search("xylophone", query_type="fts").to_arrow()
    assert found.column("id").to_pylist() == [1000]  # searched flat beside the index
    assert table.search("xylophone", query_type="fts").fast_search().to_arrow().num_rows == 0
    assert 3 not in table.search("puppy", query_type="fts").limit(100).to_arrow().column("id").to_pylist()
    for i in range(5):  # small fragments for the compaction
        table.add(docs(5, seed=i + 1, start=2000 + 10 * i))
    before = ranked(table.search("puppy quick", query_type="fts").limit(100).to_arrow())

    done = table.optimize()
    assert done["indexes_caught_up"] == 1 and done["fragments_removed"] > 1
    assert table.search("xylophone", query_type="fts").fast_search().to_arrow().column("id").to_pylist() == [1000]
    after = ranked(table.search("puppy quick", query_type="fts").fast_search().limit(100).to_arrow())
    assert {i for i, _ in after} == {i for i, _ in before}  # every row in the rebuilt index (BM25's statistics
    assert [v.metadata["operation"] for v in table.list_versions()][-1] == "optimize:fts_index"  # now exact)

    db.close()
    store.server.stop(grace=0.2)
    again = StoreServer(replace(BASE, data_dir=store.data_dir, embed_address="")).start()
    try:
        reopened = vectorlane.connect(f"grpc://127.0.0.1:{again.port}", timeout=60).open_table("t")
        assert ranked(reopened.search("puppy quick", query_type="fts").limit(100).to_arrow()) == after
        assert [i.index_type for i in reopened.list_indices()] == ["FTS"]
    finally:
        again.stop(grace=0.2)


def test_replace_drop_and_names_shared_with_vector_indexes(db):
    table = db.create_table("t", data=docs(40))
    table.create_fts_index("text")
    with pytest.raises(vectorlane.errors.AlreadyExistsError) as excinfo:
        table.create_fts_index("text")
    assert reason_of(excinfo) == "INDEX_EXISTS"
    table.create_fts_index("text", replace=True, stem=False)
    assert [i.parameters["stem"] for i in table.list_indices()] == [False]
    with pytest.raises(vectorlane.errors.AlreadyExistsError):  # a vector index may not take an FTS index's name
        table.create_index("vector", config=vectorlane.index.IvfFlat(num_partitions=2), name="text_idx")
    table.create_index("vector", config=vectorlane.index.IvfFlat(num_partitions=2))
    assert sorted(i.index_type for i in table.list_indices()) == ["FTS", "IVF_FLAT"]
    assert table.stats()["num_indices"] == 2
    table.drop_index("text_idx")
    assert [i.index_type for i in table.list_indices()] == ["IVF_FLAT"]
    with pytest.raises(FailedPreconditionError) as excinfo:
        table.search("puppy", query_type="fts").to_arrow()
    assert reason_of(excinfo) == "NO_FTS_INDEX"
    assert table.count_rows() == 40


def test_auto_query_type_is_full_text_without_an_embedding_function(db, start_store):
    table = db.create_table("t", data=docs(30))
    table.create_fts_index("text")
    assert table.search("puppy").to_arrow().column_names[-1] == "_score"
    assert table.search([1.0, 1.0]).limit(1).to_arrow().column_names[-1] == "_distance"


def test_a_corrupt_index_file_is_data_loss_and_other_tables_serve(start_store):
    store = start_store()
    db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    table = db.create_table("t", data=docs(100))
    table.create_fts_index("text")
    db.create_table("other", data=docs(10)).create_fts_index("text")
    db.close()
    store.server.stop(grace=0.2)
    index_files = sorted((store.data_dir / "t.lance" / "_indices").rglob("*.lance"))
    assert index_files
    victim = max(index_files, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))
    again = StoreServer(replace(BASE, data_dir=store.data_dir, embed_address="")).start()
    try:
        reopened = vectorlane.connect(f"grpc://127.0.0.1:{again.port}", timeout=60)
        with pytest.raises(vectorlane.errors.DataLossError) as excinfo:
            reopened.open_table("t").search("puppy", query_type="fts").to_arrow()
        assert reason_of(excinfo) == "INDEX_CORRUPT"
        assert reopened.open_table("other").search("puppy", query_type="fts").to_arrow().num_rows > 0
    finally:
        again.stop(grace=0.2)


def _nested(depth: int) -> pb.FullTextQuery:
    query = pb.FullTextQuery(match=pb.MatchQuery(terms="puppy", column="text"))
    for _ in range(depth - 1):
        query = pb.FullTextQuery(boolean=pb.BooleanQuery(clauses=[pb.BooleanClause(occur=pb.OCCUR_MUST,
                                                                                   query=query)]))
    return query


BAD_SEARCHES = {
    "nested nine deep": (_nested(9), {}, "FULL_TEXT_QUERY_TOO_LARGE"),
    "65 clauses": (pb.FullTextQuery(boolean=pb.BooleanQuery(clauses=[
        pb.BooleanClause(query=pb.FullTextQuery(match=pb.MatchQuery(terms="a", column="text")))] * 65)), {},
        "FULL_TEXT_QUERY_TOO_LARGE"),
    "5 KB of terms": (pb.FullTextQuery(text="puppy " * 1000), {}, "FULL_TEXT_QUERY_TOO_LARGE"),
    "fuzziness 5": (pb.FullTextQuery(match=pb.MatchQuery(terms="puppy", column="text", fuzziness=5)), {},
                    "INVALID_FULL_TEXT_QUERY"),
    "max_expansions huge": (pb.FullTextQuery(match=pb.MatchQuery(terms="puppy", column="text",
                                                                 max_expansions=10**9)), {},
                            "INVALID_FULL_TEXT_QUERY"),
    "NaN boost": (pb.FullTextQuery(match=pb.MatchQuery(terms="puppy", column="text", boost=float("nan"))), {},
                  "INVALID_FULL_TEXT_QUERY"),
    "empty query": (pb.FullTextQuery(), {}, "INVALID_FULL_TEXT_QUERY"),
    "blank terms": (pb.FullTextQuery(text="   "), {}, "INVALID_FULL_TEXT_QUERY"),
    "column without an index": (pb.FullTextQuery(match=pb.MatchQuery(terms="puppy", column="title")), {},
                                "NO_FTS_INDEX"),
    "unknown column": (pb.FullTextQuery(text="puppy", columns=["nope"]), {}, "NO_FTS_INDEX"),
    "phrase without positions": (pb.FullTextQuery(phrase=pb.PhraseQuery(terms="puppy tiger", column="text")), {},
                                 "INVALID_FULL_TEXT_QUERY"),
    "only MUST_NOT": (pb.FullTextQuery(boolean=pb.BooleanQuery(clauses=[pb.BooleanClause(
        occur=pb.OCCUR_MUST_NOT, query=pb.FullTextQuery(match=pb.MatchQuery(terms="a", column="text")))])), {},
        "INVALID_FULL_TEXT_QUERY"),
    "bad filter": (pb.FullTextQuery(text="puppy"), {"where": "id >>> 3"}, "INVALID_FILTER"),
    "filter with a disallowed function": (pb.FullTextQuery(text="puppy"),
                                          {"where": "length(repeat(text, 1000000)) > 1"}, "FUNCTION_NOT_ALLOWED"),
    "vector options": (pb.FullTextQuery(text="puppy"), {"nprobes": 5}, "VECTOR_OPTIONS_WITHOUT_QUERY"),
    "unknown selected column": (pb.FullTextQuery(text="puppy"), {"select": ["nope"]}, "UNKNOWN_COLUMN"),
    "limit too large": (pb.FullTextQuery(text="puppy"), {"limit": 10**7}, "LIMIT_TOO_LARGE"),
    "a rerank of more results than one scores": (pb.FullTextQuery(text="puppy"), {"limit": 1001, "rerank": pb.Rerank(
        name="cross-encoder")}, "RERANK_TOO_MANY"),
}


@pytest.mark.parametrize("name", sorted(BAD_SEARCHES))
def test_bad_full_text_searches_are_refused_precisely_and_the_table_is_intact(db, name):
    table = db.create_table("t", data=docs(60))
    table.create_fts_index("text")
    stub = db.store.stub
    query, extra, reason = BAD_SEARCHES[name]
    with pytest.raises(grpc.RpcError) as excinfo:
        stub.Search(pb.SearchRequest(table="t", full_text=query, **extra))
    assert error_info(excinfo.value).reason == reason, excinfo.value.details()
    assert excinfo.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    assert table.count_rows() == 60
    assert table.search("puppy", query_type="fts").limit(5).to_arrow().num_rows > 0


BAD_INDEXES = {
    "unknown tokenizer": ({"base_tokenizer": "spacy"}, "INVALID_FTS_PARAMS"),
    "a language model named by a path": ({"base_tokenizer": "jieba/../../etc"}, "INVALID_FTS_PARAMS"),
    "unknown language": ({"language": "Klingon"}, "INVALID_FTS_PARAMS"),
    "token length 0 after -2": ({"max_token_length": -2}, "INVALID_FTS_PARAMS"),
    "token length huge": ({"max_token_length": 10**6}, "INVALID_FTS_PARAMS"),
    "ngram min above max": ({"base_tokenizer": "ngram", "ngram_min_length": 5, "ngram_max_length": 2},
                            "INVALID_FTS_PARAMS"),
    "too many stop words": ({"custom_stop_words": ["w"] * 2000}, "INVALID_FTS_PARAMS"),
    "a long stop word": ({"custom_stop_words": ["w" * 100]}, "INVALID_FTS_PARAMS"),
}


@pytest.mark.parametrize("name", sorted(BAD_INDEXES))
def test_bad_fts_index_settings_are_refused_and_nothing_is_written(db, name):
    table = db.create_table("t", data=docs(20))
    settings, reason = BAD_INDEXES[name]
    before = table.version
    with pytest.raises(grpc.RpcError) as excinfo:
        db.store.stub.CreateIndex(pb.CreateIndexRequest(table="t", index_type=pb.INDEX_TYPE_FTS, column="text",
                                                        fts=pb.FtsParams(**settings)))
    assert error_info(excinfo.value).reason == reason, excinfo.value.details()
    assert table.version == before and table.list_indices() == []
    assert not (Path(db.store.data_dir) / "t.lance" / "_indices").exists()


@pytest.mark.parametrize("column, reason", [("group", "INVALID_COLUMN_TYPE"), ("vector", "INVALID_COLUMN_TYPE"),
                                            ("nope", "UNKNOWN_COLUMN"), ("", "MISSING_COLUMN")])
def test_an_fts_index_needs_a_string_column(db, column, reason):
    db.create_table("t", data=docs(5))
    with pytest.raises(grpc.RpcError) as excinfo:
        db.store.stub.CreateIndex(pb.CreateIndexRequest(table="t", index_type=pb.INDEX_TYPE_FTS, column=column))
    assert error_info(excinfo.value).reason == reason


def test_nested_columns_block_size_and_language_spelling(db):
    rows = [{"id": r["id"], "nested": {"text": r["text"]}, "text": r["text"]} for r in docs(60)]
    table = db.create_table("t", data=rows)
    table.create_fts_index("nested.text", with_position=True)
    assert [i.columns for i in table.list_indices()] == [["nested.text"]]
    found = table.search("puppy", query_type="fts", fts_columns="nested.text").limit(5).to_list()
    assert found and all("puppy" in r["nested"]["text"] for r in found)
    phrase = table.search(PhraseQuery("puppy tiger", "nested.text")).limit(50).to_list()
    assert all("puppy tiger" in r["nested"]["text"] for r in phrase)
    table.create_index("text", config=vectorlane.index.FTS(block_size=256, language="french"))
    made = {i.columns[0]: i.index_details for i in table.list_indices()}
    assert made["text"]["block_size"] == 256 and made["text"]["language"] == "French"
    assert table.search("puppy", query_type="fts", fts_columns="text").limit(5).to_arrow().num_rows > 0
    with pytest.raises(ValueError, match="128 or 256"):
        table.create_index("text", config=vectorlane.index.FTS(block_size=129), replace=True)


def test_an_optimize_does_not_bring_back_an_index_dropped_or_replaced_during_its_rebuild(start_store):
    from store_service.indexes import text_index
    from store_service.storage.operations import DropTextIndex, Moved

    store = start_store()
    db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    table = db.create_table("t", data=docs(40))
    table.create_fts_index("text")
    table.add(docs(5, seed=3, start=100))
    owner = store.server.core.owner("t")
    snapshot = owner.latest_view().snapshot
    (entry,) = text_index.entries(snapshot)
    rebuilt = text_index.prepare_create(owner.table, snapshot, "text", text_index.TextIndexParams(), name=entry.name,
                                        replace=True, operation="optimize:fts_index", rebuilds=entry.uuid)
    owner.commit(DropTextIndex(entry.name))  # the drop lands while the rebuild was being built
    with pytest.raises(Moved):
        owner.commit(rebuilt)
    assert table.list_indices() == []
    table.create_fts_index("text", with_position=True)  # and a replacement made meanwhile is kept
    assert table.optimize()["indexes_caught_up"] == 0 or table.list_indices()[0].parameters["with_position"]
    db.close()


def test_a_logged_index_file_that_is_gone_is_data_loss(start_store):
    store = start_store()
    db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    db.create_table("t", data=docs(50)).create_fts_index("text")
    db.close()
    store.server.stop(grace=0.2)
    victim = min((store.data_dir / "t.lance" / "_indices").rglob("*.lance"))
    victim.unlink()
    again = StoreServer(replace(BASE, data_dir=store.data_dir, embed_address="")).start()
    try:
        with pytest.raises(vectorlane.errors.DataLossError) as excinfo:
            vectorlane.connect(f"grpc://127.0.0.1:{again.port}").open_table("t").search(
                "puppy", query_type="fts").to_arrow()
        assert reason_of(excinfo) == "FRAGMENT_MISSING"
    finally:
        again.stop(grace=0.2)


def test_index_names_and_taken_names_are_refused_before_any_build(db):
    table = db.create_table("t", data=docs(20))
    table.create_fts_index("text")
    folders = set((Path(db.store.data_dir) / "t.lance" / "_indices").iterdir())
    with pytest.raises(vectorlane.errors.AlreadyExistsError):
        table.create_fts_index("text")
    assert set((Path(db.store.data_dir) / "t.lance" / "_indices").iterdir()) == folders  # nothing built
    with pytest.raises(InvalidArgumentError) as excinfo:
        table.create_fts_index("title", name="x" * 300)
    assert reason_of(excinfo) == "INVALID_INDEX_NAME"
    with pytest.raises(InvalidArgumentError) as excinfo:
        table.create_fts_index("title", base_tokenizer="ngram", ngram_min_length=1, ngram_max_length=64)
    assert reason_of(excinfo) == "INVALID_FTS_PARAMS"


def test_to_query_object_describes_the_query_as_lancedb_does(db):
    table = db.create_table("described", data=[*docs(40), {"id": 100, "text": "a puppy runs home", "title": "x",
                                                          "group": 0, "vector": [1.0, 1.0]}])
    table.create_fts_index("text", with_position=True)
    fts = table.search("puppy runs", query_type="fts", fts_columns="text").phrase_query().select(["id"]).limit(5)
    described = fts.to_query_object()
    assert described.full_text_query.query == '"puppy runs"' and described.full_text_query.columns == ["text"]
    assert (described.limit, described.columns, described.fast_search, described.vector) == (5, ["id"], None, None)
    assert table.search('"puppy runs"', query_type="fts").phrase_query().to_query_object() \
        .full_text_query.query == '"puppy runs"'  # already quoted: kept
    assert table.search("puppy runs", query_type="fts").phrase_query(False).to_query_object() \
        .full_text_query.query == "puppy runs"
    phrase = PhraseQuery("puppy runs", "text")
    assert table.search(phrase).phrase_query().to_query_object().full_text_query.query is phrase
    with pytest.raises(TypeError, match=r"phrase_query\(\) requires a string or PhraseQuery, got MatchQuery"):
        table.search(MatchQuery("puppy", "text")).phrase_query().to_query_object()
    assert table.search("xyz", query_type="fts").fast_search().to_query_object().fast_search is True

    vector = table.search([0.5, 1.0], vector_column_name="vector").metric("cosine").where("id < 10", prefilter=False) \
        .limit(3).nprobes(7).refine_factor(2).to_query_object()
    assert (vector.vector, vector.vector_column, vector.distance_type, vector.filter, vector.postfilter,
            vector.limit, vector.refine_factor, vector.minimum_nprobes, vector.maximum_nprobes,
            vector.full_text_query) == ([0.5, 1.0], "vector", "cosine", "id < 10", True, 3, 2, 7, 7, None)
    read = table.search().where("id > 2").select({"double": "id * 2"}).offset(4).with_row_id(True)
    assert read.to_query_object().model_dump(exclude_none=True) == {
        "filter": "id > 2", "columns": {"double": "id * 2"}, "offset": 4, "with_row_id": True}
    # what it describes is what runs: the phrase, not its words anywhere
    assert fts.to_arrow().column("id").to_pylist() == [100]
    assert table.search(phrase).select(["id"]).limit(5).to_arrow().column("id").to_pylist() == [100]
    with pytest.raises(NotImplementedError, match="hybrid"):
        table.search("puppy", query_type="hybrid").to_query_object()


def test_a_phrase_query_searches_the_phrase_and_reranks_by_the_users_text(db):
    """What LanceDB's tests check by mocking its table's `_execute_query` / `_analyze_plan`: the search gets
    the quoted phrase, a reranker the text as the user wrote it; in a hybrid plan too."""
    table = db.create_table("phrased", data=[*docs(40), {"id": 100, "text": "a puppy runs home", "title": "x",
                                                        "group": 0, "vector": [1.0, 1.0]}])
    table.create_fts_index("text", with_position=True)

    class Capturing:
        score = "relevance"

        def __init__(self):
            self.queries = []

        def rerank_fts(self, query, results):
            self.queries.append(query)
            return results.append_column("_relevance_score", pa.array([1.0] * results.num_rows, pa.float32()))

    reranker = Capturing()
    rows = table.search("puppy runs", query_type="fts").phrase_query().rerank(reranker).to_arrow()
    assert rows.column("id").to_pylist() == [100] and reranker.queries == ["puppy runs"]
    plan = table.search(query_type="hybrid").vector([1.0, 1.0]).text("puppy runs").phrase_query().explain_plan()
    assert "PhraseQuery: column=text, query=puppy runs" in plan, plan
    words = table.search(query_type="hybrid").vector([1.0, 1.0]).text("puppy runs").explain_plan()
    assert "PhraseQuery" not in words and "puppy runs" in words, words
