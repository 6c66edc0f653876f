"""LanceDB's schema evolution as RPCs: AddColumns (SQL expressions evaluated by Lance, or null columns),
AlterColumns (renames that embedding functions and indexes follow, nullability, casts) and DropColumns;
each a version of its own, durable, readable by LanceDB, with older versions keeping the old schema."""

from __future__ import annotations

import grpc
import lance
import pyarrow as pa
import pytest

from tests.helpers import error_info
from tests.store_service.conftest import add, create_docs, json_rows, rows_of
from vectorlane.store.v1 import store_service_pb2 as pb

DOCS = [{"id": i, "text": f"row {i} words", "category": "even" if i % 2 == 0 else "odd"} for i in range(30)]


def read(stub, table="docs", version=0, where="", select=()):
    reply = stub.ReadRows(pb.ReadRowsRequest(table=table, version=version, where=where, select=select,
                                             format=pb.ROW_FORMAT_ARROW))
    return rows_of(reply.rows).sort_by("id")


def failure(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code(), error_info(caught.value).reason


def schema_of(stub, table="docs") -> pa.Schema:
    described = stub.GetTable(pb.GetTableRequest(name=table)).table
    return pa.ipc.read_schema(pa.py_buffer(described.schema.arrow_schema))


def test_add_columns_computes_sql_expressions_for_every_row_and_later_rows_hold_null(store):
    create_docs(store.stub, rows=DOCS)
    add(store.stub, "docs", json_rows([{"id": 30, "text": "row 30 words", "category": "even"}]))
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="docs", where="id = 3"))
    reply = store.stub.AddColumns(pb.AddColumnsRequest(table="docs", expressions=[
        pb.ColumnExpression(name="double", expression="id * 2"),
        pb.ColumnExpression(name="shout", expression="upper(category)"),
        pb.ColumnExpression(name="label", expression="concat(category, '-', CAST(id AS STRING))")]))
    rows = read(store.stub)
    assert rows.num_rows == 30 and 3 not in rows.column("id").to_pylist()
    assert rows.column("double").to_pylist() == [2 * i for i in rows.column("id").to_pylist()]
    assert rows.column("shout").to_pylist()[:2] == ["EVEN", "ODD"]
    assert rows.column("label").to_pylist()[:2] == ["even-0", "odd-1"]
    assert schema_of(store.stub).names == ["id", "text", "category", "vector", "double", "shout", "label"]
    # filters and search see the new column; later rows hold null in it
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs", where="double >= 40")).count == 11
    add(store.stub, "docs", json_rows([{"id": 99, "text": "new", "category": "odd"}]))
    assert read(store.stub, where="id = 99").column("double").to_pylist() == [None]
    found = store.stub.Search(pb.SearchRequest(table="docs", text="row 7 words", limit=1)).rows.json.rows
    assert found[0]["double"] == 14
    # the older version keeps its schema; LanceDB's own reader sees the computed column
    assert "double" not in read(store.stub, version=reply.version - 1).column_names
    dataset = lance.dataset(str(store.data_dir / "docs.lance"))
    assert dataset.to_table(columns=["double"], filter="id = 8").column("double").to_pylist() == [16]
    assert dataset.schema.metadata[b"embedding_functions"]  # the function survives the Merge


def test_add_null_columns_and_a_vector_column_without_a_function(store):
    create_docs(store.stub, rows=DOCS[:5])
    extra = pa.schema([pa.field("score", pa.float64()), pa.field("tags", pa.list_(pa.string())),
                       pa.field("other", pa.list_(pa.float32(), 3))])
    store.stub.AddColumns(pb.AddColumnsRequest(table="docs", null_columns=pb.Schema(
        arrow_schema=extra.serialize().to_pybytes())))
    rows = read(store.stub)
    assert rows.column("score").null_count == 5 and rows.column("tags").null_count == 5
    assert schema_of(store.stub).field("other").type == pa.list_(pa.float32(), 3)
    add(store.stub, "docs", json_rows([{"id": 7, "text": "x", "category": "c", "other": [1, 0, 0], "score": 1.5}]))
    near = store.stub.Search(pb.SearchRequest(table="docs", vector=pb.Vector(values=[1, 0, 0]), vector_column="other",
                                              limit=1))
    assert near.rows.json.rows[0]["id"] == 7


