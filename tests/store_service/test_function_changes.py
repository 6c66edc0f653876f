"""Changing, adding and dropping a table's embedding function as long-running operations: the switch is one
atomic version with every row re-embedded and the index rebuilt, old versions keep the old column, cancel
leaves the table as it was, a paused operation resumes, bad changes are refused before any work."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pyarrow as pa
import pytest

from tests.helpers import error_info
from tests.openai_server import OpenAICompatibleServer, text_vector
from tests.store_service.conftest import WordHash, add, arrow_rows, function, json_rows, rows_of
from vectorlane.store.v1 import store_service_pb2 as pb

WORDS = "river stone cloud maple copper violet harbor lantern meadow ember falcon quartz".split()


def sentences(start: int, count: int) -> list[str]:
    rng = np.random.default_rng(start)
    return [" ".join(rng.choice(WORDS, 5)) + f" n{i}" for i in range(start, start + count)]


def make_table(store, rows: int, dims: int = 32, name: str = "docs") -> None:
    store.stub.CreateTable(pb.CreateTableRequest(name=name, schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="text", type=pb.DATA_TYPE_STRING, nullable=True),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR)]),
        embedding_functions=[function("word-hash", "text", "vector", dims=dims)]))
    for start in range(0, rows, 1000):
        count = min(1000, rows - start)
        add(store.stub, name, arrow_rows(pa.table({"id": np.arange(start, start + count),
                                                   "text": sentences(start, count)})))


def wait(store, operation: pb.Operation, timeout: float = 120.0) -> pb.Operation:
    deadline = time.monotonic() + timeout
    while not operation.done and operation.state != pb.OPERATION_STATE_PAUSED:
        assert time.monotonic() < deadline, f"operation still {pb.OperationState.Name(operation.state)}"
        time.sleep(0.05)
        operation = store.stub.GetOperation(pb.GetOperationRequest(name=operation.name))
    return operation


def read_all(store, name: str = "docs", version: int = 0) -> pa.Table:
    reply = store.stub.ReadRows(pb.ReadRowsRequest(table=name, format=pb.ROW_FORMAT_ARROW, version=version))
    return rows_of(reply.rows).sort_by("id")


def expected(texts: list[str], dims: int) -> np.ndarray:
    return WordHash(dims=dims).embed_texts(texts, None)


def test_change_the_function_to_another_dimension_rebuilds_the_index_and_keeps_old_versions(store):
    make_table(store, 3000)
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_IVF_FLAT, num_partitions=16))
    before = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    started = store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
        table="docs", function=function("word-hash", "text", "vector", dims=16)))
    assert started.name.startswith("tables/docs/operations/") and started.kind == pb.OPERATION_KIND_CHANGE_FUNCTION
    done = wait(store, started)
    assert done.state == pb.OPERATION_STATE_SUCCEEDED, done.error
    assert done.rows_done == done.rows_total == 3000 and done.result_version == before.version + 1
    table = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    assert table.version == done.result_version
    assert [(f.name, f.dimensions) for f in table.schema.fields if f.name == "vector"] == [("vector", 16)]
    assert table.embedding_functions[0].model["dims"] == 16
    assert [(i.index_type, i.version) for i in table.indexes] == [(pb.INDEX_TYPE_IVF_FLAT, before.version)]
    data = read_all(store)
    vectors = np.asarray(data.column("vector").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, expected(data.column("text").to_pylist(), 16), atol=1e-5)
    # Searched by text through the rebuilt index: the same answers as exact search over the new vectors.
    for query in ("river stone", "maple copper violet", "falcon quartz ember"):
        reply = store.stub.Search(pb.SearchRequest(table="docs", text=query, limit=5, nprobes=16,
                                                   format=pb.ROW_FORMAT_ARROW))
        found = rows_of(reply.rows).column("id").to_pylist()
        q = expected([query], 16)[0]
        truth = np.argsort(((vectors - q) ** 2).sum(1), kind="stable")[:5]
        assert found[0] == data.column("id")[int(truth[0])].as_py()
    # The version before the switch still holds the old function and vectors; restore brings them back.
    old = read_all(store, version=before.version)
    assert len(old.column("vector")[0].as_py()) == 32
    store.stub.RestoreVersion(pb.RestoreVersionRequest(table="docs", version=before.version))
    restored = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    assert restored.embedding_functions[0].model["dims"] == 32
    assert len(read_all(store).column("vector")[0].as_py()) == 32


def test_add_a_vector_column_backfilled_from_a_source_and_drop_it(store):
    make_table(store, 1500)
    done = wait(store, store.stub.AddEmbeddingFunction(pb.AddEmbeddingFunctionRequest(
        table="docs", function=function("word-hash", "text", "small", dims=8))))
    assert done.state == pb.OPERATION_STATE_SUCCEEDED and done.kind == pb.OPERATION_KIND_ADD_FUNCTION
    data = read_all(store)
    np.testing.assert_allclose(np.asarray(data.column("small").to_pylist(), dtype=np.float32),
                               expected(data.column("text").to_pylist(), 8), atol=1e-5)
    reply = store.stub.Search(pb.SearchRequest(table="docs", text="river", vector_column="small", limit=3))
    assert len(reply.rows.json.rows) == 3
    dropped = wait(store, store.stub.DropEmbeddingFunction(pb.DropEmbeddingFunctionRequest(table="docs",
                                                                                          vector_column="small")))
    assert dropped.state == pb.OPERATION_STATE_SUCCEEDED
    table = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    assert "small" not in [f.name for f in table.schema.fields]
    assert [f.vector_column for f in table.embedding_functions] == ["vector"]
    listed = store.stub.ListOperations(pb.ListOperationsRequest(table="docs")).operations
    assert [o.kind for o in listed] == [pb.OPERATION_KIND_ADD_FUNCTION, pb.OPERATION_KIND_DROP_FUNCTION]


def test_rows_added_during_the_backfill_get_new_vectors_and_searches_never_fail(store):
    make_table(store, 4000)
    operation = store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
        table="docs", function=function("word-hash", "text", "vector", dims=24)))
    added = 0
    while not operation.done:
        add(store.stub, "docs", json_rows([{"id": 10_000 + added, "text": f"late row {added} river"}]))
        added += 1
        reply = store.stub.Search(pb.SearchRequest(table="docs", text="river", limit=3))
        assert len(reply.rows.json.rows) == 3
        operation = store.stub.GetOperation(pb.GetOperationRequest(name=operation.name))
    assert operation.state == pb.OPERATION_STATE_SUCCEEDED, operation.error
    data = read_all(store)
    assert data.num_rows == 4000 + added
    np.testing.assert_allclose(np.asarray(data.column("vector").to_pylist(), dtype=np.float32),
                               expected(data.column("text").to_pylist(), 24), atol=1e-5)


def test_cancel_leaves_the_table_exactly_as_it_was(store):
    make_table(store, 4000)
    before = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    data_before = read_all(store)
    operation = store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
        table="docs", function=function("word-hash", "text", "vector", dims=16)))
    cancelled = store.stub.CancelOperation(pb.CancelOperationRequest(name=operation.name))
    if cancelled.state == pb.OPERATION_STATE_SUCCEEDED:
        pytest.skip("the operation finished before the cancel arrived")
    assert cancelled.state == pb.OPERATION_STATE_CANCELLED and cancelled.done
    after = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    assert after == before
    assert read_all(store).equals(data_before)
    assert not list((store.data_dir / "docs.lance" / "_vectorlane" / "operations").glob("*/chunks/*"))
    with pytest.raises(grpc.RpcError) as again:
        store.stub.CancelOperation(pb.CancelOperationRequest(name=operation.name))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_the_embed_service_failing_beyond_its_retries_pauses_and_resume_finishes(start_embed, start_store,
                                                                                   monkeypatch):
    monkeypatch.setenv("VECTORLANE_SECRET_OP_KEY", "sk-operation-secret")
    store = start_store(start_embed(secret_allowed_hosts=("http://127.0.0.1:*",)))
    make_table(store, 1500)
    before = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    with OpenAICompatibleServer(dims=16) as upstream:
        upstream.fail_next(500, 100_000)  # down until it recovers
        openai = function("openai", "text", "vector", name="text-embedding-3-small", dim=16, max_retries=2,
                          base_url=upstream.base_url, api_key="$var:op_key")
        paused = wait(store, store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(table="docs",
                                                                                               function=openai)))
        assert paused.state == pb.OPERATION_STATE_PAUSED and not paused.done
        assert (paused.error.code, paused.error.reason) == ("UNAVAILABLE", "UPSTREAM_UNAVAILABLE")
        assert "sk-operation-secret" not in str(paused)
        assert len(upstream.requests) >= 3  # the first call and its two retries, at least
        # Paused, the table is untouched and fully usable; another change waits for this one.
        assert store.stub.GetTable(pb.GetTableRequest(name="docs")).table == before
        assert len(store.stub.Search(pb.SearchRequest(table="docs", text="river", limit=3)).rows.json.rows) == 3
        with pytest.raises(grpc.RpcError) as busy:
            store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
                table="docs", function=function("word-hash", "text", "vector", dims=8)))
        assert error_info(busy.value).reason == "OPERATION_IN_PROGRESS"

        upstream.recover()
        resumed = store.stub.ResumeOperation(pb.ResumeOperationRequest(name=paused.name))
        assert resumed.state == pb.OPERATION_STATE_RUNNING
        done = wait(store, resumed)
    assert done.state == pb.OPERATION_STATE_SUCCEEDED and not done.HasField("error"), done
    assert done.rows_done == done.rows_total == 1500
    data = read_all(store)
    np.testing.assert_allclose(np.asarray(data.column("vector").to_pylist(), dtype=np.float32),
                               [text_vector(t, 16) for t in data.column("text").to_pylist()], atol=1e-6)
    assert store.stub.GetTable(pb.GetTableRequest(name="docs")).table.embedding_functions[0].model["api_key"] == \
        "$var:op_key"


@pytest.mark.parametrize("meanwhile", ["dropped", "replaced"])
def test_an_index_dropped_or_replaced_during_a_switch_is_not_brought_back(store, monkeypatch, meanwhile):
    """The switch rebuilds the column's index beside the new vectors; when the index is dropped (or replaced
    by another, built on the old vectors) meanwhile, its commit leaves the rebuilt one out (it used to list
    it again, over the caller's change) and removes the file it built."""
    from store_service.functions.reembed import Job

    make_table(store, 1200)
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_HNSW))
    name = store.stub.GetTable(pb.GetTableRequest(name="docs")).table.indexes[0].name
    rebuild = Job._rebuild_index

    def then_dropped(self, view, target, new):
        built = rebuild(self, view, target, new)
        if meanwhile == "dropped":  # while the switch runs
            store.stub.DropIndex(pb.DropIndexRequest(table="docs", name=name))
        else:
            store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT, replace=True))
            files_before.update(index_files.iterdir())
        return built

    monkeypatch.setattr(Job, "_rebuild_index", then_dropped)
    index_files = store.data_dir / "docs.lance" / "_vectorlane" / "indexes"
    files_before = set(index_files.iterdir())
    done = wait(store, store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
        table="docs", function=function("word-hash", "text", "vector", dims=16))))
    assert done.state == pb.OPERATION_STATE_SUCCEEDED, done.error
    assert list(store.stub.GetTable(pb.GetTableRequest(name="docs")).table.indexes) == []
    assert set(index_files.iterdir()) <= files_before  # the rebuilt index's file went with it
    found = store.stub.Search(pb.SearchRequest(table="docs", text="river stone", limit=3)).rows.json.rows
    assert len(found) == 3


