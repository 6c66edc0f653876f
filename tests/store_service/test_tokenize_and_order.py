"""LanceDB's `tokenize` (an index's tokenizer, or given settings), the tokenizers beyond the simple ones (ICU,
the language-model ones refused precisely when the store lacks the model), an FTS build's resources, the index
format version, and `order_by` on full-text, vector and hybrid searches and on plain reads: results equal to
LanceDB's own tokenizer and to a sort of the same rows, bad input refused with a reason and nothing changed."""

from __future__ import annotations

import random

import grpc
import lancedb
import pyarrow as pa
import pytest

import vectorlane
from tests.helpers import error_info
from vectorlane.errors import FailedPreconditionError, InvalidArgumentError, NoFullTextIndexError
from vectorlane.index import FTS
from vectorlane.query import ColumnOrdering
from vectorlane.store.v1 import store_service_pb2 as pb

WORDS = "apple banana cherry dog puppy quick river sun tiger whale".split()


def rows(count: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": i, "text": " ".join(rng.choices(WORDS, k=rng.randint(2, 8))), "count": rng.randint(0, 5),
             "rank": None if i % 7 == 0 else float(rng.randint(0, 50)), "vector": [float(i % 13), float(i % 5)]}
            for i in range(count)]


def pairs(tokens) -> list[tuple[str, int]]:
    return [(t.text, t.position) for t in tokens]


# ----- tokenize ---------------------------------------------------------------------------------------------
def test_tokenize_with_an_index_or_settings_equals_lancedb_s_own_tokenizer(db):
    table = db.create_table("t", data=rows(20))
    table.create_index("text", config=FTS(stem=False, custom_stop_words=["lance"]), name="text_words")
    text = "The Lance DATA runs in cafés"
    expected = pairs(lancedb.tokenize(text, stem=False, custom_stop_words=["lance"]))
    assert expected == [("the", 0), ("data", 2), ("runs", 3), ("in", 4), ("cafes", 5)]  # no stemming
    assert pairs(table.tokenize(text, column="text")) == expected
    assert pairs(table.tokenize(text, index_name="text_words")) == expected

    for settings in ({}, {"base_tokenizer": "icu", "stem": False, "remove_stop_words": False},
                     {"base_tokenizer": "ngram", "ngram_min_length": 2, "ngram_max_length": 4},
                     {"language": "french", "max_token_length": None}, {"base_tokenizer": "whitespace"}):
        mixed = "Hello, こんにちは世界! Les routes de la ville"
        theirs = pairs(lancedb.tokenize(mixed, **{**settings, **({"language": "French"} if "language" in settings
                                                                  else {})}))
        assert pairs(db.tokenize(mixed, **settings)) == theirs, settings
        assert pairs(vectorlane.tokenize(mixed, **settings)) == theirs, settings