def test_rename_takes_the_embedding_function_and_the_index_with_it(store):
    create_docs(store.stub, rows=DOCS)
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_HNSW))
    before = store.stub.Search(pb.SearchRequest(table="docs", text="row 5 words", limit=3)).rows.json.rows
    store.stub.AlterColumns(pb.AlterColumnsRequest(table="docs", alterations=[
        pb.ColumnAlteration(path="text", rename="body"), pb.ColumnAlteration(path="vector", rename="embedding")]))
    table = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    assert [(f.source_column, f.vector_column) for f in table.embedding_functions] == [("body", "embedding")]
    assert [(i.name, i.vector_column) for i in table.indexes] == [("vector_idx", "embedding")]
    after = store.stub.Search(pb.SearchRequest(table="docs", text="row 5 words", limit=3)).rows.json.rows
    assert [r["id"] for r in after] == [r["id"] for r in before] and "body" in after[0]
    add(store.stub, "docs", json_rows([{"id": 50, "body": "fifty words", "category": "c"}]))  # embedded
    assert store.stub.Search(pb.SearchRequest(table="docs", text="fifty words", limit=1)).rows.json.rows[0]["id"] \
        == 50
    assert read(store.stub, version=1).column_names[:2] == ["id", "text"]  # history keeps the old names
    assert lance.dataset(str(store.data_dir / "docs.lance")).to_table(columns=["body"]).num_rows == 31


def test_cast_and_nullability(store):
    create_docs(store.stub, rows=DOCS[:6])
    before = store.stub.GetTable(pb.GetTableRequest(name="docs")).table.version
    changed = store.stub.AlterColumns(pb.AlterColumnsRequest(table="docs", alterations=[
        pb.ColumnAlteration(path="id", data_type="int32", rename="key", metadata={"unit": "count"})]))
    assert changed.version == before + 1  # a cast with its rename and metadata is one commit
    assert store.stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions[-1].operation == \
        "alter_columns:cast"
    assert schema_of(store.stub).field("key").metadata == {b"unit": b"count"}
    changed = store.stub.AlterColumns(pb.AlterColumnsRequest(table="docs", alterations=[
        pb.ColumnAlteration(path="key", data_type="int64"),
        pb.ColumnAlteration(path="category", nullable=False, rename="id")]))  # onto a name a cast leaves
    assert [v.operation for v in store.stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions[-2:]] == \
        ["alter_columns:cast", "alter_columns"]
    store.stub.AlterColumns(pb.AlterColumnsRequest(table="docs", alterations=[
        pb.ColumnAlteration(path="key", data_type="int32"), pb.ColumnAlteration(path="id", rename="category")]))
    schema = schema_of(store.stub)
    assert schema.field("key").type == pa.int32() and not schema.field("category").nullable
    assert rows_of(store.stub.ReadRows(pb.ReadRowsRequest(table="docs", format=pb.ROW_FORMAT_ARROW)).rows) \
        .sort_by("key").column("key").to_pylist() == list(range(6))
    assert failure(lambda: add(store.stub, "docs", json_rows([{"key": 9, "text": "x"}])))[1] == "MISSING_COLUMN"
    # a value that does not fit refuses the whole change, and nothing changes
    add(store.stub, "docs", json_rows([{"key": 2**31 - 1, "text": "big", "category": "c"}]))
    latest = store.stub.GetTable(pb.GetTableRequest(name="docs")).table.version
    code, reason = failure(lambda: store.stub.AlterColumns(pb.AlterColumnsRequest(table="docs", alterations=[
        pb.ColumnAlteration(path="key", data_type="int8")])))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_CAST")
    assert store.stub.GetTable(pb.GetTableRequest(name="docs")).table.version == latest
    # nulls present: cannot become non-nullable
    store.stub.AddColumns(pb.AddColumnsRequest(table="docs", null_columns=pb.Schema(fields=[
        pb.Field(name="note", type=pb.DATA_TYPE_STRING, nullable=True)])))
    code, reason = failure(lambda: store.stub.AlterColumns(pb.AlterColumnsRequest(table="docs", alterations=[
        pb.ColumnAlteration(path="note", nullable=False)])))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NULL_IN_REQUIRED_COLUMN")