def test_a_switch_leaves_no_files_for_a_fragment_deleted_while_it_ran(store, monkeypatch):
    """Every fragment is rewritten before the commit; one whose rows were all deleted meanwhile is no longer
    in the version the switch commits, and the files written for it are removed (they used to stay)."""
    import lance
    from store_service.functions.reembed import Job

    make_table(store, 3000)  # three fragments of 1,000 rows
    data = store.data_dir / "docs.lance" / "data"
    before = set(data.iterdir())
    rewrite = Job._rewrite
    deleted = []

    def then_deleted(self, snapshot, ref, target, new):
        rows = rewrite(self, snapshot, ref, target, new)
        if not deleted:  # after the first fragment's rewrite: every row of it deleted
            deleted.append(store.stub.DeleteRows(pb.DeleteRowsRequest(table="docs", where="id < 1000")))
        return rows

    monkeypatch.setattr(Job, "_rewrite", then_deleted)
    done = wait(store, store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
        table="docs", function=function("word-hash", "text", "vector", dims=16))))
    assert done.state == pb.OPERATION_STATE_SUCCEEDED, done.error
    assert deleted[0].rows_deleted == 1000 and store.stub.CountRows(pb.CountRowsRequest(table="docs")).count == 2000
    used = {f"data/{f.path}" for fragment in lance.dataset(str(store.data_dir / "docs.lance")).get_fragments()
            for f in fragment.metadata.files}
    written = {f"data/{p.name}" for p in set(data.iterdir()) - before}
    assert written <= used, written - used


