"""Table RPCs through a real store server: create (schema, inferred, modes), describe, list, drop."""

from __future__ import annotations

import json

import grpc
import pyarrow as pa
import pytest

from tests.helpers import error_info
from tests.store_service.conftest import DOCS_SCHEMA, create_docs, fields, function, json_rows
from vectorlane.store.v1 import store_service_pb2 as pb


def test_create_records_functions_in_lancedb_layout(store):
    table = create_docs(store.stub, dims=16)
    vector = next(f for f in table.schema.fields if f.name == "vector")
    assert vector.dimensions == 16  # taken from the function: the schema gave 0
    schema = pa.ipc.read_schema(pa.py_buffer(table.schema.arrow_schema))
    assert schema.metadata[b"embedding_functions"].decode().count("16.0") == 0
    assert json.loads(schema.metadata[b"embedding_functions"]) == [
        {"name": "word-hash", "model": {"dims": 16}, "source_column": "text", "vector_column": "vector"}]
    assert [(f.name, f.source_column) for f in table.embedding_functions] == [("word-hash", "text")]
    assert table.version == 1 and table.num_rows == 0


def test_create_with_first_rows_embeds_them_and_infers_the_schema(store):
    made = store.stub.CreateTable(pb.CreateTableRequest(
        name="inferred", rows=json_rows([{"id": 1, "text": "red apple"}, {"id": 2, "text": "green pear"}]),
        embedding_functions=[function("word-hash", "text", "vector")])).table
    assert {f.name: f.type for f in made.schema.fields} == {  # JSON objects carry no column order
        "id": pb.DATA_TYPE_INT64, "text": pb.DATA_TYPE_STRING, "vector": pb.DATA_TYPE_VECTOR}
    assert made.num_rows == 2
    found = store.stub.Search(pb.SearchRequest(table="inferred", text="apple", limit=1, select=["id"]))
    assert found.rows.json.rows[0]["id"] == 1


def test_create_modes(store):
    create_docs(store.stub, rows=[{"id": 1, "text": "a"}])
    with pytest.raises(grpc.RpcError) as caught:
        create_docs(store.stub)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(caught.value).reason == "TABLE_EXISTS"
    same = store.stub.CreateTable(pb.CreateTableRequest(
        name="docs", schema=DOCS_SCHEMA, embedding_functions=[function("word-hash", "text", "vector")],
        mode=pb.CREATE_MODE_EXIST_OK)).table
    assert same.num_rows == 1 and same.version == 1
    replaced = store.stub.CreateTable(pb.CreateTableRequest(
        name="docs", schema=fields(("x", pb.DATA_TYPE_FLOAT64, 0)), mode=pb.CREATE_MODE_OVERWRITE)).table
    assert [f.name for f in replaced.schema.fields] == ["x"] and replaced.num_rows == 0 and replaced.version == 2


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "x" * 200, "", "tab\tname", "ünï/côde"])
def test_names_that_could_address_files_are_refused(store, name):
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.CreateTable(pb.CreateTableRequest(name=name, schema=DOCS_SCHEMA))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "INVALID_TABLE_NAME"
    assert not (store.data_dir.parent / "escape").exists()
    assert [p.name for p in store.data_dir.iterdir() if not p.name.startswith(".")] == []


def test_literal_secret_is_refused(store):
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.CreateTable(pb.CreateTableRequest(
            name="keys", schema=fields(("text", pb.DATA_TYPE_STRING, 0), ("vector", pb.DATA_TYPE_VECTOR, 8)),
            embedding_functions=[function("my-local-fn", "text", "vector", api_key="sk-live-123")]))
    assert error_info(caught.value).reason == "LITERAL_SECRET"
    assert "sk-live-123" not in caught.value.details()
    assert not (store.data_dir / "keys.lance").exists()