def test_drop_columns_keeps_history_and_takes_a_vector_columns_function(store):
    create_docs(store.stub, rows=DOCS[:4])
    reply = store.stub.DropColumns(pb.DropColumnsRequest(table="docs", columns=["category"]))
    assert "category" not in schema_of(store.stub).names
    assert "category" in read(store.stub, version=reply.version - 1).column_names
    code, reason = failure(lambda: store.stub.DropColumns(pb.DropColumnsRequest(table="docs", columns=["text"])))
    assert (code, reason) == (grpc.StatusCode.FAILED_PRECONDITION, "COLUMN_IN_USE")
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT))
    store.stub.DropColumns(pb.DropColumnsRequest(table="docs", columns=["vector"]))
    table = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    assert not table.embedding_functions and not table.indexes
    store.stub.DropColumns(pb.DropColumnsRequest(table="docs", columns=["text"]))  # no longer anyone's source
    assert read(store.stub).column_names == ["id"]
    store.stub.RestoreVersion(pb.RestoreVersionRequest(table="docs", version=1))
    assert store.stub.Search(pb.SearchRequest(table="docs", text="row 2 words", limit=1)).rows.json.rows[0]["id"] == 2


@pytest.mark.parametrize("expression, reason", [
    ("repeat(text, 1000000000)", "FUNCTION_NOT_ALLOWED"),
    ("lpad(text, 2000000000, 'x')", "FUNCTION_NOT_ALLOWED"),
    ("(SELECT 1)", "INVALID_EXPRESSION"),
    ("no_such_column + 1", "INVALID_EXPRESSION"),
    ("id +", "INVALID_EXPRESSION"),
    ("x" * 5000, "INVALID_EXPRESSION"),
    ("(" * 70 + "id" + ")" * 70, "INVALID_EXPRESSION"),  # past the parser's own recursion limit
    ("+".join(["id"] * 100), "EXPRESSION_TOO_COMPLEX"),  # an operator chain deeper than the gate's bound
    ("id /* a comment */ + 1", "INVALID_EXPRESSION"),
    ("replace(text, 'x', text)", "EXPRESSION_OUTPUT_TOO_LARGE"),
])
def test_hostile_expressions_are_refused_and_the_table_is_unchanged(store, expression, reason):
    create_docs(store.stub, rows=DOCS[:3])
    code, got = failure(lambda: store.stub.AddColumns(pb.AddColumnsRequest(
        table="docs", expressions=[pb.ColumnExpression(name="new", expression=expression)])))
    exhausted = reason == "EXPRESSION_OUTPUT_TOO_LARGE"
    expected_code = grpc.StatusCode.RESOURCE_EXHAUSTED if exhausted else grpc.StatusCode.INVALID_ARGUMENT
    assert (code, got) == (expected_code, reason)
    assert store.stub.GetTable(pb.GetTableRequest(name="docs")).table.version == 1
    leftovers = list((store.data_dir / "docs.lance" / "data").iterdir())
    assert len(leftovers) == 1  # the fragment a failed computation wrote no file beside