def test_tokenize_refusals_are_precise(db):
    table = db.create_table("t", data=rows(5))
    with pytest.raises(ValueError, match="Specify exactly one"):
        table.tokenize("hello")
    with pytest.raises(NoFullTextIndexError, match="does not have a full text search index") as caught:
        table.tokenize("hello", column="text")
    assert isinstance(caught.value, ValueError) and caught.value.reason == "NO_FTS_INDEX"
    table.create_index("text", config=FTS())

    stub = db.store.stub
    for request, code, reason in [
        (pb.TokenizeRequest(text="a", table="t", column="text", index_name="text_idx"),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (pb.TokenizeRequest(text="a", table="t", index_name="missing"), grpc.StatusCode.FAILED_PRECONDITION,
         "NO_FTS_INDEX"),
        (pb.TokenizeRequest(text="a", table="missing", column="text"), grpc.StatusCode.NOT_FOUND, "TABLE_NOT_FOUND"),
        (pb.TokenizeRequest(text="a" * (64 * 1024 + 1)), grpc.StatusCode.INVALID_ARGUMENT, "TEXT_TOO_LONG"),
        (pb.TokenizeRequest(text="a", fts=pb.FtsParams(base_tokenizer="jieba/../../etc")),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FTS_PARAMS"),
        (pb.TokenizeRequest(text="a", fts=pb.FtsParams(base_tokenizer="lindera//x")),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FTS_PARAMS"),
        (pb.TokenizeRequest(text="a", fts=pb.FtsParams(language="klingon")), grpc.StatusCode.INVALID_ARGUMENT,
         "INVALID_FTS_PARAMS"),
        (pb.TokenizeRequest(text="a", fts=pb.FtsParams(ngram_min_length=1, ngram_max_length=17)),
         grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FTS_PARAMS"),
        # 16 gram lengths of each of 64 K characters would be a million tokens (measured: 770 MiB, 2.7 s)
        (pb.TokenizeRequest(text="a" * 8192, fts=pb.FtsParams(base_tokenizer="ngram", ngram_min_length=1,
                                                              ngram_max_length=16, max_token_length=-1)),
         grpc.StatusCode.INVALID_ARGUMENT, "TEXT_TOO_LONG"),
    ]:
        with pytest.raises(grpc.RpcError) as failed:
            stub.Tokenize(request, timeout=30)
        assert (failed.value.code(), error_info(failed.value).reason) == (code, reason), request
    assert pairs(table.tokenize("Running dogs", column="text")) == [("run", 0), ("dog", 1)]  # still serving

    with pytest.raises(TypeError, match=r"custom_stop_words.*int"):
        db.tokenize("the lance data", custom_stop_words=["lance", 42])
    with pytest.raises(ValueError) as wrong:
        db.tokenize("x", language="klingon")
    assert type(wrong.value) is ValueError  # LanceDB's own check and words, before any call
    assert str(wrong.value).startswith("LanceDB does not support the requested language: 'klingon'\n"
                                       "Supported languages: Arabic, Danish")


def test_a_language_model_the_store_lacks_is_a_precondition_without_the_store_s_paths(db, tmp_path, monkeypatch):
    home = tmp_path / "operator-models"
    monkeypatch.setenv("LANCE_LANGUAGE_MODEL_HOME", str(home))  # the store runs in this process
    table = db.create_table("t", data=[{"text": "我们都有光明的前途"}])
    with pytest.raises(FailedPreconditionError) as missing:
        table.create_fts_index("text", base_tokenizer="jieba/default", stem=False, remove_stop_words=False,
                               ascii_folding=False)
    assert missing.value.reason == "LANGUAGE_MODEL_MISSING"
    assert "jieba/default" in str(missing.value) and "LANCE_LANGUAGE_MODEL_HOME" in str(missing.value)
    assert str(home) not in str(missing.value)
    with pytest.raises(FailedPreconditionError) as again:
        db.tokenize("我们", base_tokenizer="lindera/ipadic")
    assert again.value.reason == "LANGUAGE_MODEL_MISSING" and str(home) not in str(again.value)
    assert table.list_indices() == [] and table.count_rows() == 1


# ----- tokenizers, build resources, format version ------------------------------------------------------------
def test_an_icu_index_searches_text_without_spaces_and_lists_its_format_version(db):
    table = db.create_table("t", data=[{"id": 1, "text": "こんにちは世界"}, {"id": 2, "text": "hello world"},
                                       {"id": 3, "text": "世界の平和"}])
    table.create_index("text", config=FTS(base_tokenizer="icu", stem=False, remove_stop_words=False))
    found = table.search("世界", query_type="fts").select(["id"]).to_arrow()
    assert sorted(found.column("id").to_pylist()) == [1, 3]
    (listed,) = table.list_indices()
    assert listed.index_details["base_tokenizer"] == "icu" and listed.index_version == 2

    table.create_index("text", config=FTS(block_size=256), replace=True)
    (listed,) = table.list_indices()
    assert listed.index_details["block_size"] == 256 and listed.index_version == 3


def test_a_build_s_memory_limit_and_workers_are_bounded_and_not_kept(db):
    table = db.create_table("t", data=rows(30))
    with pytest.raises(InvalidArgumentError, match="exceeds worker memory limit") as starved:
        table.create_index("text", config=FTS(memory_limit=0, num_workers=1))
    assert starved.value.reason == "FTS_BUILD_FAILED"
    for config, field in ((FTS(num_workers=65), "num_workers"), (FTS(memory_limit=16385), "memory_limit"),
                          (FTS(memory_limit=-1), "memory_limit")):
        with pytest.raises(InvalidArgumentError) as refused:
            table.create_index("text", config=config)
        assert (refused.value.reason, refused.value.metadata["field"]) == ("INVALID_FTS_PARAMS", field)
    assert table.list_indices() == [] and table.count_rows() == 30
    table.create_index("text", config=FTS(memory_limit=64, num_workers=1))
    (listed,) = table.list_indices()
    assert "memory_limit" not in listed.index_details and "num_workers" not in listed.index_details
    assert table.search("puppy", query_type="fts").limit(5).to_arrow().num_rows == 5


# ----- order_by ----------------------------------------------------------------------------------------------
def by(column: str, ascending: bool = True, nulls_first: bool = False) -> ColumnOrdering:
    return ColumnOrdering(column_name=column, ascending=ascending, nulls_first=nulls_first)


def sort_key(row: dict, column: str, ascending: bool, nulls_first: bool):
    value = row[column]
    missing = value is None
    return (not missing if nulls_first else missing, 0 if missing else (value if ascending else -value))


def expected_order(found: list[dict], orderings: list[ColumnOrdering]) -> list[dict]:
    ordered = list(found)
    for o in reversed(orderings):  # stable sorts, last key first
        ordered.sort(key=lambda r: sort_key(r, o.column_name, o.ascending, o.nulls_first))
    return ordered


def test_order_by_sorts_a_search_s_best_rows_and_a_plain_read_s_matching_rows(db):
    data = rows(120, seed=3)
    table = db.create_table("t", data=data)
    table.create_fts_index("text")
    orderings = [by("count", ascending=False), by("rank", nulls_first=True)]

    best = table.search("puppy", query_type="fts").limit(15).select(["id", "count", "rank"]).to_list()
    ordered = table.search("puppy", query_type="fts").order_by(orderings).limit(15) \
        .select(["id", "count", "rank"]).to_list()
    assert [r["id"] for r in ordered] == [r["id"] for r in expected_order(best, orderings)]
    # offset: the limit + offset best rows sorted, then skipped; a sort column not selected is not returned
    more = table.search("puppy", query_type="fts").limit(15).select(["id", "count"]).to_list()
    shifted = table.search("puppy", query_type="fts").order_by([by("count")]).limit(10).offset(5) \
        .select(["id"]).to_list()
    assert [r["id"] for r in shifted] == [r["id"] for r in expected_order(more, [by("count")])][5:15]
    assert set(shifted[0]) == {"id", "_score"}

    nearest = table.search([3.0, 1.0]).limit(20).select(["id", "count", "rank"]).to_list()
    sorted_nearest = table.search([3.0, 1.0]).order_by([by("rank", ascending=False)]).limit(20) \
        .select(["id", "count", "rank"]).to_list()
    assert [r["id"] for r in sorted_nearest] == \
        [r["id"] for r in expected_order(nearest, [by("rank", ascending=False)])]

    hybrid = table.search(query_type="hybrid").vector([3.0, 1.0]).text("puppy").limit(12) \
        .select(["id", "count"]).to_list()
    sorted_hybrid = table.search(query_type="hybrid").vector([3.0, 1.0]).text("puppy") \
        .order_by([by("count")]).limit(12).select(["id", "count"]).to_list()
    assert [r["id"] for r in sorted_hybrid] == [r["id"] for r in expected_order(hybrid, [by("count")])]

    read = table.search().where("count >= 2").order_by(orderings).limit(40).offset(3).to_list()
    matching = [r for r in data if r["count"] >= 2]
    assert [r["id"] for r in read] == [r["id"] for r in expected_order(matching, orderings)][3:43]


def test_order_by_refusals_leave_the_store_serving(db):
    table = db.create_table("t", data=rows(20))
    table.create_fts_index("text")
    with pytest.raises(InvalidArgumentError) as unknown:
        table.search("puppy", query_type="fts").order_by([by("nope")]).to_list()
    assert unknown.value.reason == "UNKNOWN_COLUMN"
    with pytest.raises(InvalidArgumentError) as many:
        table.search([1.0, 1.0]).order_by([by("count")] * 9).to_list()
    assert many.value.reason == "TOO_MANY_ORDERINGS"
    with pytest.raises(InvalidArgumentError) as nested:
        table.search().order_by([by("vector")]).to_list()
    assert nested.value.reason == "INVALID_ORDERING"
    with pytest.raises(InvalidArgumentError) as batch:  # several query vectors: each has its own results
        table.search([[1.0, 1.0], [2.0, 2.0]]).order_by([by("count")]).to_list()
    assert batch.value.reason == "UNSUPPORTED_SEARCH"
    halves = db.create_table("halves", data=pa.table({"h": pa.array([1.0, 0.5], pa.float16()), "id": [1, 2]}))
    with pytest.raises(InvalidArgumentError) as half:
        halves.search().order_by([by("h")]).to_list()
    assert half.value.reason == "INVALID_ORDERING"
    request = pb.ReadRowsRequest(table="t", offsets=[1, 2], order_by=[pb.ColumnOrdering(column="id")])
    with pytest.raises(grpc.RpcError) as taken:
        db.store.stub.ReadRows(request, timeout=30)
    assert error_info(taken.value).reason == "INVALID_ORDERING"
    assert table.search().order_by([by("id", ascending=False)]).limit(3).select(["id"]).to_list() == \
        [{"id": 19}, {"id": 18}, {"id": 17}]