def test_a_resume_while_the_pausing_thread_is_still_ending_runs_the_operation(start_embed, start_store,
                                                                              monkeypatch):
    """The thread that paused an operation saves PAUSED before it lets go of the operation's name; a resume in
    between once found the name taken, started nothing, and left the record RUNNING for ever."""
    from store_service.tables.owner import TableOwner

    letting_go = TableOwner.unregister

    def slowly(self, name):
        time.sleep(1.0)  # the window between the PAUSED record and the name let go, made wide
        letting_go(self, name)

    monkeypatch.setattr(TableOwner, "unregister", slowly)
    monkeypatch.setenv("VECTORLANE_SECRET_OP_KEY", "sk-operation-secret")
    store = start_store(start_embed(secret_allowed_hosts=("http://127.0.0.1:*",)))
    make_table(store, 200)
    with OpenAICompatibleServer(dims=16) as upstream:
        upstream.fail_next(500, 100_000)
        openai = function("openai", "text", "vector", name="text-embedding-3-small", dim=16, max_retries=0,
                          base_url=upstream.base_url, api_key="$var:op_key")
        started = store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(table="docs", function=openai))
        deadline = time.monotonic() + 30
        while store.stub.GetOperation(pb.GetOperationRequest(name=started.name)).state != \
                pb.OPERATION_STATE_PAUSED:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        upstream.recover()
        store.stub.ResumeOperation(pb.ResumeOperationRequest(name=started.name))  # inside the window
        done = wait(store, started, timeout=60)
    assert done.state == pb.OPERATION_STATE_SUCCEEDED and done.rows_done == 200