def test_list_pages_get_and_drop(store):
    for name in ["t3", "t1", "t2"]:
        store.stub.CreateTable(pb.CreateTableRequest(name=name, schema=fields(("x", pb.DATA_TYPE_INT32, 0))))
    first = store.stub.ListTables(pb.ListTablesRequest(page_size=2))
    second = store.stub.ListTables(pb.ListTablesRequest(page_size=2, page_token=first.next_page_token))
    assert list(first.names) == ["t1", "t2"] and list(second.names) == ["t3"] and not second.next_page_token
    assert store.stub.GetTable(pb.GetTableRequest(name="t2")).table.name == "t2"
    store.stub.DropTable(pb.DropTableRequest(name="t2"))
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.GetTable(pb.GetTableRequest(name="t2"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND and error_info(caught.value).reason == "TABLE_NOT_FOUND"
    assert list(store.stub.ListTables(pb.ListTablesRequest()).names) == ["t1", "t3"]
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.ListTables(pb.ListTablesRequest(page_token="garbage"))
    assert error_info(caught.value).reason == "INVALID_PAGE_TOKEN"


def test_local_function_needs_vectors_and_dimensions(start_store):
    local = start_store(None)  # no embed service: every function is local
    with pytest.raises(grpc.RpcError) as caught:
        local.stub.CreateTable(pb.CreateTableRequest(name="t", schema=DOCS_SCHEMA,
                                                     embedding_functions=[function("mine", "text", "vector")]))
    assert error_info(caught.value).reason == "INVALID_SCHEMA"
    schema = fields(("text", pb.DATA_TYPE_STRING, 0), ("vector", pb.DATA_TYPE_VECTOR, 3))
    local.stub.CreateTable(pb.CreateTableRequest(name="t", schema=schema,
                                                 embedding_functions=[function("mine", "text", "vector")]))
    with pytest.raises(grpc.RpcError) as caught:
        local.stub.AddRows(iter([pb.AddRowsRequest(table="t", rows=json_rows([{"text": "no vector"}]))]))
    assert error_info(caught.value).reason == "BAD_VECTOR"
    added = local.stub.AddRows(iter([pb.AddRowsRequest(table="t", rows=json_rows(
        [{"text": "with vector", "vector": [1, 2, 3]}]))]))
    assert added.rows_added == 1
    with pytest.raises(grpc.RpcError) as caught:
        local.stub.Search(pb.SearchRequest(table="t", text="with"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(caught.value).reason == "LOCAL_FUNCTION"


def test_describe_function_through_the_store(store, start_store, tiny_clip):
    """A client that reaches only the store resolves functions: server ones with their dimensions and
    checked settings, anything else as local."""
    reply = store.stub.DescribeFunction(pb.DescribeFunctionRequest(function=function("word-hash", "", "", dims=12)))
    assert (reply.server_function, reply.dimensions, list(reply.modalities)) == (True, 12, ["text"])
    clip = store.stub.DescribeFunction(pb.DescribeFunctionRequest(function=function("open-clip", "", "",
                                                                                 **tiny_clip.settings())))
    assert clip.server_function and sorted(clip.modalities) == ["image", "text"]
    local = store.stub.DescribeFunction(pb.DescribeFunctionRequest(function=function("my-local-thing", "", "")))
    assert not local.server_function and local.dimensions == 0
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.DescribeFunction(pb.DescribeFunctionRequest(function=function("word-hash", "", "", dims=1)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.DescribeFunction(pb.DescribeFunctionRequest(function=function("openai", "", "", api_key="sk-1")))
    assert error_info(caught.value).reason == "LITERAL_SECRET"
    assert "sk-1" not in caught.value.details()
    without_embed = start_store(data_dir=store.data_dir.parent / "other")  # no embed service: all local
    assert not without_embed.stub.DescribeFunction(
        pb.DescribeFunctionRequest(function=function("word-hash", "", ""))).server_function


def test_compute_embeddings_gives_the_vectors_the_store_stores_and_searches_with(store):
    """LanceDB's compute_source_embeddings / compute_query_embeddings for a hosted function, through the store."""
    fn = function("word-hash", "", "", dims=12)
    texts = ["red apple", "blue sea", "red car"]
    reply = store.stub.ComputeEmbeddings(pb.ComputeEmbeddingsRequest(
        function=fn, inputs=[pb.EmbeddingInput(text=t) for t in texts]))
    assert reply.dimensions == 12 and len(reply.vectors) == 3
    schema = fields(("text", pb.DATA_TYPE_STRING, 0), ("vector", pb.DATA_TYPE_VECTOR, 12))
    store.stub.CreateTable(pb.CreateTableRequest(name="t", schema=schema,
                                                 embedding_functions=[function("word-hash", "text", "vector", dims=12)],
                                                 rows=json_rows([{"text": t} for t in texts])))
    stored = store.stub.ReadRows(pb.ReadRowsRequest(table="t"))
    for row, vector in zip(stored.rows.json.rows, reply.vectors):
        assert [v.number_value for v in row.fields["vector"].list_value.values] == pytest.approx(list(vector.values))
    query = store.stub.ComputeEmbeddings(pb.ComputeEmbeddingsRequest(
        function=fn, inputs=[pb.EmbeddingInput(text="red")], query=True)).vectors[0]
    by_text = store.stub.Search(pb.SearchRequest(table="t", text="red", limit=3))
    by_vector = store.stub.Search(pb.SearchRequest(table="t", vector=query, limit=3))
    assert by_text.rows == by_vector.rows