def test_new_column_files_are_fsynced_and_checksummed_before_the_answer(store, monkeypatch):
    from store_service.storage import durable

    create_docs(store.stub, rows=DOCS[:3])
    root = store.data_dir / "docs.lance"
    before = {p for p in root.rglob("*") if p.is_file()}
    synced: set[str] = set()
    real = durable.fsync_file
    monkeypatch.setattr(durable, "fsync_file", lambda p: (synced.add(str(p)), real(p)))
    store.stub.AddColumns(pb.AddColumnsRequest(table="docs", expressions=[
        pb.ColumnExpression(name="n", expression="id + 1")]))
    added = {p for p in root.rglob("*") if p.is_file() and p not in before and "_vectorlane" not in p.parts}
    assert {str(p) for p in added} <= synced, added - {p for p in added if str(p) in synced}
    new_data = [str(p.relative_to(root)) for p in added if p.parent.name == "data"]
    checksums = (root / "_vectorlane" / "checksums.jsonl").read_text()
    assert new_data and all(f'"{p}"' in checksums for p in new_data)


def _add_racing(store, change):
    """An add whose rows are written before `change` commits and committed after it."""
    from store_service.ingest.rows import Batch

    core = store.server.core
    fired = []

    def still_wanted():
        if not fired:
            fired.append(change())
        return True
    rows = pa.table({"id": [500], "text": ["raced words"], "category": ["c"]})
    return core.add("docs", [Batch(rows, {})], still_wanted=still_wanted)


def test_an_add_racing_a_new_column_commits_with_null_in_it(store):
    create_docs(store.stub, rows=DOCS[:3])
    core = store.server.core
    change = _add_racing(store, lambda: core.add_columns("docs", expressions={"twice": "id * 2"}))
    assert change.inserted == 1
    rows = read(store.stub)
    assert rows.column("twice").to_pylist() == [0, 2, 4, None]


def test_an_add_racing_a_rename_is_refused_rather_than_losing_its_values(store):
    create_docs(store.stub, rows=DOCS[:3])
    core = store.server.core
    from store_service.errors import Aborted
    from store_service.schema_changes import Alteration

    with pytest.raises(Aborted) as refused:
        _add_racing(store, lambda: core.alter_columns("docs", [Alteration("category", rename="kind")]))
    assert refused.value.reason == "WRITE_CONFLICT"
    assert read(store.stub).num_rows == 3
    assert len(list((store.data_dir / "docs.lance" / "data").iterdir())) == 1  # the staged rows are gone


def test_new_columns_on_an_empty_table(store):
    create_docs(store.stub)
    store.stub.AddColumns(pb.AddColumnsRequest(table="docs", expressions=[
        pb.ColumnExpression(name="twice", expression="id * 2"), pb.ColumnExpression(name="tag", expression="'x'")]))
    schema = schema_of(store.stub)
    assert schema.field("twice").type == pa.int64() and schema.field("tag").type == pa.string()
    add(store.stub, "docs", json_rows([{"id": 1, "text": "a", "category": "c", "twice": 5}]))
    assert read(store.stub).column("twice").to_pylist() == [5]


def test_lancedb_reads_the_evolved_table_with_its_functions_following(store):
    import json

    import lancedb

    create_docs(store.stub, rows=DOCS[:4])
    store.stub.AddColumns(pb.AddColumnsRequest(table="docs", expressions=[
        pb.ColumnExpression(name="n", expression="id + 100")]))
    store.stub.AlterColumns(pb.AlterColumnsRequest(table="docs", alterations=[
        pb.ColumnAlteration(path="text", rename="body")]))
    store.stub.DropColumns(pb.DropColumnsRequest(table="docs", columns=["category"]))
    table = lancedb.connect(str(store.data_dir)).open_table("docs")
    assert table.schema.names == ["id", "body", "vector", "n"]
    assert sorted(table.to_arrow().column("n").to_pylist()) == [100, 101, 102, 103]
    functions = json.loads(table.schema.metadata[b"embedding_functions"])
    assert [(f["source_column"], f["vector_column"]) for f in functions] == [("body", "vector")]
    assert len(table.list_versions()) == 4