@pytest.mark.parametrize("request_, code, reason", [
    (pb.AlterEmbeddingFunctionRequest(table="docs", function=function("word-hash", "id", "vector")),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EMBEDDING_FUNCTION"),
    (pb.AlterEmbeddingFunctionRequest(table="docs", function=function("word-hash", "text", "nope")),
     grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_COLUMN"),
    (pb.AlterEmbeddingFunctionRequest(table="docs", function=function("no-such-function", "text", "vector")),
     grpc.StatusCode.FAILED_PRECONDITION, "LOCAL_FUNCTION"),
    (pb.AlterEmbeddingFunctionRequest(table="docs", function=function("openai", "text", "vector",
                                                                      api_key="sk-literal")),
     grpc.StatusCode.INVALID_ARGUMENT, "LITERAL_SECRET"),
    (pb.AddEmbeddingFunctionRequest(table="docs", function=function("word-hash", "text", "vector")),
     grpc.StatusCode.INVALID_ARGUMENT, "COLUMN_EXISTS"),
    (pb.AlterEmbeddingFunctionRequest(table="docs", function=pb.EmbeddingFunctionConfig(
        name="word-hash", source_column="text", vector_column="vector", source_type=pb.SOURCE_TYPE_IMAGE)),
     grpc.StatusCode.INVALID_ARGUMENT, "INVALID_EMBEDDING_FUNCTION"),
    (pb.AlterEmbeddingFunctionRequest(table="nope", function=function("word-hash", "text", "vector")),
     grpc.StatusCode.NOT_FOUND, "TABLE_NOT_FOUND"),
    (pb.GetOperationRequest(name="operations/../../x"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_OPERATION_NAME"),
    (pb.GetOperationRequest(name="tables/docs/operations/" + "0" * 32), grpc.StatusCode.NOT_FOUND,
     "OPERATION_NOT_FOUND"),
])
def test_changes_that_cannot_work_are_refused_before_any_work(store, request_, code, reason):
    make_table(store, 10)
    method = {pb.AlterEmbeddingFunctionRequest: store.stub.AlterEmbeddingFunction,
              pb.AddEmbeddingFunctionRequest: store.stub.AddEmbeddingFunction,
              pb.GetOperationRequest: store.stub.GetOperation}[type(request_)]
    with pytest.raises(grpc.RpcError) as refused:
        method(request_)
    assert refused.value.code() == code and error_info(refused.value).reason == reason
    assert store.stub.ListOperations(pb.ListOperationsRequest(table="docs")).operations == []
    assert store.stub.GetTable(pb.GetTableRequest(name="docs")).table.version == 2
